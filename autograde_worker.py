"""The untrusted side of autograde.py: loads a submission and runs it on what it is sent.

    python -I autograde_worker.py REQUEST_FD REPLY_FD SUBMISSION ASSIGNMENT

This file runs in the same process as the submission, so nothing it reports is trusted: it
returns raw data only (tensors as dtype + shape + base64 bytes, layer traces, counts,
exception texts), one JSON line per request, and the grader (autograde.py) parses each reply
against a strict schema, computes every expected value from the reference itself, and makes
every comparison. The worker never sees the reference: when a check needs a correct stand-in
for a part the check is not about (the reference Discriminator/Generator inside ``GAN()``, the
reference Block inside ``ResNet``, the reference V inside ``train``), the grader sends it as
data (a list of layers, a list of V's terms) after the checks of that part are over.

The worker imports no project module (the bundle runs it alone in a scratch folder); the
grader imports it too, for the layer tracer and the stand-in builder, which it runs on the
reference. torch is imported lazily.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import itertools
import json
import os
import sys
import traceback
import warnings

MESSAGE_CAP = 1500  # characters of one message
MAX_TENSOR_NUMEL = 4_000_000  # per tensor, both directions
DTYPES = {"float32": 4, "float64": 8, "int64": 8}


# -------------------------------------------------------------------------------- encoding
def encode_tensor(t):
    """{"dtype", "shape", "data"}: raw little-endian bytes, never pickled."""
    import torch

    t = t.detach().cpu().contiguous()
    if t.dtype not in (torch.float32, torch.float64, torch.int64):
        t = t.float() if t.is_floating_point() or t.dtype == torch.bool else t.long()
    if t.numel() > MAX_TENSOR_NUMEL:
        raise ValueError(f"tensor of {t.numel()} elements is too large to report")
    name = str(t.dtype).replace("torch.", "")
    return {"dtype": name, "shape": list(t.shape), "data": base64.b64encode(t.numpy().tobytes()).decode("ascii")}


def decode_tensor(d):
    """The inverse of encode_tensor; ValueError for anything malformed (used on both sides)."""
    import torch

    if not isinstance(d, dict) or set(d) != {"dtype", "shape", "data"}:
        raise ValueError("a tensor must be {dtype, shape, data}")
    dtype, shape, data = d["dtype"], d["shape"], d["data"]
    if dtype not in DTYPES or not isinstance(shape, list) or not isinstance(data, str):
        raise ValueError("bad tensor fields")
    if len(shape) > 8 or not all(type(s) is int and 0 <= s <= MAX_TENSOR_NUMEL for s in shape):
        raise ValueError("bad tensor shape")
    n = 1
    for s in shape:
        n *= s
    if n > MAX_TENSOR_NUMEL:
        raise ValueError("tensor too large")
    raw = base64.b64decode(data.encode("ascii"), validate=True)
    if len(raw) != n * DTYPES[dtype]:
        raise ValueError("tensor data does not match its shape")
    if n == 0:
        return torch.zeros(shape, dtype=getattr(torch, dtype))
    return torch.frombuffer(bytearray(raw), dtype=getattr(torch, dtype)).reshape(shape).clone()


def encode_value(v):
    """A returned value: {"tensor": ...}, {"number": x} or {"type": name} for anything else."""
    import torch

    if isinstance(v, torch.Tensor):
        return {"tensor": encode_tensor(v)}
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return {"number": float(v)}
    return {"type": type(v).__name__}


# ---------------------------------------------------------------------------------- messages
def short(text, limit=MESSAGE_CAP):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 20] + f" ... [{len(text) - limit + 20} more chars]"


def exc_message(exc, student_path, label):
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
                + (f": {short(str(exc), 300)}" if str(exc) else ""))
    where = ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.abspath(f.filename) == student_path]
    if frames:
        f = frames[-1]
        where = f" (your {label}, line {f.lineno}" + (f": `{f.line.strip()}`)" if f.line else ")")
    text = str(exc).strip().splitlines()
    text = text[0] if len(text) == 1 else " ".join(t.strip() for t in text[:3])
    return f"{type(exc).__name__}{': ' + short(text, 400) if text else ''}{where}"


class Fail(Exception):
    """The request cannot be answered; the message (student-visible) says why."""


_MEMORY_SIGNS = ("can't allocate memory", "DefaultCPUAllocator", "Cannot allocate memory")


def out_of_memory(exc):
    """True when ``exc`` (or an exception it was raised from) is a memory-limit hit: the grader
    then restarts the worker, since memory the submission still holds would fail later checks."""
    for _ in range(8):
        if exc is None:
            return False
        if isinstance(exc, MemoryError) or any(sign in str(exc) for sign in _MEMORY_SIGNS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def fail_reply(message, exc=None):
    """The {"fail": message} reply, flagged when the failure was the memory limit."""
    return {"fail": short(message), **({"out_of_memory": True} if out_of_memory(exc) else {})}


# ---------------------------------------------------------------------------------- network
NETWORK_LOG = []  # one line per blocked network attempt


def install_network_block():
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
            NETWORK_LOG.append(f"{name}({target!r})")
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


class AllowedImports:
    """A meta-path finder that refuses, with a message naming the allowed packages, a top-level
    import of a third-party package the course does not allow, when the submission's own code
    asks for it (torch importing its own dependencies is not affected). The grader passes the
    list, the same one Gradescope's setup.sh installs."""

    def __init__(self, student_path, allowed):
        self.path = os.path.abspath(student_path)
        self.allowed = set(allowed)

    def install(self):
        sys.meta_path.insert(0, self)
        return lambda: self in sys.meta_path and sys.meta_path.remove(self)

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if path is not None or top in self.allowed or top in sys.stdlib_module_names or top in sys.modules:
            return None
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
            frame = frame.f_back
        if frame is None or os.path.abspath(frame.f_code.co_filename) != self.path:
            return None
        from importlib.machinery import PathFinder

        if PathFinder.find_spec(top) is None:  # not installed anywhere: a helper module left out
            raise ModuleNotFoundError(f"your {os.path.basename(self.path)} imports `{top}`, which was not submitted "
                                      f"(the autograder receives this one file: put what it needs in it)",
                                      name=fullname)
        raise ModuleNotFoundError(f"No module named {top!r} for submissions: the autograder allows the standard "
                                  f"library and {', '.join(sorted(self.allowed))}", name=fullname)


