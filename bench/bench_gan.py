"""Benchmark: hw5's GAN training loop vs the assignment's starter loop, interleaved in one run.

Reference (kept here, literal): a torch DataLoader (batch 64, shuffle) over a 60,000-image uint8
dataset whose ``__getitem__`` makes a PIL image and applies Resize(32), ToTensor, Normalize per
image (as torchvision's MNIST does), and per batch two full ``calculate_V`` forward/backward
passes (D step on -V, G step on V) on NCHW weights.
Ours: ``gan_train.train_until`` (the fast step: half-batch workers, one D(G(z)) pass) over the
same 60,000 images preprocessed once into a tensor (``common.preprocess_uint8``) and batched by
indexing. ``--precision bf16`` adds a row where this CPU has native bfloat16.

Both loops run the same number of iterations per repetition, alternating, several repetitions;
we report medians of ms/iteration, the projected seconds per 938-iteration MNIST epoch and the
ratio. Run: ``python bench/bench_gan.py [--iters 100] [--reps 3] [--threads N]``.
"""

import argparse
import os
import statistics
import sys
import time


import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402
import gan_train  # noqa: E402
import hw5  # noqa: E402

ITERS_PER_EPOCH = 938  # ceil(60000 / 64)


class StarterMNIST(Dataset):
    """torchvision.datasets.MNIST's __getitem__: uint8 array -> PIL image -> transform."""

    def __init__(self, data_u8, targets, transform):
        self.data, self.targets, self.transform = data_u8, targets, transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        img = Image.fromarray(self.data[index].numpy(), mode="L")
        return self.transform(img), int(self.targets[index])


def starter_loader(data_u8, targets, batch_size=64):
    from torchvision import transforms

    transform = transforms.Compose([transforms.Resize(32), transforms.ToTensor(),
                                    transforms.Normalize((0.5,), (0.5,))])
    return DataLoader(StarterMNIST(data_u8, targets, transform), batch_size=batch_size, shuffle=True)


def starter_iterations(gan, batches, n):
    """The starter's loop body, literally: two calculate_V passes per batch."""
    for _ in range(n):
        x, _ = next(batches)
        x = x.to(gan.device)
        z = torch.randn(x.shape[0], 128, device=gan.device)
        gan.D_optimizer.zero_grad()
        loss_d = -gan.calculate_V(x, z)
        loss_d.backward()
        gan.D_optimizer.step()
        gan.G_optimizer.zero_grad()
        loss_g = gan.calculate_V(x, z)
        loss_g.backward()
        gan.G_optimizer.step()


def endless(loader):
    while True:
        yield from loader


def main(argv=None):
    p = common.ArgumentParser(prog="bench_gan.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cpus = os.cpu_count() or 1
    p.add_argument("--iters", type=common.int_in(1, 10**6), default=100, help="iterations per loop per repetition")
    p.add_argument("--reps", type=common.int_in(1, 1000), default=3,
                   help="interleaved repetitions (median reported)")
    p.add_argument("--warmup", type=common.int_in(0, 10**6), default=5,
                   help="untimed iterations per loop before timing")
    p.add_argument("--threads", type=common.int_in(1, cpus), default=None,
                   help=f"torch.set_num_threads, at most this machine's {cpus} CPUs: more only oversubscribes the "
                        "cores and times the contention (default: torch's choice)")
    p.add_argument("--seed", type=common.seed_int, default=0,
                   help="seed for the synthetic data and the models, 0..2**63-1")
    p.add_argument("--precision", choices=gan_train.PRECISIONS, default="fp32",
                   help="precision of our loop (bf16 needs native bfloat16: avx512_bf16 or amx_bf16)")
    args = p.parse_args(argv)
    reason = gan_train.precision_support(args.precision, torch.device("cpu"))
    if reason:
        common.fail(p, reason)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    n_images = 60_000
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU; synthetic dataset of "
          f"{n_images} uint8 28x28 images; {args.reps} x {args.iters} iterations per loop, interleaved", flush=True)
    rng = np.random.default_rng(args.seed)
    data_u8 = torch.from_numpy(rng.integers(0, 256, (n_images, 28, 28), dtype=np.uint8))
    targets = torch.from_numpy(rng.integers(0, 10, n_images))

    # ours: one-time preprocessing (counted once per run, reported separately)
    t0 = time.perf_counter()
    images = common.preprocess_uint8(data_u8)
    prep_s = time.perf_counter() - t0
    ours = hw5.GAN(data_loader=gan_train.TensorBatches(images, targets, 64, seed=args.seed), device="cpu",
                   seed=args.seed, verbose=False)
    gan_train.run_state(ours).precision = args.precision
    ref = hw5.GAN(device="cpu", seed=args.seed, channels_last=False, verbose=False)
    ref_batches = endless(starter_loader(data_u8, targets))

    # the starter's per-epoch data work alone (PIL transforms + collation), for the projection
    next(ref_batches)
    t0 = time.perf_counter()
    for _ in range(50):
        next(ref_batches)
    data_ms = (time.perf_counter() - t0) / 50 * 1000

    if args.warmup:
        starter_iterations(ref, ref_batches, args.warmup)
        gan_train.train_until(ours, args.warmup)

    ref_ms, ours_ms = [], []
    for rep in range(args.reps):
        t0 = time.perf_counter()
        starter_iterations(ref, ref_batches, args.iters)
        ref_ms.append((time.perf_counter() - t0) / args.iters * 1000)
        t0 = time.perf_counter()
        gan_train.train_until(ours, ours.run.iteration + args.iters)
        ours_ms.append((time.perf_counter() - t0) / args.iters * 1000)
        print(f"  rep {rep + 1}: starter {ref_ms[-1]:7.1f} ms/it   ours ({args.precision}) {ours_ms[-1]:6.1f} ms/it",
              flush=True)

    r, o = statistics.median(ref_ms), statistics.median(ours_ms)
    ref_epoch = r * ITERS_PER_EPOCH / 1000
    ours_epoch = o * ITERS_PER_EPOCH / 1000
    print()
    print(f"{'case':<34}{'ours':>12}{'reference':>12}{'ratio':>9}")
    print(f"{'ms / iteration (incl. data)':<34}{o:>12.1f}{r:>12.1f}{r / o:>8.2f}x")
    print(f"{'s / MNIST epoch (938 its)':<34}{ours_epoch:>12.1f}{ref_epoch:>12.1f}{ref_epoch / ours_epoch:>8.2f}x")
    print(f"starter's data work alone: {data_ms:.1f} ms/batch (~{data_ms * ITERS_PER_EPOCH / 1000:.1f} s/epoch, "
          f"included above); ours preprocesses once: {prep_s:.2f} s per run for all 60,000 images")
    ten = (ours_epoch * 10 + prep_s, ref_epoch * 10)
    print(f"projected 10-epoch run on full MNIST: ours {ten[0] / 60:.1f} min vs starter {ten[1] / 60:.1f} min "
          f"({ten[1] / ten[0]:.2f}x)")


if __name__ == "__main__":
    with common.quiet_exit("bench_gan.py"):
        main()
