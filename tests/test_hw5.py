"""Tests for hw5.py, the answer file: Tables 1-2, calculate_V, the literal train, visualize, the data loader."""

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
    (torch.zeros(2, 1, 32, 32, dtype=torch.uint8), TypeError, "x must be a floating-point torch.Tensor, got torch.uint8"),
    (np.zeros((2, 1, 32, 32), np.float32), TypeError, "x must be a floating-point torch.Tensor, got ndarray"),
])
def test_discriminator_rejects_bad_input(bad, exc, said):
    with pytest.raises(exc, match=said):
        hw5.Discriminator()(bad)


@pytest.mark.parametrize("bad,exc,said", [
    (torch.zeros(2, 100), ValueError, r"z must have shape \(N, 128\), got \(2, 100\)"),
    (torch.zeros(128), ValueError, r"z must have shape \(N, 128\), got \(128,\)"),
    (torch.zeros(2, 128, dtype=torch.long), TypeError, "z must be a floating-point torch.Tensor, got torch.int64"),
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
    with torch.no_grad():  # the equation, term by term, in float64
        d_real, d_fake = gan.D(x).double(), gan.D(gan.G(z)).double()
        literal = sum(math.log(p) for p in d_real.tolist()) / 16 + sum(math.log(1 - q) for q in d_fake.tolist()) / 8
    assert V.item() == pytest.approx(literal, rel=1e-5)
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
    with pytest.raises(ValueError, match=r"z must have shape \(N, 128\), got \(0, 128\)"):
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


# ----------------------------------------------------------------------------------------
# (d) the starter's literal train
# ----------------------------------------------------------------------------------------
def _hand_step(gan, x, z):
    """One iteration written out from the assignment: D ascends V, then G descends V (same z)."""
    gan.D_optimizer.zero_grad()
    V = torch.log(gan.D(x)).mean() + torch.log(1 - gan.D(gan.G(z))).mean()
    (-V).backward()
    gan.D_optimizer.step()
    gan.G_optimizer.zero_grad()
    V = torch.log(gan.D(x)).mean() + torch.log(1 - gan.D(gan.G(z))).mean()
    V.backward()
    gan.G_optimizer.step()


def _params(gan):
    return torch.cat([p.detach().flatten() for p in list(gan.D.parameters()) + list(gan.G.parameters())])


def _train_vs_hand(mutate=None):
    torch.manual_seed(0)
    batches = [(torch.rand(8, 1, 32, 32) * 2 - 1, torch.zeros(8)) for _ in range(3)]
    zs = [torch.randn(8, 128) for _ in range(3)]
    gan, ref = hw5.GAN(data_loader=batches, seed=5, verbose=False), hw5.GAN(seed=5, verbose=False)
    it = iter(zs)
    gan.sample_z = lambda n: next(it)
    if mutate:
        mutate(gan)
    gan.train(1)
    for (x, _), z in zip(batches, zs):
        _hand_step(ref, x, z)
    return (_params(gan) - _params(ref)).abs().max().item()


def test_train_is_the_assignments_loop():
    assert _train_vs_hand() < 1e-5


def test_train_check_catches_a_D_that_descends_V():
    def descend(gan):
        for group in gan.D_optimizer.param_groups:
            group["maximize"] = True  # negative control: D's Adam now descends V
    assert _train_vs_hand(descend) > 1e-4


def test_train_calls_calculate_V_twice_per_batch_and_counts_epochs():
    batches = [(torch.rand(4, 1, 32, 32) * 2 - 1, None)] * 3
    gan = hw5.GAN(data_loader=batches, seed=0, verbose=False)
    calls = []
    original = gan.calculate_V
    gan.calculate_V = lambda x, z: calls.append(1) or original(x, z)
    gan.train(1)
    gan.train(1)
    assert len(calls) == 2 * 3 * 2 and gan.epoch == 2
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        gan.train(0)


def test_models_work_under_autocast_bf16():
    gan = hw5.GAN(seed=0, verbose=False)
    z, x = torch.randn(4, 128), torch.rand(4, 1, 32, 32) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        p = gan.D(gan.G(z))
        V = gan.calculate_V(x, z)
    assert p.shape == (4,) and torch.isfinite(p).all() and V.dtype == torch.float32
    V.backward()
    with pytest.raises(TypeError, match="dtype must match"):  # outside autocast the check stays
        gan.D(gan.G(z).to(torch.bfloat16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_models_work_under_autocast_fp16_on_cuda():
    gan = hw5.GAN(seed=0, device="cuda", verbose=False)
    with torch.autocast("cuda", dtype=torch.float16):
        V = gan.calculate_V(torch.rand(4, 1, 32, 32) * 2 - 1, torch.randn(4, 128))
    V.backward()
    assert torch.isfinite(V)


def test_visualize_writes_the_format_of_its_extension_and_refuses_special_files(tmp_path):
    gan = hw5.GAN(seed=0, verbose=False)
    png, jpg = gan.visualize(tmp_path / "g.png"), gan.visualize(tmp_path / "g.jpg")
    assert open(png, "rb").read(4) == b"\x89PNG" and open(jpg, "rb").read(2) == b"\xff\xd8"
    with pytest.raises(ValueError, match="not a regular file"):
        gan.visualize(tmp_path)
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match="not a regular file"):
            gan.visualize("/dev/null")


def test_standalone_file_imports_silently_and_has_help(tmp_path):
    shutil.copy(HW5, tmp_path / "hw5.py")
    env = dict(os.environ, PYTHONPATH="")
    out = subprocess.run([sys.executable, "-c", "import hw5"], cwd=tmp_path, capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0 and out.stdout == out.stderr == ""
    assert sorted(os.listdir(tmp_path)) in (["hw5.py"], ["__pycache__", "hw5.py"])
    helped = subprocess.run([sys.executable, "hw5.py", "--help"], cwd=tmp_path, capture_output=True, text=True,
                            env=env, timeout=120)
    assert helped.returncode == 0 and "--epochs" in helped.stdout and "gan_train.py" in helped.stdout


@pytest.mark.slow  # ~20 s: one epoch of the offline sample with the literal train()
def test_standalone_file_trains_with_its_literal_train(tmp_path):
    """Without gan_train.py beside it, `python hw5.py` trains with the literal train() and writes the grid."""
    shutil.copy(HW5, tmp_path / "hw5.py")
    env = dict(os.environ, PYTHONPATH="")
    run = subprocess.run([sys.executable, "hw5.py", "--epochs", "1", "--out", "grid.png"], cwd=tmp_path,
                         capture_output=True, text=True, env=dict(env, OMP_NUM_THREADS="2"), timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "epoch 1/1: V = " in run.stdout and (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"


def test_get_data_loader_falls_back_offline_to_the_sample(tmp_path, monkeypatch, capsys):
    from torchvision import datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")
    monkeypatch.setattr(datasets, "MNIST", offline)
    loader = hw5.get_data_loader(64, root=str(tmp_path))
    assert capsys.readouterr().out.count("\n") == 1
    x, y = next(iter(loader))
    assert x.shape == (64, 1, 32, 32) and -1 <= x.min() and x.max() <= 1 and len(loader.dataset) == 5000


# ----------------------------------------------------------------------------------------
# issue 27: hw5.py copied alone checks its flags first; float64 V; GAN.train's loader checks
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags,said", [
    (["--out", "nodir/x.png"], "--out 'nodir/x.png' is in a folder that does not exist"),
    (["--out", "x.xyz"], "--out 'x.xyz' must end in an image extension"),
    (["--out", "/dev/full"], "--out '/dev/full' exists and is not a regular file"),
    (["--out", "."], "--out '.' exists and is not a regular file"),
    (["--out", ""], "--out '' must be an image file path"),
    (["--seed", "-1"], "argument --seed: expected an integer in 0.."),
    (["--epochs", "0"], "argument --epochs: expected an integer in 1.."),
])
def test_standalone_file_refuses_bad_flags_in_one_line_before_training(tmp_path, flags, said):
    """hw5.py copied alone (no gan_train.py beside it): a bad flag is one line, before any data or training."""
    if flags[1] == "/dev/full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    shutil.copy(HW5, tmp_path / "hw5.py")
    run = subprocess.run([sys.executable, "hw5.py", "--epochs", "1", *flags], cwd=tmp_path, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=""), timeout=300)
    assert run.returncode == 2 and run.stdout == "", run.stdout + run.stderr
    assert run.stderr.strip().splitlines() == [f"hw5.py: error: {run.stderr.split('error: ', 1)[1].strip()}"]
    assert said in run.stderr and "Traceback" not in run.stderr
    assert sorted(os.listdir(tmp_path)) == ["hw5.py"]  # no data fetched, nothing written


def test_standalone_file_ctrl_c_while_training_exits_130_without_traceback(tmp_path):
    shutil.copy(HW5, tmp_path / "hw5.py")
    proc = subprocess.Popen([sys.executable, "hw5.py", "--epochs", "1000", "--out", "g.png"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH="", OMP_NUM_THREADS="1"))
    try:
        for line in proc.stdout:
            if line.startswith("training"):
                break
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "hw5.py: interrupted" in err and not (tmp_path / "g.png").exists()


def test_calculate_V_of_a_float64_gan_is_float64():
    """V and its gradients in the model's dtype: a float64 GAN matches the formula in float64 to ~1e-15."""
    gan = hw5.GAN(seed=0, verbose=False)
    gan.D.double()
    gan.G.double()
    torch.manual_seed(0)
    x, z = torch.rand(8, 1, 32, 32, dtype=torch.float64) * 2 - 1, torch.randn(6, 128, dtype=torch.float64)
    V = gan.calculate_V(x, z)
    assert V.dtype == torch.float64
    literal = torch.log(gan.D(x)).mean() + torch.log(1 - gan.D(gan.G(z))).mean()
    assert abs(V.item() - literal.item()) <= 1e-13 * abs(literal.item())
    grads = torch.autograd.grad(V, list(gan.D.parameters()))
    want = torch.autograd.grad(literal, list(gan.D.parameters()))
    for g, w in zip(grads, want):
        assert g.dtype == torch.float64
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-15)
    # float32 stays float32 (the grader's reference), and autocast's bf16 is computed in float32
    assert hw5.GAN(seed=0, verbose=False).calculate_V(x.float(), z.float()).dtype == torch.float32


@pytest.mark.parametrize("device,exc", [("gpu", ValueError), (3, ValueError), ("cpu:x", ValueError)])
def test_gan_refuses_unknown_devices_in_our_words(device, exc):
    with pytest.raises(exc, match=r"device must be 'auto', 'cpu', 'cuda' or 'mps'"):
        hw5.GAN(device=device)


def test_visualize_refuses_an_empty_path_or_an_unknown_extension(tmp_path):
    gan = hw5.GAN(seed=0, verbose=False)
    with pytest.raises(ValueError, match="save_path '' must be an image file path"):
        gan.visualize("")
    with pytest.raises(ValueError, match="must end in an image extension"):
        gan.visualize(tmp_path / "g.xyz")
    with pytest.raises(TypeError, match="save_path must be a file path"):
        gan.visualize(3)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("loader,exc,said", [
    ([torch.zeros(4, 1, 32, 32)], TypeError, "must yield \\(x, y\\) pairs"),             # bare tensors
    ([(torch.zeros(4, 1, 32, 32),)], TypeError, "must yield \\(x, y\\) pairs"),          # 1-tuples
    ([(torch.zeros(4, 1, 32, 32, dtype=torch.uint8), 0)], TypeError, "float tensor"),
    ([], ValueError, "yielded no batches in epoch 1"),
    ([(torch.full((4, 1, 32, 32), 255.0), 0)], ValueError, r"must lie in \[-1, 1\], got values in \[255, 255\]"),
])
def test_train_checks_its_batches_like_train_until(loader, exc, said):
    gan = hw5.GAN(data_loader=loader, seed=0, verbose=False)
    before = _params(gan).clone()
    with pytest.raises(exc, match=said):
        gan.train(1)
    assert gan.epoch == 0 and torch.equal(_params(gan), before)


def test_train_accepts_rounding_just_outside_the_range():
    gan = hw5.GAN(data_loader=[(torch.full((2, 1, 32, 32), 1.0 + 1e-6), 0)], seed=0, verbose=False)
    assert torch.isfinite(gan.train(1)) and gan.epoch == 1
