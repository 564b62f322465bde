"""utils_train_script: data split, equivalence of the fast path with a plain loop, outputs."""
import csv
import os
import subprocess
import sys

import pytest
import torch

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
    uts.main(args + ["--out-dir", str(out)])
    printed = capsys.readouterr().out
    assert "final train" in printed and "history.csv" in printed
    assert (out / "errors_C1.png").stat().st_size > 1000
    assert (out / "errors_C2.png").stat().st_size > 1000
    rows = read_csv(out / "history.csv")
    assert list(rows[0]) == list(uts.HISTORY_COLUMNS)
    assert len(rows) == 3 * 2
    for r in rows:
        for col in ("train_error", "test_error"):
            assert 0.0 <= float(r[col]) <= 1.0
        assert float(r["train_loss"]) > 0
    assert {(r["C"], r["epoch"]) for r in rows} == {(c, e) for c in "12" for e in "123"}
    assert not [p for p in os.listdir(out) if p.startswith(".tmp-")]

    uts.main(args + ["--out-dir", str(tmp_path / "again")])
    assert read_csv(tmp_path / "again" / "history.csv") == rows  # same seed, same numbers


def test_seeds_and_default_figure_names(tmp_path):
    out = tmp_path / "s"
    runs = uts.main(["--epochs", "2", "--channels", "1", "2", "4", "--seeds", "2",
                     "--out-dir", str(out), "--no-progress"])
    assert sorted((r.C, r.seed) for r in runs) == [(c, s) for c in (1, 2, 4) for s in (0, 1)]
    assert (out / "errors_C1_2.png").exists() and (out / "errors_C4.png").exists()
    assert len(read_csv(out / "history.csv")) == 2 * 3 * 2
    assert runs[0].history != runs[1].history  # different seeds, different runs


def test_figure_groups():
    assert uts.figure_groups([64, 1, 2, 4]) == ([1, 2, 4], 64)
    assert uts.figure_groups([8]) == ([8], None)


def test_summary_table_values():
    import numpy as np

    curves = {4: np.array([[[0.5, 0.6, 1, 1], [0.2, 0.4, 1, 1], [0.3, 0.35, 1, 1]]])}
    (C, ftr, fte, btr, bte, gap), = uts.summary_table(curves)
    assert (C, ftr, fte, btr, bte) == (4, 0.3, 0.35, 0.2, 0.35)
    assert gap == pytest.approx(0.05)


@pytest.mark.parametrize("argv, message", [
    (["--channels", "0"], "positive integer"),
    (["--channels", "-2"], "positive integer"),
    (["--dataset", "cifar"], "invalid choice"),
    (["--epochs", "0"], "positive integer"),
    (["--lr", "nan"], "positive finite"),
])
def test_bad_arguments_exit_with_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        uts.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_train_runs_rejects_bad_epochs(digits_split):
    Xtr, ytr, Xte, yte = digits_split
    with pytest.raises(ValueError, match="epochs"):
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
