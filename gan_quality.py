"""Sample-quality score for the hw5 GAN: an independent digit classifier, never D's opinion.

A small CNN (:class:`DigitClassifier`) is trained on real MNIST digits (32x32, values in
[-1, 1], as ``common.load_mnist`` gives them) with a stratified held-out part kept out of its
training.  :class:`QualityScorer` then scores a batch of images ``(N, 1, 32, 32)``:

* ``confident``: share of images whose top class probability is >= 0.9;
* ``coverage``: number of classes that receive >= 3% of the images (by argmax), 0..10;
* ``entropy``: entropy of that argmax class histogram divided by log(10), in [0, 1];
* ``fd``: Frechet distance between the classifier's penultimate features of the images and
  of held-out real digits (the MNIST analogue of FID), with the real-vs-real value as floor.

:func:`build_scorer` trains the classifier once and caches it in
``<cache_dir>/digit_classifier_<dataset_key>.pt``; :func:`write_quality_csv` and
:func:`plot_quality` write the numbers and their figure.  ``hw5.py``'s command line uses this
module when it is present (``hw5.py`` itself never needs it).  Importing this module only
defines things; matplotlib is imported inside :func:`plot_quality`.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import math
import os
import re
import time
import warnings

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

import common

__all__ = [
    "DigitClassifier",
    "QualityScorer",
    "build_scorer",
    "split_indices",
    "frechet_distance",
    "feature_statistics",
    "format_scores",
    "train_classifier",
    "data_fingerprint",
    "cache_path",
    "SCORE_KEYS",
    "QUALITY_COLUMNS",
    "write_quality_csv",
    "read_quality_csv",
    "plot_quality",
]

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 32, 32)
CONFIDENT_P = 0.9          # a sample is "confident" when its top class probability is >= this
COVERAGE_SHARE = 0.03      # a class is "covered" when it gets >= this share of the samples
CACHE_FORMAT = 1           # bump when the cache layout or the classifier changes
TRAIN_IMAGES = 36_000      # default training length of the classifier, in images seen
QUALITY_COLUMNS = ("iteration", "epoch", "confident", "coverage", "entropy", "fd")
SCORE_KEYS = ("n", "confident", "coverage", "entropy", "fd")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_RANGE_TOL = 1e-3          # images may exceed [-1, 1] by this much (round-off), not more


# ----------------------------------------------------------------------------------------
# validation and file helpers
# ----------------------------------------------------------------------------------------
def _check_images(name, images, min_n=2):
    """``images`` must be a finite float tensor (N, 1, 32, 32), N >= ``min_n``, in [-1, 1]."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {images.dtype}")
    if images.dim() != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"{name} must have shape (N, 1, 32, 32), got {tuple(images.shape)}")
    if images.shape[0] < min_n:
        raise ValueError(f"{name} must hold at least {min_n} images, got N = {images.shape[0]}")
    lo, hi = (float(v) for v in torch.aminmax(images))  # one pass; NaN and inf propagate to lo/hi
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite (it holds NaN or inf)")
    if lo < -1 - _RANGE_TOL or hi > 1 + _RANGE_TOL:
        raise ValueError(f"{name} must lie in [-1, 1] (Normalize(0.5, 0.5) images), got [{lo:.4g}, {hi:.4g}]")


def _check_labels(name, labels, n):
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"{name} must be an integer tensor, got dtype {labels.dtype}")
    if labels.dim() != 1:
        raise ValueError(f"{name} must have shape (N,), got {tuple(labels.shape)}")
    if labels.shape[0] != n:
        raise ValueError(f"{name} must have one label per image: {labels.shape[0]} labels for {n} images")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= NUM_CLASSES):
        raise ValueError(f"{name} must lie in 0..9, got values in {int(labels.min())}..{int(labels.max())}")