def load_module(name, path):
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
def patched(obj, **attrs):
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
                with contextlib.suppress(AttributeError):
                    delattr(obj, k)
            else:
                setattr(obj, k, v)


# ------------------------------------------------------------------------- execution tracing
def _arg(args, kwargs, i, key, default=None):
    if len(args) > i:
        return args[i]
    return kwargs.get(key, default)


def _norm(v):
    """int/tuple/list -> int when all entries are equal (3 == (3, 3)), else a list."""
    if isinstance(v, (tuple, list)):
        v = [int(x) for x in v]
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


def describe_op(name, args, kwargs):
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


def trace(model, inp):
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
            try:
                op = describe_op(getattr(func, "__name__", ""), args, kwargs)
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


def ordered_tensors(model, used, kind):
    """The model's parameters (kind "param") or buffers in order of first use, then the rest."""
    named = dict(model.named_parameters()) if kind == "param" else dict(model.named_buffers())
    return [named[n] for n in used if n in named] + [t for n, t in named.items() if n not in used]


def load_by_order(src_params, src_buffers, dst, dst_used, what, hide=False):
    """Copy tensors (listed in the reference's order of first use) into ``dst``, matched by
    shape and by order of first use in dst's forward pass (registration order for unused ones).

    A convolution bias that dst has and the reference lacks is set to zero and left out of the
    matching (a bias of zero is no bias): that mistake costs only the no-bias check. Returns the
    names of the biases zeroed."""
    import collections

    import torch
    from torch import nn

    def key(t):
        return tuple(t.shape), t.dtype.is_floating_point

    def groups(tensors):
        g = collections.OrderedDict()
        for t in tensors:
            g.setdefault(key(t), []).append(t)
        return g

    dst_params = ordered_tensors(dst, dst_used, "param")
    excess = collections.Counter(map(key, dst_params)) - collections.Counter(map(key, src_params))
    conv_bias = {id(m.bias): n + ".bias" for n, m in dst.named_modules()
                 if isinstance(m, nn.modules.conv._ConvNd) and isinstance(m.bias, torch.Tensor)}
    zeroed = []
    for t in dst_params:
        if id(t) in conv_bias and excess[key(t)] > 0:
            excess[key(t)] -= 1
            zeroed.append(t)
    dropped = {id(t) for t in zeroed}
    sp, dp = groups(src_params), groups(t for t in dst_params if id(t) not in dropped)
    if {k: len(v) for k, v in sp.items()} != {k: len(v) for k, v in dp.items()}:
        want = collections.Counter({k[0]: len(v) for k, v in sp.items()})
        have = collections.Counter({k[0]: len(v) for k, v in dp.items()})
        extra, missing = have - want, want - have
        parts = []
        if extra:
            parts.append("yours has extra " + ", ".join(f"{n} x {s}" for s, n in list(extra.items())[:4]))
        if missing:  # the reference's shapes: not named when the grader hides expected values
            parts.append(f"yours lacks {sum(missing.values())} of the reference's tensors" if hide else
                         "yours lacks " + ", ".join(f"{n} x {s}" for s, n in list(missing.items())[:4]))
        raise Fail(f"cannot load the reference weights into your {what}: its parameter shapes differ "
                   f"from the reference's ({'; '.join(parts)})")
    with torch.no_grad():
        for k, tensors in sp.items():
            for s, d in zip(tensors, dp[k]):
                d.copy_(s)
        for t in zeroed:
            t.zero_()
        sb, db = groups(src_buffers), groups(ordered_tensors(dst, dst_used, "buffer"))
        for k, tensors in sb.items():
            for s, d in zip(tensors, db.get(k, [])):
                d.copy_(s.to(d.dtype))
    return [conv_bias[id(t)] for t in zeroed]


