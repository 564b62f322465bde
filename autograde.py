"""Grade a student's hw5.py (GAN) or hw2_ResNet.py (ResNet) against the reference, safely.

    python autograde.py SUBMISSION [--results PATH] [--timeout SECONDS] [--json-only]
                        [--visibility [KEY=]LEVEL] [--hide-expected]
    python autograde.py --gradescope-bundle hw5|hw2 OUT.zip [--visibility ...] [--hide-expected]

SUBMISSION is a ``hw5.py``, a ``hw2_ResNet.py`` or a folder holding one or both; the file name
says which assignment it is. Each check is declared below with ``@check(assignment, key,
points, description, visibility)``; ``POINTS`` lists them in grading order (docs/autograder.md
shows the same table). ``--hide-expected`` replaces the expected values in messages (marked
with ``_exp``) by "[hidden]"; ``--visibility`` overrides a check's Gradescope visibility.

Trust boundary. This file is the trusted side: it never imports the submission. It holds the
reference, draws every input and weight, computes every expected value itself and makes every
comparison. The submission runs in ``autograde_worker.py`` (the untrusted side), in a separate
process started from a scratch folder holding only the worker file and a copy of the
submission; as root, that process runs as ``nobody`` in its own mount/PID/network namespaces,
with the grader's folder hidden. The worker answers one request at a time with raw data
(tensors as dtype + shape + bytes, layer traces, counts, exception texts), which this side
parses against a strict schema: a malformed, extra or unexpected reply earns nothing. Each check
has its own time limit; after a crash, timeout or memory-limit hit the worker is restarted (the
submission re-imported) for the remaining checks.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import errno
import itertools
import json
import math
import os
import re
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile

import autograde_worker as W  # the trusted copy: its tracer and stand-in builder run on the reference

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER_FILE = os.path.join(HERE, "autograde_worker.py")

ASSIGNMENTS = {
    "hw5": {"file": "hw5.py", "number": 5, "title": "hw5 (GAN)"},
    "hw2": {"file": "hw2_ResNet.py", "number": 2, "title": "hw2 (ResNet)"},
}
FILE_TO_ASSIGNMENT = {v["file"]: k for k, v in ASSIGNMENTS.items()}

DEFAULT_TIMEOUT = 60.0  # seconds for importing the submission (each worker start)
DEFAULT_MEMORY_MB = 4096  # RLIMIT_AS of the worker (torch itself needs ~2 GB of address space)
CHECK_LIMIT_FRACTION = 0.25  # one check (other than the import) may use this share of --timeout ...
CHECK_LIMIT_MIN = 5.0  # ... but never less than this many seconds; each check has its own limit
FILE_SIZE_LIMIT = 64 * 2**20  # RLIMIT_FSIZE: no file the submission writes grows beyond 64 MB
OUTPUT_CAP = 8192  # bytes of the submission's stdout/stderr kept per assignment (the rest is counted)
MESSAGE_CAP = W.MESSAGE_CAP  # characters of one check's message
MAX_SOURCE_BYTES = 2 * 2**20  # a larger "source file" is not graded
MAX_REPLY_BYTES = 64 * 2**20  # a longer reply line is a protocol violation
EXIT_MISUSE = 2
MAX_MEMORY_MB = 1 << 20  # 1 TB: larger values are a typo (and overflow RLIMIT_AS on some systems)
WORKER_UID = 65534  # nobody: the worker's user when the grader runs as root

# ------------------------------------------------------------------------------------------
# THE POINT TABLE: filled by @check below, in grading order (import and import_quiet first).
# ------------------------------------------------------------------------------------------
_IMPORT_ROWS = (("import", 4, "imports alone, without error, within the time limit"),
                ("import_quiet", 2, "importing prints nothing, writes no file, opens no network connection"))
POINTS = {a: list(_IMPORT_ROWS) for a in ASSIGNMENTS}
CHECK_FUNCTIONS = {}
# Gradescope's per-test visibility; a check's default is declared with it, and
# --visibility KEY=LEVEL (or LEVEL, for every check) overrides it for one grading or bundle
VISIBILITY_LEVELS = ("visible", "after_published", "after_due_date", "hidden")
VISIBILITY = {"import": "visible", "import_quiet": "visible"}


def check(assignment, key, points, description, visibility="visible"):
    """Declare a check: ``fn(ctx)`` returns None or a message (full marks), raises CheckFail (0)."""
    assert visibility in VISIBILITY_LEVELS, visibility

    def register(fn):
        assert key not in CHECK_FUNCTIONS and key not in ("import", "import_quiet"), key
        POINTS[assignment].append((key, points, description))
        CHECK_FUNCTIONS[key] = fn
        VISIBILITY[key] = visibility
        return fn

    return register


# An expected value in a message is marked with _exp(); render() shows it, or with
# --hide-expected replaces it by "[hidden]" (students then cannot read answers off the grader).
_EXPECTED = re.compile("\x02(.*?)\x03", re.S)


def _exp(value):
    return f"\x02{value}\x03"


def render(message, hide_expected=False):
    """A check's message as a student sees it: expected values shown or hidden."""
    return _EXPECTED.sub("[hidden]" if hide_expected else lambda m: m.group(1), message)


def total_points(assignment):
    return sum(points for _, points, _ in POINTS[assignment])


class CheckFail(Exception):
    """A check failed: the message says why; the check scores 0."""


class WorkerLost(Exception):
    """The worker died, overran the check's limit, or broke the protocol: the check scores 0
    with this message and a new worker grades the remaining checks."""


_short = W.short


# ---------------------------------------------------------------------- reply schemas
class _Value:
    """A value the student's code returned: kind "tensor" (t), "number" (x) or "type" (name)."""

    def __init__(self, kind, payload):
        self.kind, self.payload = kind, payload

    def tensor(self):
        return self.payload if self.kind == "tensor" else None

    def describe(self):
        return {"tensor": "a tensor", "number": "a number"}.get(self.kind, str(self.payload))


TENSOR, VALUE, OP = "tensor", "value", "op"


def _opt(schema):
    return ("optional", schema)


SCHEMAS = {
    "import": {"ok": bool, "error": str, "network": [str]},
    "forward": {"outputs": [VALUE]},
    "trace": {"ops": [OP], "error": str, "params": int, "conv_bias": [str], "conv_bias_params": int},
    "function": {"outputs": [VALUE], "zeroed": [str]},
    "V": {"value": VALUE, "requires_grad": bool, "grads_D": _opt([VALUE]), "grads_G": _opt([VALUE])},
    "optimizer": {"has_model": bool, "has_optimizer": bool, "type": str, "is_adam": bool, "lrs": [float],
                  "params": [str]},
    "train": {"error": str, "network": [str], "lrs": [float], "same_nets": bool, "D": [TENSOR], "G": [TENSOR],
              "reals": [TENSOR], "zs": [TENSOR], "n_z": int},
}
_MAX_LIST = 5000
_MAX_STR = 20000


def _unmark(text):
    """A string from the worker without the markers of expected values (those are the grader's)."""
    return text.replace("\x02", "").replace("\x03", "")


def _parse(obj, schema, where="reply"):
    """``obj`` checked against ``schema`` (tensors decoded, values wrapped); ValueError if not."""
    if schema is bool:
        if type(obj) is not bool:
            raise ValueError(f"{where}: expected a boolean")
        return obj
    if schema is int:
        if type(obj) is not int:
            raise ValueError(f"{where}: expected an integer")
        return obj
    if schema is float:
        if type(obj) not in (int, float) or not math.isfinite(obj):
            raise ValueError(f"{where}: expected a finite number")
        return float(obj)
    if schema is str:
        if type(obj) is not str or len(obj) > _MAX_STR:
            raise ValueError(f"{where}: expected a string")
        return _unmark(obj)
    if schema == TENSOR:
        return W.decode_tensor(obj)
    if schema == VALUE:
        if not isinstance(obj, dict) or len(obj) != 1:
            raise ValueError(f"{where}: expected a value")
        (kind, payload), = obj.items()
        if kind == "tensor":
            return _Value("tensor", W.decode_tensor(payload))
        if kind == "number" and type(payload) in (int, float):
            return _Value("number", float(payload))
        if kind == "type" and type(payload) is str and len(payload) < 200:
            return _Value("type", _unmark(payload))
        raise ValueError(f"{where}: expected a value")
    if schema == OP:
        if not isinstance(obj, dict) or type(obj.get("type")) is not str or len(obj) > 12:
            raise ValueError(f"{where}: expected a layer description")
        for k, v in obj.items():
            ok = (type(v) in (int, float, bool, str) or v is None
                  or (type(v) is list and len(v) <= 4 and all(type(x) is int for x in v)))
            if type(k) is not str or not ok or (type(v) is str and len(v) > 100):
                raise ValueError(f"{where}: expected a layer description")
        return {k: _unmark(v) if type(v) is str else v for k, v in obj.items()}
    if isinstance(schema, tuple) and schema[0] == "optional":
        return None if obj is None else _parse(obj, schema[1], where)
    if isinstance(schema, list):
        if type(obj) is not list or len(obj) > _MAX_LIST:
            raise ValueError(f"{where}: expected a list")
        return [_parse(x, schema[0], f"{where}[{i}]") for i, x in enumerate(obj)]
    if isinstance(schema, dict):
        if not isinstance(obj, dict) or set(obj) != set(schema):
            raise ValueError(f"{where}: expected exactly the fields {sorted(schema)}")
        return {k: _parse(obj[k], s, f"{where}.{k}") for k, s in schema.items()}
    raise TypeError(schema)


def parse_reply(op, line, nonce):
    """The parsed data of one reply line to request ``nonce`` (op ``op``); ValueError if malformed.
    A {"fail": message} reply parses to {"fail": message}."""
    if len(line) > MAX_REPLY_BYTES:
        raise ValueError("reply too long")
    env = json.loads(line)
    if not isinstance(env, dict) or set(env) != {"id", "data"} or env["id"] != nonce:
        raise ValueError("a reply that does not answer the pending request")
    data = env["data"]
    if isinstance(data, dict) and set(data) == {"fail"}:
        return {"fail": _parse(data["fail"], str, "fail")}
    return _parse(data, SCHEMAS[op])


# ---------------------------------------------------------------------- the trusted context
class _Ctx:
    """What a check needs: the reference module, the channel to the worker, and helpers."""

    def __init__(self, assignment, reference, channel, label, hide_expected=False):
        self.assignment = assignment
        self.ref = reference
        self.channel = channel
        self.label = label
        self.hide_expected = hide_expected  # the worker's own messages then name no reference shape
        self.deadline = None  # set per check by the grader

    def ask(self, op, **fields):
        """Send one request; returns the parsed reply (CheckFail for a {"fail"} reply)."""
        data = self.channel.ask(op, fields, self.deadline)
        if "fail" in data:
            raise CheckFail(data["fail"])
        return data


def _enc(t):
    return W.encode_tensor(t)


