"""Grade a student's hw5.py (GAN) or hw2_ResNet.py (ResNet) against the reference, safely.

    python autograde.py SUBMISSION [--results PATH] [--timeout SECONDS] [--json-only]
    python autograde.py --gradescope-bundle hw5|hw2 OUT.zip

SUBMISSION is a ``hw5.py``, a ``hw2_ResNet.py`` or a folder holding one or both; the file name
says which assignment it is. Every check and its points are in ``POINTS`` below (the README
shows the same table). The grader never trusts the submission: each assignment runs in its own
subprocess (a fresh temporary working directory holding only a copy of the file, a wall-clock
timeout, an address-space limit, a minimal environment, capped output, and a network/PID
namespace when ``unshare`` can make one). The worker reports one JSON line per finished check
through a pipe, so a hang, crash or exit mid-way keeps the results of the checks that ran; a
crash inside a check zeroes that check and the worker is restarted for the rest.

The reference implementation is the ``hw5.py`` / ``hw2_ResNet.py`` next to this file; the worker
imports it under a private module name, and the submission under another, so they never collide.
This module imports no third-party package itself: only the worker imports torch.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import errno
import io
import itertools
import json
import math
import os
import re
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))

ASSIGNMENTS = {
    "hw5": {"file": "hw5.py", "number": 5, "title": "hw5 (GAN)"},
    "hw2": {"file": "hw2_ResNet.py", "number": 2, "title": "hw2 (ResNet)"},
}
FILE_TO_ASSIGNMENT = {v["file"]: k for k, v in ASSIGNMENTS.items()}

# ------------------------------------------------------------------------------------------
# THE POINT TABLE: (key, points, what the check verifies). One table, in grading order.
# ------------------------------------------------------------------------------------------
POINTS = {
    "hw5": (
        ("import", 4, "imports alone, without error, within the time limit"),
        ("import_quiet", 2, "importing prints nothing, writes no file, opens no network connection"),
        ("D_shape", 6, "Discriminator: output shape (N,) for N = 1, 7, 64 and values in (0, 1)"),
        ("D_layers", 8, "Discriminator: the layers and hyperparameters of Table 1, in order"),
        ("D_params", 4, "Discriminator: 97,281 parameters"),
        ("D_function", 10, "Discriminator: with the reference's weights, D(x) equals the reference's (1e-5)"),
        ("G_shape", 6, "Generator: output shape (N, 1, 32, 32) for N = 1, 7, 64 and values in (-1, 1)"),
        ("G_layers", 8, "Generator: the layers and hyperparameters of Table 2, in order"),
        ("G_params", 4, "Generator: 172,401 parameters"),
        ("G_function", 10, "Generator: with the reference's weights, G(z) equals the reference's (1e-5)"),
        ("V_value", 12, "calculate_V: equals mean log D(x) + mean log(1 - D(G(z))) (1e-5)"),
        ("V_grads", 8, "calculate_V: its gradients wrt D's and G's parameters equal the reference's"),
        ("D_optimizer", 4, "GAN().D_optimizer: Adam, lr 2e-4, over exactly D's parameters"),
        ("G_optimizer", 4, "GAN().G_optimizer: Adam, lr 1e-3, over exactly G's parameters"),
        ("train", 10, "GAN().train(1) on a tiny in-memory loader: runs, no download, updates D and G, finite weights"),
    ),
    "hw2": (
        ("import", 4, "imports alone, without error, within the time limit"),
        ("import_quiet", 2, "importing prints nothing, writes no file, opens no network connection"),
        ("Block_shape", 6, "Block(C), C = 1, 4, 16: output shape equals the input shape"),
        ("Block_no_bias", 6, "Block(C): its convolutions have no bias"),
        ("Block_layers", 10, "Block(C): Conv3x3 -> BN -> ReLU -> Conv3x3 -> BN, then ReLU(x + f(x)), in order"),
        ("Block_train", 12, "Block(C): with the reference's weights, output equals the reference's in train mode"),
        ("Block_eval", 8, "Block(C): with the reference's weights and BN statistics, equal output in eval mode"),
        ("ResNet_shape", 8, "ResNet(C), C = 1, 4, 16: output (N, 10) for 8x8 and 28x28 inputs"),
        ("ResNet_no_bias", 4, "ResNet(C): its convolutions have no bias"),
        ("ResNet_layers", 12, "ResNet(C): Conv(1, C, 3, stride 2, pad 1) -> BN -> ReLU -> MaxPool(2) -> Block -> "
                              "AdaptiveAvgPool(1) -> Linear(C, 10)"),
        ("ResNet_params", 8, "ResNet(C): 18C^2 + 25C + 10 parameters"),
        ("ResNet_train", 12, "ResNet(C): with the reference's weights, output equals the reference's in train mode"),
        ("ResNet_eval", 8, "ResNet(C): with the reference's weights and BN statistics, equal output in eval mode"),
    ),
}

DEFAULT_TIMEOUT = 60.0  # seconds of wall-clock time per assignment (import + all checks)
DEFAULT_MEMORY_MB = 4096  # RLIMIT_AS of the worker (torch itself needs ~2 GB of address space)
CHECK_LIMIT_FRACTION = 0.25  # one check (other than the import) may use at most this share of --timeout ...
CHECK_LIMIT_MIN = 5.0  # ... but never less than this many seconds (always bounded by what is left)
FILE_SIZE_LIMIT = 64 * 2**20  # RLIMIT_FSIZE: no file the submission writes grows beyond 64 MB
OUTPUT_CAP = 8192  # bytes of the submission's stdout/stderr kept per assignment (the rest is counted)
MESSAGE_CAP = 1500  # characters of one check's message
MAX_SOURCE_BYTES = 2 * 2**20  # a larger "source file" is not graded
EXIT_MISUSE = 2
MAX_MEMORY_MB = 1 << 20  # 1 TB: larger values are a typo (and overflow RLIMIT_AS on some systems)


def total_points(assignment):
    return sum(points for _, points, _ in POINTS[assignment])


# ==========================================================================================
# worker side: everything below up to "grader side" runs inside the sandboxed subprocess
# (or in-process for the tests, see grade_in_process). torch is imported lazily here.
# ==========================================================================================
class CheckFail(Exception):
    """A check failed: the message says why; the check scores 0."""


def _short(text, limit=MESSAGE_CAP):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 20] + f" ... [{len(text) - limit + 20} more chars]"


def _exc_message(exc, student_path, label):
    """'TypeError: ... (your hw5.py, line 12: `...`)' for an exception raised by student code."""
    if isinstance(exc, SyntaxError) and exc.filename and os.path.abspath(exc.filename) == student_path:
        line = (exc.text or "").strip()
        return f"SyntaxError in your {label}, line {exc.lineno}: {exc.msg}" + (f": `{line}`" if line else "")
    if isinstance(exc, SystemExit):
        return f"your code called sys.exit({exc.code!r})"
    if isinstance(exc, KeyboardInterrupt):
        return "your code raised KeyboardInterrupt"
    if not isinstance(exc, Exception) and type(exc).__module__ != "builtins":
        return (f"your code raised {type(exc).__name__} (a BaseException subclass, not an Exception)"
                + (f": {_short(str(exc), 300)}" if str(exc) else ""))
    where = ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) == student_path]
    if frames:
        f = frames[-1]
        where = f" (your {label}, line {f.lineno}" + (f": `{f.line.strip()}`)" if f.line else ")")
    text = str(exc).strip().splitlines()
    text = text[0] if len(text) == 1 else " ".join(t.strip() for t in text[:3])
    return f"{type(exc).__name__}{': ' + _short(text, 400) if text else ''}{where}"


class _CappedText(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit=4000):
        super().__init__()
        self.limit = limit
        self.kept = []
        self.size = 0
        self.total = 0

    def write(self, s):
        s = str(s)
        self.total += len(s)
        if self.size < self.limit:
            part = s[: self.limit - self.size]
            self.kept.append(part)
            self.size += len(part)
        return len(s)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self):
        return False

    def writable(self):
        return True

    @property
    def encoding(self):
        return "utf-8"

    def text(self):
        return "".join(self.kept)


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


_NETWORK_LOG = []  # one line per blocked network attempt


def _install_network_block():
    """Make every socket connect/DNS lookup fail (and record it). Returns an undo function."""
    import socket

    originals = []

    def patch(obj, name, what):
        original = getattr(obj, name, None)
        if original is None:
            return
        originals.append((obj, name, original))

        def blocked(*args, **kwargs):
            target = args[1] if what == "method" and len(args) > 1 else (args[0] if args else kwargs)
            _NETWORK_LOG.append(f"{name}({target!r})")
            raise PermissionError(errno.EACCES, "network access is blocked by the autograder")

        setattr(obj, name, blocked)

    for name in ("connect", "connect_ex", "sendto", "sendmsg"):
        patch(socket.socket, name, "method")
    for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
        patch(socket, name, "function")

    def undo():
        for obj, name, original in reversed(originals):
            setattr(obj, name, original)

    return undo


def _load_module(name, path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


@contextlib.contextmanager
def _patched(obj, **attrs):
    """Temporarily set attributes (restoring, or deleting those that did not exist)."""
    missing = object()
    old = {k: getattr(obj, k, missing) for k in attrs}
    for k, v in attrs.items():
        setattr(obj, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is missing:
                try:
                    delattr(obj, k)
                except AttributeError:
                    pass
            else:
                setattr(obj, k, v)


# ---------------------------------------------------------------------- execution tracing
def _arg(args, kwargs, i, key, default=None):
    if len(args) > i:
        return args[i]
    return kwargs.get(key, default)


def _norm(v):
    """int/tuple/list -> int when all entries are equal (3 == (3, 3)), else a tuple."""
    if isinstance(v, (tuple, list)):
        v = tuple(int(x) for x in v)
        return v[0] if v and len(set(v)) == 1 else v
    if hasattr(v, "item"):
        v = v.item()
    return v


def _conv_padding(padding, kernel, dilation):
    if padding == "valid":
        return 0
    if padding == "same":
        k = kernel if isinstance(kernel, int) else kernel[0]
        d = dilation if isinstance(dilation, int) else dilation[0]
        return d * (k - 1) // 2
    return _norm(padding)


def _describe_op(name, args, kwargs):
    """A dict describing one layer-like torch call (None for everything else)."""
    import torch

    if name in ("conv2d", "conv_transpose2d"):
        w = _arg(args, kwargs, 1, "weight")
        b = _arg(args, kwargs, 2, "bias")
        if not isinstance(w, torch.Tensor) or w.dim() != 4:
            return None
        stride = _norm(_arg(args, kwargs, 3, "stride", 1))
        if name == "conv2d":
            dilation = _norm(_arg(args, kwargs, 5, "dilation", 1))
            groups = int(_arg(args, kwargs, 6, "groups", 1))
            cin, cout = w.shape[1] * groups, w.shape[0]
        else:
            dilation = _norm(_arg(args, kwargs, 7, "dilation", 1))
            groups = int(_arg(args, kwargs, 6, "groups", 1))
            cin, cout = w.shape[0], w.shape[1] * groups
        kernel = _norm(tuple(w.shape[2:]))
        padding = _conv_padding(_arg(args, kwargs, 4, "padding", 0), kernel, dilation)
        return {"type": "Conv2d" if name == "conv2d" else "ConvTranspose2d", "in": int(cin), "out": int(cout),
                "kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation, "groups": groups,
                "bias": b is not None}
    if name == "linear":
        w = _arg(args, kwargs, 1, "weight")
        b = _arg(args, kwargs, 2, "bias")
        if not isinstance(w, torch.Tensor) or w.dim() != 2:
            return None
        return {"type": "Linear", "in": int(w.shape[1]), "out": int(w.shape[0]), "bias": b is not None}
    if name in ("leaky_relu", "leaky_relu_"):
        return {"type": "LeakyReLU", "slope": float(_arg(args, kwargs, 1, "negative_slope", 0.01))}
    if name in ("relu", "relu_"):
        return {"type": "ReLU"}
    if name in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d"):
        k = _norm(_arg(args, kwargs, 1, "kernel_size"))
        s = _arg(args, kwargs, 2, "stride", None)
        s = k if s is None or (isinstance(s, (tuple, list)) and len(s) == 0) else _norm(s)
        p = _norm(_arg(args, kwargs, 3, "padding", 0))
        return {"type": "MaxPool2d" if name != "avg_pool2d" else "AvgPool2d", "kernel": k, "stride": s, "padding": p}
    if name == "adaptive_avg_pool2d":
        return {"type": "AdaptiveAvgPool2d", "size": _norm(_arg(args, kwargs, 1, "output_size"))}
    if name == "mean":
        x = args[0] if args else None
        dims = _arg(args, kwargs, 1, "dim", None)
        if isinstance(x, torch.Tensor) and x.dim() == 4 and isinstance(dims, (tuple, list)):
            if sorted(int(d) % 4 for d in dims) == [2, 3]:
                return {"type": "AdaptiveAvgPool2d", "size": 1}
        return None
    if name == "batch_norm":
        x = args[0] if args else None
        w = _arg(args, kwargs, 3, "weight")
        rm = _arg(args, kwargs, 1, "running_mean")
        ref = w if isinstance(w, torch.Tensor) else rm if isinstance(rm, torch.Tensor) else None
        c = int(ref.shape[0]) if ref is not None else (int(x.shape[1]) if isinstance(x, torch.Tensor) else None)
        return {"type": "BatchNorm2d", "features": c}
    if name in ("sigmoid", "sigmoid_"):
        return {"type": "Sigmoid"}
    if name in ("tanh", "tanh_"):
        return {"type": "Tanh"}
    if name in ("dropout", "dropout2d", "feature_dropout", "alpha_dropout", "dropout_"):
        return {"type": "Dropout"}
    if name in ("softmax", "log_softmax", "elu", "selu", "gelu", "silu", "softplus", "hardtanh", "relu6",
                "prelu", "layer_norm", "group_norm", "instance_norm", "interpolate", "upsample", "celu",
                "hardswish", "mish", "logsigmoid", "softsign", "tanhshrink", "threshold"):
        return {"type": name}
    return None


def _fmt_op(op):
    t = op["type"]
    if t in ("Conv2d", "ConvTranspose2d"):
        extra = ""
        if op.get("dilation", 1) != 1:
            extra += f", dilation {op['dilation']}"
        if op.get("groups", 1) != 1:
            extra += f", groups {op['groups']}"
        return (f"{t}({op['in']}->{op['out']}, kernel {op['kernel']}, stride {op['stride']}, "
                f"padding {op['padding']}{extra}{', bias' if op.get('bias') else ', no bias'})")
    if t == "Linear":
        return f"Linear({op['in']}->{op['out']}{', bias' if op.get('bias') else ', no bias'})"
    if t == "LeakyReLU":
        return f"LeakyReLU(slope {op['slope']:g})"
    if t in ("MaxPool2d", "AvgPool2d"):
        return f"{t}(kernel {op['kernel']}, stride {op['stride']}, padding {op['padding']})"
    if t == "AdaptiveAvgPool2d":
        return f"AdaptiveAvgPool2d({op['size']})"
    if t == "BatchNorm2d":
        return f"BatchNorm2d({op['features']})"
    return t


def _same_op(a, b, ignore=()):
    if a["type"] != b["type"]:
        return False
    for k in set(a) | set(b):
        if k in ignore or k == "type":
            continue
        x, y = a.get(k), b.get(k)
        if isinstance(x, float) or isinstance(y, float):
            if x is None or y is None or not math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-12):
                return False
        elif x != y:
            return False
    return True


def _trace(model, inp):
    """Run ``model(inp)`` recording every layer-like torch call in execution order.

    Returns (ops, used, out, error): the op dicts, the names of the model's parameters and
    buffers in order of first use by such a call, the output (None on error) and the
    exception the forward raised (None if none). Functional calls (F.relu, torch.sigmoid, ...)
    count like modules: what matters is what runs, not how the module tree is organised.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    tensors = {}
    for name, t in itertools.chain(model.named_parameters(), model.named_buffers()):
        tensors.setdefault(id(t), name)
    ops, used, seen = [], [], set()

    def note(value):
        if isinstance(value, torch.Tensor):
            name = tensors.get(id(value))
            if name is not None and name not in seen:
                seen.add(name)
                used.append(name)
        elif isinstance(value, (list, tuple)):
            for v in value:
                note(v)

    class Recorder(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            op = None
            try:
                op = _describe_op(getattr(func, "__name__", ""), args, kwargs)
            except Exception:  # noqa: BLE001 - odd arguments: just do not record this call
                op = None
            if op is not None:
                ops.append(op)
                for v in itertools.chain(args, kwargs.values()):
                    note(v)
            return func(*args, **kwargs)

    out, error = None, None
    try:
        with Recorder():
            out = model(inp)
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        error = exc
    return ops, used, out, error


def _compare_layers(ops, expected, what, ignore=(), error=None, ctx=None):
    """CheckFail naming the first difference between executed and expected layers."""
    got = [op for op in ops]
    for i, want in enumerate(expected):
        if i >= len(got):
            if error is not None:
                raise CheckFail(f"{what}: the forward pass raised {ctx.exc(error)} after layer {i} "
                                f"({_fmt_op(got[-1]) if got else 'none'}); layer {i + 1} should be {_fmt_op(want)}")
            raise CheckFail(f"{what}: {len(got)} layers ran, expected {len(expected)}; layer {i + 1} "
                            f"({_fmt_op(want)}) is missing")
        if not _same_op(got[i], want, ignore):
            raise CheckFail(f"{what}: layer {i + 1} is {_fmt_op(got[i])}, expected {_fmt_op(want)}")
    if len(got) > len(expected):
        extra = ", ".join(_fmt_op(op) for op in got[len(expected):][:3])
        raise CheckFail(f"{what}: {len(got)} layers ran, expected {len(expected)}; extra after the last one: {extra}")
    if error is not None:
        raise CheckFail(f"{what}: the forward pass raised {ctx.exc(error)}")


def _copy_weights(src, dst, src_used, dst_used, what):
    """Copy src's parameters (and BatchNorm buffers) into dst, matched by shape and by order of
    first use in the forward pass (registration order for unused ones)."""
    import collections

    import torch

    def groups(model, used, kind):
        named = dict(model.named_parameters()) if kind == "param" else dict(model.named_buffers())
        order = [n for n in used if n in named] + [n for n in named if n not in used]
        g = collections.OrderedDict()
        for n in order:
            t = named[n]
            g.setdefault((tuple(t.shape), t.dtype.is_floating_point), []).append(t)
        return g

    sp, dp = groups(src, src_used, "param"), groups(dst, dst_used, "param")
    if {k: len(v) for k, v in sp.items()} != {k: len(v) for k, v in dp.items()}:
        want = collections.Counter({k[0]: len(v) for k, v in sp.items()})
        have = collections.Counter({k[0]: len(v) for k, v in dp.items()})
        extra, missing = have - want, want - have
        parts = []
        if extra:
            parts.append("yours has extra " + ", ".join(f"{n} x {s}" for s, n in list(extra.items())[:4]))
        if missing:
            parts.append("yours lacks " + ", ".join(f"{n} x {s}" for s, n in list(missing.items())[:4]))
        raise CheckFail(f"cannot load the reference weights into your {what}: its parameter shapes differ "
                        f"from the reference's ({'; '.join(parts)})")
    with torch.no_grad():
        for key, tensors in sp.items():
            for s, d in zip(tensors, dp[key]):
                d.copy_(s)
        sb, db = groups(src, src_used, "buffer"), groups(dst, dst_used, "buffer")
        for key, tensors in sb.items():
            for s, d in zip(tensors, db.get(key, [])):
                d.copy_(s)


def _compare_outputs(got, want, what, tol=1e-5):
    import torch

    if not isinstance(got, torch.Tensor):
        raise CheckFail(f"{what} returned {type(got).__name__}, not a tensor")
    if got.numel() != want.numel():
        raise CheckFail(f"{what} has shape {tuple(got.shape)}, the reference's has {tuple(want.shape)}")
    g, w = got.detach().double().reshape(-1), want.detach().double().reshape(-1)
    if not torch.isfinite(g).all():
        raise CheckFail(f"{what} contains NaN or inf")
    err = (g - w).abs().max().item()
    scale = max(1.0, w.abs().max().item())
    if err > tol * scale:
        raise CheckFail(f"{what} differs from the reference's by up to {err:.3g} (tolerance {tol:g}) although "
                        f"both use the same weights: check the order of layers, the activations and forward()")


def _rand(*shape, seed=0, kind="normal"):
    import torch

    g = torch.Generator().manual_seed(seed)
    if kind == "normal":
        return torch.randn(*shape, generator=g)
    return torch.rand(*shape, generator=g) * 2 - 1  # uniform in [-1, 1): image-like


class _Ctx:
    """What a check needs: the student's module, the reference module, and helpers."""

    def __init__(self, assignment, student, reference, student_path, label):
        self.assignment = assignment
        self.mod = student
        self.ref = reference
        self.path = student_path
        self.label = label

    def exc(self, e):
        return _exc_message(e, self.path, self.label)

    def need(self, name):
        obj = getattr(self.mod, name, None)
        if obj is None:
            raise CheckFail(f"your {self.label} defines no {name}")
        return obj

    def build(self, name, *args):
        cls = self.need(name)
        try:
            return cls(*args)
        except Exception as e:  # noqa: BLE001
            raise CheckFail(f"{name}({', '.join(map(repr, args))}) raised {self.exc(e)}") from None

    def call(self, what, fn, *args):
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001
            raise CheckFail(f"{what} raised {self.exc(e)}") from None


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
NET = {
    "D": {"cls": "Discriminator", "table": TABLE1, "params": D_PARAMS, "range": (0.0, 1.0), "squash": "Sigmoid",
          "inp": lambda n, seed: _rand(n, 1, 32, 32, seed=seed, kind="uniform"), "out": lambda n: (n,),
          "inname": "x", "inshape": "(N, 1, 32, 32)"},
    "G": {"cls": "Generator", "table": TABLE2, "params": G_PARAMS, "range": (-1.0, 1.0), "squash": "Tanh",
          "inp": lambda n, seed: _rand(n, 128, seed=seed), "out": lambda n: (n, 1, 32, 32),
          "inname": "z", "inshape": "(N, 128)"},
}


def _check_net_shape(c, which):
    import torch

    spec = NET[which]
    lo, hi = spec["range"]
    torch.manual_seed(11)
    net = c.build(spec["cls"])
    for n in (1, 7, 64):
        x = spec["inp"](n, n)
        with torch.no_grad():
            out = c.call(f"{which}({spec['inname']}) for {spec['inname']} of shape {tuple(x.shape)}", net, x)
        if not isinstance(out, torch.Tensor):
            raise CheckFail(f"{which}({spec['inname']}) returned {type(out).__name__}, not a tensor")
        if tuple(out.shape) != spec["out"](n):
            raise CheckFail(f"{which}({spec['inname']}) for {spec['inname']} of shape {tuple(x.shape)} has shape "
                            f"{tuple(out.shape)}, expected {spec['out'](n)}")
        if not torch.isfinite(out).all():
            raise CheckFail(f"{which}({spec['inname']}) contains NaN or inf")
        if not ((out > lo) & (out < hi)).all():
            raise CheckFail(f"{which}({spec['inname']}) must lie in ({lo:g}, {hi:g}); found values from "
                            f"{out.min().item():.4g} to {out.max().item():.4g}")
    # larger random weights: a missing squashing layer shows up even if the default init hides it
    with torch.no_grad():
        g = torch.Generator().manual_seed(12)
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        x = spec["inp"](7, 13)
        out = c.call(f"{which}({spec['inname']})", net, x)
    if isinstance(out, torch.Tensor) and not ((out >= lo) & (out <= hi)).all():
        raise CheckFail(f"with larger random weights, {which}({spec['inname']}) leaves [{lo:g}, {hi:g}] "
                        f"({out.min().item():.4g} to {out.max().item():.4g}): is the final {spec['squash']} missing?")


def _check_net_layers(c, which):
    import torch

    spec = NET[which]
    torch.manual_seed(14)
    net = c.build(spec["cls"])
    ops, _, _, error = _trace(net, spec["inp"](2, 15))
    _compare_layers(ops, spec["table"], f"{which}'s forward pass", error=error, ctx=c)


def _check_net_params(c, which):
    spec = NET[which]
    net = c.build(spec["cls"])
    n = sum(p.numel() for p in net.parameters())
    if n != spec["params"]:
        raise CheckFail(f"{spec['cls']} has {n:,} parameters, expected {spec['params']:,}")


def _check_net_function(c, which):
    import torch

    spec = NET[which]
    torch.manual_seed(16)
    ref = getattr(c.ref, spec["cls"])()
    stu = c.build(spec["cls"])
    probe = spec["inp"](2, 17)
    _, ref_used, _, _ = _trace(ref, probe)
    _, stu_used, _, error = _trace(stu, probe)
    if error is not None:
        raise CheckFail(f"{which}({spec['inname']}) raised {c.exc(error)}")
    _copy_weights(ref, stu, ref_used, stu_used, spec["cls"])
    x = spec["inp"](5, 18)
    with torch.no_grad():
        want = ref(x)
        got = c.call(f"{which}({spec['inname']})", stu, x)
    _compare_outputs(got, want, f"{which}({spec['inname']}) with the reference's weights")


def chk_D_shape(c):
    _check_net_shape(c, "D")


def chk_D_layers(c):
    _check_net_layers(c, "D")


def chk_D_params(c):
    _check_net_params(c, "D")


def chk_D_function(c):
    _check_net_function(c, "D")


def chk_G_shape(c):
    _check_net_shape(c, "G")


def chk_G_layers(c):
    _check_net_layers(c, "G")


def chk_G_params(c):
    _check_net_params(c, "G")


def chk_G_function(c):
    _check_net_function(c, "G")


def _make_gan(c, fallback=False):
    """The student's ``GAN()``, built with the reference Discriminator/Generator in place of
    the student's (so a mistake in D or G costs points only in the D/G checks)."""
    cls = c.need("GAN")
    with _patched(c.mod, Discriminator=c.ref.Discriminator, Generator=c.ref.Generator):
        try:
            return cls()
        except Exception as e:  # noqa: BLE001
            if not fallback:
                raise CheckFail(f"GAN() raised {c.exc(e)}") from None
            gan = cls.__new__(cls)  # calculate_V can still be graded without __init__
            gan.D, gan.G = c.ref.Discriminator(), c.ref.Generator()
            return gan


def _v_setup(c):
    import torch
    from torch import nn

    torch.manual_seed(21)
    D, G = c.ref.Discriminator(), c.ref.Generator()
    with torch.no_grad():  # push D(.) away from 1/2 so that the real and fake terms differ
        [m for m in D.modules() if isinstance(m, nn.Linear)][-1].bias.add_(1.0)
    x, z = _rand(6, 1, 32, 32, seed=22, kind="uniform"), _rand(6, 128, seed=23)
    gan = _make_gan(c, fallback=True)
    gan.D, gan.G = D, G
    return gan, D, G, x, z


def _v_reference(D, G, x, z, dtype):
    import torch

    d_real, d_fake = D(x).to(dtype).reshape(-1), D(G(z)).to(dtype).reshape(-1)
    log_real = torch.clamp(torch.log(d_real), min=-100)
    log_fake = torch.clamp(torch.log(1 - d_fake), min=-100)
    return log_real.mean(), log_fake.mean(), torch.clamp(torch.log(d_fake), min=-100).mean()


def _call_v(c, gan, x, z):
    return c.call("calculate_V(x, z)", gan.calculate_V, x.clone(), z.clone())


def chk_V_value(c):
    import torch

    gan, D, G, x, z = _v_setup(c)
    with torch.no_grad():
        real, fake, fake_nonsat = (t.item() for t in _v_reference(D, G, x, z, torch.float64))
    V = _call_v(c, gan, x, z)
    if isinstance(V, torch.Tensor):
        if V.numel() != 1:
            raise CheckFail(f"calculate_V returned a tensor of shape {tuple(V.shape)}, expected a single number "
                            f"(the mean over the batch)")
        v = V.detach().double().item()
    elif isinstance(V, (int, float)):
        v = float(V)
    else:
        raise CheckFail(f"calculate_V returned {type(V).__name__}, expected a 0-dim tensor")
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
            raise CheckFail(f"{message} (got {v:.6f}, expected {want:.6f})")
    raise CheckFail(f"calculate_V(x, z) = {v:.6f}, expected mean log D(x) + mean log(1 - D(G(z))) = {want:.6f}")


def chk_V_grads(c):
    import torch

    gan, D, G, x, z = _v_setup(c)
    D_ref, G_ref = copy.deepcopy(D), copy.deepcopy(G)
    for p in itertools.chain(D.parameters(), G.parameters()):
        p.grad = None
    V = _call_v(c, gan, x, z)
    if not isinstance(V, torch.Tensor) or not V.requires_grad:
        raise CheckFail("calculate_V returned a value without a gradient (use torch operations on the outputs of "
                        "D and G; no .item(), float() or .detach())")
    if V.numel() != 1:
        raise CheckFail(f"calculate_V returned a tensor of shape {tuple(V.shape)}, expected a single number")
    c.call("calculate_V(x, z).backward()", V.reshape(()).backward)
    real, fake, _ = _v_reference(D_ref, G_ref, x, z, torch.float32)
    (real + fake).backward()
    pairs = {"D": list(zip(D.parameters(), D_ref.parameters())), "G": list(zip(G.parameters(), G_ref.parameters()))}
    num = den = 0.0
    errors = []
    for which, plist in pairs.items():
        if all(p.grad is None or not p.grad.abs().sum() for p, _ in plist):
            hint = " (is G(z) detached, or computed under torch.no_grad()?)" if which == "G" else ""
            errors.append(f"no gradient reaches {which}'s parameters{hint}")
            continue
        worst = 0.0
        for p, q in plist:
            g = p.grad if p.grad is not None else torch.zeros_like(q.grad)
            g, r = g.double(), q.grad.double()
            num += float((g * r).sum())
            den += float((r * r).sum())
            worst = max(worst, (g - r).abs().max().item() / max(r.abs().max().item(), 1e-12))
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
    import torch

    gan = _make_gan(c)
    name = f"{which}_optimizer"
    opt = getattr(gan, name, None)
    model = getattr(gan, which, None)
    if opt is None:
        raise CheckFail(f"GAN() has no attribute {name}")
    if model is None:
        raise CheckFail(f"GAN() has no attribute {which}")
    if type(opt) is not torch.optim.Adam:
        raise CheckFail(f"{name} is {type(opt).__module__}.{type(opt).__name__}, expected torch.optim.Adam")
    for group in opt.param_groups:
        got = float(group["lr"])
        if not math.isclose(got, lr, rel_tol=1e-9):
            raise CheckFail(f"{name} has learning rate {got:g}, expected {lr:g}")
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    want = {id(p) for p in model.parameters()}
    other = "G" if which == "D" else "D"
    others = {id(p) for p in getattr(gan, other).parameters()} if hasattr(gan, other) else set()
    if set(ids) != want:
        if set(ids) & others:
            raise CheckFail(f"{name} optimizes (some of) {other}'s parameters; it must optimize {which}'s")
        raise CheckFail(f"{name} optimizes {len(set(ids) & want)} of {which}'s {len(want)} parameter tensors and "
                        f"{len(set(ids) - want)} others; it must optimize exactly {which}.parameters()")


def chk_D_optimizer(c):
    _check_adam(c, "D", 2e-4)


def chk_G_optimizer(c):
    _check_adam(c, "G", 1e-3)


def _tiny_images(n=16, seed=31):
    return _rand(n, 1, 32, 32, seed=seed, kind="uniform").clamp(-1, 1)


def _install_data_stubs(c):
    """Data loading without downloads: the module's get_data_loader and torchvision's MNIST
    return 16 in-memory images (one batch), so ``train`` never touches the network."""
    import torch

    def tiny_loader(*args, **kwargs):
        images = _tiny_images()
        labels = torch.zeros(len(images), dtype=torch.long)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=len(images))

    undo = []
    if callable(getattr(c.mod, "get_data_loader", None)):
        original = c.mod.get_data_loader
        c.mod.get_data_loader = tiny_loader
        undo.append(lambda: setattr(c.mod, "get_data_loader", original))

    def patch_torchvision(tvd):
        import numpy as np
        from PIL import Image

        original_mnist = tvd.MNIST

        class TinyMNIST(torch.utils.data.Dataset):
            """16 random 28x28 digits in place of MNIST (the autograder never downloads)."""

            classes = [str(i) for i in range(10)]

            def __init__(self, root=None, train=True, transform=None, target_transform=None, download=False,
                         **kwargs):
                g = torch.Generator().manual_seed(32)
                self.data = torch.randint(0, 256, (16, 28, 28), generator=g, dtype=torch.uint8)
                self.targets = torch.arange(16) % 10
                self.transform, self.target_transform = transform, target_transform
                self.root, self.train = root, train

            def __len__(self):
                return len(self.data)

            def __getitem__(self, i):
                img = Image.fromarray(np.asarray(self.data[i]), mode="L")
                target = int(self.targets[i])
                if self.transform is not None:
                    img = self.transform(img)
                if self.target_transform is not None:
                    target = self.target_transform(target)
                return img, target

        tvd.MNIST = TinyMNIST
        undo.append(lambda: setattr(tvd, "MNIST", original_mnist))
        for key, value in list(vars(c.mod).items()):
            if value is original_mnist:
                setattr(c.mod, key, TinyMNIST)
                undo.append(lambda key=key: setattr(c.mod, key, original_mnist))

    if "torchvision.datasets" in sys.modules:
        patch_torchvision(sys.modules["torchvision.datasets"])
    else:  # patch it if and when the submission imports it (importing torchvision costs seconds)
        hook = _PatchOnImport("torchvision.datasets", patch_torchvision)
        sys.meta_path.insert(0, hook)
        undo.append(hook.remove)
    return undo