@contextlib.contextmanager
def _intra_op_threads(n):
    """Run the block with ``torch.set_num_threads(n)`` (``None``: unchanged), then restore the count."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------------------
# the classifier
# ----------------------------------------------------------------------------------------
class DigitClassifier(nn.Module):
    """Small CNN: (N, 1, 32, 32) in [-1, 1] -> logits (N, 10); ``features`` gives (N, 128).

    Three conv3x3-ReLU-maxpool stages (1->16->32->64 channels, 32->16->8->4 pixels), then
    Linear(1024, 128)-ReLU (the penultimate features) and Linear(128, 10). Each stage pools
    before its ReLU (the same function, since ReLU is monotone, on a quarter of the values);
    the weights are kept channels_last, which makes CPU pooling ~3x faster.
    """

    FEATURES = 128

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 4 * 4, self.FEATURES), nn.ReLU(),
        )
        self.head = nn.Linear(self.FEATURES, NUM_CLASSES)
        self.to(memory_format=torch.channels_last)

    def features(self, x):
        """(N, 1, 32, 32) -> penultimate features (N, 128) (after the ReLU)."""
        return self.body(x.contiguous(memory_format=torch.channels_last))

    def forward(self, x):
        """(N, 1, 32, 32) -> logits (N, 10)."""
        return self.head(self.features(x))

    def logits_and_features(self, x):
        """Both at the cost of one pass: ``(logits (N, 10), features (N, 128))``."""
        f = self.features(x)
        return self.head(f), f


def _random_shift(x, max_shift, generator):
    """Translate each image of (N, 1, H, W) by its own integer shift in [-max_shift, max_shift]
    along each axis; pixels shifted in take the background value -1."""
    n, _, h, w = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p), value=-1.0)
    dy, dx = torch.randint(0, 2 * p + 1, (2, n, 1, 1), generator=generator).to(x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy).expand(n, h, w)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx).expand(n, h, w)
    return padded[torch.arange(n, device=x.device).view(n, 1, 1), 0, rows, cols].unsqueeze(1)


def train_classifier(images, labels, seed=0, epochs=12, batch_size=64, lr=2e-3, max_shift=2, device="cpu",
                     threads=1):
    """Train a :class:`DigitClassifier` on images (N, 1, 32, 32), labels (N,) with cross-entropy:
    Adam with a one-cycle learning rate, each image randomly shifted by up to ``max_shift`` pixels.

    Runs on ``threads`` intra-op threads (``None``: the caller's setting; the count is restored
    afterwards). Deterministic for a seed on a given device and thread count. The shuffles and
    shifts use a private ``torch.Generator``; the initialisation draws from torch's global RNG,
    reseeded inside ``torch.random.fork_rng`` so the caller's RNG state is restored afterwards.
    """
    device = torch.device(device)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), _intra_op_threads(threads):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = DigitClassifier().to(device)
        x_all, y_all = images.to(device), labels.to(device)
        n = len(x_all)
        steps_per_epoch = math.ceil(n / batch_size)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen).to(device)
            for i in range(0, n, batch_size):
                idx = perm[i : i + batch_size]
                x = _random_shift(x_all[idx], max_shift, gen) if max_shift else x_all[idx]
                loss = F.cross_entropy(model(x), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    return model.eval()


# ----------------------------------------------------------------------------------------
# Frechet distance
# ----------------------------------------------------------------------------------------
def feature_statistics(features):
    """Mean (F,) and unbiased covariance (F, F) (as ``np.cov``) of features (N, F), N >= 2, as
    float64 NumPy arrays. Computed with torch (one float64 matmul), which is much faster than
    ``np.cov`` when OpenBLAS threads compete with torch's."""
    f = torch.as_tensor(features).detach().cpu().double()
    if f.dim() != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape (N, F) with N >= 2, got {tuple(f.shape)}")
    if not bool(torch.isfinite(f).all()):
        raise ValueError("features must be finite")
    mu = f.mean(0)
    c = f - mu
    return mu.numpy(), (c.T @ c / (len(f) - 1)).numpy()


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), means (F,), covariances (F, F):

        |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))

    in float64 with ``scipy.linalg.sqrtm``; imaginary parts from round-off are dropped. When the
    product is singular and its square root comes out non-finite, ``eps * I`` is added to both
    covariances (as pytorch-fid does), and if that fails too the trace is taken from the
    eigenvalues of the symmetric form s1^(1/2) s2 s1^(1/2). Never negative, never NaN for finite inputs.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"mu1 and mu2 must be vectors of the same length, got {mu1.shape} and {mu2.shape}")
    if s1.shape != (mu1.size, mu1.size) or s2.shape != s1.shape:
        raise ValueError(f"sigma1 and sigma2 must have shape {(mu1.size, mu1.size)}, got {s1.shape} and {s2.shape}")
    for name, a in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} must be finite")
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        scale = max(float(np.abs(s).max()), 1e-300)
        if not np.allclose(s, s.T, rtol=1e-6, atol=1e-9 * scale) or np.linalg.eigvalsh((s + s.T) / 2).min() < -1e-6 * scale:
            raise ValueError(f"{name} must be a covariance matrix (symmetric positive semi-definite)")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products are expected (dead ReLU units); checked below
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(s1)) * eps
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.isfinite(covmean).all():
        tr_covmean = np.trace(np.real(covmean))
    else:  # last resort: tr sqrtm(s1 s2) = tr sqrtm(r1 s2 r1), r1 = s1^(1/2), a symmetric PSD form (eigh)
        w, v = np.linalg.eigh((s1 + s1.T) / 2)
        r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()
    fd = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean
    return max(float(fd), 0.0)