def _encs(tensors):
    return [W.encode_tensor(t) for t in tensors]


def _rand(*shape, seed=0, kind="normal"):
    import torch

    g = torch.Generator().manual_seed(seed)
    if kind == "normal":
        return torch.randn(*shape, generator=g)
    return torch.rand(*shape, generator=g) * 2 - 1  # uniform in [-1, 1): image-like


def _fmt_op(op):
    t = op["type"]

    def f(v):
        return tuple(v) if isinstance(v, list) else v

    if t in ("Conv2d", "ConvTranspose2d"):
        extra = ""
        if op.get("dilation", 1) != 1:
            extra += f", dilation {f(op['dilation'])}"
        if op.get("groups", 1) != 1:
            extra += f", groups {op['groups']}"
        return (f"{t}({op.get('in')}->{op.get('out')}, kernel {f(op.get('kernel'))}, stride {f(op.get('stride'))}, "
                f"padding {f(op.get('padding'))}{extra}{', bias' if op.get('bias') else ', no bias'})")
    if t == "Linear":
        return f"Linear({op.get('in')}->{op.get('out')}{', bias' if op.get('bias') else ', no bias'})"
    if t == "LeakyReLU":
        slope = op.get("slope")
        return f"LeakyReLU(slope {slope:g})" if isinstance(slope, (int, float)) else "LeakyReLU"
    if t in ("MaxPool2d", "AvgPool2d"):
        return f"{t}(kernel {f(op.get('kernel'))}, stride {f(op.get('stride'))}, padding {f(op.get('padding'))})"
    if t == "AdaptiveAvgPool2d":
        return f"AdaptiveAvgPool2d({f(op.get('size'))})"
    if t == "BatchNorm2d":
        return f"BatchNorm2d({op.get('features')})"
    return t[:40]


def _same_op(a, b, ignore=()):
    if a["type"] != b["type"]:
        return False
    for k in set(a) | set(b):
        if k in ignore or k == "type":
            continue
        x, y = a.get(k), b.get(k)
        if isinstance(x, float) or isinstance(y, float):
            if not isinstance(x, (int, float)) or not isinstance(y, (int, float)) or not math.isclose(
                    float(x), float(y), rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif x != y:
            return False
    return True


def _compare_layers(ops, expected, what, ignore=(), error=""):
    """CheckFail naming the first difference between executed and expected layers."""
    got = list(ops)
    for i, want in enumerate(expected):
        if i >= len(got):
            if error:
                raise CheckFail(f"{what}: the forward pass raised {error} after layer {i} "
                                f"({_fmt_op(got[-1]) if got else 'none'}); layer {i + 1} should be {_exp(_fmt_op(want))}")
            raise CheckFail(f"{what}: {len(got)} layers ran, expected {_exp(len(expected))}; layer {i + 1} "
                            f"({_exp(_fmt_op(want))}) is missing")
        if not _same_op(got[i], want, ignore):
            raise CheckFail(f"{what}: layer {i + 1} is {_fmt_op(got[i])}, expected {_exp(_fmt_op(want))}")
    if len(got) > len(expected):
        extra = ", ".join(_fmt_op(op) for op in got[len(expected):][:3])
        raise CheckFail(f"{what}: {len(got)} layers ran, expected {_exp(len(expected))}; extra after the last one: {extra}")
    if error:
        raise CheckFail(f"{what}: the forward pass raised {error}")


def _compare_outputs(got, want, what, tol=1e-5):
    """``got`` (a _Value from the worker) against the reference's tensor ``want``."""
    import torch

    t = got.tensor() if isinstance(got, _Value) else None
    if t is None:
        raise CheckFail(f"{what} returned {got.describe() if isinstance(got, _Value) else 'nothing'}, not a tensor")
    if t.numel() != want.numel():
        raise CheckFail(f"{what} has shape {tuple(t.shape)}, the reference's has {_exp(tuple(want.shape))}")
    g, w = t.double().reshape(-1), want.detach().double().reshape(-1)
    if not torch.isfinite(g).all():
        raise CheckFail(f"{what} contains NaN or inf")
    err = (g - w).abs().max().item()
    scale = max(1.0, w.abs().max().item())
    if err > tol * scale:
        raise CheckFail(f"{what} differs from the reference's by up to {err:.3g} (tolerance {tol:g}) although "
                        f"both use the same weights: check the order of layers, the activations and forward()")


def _outputs(reply, n):
    outs = reply["outputs"]
    if len(outs) != n:
        raise WorkerLost(f"the grader received {len(outs)} outputs where it asked for {n} (a forged or "
                         f"damaged reply)")
    return outs


def _weights_in_use_order(model, probe):
    """The reference's parameters and buffers in order of first use (its forward on ``probe``)."""
    model.eval()
    _, used, _, error = W.trace(model, probe)
    if error is not None:
        raise RuntimeError(f"the reference failed on the probe: {error}")
    return W.ordered_tensors(model, used, "param"), W.ordered_tensors(model, used, "buffer")


_REFERENCES = {}


def _load_reference(assignment, path):
    """The reference module (imported once per path, in the trusted process)."""
    key = os.path.abspath(path)
    if key not in _REFERENCES:
        _REFERENCES[key] = W.load_module(f"_autograde_reference_{assignment}_{len(_REFERENCES)}", key)
    return _REFERENCES[key]


# ---------------------------------------------------------------------------- hw5 checks
def _conv(cin, cout, k, s, p, bias=True, kind="Conv2d"):
    return {"type": kind, "in": cin, "out": cout, "kernel": k, "stride": s, "padding": p, "dilation": 1,
            "groups": 1, "bias": bias}


def _lrelu(slope=0.2):
    return {"type": "LeakyReLU", "slope": slope}


def _maxpool(k):
    return {"type": "MaxPool2d", "kernel": k, "stride": k, "padding": 0}


TABLE1 = [
    _conv(1, 16, 3, 1, 1), _lrelu(), _maxpool(2),
    _conv(16, 32, 3, 1, 1), _lrelu(), _maxpool(2),
    _conv(32, 64, 3, 1, 1), _lrelu(), _maxpool(2),
    _conv(64, 128, 3, 1, 1), _lrelu(), _maxpool(4),
    {"type": "Linear", "in": 128, "out": 1, "bias": True}, {"type": "Sigmoid"},
]
TABLE2 = [
    _conv(128, 64, 4, 1, 0, kind="ConvTranspose2d"), _lrelu(),
    _conv(64, 32, 4, 2, 1, kind="ConvTranspose2d"), _lrelu(),
    _conv(32, 16, 4, 2, 1, kind="ConvTranspose2d"), _lrelu(),
    _conv(16, 1, 4, 2, 1, kind="ConvTranspose2d"), {"type": "Tanh"},
]
D_PARAMS, G_PARAMS = 97_281, 172_401
# the stand-ins sent to the worker for the GAN checks (after the D and G checks are over): the
# tables as data, so a mistake in D or G costs only the D/G checks
STANDIN = {
    "Discriminator": {"args": [], "layers": TABLE1[:12] + [{"type": "View", "shape": [-1, 128]}] + TABLE1[12:]
                      + [{"type": "View", "shape": [-1]}]},
    "Generator": {"args": [], "layers": [{"type": "View", "shape": [-1, 128, 1, 1]}] + TABLE2},
}
V_TERMS = [["id", "x"], ["one_minus", "Gz"]]  # V = mean log D(x) + mean log(1 - D(G(z)))
NET = {
    "D": {"cls": "Discriminator", "table": TABLE1, "params": D_PARAMS, "range": (0.0, 1.0), "squash": "Sigmoid",
          "inp": lambda n, seed: _rand(n, 1, 32, 32, seed=seed, kind="uniform"), "out": lambda n: (n,),
          "inname": "x", "inshape": "(N, 1, 32, 32)"},
    "G": {"cls": "Generator", "table": TABLE2, "params": G_PARAMS, "range": (-1.0, 1.0), "squash": "Tanh",
          "inp": lambda n, seed: _rand(n, 128, seed=seed), "out": lambda n: (n, 1, 32, 32),
          "inname": "z", "inshape": "(N, 128)"},
}


def _standin(name, seed):
    import torch

    torch.manual_seed(seed)
    return W.standin_class(name, STANDIN[name])()


def _check_net_shape(c, which):
    import torch

    spec = NET[which]
    lo, hi = spec["range"]
    inputs = [spec["inp"](n, n) for n in (1, 7, 64)]
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
                            f"{tuple(out.shape)}, expected {_exp(spec['out'](n))}")
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
    _compare_outputs(_outputs(r, 1)[0], want, f"{what} with the reference's weights")


@check("hw5", "D_shape", 6, "Discriminator: output shape (N,) for N = 1, 7, 64 and values in (0, 1)")
def chk_D_shape(c):
    _check_net_shape(c, "D")


@check("hw5", "D_layers", 8, "Discriminator: the layers and hyperparameters of Table 1, in order")
def chk_D_layers(c):
    _check_net_layers(c, "D")


@check("hw5", "D_params", 4, f"Discriminator: {_exp('97,281')} parameters")
def chk_D_params(c):
    _check_net_params(c, "D")


@check("hw5", "D_function", 10, "Discriminator: with the reference's weights, D(x) equals the reference's (1e-5)")
def chk_D_function(c):
    _check_net_function(c, "D")


@check("hw5", "G_shape", 6, "Generator: output shape (N, 1, 32, 32) for N = 1, 7, 64 and values in (-1, 1)")
def chk_G_shape(c):
    _check_net_shape(c, "G")


@check("hw5", "G_layers", 8, "Generator: the layers and hyperparameters of Table 2, in order")
def chk_G_layers(c):
    _check_net_layers(c, "G")


@check("hw5", "G_params", 4, f"Generator: {_exp('172,401')} parameters")
def chk_G_params(c):
    _check_net_params(c, "G")


@check("hw5", "G_function", 10, "Generator: with the reference's weights, G(z) equals the reference's (1e-5)")
def chk_G_function(c):
    _check_net_function(c, "G")


def _v_setup():
    """Stand-in D and G (D pushed away from 1/2 so the real and fake terms differ), x and z."""
    import torch
    from torch import nn

    D, G = _standin("Discriminator", 21), _standin("Generator", 22)
    with torch.no_grad():
        [m for m in D.modules() if isinstance(m, nn.Linear)][-1].bias.add_(1.0)
    return D, G, _rand(6, 1, 32, 32, seed=22, kind="uniform"), _rand(6, 128, seed=23)


def _v_reference(D, G, x, z, dtype):
    import torch

    d_real, d_fake = D(x).to(dtype).reshape(-1), D(G(z)).to(dtype).reshape(-1)
    log_real = torch.clamp(torch.log(d_real), min=-100)
    log_fake = torch.clamp(torch.log(1 - d_fake), min=-100)
    return log_real.mean(), log_fake.mean(), torch.clamp(torch.log(d_fake), min=-100).mean()