class _PatchOnImport:
    """A meta-path finder that calls ``patch(module)`` right after ``name`` is imported."""

    def __init__(self, name, patch):
        self.name, self.patch = name, patch

    def remove(self):
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader, patch, remove = spec.loader, self.patch, self.remove

        class Loader:
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                remove()
                patch(module)

            def __getattr__(self, attr):  # get_resource_reader, is_package, ...: the real loader's
                return getattr(loader, attr)

        spec.loader = Loader()
        return spec


def chk_train(c):
    import inspect

    import torch

    torch.manual_seed(41)
    gan = _make_gan(c)
    D, G = getattr(gan, "D", None), getattr(gan, "G", None)
    if D is None or G is None or not callable(getattr(gan, "train", None)):
        raise CheckFail("GAN() needs attributes D and G and a method train(epochs)")
    before = [p.detach().clone() for p in itertools.chain(D.parameters(), G.parameters())]
    n_d = len(list(D.parameters()))
    if callable(getattr(gan, "calculate_V", None)):  # a wrong V costs the V checks only

        def reference_v(x, z):
            real, fake, _ = _v_reference(gan.D, gan.G, x, z, torch.float32)
            return real + fake

        gan.calculate_V = reference_v
    lrs = {}  # a wrong learning rate costs the optimizer check only
    for which, default in (("D", 2e-4), ("G", 1e-3)):
        try:
            lrs[which] = float(getattr(gan, f"{which}_optimizer").param_groups[0]["lr"])
        except Exception:  # noqa: BLE001 - no optimizer at __init__: the assignment's rate
            lrs[which] = default
    D0, G0 = copy.deepcopy(D), copy.deepcopy(G)
    garbage = torch.Generator().manual_seed(42)
    with torch.no_grad():  # a train() without zero_grad() keeps these in its gradients
        for p in itertools.chain(D.parameters(), G.parameters()):
            p.grad = torch.randn(p.shape, generator=garbage).to(p.device, p.dtype)
    zs, fakes, reals = [], [], []

    def g_in(module, inp):
        zs.append(inp[0].detach().cpu().float().clone())

    def g_out(module, inp, out):
        fakes.append(out.untyped_storage().data_ptr())

    def d_in(module, inp):
        x = inp[0]
        if x.untyped_storage().data_ptr() not in fakes and not reals:
            reals.append(x.detach().cpu().float().clone())

    hooks = [G.register_forward_pre_hook(g_in), G.register_forward_hook(g_out), D.register_forward_pre_hook(d_in)]
    try:
        params = [p for p in inspect.signature(gan.train).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = [None]
    start = len(_NETWORK_LOG)
    try:
        if params:
            gan.train(1)
        else:
            gan.train()
    except Exception as e:  # noqa: BLE001
        tried = _NETWORK_LOG[start:]
        if tried:
            raise CheckFail(f"train tried to download (blocked: {tried[0]}): the autograder replaces "
                            f"get_data_loader and torchvision.datasets.MNIST with 16 in-memory images; load "
                            f"data through them") from None
        raise CheckFail(f"GAN().train(1) raised {c.exc(e)}") from None
    finally:
        for h in hooks:
            h.remove()
    if len(_NETWORK_LOG) > start:
        raise CheckFail(f"train opened a network connection ({_NETWORK_LOG[start]}, blocked)")
    after = list(itertools.chain(D.parameters(), G.parameters()))
    if len(after) != len(before):
        raise CheckFail("train replaced D or G")
    if not all(torch.isfinite(p).all() for p in after):
        raise CheckFail("after train(1) some weights of D or G are NaN or inf")
    moved_d = any(not torch.equal(a, b) for a, b in zip(before[:n_d], after[:n_d]))
    moved_g = any(not torch.equal(a, b) for a, b in zip(before[n_d:], after[n_d:]))
    if not moved_d or not moved_g:
        who = " and ".join(w for w, moved in (("D", moved_d), ("G", moved_g)) if not moved)
        raise CheckFail(f"after train(1) on one batch, the weights of {who} did not change (is its optimizer "
                        f"stepped?)")
    _check_train_steps(D0, G0, D, G, reals, zs, lrs)


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
        got = torch.cat([p.detach().cpu().float().reshape(-1) for p in got_net.parameters()])
        want = torch.cat([p.detach().reshape(-1) for p in want_net.parameters()])
        start = torch.cat([p.detach().cpu().float().reshape(-1) for p in start_net.parameters()])
        off = ((got - want).abs() > lr / 4).float().mean().item()
        moving = (want - start).abs() > lr / 4  # entries Adam moves by about lr
        flipped = ((got - start) + (want - start))[moving].abs().lt(lr / 4).float().mean().item()
        still = (got - start).abs().lt(lr / 4).float().mean().item()
        return off, flipped, still

    off, flipped, still = compare(D, Dq, D0, lrs["D"])
    if off > 0.01:
        if flipped > 0.9:
            raise CheckFail("the D step descends V: D must maximize V (minimize -V), i.e. "
                            "(-calculate_V(x, z)).backward() before D_optimizer.step()")
        raise CheckFail(f"the D step differs from the starter's (Adam, lr 2e-4, ascending V from zeroed gradients) "
                        f"in {off:.0%} of D's weights: is D_optimizer.zero_grad() called before the backward pass?")
    off, flipped, still = compare(G, Gq, G0, lrs["G"])
    if off > 0.01:
        if flipped > 0.9:
            raise CheckFail("the G step ascends V: G must minimize V (calculate_V(x, z).backward() before "
                            "G_optimizer.step())")
        if still > 0.9:
            raise CheckFail("the G step did not move G's weights as Adam would: does the gradient reach G "
                            "(no .detach() / no_grad on G(z) or D in the G step)?")
        raise CheckFail(f"the G step differs from the starter's (Adam, lr 1e-3, descending V with the updated D, "
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


def _build_hw2(c, which, channels):
    """Block(C), or ResNet(C) built with the reference Block (a wrong Block costs only Block points)."""
    if which == "Block":
        return c.build("Block", channels)
    with _patched(c.mod, Block=c.ref.Block):
        return c.build("ResNet", channels)


def _hw2_input(which, channels, n=4, hw=5, seed=0):
    if which == "Block":
        return _rand(n, channels, hw, hw, seed=seed)
    return _rand(n, 1, hw, hw, seed=seed)


def chk_Block_shape(c):
    import torch

    for C in BLOCK_CHANNELS:
        torch.manual_seed(50 + C)
        block = _build_hw2(c, "Block", C)
        x = _rand(3, C, 6, 6, seed=C)
        out = c.call(f"Block({C})(x) for x of shape {tuple(x.shape)}", block, x)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(x.shape):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise CheckFail(f"Block({C})(x) for x of shape {tuple(x.shape)} gave {shape}, expected {tuple(x.shape)}")
        if not torch.isfinite(out).all():
            raise CheckFail(f"Block({C})(x) contains NaN or inf")


def _check_no_bias(c, which):
    import torch
    from torch import nn

    for C in BLOCK_CHANNELS:
        torch.manual_seed(60 + C)
        model = _build_hw2(c, which, C)
        with_bias = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
        ops, _, _, error = _trace(model, _hw2_input(which, C, hw=8, seed=C))
        convs = [op for op in ops if op["type"] == "Conv2d"]
        if with_bias or any(op["bias"] for op in convs):
            where = f" ({', '.join(with_bias[:3])})" if with_bias else ""
            raise CheckFail(f"{which}({C}): a convolution has a bias term{where}; use bias=False")
        if not convs:
            raise CheckFail(f"{which}({C}): no convolution ran in forward()"
                            + (f" (it raised {c.exc(error)})" if error is not None else ""))


def _check_layers(c, which):
    import torch

    table = _block_table if which == "Block" else _resnet_table
    for C in BLOCK_CHANNELS:
        torch.manual_seed(70 + C)
        model = _build_hw2(c, which, C)
        ops, _, _, error = _trace(model, _hw2_input(which, C, hw=8, seed=C))
        _compare_layers(ops, table(C), f"{which}({C})", ignore=("bias",), error=error, ctx=c)


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

    for C in BLOCK_CHANNELS:
        torch.manual_seed(80 + C)
        ref = getattr(c.ref, which)(C)
        _randomize_reference(ref, 81 + C)
        stu = _build_hw2(c, which, C)
        hw = 5 if which == "Block" else 8
        probe = _hw2_input(which, C, n=3, hw=hw, seed=82)
        ref.eval()
        stu.eval()  # tracing in eval mode: no running statistics change
        _, ref_used, _, _ = _trace(ref, probe)
        _, stu_used, _, error = _trace(stu, probe)
        if error is not None:
            raise CheckFail(f"{which}({C})(x) raised {c.exc(error)}")
        _copy_weights(ref, stu, ref_used, stu_used, f"{which}({C})")
        ref.train(mode == "train")
        stu.train(mode == "train")
        sizes = (5, 8) if which == "Block" else (8, 28)
        for hw in sizes:
            x = _hw2_input(which, C, n=4, hw=hw, seed=83 + hw)
            with torch.no_grad():
                want = ref(x)
                got = c.call(f"{which}({C})(x)", stu, x)
            _compare_outputs(got, want, f"{which}({C})(x) in {mode} mode for x of shape {tuple(x.shape)}")


def chk_Block_no_bias(c):
    _check_no_bias(c, "Block")


def chk_Block_layers(c):
    _check_layers(c, "Block")


def chk_Block_train(c):
    _check_function(c, "Block", "train")


def chk_Block_eval(c):
    _check_function(c, "Block", "eval")


def chk_ResNet_shape(c):
    import torch

    for C in BLOCK_CHANNELS:
        torch.manual_seed(90 + C)
        model = _build_hw2(c, "ResNet", C)
        for mode in ("train", "eval"):
            model.train(mode == "train")
            for hw in (8, 28):
                x = _rand(5, 1, hw, hw, seed=hw)
                with torch.no_grad():
                    out = c.call(f"ResNet({C})(x) for x of shape {tuple(x.shape)}", model, x)
                if not isinstance(out, torch.Tensor) or tuple(out.shape) != (5, 10):
                    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    raise CheckFail(f"ResNet({C})(x) in {mode} mode for x of shape {tuple(x.shape)} gave {shape}, "
                                    f"expected (5, 10)")
                if not torch.isfinite(out).all():
                    raise CheckFail(f"ResNet({C})(x) contains NaN or inf")


def chk_ResNet_no_bias(c):
    _check_no_bias(c, "ResNet")


def chk_ResNet_layers(c):
    _check_layers(c, "ResNet")


def chk_ResNet_params(c):
    for C in BLOCK_CHANNELS:
        model = _build_hw2(c, "ResNet", C)
        n = sum(p.numel() for p in model.parameters())
        want = 18 * C * C + 25 * C + 10
        if n != want:
            raise CheckFail(f"ResNet({C}) has {n:,} parameters, expected 18C^2 + 25C + 10 = {want:,}")


def chk_ResNet_train(c):
    _check_function(c, "ResNet", "train")


def chk_ResNet_eval(c):
    _check_function(c, "ResNet", "eval")


CHECK_FUNCTIONS = {name[4:]: fn for name, fn in list(globals().items()) if name.startswith("chk_")}


# ------------------------------------------------------------------------------- runner
class _Runner:
    """Imports the submission, then runs the requested checks, reporting through ``emit``."""

    def __init__(self, assignment, student_path, reference_path, emit, module_name, watch_dirs):
        self.assignment = assignment
        self.path = os.path.abspath(student_path)
        self.reference_path = reference_path
        self.emit = emit
        self.module_name = module_name
        self.watch_dirs = watch_dirs
        self.label = os.path.basename(student_path)

    def result(self, key, fraction, message):
        self.emit({"event": "result", "check": key, "fraction": fraction, "output": _short(message)})

    def run(self, keys):
        keys = [k for k, _, _ in POINTS[self.assignment] if k in keys]
        self.emit({"event": "ready", "pid": os.getpid()})
        self.emit({"event": "start", "check": "import"})
        module, error, quiet = self.import_student()
        if module is None:
            for key in keys:
                why = error if key == "import" else f"not graded: your {self.label} did not import ({error})"
                self.result(key, 0.0, why)
            return
        self.result("import", 1.0, "ok")
        self.result("import_quiet", 0.0 if quiet else 1.0, quiet or "ok")
        try:
            reference = _load_module(f"_autograde_reference_{self.assignment}", self.reference_path)
        except BaseException as e:  # noqa: BLE001 - the grader's own fault: say so
            for key in keys:
                if key not in ("import", "import_quiet"):
                    self.result(key, 0.0, f"autograder error: the reference {self.reference_path} failed to "
                                          f"import ({type(e).__name__}: {e}); please tell the course staff")
            return
        ctx = _Ctx(self.assignment, module, reference, self.path, self.label)
        import torch

        torch.set_num_threads(1)
        undo = _install_data_stubs(ctx) if self.assignment == "hw5" else []
        try:
            for key in keys:
                if key in ("import", "import_quiet"):
                    continue
                self.emit({"event": "start", "check": key})
                self.result(key, *self.run_check(ctx, key))
        finally:
            for fn in reversed(undo):
                fn()

    def run_check(self, ctx, key):
        try:
            message = CHECK_FUNCTIONS[key](ctx)
            return 1.0, message or "ok"
        except CheckFail as e:
            return 0.0, str(e)
        except BaseException as e:  # noqa: BLE001 - student code misbehaved (any BaseException subclass too)
            if type(e) in (GeneratorExit,):
                raise
            return 0.0, f"raised {ctx.exc(e)}"

    def import_student(self):
        """(module or None, error message, side-effect message or "") for the submission."""
        out, err = sys.stdout, sys.stderr
        capture = _CappedText()
        before = _snapshot(self.watch_dirs)
        net_start = len(_NETWORK_LOG)
        cwd = os.getcwd()
        module, error = None, ""
        sys.stdout = sys.stderr = capture
        try:
            with warnings.catch_warnings():  # library warnings (e.g. deprecations) are not the student's prints
                warnings.simplefilter("ignore")
                module = _load_module(self.module_name, self.path)
        except BaseException as e:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, MemoryError, anything
            error = _exc_message(e, self.path, self.label)
            if isinstance(e, MemoryError) or "can't allocate memory" in str(e):
                error += " (the memory limit was reached)"
            error = f"importing your {self.label} failed: {error}"
        finally:
            sys.stdout, sys.stderr = out, err
            with contextlib.suppress(OSError):
                os.chdir(cwd)
        side = []
        if capture.total:
            text = capture.text().strip()
            side.append(f"it printed {capture.total} characters" + (f", starting with: {text[:200]!r}" if text
                                                                     else ""))
        after = _snapshot(self.watch_dirs)
        changed = sorted(p for p in after if before.get(p) != after[p]) + sorted(p for p in before if p not in after)
        if changed:
            shown = ", ".join(os.path.relpath(p, cwd) for p in changed[:3])
            side.append(f"it created or changed {len(changed)} file(s): {shown}")
        if len(_NETWORK_LOG) > net_start:
            side.append(f"it tried to open a network connection ({_NETWORK_LOG[net_start]}, blocked)")
        quiet = ("importing your file must only define things, but " + "; ".join(side)) if side else ""
        return module, error, quiet


def _worker_main(argv):
    """Entry point of the sandboxed subprocess: ``autograde.py --_worker CONFIG_JSON``."""
    cfg = json.loads(argv[0])
    fd = cfg["fd"]

    def emit(event):
        data = (json.dumps(event) + "\n").encode()
        while data:
            try:
                n = os.write(fd, data)
            except InterruptedError:
                continue
            except OSError:
                os._exit(70)
            data = data[n:]

    sys.dont_write_bytecode = True
    sys.path[:] = cfg["sys_path"]
    with contextlib.suppress(Exception):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file beyond RLIMIT_FSIZE: an error, not a kill
    _install_network_block()
    runner = _Runner(cfg["assignment"], cfg["student"], cfg["reference"], emit, f"submission_{cfg['assignment']}",
                     cfg["watch"])
    try:
        runner.run(set(cfg["checks"]))
        emit({"event": "done"})
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(0)  # skip atexit handlers and non-daemon threads the submission may have left


def grade_in_process(assignment, student_path, checks=None, reference_path=None):
    """Run the checks in this process, without any isolation (for the tests of the checks).

    Returns ``[{"check", "score", "max_score", "output"}]`` like the isolated grader.
    The submission runs with the network blocked and its working directory set to a fresh
    temporary folder holding only a copy of the file.
    """
    reference_path = reference_path or os.path.join(HERE, ASSIGNMENTS[assignment]["file"])
    keys = [k for k, _, _ in POINTS[assignment]] if checks is None else list(checks)
    events = []
    tmp = tempfile.mkdtemp(prefix="autograde-inproc-")
    copy_path = os.path.join(tmp, ASSIGNMENTS[assignment]["file"])
    shutil.copyfile(student_path, copy_path)
    cwd = os.getcwd()
    name = f"submission_{assignment}_{len(_INPROC_NAMES)}"
    _INPROC_NAMES.append(name)
    undo = _install_network_block()
    dont_write = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        os.chdir(tmp)
        _Runner(assignment, copy_path, reference_path, events.append, name, [tmp]).run(set(keys))
    finally:
        sys.dont_write_bytecode = dont_write
        undo()
        os.chdir(cwd)
        sys.modules.pop(name, None)
        shutil.rmtree(tmp, ignore_errors=True)
    results = {e["check"]: e for e in events if e["event"] == "result"}
    table = {k: p for k, p, _ in POINTS[assignment]}
    return [{"check": k, "score": round(results[k]["fraction"] * table[k], 4) if k in results else 0.0,
             "max_score": float(table[k]), "output": results[k]["output"] if k in results else "not run"}
            for k in keys]


_INPROC_NAMES = []


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


def _kill_group(proc):
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, OSError):
        proc.kill()
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


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
                     reference_path=None, output_cap=OUTPUT_CAP, check_limit=None):
    """Grade one file in a sandboxed subprocess. Never raises for anything the submission does.

    ``check_limit``: seconds one check after the import may run (default: a quarter of
    ``timeout``, at least ``CHECK_LIMIT_MIN``).

    Returns a dict: assignment, file, results [{check, name, score, max_score, output}],
    output (what the submission printed, capped), notes, seconds.
    """
    t0 = time.monotonic()
    deadline = t0 + float(timeout)
    table = [(k, p, d) for k, p, d in POINTS[assignment]]
    reference_path = os.path.abspath(reference_path or os.path.join(HERE, ASSIGNMENTS[assignment]["file"]))
    label = ASSIGNMENTS[assignment]["file"]
    final = {}  # key -> (fraction, message)
    notes = []
    stdout = _Capped(output_cap)
    if check_limit is None:
        check_limit = max(CHECK_LIMIT_MIN, CHECK_LIMIT_FRACTION * float(timeout))
    sandbox = tempfile.mkdtemp(prefix=f"autograde-{assignment}-")
    work, home, tmpd, cache = (os.path.join(sandbox, d) for d in ("work", "home", "tmp", "cache"))
    for d in (work, home, tmpd, cache):
        os.makedirs(d)
    student_copy = os.path.join(work, label)
    try:
        problem = _copy_source(student_file, student_copy)
        if problem:
            for k, _, _ in table:
                final[k] = (0.0, problem.format(label=label))
            raise _Skip
        prefix = namespace_prefix()
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
        sys_path = [p for p in sys.path if p and os.path.isabs(p) and os.path.abspath(p) != HERE
                    and os.path.abspath(p) != os.path.dirname(os.path.abspath(student_file))]
        attempt = 0
        failed = None
        while True:
            pending = [k for k, _, _ in table if k not in final]
            if not pending or time.monotonic() >= deadline:
                break
            attempt += 1
            if attempt > len(table) + 1:
                notes.append("too many restarts")
                break
            status, current, reason = _run_worker(
                assignment, student_copy, reference_path, pending, prefix, env, sys_path,
                [work], work, deadline, check_limit, memory_mb, stdout, final, timeout)
            if status == "done":
                continue
            # the worker died or was killed while running `current`
            if current is None or current == "import":
                restarting = attempt > 1
                for k in pending:
                    if k == "import":
                        final[k] = (0.0, f"{reason} while importing your {label}")
                    elif restarting:
                        final[k] = (0.0, f"not run: {reason} while the grader restarted (re-importing your "
                                         f"{label}) after the failure in {failed}")
                    else:
                        final[k] = (0.0, f"not graded: {reason} while importing your {label}")
                break
            final.setdefault(current, (0.0, reason if reason.startswith("the check took") else
                                       f"{reason} during this check"))
            failed = current
        for k, _, _ in table:
            if k not in final:
                final[k] = (0.0, f"not run: the time limit of {timeout:g} s for {label} was reached")
    except _Skip:
        pass
    except OSError as e:
        for k, _, _ in table:
            final.setdefault(k, (0.0, f"autograder error: {e}"))
    finally:
        _rmtree(sandbox)
    results = []
    for k, p, d in table:
        fraction, message = final[k]
        fraction = min(1.0, max(0.0, float(fraction))) if isinstance(fraction, (int, float)) else 0.0
        results.append({"check": k, "name": d, "score": round(fraction * p, 4), "max_score": float(p),
                        "output": _short(message)})
    isolation = "network and PID namespaces" if namespace_prefix() else "no namespaces (unshare unavailable)"
    notes.append(f"sandbox: temporary working directory, {timeout:g} s, {memory_mb} MB address space, "
                 f"minimal environment, {isolation}")
    return {"assignment": assignment, "file": label, "results": results, "output": stdout.text(), "notes": notes,
            "seconds": time.monotonic() - t0}


