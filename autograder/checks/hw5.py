"""hw5 problem 3 (the GAN): everything the grader checks, with its points.

Read top to bottom: the spec (the handout's numbers, each written once), the checks in grading
order with their points, then how each check works. A check is a function ``check_<key>(c)``
that returns None (or a note) for full marks and raises CheckFail for none; ``c.ask(op, ...)``
sends one request to the worker that runs the student's file (see ``autograde_worker.py``).
"""

from __future__ import annotations

import copy
import itertools
import math
import sys

import autograde_worker as W

from ..protocol import (_compare_layers, _compare_outputs, _conv, _enc, _encs, _lrelu, _maxpool, _outputs, _rand,
                        _weights_in_use_order)
from ..registry import Check, CheckFail, WorkerLost, _exp, assemble, sci

# ==========================================================================================
# THE SPEC: the handout's numbers (hw5.txt, problem 3)
# ==========================================================================================
FILE, TITLE, NUMBER = "hw5.py", "hw5 (GAN)", 5
Z_DIM, IMAGE = 128, (1, 32, 32)  # G: (N, 128) -> (N, 1, 32, 32); D: (N, 1, 32, 32) -> (N,)
SLOPE = 0.2  # every LeakyReLU of both tables
TABLE1 = [  # the Discriminator, in order
    _conv(1, 16, 3, 1, 1), _lrelu(SLOPE), _maxpool(2),
    _conv(16, 32, 3, 1, 1), _lrelu(SLOPE), _maxpool(2),
    _conv(32, 64, 3, 1, 1), _lrelu(SLOPE), _maxpool(2),
    _conv(64, 128, 3, 1, 1), _lrelu(SLOPE), _maxpool(4),
    {"type": "Linear", "in": 128, "out": 1, "bias": True}, {"type": "Sigmoid"},
]
TABLE2 = [  # the Generator, in order (its input z viewed as (N, 128, 1, 1))
    _conv(Z_DIM, 64, 4, 1, 0, kind="ConvTranspose2d"), _lrelu(SLOPE),
    _conv(64, 32, 4, 2, 1, kind="ConvTranspose2d"), _lrelu(SLOPE),
    _conv(32, 16, 4, 2, 1, kind="ConvTranspose2d"), _lrelu(SLOPE),
    _conv(16, 1, 4, 2, 1, kind="ConvTranspose2d"), {"type": "Tanh"},
]
D_PARAMS, G_PARAMS = 97_281, 172_401  # the parameter counts of Tables 1 and 2
LR = {"D": 2e-4, "G": 1e-3}  # the starter's Adam learning rates
BATCH = 64  # the starter's batch (and the rows of its z)
# how the grader probes (its choices, not the handout's)
SHAPE_BATCHES = (1, 7, 64)  # the batch sizes of the shape checks
TRAIN_BATCH = 16  # the images of the train check's one-batch loader
TOL_FUNCTION, TOL_V, TOL_GRADS = 1e-5, 1e-5, 1e-4  # relative tolerances (on max(1, |expected|))
TOL_IMAGE = 1e-4  # distance of a real image D saw to the nearest image the loader serves

# the stand-ins sent to the worker for the GAN checks (after the D and G checks are over): the
# tables as data, so a mistake in D or G costs only the D/G checks
STANDIN = {
    "Discriminator": {"args": [], "layers": TABLE1[:12] + [{"type": "View", "shape": [-1, TABLE1[12]["in"]]}] + TABLE1[12:]
                      + [{"type": "View", "shape": [-1]}]},
    "Generator": {"args": [], "layers": [{"type": "View", "shape": [-1, Z_DIM, 1, 1]}] + TABLE2},
}
V_TERMS = [["id", "x"], ["one_minus", "Gz"]]  # V = mean log D(x) + mean log(1 - D(G(z)))
NET = {
    "D": {"cls": "Discriminator", "table": TABLE1, "params": D_PARAMS, "range": (0.0, 1.0), "squash": "Sigmoid",
          "inp": lambda n, seed: _rand(n, *IMAGE, seed=seed, kind="uniform"), "out": lambda n: (n,),
          "inname": "x", "inshape": "(N, 1, 32, 32)"},
    "G": {"cls": "Generator", "table": TABLE2, "params": G_PARAMS, "range": (-1.0, 1.0), "squash": "Tanh",
          "inp": lambda n, seed: _rand(n, Z_DIM, seed=seed), "out": lambda n: (n, *IMAGE),
          "inname": "z", "inshape": "(N, 128)"},
}


