"""utils_train_script: data split, equivalence of the fast path with a plain loop, outputs."""
import csv
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import common
import utils_train_script as uts
from hw2_ResNet import ResNet


def test_digits_split(digits_split):
    from sklearn.datasets import load_digits

    Xtr, ytr, Xte, yte = digits_split
    assert Xtr.shape == (1617, 1, 8, 8) and Xte.shape == (180, 1, 8, 8)
    assert Xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    d = load_digits()
    assert torch.equal(Xte[:, 0], torch.tensor(d.images[:180], dtype=torch.float32))
    assert torch.equal(ytr, torch.tensor(d.target[180:]))
    assert Xtr.min() == 0 and Xtr.max() == 16


def plain_reference(C, seed, epochs, Xtr, ytr, Xte, yte, batch_size=128, lr=0.1):
    """The literal loop: NCHW model, per-batch SGD, per-batch evaluation, one randperm per
    epoch from a generator seeded with ``seed`` (the batch order the fast path uses)."""
    torch.manual_seed(seed)
    model = ResNet(C)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(Xtr), generator=g)
        for i in range(0, len(Xtr), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(Xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
        model.eval()
        row = []
        with torch.no_grad():
            for X, y in ((Xtr, ytr), (Xte, yte)):
                wrong, loss_sum = 0, 0.0
                for i in range(0, len(X), batch_size):
                    out = model(X[i:i + batch_size])
                    wrong += (out.argmax(1) != y[i:i + batch_size]).sum().item()
                    loss_sum += loss_fn(out, y[i:i + batch_size]).item() * len(out)
                row.append((wrong / len(X), loss_sum / len(X)))
        history.append((row[0][0], row[1][0], row[0][1], row[1][1]))
    return model, history


@pytest.mark.parametrize("workers", [1, 2])
def test_fast_path_matches_plain_loop(digits_split, workers):
    Xtr, ytr, Xte, yte = digits_split
    epochs = 3
    specs = [(2, 0), (16, 5)]
    runs = [uts.make_run(C, s) for C, s in specs]
    uts.train_runs(runs, Xtr, ytr, Xte, yte, epochs, workers=workers, progress=False)
    for run, (C, s) in zip(runs, specs):
        ref, ref_hist = plain_reference(C, s, epochs, Xtr, ytr, Xte, yte)
        for (name, p), q in zip(run.model.state_dict().items(), ref.state_dict().values()):
            if p.dtype.is_floating_point:
                assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), name
            else:
                assert torch.equal(p, q), name  # BN num_batches_tracked = number of steps
        assert run.model.bn.num_batches_tracked.item() == epochs * 13
        for got, want in zip(run.history, ref_hist):
            assert got[:2] == pytest.approx(want[:2], abs=1.5 / 180)  # at most 1 flip
            assert got[2:] == pytest.approx(want[2:], rel=1e-3)


def test_runs_are_independent_of_scheduling(digits_split):
    Xtr, ytr, Xte, yte = digits_split
    a = [uts.make_run(C, 0) for C in (1, 3)]
    b = [uts.make_run(C, 0) for C in (1, 3)]
    uts.train_runs(a, Xtr, ytr, Xte, yte, 2, workers=1, progress=False)
    uts.train_runs(b, Xtr, ytr, Xte, yte, 2, workers=2, progress=False)
    for ra, rb in zip(a, b):
        assert ra.history == rb.history
        for p, q in zip(ra.model.parameters(), rb.model.parameters()):
            assert torch.equal(p, q)


def test_batch_order_covers_each_sample_once():
    g = torch.Generator().manual_seed(0)
    batches = uts.batch_order(1617, 128, g)
    assert [len(b) for b in batches] == [128] * 12 + [81]
    assert torch.equal(torch.cat(batches).sort().values, torch.arange(1617))
    again = uts.batch_order(1617, 128, g)
    assert not torch.equal(torch.cat(batches), torch.cat(again))  # reshuffled each epoch


def test_evaluate_chunking_is_exact(digits_split):
    Xtr, ytr, _, _ = digits_split
    run = uts.make_run(4, 0)
    uts.train_runs([run], Xtr, ytr, Xtr[:10], ytr[:10], 1, progress=False)
    assert uts.evaluate(run.model, Xtr, ytr, chunk=7) == pytest.approx(
        uts.evaluate(run.model, Xtr, ytr), rel=1e-6)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_short_sweep_writes_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--epochs", "3", "--channels", "1", "2", "--no-progress", "--device", "cpu"]
    runs = uts.main(args + ["--out-dir", str(out)])
    printed = capsys.readouterr().out
    assert "final train" in printed and "history.csv" in printed
    assert "PARTIAL" not in printed
    assert sorted(os.listdir(out)) == [".lock", "errors_C1_2.png", "history.csv", "summary.json"]  # .lock: the out-dir's
    assert (out / "errors_C1_2.png").stat().st_size > 1000
    rows = read_csv(out / "history.csv")
    assert list(rows[0]) == list(uts.HISTORY_COLUMNS)
    assert len(rows) == 3 * 2
    for r in rows:
        for col in ("train_error", "test_error"):
            assert 0.0 <= float(r[col]) <= 1.0
        assert float(r["train_loss"]) > 0
        assert r["status"] == "complete"
    assert {(r["C"], r["epoch"]) for r in rows} == {(c, e) for c in "12" for e in "123"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is False
    assert [(r["C"], r["epochs_done"], r["status"]) for r in summary["runs"]] == \
        [(1, 3, "complete"), (2, 3, "complete")]
    assert uts.exit_status(runs) == 0

    uts.main(args + ["--out-dir", str(tmp_path / "again")])
    assert read_csv(tmp_path / "again" / "history.csv") == rows  # same seed, same numbers


def test_seeds_and_figure_names(tmp_path):
    out = tmp_path / "s"
    runs = uts.main(["--epochs", "2", "--channels", "1", "2", "32", "--seeds", "2",
                     "--out-dir", str(out), "--no-progress"])
    assert sorted((r.C, r.seed) for r in runs) == [(c, s) for c in (1, 2, 32) for s in (0, 1)]
    assert sorted(p for p in os.listdir(out) if p.endswith(".png")) == \
        ["errors_C1_2.png", "errors_C32.png"]
    assert len(read_csv(out / "history.csv")) == 2 * 3 * 2
    assert runs[0].history != runs[1].history  # different seeds, different runs


def test_figure_groups():
    """Widths up to 16 share one figure; each larger one gets its own (bug: `--channels 1 2 4`,
    the natural command for hw2 Q3(c), used to split the six curves over two figures)."""
    assert uts.figure_groups([1, 2, 4]) == ([1, 2, 4], [])
    assert uts.figure_groups([64, 1, 2, 4]) == ([1, 2, 4], [64])
    assert uts.figure_groups([8]) == ([8], [])
    assert uts.figure_groups([16, 17, 4, 4]) == ([4, 16], [17])
    assert uts.figure_groups([128, 32]) == ([], [32, 128])


def test_channels_1_2_4_give_one_figure_with_six_curves(tmp_path, monkeypatch):
    drawn = []
    real = uts.plot_errors

    def spy(curves, widths, path, title, faded=None, note=None):
        drawn.append((os.path.basename(path), list(widths), faded))
        return real(curves, widths, path, title, faded, note)

    monkeypatch.setattr(uts, "plot_errors", spy)
    uts.main(["--epochs", "1", "--channels", "1", "2", "4", "--out-dir", str(tmp_path),
              "--no-progress"])
    assert drawn == [("errors_C1_2_4.png", [1, 2, 4], None)]
    drawn.clear()
    runs = [uts.make_run(C, 0) for C in (4, 32, 64)]
    for run in runs:
        run.history, run.status = [(0.5, 0.5, 1.0, 1.0)], "complete"
    uts.write_outputs(runs, 1, str(tmp_path), "digits")
    assert drawn == [("errors_C4.png", [4], None), ("errors_C32.png", [32], 4),
                     ("errors_C64.png", [64], 4)]  # each large width, the widest small faded


def test_summary_table_values():
    import numpy as np

    curves = {4: np.array([[[0.5, 0.6, 1, 1], [0.2, 0.4, 1, 1], [0.3, 0.35, 1, 1]]])}
    (C, ftr, fte, btr, bte, gap), = uts.summary_table(curves)
    assert (C, ftr, fte, btr, bte) == (4, 0.3, 0.35, 0.2, 0.35)
    assert gap == pytest.approx(0.05)


@pytest.mark.parametrize("argv, message", [
    (["--channels", "0"], "argument --channels: expected a positive integer, got 0"),
    (["--channels", "-2"], "argument --channels: expected a positive integer, got -2"),
    (["--dataset", "cifar"], "argument --dataset: invalid choice: 'cifar'"),
    (["--epochs", "0"], "argument --epochs: expected a positive integer, got 0"),
    (["--lr", "nan"], "argument --lr: expected a positive finite number, got 'nan'"),
    (["--seed", "-1"], "argument --seed: expected an integer in 0..2**63-1, got -1"),
    (["--seed", "1e20"], "argument --seed: expected an integer in 0..2**63-1, got '1e20'"),
    (["--seed", str(2**63)], f"argument --seed: expected an integer in 0..2**63-1, got {2**63}"),
    (["--seed", str(2**63 - 1), "--seeds", "2"], "--seed 9223372036854775807 with --seeds 2"),
    (["--channels", "4", "100000"], "--channels 100000: ResNet(100000) has 180,002,500,010 weights"),
])
def test_bad_arguments_exit_with_message(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(uts, "load_digits_data", _must_not_load)
    with pytest.raises(SystemExit) as exc:
        uts.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_largest_seed_trains(tmp_path):
    """Every seed in 0..2**63-1 works (--seed 1e20 used to give a traceback)."""
    runs = uts.main(["--seed", str(2**63 - 1), "--epochs", "1", "--channels", "1",
                     "--out-dir", str(tmp_path), "--no-progress"])
    assert runs[0].seed == 2**63 - 1 and runs[0].status == "complete"
    assert read_csv(tmp_path / "history.csv")[0]["seed"] == str(2**63 - 1)


def test_seed_help_is_true_and_no_global_seeding(tmp_path):
    """--seed fixes a run's initial weights and batch order; the script no longer seeds
    Python/NumPy globally (set_seed had no effect on any result)."""
    help_text = " ".join(uts.build_parser().format_help().split())
    assert "fixes its initial weights and its batch order" in help_text
    py_state, np_state = random.getstate(), np.random.get_state()
    a = uts.main(["--seed", "3", "--epochs", "1", "--channels", "2", "--out-dir",
                  str(tmp_path / "a"), "--no-progress"])
    b = uts.main(["--seed", "4", "--epochs", "1", "--channels", "2", "--out-dir",
                  str(tmp_path / "b"), "--no-progress"])
    assert random.getstate() == py_state
    assert all(np.array_equal(x, y) for x, y in zip(np.random.get_state(), np_state))
    assert a[0].history != b[0].history
    assert not hasattr(uts, "set_seed")


def _must_not_load(*args, **kwargs):
    raise AssertionError("data was loaded before the arguments and --out-dir were checked")


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x") and p, "exists and is not a folder"),
    (lambda p: (p.write_text("x"), p / "sub")[1], "cannot be created (not a directory)"),
])
def test_unusable_out_dir_fails_before_loading(tmp_path, capsys, monkeypatch, make, message):
    out = make(tmp_path / "taken")
    monkeypatch.setattr(uts, "load_digits_data", _must_not_load)
    with pytest.raises(SystemExit) as exc:
        uts.main(["--epochs", "1", "--channels", "1", "--out-dir", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == f"utils_train_script.py: error: --out-dir {out} {message}; " \
                  "choose another --out-dir\n"


def test_read_only_out_dir_fails_before_loading(tmp_path, capsys, monkeypatch):
    """Simulated with a write probe that fails as on a read-only folder (root ignores
    permissions); test_read_only_out_dir_real does it for real where not root."""
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if ".write-test." in os.fspath(path):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    monkeypatch.setattr(uts, "load_digits_data", _must_not_load)
    with pytest.raises(SystemExit) as exc:
        uts.main(["--epochs", "1", "--channels", "1", "--out-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert capsys.readouterr().err == (f"utils_train_script.py: error: --out-dir {tmp_path} is "
                                       "not writable (permission denied); choose another "
                                       "--out-dir\n")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root can write to a read-only folder")
def test_read_only_out_dir_real(tmp_path, capsys, monkeypatch):
    tmp_path.chmod(0o555)
    monkeypatch.setattr(uts, "load_digits_data", _must_not_load)
    try:
        with pytest.raises(SystemExit) as exc:
            uts.main(["--channels", "1", "--out-dir", str(tmp_path / "out")])
    finally:
        tmp_path.chmod(0o755)
    assert exc.value.code == 2 and "cannot be created" in capsys.readouterr().err


def test_full_disk_gives_one_line(tmp_path, capsys, monkeypatch):
    def full(f, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(common, "_write_all", full)
    with pytest.raises(SystemExit) as exc:
        uts.main(["--epochs", "1", "--channels", "1", "--out-dir", str(tmp_path),
                  "--no-progress"])
    assert exc.value.code == 1
    path = tmp_path / "history.csv"
    assert capsys.readouterr().err == (f"utils_train_script.py: error: could not write {path}: "
                                       "no space left on device\n")
    assert os.listdir(tmp_path) == [".lock"]  # no temporary file left behind (.lock: the out-dir's lock)


def test_assignment_settings_are_the_defaults(monkeypatch, tmp_path):
    """hw2 Q3: SGD lr 0.1 (no momentum, no weight decay), batches of 128, C = 1, 2, 4 and 64,
    4000 epochs, digits with the first 180 samples as the test set. Checked where main hands
    them to the training loop, so changing a default (or its wiring) fails here."""
    seen = {}

    class Stop(Exception):
        pass

    def fake_train_runs(runs, Xtr, ytr, Xte, yte, epochs, batch_size=None, workers=None,
                        progress=None):
        seen.update(runs=runs, Xtr=Xtr, ytr=ytr, Xte=Xte, yte=yte, epochs=epochs,
                    batch_size=batch_size)
        raise Stop

    monkeypatch.setattr(uts, "train_runs", fake_train_runs)
    with pytest.raises(Stop):
        uts.main(["--out-dir", str(tmp_path), "--device", "cpu", "--no-progress"])
    assert seen["epochs"] == 4000 and seen["batch_size"] == 128
    assert [(r.C, r.seed) for r in seen["runs"]] == [(1, 0), (2, 0), (4, 0), (64, 0)]
    for run in seen["runs"]:
        assert type(run.optimizer) is torch.optim.SGD
        (group,) = run.optimizer.param_groups
        assert (group["lr"], group["momentum"], group["weight_decay"], group["dampening"],
                group["nesterov"]) == (0.1, 0, 0, 0, False)
    from sklearn.datasets import load_digits

    d = load_digits()
    assert torch.equal(seen["Xte"][:, 0], torch.tensor(d.images[:180], dtype=torch.float32))
    assert torch.equal(seen["yte"], torch.tensor(d.target[:180]))
    assert torch.equal(seen["Xtr"][:, 0], torch.tensor(d.images[180:], dtype=torch.float32))
    assert torch.equal(seen["ytr"], torch.tensor(d.target[180:]))


def test_divergent_run_stops_and_says_why(digits_split, tmp_path, capsys):
    """--lr 1e30 used to fill history.csv with nan and exit 0."""
    runs = uts.main(["--lr", "1e30", "--epochs", "3", "--channels", "1", "--out-dir",
                     str(tmp_path), "--no-progress"])
    (run,) = runs
    assert run.status == "diverged" and run.history == []
    assert run.reason.startswith("diverged: the training loss became nan in epoch 1 "
                                 "(is lr=1e+30 too large?)")
    printed = capsys.readouterr().out
    assert "PARTIAL RESULTS" in printed and "C=1 seed 0: diverged" in printed
    assert "nan" not in (tmp_path / "history.csv").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["runs"][0]["status"] == "diverged"
    assert uts.exit_status(runs) == 1
    # a diverging run stops alone: the other run of the sweep goes on
    Xtr, ytr, Xte, yte = digits_split
    bad, good = uts.make_run(1, 0, lr=1e30), uts.make_run(2, 0)
    uts.train_runs([bad, good], Xtr, ytr, Xte, yte, 2, workers=2, progress=False)
    assert (bad.status, len(bad.history)) == ("diverged", 0)
    assert (good.status, len(good.history)) == ("complete", 2)


class _StopAfter:
    """A stand-in for threading.Event that reports 'set' after ``n`` checks."""

    def __init__(self, n):
        self.n = n

    def is_set(self):
        self.n -= 1
        return self.n < 0

    def set(self):
        self.n = -1


def test_stop_keeps_the_completed_epochs(digits_split):
    Xtr, ytr, Xte, yte = digits_split
    full = uts.train_runs([uts.make_run(2, 0)], Xtr, ytr, Xte, yte, 2, progress=False)[0]
    # one check before each epoch + one per mini-batch (13 per epoch): stop inside epoch 3
    run = uts.make_run(2, 0)
    uts.train_runs([run], Xtr, ytr, Xte, yte, 5, progress=False, stop=_StopAfter(2 * 14 + 5))
    assert run.status == "interrupted" and run.history == full.history
    assert run.reason == "interrupted (Ctrl-C) after 2 of 5 epochs"
    waiting = uts.make_run(1, 0)
    uts.train_runs([waiting], Xtr, ytr, Xte, yte, 5, progress=False, stop=_StopAfter(0))
    assert waiting.status == "interrupted" and waiting.history == []


@pytest.mark.parametrize("workers", [1, 2])
def test_sigint_in_process_stops_cleanly(digits_split, monkeypatch, workers):
    """A real SIGINT sent during the first epoch's evaluation: the runs stop after their
    current mini-batch, keep their completed epochs, and SIGINT's handler is restored."""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    Xtr, ytr, Xte, yte = digits_split
    real_evaluate, calls = uts.evaluate, []

    def evaluate(model, X, y):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real_evaluate(model, X, y)

    monkeypatch.setattr(uts, "evaluate", evaluate)
    runs = [uts.make_run(C, 0) for C in (1, 2)]
    uts.train_runs(runs, Xtr, ytr, Xte, yte, 10_000, workers=workers, progress=False)
    assert [r.status for r in runs] == ["interrupted"] * 2
    assert 1 <= max(len(r.history) for r in runs) < 100
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert uts.exit_status(runs) == 130


@pytest.mark.parametrize("sig, status, said", [  # the same mechanism: Ctrl-C's run is in the slow set
    pytest.param(signal.SIGINT, 130, "Ctrl-C", marks=pytest.mark.slow), (signal.SIGTERM, 143, "SIGTERM")])
def test_ctrl_c_subprocess_two_workers_writes_partial_outputs(tmp_path, repo_root, sig, status, said):
    """Ctrl-C with 2 worker threads used to abort with SIGABRT (exit 134) and write nothing;
    SIGTERM killed the sweep with nothing written. The real signal is sent once a progress bar
    shows a completed epoch."""
    import re
    import threading

    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-u", "utils_train_script.py", "--epochs", "100000", "--channels",
         "1", "2", "--workers", "2", "--device", "cpu", "--out-dir", str(out)],
        cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    err_chunks = []
    reader = threading.Thread(target=lambda: err_chunks.extend(iter(
        lambda: os.read(proc.stderr.fileno(), 4096), b"")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not re.search(rb"\| *[1-9][0-9]*/100000", b"".join(err_chunks)):
            assert proc.poll() is None and time.monotonic() < deadline, b"".join(err_chunks)
            time.sleep(0.05)
        proc.send_signal(sig)
        printed = proc.stdout.read().decode()
        proc.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = b"".join(err_chunks).decode()
    assert proc.returncode == status, err
    assert "Traceback" not in err and "terminate called" not in err
    assert f"{said}: stopping after the current mini-batch" in err
    assert "PARTIAL RESULTS" in printed and f"interrupted ({said}) after" in printed
    rows = read_csv(out / "history.csv")
    assert rows and {r["status"] for r in rows} == {"interrupted"}
    for C in "12":
        epochs = [int(r["epoch"]) for r in rows if r["C"] == C]
        assert epochs == list(range(1, len(epochs) + 1))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True
    assert {r["status"] for r in summary["runs"]} == {"interrupted"}
    assert (out / "errors_C1_2.png").stat().st_size > 1000


def test_partial_figure_note_and_ragged_curves():
    runs = [uts.make_run(1, s) for s in (0, 1)] + [uts.make_run(2, 0)]
    runs[0].history, runs[0].status = [(0.5, 0.6, 1.0, 1.1)] * 3, "complete"
    runs[1].history, runs[1].status = [(0.3, 0.4, 1.0, 1.1)], "interrupted"
    runs[2].history, runs[2].status = [], "diverged"
    curves = uts.curves_by_width(runs)
    assert list(curves) == [1] and curves[1].shape == (2, 3, 4)
    assert np.isnan(curves[1][1, 1:]).all()
    (row,) = uts.summary_table(curves)
    assert row[:3] == (1, 0.5, 0.6) and row[3] == pytest.approx(0.4)  # epoch 1: mean of both
    assert uts.partial_note(runs, [1], 3) == "PARTIAL: C=1 seed 1 interrupted (1/3 ep)"
    assert uts.partial_note(runs, [2], 3) == "PARTIAL: C=2 seed 0 diverged (0/3 ep)"
    assert uts.partial_note(runs[:1], [1], 3) is None


def test_plot_errors_leaves_the_matplotlib_backend_alone(tmp_path, monkeypatch):
    import matplotlib

    def no_switch(*args, **kwargs):
        raise AssertionError("plot_errors switched the global matplotlib backend")

    monkeypatch.setattr(matplotlib, "use", no_switch)
    monkeypatch.delenv("DISPLAY", raising=False)
    curves = {1: np.full((1, 2, 4), 0.5)}
    path = uts.plot_errors(curves, [1], str(tmp_path / "e.png"), "t", note="PARTIAL: x")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_train_runs_rejects_bad_epochs(digits_split):
    Xtr, ytr, Xte, yte = digits_split
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        uts.train_runs([uts.make_run(1, 0)], Xtr, ytr, Xte, yte, 0)


def test_help_lists_every_flag(repo_root):
    out = subprocess.run([sys.executable, "utils_train_script.py", "--help"], cwd=repo_root,
                         capture_output=True, text=True, check=True).stdout
    for flag in ("--channels", "--epochs", "--batch-size", "--lr", "--seed", "--seeds",
                 "--dataset", "--data-root", "--device", "--workers", "--out-dir"):
        assert flag in out
    assert "default: 4000" in out


def test_mnist_5k_data_for_the_resnet():
    """--dataset mnist-5k: 28x28, Normalize((0.5,), (1.0,)) so values in [-0.5, 0.5], and a
    fixed disjoint split: 100 test images per class, the other 400 per class for training."""
    Xtr, ytr, Xte, yte = uts.load_mnist_data(dataset="mnist-5k")
    assert Xtr.shape == (4000, 1, 28, 28) and Xte.shape == (1000, 1, 28, 28)
    assert Xtr.min().item() == -0.5 and Xtr.max().item() == 0.5
    assert torch.bincount(yte, minlength=10).tolist() == [100] * 10
    assert torch.bincount(ytr, minlength=10).tolist() == [400] * 10
    rows = {tuple(r.flatten().tolist()[::7]) for r in Xte[:50]}
    assert not rows & {tuple(r.flatten().tolist()[::7]) for r in Xtr}
    Xtr2, _, _, _ = uts.load_mnist_data(dataset="mnist-5k")
    assert torch.equal(Xtr, Xtr2)
    out = ResNet(2)(Xtr[:3])
    assert out.shape == (3, 10)


@pytest.mark.parametrize("redirect", ["2>&-", "2</dev/null"])  # no stderr; a read-only fd 2 (a shell shim's)
def test_cli_runs_without_stderr(tmp_path, repo_root, redirect):
    """Issue 27: with no usable stderr, tqdm's bars failed and the sweep exited 1 with nothing written."""
    out = subprocess.run(["sh", "-c", f'exec "$0" "$@" {redirect}', sys.executable, "utils_train_script.py",
                          "--channels", "1", "--epochs", "1", "--out-dir", str(tmp_path)], cwd=repo_root,
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stdout
    assert (tmp_path / "summary.json").is_file() and "summary.json" in out.stdout


@pytest.mark.parametrize("blocked", ["history.csv", "summary.json", "errors_C1_2.png", "errors_C32.png"])
def test_outputs_are_checked_before_training(tmp_path, capsys, monkeypatch, blocked):
    """Issue 27: a folder in the place of an output was found only after the whole sweep."""
    (tmp_path / blocked).mkdir()
    monkeypatch.setattr(uts, "train_runs", lambda *a, **k: pytest.fail("trained before checking the outputs"))
    with pytest.raises(SystemExit) as e:
        uts.main(["--epochs", "30", "--channels", "1", "2", "32", "--no-progress", "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"{tmp_path / blocked} cannot be written: it exists and is a folder" in err
    assert sorted(os.listdir(tmp_path)) == sorted([blocked, ".lock"])


def test_an_out_dir_in_use_is_refused(tmp_path, capsys, monkeypatch):
    """Issue 27: two sweeps at once on one out-dir mixed their files; the sweep takes the out-dir's lock."""
    monkeypatch.setattr(uts, "train_runs", lambda *a, **k: pytest.fail("trained on a locked out-dir"))
    with common.OutDirLock(str(tmp_path)):
        with pytest.raises(SystemExit) as e:
            uts.main(["--epochs", "1", "--channels", "1", "--no-progress", "--out-dir", str(tmp_path)])
    assert e.value.code == 2 and f"is in use by another run (PID {os.getpid()})" in capsys.readouterr().err


def test_a_bogus_mplbackend_is_dropped_before_training(tmp_path, repo_root):
    """Issue 27: MPLBACKEND=bogus gave a traceback after training; the figures need no backend."""
    out = subprocess.run([sys.executable, "utils_train_script.py", "--channels", "1", "--epochs", "1", "--no-progress",
                          "--out-dir", str(tmp_path)], cwd=repo_root, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, MPLBACKEND="bogus", OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.index("MPLBACKEND='bogus' is not a matplotlib backend") < out.stdout.index("device:")
    assert (tmp_path / "errors_C1.png").read_bytes()[:4] == b"\x89PNG"


def test_empty_data_root_is_refused(tmp_path, capsys):
    """Issue 27: --data-root '' silently meant the current folder."""
    with pytest.raises(SystemExit) as e:
        uts.main(["--data-root", "", "--out-dir", str(tmp_path)])
    assert e.value.code == 2 and "argument --data-root: expected a folder or file path, got ''" in capsys.readouterr().err