# ----------------------------------------------------------------------------------------
# the scorer
# ----------------------------------------------------------------------------------------
class QualityScorer:
    """Scores images (N, 1, 32, 32) in [-1, 1] with a trained :class:`DigitClassifier`.

    Attributes: ``model``; ``reference`` (the scores of the real held-out "floor" half, same
    keys as :meth:`score`; its ``fd`` equals ``floor``); ``floor`` (Frechet distance between the
    two held-out real halves, ``reference["n"]`` images each: the best a generator can expect
    with that many samples); ``accuracy`` (on all held-out real digits); ``reference_images`` and
    ``floor_images`` (the two halves); ``mu``, ``sigma`` (reference feature statistics);
    ``threads``: intra-op threads for the classifier's forward passes (``None``: the caller's).
    """

    def __init__(self, model, reference_images, floor_images, reference_labels=None, floor_labels=None,
                 batch_size=250, threads=1):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.batch_size = batch_size
        self.threads = threads
        self.reference_images = reference_images
        self.floor_images = floor_images
        ref_logits, ref_feats = self._forward(reference_images)
        self.mu, self.sigma = feature_statistics(ref_feats)
        floor_logits, floor_feats = self._forward(floor_images)
        self.reference = self._scores(floor_logits, floor_feats)
        self.floor = self.reference["fd"]
        self.accuracy = float("nan")
        if reference_labels is not None and floor_labels is not None:
            pred = torch.cat([ref_logits, floor_logits]).argmax(1).cpu()
            self.accuracy = float((pred == torch.cat([reference_labels, floor_labels]).cpu()).double().mean())

    @torch.no_grad()
    def _forward(self, images):
        """Logits (N, 10) and features (N, 128) in float32 on the scorer's device, in batches."""
        was_training = self.model.training
        self.model.eval()
        try:
            with _intra_op_threads(self.threads):
                outs = [self.model.logits_and_features(images[i : i + self.batch_size].to(self.device, torch.float32))
                        for i in range(0, len(images), self.batch_size)]
        finally:
            self.model.train(was_training)
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def score(self, images):
        """Scores of images (N, 1, 32, 32) in [-1, 1], N >= 2: a dict with ``n``, ``confident``,
        ``coverage``, ``entropy`` and ``fd`` (see the module docstring)."""
        with _intra_op_threads(self.threads):
            _check_images("images", images)
            return self._scores(*self._forward(images))

    def _scores(self, logits, feats):
        """The :meth:`score` dict from logits (N, 10) and features (N, 128)."""
        n = len(logits)
        probs = logits.double().softmax(1)
        top_p, top_class = probs.max(1)
        hist = torch.bincount(top_class, minlength=NUM_CLASSES).double().cpu().numpy() / n
        nz = hist[hist > 0]
        mu, sigma = feature_statistics(feats)
        return {
            "n": n,
            "confident": float((top_p >= CONFIDENT_P).double().mean()),
            "coverage": int((hist >= COVERAGE_SHARE).sum()),
            "entropy": float(max(0.0, -(nz * np.log(nz)).sum() / math.log(NUM_CLASSES))),
            "fd": frechet_distance(mu, sigma, self.mu, self.sigma),
        }

    def score_generator(self, G, z, batch_size=500):
        """Scores of ``G(z)`` for latents z (N, latent_dim): G in eval mode under no_grad, in
        batches of ``batch_size``, on G's device; G's train/eval mode is restored."""
        if not isinstance(G, nn.Module):
            raise TypeError(f"G must be a torch.nn.Module, got {type(G).__name__}")
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(f"z must be a floating-point torch.Tensor, got {type(z).__name__}"
                            + (f" of dtype {z.dtype}" if isinstance(z, torch.Tensor) else ""))
        if z.dim() != 2 or z.shape[0] < 2:
            raise ValueError(f"z must have shape (N, latent_dim) with N >= 2, got {tuple(z.shape)}")
        batch_size = common.check_int("batch_size", batch_size, 1)
        param = next(G.parameters(), None)
        dev = param.device if param is not None else z.device
        was_training = G.training
        G.eval()
        try:
            with torch.no_grad():
                images = torch.cat([G(z[i : i + batch_size].to(dev)) for i in range(0, len(z), batch_size)])
        finally:
            G.train(was_training)
        return self.score(images)