def _ask_v(c, D, G, x, z, grads):
    return c.ask("V", standin=STANDIN, D=_encs(D.parameters()), G=_encs(G.parameters()), x=_enc(x), z=_enc(z),
                 grads=grads)


@check("hw5", "V_value", 12, "calculate_V: equals mean log D(x) + mean log(1 - D(G(z))) (1e-5)")
def chk_V_value(c):
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
        return math.isfinite(a) and abs(a - b) <= 1e-5 * max(1.0, abs(b))

    if close(v, want):
        return None
    diagnoses = [
        (-want, "your V equals -V: a sign error (BCELoss is -log, so V = -(BCE(D(x), 1) + BCE(D(G(z)), 0)))"),
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


@check("hw5", "V_grads", 8, "calculate_V: its gradients wrt D's and G's parameters equal the reference's")
def chk_V_grads(c):
    import torch

    D, G, x, z = _v_setup()
    r = _ask_v(c, D, G, x, z, True)
    V = r["value"]
    if V.kind != "tensor" or not r["requires_grad"]:
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
        if worst > 1e-4:
            errors.append(f"the gradient wrt {which}'s parameters differs from the reference's (relative error "
                          f"{worst:.3g})")
    if errors:
        msg = "; ".join(errors)
        if den > 0:
            alpha = num / den
            if abs(alpha + 1) < 1e-3:
                msg += " - your gradients are the negatives of the reference's (sign error in V)"
            elif abs(alpha - x.shape[0]) < 1e-2 * x.shape[0]:
                msg += f" - your gradients are {x.shape[0]} times the reference's (sum instead of mean)"
        raise CheckFail(msg)


def _check_adam(c, which, lr):
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


@check("hw5", "D_optimizer", 4, f"GAN().D_optimizer: {_exp('Adam, lr 2e-4')}, over exactly D's parameters")
def chk_D_optimizer(c):
    _check_adam(c, "D", 2e-4)


@check("hw5", "G_optimizer", 4, f"GAN().G_optimizer: {_exp('Adam, lr 1e-3')}, over exactly G's parameters")
def chk_G_optimizer(c):
    _check_adam(c, "G", 1e-3)


def _tiny_images(n=16, seed=31):
    return _rand(n, 1, 32, 32, seed=seed, kind="uniform").clamp(-1, 1)


@check("hw5", "train", 10, "GAN().train(1) on a one-batch loader from weights the grader sets: D's Adam step "
                           "ascends V, then G's descends it, from zeroed gradients (exact to rounding)")
def chk_train(c):
    import torch

    D0, G0 = _standin("Discriminator", 41), _standin("Generator", 42)
    r = c.ask("train", standin=STANDIN, D=_encs(D0.parameters()), G=_encs(G0.parameters()), v_terms=V_TERMS,
              images=_enc(_tiny_images()), seed=41, garbage_seed=42)
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
    ok_real = all(t.dim() == 4 and tuple(t.shape[1:]) == (1, 32, 32) and 0 < len(t) <= 64
                  and bool(torch.isfinite(t).all()) for t in reals)
    ok_z = all(t.numel() % 128 == 0 and 0 < t.numel() <= 64 * 128 and bool(torch.isfinite(t).all()) for t in zs)
    if not ok_real or not ok_z:
        raise CheckFail("train(1) fed D or G inputs of unexpected shapes or values (D takes finite (N, 1, 32, 32), "
                        "G finite (N, 128))")
    lrs = {w: (lr if lr > 0 else default) for w, lr, default in zip("DG", r["lrs"] + [-1, -1], (2e-4, 1e-3))}
    _check_train_steps(D0, G0, D, G, [t.float() for t in reals], [t.float().reshape(-1, 128) for t in zs], lrs)


def _check_train_steps(D0, G0, D, G, reals, zs, lrs):
    """The one iteration on one batch must equal, to rounding, the starter's D step (Adam, lr
    2e-4, ascending V, gradients zeroed first) followed by its G step (Adam, lr 1e-3, descending
    V through the updated D), computed here on copies of the weights train() started from, with
    the batch and the z the submission used. Adam's first step is lr * sign(grad), so a step in
    the wrong direction, stale gradients or a G step that never reaches G differ in most entries."""
    import torch

    if not reals or not zs:
        raise CheckFail("train(1) never called D on a real batch and G on z (use self.D and self.G)")
    x, z_d, z_g = reals[0], zs[0], zs[-1]
    Dq, Gq = copy.deepcopy(D0).float().cpu(), copy.deepcopy(G0).float().cpu()
    opt_d = torch.optim.Adam(Dq.parameters(), lr=lrs["D"])
    opt_g = torch.optim.Adam(Gq.parameters(), lr=lrs["G"])
    opt_d.zero_grad()
    real, fake, _ = _v_reference(Dq, Gq, x, z_d, torch.float32)
    (-(real + fake)).backward()
    opt_d.step()
    opt_g.zero_grad()
    real, fake, _ = _v_reference(Dq, Gq, x, z_g, torch.float32)
    (real + fake).backward()
    opt_g.step()

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

    off, flipped, still = compare(D, Dq, D0, lrs["D"])
    if off > 0.01:
        if flipped > 0.9:
            raise CheckFail("the D step descends V: D must maximize V (minimize -V), i.e. "
                            "(-calculate_V(x, z)).backward() before D_optimizer.step()")
        raise CheckFail(f"the D step differs from the starter's ({_exp('Adam, lr 2e-4')}, ascending V from zeroed gradients) "
                        f"in {off:.0%} of D's weights: is D_optimizer.zero_grad() called before the backward pass?")
    off, flipped, still = compare(G, Gq, G0, lrs["G"])
    if off > 0.01:
        if flipped > 0.9:
            raise CheckFail("the G step ascends V: G must minimize V (calculate_V(x, z).backward() before "
                            "G_optimizer.step())")
        if still > 0.9:
            raise CheckFail("the G step did not move G's weights as Adam would: does the gradient reach G "
                            "(no .detach() / no_grad on G(z) or D in the G step)?")
        raise CheckFail(f"the G step differs from the starter's ({_exp('Adam, lr 1e-3')}, descending V with the updated D, "
                        f"from zeroed gradients) in {off:.0%} of G's weights: is G_optimizer.zero_grad() called "
                        f"before its backward pass?")


# ---------------------------------------------------------------------------- hw2 checks
BLOCK_CHANNELS = (1, 4, 16)


def _bn(c):
    return {"type": "BatchNorm2d", "features": c}


def _block_table(c):
    return [_conv(c, c, 3, 1, 1, bias=False), _bn(c), {"type": "ReLU"}, _conv(c, c, 3, 1, 1, bias=False), _bn(c),
            {"type": "ReLU"}]


def _resnet_table(c):
    return ([_conv(1, c, 3, 2, 1, bias=False), _bn(c), {"type": "ReLU"}, _maxpool(2)] + _block_table(c)
            + [{"type": "AdaptiveAvgPool2d", "size": 1}, {"type": "Linear", "in": c, "out": 10, "bias": True}])


# ResNet is built with this stand-in Block (sent after the Block checks): a wrong Block costs only Block points
BLOCK_STANDIN = {"Block": {"args": ["C"], "layers": [
    {"type": "Residual", "body": _block_table("C")[:5]}, {"type": "ReLU"}]}}


def _hw2_request(which, channels):
    return {"cls": which, "args": [channels], "standin": BLOCK_STANDIN if which == "ResNet" else None}


def _hw2_input(which, channels, n=4, hw=5, seed=0):
    if which == "Block":
        return _rand(n, channels, hw, hw, seed=seed)
    return _rand(n, 1, hw, hw, seed=seed)


@check("hw2", "Block_shape", 6, "Block(C), C = 1, 4, 16: output shape equals the input shape")
def chk_Block_shape(c):
    import torch

    for C in BLOCK_CHANNELS:
        x = _rand(3, C, 6, 6, seed=C)
        what = f"Block({C})(x) for x of shape {tuple(x.shape)}"
        out, = _outputs(c.ask("forward", **_hw2_request("Block", C), seed=50 + C, what=what,
                              steps=[{"input": _enc(x)}]), 1)
        t = out.tensor()
        if t is None or tuple(t.shape) != tuple(x.shape):
            shape = tuple(t.shape) if t is not None else out.describe()
            raise CheckFail(f"Block({C})(x) for x of shape {tuple(x.shape)} gave {shape}, expected {tuple(x.shape)}")
        if not torch.isfinite(t).all():
            raise CheckFail(f"Block({C})(x) contains NaN or inf")


def _check_no_bias(c, which):
    for C in BLOCK_CHANNELS:
        r = c.ask("trace", **_hw2_request(which, C), seed=60 + C, input=_enc(_hw2_input(which, C, hw=8, seed=C)))
        convs = [op for op in r["ops"] if op["type"] == "Conv2d"]
        if r["conv_bias"] or any(op.get("bias") for op in convs):
            where = f" ({', '.join(r['conv_bias'][:3])})" if r["conv_bias"] else ""
            raise CheckFail(f"{which}({C}): a convolution has a bias term{where}; use bias=False")
        if not convs:
            raise CheckFail(f"{which}({C}): no convolution ran in forward()"
                            + (f" (it raised {r['error']})" if r["error"] else ""))


def _check_layers(c, which):
    table = _block_table if which == "Block" else _resnet_table
    for C in BLOCK_CHANNELS:
        r = c.ask("trace", **_hw2_request(which, C), seed=70 + C, input=_enc(_hw2_input(which, C, hw=8, seed=C)))
        _compare_layers(r["ops"], table(C), f"{which}({C})", ignore=("bias",), error=r["error"])


def _randomize_reference(model, seed):
    """Non-trivial BatchNorm parameters and running statistics (default ones hide mistakes)."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.3 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.3 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.num_batches_tracked.fill_(7)


def _check_function(c, which, mode):
    import torch

    zeroed = []
    for C in BLOCK_CHANNELS:
        torch.manual_seed(80 + C)
        ref = getattr(c.ref, which)(C)
        _randomize_reference(ref, 81 + C)
        hw = 5 if which == "Block" else 8
        probe = _hw2_input(which, C, n=3, hw=hw, seed=82)
        params, buffers = _weights_in_use_order(ref, probe)
        params = [p.detach().clone() for p in params]
        buffers = [b.detach().clone() for b in buffers]
        ref.train(mode == "train")
        sizes = (5, 8) if which == "Block" else (8, 28)
        xs = [_hw2_input(which, C, n=4, hw=hw, seed=83 + hw) for hw in sizes]
        with torch.no_grad():
            wants = [ref(x) for x in xs]
        r = c.ask("function", **_hw2_request(which, C), seed=80 + C, probe=_enc(probe), params=_encs(params),
                  hide=c.hide_expected,
                  buffers=_encs(buffers), mode=mode, inputs=_encs(xs), what=f"{which}({C})(x)",
                  what_net=f"{which}({C})")
        for x, got, want in zip(xs, _outputs(r, len(xs)), wants):
            _compare_outputs(got, want, f"{which}({C})(x) in {mode} mode for x of shape {tuple(x.shape)}")
        zeroed = zeroed or r["zeroed"]
    if zeroed:  # the bias is the no-bias check's mistake, not this one's (which may be hidden: not named)
        return f"ok, with your convolution biases ({', '.join(zeroed[:3])}) set to zero for this check"


@check("hw2", "Block_no_bias", 6, "Block(C): its convolutions have no bias")
def chk_Block_no_bias(c):
    _check_no_bias(c, "Block")


@check("hw2", "Block_layers", 10, "Block(C): Conv3x3 -> BN -> ReLU -> Conv3x3 -> BN, then ReLU(x + f(x)), in order")
def chk_Block_layers(c):
    _check_layers(c, "Block")


@check("hw2", "Block_train", 12, "Block(C): with the reference's weights, output equals the reference's in train mode")
def chk_Block_train(c):
    return _check_function(c, "Block", "train")


@check("hw2", "Block_eval", 8, "Block(C): with the reference's weights and BN statistics, equal output in eval mode")
def chk_Block_eval(c):
    return _check_function(c, "Block", "eval")


@check("hw2", "ResNet_shape", 8, "ResNet(C), C = 1, 4, 16: output (N, 10) for 8x8 and 28x28 inputs")
def chk_ResNet_shape(c):
    import torch

    for C in BLOCK_CHANNELS:
        steps, shapes = [], []
        for mode in ("train", "eval"):
            steps.append({"mode": mode})
            for hw in (8, 28):
                x = _rand(5, 1, hw, hw, seed=hw)
                steps.append({"input": _enc(x)})
                shapes.append((mode, tuple(x.shape)))
        outs = _outputs(c.ask("forward", **_hw2_request("ResNet", C), seed=90 + C, what=f"ResNet({C})(x)",
                              steps=steps), len(shapes))
        for (mode, shape), out in zip(shapes, outs):
            t = out.tensor()
            if t is None or tuple(t.shape) != (5, 10):
                got = tuple(t.shape) if t is not None else out.describe()
                raise CheckFail(f"ResNet({C})(x) in {mode} mode for x of shape {shape} gave {got}, expected (5, 10)")
            if not torch.isfinite(t).all():
                raise CheckFail(f"ResNet({C})(x) contains NaN or inf")


@check("hw2", "ResNet_no_bias", 4, "ResNet(C): its convolutions have no bias")
def chk_ResNet_no_bias(c):
    _check_no_bias(c, "ResNet")


@check("hw2", "ResNet_layers", 12, "ResNet(C): Conv(1, C, 3, stride 2, pad 1) -> BN -> ReLU -> MaxPool(2) -> "
                                   "Block -> AdaptiveAvgPool(1) -> Linear(C, 10)")
def chk_ResNet_layers(c):
    _check_layers(c, "ResNet")


@check("hw2", "ResNet_params", 8, f"ResNet(C): {_exp('18C^2 + 25C + 10')} parameters")
def chk_ResNet_params(c):
    note = ""
    for C in BLOCK_CHANNELS:
        r = c.ask("trace", **_hw2_request("ResNet", C), seed=0)
        n = r["params"] - r["conv_bias_params"]  # a conv bias costs only ResNet_no_bias
        want = 18 * C * C + 25 * C + 10
        if n != want:
            raise CheckFail(f"ResNet({C}) has {n:,} parameters (not counting convolution biases), expected "
                            f"{_exp(f'18C^2 + 25C + 10 = {want:,}')}")
        if r["conv_bias_params"]:
            note = "ok, not counting your convolution biases"
    return note or None


@check("hw2", "ResNet_train", 12, "ResNet(C): with the reference's weights, output equals the reference's in train "
                                  "mode")
def chk_ResNet_train(c):
    return _check_function(c, "ResNet", "train")


@check("hw2", "ResNet_eval", 8, "ResNet(C): with the reference's weights and BN statistics, equal output in eval "
                                "mode")
def chk_ResNet_eval(c):
    return _check_function(c, "ResNet", "eval")


POINTS = {a: tuple(rows) for a, rows in POINTS.items()}


# ==========================================================================================
# channels to the worker: in this process (tests of the checks) or a sandboxed subprocess
# ==========================================================================================
class _CappedText:
    """A text stream that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit=4000):
        self.limit, self.kept, self.size, self.total = limit, [], 0, 0

    def write(self, s):
        s = str(s)
        self.total += len(s)
        if self.size < self.limit:
            part = s[: self.limit - self.size]
            self.kept.append(part)
            self.size += len(part)
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False

    def text(self):
        return "".join(self.kept)