def _run_worker(assignment, student, reference, pending, prefix, env, sys_path, watch, cwd, deadline,
                check_limit, memory_mb, stdout, final, timeout):
    """Run one worker until it finishes, dies, or overruns. Records results into ``final``.

    Returns (status, check running at the end, reason): status "done" when the worker
    reported all its checks.
    """
    read_fd, write_fd = os.pipe()
    cfg = {"fd": write_fd, "assignment": assignment, "student": student, "reference": reference,
           "checks": pending, "sys_path": sys_path, "watch": watch}
    cmd = prefix + [sys.executable, "-I", "-X", "utf8", os.path.abspath(__file__), "--_worker", json.dumps(cfg)]
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, pass_fds=(write_fd,), start_new_session=True,
                                preexec_fn=_limits(int(memory_mb) * 2**20))
    finally:
        os.close(write_fd)
    sel = selectors.DefaultSelector()
    os.set_blocking(read_fd, False)
    os.set_blocking(proc.stdout.fileno(), False)
    sel.register(read_fd, selectors.EVENT_READ, "events")
    sel.register(proc.stdout.fileno(), selectors.EVENT_READ, "stdout")
    buf = b""
    current, started = None, time.monotonic()
    done = False
    reason = None
    open_fds = 2

    def handle(line):
        nonlocal current, started, done
        try:
            ev = json.loads(line)
        except ValueError:
            return
        if not isinstance(ev, dict):
            return
        kind = ev.get("event")
        if kind == "start":
            current, started = ev.get("check"), time.monotonic()
        elif kind == "result":
            key = ev.get("check")
            if key in pending and key not in final:
                fraction = ev.get("fraction", 0.0)
                final[key] = (fraction if isinstance(fraction, (int, float)) else 0.0, str(ev.get("output", "")))
            if key == current:
                current = None
        elif kind == "done":
            done = True

    try:
        while True:
            now = time.monotonic()
            limit = deadline if current in (None, "import") else min(deadline, started + check_limit)
            if now >= limit:
                if current is not None and current != "import" and limit < deadline:
                    reason = f"the check took longer than its limit of {check_limit:g} s and was stopped"
                else:
                    reason = f"the time limit of {timeout:g} s was reached"
                break
            events = sel.select(timeout=min(0.5, max(0.01, limit - now))) if open_fds else []
            for key, _ in events:
                fd = key.fileobj
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(fd)
                    open_fds -= 1
                    continue
                if key.data == "stdout":
                    stdout.add(chunk)
                else:
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        handle(line)
            if proc.poll() is not None:
                # drain what is left, then stop
                for key in list(sel.get_map().values()):
                    with contextlib.suppress(OSError):
                        while True:
                            chunk = os.read(key.fileobj, 65536)
                            if not chunk:
                                break
                            if key.data == "stdout":
                                stdout.add(chunk)
                            else:
                                buf += chunk
                for line in buf.split(b"\n"):
                    handle(line)
                buf = b""
                if not done:
                    reason = f"the grading process {_describe_exit(proc.returncode)}"
                break
            if not open_fds:
                time.sleep(0.05)
    finally:
        _kill_group(proc)
        if _SUBREAPER:  # setsid'ed descendants re-parented to the grader (no PID namespace)
            _kill_orphans()
        sel.close()
        with contextlib.suppress(OSError):
            os.close(read_fd)
        with contextlib.suppress(Exception):
            proc.stdout.close()
    if done:
        return "done", None, None
    return "failed", current, reason