def format_scores(scores, floor=None):
    """One line: ``confident 93.1%, coverage 10/10, entropy 0.998, FD 1.23 (floor 0.45)``."""
    s = (f"confident {100 * scores['confident']:.1f}%, coverage {scores['coverage']}/10, "
         f"entropy {scores['entropy']:.3f}, FD {scores['fd']:.3g}")
    return s + (f" (floor {floor:.3g})" if floor is not None else "")


# ----------------------------------------------------------------------------------------
# split, fingerprint, cache, build
# ----------------------------------------------------------------------------------------
def split_indices(labels, seed=0, holdout_per_class=200, max_train_per_class=600):
    """Stratified split of labels (N,) into index tensors ``train``, ``reference``, ``floor``.

    Per class (a permutation from ``torch.Generator().manual_seed(seed)``, classes in order):
    ``holdout_per_class // 2`` reference images, as many floor images, then at most
    ``max_train_per_class`` training images. Each class needs more than ``holdout_per_class`` images.
    """
    holdout_per_class = common.check_int("holdout_per_class", holdout_per_class, 4)
    if holdout_per_class % 2:
        raise ValueError(f"holdout_per_class must be even (two equal halves), got {holdout_per_class}")
    max_train_per_class = common.check_int("max_train_per_class", max_train_per_class, 1)
    labels = labels.cpu()
    half = holdout_per_class // 2
    gen = torch.Generator().manual_seed(int(seed))
    parts = {"train": [], "reference": [], "floor": []}
    for c in range(NUM_CLASSES):
        idx = (labels == c).nonzero().flatten()
        if len(idx) <= holdout_per_class:
            raise ValueError(f"labels: class {c} has {len(idx)} images; holdout_per_class={holdout_per_class} "
                             "needs more (lower holdout_per_class for small data sets)")
        idx = idx[torch.randperm(len(idx), generator=gen)]
        parts["reference"].append(idx[:half])
        parts["floor"].append(idx[half:holdout_per_class])
        parts["train"].append(idx[holdout_per_class : holdout_per_class + max_train_per_class])
    return {k: torch.cat(v).sort().values for k, v in parts.items()}


def data_fingerprint(images, labels):
    """A short description of a data set: N, a SHA-256 of all labels and one of 16 evenly spaced images."""
    n = len(images)
    pick = torch.linspace(0, n - 1, min(n, 16)).round().long()
    h = hashlib.sha256(images[pick].detach().cpu().float().contiguous().numpy().tobytes())
    return {"n": n, "labels_sha256": hashlib.sha256(labels.cpu().long().numpy().tobytes()).hexdigest(),
            "images_sha256": h.hexdigest()}


def cache_path(cache_dir, dataset_key):
    """``<cache_dir>/digit_classifier_<dataset_key>.pt``."""
    return os.path.join(os.fspath(cache_dir), f"digit_classifier_{dataset_key}.pt")


_CACHE_KEYS = {"format", "state_dict", "split", "fingerprint", "train_seconds"}


def _same(value, want):
    """``value == want`` for plain data; False for anything else (a tensor inside a dict, ...)."""
    try:
        return type(value) is type(want) and bool(value == want)
    except Exception:  # noqa: BLE001 - an ambiguous comparison means "not the same"
        return False