class _InProcessChannel:
    """The worker's handler called in this process, through the same JSON encoding and reply
    parsing as the subprocess (no isolation: for the tests of the checks only)."""

    def __init__(self, worker):
        self.worker = worker
        self.printed = _CappedText()

    def ask(self, op, fields, deadline):
        nonce = secrets.token_hex(8)
        request = json.loads(json.dumps(dict(fields, op=op, id=nonce)))
        out, err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = self.printed
        try:
            data = self.worker.handle(request)
        finally:
            sys.stdout, sys.stderr = out, err
        try:
            return parse_reply(op, json.dumps({"id": nonce, "data": data}), nonce)
        except (ValueError, TypeError) as e:
            raise WorkerLost(f"the grader received a malformed reply ({_short(e, 200)})") from None

    def close(self):
        pass


class _WorkerProcess:
    """One run of autograde_worker.py in the sandbox. ``ask`` sends one request and returns its
    one parsed reply; anything else on the reply channel, a death or an overrun raises WorkerLost."""

    def __init__(self, cmd, cwd, env, memory_mb, stdout, user=None):
        self.stdout = stdout
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        cmd = [a.replace("{REQ_FD}", str(req_r)).replace("{REP_FD}", str(rep_w)) for a in cmd]
        kwargs = {}
        if user is not None:
            kwargs = {"user": user, "group": user, "extra_groups": []}
        try:
            self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, pass_fds=(req_r, rep_w), start_new_session=True,
                                         preexec_fn=_limits(int(memory_mb) * 2**20), **kwargs)
        finally:
            os.close(req_r)
            os.close(rep_w)
        for fd in (self.req_w, self.rep_r, self.proc.stdout.fileno()):
            os.set_blocking(fd, False)
        self.buf = b""
        self.out_open = self.rep_open = True

    def _pump(self, timeout, want_write=None):
        """Wait up to ``timeout`` s for output; returns True when ``want_write`` is writable."""
        sel = selectors.DefaultSelector()
        try:
            if self.out_open:
                sel.register(self.proc.stdout.fileno(), selectors.EVENT_READ, "stdout")
            if self.rep_open:
                sel.register(self.rep_r, selectors.EVENT_READ, "reply")
            if want_write is not None:
                sel.register(want_write, selectors.EVENT_WRITE, "write")
            writable = False
            events = sel.select(timeout=timeout) if sel.get_map() else []
            if not sel.get_map():
                time.sleep(min(timeout, 0.05))
            for key, _ in events:
                if key.data == "write":
                    writable = True
                    continue
                try:
                    chunk = os.read(key.fd, 1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if key.data == "stdout":
                    if chunk:
                        self.stdout.add(chunk)
                    else:
                        self.out_open = False
                else:
                    if chunk:
                        self.buf += chunk
                        if len(self.buf) > MAX_REPLY_BYTES:
                            raise WorkerLost("the grader received an oversized reply (a forged or damaged reply)")
                    else:
                        self.rep_open = False
            return writable
        finally:
            sel.close()

    def _dead(self):
        if self.proc.poll() is None:
            return None
        for _ in range(20):  # drain what is left
            if not (self.out_open or self.rep_open):
                break
            self._pump(0.01)
        return f"the grading process {_describe_exit(self.proc.returncode)}"

    def ask(self, op, fields, deadline, overrun=None):
        nonce = secrets.token_hex(8)
        data = (json.dumps(dict(fields, op=op, id=nonce)) + "\n").encode()
        self._pump(0)
        if self.buf:
            raise WorkerLost("the grader received data it did not ask for on its reply channel (a forged reply "
                             "earns nothing)")
        overrun = overrun or "the check took longer than its limit and was stopped"
        while data:  # write the request without ever blocking on a stuck worker
            now = time.monotonic()
            if now >= deadline:
                raise WorkerLost(overrun)
            dead = self._dead()
            if dead:
                raise WorkerLost(dead)
            if self._pump(min(0.5, deadline - now), want_write=self.req_w):
                try:
                    n = os.write(self.req_w, data[:1 << 16])
                    data = data[n:]
                except BlockingIOError:
                    pass
                except OSError:
                    dead = self._dead() or "the grading process closed its request channel"
                    raise WorkerLost(dead) from None
        while b"\n" not in self.buf:
            now = time.monotonic()
            if now >= deadline:
                raise WorkerLost(overrun)
            dead = self._dead()
            if dead and b"\n" not in self.buf:
                raise WorkerLost(dead)
            self._pump(min(0.5, deadline - now))
        line, self.buf = self.buf.split(b"\n", 1)
        self._pump(0.01)
        if self.buf:
            raise WorkerLost("the grader received more than one reply to one request (a forged reply earns "
                             "nothing)")
        try:
            return parse_reply(op, line, nonce)
        except (ValueError, TypeError, UnicodeDecodeError, RecursionError, MemoryError) as e:
            raise WorkerLost(f"the grader received a malformed reply ({type(e).__name__}: {_short(e, 200)}; a "
                             f"forged reply earns nothing)") from None

    def close(self):
        _kill_group(self.proc)
        if _SUBREAPER:  # setsid'ed descendants re-parented to the grader (no PID namespace)
            _kill_orphans()
        for fd in (self.req_w, self.rep_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(Exception):
            while self.out_open:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    break
                self.stdout.add(chunk)
        with contextlib.suppress(Exception):
            self.proc.stdout.close()


def _snapshot(dirs):
    """{path: (size, mtime_ns)} of every entry below the given folders (symlinks not followed)."""
    seen = {}
    for root in dirs:
        if not os.path.isdir(root):
            continue
        for folder, subdirs, files in os.walk(root):
            for name in subdirs + files:
                p = os.path.join(folder, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                seen[p] = (st.st_size if not stat.S_ISDIR(st.st_mode) else -1, st.st_mtime_ns)
            if len(seen) > 10000:
                break
    return seen


def _import(channel, work, label, deadline, overrun):
    """Import the submission in a fresh worker: (ok, error, quiet message or "")."""
    before = _snapshot([work])
    printed = channel.printed if isinstance(channel, _InProcessChannel) else None
    start_total = printed.total if printed else channel.stdout.total
    start_len = len(printed.text()) if printed else len(channel.stdout.data)
    if isinstance(channel, _WorkerProcess):
        r = channel.ask("import", {}, deadline, overrun=overrun)
        channel._pump(0.05)
        total = channel.stdout.total - start_total
        text = bytes(channel.stdout.data[start_len:start_len + 400]).decode("utf-8", "replace")
    else:
        r = channel.ask("import", {}, deadline)
        total = printed.total - start_total
        text = printed.text()[start_len:start_len + 400]
    if "fail" in r:
        return False, r["fail"], ""
    if not r["ok"]:
        return False, r["error"] or f"importing your {label} failed", ""
    side = []
    if total:
        text = text.strip()
        side.append(f"it printed {total} characters" + (f", starting with: {text[:200]!r}" if text else ""))
    after = _snapshot([work])
    changed = sorted(p for p in after if before.get(p) != after[p]) + sorted(p for p in before if p not in after)
    if changed:
        shown = ", ".join(os.path.relpath(p, work) for p in changed[:3])
        side.append(f"it created or changed {len(changed)} file(s): {shown}")
    if r["network"]:
        side.append(f"it tried to open a network connection ({r['network'][0]}, blocked)")
    return True, "", ("importing your file must only define things, but " + "; ".join(side)) if side else ""


_MEMORY_SIGNS = ("MemoryError", "can't allocate memory", "DefaultCPUAllocator", "Cannot allocate memory")


def _run_checks(assignment, keys, reference, start, label, check_limit, import_limit, final, hide_expected=False):
    """Run ``keys`` in order. ``start()`` -> (channel, work folder) starts a worker. Every
    result goes into ``final`` {key: (fraction, message)}; a lost worker zeroes its check and a
    new one grades the rest."""
    channel, failed = None, None
    ctx = _Ctx(assignment, reference, None, label, hide_expected)
    try:
        for key in keys:
            if key in final:
                continue
            if channel is None:
                restarting = failed is not None
                overrun = f"the time limit of {import_limit:g} s was reached"
                try:
                    channel, work = start()
                    ok, error, quiet = _import(channel, work, label, time.monotonic() + import_limit, overrun)
                except WorkerLost as e:
                    ok, error, quiet = False, f"{e} while importing your {label}", ""
                if not ok:
                    for k in keys:
                        if k in final:
                            continue
                        if restarting:
                            final[k] = (0.0, f"not run: {error} while the grader restarted (re-importing your "
                                             f"{label}) after the failure in {failed}")
                        elif k == "import":
                            final[k] = (0.0, error)
                        else:
                            final[k] = (0.0, f"not graded: your {label} did not import ({error})")
                    break
                if not restarting:
                    final["import"] = (1.0, "ok")
                    final["import_quiet"] = (0.0 if quiet else 1.0, quiet or "ok")
                if key in final:
                    continue
            ctx.channel = channel
            ctx.deadline = time.monotonic() + check_limit
            try:
                message = CHECK_FUNCTIONS[key](ctx)
                final[key] = (1.0, message or "ok")
            except CheckFail as e:
                final[key] = (0.0, str(e))
                if any(sign in str(e) for sign in _MEMORY_SIGNS) and not isinstance(channel, _InProcessChannel):
                    channel.close()  # memory the submission still holds would fail every later check
                    channel, failed = None, key
            except WorkerLost as e:
                message = str(e)
                if "longer than its limit" in message:
                    message = f"the check took longer than its limit of {check_limit:g} s and was stopped"
                elif "earns nothing" not in message:
                    message += " during this check"
                final[key] = (0.0, message)
                channel.close()
                channel, failed = None, key
            except Exception as e:  # noqa: BLE001 - a reply the trusted side could not use
                final[key] = (0.0, f"the grader could not use the reply to this check ({type(e).__name__}: "
                                   f"{_short(e, 300)})")
    finally:
        if channel is not None:
            channel.close()


def grade_in_process(assignment, student_path, checks=None, reference_path=None, hide_expected=False):
    """Run the checks with the worker's handler in this process, without any isolation (for the
    tests of the checks). Returns ``[{"check", "score", "max_score", "output"}]``.

    The submission runs with the network blocked and its working directory set to a fresh
    temporary folder holding only a copy of the file.
    """
    reference_path = reference_path or os.path.join(HERE, ASSIGNMENTS[assignment]["file"])
    table = {k: p for k, p, _ in POINTS[assignment]}
    keys = [k for k, _, _ in POINTS[assignment]] if checks is None else list(checks)
    order = [k for k, _, _ in POINTS[assignment] if k in keys or k in ("import", "import_quiet")]
    tmp = tempfile.mkdtemp(prefix="autograde-inproc-")
    label = ASSIGNMENTS[assignment]["file"]
    copy_path = os.path.join(tmp, label)
    shutil.copyfile(student_path, copy_path)
    cwd = os.getcwd()
    name = f"submission_{assignment}_{len(_INPROC_NAMES)}"
    _INPROC_NAMES.append(name)
    undo = W.install_network_block()
    allow = W.AllowedImports(copy_path, ALLOWED_MODULES).install()
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    final = {}
    try:
        os.chdir(tmp)
        reference = _load_reference(assignment, reference_path)
        channel = _InProcessChannel(W.Worker(copy_path, assignment, name))
        _run_checks(assignment, order, reference, lambda: (channel, tmp), label, math.inf, math.inf, final,
                    hide_expected)
    finally:
        sys.dont_write_bytecode = dont_write
        undo()
        allow()
        os.chdir(cwd)
        sys.modules.pop(name, None)
        shutil.rmtree(tmp, ignore_errors=True)
    return [{"check": k, "score": round(final[k][0] * table[k], 4) if k in final else 0.0,
             "max_score": float(table[k]), "output": render(final[k][1], hide_expected) if k in final else "not run"}
            for k in keys]


_INPROC_NAMES = []


# ==========================================================================================
# the sandbox: how the worker process is started
# ==========================================================================================
def _quote(s):
    import shlex

    return shlex.quote(s)


def _others_can_enter(path):
    """True when every folder from / to ``path`` lets others (e.g. nobody) search it."""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(2, len(parts) + 1):
        p = os.sep.join(parts[:i]) or os.sep
        try:
            st = os.stat(p)
        except OSError:
            return False
        if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IXOTH:
            return False
    return True


def _blocked_ancestor(path):
    """The highest folder on the way to ``path`` that others cannot search (None if none)."""
    parts = os.path.realpath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        p = os.sep.join(parts[:i])
        with contextlib.suppress(OSError):
            st = os.stat(p)
            if stat.S_ISDIR(st.st_mode) and not st.st_mode & stat.S_IXOTH:
                return p
    return None


def _under(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _python_prefixes():
    found = []
    for p in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))):
        p = os.path.realpath(p)
        if p not in found:
            found.append(p)
    return [p for p in found if not any(q != p and _under(p, q) for q in found)]


# the top-level folders a worker may see: the system's programs, libraries and configuration;
# every other one (/home, /root, /work, /opt, /srv, /mnt, /var, /run, /autograder, ...) is
# covered, so no copy of the reference anywhere on the host is readable and no folder the host
# keeps (/run/lock, /var/lock, ...) is writable
VISIBLE_ROOTS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "proc", "dev", "sys")
SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")  # fresh and empty for each worker