def _adam(which):
    return f"Adam, lr {sci(LR[which])}"


_N = ", ".join(map(str, SHAPE_BATCHES))
OWN_NETS = ("D_shape", "D_layers", "D_params", "D_function", "G_shape", "G_layers", "G_params", "G_function")

# ==========================================================================================
# THE CHECKS, in grading order (100 points with the import checks' 6)
# ==========================================================================================
CHECKS = [  # (each row's function, check_<key>, is below; assemble() at the end attaches it)
    Check("D_shape", 6, f"Discriminator: output shape (N,) for N = {_N} and values in (0, 1)"),
    Check("D_layers", 8, "Discriminator: the layers and hyperparameters of Table 1, in order"),
    Check("D_params", 4, f"Discriminator: {_exp(f'{D_PARAMS:,}')} parameters"),
    Check("D_function", 10, f"Discriminator: with the reference's weights, D(x) equals the reference's "
                            f"({sci(TOL_FUNCTION)})"),
    Check("G_shape", 6, f"Generator: output shape (N, 1, 32, 32) for N = {_N} and values in (-1, 1)"),
    Check("G_layers", 8, "Generator: the layers and hyperparameters of Table 2, in order"),
    Check("G_params", 4, f"Generator: {_exp(f'{G_PARAMS:,}')} parameters"),
    Check("G_function", 10, f"Generator: with the reference's weights, G(z) equals the reference's "
                            f"({sci(TOL_FUNCTION)})"),
    # the checks below send the stand-ins (the tables as data): only after the student's own D and G
    Check("V_value", 12, f"calculate_V: equals mean log D(x) + mean log(1 - D(G(z))) ({sci(TOL_V)})", after=OWN_NETS),
    Check("V_grads", 8, "calculate_V: its gradients wrt D's and G's parameters equal the reference's",
          after=OWN_NETS),
    Check("D_optimizer", 4, f"GAN().D_optimizer: {_exp(_adam('D'))}, over exactly D's parameters", after=OWN_NETS),
    Check("G_optimizer", 4, f"GAN().G_optimizer: {_exp(_adam('G'))}, over exactly G's parameters", after=OWN_NETS),
    Check("train", 10, "GAN().train(1) on a one-batch loader from weights the grader sets: D's Adam step ascends V, "
                       "then G's descends it, from zeroed gradients (exact to rounding)", after=OWN_NETS),
]


# ==========================================================================================
# HOW EACH CHECK WORKS
# ==========================================================================================
def _standin(name, seed):
    import torch

    torch.manual_seed(seed)
    return W.standin_class(name, STANDIN[name])()


def _check_net_shape(c, which):
    import torch

    spec = NET[which]
    lo, hi = spec["range"]
    inputs = [spec["inp"](n, n) for n in SHAPE_BATCHES]
    big = spec["inp"](7, 13)
    steps = [{"input": _enc(x)} for x in inputs] + [{"perturb": 12, "scale": 0.5}, {"input": _enc(big)}]
    what = f"{which}({spec['inname']})"
    outs = _outputs(c.ask("forward", cls=spec["cls"], args=[], seed=11, what=what, steps=steps), 4)
    for x, got in zip(inputs, outs):
        n = x.shape[0]
        out = got.tensor()
        if out is None:
            raise CheckFail(f"{what} returned {got.describe()}, not a tensor")
        if tuple(out.shape) != spec["out"](n):
            raise CheckFail(f"{what} for {spec['inname']} of shape {tuple(x.shape)} has shape "
                            f"{tuple(out.shape)}, expected {spec['out'](n)}")  # (the handout's shapes)
        if not torch.isfinite(out).all():
            raise CheckFail(f"{what} contains NaN or inf")
        if not ((out > lo) & (out < hi)).all():
            raise CheckFail(f"{what} must lie in ({lo:g}, {hi:g}); found values from "
                            f"{out.min().item():.4g} to {out.max().item():.4g}")
    out = outs[3].tensor()  # larger random weights: a missing squashing layer shows up
    if out is not None and not ((out >= lo) & (out <= hi)).all():
        raise CheckFail(f"with larger random weights, {what} leaves [{lo:g}, {hi:g}] "
                        f"({out.min().item():.4g} to {out.max().item():.4g}): is the final {spec['squash']} missing?")


