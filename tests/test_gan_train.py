"""Tests for gan_train.py: the fast step equals hw5.GAN.train's literal step, resume, checkpoints, the CLI."""
import os
import signal
import subprocess
import sys

import pytest
import torch

import gan_train
import hw5

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _images(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 32, 32, generator=g) * 2 - 1, torch.randint(0, 10, (n,), generator=g)


def _params(gan):
    return torch.cat([p.detach().flatten() for p in list(gan.D.parameters()) + list(gan.G.parameters())])


def _pair(dtype, iterations, workers, loss="minimax"):
    """The runner's train_until and hw5.GAN.train's literal loop on the same batches and latents."""
    images, labels = _images()
    images = images.to(dtype)
    fast = hw5.GAN(data_loader=gan_train.TensorBatches(images, labels, 16, seed=3), seed=7, loss=loss, verbose=False)
    ref = hw5.GAN(data_loader=gan_train.TensorBatches(images, labels, 16, seed=3), seed=7, loss=loss, verbose=False)
    for gan in (fast, ref):
        gan.D.to(dtype)
        gan.G.to(dtype)
    gen = torch.Generator().manual_seed(gan_train.run_state(fast).z_generator.initial_seed())
    ref.sample_z = lambda n: torch.randn(n, 128, generator=gen).to(dtype)
    fast.run.z_generator = torch.Generator().manual_seed(gen.initial_seed())
    orig = fast.run.sample_z
    fast.run.sample_z = lambda n, device: orig(n, device).to(dtype)
    gan_train.train_until(fast, iterations, workers=workers)
    ref.train(iterations // len(ref.data_loader))
    return fast, ref


@pytest.mark.parametrize("workers", [1, 2])
def test_fast_step_equals_the_literal_train_in_float64(workers):
    fast, ref = _pair(torch.float64, 12, workers)
    assert (_params(fast) - _params(ref)).abs().max().item() < 1e-12


def test_non_saturating_fast_step_equals_the_literal_train():
    fast, ref = _pair(torch.float64, 6, 1, loss="non-saturating")
    # the literal G loss is a mean, ours a sum / n: Adam amplifies the 1e-16 rounding of weights whose
    # gradient is ~0 (a wrong update moves weights by ~1e-3)
    assert (_params(fast) - _params(ref)).abs().max().item() < 1e-6


def test_equivalence_detects_a_wrong_update(monkeypatch):
    """Negative control: a fast step whose G step ascends V is told apart."""
    monkeypatch.setattr(gan_train.FastStep, "_g_part", lambda self, fake, n: (
        (_ := gan_train._bce_sum(gan_train.discriminator_fast(self.gan.D, fake), 0.0) / n).backward() or True))
    fast, ref = _pair(torch.float64, 6, 1)
    assert (_params(fast) - _params(ref)).abs().max().item() > 1e-6


@pytest.mark.parametrize("workers", [1, 2])
def test_float32_gradients_match_the_literal_step(workers):
    """Teacher-forced: from the same weights, one fast step and one literal step apply the same
    D and G updates to 1e-4 (Adam's first step is lr * sign(grad), so compare the gradients)."""
    images, labels = _images(16)
    z = torch.randn(16, 128, generator=torch.Generator().manual_seed(1))
    fast, ref = hw5.GAN(seed=3, verbose=False), hw5.GAN(seed=3, verbose=False)
    step = gan_train.FastStep(fast, workers)
    try:
        fast.D_optimizer.zero_grad()
        out = step._map(lambda s: step._d_part(images[s], z[s], 16), [slice(0, 8), slice(8, 16)] if workers > 1
                        else [slice(0, 16)])
    finally:
        step.close()
    (-ref.calculate_V(images, z)).backward()
    for a, b in zip(fast.D.parameters(), ref.D.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
    assert len(out) == workers


def test_report_schedule_and_budget():
    assert gan_train.default_iterations(64) == 9380 and gan_train.default_iterations(128) == 4690
    assert gan_train.default_report_every(79, 9380, 64) == 938
    assert gan_train.default_report_every(938, 9380, 64) == 938


def test_resume_mid_epoch_equals_an_uninterrupted_run(tmp_path):
    images, labels = _images()

    def make():
        return hw5.GAN(data_loader=gan_train.TensorBatches(images, labels, 16, seed=2), seed=4, verbose=False)

    whole = make()
    gan_train.train_until(whole, 8, workers=1)
    part = make()
    gan_train.train_until(part, 4, out_dir=str(tmp_path), report_every=4, workers=1)  # stops inside epoch 2
    again = make()
    gan_train.load_checkpoint(again, tmp_path / "checkpoint.pt")
    assert (again.run.iteration, again.run.epoch, again.run.batch_index) == (4, 1, 1)
    gan_train.train_until(again, 8, workers=1)
    assert torch.equal(_params(again), _params(whole))
    assert [r[:3] for r in again.run.history] == [r[:3] for r in whole.run.history]


def _corrupt(state, key, value):
    state = dict(state)
    if "." in key:
        outer, inner = key.split(".")
        state[outer] = dict(state[outer], **{inner: value})
    else:
        state[key] = value
    return state


@pytest.mark.parametrize("key,value", [
    ("fixed_z", torch.zeros(64, 128, dtype=torch.float64)),
    ("fixed_z", torch.full((64, 128), float("nan"))),
    ("config.seed", 2**64),
    ("config.dataset", "imagenet"),
    ("z_generator", torch.zeros(7, dtype=torch.uint8)),
    ("D_optimizer", {"state": {0: {"step": torch.tensor(1.0), "exp_avg": torch.zeros(3),
                                   "exp_avg_sq": torch.zeros(3)}}, "param_groups": [{"params": list(range(10))}]}),
    ("history", [[1, 1, 1, 0.0, 0.5]]),
    ("format", ["hw5-gan", 2]),
])
def test_damaged_checkpoints_get_one_line(tmp_path, key, value):
    gan = hw5.GAN(data_loader=gan_train.TensorBatches(*_images(16), 16), seed=0, verbose=False)
    good = gan_train.checkpoint_dict(gan)
    gan_train.validate_checkpoint(good)  # the positive control
    path = tmp_path / "checkpoint.pt"
    torch.save(_corrupt(good, key, value), path)
    with pytest.raises(gan_train.CheckpointError, match=f"checkpoint {path} is unreadable or not from this program"):
        gan_train.read_checkpoint(path)


def test_batch_index_beyond_the_epoch_is_refused(tmp_path):
    gan = hw5.GAN(data_loader=gan_train.TensorBatches(*_images(16), 16), seed=0, verbose=False)
    state = gan_train.checkpoint_dict(gan)
    state.update(iteration=10**6, batch_index=10**6)
    torch.save(state, tmp_path / "c.pt")
    with pytest.raises(gan_train.CheckpointError, match="batch_index"):
        gan_train.load_checkpoint(gan, tmp_path / "c.pt")


def test_bf16_is_refused_without_native_support_and_fp16_without_cuda(monkeypatch):
    cpu = torch.device("cpu")
    assert gan_train.precision_support("fp32", cpu) is None
    assert "needs a CUDA device" in gan_train.precision_support("fp16", cpu)
    monkeypatch.setattr("builtins.open", lambda *a, **k: __import__("io").StringIO("flags : fpu avx2\n"))
    assert "no native bfloat16" in gan_train.precision_support("bf16", cpu)
    monkeypatch.undo()
    monkeypatch.setattr("builtins.open", lambda *a, **k: __import__("io").StringIO("flags : avx512_bf16\n"))
    assert gan_train.precision_support("bf16", cpu) is None


def test_bf16_fast_step_trains_with_workers_in_autocast():
    """The bf16 path (emulated here when the CPU lacks it) trains, and each worker enters autocast."""
    gan = hw5.GAN(data_loader=gan_train.TensorBatches(*_images(32), 16), seed=0, verbose=False)
    gan_train.run_state(gan).precision = "bf16"
    seen = []
    orig = gan_train.discriminator_fast

    def spy(D, x):
        seen.append(torch.is_autocast_enabled("cpu"))
        return orig(D, x)
    gan_train.discriminator_fast, saved = spy, gan_train.discriminator_fast
    try:
        gan_train.train_until(gan, 2, workers=2)
    finally:
        gan_train.discriminator_fast = saved
    assert seen and all(seen) and all(torch.isfinite(torch.tensor(r[3:])).all() for r in gan.run.history)


# ---------------------------------------------------------------------------------------- CLI
def _cli(tmp_path, *flags):
    return gan_train.main(["--device", "cpu", "--dataset", "mnist-5k", "--limit", "64", "--batch-size", "32",
                           "--no-eval", "--data-root", str(tmp_path / "data"), "--out-dir", str(tmp_path / "o"),
                           *flags])


def test_cli_run_resume_conflicts_and_overwrite_keeps_user_files(tmp_path, capsys):
    assert _cli(tmp_path, "--iterations", "3") == 0
    out = tmp_path / "o"
    assert {"checkpoint.pt", "history.csv", "final.png", "grid_000002.png", "grid_000003.png"} <= set(os.listdir(out))
    with pytest.raises(SystemExit) as e:
        _cli(tmp_path, "--iterations", "4")
    assert e.value.code == 2 and "already holds a run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _cli(tmp_path, "--iterations", "4", "--resume", "--loss", "non-saturating")
    assert "--loss non-saturating conflicts with the run" in capsys.readouterr().err
    assert _cli(tmp_path, "--iterations", "4", "--resume") == 0
    assert gan_train.read_checkpoint(out / "checkpoint.pt")["iteration"] == 4
    (out / "grid_favourite.png").write_bytes(b"mine")
    (out / "grid_keep.png").mkdir()
    assert _cli(tmp_path, "--iterations", "1", "--overwrite") == 0
    names = set(os.listdir(out))
    assert {"grid_favourite.png", "grid_keep.png"} <= names and "grid_000003.png" not in names


def test_cli_refuses_a_locked_out_dir_and_bad_flags(tmp_path, capsys):
    (tmp_path / "o").mkdir()
    lock = __import__("common").OutDirLock(str(tmp_path / "o"))
    try:
        with pytest.raises(SystemExit):
            _cli(tmp_path, "--iterations", "1")
        assert f"is in use by another run (PID {os.getpid()})" in capsys.readouterr().err
    finally:
        lock.close()
    for flags, said in ((["--threads", "100000"], "--threads 100000 is more than"),
                        (["--precision", "fp16"], "needs a CUDA device")):
        with pytest.raises(SystemExit) as e:
            _cli(tmp_path, *flags)
        assert e.value.code == 2 and said in capsys.readouterr().err
    help_text = gan_train.build_parser("hw5.py").format_help()
    for flag in ("--epochs", "--iterations", "--seed", "--device", "--precision", "--resume", "--overwrite"):
        assert flag in help_text
    assert help_text.count("default") >= 12


def test_sigterm_saves_and_resumes(tmp_path):
    """A real SIGTERM during training: exit 143, a checkpoint that --resume continues."""
    cmd = [sys.executable, os.path.join(ROOT, "hw5.py"), "--device", "cpu", "--dataset", "mnist-5k", "--limit", "64",
           "--batch-size", "32", "--no-eval", "--threads", "1", "--iterations", "100000", "--data-root",
           str(tmp_path / "data"), "--out-dir", str(tmp_path / "o")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    for line in proc.stdout:
        if line.startswith("budget:"):
            break
    import time
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 143, out
    assert "Traceback" not in out and "continue with --resume" in out
    state = gan_train.read_checkpoint(tmp_path / "o" / "checkpoint.pt")
    assert state["iteration"] >= 1


# ---------------------------------------------------------------------------------------- issue 27
@pytest.mark.parametrize("flag,value", [("--limit", "99999999999"), ("--batch-size", "3000000000"),
                                        ("--iterations", "9223372036854775808"),
                                        ("--epochs", "99999999999999999999")])
def test_out_of_range_flags_are_refused_at_parse_time(tmp_path, capsys, flag, value):
    """Before, these trained, then the run's own checkpoint was refused ("bad config.limit")."""
    with pytest.raises(SystemExit) as e:
        gan_train.build_parser().parse_args([flag, value])
    assert e.value.code == 2 and f"argument {flag}: expected an integer in 1..2**" in capsys.readouterr().err
    if flag in ("--limit", "--batch-size"):  # through the whole command line: nothing trained or written
        with pytest.raises(SystemExit):
            _cli(tmp_path, "--iterations", "2", flag, value)
        assert not (tmp_path / "o").exists()


def test_the_largest_accepted_flags_read_back_from_the_checkpoint(tmp_path, capsys):
    """One set of bounds: the largest value each flag accepts is valid in a checkpoint, through the CLI."""
    parser = gan_train.build_parser()
    top = {key: t.bounds[1] for key, t in gan_train.FLAG_INTS.items()}
    for flag, key in (("--limit", "limit"), ("--batch-size", "batch_size"), ("--iterations", "iterations"),
                      ("--epochs", "epochs")):
        assert getattr(parser.parse_args([flag, str(top[key])]), key) == top[key]
        with pytest.raises(SystemExit):
            parser.parse_args([flag, str(top[key] + 1)])
    capsys.readouterr()
    assert _cli(tmp_path, "--iterations", "1", "--limit", str(top["limit"])) == 0
    assert _cli(tmp_path, "--iterations", "2", "--limit", str(top["limit"]), "--resume") == 0
    state = gan_train.read_checkpoint(tmp_path / "o" / "checkpoint.pt")
    assert state["iteration"] == 2 and state["config"]["limit"] == top["limit"]
    state["config"].update(batch_size=top["batch_size"], target_iterations=top["iterations"])
    gan_train.validate_checkpoint(state)


@pytest.mark.parametrize("redirect", ["2>&-", "2</dev/null"])  # no stderr; a read-only fd 2 (a shell shim's)
def test_cli_runs_without_stderr(tmp_path, redirect):
    """Before, tqdm wrote to a missing stderr and the run died with status 1, silently."""
    out = subprocess.run(["sh", "-c", f'exec "$0" "$@" {redirect}', sys.executable, "gan_train.py", "--device", "cpu",
                          "--dataset", "mnist-5k", "--limit", "64", "--batch-size", "32", "--no-eval", "--threads", "1",
                          "--iterations", "2", "--data-root", str(tmp_path / "data"), "--out-dir", str(tmp_path / "o")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout
    assert "done: 2 iterations" in out.stdout and gan_train.read_checkpoint(tmp_path / "o" / "checkpoint.pt")


def _trained_state():
    gan = hw5.GAN(data_loader=gan_train.TensorBatches(*_images(16), 8), seed=0, verbose=False)
    gan_train.train_until(gan, 1, workers=1)
    return gan_train.checkpoint_dict(gan)


def _adam_group(state, **changes):
    opt = dict(state["D_optimizer"])
    opt["param_groups"] = [dict(opt["param_groups"][0], **changes)]
    return opt


def _adam_step(state, step):
    opt = dict(state["D_optimizer"])
    opt["state"] = {i: dict(s, step=step) for i, s in opt["state"].items()}
    return opt


@pytest.mark.parametrize("key,make,said", [
    ("z_generator", lambda s: torch.zeros_like(s["z_generator"]), "z_generator"),
    ("z_generator", lambda s: torch.randint(0, 256, s["z_generator"].shape, generator=torch.Generator().manual_seed(0),
                                            dtype=torch.uint8), "z_generator"),
    ("D_optimizer", lambda s: _adam_step(s, torch.tensor(-5.0)), "step of parameter 0 must be a whole number"),
    ("D_optimizer", lambda s: _adam_group(s, lr="abc"), "lr must be a finite number > 0, got 'abc'"),
    ("D_optimizer", lambda s: _adam_group(s, betas=(2, 3)), r"betas must be two numbers in \[0, 1\)"),
    ("D_optimizer", lambda s: _adam_group(s, maximize=True), "maximize must be False"),
    ("D", lambda s: {k: v.clone().fill_(float("nan")) for k, v in s["D"].items()}, "D weights .some are NaN or inf"),
    ("G", lambda s: dict(s["G"], **{"net.0.bias": torch.full((64,), float("inf"))}), "G weights .some are NaN"),
])
def test_checkpoint_values_are_checked_in_one_line(tmp_path, key, make, said):
    """Issue 27: these gave tracebacks from torch (set_state, Adam) or were accepted (NaN weights)."""
    state = _trained_state()
    gan_train.validate_checkpoint(state)  # the positive control
    state[key] = make(state)
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(gan_train.CheckpointError, match=said) as e:
        gan_train.read_checkpoint(tmp_path / "checkpoint.pt")
    assert "\n" not in str(e.value)


def test_divergence_claims_a_finite_checkpoint_only_when_there_is_one(tmp_path):
    def make():
        gan = hw5.GAN(data_loader=gan_train.TensorBatches(*_images(16), 8), seed=0, verbose=False)
        return gan
    gan = make()
    with torch.no_grad():
        gan.D.fc.bias.fill_(float("nan"))
    with pytest.raises(gan_train.TrainingDiverged, match="no finite checkpoint was saved"):
        gan_train.train_until(gan, 4, out_dir=str(tmp_path / "a"), workers=1)
    gan = make()
    gan_train.train_until(gan, 2, out_dir=str(tmp_path / "b"), report_every=1, workers=1)
    with torch.no_grad():
        gan.G.net[0].bias.fill_(float("inf"))
    with pytest.raises(gan_train.TrainingDiverged, match=r"keeps the last finite state \(iteration 2\)"):
        gan_train.train_until(gan, 4, out_dir=str(tmp_path / "b"), report_every=1, workers=1)
    assert gan_train.read_checkpoint(tmp_path / "b" / "checkpoint.pt")["iteration"] == 2


@pytest.mark.parametrize("name,make,said", [
    ("checkpoint.pt", lambda p, t: p.mkdir(), "checkpoint.pt cannot be written: it exists and is a folder"),
    ("checkpoint.pt", lambda p, t: os.mkfifo(p), "checkpoint.pt cannot be written: it exists and is not a regular"),
    ("history.csv", lambda p, t: p.symlink_to("/dev/null"), "history.csv is a symbolic link (to /dev/null)"),
    ("checkpoint.pt", lambda p, t: p.symlink_to(t), "checkpoint.pt is a symbolic link"),
])
@pytest.mark.parametrize("again", [[], ["--overwrite"]])
def test_run_files_are_checked_before_training(tmp_path, capsys, monkeypatch, name, make, said, again):
    """Issue 27: these failed after the training (or, --overwrite through a checkpoint.pt symlink, wrote
    to a file outside the out-dir); a run's own files are never links."""
    outside = tmp_path / "mine.pt"
    outside.write_bytes(b"the user's own file")
    (tmp_path / "o").mkdir()
    make(tmp_path / "o" / name, outside)
    monkeypatch.setattr(gan_train, "train_until", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(SystemExit) as e:
        _cli(tmp_path, "--iterations", "1", *again)
    err = capsys.readouterr().err
    assert e.value.code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    assert outside.read_bytes() == b"the user's own file" and os.path.lexists(tmp_path / "o" / name)


def test_empty_data_root_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _cli(tmp_path, "--iterations", "1", "--data-root", "")
    assert e.value.code == 2 and "argument --data-root: expected a folder or file path, got ''" in capsys.readouterr().err


def test_a_bogus_mplbackend_is_dropped_before_training(tmp_path):
    """Issue 27: MPLBACKEND=bogus trained, then failed writing the figures (exit 2, the misuse status)."""
    out = subprocess.run([sys.executable, "gan_train.py", "--device", "cpu", "--dataset", "mnist-5k", "--limit", "64",
                          "--batch-size", "32", "--no-eval", "--threads", "1", "--iterations", "2", "--data-root",
                          str(tmp_path / "data"), "--out-dir", str(tmp_path / "o")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, MPLBACKEND="bogus"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.index("MPLBACKEND='bogus' is not a matplotlib backend") < out.stdout.index("device:")
    assert (tmp_path / "o" / "curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("flag,value", [("--iters", "0"), ("--iters", "-5"), ("--reps", "0"), ("--warmup", "-1"),
                                        ("--seed", "-1"), ("--threads", str(10 * (os.cpu_count() or 1)))])
def test_bench_gan_flags_are_checked_at_parse_time(capsys, monkeypatch, flag, value):
    """Issue 27 cause 8: these gave tracebacks after the data was built, and --threads 999 was not capped
    (a 2-iteration run still going after 300 s). Only the parsing runs here: no benchmark."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import bench_gan
    finally:
        sys.path.remove(os.path.join(ROOT, "bench"))
    monkeypatch.setattr(bench_gan.common, "preprocess_uint8", lambda *a, **k: pytest.fail("ran past the flags"))
    with pytest.raises(SystemExit) as e:
        bench_gan.main([flag, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {flag}: expected an integer in" in err


def test_train_until_refuses_images_outside_minus_one_one():
    """Issue 27: images in [0, 255] trained silently (in train_until as in GAN.train)."""
    x, y = torch.full((16, 1, 32, 32), 255.0), torch.zeros(16, dtype=torch.long)
    with pytest.raises(ValueError, match=r"images must lie in \[-1, 1\] .*got values in \[255, 255\]"):
        gan_train.TensorBatches(x, y, 8)
    gan = hw5.GAN(data_loader=[(x[:8], y[:8])], seed=0, verbose=False)
    before = _params(gan).clone()
    with pytest.raises(ValueError, match=r"data_loader's images must lie in \[-1, 1\], got values in \[255, 255\]"):
        gan_train.train_until(gan, 2, workers=1)
    assert torch.equal(_params(gan), before)
    with pytest.raises(TypeError, match=r"must yield \(x, y\) pairs"):
        gan_train.train_until(hw5.GAN(data_loader=[x[:8]], seed=0, verbose=False), 1, workers=1)
    ok = hw5.GAN(data_loader=[(x[:8] / 255 * 2 - 1, y[:8])], seed=0, verbose=False)  # the positive control
    gan_train.train_until(ok, 1, workers=1)
    assert ok.run.iteration == 1