# ----------------------------------------------------------------------- stand-ins from data
def build_layers(layers, env):
    """An nn.Sequential from a list of layer dicts (the grader's tables), with "C" in a field
    replaced by ``env["C"]``. Used for the stand-ins the grader sends (and by the grader itself)."""
    from torch import nn

    def val(v):
        if isinstance(v, str) and v in env:
            return env[v]
        if isinstance(v, list):
            return [val(x) for x in v]
        return v

    class View(nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.shape = list(shape)

        def forward(self, x):
            return x.reshape([x.shape[0]] + self.shape[1:] if self.shape and self.shape[0] == -1 else self.shape)

    class Residual(nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x):
            return x + self.body(x)

    mods = []
    for spec in layers:
        s = {k: val(v) for k, v in spec.items() if k != "body"}
        t = s["type"]
        if t in ("Conv2d", "ConvTranspose2d"):
            cls = nn.Conv2d if t == "Conv2d" else nn.ConvTranspose2d
            mods.append(cls(s["in"], s["out"], s["kernel"], stride=s["stride"], padding=s["padding"], bias=s["bias"]))
        elif t == "Linear":
            mods.append(nn.Linear(s["in"], s["out"], bias=s["bias"]))
        elif t == "LeakyReLU":
            mods.append(nn.LeakyReLU(s["slope"]))
        elif t == "ReLU":
            mods.append(nn.ReLU())
        elif t == "MaxPool2d":
            mods.append(nn.MaxPool2d(s["kernel"], stride=s["stride"], padding=s["padding"]))
        elif t == "AdaptiveAvgPool2d":
            mods.append(nn.AdaptiveAvgPool2d(s["size"]))
        elif t == "BatchNorm2d":
            mods.append(nn.BatchNorm2d(s["features"]))
        elif t == "Sigmoid":
            mods.append(nn.Sigmoid())
        elif t == "Tanh":
            mods.append(nn.Tanh())
        elif t == "View":
            mods.append(View(s["shape"]))
        elif t == "Residual":
            mods.append(Residual(build_layers(spec["body"], env)))
        else:
            raise ValueError(f"unknown layer type {t!r}")
    return nn.Sequential(*mods)


def standin_class(name, spec):
    """A class ``name(...)`` building ``spec["layers"]``, called as the starter's signature allows:
    positionally or by the starter's parameter names (``spec["names"]``, e.g. ``num_channels``),
    each bound to its placeholder in ``spec["args"]`` (e.g. "C")."""
    import inspect

    from torch import nn

    placeholders = spec.get("args", [])
    signature = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                   for n in spec.get("names", placeholders)])

    def __init__(self, *args, **kwargs):
        nn.Module.__init__(self)
        bound = signature.bind(*args, **kwargs)  # TypeError, as Python gives, for a wrong call
        self.net = build_layers(spec["layers"], dict(zip(placeholders, bound.arguments.values())))

    def forward(self, x):
        return self.net(x)

    return type(name, (nn.Module,), {"__init__": __init__, "forward": forward})