def _check_net_layers(c, which):
    spec = NET[which]
    r = c.ask("trace", cls=spec["cls"], args=[], seed=14, input=_enc(spec["inp"](2, 15)))
    _compare_layers(r["ops"], spec["table"], f"{which}'s forward pass", error=r["error"])


def _check_net_params(c, which):
    spec = NET[which]
    n = c.ask("trace", cls=spec["cls"], args=[], seed=0)["params"]
    if n != spec["params"]:
        raise CheckFail(f"{spec['cls']} has {n:,} parameters, expected {_exp(format(spec['params'], ','))}")


def _check_net_function(c, which):
    import torch

    spec = NET[which]
    torch.manual_seed(16)
    ref = getattr(c.ref, spec["cls"])()
    probe = spec["inp"](2, 17)
    params, buffers = _weights_in_use_order(ref, probe)
    ref.train()
    x = spec["inp"](5, 18)
    with torch.no_grad():
        want = ref(x)
    what = f"{which}({spec['inname']})"
    r = c.ask("function", cls=spec["cls"], args=[], seed=16, probe=_enc(probe), params=_encs(params), hide=c.hide_expected,
              buffers=_encs(buffers), mode="train", inputs=[_enc(x)], what=what, what_net=spec["cls"])
    _compare_outputs(_outputs(r, 1)[0], want, f"{what} with the reference's weights", TOL_FUNCTION)


def check_D_shape(c):
    _check_net_shape(c, "D")


def check_D_layers(c):
    _check_net_layers(c, "D")


def check_D_params(c):
    _check_net_params(c, "D")


def check_D_function(c):
    _check_net_function(c, "D")


def check_G_shape(c):
    _check_net_shape(c, "G")


def check_G_layers(c):
    _check_net_layers(c, "G")


def check_G_params(c):
    _check_net_params(c, "G")


def check_G_function(c):
    _check_net_function(c, "G")


def _v_setup():
    """Stand-in D and G (D pushed away from 1/2 so the real and fake terms differ), x and z."""
    import torch
    from torch import nn

    D, G = _standin("Discriminator", 21), _standin("Generator", 22)
    with torch.no_grad():
        [m for m in D.modules() if isinstance(m, nn.Linear)][-1].bias.add_(1.0)
    return D, G, _rand(6, *IMAGE, seed=22, kind="uniform"), _rand(6, Z_DIM, seed=23)


def _v_reference(D, G, x, z, dtype):
    import torch

    d_real, d_fake = D(x).to(dtype).reshape(-1), D(G(z)).to(dtype).reshape(-1)
    log_real = torch.clamp(torch.log(d_real), min=-100)
    log_fake = torch.clamp(torch.log(1 - d_fake), min=-100)
    return log_real.mean(), log_fake.mean(), torch.clamp(torch.log(d_fake), min=-100).mean()


def _ask_v(c, D, G, x, z, grads):
    return c.ask("V", standin=STANDIN, D=_encs(D.parameters()), G=_encs(G.parameters()), x=_enc(x), z=_enc(z),
                 grads=grads)