def _load_cache(path, config, fingerprint, device):
    """The cached model, or ``(None, reason)`` when the file is missing, unreadable, mismatching or damaged."""
    if not os.path.lexists(path):
        return None, "missing"
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file means "rebuild"
        return None, f"unreadable ({type(exc).__name__})"
    if not isinstance(blob, dict) or set(blob) != _CACHE_KEYS:
        return None, "unexpected contents"
    for key, want in (("format", CACHE_FORMAT), ("split", config), ("fingerprint", fingerprint)):
        if not _same(blob[key], want):
            return None, {"format": f"format {blob['format']!r}, expected {CACHE_FORMAT}",
                          "split": "different split or training settings", "fingerprint": "made for different data"}[key]
    weights = blob["state_dict"]
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) and v.is_floating_point()
                                                and bool(torch.isfinite(v).all()) for v in weights.values()):
        return None, "damaged (weights that are not finite tensors)"
    model = DigitClassifier()
    try:
        model.load_state_dict(weights)
    except Exception as exc:  # noqa: BLE001
        return None, f"weights do not fit ({type(exc).__name__})"
    return model.to(device).eval(), blob["train_seconds"]


def build_scorer(images, labels, cache_dir, dataset_key, seed=0, verbose=True, device="cpu", epochs=None,
                 holdout_per_class=200, max_train_per_class=600, threads=1, fallback_dir=None, min_accuracy=0.9):
    """Train (or load from cache) the digit classifier and return a :class:`QualityScorer`.

    images: float (N, 1, 32, 32) in [-1, 1]; labels: integer (N,) in 0..9 with every class
    holding more than ``holdout_per_class`` images. The split (see :func:`split_indices`) keeps
    ``holdout_per_class`` images per class out of training: two halves, the reference set and
    the floor set; training uses at most ``max_train_per_class`` of the rest per class (mnist-5k:
    300, full MNIST: 600) for ``epochs`` epochs (default: ``TRAIN_IMAGES`` images seen in all,
    12 epochs of mnist-5k's 3,000, 6 of full MNIST's 6,000). ``cache_dir=None`` disables the cache; otherwise
    the model is stored in ``<cache_dir>/digit_classifier_<dataset_key>.pt`` (weights, split and
    training settings, data fingerprint, format version; written atomically) and reused when all
    match. A missing, unreadable or mismatching cache, one with weights that are not finite, or
    one whose held-out accuracy is below ``min_accuracy`` (all-zero weights score 10%) is rebuilt
    with one printed line; a freshly trained classifier is used whatever its accuracy.

    threads: intra-op threads for the classifier's training and scoring (restored after each
    call; ``None`` = the caller's setting). One is the default: this network is so small that a
    second thread gains 20-35% on a quiet 2-core machine but costs 2.5-10x when other processes
    share the cores (OpenMP threads wait on each other at every op), and the weights then do not
    depend on the caller's thread count.
    """
    _check_images("images", images)
    _check_labels("labels", labels, len(images))
    if not isinstance(dataset_key, str):
        raise TypeError(f"dataset_key must be a str, got {type(dataset_key).__name__}")
    if not _KEY_RE.match(dataset_key):
        raise ValueError(f"dataset_key must be a plain name of letters, digits, '.', '_' or '-' "
                         f"(no path separators), got {dataset_key!r}")
    if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
        raise TypeError(f"cache_dir must be a path (str or os.PathLike) or None, got {type(cache_dir).__name__}")
    seed = common.check_seed(seed)
    if threads is not None:
        threads = common.check_int("threads", threads, 1)
    min_accuracy = common.check_float("min_accuracy", min_accuracy, 0.0)  # NaN would switch the floor off
    if min_accuracy > 1:
        raise ValueError(f"min_accuracy must be a fraction in [0, 1], got {min_accuracy}")
    device = common.resolve_device(device)
    split = split_indices(labels, seed, holdout_per_class, max_train_per_class)
    if epochs is None:
        epochs = max(1, round(TRAIN_IMAGES / len(split["train"])))
    epochs = common.check_int("epochs", epochs, 1)
    config = {"seed": seed, "holdout_per_class": holdout_per_class, "max_train_per_class": max_train_per_class,
              "epochs": epochs, "threads": threads,
              "method": "stratified, torch.Generator(seed) permutation per class"}
    fingerprint = data_fingerprint(images, labels)
    say = print if verbose else (lambda *a, **k: None)

    model, path = None, None
    ref, flo = split["reference"], split["floor"]
    dirs = [d for d in (cache_dir, fallback_dir) if d is not None]
    for folder in dirs:  # a valid cache is used where it is, read-only or not
        path = cache_path(folder, dataset_key)
        model, info = _load_cache(path, config, fingerprint, device)
        if model is not None:
            scorer = QualityScorer(model, images[ref], images[flo], labels[ref], labels[flo], threads=threads)
            if scorer.accuracy >= min_accuracy:
                break
            model, info = None, f"a classifier with held-out accuracy {100 * scorer.accuracy:.1f}% (< {100 * min_accuracy:.0f}%)"
        if info != "missing":
            say(f"digit classifier cache {path} is {info}; retraining it", flush=True)
    t0 = time.perf_counter()
    trained = model is None
    if trained:
        tr = split["train"]
        model = train_classifier(images[tr], labels[tr], seed=seed, epochs=epochs, device=device, threads=threads)
        train_seconds = time.perf_counter() - t0
        scorer = QualityScorer(model, images[ref], images[flo], labels[ref], labels[flo], threads=threads)
        if scorer.accuracy < min_accuracy:  # a cache that every later call would refuse: do not write it
            dirs = []
        blob = {"format": CACHE_FORMAT, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "split": config, "fingerprint": fingerprint, "train_seconds": train_seconds}
        path, errors = None, []
        for folder in dirs:  # the cache folder, else the fallback (e.g. a read-only data root)
            try:
                common.check_out_dir(folder)
                path = common.atomic_write(cache_path(folder, dataset_key), lambda tmp: torch.save(blob, tmp))
                break
            except (OSError, ValueError) as exc:
                errors.append(str(exc))
        if errors and path is None:
            say(f"digit classifier cache could not be written ({'; '.join(errors)}); continuing without it",
                flush=True)
    n_holdout = len(ref) + len(flo)
    if trained:
        floor = f" (below the {100 * min_accuracy:.0f}% floor: not cached)" if scorer.accuracy < min_accuracy else ""
        say(f"digit classifier ({dataset_key}): trained on {len(split['train']):,} images for {epochs} epochs "
            f"in {train_seconds:.1f} s; held-out accuracy {100 * scorer.accuracy:.1f}% on {n_holdout:,} images"
            + (f"; cached in {path}" if path else "") + floor, flush=True)
    else:
        say(f"digit classifier ({dataset_key}): loaded from {path}; held-out accuracy "
            f"{100 * scorer.accuracy:.1f}% on {n_holdout:,} images", flush=True)
    say(f"real held-out digits (reference): {format_scores(scorer.reference, scorer.floor)}", flush=True)
    return scorer


