"""Benchmark: utils_train_script's training path vs the plain course loop (hw2 Q3).

The reference is the plain loop a student would write: a DataLoader over a TensorDataset
(shuffle=True, batch 128), SGD(lr=0.1), CrossEntropyLoss, and after every epoch the train
and test error computed batch by batch through DataLoaders, with PyTorch's default threads.
Ours is ``utils_train_script.train_runs`` exactly as ``python utils_train_script.py`` runs
it (concurrent runs, one thread each). Both run the same number of epochs and SGD steps.

Measurements are interleaved (reference, ours, reference, ours, ...) in one process and the
median of ``--repeats`` is reported, so machine noise hits both alike.

    python bench/bench_resnet.py                 # 200 epochs per C, C = 1 2 4 64, 3 repeats
    python bench/bench_resnet.py --epochs 50 --repeats 1
"""
import argparse
import os
import statistics
import sys
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402
import utils_train_script as uts  # noqa: E402
from hw2_ResNet import ResNet  # noqa: E402


def plain_loop(C, epochs, Xtr, ytr, Xte, yte, seed=0):
    """The reference: the plain course loop, evaluation through DataLoaders every epoch."""
    torch.manual_seed(seed)
    model = ResNet(C)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = torch.nn.CrossEntropyLoss()
    train_loader = DataLoader(TensorDataset(Xtr, ytr), batch_size=128, shuffle=True)
    eval_loaders = [DataLoader(TensorDataset(X, y), batch_size=128) for X, y in
                    ((Xtr, ytr), (Xte, yte))]
    history = []
    for _ in range(epochs):
        model.train()
        for xb, yb in train_loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        model.eval()
        errs = []
        with torch.no_grad():
            for loader in eval_loaders:
                wrong, total = 0, 0
                for xb, yb in loader:
                    wrong += (model(xb).argmax(1) != yb).sum().item()
                    total += len(yb)
                errs.append(wrong / total)
        history.append(errs)
    return history


def ours(widths, epochs, Xtr, ytr, Xte, yte, workers, seed=0):
    runs = [uts.make_run(C, seed) for C in widths]
    uts.train_runs(runs, Xtr, ytr, Xte, yte, epochs, workers=workers, progress=False)
    return runs


def timed(fn, *args, **kw):
    t = time.perf_counter()
    fn(*args, **kw)
    return time.perf_counter() - t


def main(argv=None):
    p = common.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=common.positive_int, default=200,
                   help="epochs per run and measurement")
    p.add_argument("--repeats", type=common.positive_int, default=3,
                   help="interleaved repetitions (median)")
    p.add_argument("--channels", type=common.positive_int, nargs="+", default=[1, 2, 4, 64],
                   help="widths C")
    args = p.parse_args(argv)
    default_threads = torch.get_num_threads()
    workers = min(2, os.cpu_count() or 1)
    Xtr, ytr, Xte, yte = uts.load_digits_data()
    print(f"torch {torch.__version__}, {default_threads} default threads, "
          f"{os.cpu_count()} CPUs; {args.epochs} epochs per run, {args.repeats} repeats")

    ref = {C: [] for C in args.channels}
    one = {C: [] for C in args.channels}
    sweep_ref, sweep_ours = [], []
    for rep in range(args.repeats):
        for C in args.channels:
            torch.set_num_threads(default_threads)
            ref[C].append(timed(plain_loop, C, args.epochs, Xtr, ytr, Xte, yte))
            one[C].append(timed(ours, [C], args.epochs, Xtr, ytr, Xte, yte, workers=1))
        sweep_ref.append(sum(ref[C][-1] for C in args.channels))
        torch.set_num_threads(1 if workers > 1 else default_threads)
        sweep_ours.append(timed(ours, args.channels, args.epochs, Xtr, ytr, Xte, yte, workers))
        torch.set_num_threads(default_threads)
        print(f"  repeat {rep + 1}: plain sweep {sweep_ref[-1]:.1f} s, ours {sweep_ours[-1]:.1f} s")

    med = statistics.median
    print(f"\n{'case':<28} {'ours ms/ep':>10} {'plain ms/ep':>11} {'speed-up':>8}")
    for C in args.channels:
        o, r = med(one[C]) / args.epochs * 1e3, med(ref[C]) / args.epochs * 1e3
        print(f"{f'C={C} alone ({default_threads} threads)':<28} {o:>10.1f} {r:>11.1f} {r / o:>7.2f}x")
    o, r = med(sweep_ours) / args.epochs * 1e3, med(sweep_ref) / args.epochs * 1e3
    print(f"{f'sweep C={args.channels}':<28} {o:>10.1f} {r:>11.1f} {r / o:>7.2f}x")
    full = 4000 / args.epochs
    print(f"\nprojected full default sweep (4000 epochs): ours {med(sweep_ours) * full / 60:.1f} min,"
          f" plain {med(sweep_ref) * full / 60:.1f} min, ratio {med(sweep_ours) / med(sweep_ref):.2f}"
          f" of the plain loop's time")


if __name__ == "__main__":
    main()