def _host_covers():
    """The top-level folders of / outside ``VISIBLE_ROOTS`` (and /tmp, replaced by a fresh one)."""
    covers = []
    for name in sorted(os.listdir("/")):
        path = "/" + name
        if name not in VISIBLE_ROOTS and path != "/tmp" and os.path.isdir(path) and not os.path.islink(path):
            covers.append(path)
    return covers


def _mount_plan(stage, work, hidden, cmd):
    """The ``sh`` script run as root inside new mount/PID/network/IPC namespaces: it covers
    every top-level folder but the system's own (``VISIBLE_ROOTS``) and the grader's folders
    with an empty tmpfs only root may write (top-level files with /dev/null), keeps the Python
    installation and the other ``sys.path`` folders visible (bind mounts), gives the worker
    fresh /tmp, /var/tmp and /dev/shm (what it writes there vanishes with it), binds the sandbox
    back in place wherever it lies, then becomes nobody and starts the worker in its scratch
    folder. The script works from the sandbox through relative paths, which stay valid once the
    folders above it are covered."""
    prefixes = _python_prefixes()
    covers = []
    for p in prefixes:
        a = _blocked_ancestor(p)
        if a and a not in covers:
            covers.append(a)
    for h in list(hidden) + _host_covers():
        h = os.path.realpath(h)
        if os.path.isdir(h) and h not in covers and not any(_under(h, c) for c in covers):
            covers = [c for c in covers if not _under(c, h)] + [h]
    covers = [c for c in covers if c != "/"]
    # fresh /tmp, /var/tmp and /dev/shm always: the host's (other students' sandboxes, files
    # planted for a later student) are never the worker's, even when Python lives under /tmp
    scratch = [d for d in SCRATCH_DIRS if os.path.isdir(d) and not os.path.islink(d) and d not in covers]
    keep = [p for p in prefixes if not any(_under(d, p) for d in scratch)]  # Python, and what it imports
    for p in sys.path:
        if (p and os.path.isabs(p) and os.path.isdir(p) and not any(_under(p, h) for h in hidden)
                and not any(_under(p, k) for k in keep) and not any(_under(d, p) for d in scratch)):
            keep.append(os.path.realpath(p))
    binds = [p for p in keep if any(_under(p, c) for c in covers + scratch)]  # bound back after covering
    files = [f"/{n}" for n in sorted(os.listdir("/")) if os.path.isfile(f"/{n}") and not os.path.islink(f"/{n}")]
    sandbox = os.path.dirname(work)
    q = _quote
    stage = os.path.relpath(stage, sandbox)
    lines = ["set -e", f"cd {q(sandbox)}"]
    for i, p in enumerate(binds):
        lines += [f"mkdir -p {q(stage)}/{i}", f"mount --bind {q(p)} {q(stage)}/{i}"]
    for c in covers:
        lines.append(f"mount -t tmpfs -o mode=755,size=64k,nosuid,nodev autograde-hidden {q(c)}")
    for f in files:
        lines.append(f"mount --bind /dev/null {q(f)} || true")
    for d in scratch:  # (inside a covered folder, e.g. /var/tmp, the mount point is made first)
        lines += [f"mkdir -p {q(d)}", f"mount -t tmpfs -o mode=1777,size=256m,nosuid,nodev autograde-scratch {q(d)}"]
    for i, p in enumerate(binds):
        lines += [f"mkdir -p {q(p)}", f"mount --no-canonicalize --bind {q(stage)}/{i} {q(p)}"]
    if any(_under(sandbox, d) for d in scratch + covers):
        lines += [f"mkdir -p {q(sandbox)}", f"mount --no-canonicalize --bind . {q(sandbox)}"]
    lines.append(f"cd {q(work)}")
    lines.append(f"exec setpriv --reuid={WORKER_UID} --regid={WORKER_UID} --clear-groups --no-new-privs "
                 + " ".join(q(a) for a in cmd))
    return "\n".join(lines), covers