def as_input(net, x):
    """``x`` in the floating dtype of ``net``'s weights: a float64 submission (set_default_dtype,
    .double(), dtype=) is probed with float64 inputs, a float32 one with float32 inputs."""
    for t in itertools.chain(net.parameters(), net.buffers()):
        if t.is_floating_point():
            return x.to(t.dtype) if x.is_floating_point() and x.dtype != t.dtype else x
    return x


def v_from_terms(terms, D, G, x, z):
    """V = sum of mean(clamp(log(f(D(input))), min=-100)) over the grader's terms
    [[f, input]]: f "id" or "one_minus", input "x" (real) or "Gz" (fake)."""
    import torch

    total = 0
    for f, inp in terms:
        d = D(x) if inp == "x" else D(G(z))
        d = d.reshape(-1)
        total = total + torch.clamp(torch.log(d if f == "id" else 1 - d), min=-100).mean()
    return total


# ----------------------------------------------------------------------------------- worker
class Worker:
    """Holds the submission's module; ``handle(request) -> reply data`` for each request."""

    def __init__(self, student_path, assignment, module_name):
        self.path = os.path.abspath(student_path)
        self.label = os.path.basename(student_path)
        self.assignment = assignment
        self.module_name = module_name
        self.mod = None

    def exc(self, e):
        return exc_message(e, self.path, self.label)

    # -- helpers
    def need(self, name):
        obj = getattr(self.mod, name, None)
        if obj is None:
            raise Fail(f"your {self.label} defines no {name}")
        return obj

    def build(self, name, args):
        cls = self.need(name)
        try:
            return cls(*args)
        except Exception as e:  # noqa: BLE001
            raise Fail(f"{name}({', '.join(map(repr, args))}) raised {self.exc(e)}") from None

    def call(self, what, fn, *args):
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001
            raise Fail(f"{what} raised {self.exc(e)}") from None

    @contextlib.contextmanager
    def standins(self, req):
        classes = {name: standin_class(name, spec) for name, spec in (req.get("standin") or {}).items()}
        with patched(self.mod, **classes):
            yield classes

    def model(self, req):
        import torch

        torch.manual_seed(int(req.get("seed", 0)))
        with self.standins(req):
            return self.build(req["cls"], req.get("args", []))

    # -- ops
    def op_import(self, req):
        start = len(NETWORK_LOG)
        cwd = os.getcwd()
        try:
            with warnings.catch_warnings():  # library warnings are not the student's prints
                warnings.simplefilter("ignore")
                self.mod = load_module(self.module_name, self.path)
        except BaseException as e:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, MemoryError, anything
            error = exc_message(e, self.path, self.label)
            if out_of_memory(e):
                error += " (the memory limit was reached)"
            return {"ok": False, "error": f"importing your {self.label} failed: {error}", "network": []}
        finally:
            with contextlib.suppress(OSError):
                os.chdir(cwd)
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
        import torch

        torch.set_num_threads(1)
        return {"ok": True, "error": "", "network": NETWORK_LOG[start:][:3]}

    def op_forward(self, req):
        """Build, then for each step: run on an input (no_grad), or perturb the weights."""
        import torch

        net = self.model(req)
        net.train(req.get("mode", "train") == "train")
        outs = []
        for step in req["steps"]:
            if "mode" in step:
                net.train(step["mode"] == "train")
                continue
            if "perturb" in step:
                with torch.no_grad():
                    g = torch.Generator().manual_seed(int(step["perturb"]))
                    for p in net.parameters():
                        p.copy_(torch.randn(p.shape, generator=g) * float(step["scale"]))
                continue
            x = as_input(net, decode_tensor(step["input"]))
            with torch.no_grad():
                out = self.call(f"{req['what']} for x of shape {tuple(x.shape)}", net, x)
            outs.append(encode_value(out))
        return {"outputs": outs}

    def op_trace(self, req):
        from torch import nn

        net = self.model(req)
        net.train(req.get("mode", "train") == "train")
        params = sum(p.numel() for p in net.parameters())
        conv_bias = {}  # id -> (name, size): a bias shared by two convolutions counts once, as in params
        for n, m in net.named_modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                conv_bias.setdefault(id(m.bias), (n, m.bias.numel()))
        ops = []
        error = ""
        if "input" in req:
            ops, _, _, err = trace(net, as_input(net, decode_tensor(req["input"])))
            error = self.exc(err) if err is not None else ""
        return {"ops": ops, "error": error, "params": int(params), "conv_bias": [n for n, _ in conv_bias.values()][:5],
                "conv_bias_params": int(sum(k for _, k in conv_bias.values()))}

    def op_function(self, req):
        import torch

        net = self.model(req)
        net.eval()  # tracing in eval mode: no running statistics change
        _, used, _, err = trace(net, as_input(net, decode_tensor(req["probe"])))
        if err is not None:
            raise Fail(f"{req['what']} raised {self.exc(err)}")
        zeroed = load_by_order([decode_tensor(t) for t in req["params"]],
                               [decode_tensor(t) for t in req["buffers"]], net, used, req["what_net"],
                               hide=req.get("hide", False) is True)
        net.train(req["mode"] == "train")
        outs = []
        for t in req["inputs"]:
            x = as_input(net, decode_tensor(t))
            with torch.no_grad():
                outs.append(encode_value(self.call(req["what"], net, x)))
        return {"outputs": outs, "zeroed": zeroed[:5]}

    def make_gan(self, req, fallback=False):
        """The student's GAN(), built with the stand-in Discriminator/Generator the grader sent."""
        cls = self.need("GAN")
        with self.standins(req) as classes:
            try:
                return cls(), classes
            except Exception as e:  # noqa: BLE001
                if not fallback:
                    raise Fail(f"GAN() raised {self.exc(e)}") from None
                gan = cls.__new__(cls)  # calculate_V can still be graded without __init__
                gan.D, gan.G = classes["Discriminator"](), classes["Generator"]()
                return gan, classes

    @staticmethod
    def set_params(net, tensors):
        import torch

        params = list(net.parameters())
        if len(params) != len(tensors) or any(p.shape != t.shape for p, t in zip(params, tensors)):
            raise Fail("GAN() must use self.D = Discriminator() and self.G = Generator() (the grader's "
                       "stand-ins were replaced)")
        with torch.no_grad():
            for p, t in zip(params, tensors):
                p.copy_(t)

    def op_V(self, req):
        gan, classes = self.make_gan(req, fallback=True)
        D, G = classes["Discriminator"](), classes["Generator"]()
        self.set_params(D, [decode_tensor(t) for t in req["D"]])
        self.set_params(G, [decode_tensor(t) for t in req["G"]])
        gan.D, gan.G = D, G
        for p in itertools.chain(D.parameters(), G.parameters()):
            p.grad = None
        x, z = as_input(D, decode_tensor(req["x"])), as_input(G, decode_tensor(req["z"]))
        V = self.call("calculate_V(x, z)", gan.calculate_V, x, z)
        import torch

        reply = {"value": encode_value(V), "requires_grad": isinstance(V, torch.Tensor) and bool(V.requires_grad),
                 "grads_D": None, "grads_G": None}
        if req.get("grads") and reply["requires_grad"] and V.numel() == 1:
            self.call("calculate_V(x, z).backward()", V.reshape(()).backward)
            reply["grads_D"] = [encode_value(p.grad) for p in D.parameters()]
            reply["grads_G"] = [encode_value(p.grad) for p in G.parameters()]
        return reply

    def op_optimizer(self, req):
        import torch

        gan, _ = self.make_gan(req)
        which = req["which"]
        name = f"{which}_optimizer"
        opt = getattr(gan, name, None)
        reply = {"has_model": hasattr(gan, which), "has_optimizer": opt is not None, "type": "",
                 "is_adam": False, "lrs": [], "params": []}
        if opt is None:
            return reply
        reply["type"] = f"{type(opt).__module__}.{type(opt).__qualname__}"
        reply["is_adam"] = type(opt) is torch.optim.Adam
        try:
            groups = list(opt.param_groups)
            reply["lrs"] = [float(g["lr"]) for g in groups]
            ids = [id(p) for g in groups for p in g["params"]]
        except Exception:  # noqa: BLE001 - not an optimizer's structure
            return reply
        where = {}
        for net in ("D", "G"):
            for i, p in enumerate(getattr(gan, net).parameters() if hasattr(gan, net) else []):
                where.setdefault(id(p), f"{net}{i}")
        reply["params"] = [where.get(i, "other") for i in ids]
        return reply

    def op_train(self, req):
        """GAN().train(1) on the grader's one-batch loader, from the grader's weights, with garbage
        in every .grad (a train() without zero_grad() keeps it). Replies with the weights after,
        the real batch D saw, and the z of each step: the last z fed to G, with gradients on,
        before D_optimizer.step() and before G_optimizer.step() (a call to G from visualize, under
        no_grad or after the step is not the step's)."""
        import torch

        torch.manual_seed(int(req["seed"]))
        images = decode_tensor(req["images"]).to(torch.get_default_dtype())
        undo = install_data_stubs(self.mod, images)  # before GAN(): the starter builds its loader there
        try:
            return self._train_once(req)
        finally:
            for fn in reversed(undo):
                fn()

    def _train_once(self, req):
        import inspect

        import torch
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        gan, _ = self.make_gan(req)
        D, G = getattr(gan, "D", None), getattr(gan, "G", None)
        if D is None or G is None or not callable(getattr(gan, "train", None)):
            raise Fail("GAN() needs attributes D and G and a method train(epochs)")
        self.set_params(D, [decode_tensor(t) for t in req["D"]])
        self.set_params(G, [decode_tensor(t) for t in req["G"]])
        terms = req["v_terms"]
        if callable(getattr(gan, "calculate_V", None)):  # a wrong V costs the V checks only
            gan.calculate_V = lambda x, z: v_from_terms(terms, gan.D, gan.G, x, z)
        lrs = {}
        for which in ("D", "G"):
            try:
                lrs[which] = float(getattr(gan, f"{which}_optimizer").param_groups[0]["lr"])
            except Exception:  # noqa: BLE001 - no optimizer at __init__: the grader uses the assignment's rate
                lrs[which] = -1.0
        garbage = torch.Generator().manual_seed(int(req["garbage_seed"]))
        with torch.no_grad():  # a train() without zero_grad() keeps these in its gradients
            for p in itertools.chain(D.parameters(), G.parameters()):
                p.grad = torch.randn(p.shape, generator=garbage, dtype=torch.float32).to(p.device, p.dtype)
        zs, fakes, reals, step_z = [], [], [], {}
        owner = {id(p): "D" for p in D.parameters()}
        owner.update({id(p): "G" for p in G.parameters()})

        def g_in(module, inp):
            if torch.is_grad_enabled():
                zs.append(inp[0].detach().cpu().float().clone())

        def g_out(module, inp, out):
            fakes.append(out.untyped_storage().data_ptr())

        def d_in(module, inp):  # a real batch: not a G output, with gradients on (not a logging call)
            x = inp[0]
            if x.untyped_storage().data_ptr() not in fakes and not reals and torch.is_grad_enabled():
                reals.append(x.detach().cpu().float().clone())

        def before_step(optimizer, args, kwargs):
            nets = {owner.get(id(p)) for group in optimizer.param_groups for p in group["params"]}
            for which in ("D", "G"):
                if which in nets and which not in step_z and zs:
                    step_z[which] = zs[-1]

        hooks = [G.register_forward_pre_hook(g_in), G.register_forward_hook(g_out),
                 D.register_forward_pre_hook(d_in), register_optimizer_step_pre_hook(before_step)]
        try:
            params = [p for p in inspect.signature(gan.train).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            params = [None]
        start = len(NETWORK_LOG)
        error = ""
        try:
            gan.train(1) if params else gan.train()
        except Exception as e:  # noqa: BLE001
            if out_of_memory(e):
                raise Fail(f"GAN().train(1) raised {self.exc(e)}") from e
            error = self.exc(e)
        finally:
            for h in hooks:
                h.remove()
        if "D" in step_z and "G" in step_z:
            chosen = [step_z["D"], step_z["G"]]
        else:  # no optimizer step seen: the first and the last z with gradients
            chosen = zs[:1] + zs[-1:] if len(zs) > 1 else zs
        return {"error": error, "network": NETWORK_LOG[start:][:3], "lrs": [lrs["D"], lrs["G"]],
                "same_nets": gan.D is D and gan.G is G,
                "D": [encode_tensor(p) for p in D.parameters()], "G": [encode_tensor(p) for p in G.parameters()],
                "reals": [encode_tensor(t) for t in reals[:1]],
                "zs": [encode_tensor(t) for t in chosen], "n_z": len(zs)}

    def handle(self, req):
        """The reply data for one request: the op's fields, or {"fail": message}."""
        op = req.get("op")
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            return {"fail": f"unknown request {op!r}"}
        if op != "import" and self.mod is None:
            return {"fail": "the submission is not imported"}
        try:
            return fn(req)
        except Fail as e:
            return fail_reply(str(e), e)
        except BaseException as e:  # noqa: BLE001 - student code misbehaved (any BaseException subclass too)
            if isinstance(e, GeneratorExit):
                raise
            return fail_reply(f"raised {self.exc(e)}", e)


MNIST_STANDIN_SEED = 32  # the stand-in MNIST's 28x28 digits: randint(0, 256) from this seed


def install_data_stubs(mod, images):
    """Data loading without downloads: the module's get_data_loader and torchvision's MNIST
    serve the grader's in-memory images (one batch), so ``train`` never touches the network."""
    import torch

    def tiny_loader(*args, **kwargs):
        labels = torch.zeros(len(images), dtype=torch.long)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images.clone(), labels),
                                           batch_size=len(images))

    undo = []
    if callable(getattr(mod, "get_data_loader", None)):
        original = mod.get_data_loader
        mod.get_data_loader = tiny_loader
        undo.append(lambda: setattr(mod, "get_data_loader", original))

    def patch_torchvision(tvd):
        import numpy as np
        from PIL import Image

        original_mnist = tvd.MNIST

        class TinyMNIST(torch.utils.data.Dataset):
            """16 random 28x28 digits in place of MNIST (the autograder never downloads)."""

            classes = [str(i) for i in range(10)]

            def __init__(self, root=None, train=True, transform=None, target_transform=None, download=False,
                         **kwargs):
                g = torch.Generator().manual_seed(MNIST_STANDIN_SEED)
                self.data = torch.randint(0, 256, (len(images), 28, 28), generator=g, dtype=torch.uint8)
                self.targets = torch.arange(len(images)) % 10
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
        for key, value in list(vars(mod).items()):
            if value is original_mnist:
                setattr(mod, key, TinyMNIST)
                undo.append(lambda key=key: setattr(mod, key, original_mnist))

    if "torchvision.datasets" in sys.modules:
        patch_torchvision(sys.modules["torchvision.datasets"])
    else:  # patch it if and when the submission imports it (importing torchvision costs seconds)
        hook = PatchOnImport("torchvision.datasets", patch_torchvision)
        sys.meta_path.insert(0, hook)
        undo.append(hook.remove)
    return undo


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def install_mnist_fallback(data_root):
    """torchvision's MNIST reads the grader's small real MNIST (``data_root``, written into the
    scratch folder as raw IDX files) when the root a submission names does not hold MNIST: a
    loader pointing elsewhere works too, and never tries the (blocked) network. The starter's
    ``./data`` is that folder, so its call runs as written. Returns an undo function."""
    undo = []

    def redirect(tvd):
        cls = tvd.MNIST
        original = cls.__init__

        def __init__(self, root, *args, **kwargs):
            if type(self) is cls:
                try:
                    raw = os.path.join(os.fspath(root), "MNIST", "raw")
                    if not all(os.path.isfile(os.path.join(raw, n)) for n in MNIST_FILES):
                        root = data_root
                except TypeError:
                    pass  # not a path: torchvision's own error
            original(self, root, *args, **kwargs)

        cls.__init__ = __init__
        undo.append(lambda: setattr(cls, "__init__", original))

    if "torchvision.datasets" in sys.modules:
        redirect(sys.modules["torchvision.datasets"])
    else:  # when the submission imports it (importing torchvision costs seconds)
        hook = PatchOnImport("torchvision.datasets", redirect)
        sys.meta_path.insert(0, hook)
        undo.append(hook.remove)
    return lambda: [fn() for fn in reversed(undo)]