# ------------------------------------------------------------------------------ reports
def results_json(gradings, elapsed):
    """Gradescope's results format (the top-level score is the sum of the test scores)."""
    tests, lines = [], []
    score = 0.0
    for g in gradings:
        number = ASSIGNMENTS[g["assignment"]]["number"]
        got = sum(r["score"] for r in g["results"])
        lines.append(f"{g['file']}: {got:g} / {sum(r['max_score'] for r in g['results']):g} points")
        for i, r in enumerate(g["results"], 1):
            tests.append({"name": f"{g['file']}: {r['name']}", "number": f"{number}.{i}", "score": r["score"],
                          "max_score": r["max_score"], "output": r["output"], "visibility": "visible"})
            score += r["score"]
        if g.get("output"):
            lines.append(f"Output of your {g['file']} during grading (capped):\n{g['output'].rstrip()}")
    return {"score": round(score, 4), "execution_time": int(round(elapsed)), "output": "\n".join(lines),
            "tests": tests}


def format_table(gradings):
    out = []
    for g in gradings:
        rows = [(f"{ASSIGNMENTS[g['assignment']]['number']}.{i}", r["check"], f"{r['score']:g}", f"{r['max_score']:g}",
                 r["output"]) for i, r in enumerate(g["results"], 1)]
        w = max(len(r[1]) for r in rows)
        out.append(f"== {g['file']} ({ASSIGNMENTS[g['assignment']]['title']}) ==")
        out.append(f"{'#':<5} {'check':<{w}} {'points':>6} {'max':>4}  message")
        for num, key, s, m, msg in rows:
            first, *rest = msg.splitlines() or [""]
            out.append(f"{num:<5} {key:<{w}} {s:>6} {m:>4}  {first}")
            out.extend(" " * (w + 20) + line for line in rest)
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


SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once (as root, in /autograder/source) when it builds the autograder image.
# It installs the same torch/torchvision/numpy as the course's requirements.txt, torch and
# torchvision as CPU-only wheels (no CUDA download). The pinned numpy needs Python >= 3.11:
# choose Gradescope's Ubuntu 24.04 base image.
set -euo pipefail
if command -v apt-get >/dev/null 2>&1; then
  apt-get update || echo "apt-get update failed (mirrors unreachable?); using the image's package lists"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      python3 python3-venv python3-pip util-linux
fi
python3 -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed (Ubuntu 24.04 image)"'
python3 -m venv /autograder/venv
PY=/autograder/venv/bin/python
"$PY" -m pip install --no-cache-dir --upgrade pip
# from PyPI: numpy and what submissions commonly import, pinned as in requirements.txt
"$PY" -m pip install --no-cache-dir {pypi}
# CPU-only torch/torchvision, same versions as requirements.txt
"$PY" -m pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu {torch} \\
  || "$PY" -m pip install --no-cache-dir {torch}  # the CPU index unreachable: the default index
"$PY" -c "import torch, torchvision, numpy; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'numpy', numpy.__version__)"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: grade $ROOT/submission/{file} into
# $ROOT/results/results.json. AUTOGRADER_ROOT (default /autograder) and AUTOGRADER_PYTHON
# (default $ROOT/venv/bin/python, made by setup.sh) exist to test this script elsewhere.
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PY="${{AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}}"
rm -rf "$ROOT/results/results.json"  # first thing: never report a previous run's (or a directory's) results
mkdir -p "$ROOT/results"
"$PY" "$ROOT/source/autograde.py" "$ROOT/submission" --assignment {assignment} --timeout {timeout:g} \\
    --results "$ROOT/results/results.json"