_PLAN_CACHE = {}


def _sandbox_base():
    """Where the sandbox folder goes: the temporary folder, or, as root when others cannot
    enter it (the worker runs as nobody), the first of /tmp, /var/tmp, /dev/shm they can."""
    base = tempfile.gettempdir()
    if hasattr(os, "geteuid") and os.geteuid() == 0 and not _others_can_enter(base):
        for other in ("/tmp", "/var/tmp", "/dev/shm"):
            if os.path.isdir(other) and _others_can_enter(other):
                return other
    return base


def _launch(sandbox, work, hidden, worker_cmd):
    """(command, user or None, note): how to start the worker here. As root: new mount, PID and
    network namespaces, the grader's folders hidden, the worker as nobody (probed once). As root
    without namespaces: nobody when the Python installation is readable by it, else root. Not
    root: the network/PID namespaces ``unshare`` allows, as the current user."""
    no_unshare = os.environ.get("AUTOGRADE_NO_UNSHARE") == "1"
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    unshare, setpriv = shutil.which("unshare"), shutil.which("setpriv")
    if root and not no_unshare and unshare and setpriv and sys.platform.startswith("linux"):
        ns = [unshare, "--mount", "--net", "--pid", "--ipc", "--fork", "--kill-child", "--mount-proc",
              "--propagation", "private"]
        stage = os.path.join(sandbox, "stage")
        if "root" not in _PLAN_CACHE:
            script, _ = _mount_plan(stage, work, hidden, [  # as nobody, torch must still be found
                sys.executable, "-I", "-c", "import os, sys, importlib.util; sys.path[:0] = "
                + repr([p for p in sys.path if p]) + "; assert os.getuid() != 0; os.listdir('.'); "
                "assert importlib.util.find_spec('torch')"])
            try:
                ok = subprocess.run(ns + ["sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=20).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
            _PLAN_CACHE["root"] = ok
        if _PLAN_CACHE["root"]:
            script, covers = _mount_plan(stage, work, hidden, worker_cmd)
            return (ns + ["sh", "-c", script], None,
                    f"worker as nobody in network, PID, IPC and mount namespaces ({len(covers)} host folder(s) hidden)")
    if root:
        if _others_can_enter(sys.executable) and all(_others_can_enter(p) for p in _python_prefixes()):
            if "nobody" not in _PLAN_CACHE:  # the namespaces root may make, as nobody (or none)
                prefix = namespace_prefix()
                try:
                    ok = bool(prefix) and subprocess.run(
                        prefix + ["true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, timeout=5, user=WORKER_UID, group=WORKER_UID,
                        extra_groups=[]).returncode == 0
                except (OSError, subprocess.SubprocessError):
                    ok = False
                _PLAN_CACHE["nobody"] = prefix if ok else []
            prefix = _PLAN_CACHE["nobody"]
            return (prefix + worker_cmd, WORKER_UID,
                    "worker as nobody, no mount namespace (the grader's folders closed to others while it runs), "
                    + ("network and PID namespaces" if prefix else "no namespaces"))
        return (namespace_prefix() + worker_cmd, None,
                "worker as root: no mount namespace and the Python installation is not readable by nobody; "
                + ("network and PID namespaces" if namespace_prefix() else "no namespaces (unshare unavailable)"))
    prefix = namespace_prefix()
    return (prefix + worker_cmd, None, "not root: the worker runs as the grader's user; "
            + ("network and PID namespaces" if prefix else "no namespaces (unshare unavailable)"))


# ==========================================================================================
# grader side: runs the worker in a sandbox and assembles the results
# ==========================================================================================
_NAMESPACE_CACHE = []


def namespace_prefix():
    """The ``unshare`` command line that gives the worker its own (empty) network namespace and
    PID namespace, or [] where this machine does not allow it. Probed once per process."""
    if _NAMESPACE_CACHE:
        return _NAMESPACE_CACHE[0]
    prefix = []
    unshare = shutil.which("unshare")
    if unshare and sys.platform.startswith("linux") and os.environ.get("AUTOGRADE_NO_UNSHARE") != "1":
        tail = ["--net", "--pid", "--fork", "--kill-child"]
        for extra in (["--user", "--map-current-user"], ["--user", "--map-root-user"], []):
            candidate = [unshare] + extra + tail
            try:
                ok = subprocess.run(candidate + ["true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=5).returncode == 0
            except (OSError, subprocess.SubprocessError):
                ok = False
            if ok:
                prefix = candidate
                break
    _NAMESPACE_CACHE.append(prefix)
    return prefix


def _limits(memory_bytes):
    def apply():
        import resource

        for which, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT),
                             (resource.RLIMIT_CORE, 0)):
            try:
                soft, hard = resource.getrlimit(which)
                if hard != resource.RLIM_INFINITY:
                    value = min(value, hard)
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError):
                pass

    return apply


def _descendants(pid):
    """Host pids of every live descendant of ``pid`` (one pass over /proc)."""
    parent = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    with open(f"/proc/{entry}/stat", "rb") as f:
                        data = f.read()
                    parent[int(entry)] = int(data[data.rindex(b")") + 2:].split()[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier and p not in found]
        found += kids
        frontier = kids
    return found


def _kill_group(proc):
    """SIGKILL the worker's process group and every descendant (setsid'ed ones too, found by
    parent links; in a PID namespace they die with its init anyway), and wait until they are gone."""
    tree = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, OSError):
        proc.kill()
    for pid in tree:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while tree and time.monotonic() < deadline:
        tree = [p for p in tree if os.path.exists(f"/proc/{p}") and not _is_zombie(p)]
        if tree:
            time.sleep(0.02)


def _is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2:].split()[0] in (b"Z", b"X")
    except (OSError, ValueError, IndexError):
        return True


def _describe_exit(code):
    if code is None:
        return "was killed"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = {"SIGSEGV": " (a segmentation fault: a crash in native code, or unbounded recursion)",
                "SIGKILL": " (killed: out of memory, or killed from outside)", "SIGXFSZ": " (a file grew too large)",
                "SIGABRT": " (aborted)"}.get(name, "")
        return f"was terminated by {name}{hint}"
    return f"exited with status {code} (os._exit or a hard crash)"


def _rmtree(path):
    def onerror(func, p, exc_info):
        with contextlib.suppress(OSError):
            os.chmod(p, 0o700)
            func(p)

    shutil.rmtree(path, onerror=onerror)


class _Capped:
    """Keeps the first ``cap`` bytes of a stream and counts all of them."""

    def __init__(self, cap):
        self.cap, self.data, self.total = cap, bytearray(), 0

    def add(self, chunk):
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    def text(self):
        s = self.data.decode("utf-8", errors="replace")
        if self.total > len(self.data):
            s += f"\n... [{self.total - len(self.data)} more bytes of output not shown]"
        return s


class _Skip(Exception):
    pass


def _copy_source(src, dst):
    """Copy the submission, a regular file of at most MAX_SOURCE_BYTES, without following a
    symlink and reading at most one byte more than the limit (a link to /dev/zero, a FIFO or a
    device is refused at once). Returns '' or the message (with ``{label}``)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(src, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "your {label} is a symbolic link; the autograder grades regular files only"
        return f"your {{label}} cannot be read ({e.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return "your {label} is not a regular file; the autograder grades regular files only"
        data = bytearray()
        while len(data) <= MAX_SOURCE_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_SOURCE_BYTES + 1 - len(data)))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > MAX_SOURCE_BYTES:
        return f"your {{label}} has more than {MAX_SOURCE_BYTES:,} bytes; the autograder accepts at most that"
    with open(dst, "wb") as f:
        f.write(data)
    return ""




def grade_assignment(assignment, student_file, timeout=DEFAULT_TIMEOUT, memory_mb=DEFAULT_MEMORY_MB,
                     reference_path=None, output_cap=OUTPUT_CAP, check_limit=None, hide_expected=False):
    """Grade one file in a sandboxed worker process. Never raises for anything the submission does.

    ``timeout``: seconds each import of the submission may take (the first one and the one
    after each restart). ``check_limit``: seconds each check may take (default: a quarter of
    ``timeout``, at least ``CHECK_LIMIT_MIN``); one check's overrun never shortens another's.
    ``hide_expected``: messages say "[hidden]" in place of the expected values.

    Returns a dict: assignment, file, results [{check, name, score, max_score, output}],
    output (what the submission printed, capped), notes, seconds.
    """
    t0 = time.monotonic()
    table = [(k, p, d) for k, p, d in POINTS[assignment]]
    reference_path = os.path.abspath(reference_path or os.path.join(HERE, ASSIGNMENTS[assignment]["file"]))
    label = ASSIGNMENTS[assignment]["file"]
    final = {}  # key -> (fraction, message)
    notes = []
    stdout = _Capped(output_cap)
    if check_limit is None:
        check_limit = max(CHECK_LIMIT_MIN, CHECK_LIMIT_FRACTION * float(timeout))
    sandbox = tempfile.mkdtemp(prefix=f"autograde-{assignment}-", dir=_sandbox_base())
    work, home, tmpd, cache = (os.path.join(sandbox, d) for d in ("work", "home", "tmp", "cache"))
    isolation = "not started"
    restore = []  # (folder, mode) to put back
    try:
        for d in (work, home, tmpd, cache):
            os.makedirs(d)
        problem = _copy_source(student_file, os.path.join(work, label))
        if problem:
            for k, _, _ in table:
                final[k] = (0.0, problem.format(label=label))
            raise _Skip
        shutil.copyfile(WORKER_FILE, os.path.join(work, "autograde_worker.py"))
        try:
            reference = _load_reference(assignment, reference_path)
        except Exception as e:  # noqa: BLE001 - the grader's own fault: say so (Ctrl-C/SIGTERM still stop it)
            for k, _, _ in table:
                final[k] = (0.0, f"autograder error: the reference {reference_path} failed to import "
                                 f"({type(e).__name__}: {e}); please tell the course staff")
            raise _Skip from None
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "TMPDIR": tmpd, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": "", "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "TQDM_DISABLE": "1",
            # library caches (matplotlib's font cache, torch's compile cache) go where no check looks
            "MPLCONFIGDIR": os.path.join(cache, "matplotlib"), "XDG_CACHE_HOME": cache,
            "TORCH_HOME": os.path.join(cache, "torch"), "TORCHINDUCTOR_CACHE_DIR": os.path.join(cache, "inductor"),
        }
        if os.environ.get("LD_LIBRARY_PATH"):
            env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
        hidden = [HERE, os.path.dirname(reference_path)]
        sys_path = [p for p in sys.path if p and os.path.isabs(p) and not any(_under(p, h) for h in hidden)
                    and os.path.abspath(p) != os.path.dirname(os.path.abspath(student_file))]
        worker_cmd = [sys.executable, "-I", "-X", "utf8", os.path.join(work, "autograde_worker.py"), "{REQ_FD}",
                      "{REP_FD}", os.path.join(work, label), assignment, json.dumps(sys_path),
                      json.dumps(list(ALLOWED_MODULES))]
        cmd, user, isolation = _launch(sandbox, work, hidden, worker_cmd)
        if user is not None:  # nobody without a mount namespace: close the grader's folders to others
            for h in dict.fromkeys(os.path.realpath(h) for h in hidden):
                mode = stat.S_IMODE(os.stat(h).st_mode)
                if mode & 0o007:
                    restore.append((h, mode))
                    os.chmod(h, mode & ~0o007)
        os.chmod(sandbox, 0o711)
        if user is not None or cmd[0] == shutil.which("unshare") and "setpriv" in cmd[-1]:
            for d in (work, home, tmpd, cache):
                os.chown(d, WORKER_UID, WORKER_UID)
                os.chmod(d, 0o700)

        def start():
            return _WorkerProcess(cmd, work, env, memory_mb, stdout, user=user), work

        _run_checks(assignment, [k for k, _, _ in table], reference, start, label, check_limit, float(timeout),
                    final, hide_expected)
    except _Skip:
        pass
    except OSError as e:
        for k, _, _ in table:
            final.setdefault(k, (0.0, f"autograder error: {e}"))
    finally:
        for h, mode in restore:
            with contextlib.suppress(OSError):
                os.chmod(h, mode)
        _rmtree(sandbox)
    results = []
    for k, p, d in table:
        fraction, message = final.get(k, (0.0, "not run"))
        results.append({"check": k, "name": render(d, hide_expected), "score": round(min(1.0, max(0.0, fraction)) * p, 4),
                        "max_score": float(p), "output": _printable(_short(render(message, hide_expected)))})
    notes.append(f"sandbox: scratch folder, {timeout:g} s per import, {check_limit:g} s per check, {memory_mb} MB "
                 f"address space, minimal environment; {isolation}")
    return {"assignment": assignment, "file": label, "results": results, "output": stdout.text(), "notes": notes,
            "seconds": time.monotonic() - t0}



# ------------------------------------------------------------------------------ reports
def parse_visibility(specs):
    """{check: level} from ``--visibility`` values: "LEVEL" (every check) or "KEY=LEVEL", comma-separated."""
    chosen = {}
    for spec in specs or ():
        items = [i.strip() for i in spec.split(",") if i.strip()]
        if not items:
            raise ValueError(f"{spec!r}: give LEVEL (every check) or KEY=LEVEL, comma-separated")
        for item in items:
            key, eq, level = (part.strip() for part in item.rpartition("="))
            if eq and not key:
                raise ValueError(f"{item!r}: name a check before '=' (or give LEVEL alone for every check)")
            if level not in VISIBILITY_LEVELS:
                raise ValueError(f"{item!r}: the level must be one of {', '.join(VISIBILITY_LEVELS)}")
            if key and key not in VISIBILITY:
                raise ValueError(f"{item!r}: no check is called {key!r} (see docs/autograder.md)")
            chosen.update({k: level for k in ([key] if key else VISIBILITY)})
    return chosen


def results_json(gradings, elapsed, visibility=None):
    """Gradescope's results format (the top-level score is the sum of the test scores); each
    test's visibility is its check's declared one unless ``visibility`` {check: level} says otherwise."""
    visibility = {**VISIBILITY, **(visibility or {})}
    tests, lines = [], []
    score = 0.0
    for g in gradings:
        number = ASSIGNMENTS[g["assignment"]]["number"]
        shown = [r for r in g["results"] if visibility.get(r["check"], "visible") == "visible"]
        got, most = sum(r["score"] for r in shown), sum(r["max_score"] for r in shown)
        if len(shown) == len(g["results"]):
            lines.append(f"{g['file']}: {got:g} / {most:g} points")
        else:  # the sum must not give away the checks students may not see yet
            lines.append(f"{g['file']}: {got:g} / {most:g} points in the {len(shown)} visible checks "
                         f"({len(g['results']) - len(shown)} more not shown yet)")
        if g.get("found"):
            lines.append(g["found"])
        for i, r in enumerate(g["results"], 1):
            tests.append({"name": f"{g['file']}: {r['name']}", "number": f"{number}.{i}", "score": r["score"],
                          "max_score": r["max_score"], "output": r["output"],
                          "visibility": visibility.get(r["check"], "visible")})
            score += r["score"]
        if g.get("output"):
            lines.append(f"Output of your {g['file']} during grading (capped):\n{g['output'].rstrip()}")
    return {"score": round(score, 4), "execution_time": int(round(elapsed)), "output": "\n".join(lines),
            "tests": tests}


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(text):
    """``text`` with every control character but newline and tab shown as an escape (``\\x1b``):
    a message built from a submission's exception cannot move the cursor or erase a line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def _path_text(path):
    """A file name from the submission on one printable line: control characters (newlines too)
    and undecodable bytes escaped, so a folder name cannot forge a line of the report."""
    text = _printable(path.encode("utf-8", "backslashreplace").decode("utf-8"))
    return text.replace("\n", "\\n").replace("\t", "\\t")


def format_table(gradings):
    """The terminal table: one row per check; a message's further lines are marked with "|" so
    no line of a message can pass for a row."""
    out = []
    for g in gradings:
        rows = [(f"{ASSIGNMENTS[g['assignment']]['number']}.{i}", r["check"], f"{r['score']:g}", f"{r['max_score']:g}",
                 r["output"]) for i, r in enumerate(g["results"], 1)]
        w = max(len(r[1]) for r in rows)
        out.append(f"== {g['file']} ({ASSIGNMENTS[g['assignment']]['title']}) ==")
        out.append(f"{'#':<5} {'check':<{w}} {'points':>6} {'max':>4}  message")
        for num, key, s, m, msg in rows:
            first, *rest = _printable(msg).split("\n")
            out.append(f"{num:<5} {key:<{w}} {s:>6} {m:>4}  {first}")
            out.extend(" " * (w + 18) + "| " + line for line in rest)
        total = sum(r["score"] for r in g["results"])
        out.append(f"{'':<5} {'total':<{w}} {total:>6g} {sum(r['max_score'] for r in g['results']):>4g}")
        for note in g.get("notes", []):
            out.append(f"({note})")
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------ gradescope bundle
def _read_pins(requirements):
    pins = {}
    with open(requirements, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)", line)
            if m:
                pins[m.group(1).lower()] = m.group(2)
    return pins


GRADESCOPE = os.path.join(HERE, "gradescope")  # setup.sh and run_autograder, shipped as they are


# what submissions may import besides torch/torchvision, installed by setup.sh as pinned in
# requirements.txt, the same packages the local grader's environment has
ALLOWED_PYPI = ("numpy", "scipy", "scikit-learn", "pillow", "matplotlib", "tqdm")
# the same list as the top-level modules a submission may import (the worker refuses others)
ALLOWED_MODULES = ("torch", "torchvision", "numpy", "scipy", "sklearn", "PIL", "matplotlib", "tqdm")


def make_bundle(assignment, out_zip, timeout=DEFAULT_TIMEOUT, visibility=None, hide_expected=False):
    """Write the Gradescope autograder zip for ``assignment``; returns the list of members.
    ``visibility`` ({check: level}) and ``hide_expected`` are written to grading.env, which
    run_autograder passes on to every grading."""
    info = ASSIGNMENTS[assignment]
    reference = os.path.join(HERE, info["file"])
    requirements = os.path.join(HERE, "requirements.txt")
    pins = _read_pins(requirements)
    parse_visibility([f"{k}={v}" for k, v in (visibility or {}).items()])  # ValueError before writing
    missing = [p for p in ("torch", "torchvision", "numpy") if p not in pins]
    if missing:
        raise ValueError(f"{requirements} pins no version of {', '.join(missing)}")
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"the timeout must be a positive number of seconds, got {timeout!r}")

    def script(name):
        with open(os.path.join(GRADESCOPE, name), encoding="utf-8") as f:
            return f.read()

    members = {
        "setup.sh": (script("setup.sh"), 0o755),
        "run_autograder": (script("run_autograder"), 0o755),
        "grading.env": (f"ASSIGNMENT={assignment}\nTIMEOUT={float(timeout):g}\n"
                        + (f"VISIBILITY={','.join(f'{k}={v}' for k, v in visibility.items())}\n" if visibility else "")
                        + ("HIDE_EXPECTED=1\n" if hide_expected else ""), 0o644),
        "autograde.py": (open(os.path.abspath(__file__), encoding="utf-8").read(), 0o644),
        "autograde_worker.py": (open(WORKER_FILE, encoding="utf-8").read(), 0o644),
        "common.py": (open(os.path.join(HERE, "common.py"), encoding="utf-8").read(), 0o644),
        info["file"]: (open(reference, encoding="utf-8").read(), 0o644),
        "requirements.txt": ("".join(f"{p}=={pins[p]}\n" for p in ("torch", "torchvision") + ALLOWED_PYPI
                                     if p in pins), 0o644),
    }
    from common import atomic_write  # trusted side only: the worker never imports common

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name, (text, mode) in members.items():
                zi = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                zi.external_attr = (stat.S_IFREG | mode) << 16
                zi.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(zi, text)

    atomic_write(out_zip, write)
    return list(members)