def check_V_value(c):
    import torch

    D, G, x, z = _v_setup()
    with torch.no_grad():
        real, fake, fake_nonsat = (t.item() for t in _v_reference(D, G, x, z, torch.float64))
    V = _ask_v(c, D, G, x, z, False)["value"]
    if V.kind == "tensor":
        if V.payload.numel() != 1:
            raise CheckFail(f"calculate_V returned a tensor of shape {tuple(V.payload.shape)}, expected a single "
                            f"number (the mean over the batch)")
        v = V.payload.double().item()
    elif V.kind == "number":
        v = V.payload
    else:
        raise CheckFail(f"calculate_V returned {V.payload}, expected a 0-dim tensor")
    want = real + fake
    n = x.shape[0]

    def close(a, b):
        return math.isfinite(a) and abs(a - b) <= TOL_V * max(1.0, abs(b))

    if close(v, want):
        return None
    diagnoses = [
        (-want, f"your V equals -V: a sign error{_exp(' (BCELoss is -log, so V = -(BCE(D(x), 1) + BCE(D(G(z)), 0)))')}"),
        (n * want, f"your V is the sum over the batch, not the mean ({n} times too large)"),
        (-n * want, "your V is minus the sum over the batch (sign and reduction errors)"),
        (want / 2, "your V is half the expected value (averaged over 2N terms instead of two means of N)"),
        (-want / 2, "your V is -V/2 (sign error, and averaged over 2N terms)"),
        (real, "your V is only the real-data term mean log D(x); the term mean log(1 - D(G(z))) is missing"),
        (fake, "your V is only the fake-data term mean log(1 - D(G(z))); the term mean log D(x) is missing"),
        (real + fake_nonsat, "your V uses log D(G(z)) where the formula has log(1 - D(G(z)))"),
        (-(real + fake_nonsat), "your V is -(mean log D(x) + mean log D(G(z))): sign error and "
                                "log D(G(z)) in place of log(1 - D(G(z)))"),
    ]
    for value, message in diagnoses:
        if close(v, value):
            raise CheckFail(f"{message} (got {v:.6f}, expected {_exp(f'{want:.6f}')})")
    raise CheckFail(f"calculate_V(x, z) = {v:.6f}, expected mean log D(x) + mean log(1 - D(G(z))) = {_exp(f'{want:.6f}')}")


def check_V_grads(c):
    import torch

    D, G, x, z = _v_setup()
    r = _ask_v(c, D, G, x, z, True)
    V = r["value"]
    if V.kind != "tensor":
        raise CheckFail(f"calculate_V returned {'a Python number' if V.kind == 'number' else V.payload}, not a "
                        f"tensor: V must be a torch tensor computed from D's outputs so that it has a gradient")
    if not r["requires_grad"]:
        raise CheckFail("calculate_V returned a value without a gradient (use torch operations on the outputs of "
                        "D and G; no .item(), float() or .detach())")
    if V.payload.numel() != 1:
        raise CheckFail(f"calculate_V returned a tensor of shape {tuple(V.payload.shape)}, expected a single number")
    real, fake, _ = _v_reference(D, G, x, z, torch.float32)
    (real + fake).backward()
    num = den = 0.0
    errors = []
    for which, net, got in (("D", D, r["grads_D"]), ("G", G, r["grads_G"])):
        params = list(net.parameters())
        if got is None or len(got) != len(params):
            raise WorkerLost("the grader received a damaged reply (gradients missing)")
        grads = []
        for v, p in zip(got, params):
            t = v.tensor()
            if t is not None and tuple(t.shape) != tuple(p.shape):
                raise WorkerLost("the grader received a damaged reply (gradient of the wrong shape)")
            grads.append(t)
        if all(g is None or not g.abs().sum() for g in grads):
            hint = " (is G(z) detached, or computed under torch.no_grad()?)" if which == "G" else ""
            errors.append(f"no gradient reaches {which}'s parameters{hint}")
            continue
        worst = 0.0
        for g, p in zip(grads, params):
            g = (g if g is not None else torch.zeros_like(p.grad)).double()
            ref = p.grad.double()
            if not torch.isfinite(g).all():
                worst = math.inf
                continue
            num += float((g * ref).sum())
            den += float((ref * ref).sum())
            worst = max(worst, (g - ref).abs().max().item() / max(ref.abs().max().item(), 1e-12))
        if worst > TOL_GRADS:
            errors.append(f"the gradient wrt {which}'s parameters differs from the reference's (relative error "
                          f"{worst:.3g})")
    if errors:
        msg = "; ".join(errors)
        if den > 0:
            alpha = num / den
            if abs(alpha + 1) < 1e-2:
                msg += " - your gradients are the negatives of the reference's (sign error in V)"
            elif abs(alpha - x.shape[0]) < 1e-2 * x.shape[0]:
                msg += f" - your gradients are {x.shape[0]} times the reference's (sum instead of mean)"
        raise CheckFail(msg)