status=$?
if [ ! -f "$ROOT/results/results.json" ] || [ ! -s "$ROOT/results/results.json" ]; then
  rm -rf "$ROOT/results/results.json"
  msg="The autograder itself failed (exit status $status); please tell the course staff."
  printf '{{"score": 0.0, "execution_time": 0, "output": "%s", "tests": []}}\\n' "$msg" \\
      > "$ROOT/results/results.json"
fi
exit 0
"""


# what submissions may import besides torch/torchvision, installed by setup.sh as pinned in
# requirements.txt, the same packages the local grader's environment has
ALLOWED_PYPI = ("numpy", "scipy", "scikit-learn", "pillow", "matplotlib", "tqdm")


def make_bundle(assignment, out_zip, timeout=DEFAULT_TIMEOUT):
    """Write the Gradescope autograder zip for ``assignment``; returns the list of members."""
    info = ASSIGNMENTS[assignment]
    reference = os.path.join(HERE, info["file"])
    requirements = os.path.join(HERE, "requirements.txt")
    pins = _read_pins(requirements)
    missing = [p for p in ("torch", "torchvision", "numpy") if p not in pins]
    if missing:
        raise ValueError(f"{requirements} pins no version of {', '.join(missing)}")
    pypi = " ".join(f"{p}=={pins[p]}" for p in ALLOWED_PYPI if p in pins)
    torch_pins = f"torch=={pins['torch']} torchvision=={pins['torchvision']}"
    members = {
        "setup.sh": (SETUP_SH.format(pypi=pypi, torch=torch_pins), 0o755),
        "run_autograder": (RUN_AUTOGRADER.format(file=info["file"], assignment=assignment, timeout=timeout), 0o755),
        "autograde.py": (open(os.path.abspath(__file__), encoding="utf-8").read(), 0o644),
        "common.py": (open(os.path.join(HERE, "common.py"), encoding="utf-8").read(), 0o644),
        info["file"]: (open(reference, encoding="utf-8").read(), 0o644),
        "requirements.txt": ("".join(f"{p}=={pins[p]}\n" for p in ("torch", "torchvision") + ALLOWED_PYPI
                                     if p in pins), 0o644),
    }
    from common import atomic_write  # trusted side only: the worker process (python -I) never imports common

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
    note = f"graded {best[2]}"
    if len(found) > 1:
        note += f" (of {len(found)} candidates: {', '.join(c[2] for c in found[:5])})"
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
    p = argparse.ArgumentParser(
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
    p.add_argument("--gradescope-bundle", nargs=2, metavar=("hw5|hw2", "OUT.zip"), default=None,
                   help="write the Gradescope autograder zip (setup.sh, run_autograder, autograde.py, the "
                        "reference) for one assignment instead of grading")
    return p


def _missing_file_grading(assignment, folder):
    found = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    label = ASSIGNMENTS[assignment]["file"]
    msg = f"no {label} in your submission (found: {', '.join(found) if found else 'nothing'}); upload {label}"
    results = [{"check": k, "name": d, "score": 0.0, "max_score": float(p), "output": msg}
               for k, p, d in POINTS[assignment]]
    return {"assignment": assignment, "file": label, "results": results, "output": "", "notes": [], "seconds": 0.0}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--_worker"]:
        return _worker_main(argv[1:])
    from common import atomic_write_bytes, check_out_dir  # trusted side only (see make_bundle)

    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        parser.error(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.memory_mb < 512 or args.memory_mb > MAX_MEMORY_MB:
        parser.error(f"--memory-mb must be between 512 and {MAX_MEMORY_MB}, got {args.memory_mb}")
    if args.gradescope_bundle:
        if args.submission:
            parser.error("give either SUBMISSION or --gradescope-bundle, not both")
        assignment, out_zip = args.gradescope_bundle
        if assignment not in ASSIGNMENTS:
            parser.error(f"--gradescope-bundle: the assignment must be hw5 or hw2, got {assignment!r}")
        folder = os.path.dirname(os.path.abspath(out_zip))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK) or os.path.isdir(out_zip):
            parser.error(f"--gradescope-bundle: cannot write {out_zip!r} (its folder must exist and be writable)")
        try:
            members = make_bundle(assignment, out_zip, timeout=args.timeout)
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
        if os.path.isdir(args.results) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            parser.error(f"--results: cannot write {args.results!r} (its folder must exist and be writable)")
        try:  # a real write probe (e.g. /proc accepts no new file) before any grading
            check_out_dir(folder, "--results")
        except ValueError as e:
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
            gradings.append(_missing_file_grading(assignment, path))
            continue
        try:
            g = grade_assignment(assignment, f, timeout=args.timeout, memory_mb=args.memory_mb)
        except Exception as e:  # noqa: BLE001 - a bug of the grader itself: still a results file
            g = _missing_file_grading(assignment, path)
            message = f"autograder error ({type(e).__name__}: {e}); please tell the course staff"
            for r in g["results"]:
                r["output"] = message
            print(f"autograde.py: internal error while grading {f}:\n{traceback.format_exc()}", file=sys.stderr)
        if assignment in found_notes:
            g["notes"].append(found_notes[assignment])
            g["output"] = (found_notes[assignment] + "\n" + g.get("output", "")).strip()
        elif os.path.basename(f) != ASSIGNMENTS[assignment]["file"]:
            g["notes"].append(f"graded {os.path.basename(f)} as {ASSIGNMENTS[assignment]['file']}")
        gradings.append(g)
    report = results_json(gradings, time.monotonic() - t0)
    text = json.dumps(report, indent=2)
    if args.results is not None:
        try:
            atomic_write_bytes(args.results, text + "\n")
        except (OSError, ValueError) as e:
            print(f"autograde.py: error: cannot write {args.results}: {e}", file=sys.stderr)
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
    if sys.argv[1:2] == ["--_worker"]:
        return _worker_main(sys.argv[2:])
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