# ---------------------------------------------------------------------------------- CLI
def _grader_file(path):
    """True when ``path`` (a link followed) is one of the files the grader reads: writing there
    would break every later grading."""
    mine = ["autograde.py", "autograde_worker.py", "common.py", "requirements.txt",
            os.path.join("gradescope", "setup.sh"), os.path.join("gradescope", "run_autograder")]
    mine += [info["file"] for info in ASSIGNMENTS.values()]
    return any(_same_file(path, os.path.join(HERE, f)) for f in mine)


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _find_submission(folder, name, max_depth=4):
    """The file ``name`` in ``folder`` or its subfolders (a zipped upload), matched without
    regard to case; regular files only, hidden folders and __MACOSX skipped. With several, the
    best-named one: exact case first, then the shallowest, then by path. Returns (path or None,
    note saying which file was graded when that is not simply ``folder/name``)."""
    found = []
    base = os.path.abspath(folder)
    for root, dirs, files in os.walk(base):
        depth = os.path.relpath(root, base).count(os.sep) + (root != base)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX" and depth < max_depth
                         and not os.path.islink(os.path.join(root, d)))
        for f in files:
            p = os.path.join(root, f)
            if f.lower() == name.lower() and not os.path.islink(p) and os.path.isfile(p):
                found.append((f != name, depth, os.path.relpath(p, base), p))
    if not found:
        return None, ""
    found.sort()
    best = found[0]
    if best[2] == name and len(found) == 1:
        return best[3], ""
    note = f"graded {_path_text(best[2])}"
    if len(found) > 1:
        note += f" (of {len(found)} candidates: {', '.join(_path_text(c[2]) for c in found[:5])})"
    return best[3], note