class PatchOnImport:
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


# ------------------------------------------------------------------------------------- main
def short_warning(message, category, filename, lineno, line=None):
    """A warning as Python prints it, with the file's name only: a library's warning (the
    starter's DataLoader on a small machine) would otherwise show the host's Python folders in
    the submission's output, which the student reads."""
    return f"{os.path.basename(str(filename))}:{lineno}: {category.__name__}: {message}\n"


def main(argv):
    req_fd, rep_fd, student, assignment = int(argv[0]), int(argv[1]), argv[2], argv[3]
    if len(argv) > 4:
        sys.path[:] = json.loads(argv[4])
    if len(argv) > 5:
        AllowedImports(student, json.loads(argv[5])).install()
    sys.dont_write_bytecode = True
    with contextlib.suppress(Exception):
        import signal

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file beyond RLIMIT_FSIZE: an error, not a kill
    install_network_block()
    warnings.formatwarning = short_warning
    if assignment == "hw5":
        install_mnist_fallback(os.path.abspath("data"))
    worker = Worker(student, assignment, f"submission_{assignment}")
    requests = os.fdopen(req_fd, "rb", buffering=1 << 16)

    def send(obj):
        data = (json.dumps(obj) + "\n").encode()
        while data:
            try:
                n = os.write(rep_fd, data)
            except InterruptedError:
                continue
            except OSError:
                os._exit(70)
            data = data[n:]

    try:
        while True:
            line = requests.readline()
            if not line:
                break
            req = json.loads(line)
            data = worker.handle(req)
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            try:
                send({"id": req.get("id"), "data": data})
            except (TypeError, ValueError) as e:
                send({"id": req.get("id"), "data": {"fail": f"the reply could not be encoded ({e})"}})
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(0)  # skip atexit handlers and non-daemon threads the submission may have left


if __name__ == "__main__":
    main(sys.argv[1:])