def _check_adam(c, which):
    lr = LR[which]
    r = c.ask("optimizer", standin=STANDIN, which=which)
    name = f"{which}_optimizer"
    if not r["has_optimizer"]:
        raise CheckFail(f"GAN() has no attribute {name} (the assignment's GAN.__init__ creates both optimizers)")
    if not r["has_model"]:
        raise CheckFail(f"GAN() has no attribute {which}")
    if not r["is_adam"]:
        raise CheckFail(f"{name} is {r['type']}, expected {_exp('torch.optim.Adam')}")
    for got in r["lrs"]:
        if not math.isclose(got, lr, rel_tol=1e-9):
            raise CheckFail(f"{name} has learning rate {got:g}, expected {_exp(f'{lr:g}')}")
    if not r["lrs"]:
        raise CheckFail(f"{name} has no parameter groups")
    n = len(list(_standin(NET[which]["cls"], 0).parameters()))
    want = {f"{which}{i}" for i in range(n)}
    got = set(r["params"])
    other = "G" if which == "D" else "D"
    if got != want:
        if any(p.startswith(other) for p in got):
            raise CheckFail(f"{name} optimizes (some of) {other}'s parameters; it must optimize {which}'s")
        raise CheckFail(f"{name} optimizes {len(got & want)} of {which}'s {len(want)} parameter tensors and "
                        f"{len(got - want)} others; it must optimize exactly {which}.parameters()")


def check_D_optimizer(c):
    _check_adam(c, "D")


def check_G_optimizer(c):
    _check_adam(c, "G")


GARBAGE_SEED = 42  # the worker fills every .grad with randn from this seed before train(1)


def _tiny_images(n=TRAIN_BATCH, seed=31):
    return _rand(n, *IMAGE, seed=seed, kind="uniform").clamp(-1, 1)


def check_train(c):
    import torch

    D0, G0 = _standin("Discriminator", 41), _standin("Generator", 42)
    r = c.ask("train", standin=STANDIN, D=_encs(D0.parameters()), G=_encs(G0.parameters()), v_terms=V_TERMS,
              images=_enc(_tiny_images()), seed=41, garbage_seed=GARBAGE_SEED)
    if r["error"]:
        if r["network"]:
            raise CheckFail(f"train tried to download (blocked: {r['network'][0]}): the autograder replaces "
                            f"get_data_loader and torchvision.datasets.MNIST with 16 in-memory images; load "
                            f"data through them")
        raise CheckFail(f"GAN().train(1) raised {r['error']}")
    if r["network"]:
        raise CheckFail(f"train opened a network connection ({r['network'][0]}, blocked)")
    if not r["same_nets"]:
        raise CheckFail("train replaced D or G")
    D, G = copy.deepcopy(D0), copy.deepcopy(G0)
    for net, got in ((D, r["D"]), (G, r["G"])):
        params = list(net.parameters())
        if len(got) != len(params) or any(tuple(t.shape) != tuple(p.shape) for t, p in zip(got, params)):
            raise WorkerLost("the grader received a damaged reply (parameters of the wrong shape)")
        with torch.no_grad():
            for p, t in zip(params, got):
                p.copy_(t.float())
    if not all(torch.isfinite(p).all() for p in itertools.chain(D.parameters(), G.parameters())):
        raise CheckFail("after train(1) some weights of D or G are NaN or inf")
    moved_d = any(not torch.equal(a, b) for a, b in zip(D0.parameters(), D.parameters()))
    moved_g = any(not torch.equal(a, b) for a, b in zip(G0.parameters(), G.parameters()))
    if not moved_d or not moved_g:
        who = " and ".join(w for w, moved in (("D", moved_d), ("G", moved_g)) if not moved)
        raise CheckFail(f"after train(1) on one batch, the weights of {who} did not change (is its optimizer "
                        f"stepped?)")
    reals, zs = r["reals"], r["zs"]
    ok_real = all(t.dim() == 4 and tuple(t.shape[1:]) == IMAGE and 0 < len(t) <= BATCH
                  and bool(torch.isfinite(t).all()) for t in reals)
    ok_z = all(t.numel() % Z_DIM == 0 and 0 < t.numel() <= BATCH * Z_DIM and bool(torch.isfinite(t).all()) for t in zs)
    if not ok_real or not ok_z:
        raise CheckFail("train(1) fed D or G inputs of unexpected shapes or values (D takes finite (N, 1, 32, 32), "
                        "G finite (N, 128))")
    _check_train_data(reals[0], torch.cat([t.reshape(-1) for t in zs]))
    lrs = {w: (lr if lr > 0 else LR[w]) for w, lr in zip("DG", r["lrs"] + [-1, -1])}
    _check_train_steps(D0, G0, D, G, [t.float() for t in reals], [t.float().reshape(-1, Z_DIM) for t in zs], lrs,
                       garbage_seed=GARBAGE_SEED)