def _probe_memory_limit(memory_mb):
    """'' when torch imports under RLIMIT_AS = ``memory_mb``, else the one-line reason (probed
    once per run, so a too-low limit is the grader's error, not every student's zero)."""
    try:
        proc = subprocess.run([sys.executable, "-I", "-c", "import torch"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
                              preexec_fn=_limits(int(memory_mb) * 2**20))
    except (OSError, subprocess.SubprocessError):
        return f"grader memory limit too low for torch ({memory_mb} MB)"
    return "" if proc.returncode == 0 else f"grader memory limit too low for torch ({memory_mb} MB)"


_SUBREAPER = []


def _become_subreaper():
    """Linux: orphaned descendants of the workers (e.g. a ``setsid`` daemon started by a
    submission) are re-parented to this process, so ``_kill_orphans`` can find and kill them
    even without a PID namespace."""
    with contextlib.suppress(Exception):
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0:  # PR_SET_CHILD_SUBREAPER
            _SUBREAPER.append(True)


def _children(pid):
    kids = []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(f"/proc/{entry}/stat", "rb") as f:
                    data = f.read()
                if int(data[data.rindex(b")") + 2:].split()[1]) == pid:
                    kids.append(int(entry))
    return kids


def _kill_orphans():
    """SIGKILL every remaining descendant of this process (and reap it), repeatedly, since a
    killed process's own children are re-parented here in turn."""
    me = os.getpid()
    for _ in range(100):
        kids = _children(me)
        if not kids:
            return
        for pid in kids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in kids:
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)


def build_parser():
    from common import ArgumentParser  # trusted side only (see make_bundle)

    p = ArgumentParser(
        prog="autograde.py",
        description="Grade a student's hw5.py (GAN) or hw2_ResNet.py (ResNet) against the reference next to this "
                    "file, each in a sandboxed subprocess, and print a table (check, points, max, message). "
                    "Exit status 0 whenever grading finished, whatever the score; 2 for misuse.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("submission", nargs="?", metavar="SUBMISSION",
                   help="a hw5.py, a hw2_ResNet.py, or a folder holding one or both")
    p.add_argument("--results", metavar="PATH", default=None,
                   help="also write Gradescope's results JSON to PATH (its folder must exist)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="wall-clock seconds per assignment for the import and all checks")
    p.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB,
                   help="address-space limit of the grading subprocess (RLIMIT_AS), in MB")
    p.add_argument("--json-only", action="store_true",
                   help="print only the results JSON on stdout (no table)")
    p.add_argument("--assignment", choices=sorted(ASSIGNMENTS), default=None,
                   help="grade SUBMISSION as this assignment whatever its name; with a folder that lacks the "
                        "expected file, the result is a zero score that says so (what run_autograder uses)")
    p.add_argument("--visibility", action="append", metavar="[KEY=]LEVEL", default=None,
                   help=f"Gradescope visibility of check KEY (or of every check), comma-separated and repeatable; "
                        f"LEVEL is one of {', '.join(VISIBILITY_LEVELS)} (default: each check's declared one)")
    p.add_argument("--hide-expected", action="store_true",
                   help="messages say [hidden] in place of expected values (layers, shapes, counts, V)")
    p.add_argument("--gradescope-bundle", nargs=2, metavar=("hw5|hw2", "OUT.zip"), default=None,
                   help="write the Gradescope autograder zip (gradescope/setup.sh and run_autograder, grading.env, "
                        "autograde.py, autograde_worker.py, common.py, the "
                        "reference) for one assignment instead of grading")
    return p


def _missing_file_grading(assignment, folder, hide_expected=False):
    found = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    label = ASSIGNMENTS[assignment]["file"]
    msg = (f"no {label} in your submission (found: {', '.join(map(_path_text, found[:20])) if found else 'nothing'}); "
           f"upload {label}")
    results = [{"check": k, "name": render(d, hide_expected), "score": 0.0, "max_score": float(p), "output": msg}
               for k, p, d in POINTS[assignment]]
    return {"assignment": assignment, "file": label, "results": results, "output": "", "notes": [], "seconds": 0.0}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    from common import atomic_write_bytes, check_out_dir, writable_target  # trusted side only (see make_bundle)

    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.memory_mb < 512 or args.memory_mb > MAX_MEMORY_MB:
        parser.error(f"--memory-mb must be between 512 and {MAX_MEMORY_MB}, got {args.memory_mb}")
    try:
        visibility = parse_visibility(args.visibility)
    except ValueError as e:
        parser.error(f"--visibility {e}")
    if args.gradescope_bundle:
        if args.submission:
            parser.error("give either SUBMISSION or --gradescope-bundle, not both")
        assignment, out_zip = args.gradescope_bundle
        if assignment not in ASSIGNMENTS:
            parser.error(f"--gradescope-bundle: the assignment must be hw5 or hw2, got {assignment!r}")
        folder = os.path.dirname(os.path.abspath(out_zip))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            parser.error(f"--gradescope-bundle: cannot write {out_zip!r} (its folder must exist and be writable)")
        if os.path.isdir(out_zip):
            parser.error(f"--gradescope-bundle: {out_zip!r} is a folder; name the zip file to write")
        if _grader_file(out_zip):
            parser.error(f"--gradescope-bundle: {out_zip!r} is one of the grader's own files; choose another path")
        try:
            members = make_bundle(assignment, out_zip, timeout=args.timeout, visibility=visibility,
                                  hide_expected=args.hide_expected)
        except (OSError, ValueError) as e:
            print(f"autograde.py: error: cannot write the bundle: {e}", file=sys.stderr)
            return EXIT_MISUSE
        print(f"wrote {out_zip}: {', '.join(members)}")
        print(f"upload it as the Gradescope autograder of {assignment} (base image: Ubuntu 24.04)")
        return 0
    if not args.submission:
        parser.error("the SUBMISSION argument is required (a hw5.py, a hw2_ResNet.py, or a folder)")
    path = args.submission
    if not os.path.exists(path):
        parser.error(f"no such file or folder: {path!r}")
    if args.results is not None:
        folder = os.path.dirname(os.path.abspath(args.results))
        if os.path.isdir(args.results):
            parser.error(f"--results: {args.results!r} is a folder; name the JSON file to write")
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            parser.error(f"--results: cannot write {args.results!r} (its folder must exist and be writable)")
        if _grader_file(args.results):
            parser.error(f"--results: {args.results!r} is one of the grader's own files; choose another path")
        try:  # a real write probe (e.g. /proc accepts no new file) before any grading
            check_out_dir(folder, "--results")
            writable_target(args.results)  # /dev/full, a FIFO: refused now, not after grading
        except (OSError, ValueError) as e:
            parser.error(f"--results: cannot write {args.results!r} ({e})")
        if _same_file(args.results, path) or (os.path.isdir(path) and any(
                _same_file(args.results, os.path.join(path, info["file"])) for info in ASSIGNMENTS.values())):
            parser.error(f"--results {args.results!r} is the submission itself; choose another path")
    if args.memory_mb != DEFAULT_MEMORY_MB:
        problem = _probe_memory_limit(args.memory_mb)
        if problem:
            print(f"autograde.py: error: {problem}", file=sys.stderr)
            return EXIT_MISUSE
    jobs = []  # (assignment, file or None)
    found_notes = {}
    if os.path.isdir(path):
        if args.assignment:
            f, found_note = _find_submission(path, ASSIGNMENTS[args.assignment]["file"])
            if f is None:
                py = [n for n in sorted(os.listdir(path)) if n.endswith(".py")]
                f = os.path.join(path, py[0]) if len(py) == 1 else None
            if found_note:
                found_notes[args.assignment] = found_note
            jobs.append((args.assignment, f))
        else:
            for a, info in ASSIGNMENTS.items():
                f = os.path.join(path, info["file"])
                if os.path.isfile(f):
                    jobs.append((a, f))
            if not jobs:
                parser.error(f"the folder {path!r} holds neither hw5.py nor hw2_ResNet.py")
            jobs.sort(key=lambda j: list(ASSIGNMENTS).index(j[0]))
    else:
        name = os.path.basename(path)
        assignment = args.assignment or FILE_TO_ASSIGNMENT.get(name)
        if assignment is None:
            parser.error(f"cannot tell the assignment from the file name {name!r}: expected hw5.py or "
                         f"hw2_ResNet.py (or pass --assignment hw5|hw2)")
        jobs.append((assignment, path))
    t0 = time.monotonic()
    gradings = []
    for assignment, f in jobs:
        if f is None:
            gradings.append(_missing_file_grading(assignment, path, args.hide_expected))
            continue
        try:
            g = grade_assignment(assignment, f, timeout=args.timeout, memory_mb=args.memory_mb,
                                 hide_expected=args.hide_expected)
        except Exception as e:  # noqa: BLE001 - a bug of the grader itself: still a results file
            g = _missing_file_grading(assignment, path, args.hide_expected)
            message = f"autograder error ({type(e).__name__}: {e}); please tell the course staff"
            for r in g["results"]:
                r["output"] = message
            print(f"autograde.py: internal error while grading {f}:\n{traceback.format_exc()}", file=sys.stderr)
        if assignment in found_notes:
            g["notes"].append(found_notes[assignment])
            g["found"] = found_notes[assignment]  # results.json's output says which file was graded
        elif os.path.basename(f) != ASSIGNMENTS[assignment]["file"]:
            g["notes"].append(f"graded {_path_text(os.path.basename(f))} as {ASSIGNMENTS[assignment]['file']}")
        gradings.append(g)
    report = results_json(gradings, time.monotonic() - t0, visibility)
    text = json.dumps(report, indent=2)
    if args.results is not None:
        try:
            atomic_write_bytes(args.results, text + "\n")
        except (OSError, ValueError) as e:
            print(f"autograde.py: error: {e}", file=sys.stderr)  # names the file
            return EXIT_MISUSE
    if args.json_only:
        print(text)
    else:
        print(format_table(gradings))
        total = sum(r["max_score"] for g in gradings for r in g["results"])
        print(f"score: {report['score']:g} / {total:g} in {time.monotonic() - t0:.1f} s"
              + (f"; results written to {args.results}" if args.results else ""))
    return 0


class _Terminated(BaseException):
    """SIGTERM/SIGHUP to the grader: unwinds like Ctrl-C, so every worker tree is killed and
    every sandbox removed by the ``finally`` blocks on the way out."""


def _on_terminate(signum, frame):
    raise _Terminated(signum)


def cli():
    """``python autograde.py``: Ctrl-C exits 130, SIGTERM 143, SIGHUP 129, without a traceback;
    the worker trees and sandboxes are cleaned up first."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_terminate)
    from common import quiet_exit

    _become_subreaper()
    try:
        with quiet_exit("autograde.py"):
            return main()
    except _Terminated as t:
        print(f"autograde.py: stopped by {signal.Signals(t.args[0]).name}", file=sys.stderr)
        return 128 + t.args[0]
    finally:
        _kill_orphans()


if __name__ == "__main__":
    sys.exit(cli())