# ----------------------------------------------------------------------------------------
# CSV and figure
# ----------------------------------------------------------------------------------------
def _check_rows(rows):
    if not isinstance(rows, (list, tuple)):
        raise TypeError(f"rows must be a list of dicts, got {type(rows).__name__}")
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise TypeError(f"rows[{i}] must be a dict, got {type(r).__name__}")
        missing = [k for k in QUALITY_COLUMNS if k not in r]
        if missing:
            raise ValueError(f"rows[{i}] lacks the keys {missing} (needs {QUALITY_COLUMNS})")


def write_quality_csv(rows, path):
    """Write rows (dicts with the ``QUALITY_COLUMNS`` keys; other keys ignored) to a CSV, atomically."""
    _check_rows(rows)

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(QUALITY_COLUMNS)
            for r in rows:
                w.writerow([int(r["iteration"]), f"{float(r['epoch']):.6g}", f"{float(r['confident']):.6g}",
                            int(r["coverage"]), f"{float(r['entropy']):.6g}", f"{float(r['fd']):.6g}"])

    return common.atomic_write(path, write)


def read_quality_csv(path):
    """Rows written by :func:`write_quality_csv`: list of dicts (iteration and coverage int, the rest float).
    A file that is not such a CSV (binary, another table, a bad value) raises ``ValueError`` naming it."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != QUALITY_COLUMNS:
                raise ValueError(f"path: {path} does not have the columns {QUALITY_COLUMNS}")
            rows = []
            for r in reader:
                if None in r or None in r.values():
                    raise ValueError(f"path: {path} line {reader.line_num} does not have {len(QUALITY_COLUMNS)} values")
                rows.append({k: (int(v) if k in ("iteration", "coverage") else float(v)) for k, v in r.items()})
            return rows
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"path: {path} is not a quality CSV (text with the columns {QUALITY_COLUMNS}): "
                         f"{type(exc).__name__}") from None
    except ValueError as exc:
        if str(exc).startswith("path: "):
            raise
        raise ValueError(f"path: {path} is not a quality CSV: a value is not a number ({exc})") from None


def plot_quality(rows, scorer, path, title=None):
    """Three panels against the iteration (epochs on a secondary axis): the confident fraction,
    the class coverage with the histogram entropy, and the Frechet distance (log scale); dashed
    lines mark the real held-out digits (``scorer.reference``, ``scorer.floor``). Written atomically."""
    from matplotlib.figure import Figure

    _check_rows(rows)
    if not rows:
        raise ValueError("rows must hold at least one row")
    it = np.array([float(r["iteration"]) for r in rows])
    ep = np.array([float(r["epoch"]) for r in rows])
    ref = scorer.reference if scorer is not None else None
    fig = Figure(figsize=(14, 4.2))
    ax_conf, ax_cov, ax_fd = fig.subplots(1, 3)
    ref_style = dict(color="gray", ls="--", lw=1)

    ax_conf.plot(it, [100 * r["confident"] for r in rows], "o-", ms=3, color="tab:blue", label="GAN samples")
    if ref:
        ax_conf.axhline(100 * ref["confident"], **ref_style, label=f"real digits ({100 * ref['confident']:.1f}%)")
    ax_conf.set(ylim=(0, 102), xlabel="iteration", ylabel="% with top class prob >= 0.9",
                title="Confident fraction")

    ax_cov.plot(it, [r["coverage"] for r in rows], "o-", ms=3, color="tab:green", label="coverage (classes >= 3%)")
    ax_cov.set(ylim=(-0.3, 10.5), yticks=range(0, 11), xlabel="iteration", ylabel="classes with >= 3% of samples",
               title="Class coverage and histogram entropy")
    ax_ent = ax_cov.twinx()
    ax_ent.plot(it, [r["entropy"] for r in rows], "s-", ms=3, color="tab:orange", label="entropy (right axis)")
    ax_ent.set(ylim=(-0.03, 1.05), ylabel="normalised entropy of the class histogram")
    if ref:
        ax_cov.axhline(ref["coverage"], color="tab:green", ls="--", lw=1, alpha=0.6,
                       label=f"real digits: {ref['coverage']} classes")
        ax_ent.axhline(ref["entropy"], color="tab:orange", ls="--", lw=1, alpha=0.6,
                       label=f"real digits: entropy {ref['entropy']:.3f}")
    h1, l1 = ax_cov.get_legend_handles_labels()
    h2, l2 = ax_ent.get_legend_handles_labels()
    ax_cov.legend(h1 + h2, l1 + l2, loc="lower right", fontsize=8)

    fds = np.array([max(float(r["fd"]), 1e-12) for r in rows])
    ax_fd.plot(it, fds, "o-", ms=3, color="tab:red", label="GAN samples vs real")
    if scorer is not None:
        ax_fd.axhline(max(scorer.floor, 1e-12), **ref_style,
                      label=f"real vs real floor ({scorer.floor:.3g}, n={ref['n']})")
    ax_fd.set_yscale("log")
    ax_fd.set(xlabel="iteration", ylabel="Frechet distance (classifier features)",
              title="Frechet distance to held-out real digits")
    ax_fd.grid(True, which="both", alpha=0.3)
    for ax in (ax_conf, ax_fd):
        ax.legend(loc="best", fontsize=8)
    ax_conf.grid(True, alpha=0.3)
    ax_cov.grid(True, alpha=0.3)

    # epochs on a secondary axis when iteration is proportional to epoch
    good = (ep > 0) & (it > 0)
    if good.any():
        per_epoch = float(np.median(it[good] / ep[good]))
        if per_epoch > 0 and np.allclose(it[good] / ep[good], per_epoch, rtol=0.02):
            for ax in (ax_conf, ax_cov, ax_fd):
                sec = ax.secondary_xaxis("top", functions=(lambda x: x / per_epoch, lambda e: e * per_epoch))
                sec.set_xlabel("epoch", fontsize=8)
                sec.tick_params(labelsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return common.save_figure(fig, path, dpi=100)  # in the format the extension names