def _loader_images():
    """Every image train(1) may feed D as real: the batch the worker's get_data_loader serves
    (the grader's images), and, for a loader built on datasets.MNIST, the stand-in MNIST's
    digits through Resize(32) and ToTensor, with or without the course's Normalize(0.5, 0.5)."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision import transforms

    g = torch.Generator().manual_seed(W.MNIST_STANDIN_SEED)
    digits = torch.randint(0, 256, (TRAIN_BATCH, 28, 28), generator=g, dtype=torch.uint8)
    resized = transforms.Compose([transforms.Resize(IMAGE[1]), transforms.ToTensor()])  # in [0, 1]
    mnist = torch.stack([resized(Image.fromarray(np.asarray(d), mode="L")) for d in digits]).float()
    return torch.cat([_tiny_images(), mnist * 2 - 1, mnist]).reshape(3 * TRAIN_BATCH, -1)  # normalized or not


def _check_train_data(x, z):
    """D's real batch must come from the data loader (every row one of its images), and z from
    N(0, I) (torch.randn): a loop that trains on noise, rescaled images or uniform z is not the
    starter's, even where Adam's first step (lr * sign(grad)) cannot tell."""
    import torch

    rows = x.reshape(len(x), -1)
    if rows.shape[1] != IMAGE[0] * IMAGE[1] * IMAGE[2]:
        return  # (shapes were checked before)
    gap = torch.cdist(rows.double(), _loader_images().double()).min(dim=1).values.max().item()
    if gap > TOL_IMAGE:
        raise CheckFail("train(1) fed D a real batch that is not the data loader's images (x must come from "
                        "self.data_loader, as the starter's loop takes it, without rescaling)")
    if z.numel() >= 1024 and not (abs(z.mean().item()) < 0.15 and 0.85 < z.std().item() < 1.15):
        raise CheckFail(f"the z fed to G has mean {z.mean().item():.2f} and standard deviation {z.std().item():.2f}: "
                        f"z must be drawn from N(0, I) (torch.randn)")


def _check_train_steps(D0, G0, D, G, reals, zs, lrs, garbage_seed=None):
    """The one iteration on one batch must equal, to rounding, the starter's D step (Adam, lr
    LR['D'], ascending V, gradients zeroed first) followed by its G step (Adam, lr LR['G'], descending
    V through the updated D), computed here on copies of the weights train() started from, with
    the batch and the z the submission used. Adam's first step is lr * sign(grad), so a step in
    the wrong direction, stale gradients or a G step that never reaches G differ in most entries.
    ``garbage_seed``: the seed of the garbage the worker put in every .grad (the zero_grad() hint
    is given only when the weights match the starter's step without it)."""
    import torch

    if not reals or not zs:
        raise CheckFail("train(1) never called D on a real batch and G on z (use self.D and self.G)")
    x, z_d, z_g = reals[0], zs[0], zs[-1]

    def starter(zero_d=True, zero_g=True):
        """The starter's iteration on copies; ``zero_*=False``: that zero_grad() left out, so the
        garbage the worker put in every .grad (and the D step's gradient reaching G) stays."""
        Dq, Gq = copy.deepcopy(D0).float().cpu(), copy.deepcopy(G0).float().cpu()
        if garbage_seed is not None:
            g = torch.Generator().manual_seed(garbage_seed)
            for p in itertools.chain(Dq.parameters(), Gq.parameters()):
                p.grad = torch.randn(p.shape, generator=g, dtype=torch.float32)
        opt_d = torch.optim.Adam(Dq.parameters(), lr=lrs["D"])
        opt_g = torch.optim.Adam(Gq.parameters(), lr=lrs["G"])
        if zero_d:
            opt_d.zero_grad()
        real, fake, _ = _v_reference(Dq, Gq, x, z_d, torch.float32)
        (-(real + fake)).backward()
        opt_d.step()
        if zero_g:
            opt_g.zero_grad()
        real, fake, _ = _v_reference(Dq, Gq, x, z_g, torch.float32)
        (real + fake).backward()
        opt_g.step()
        return Dq, Gq

    Dq, Gq = starter()

    def compare(got_net, want_net, start_net, lr):
        got = torch.cat([p.detach().float().reshape(-1) for p in got_net.parameters()])
        want = torch.cat([p.detach().reshape(-1) for p in want_net.parameters()])
        start = torch.cat([p.detach().float().reshape(-1) for p in start_net.parameters()])
        if not (torch.isfinite(want).all() and torch.isfinite(got).all()):
            return 1.0, 0.0, 0.0  # NaN compares as "close" to nothing: never a pass
        bad = ~((got - want).abs() <= lr / 4)
        off = bad.float().mean().item()
        # each tensor on its own too: a whole small layer left out (frozen, not in the optimizer)
        # is well under 1% of all weights; a tensor fails with more than half its entries off
        # (rounding flips the sign of Adam's first step only where |grad| ~ 1e-8: a few entries)
        shapes = [tuple(p.shape) for p in want_net.parameters()]
        sizes = [p.numel() for p in want_net.parameters()]
        for i, (b, n) in enumerate(zip(torch.split(bad, sizes), sizes)):
            if off <= 0.01 and int(b.sum()) > max(2, n // 2):
                raise CheckFail(f"after one training iteration, parameter {i} (shape {shapes[i]}) of "
                                f"{'D' if lr == lrs['D'] else 'G'} differs from the starter's Adam step in "
                                f"{int(b.sum())} of its {n} entries: is every parameter trained (none frozen, "
                                "all in the optimizer)?")
        moving = (want - start).abs() > lr / 4  # entries Adam moves by about lr
        flipped = ((got - start) + (want - start))[moving].abs().lt(lr / 4).float().mean().item()
        still = (got - start).abs().lt(lr / 4).float().mean().item()
        return off, flipped, still

    def matches(got_net, want_net, start_net, lr):
        try:
            return compare(got_net, want_net, start_net, lr)[0] <= 0.01
        except CheckFail:
            return False

    off, flipped, still = compare(D, Dq, D0, lrs["D"])
    if off > 0.01:
        if flipped > 0.9:
            raise CheckFail("the D step descends V: D must maximize V (minimize -V), i.e. "
                            "(-calculate_V(x, z)).backward() before D_optimizer.step()")
        hint = ""
        if garbage_seed is not None and matches(D, starter(zero_d=False)[0], D0, lrs["D"]):
            hint = ": is D_optimizer.zero_grad() called before the backward pass?"
        raise CheckFail(f"the D step differs from the starter's ({_exp(_adam('D'))}, ascending V from zeroed gradients) "
                        f"in {off:.0%} of D's weights{hint}")
    off, flipped, still = compare(G, Gq, G0, lrs["G"])
    if off > 0.01:
        if flipped > 0.9:
            raise CheckFail("the G step ascends V: G must minimize V (calculate_V(x, z).backward() before "
                            "G_optimizer.step())")
        if still > 0.9:
            raise CheckFail("the G step did not move G's weights as Adam would: does the gradient reach G "
                            "(no .detach() / no_grad on G(z) or D in the G step)?")
        hint = ""
        if garbage_seed is not None and matches(G, starter(zero_g=False)[1], G0, lrs["G"]):
            hint = ": is G_optimizer.zero_grad() called before its backward pass?"
        raise CheckFail(f"the G step differs from the starter's ({_exp(_adam('G'))}, descending V with the updated D, "
                        f"from zeroed gradients) in {off:.0%} of G's weights{hint}")




CHECKS = assemble(CHECKS, sys.modules[__name__])  # attaches each check_<key>; asserts the order
