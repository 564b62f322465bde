"""What crosses the trust boundary, and how the grader compares it: the schema of each reply
(anything else is refused), the parser, the layer descriptions of the handout's tables, and the
comparisons of layers and outputs with the reference's."""

from __future__ import annotations

import json
import math

import autograde_worker as W  # the trusted copy: its tracer and stand-in builder run on the reference

from .registry import CheckFail, WorkerLost, _exp

MAX_REPLY_BYTES = 64 * 2**20  # a longer reply line is a protocol violation
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
    A {"fail": message} reply parses to {"fail": message, "out_of_memory": bool}."""
    if len(line) > MAX_REPLY_BYTES:
        raise ValueError("reply too long")
    env = json.loads(line)
    if not isinstance(env, dict) or set(env) != {"id", "data"} or env["id"] != nonce:
        raise ValueError("a reply that does not answer the pending request")
    data = env["data"]
    if isinstance(data, dict) and set(data) in ({"fail"}, {"fail", "out_of_memory"}):
        return {"fail": _parse(data["fail"], str, "fail"),
                "out_of_memory": _parse(data.get("out_of_memory", False), bool, "out_of_memory")}
    return _parse(data, SCHEMAS[op])


def _enc(t):
    return W.encode_tensor(t)


def _encs(tensors):
    return [W.encode_tensor(t) for t in tensors]


def _rand(*shape, seed=0, kind="normal"):
    import torch

    g = torch.Generator().manual_seed(seed)
    if kind == "normal":
        return torch.randn(*shape, generator=g, dtype=torch.float32)
    return torch.rand(*shape, generator=g, dtype=torch.float32) * 2 - 1  # uniform in [-1, 1): image-like


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
    """CheckFail listing every difference between the executed and the expected layers (a wrong
    slope and a wrong pooling are both named), aligned as a diff so a missing or an extra layer
    does not make every later layer look wrong."""
    import difflib

    got = list(ops)
    stopped = ""  # the forward pass raised: compare the layers that ran, then say where it stopped
    if error and len(got) < len(expected):
        stopped = (f"the forward pass raised {error} after layer {len(got)} ({_fmt_op(got[-1]) if got else 'none'}); "
                   f"layer {len(got) + 1} should be {_exp(_fmt_op(expected[len(got)]))}")
        expected = expected[:len(got)]

    def key(op):
        return tuple(sorted((k, round(v, 9) if isinstance(v, float) else tuple(v) if isinstance(v, list) else v)
                            for k, v in op.items() if k not in ignore))

    diff = difflib.SequenceMatcher(None, [key(op) for op in got], [key(op) for op in expected], autojunk=False)
    problems = []
    for tag, i1, i2, j1, j2 in diff.get_opcodes():
        if tag == "replace" and i2 - i1 == j2 - j1:
            problems += [f"layer {i + 1} is {_fmt_op(got[i])}, expected {_exp(_fmt_op(expected[j]))}"
                         for i, j in zip(range(i1, i2), range(j1, j2))]
        elif tag in ("replace", "delete") and i2 > i1:
            extra = ", ".join(_fmt_op(op) for op in got[i1:i2][:3])
            problems.append(f"extra layer{'s' if i2 - i1 > 1 else ''} {i1 + 1}-{i2}: {extra}" if i2 - i1 > 1
                            else f"layer {i1 + 1} ({extra}) is extra")
        if tag in ("replace", "insert") and (tag == "insert" or i2 - i1 != j2 - j1):
            missing = ", ".join(_fmt_op(op) for op in expected[j1:j2][:3])
            problems.append(f"{_exp(missing)} missing after layer {i1}" if i1 else f"{_exp(missing)} missing at the start")
    if problems or stopped:
        count = "" if len(got) == len(expected) else f" ({len(got)} layers ran, expected {_exp(len(expected))})"
        listed = problems[:6] + (["..."] if len(problems) > 6 else [])
        raise CheckFail(f"{what}{count}: " + "; ".join(listed + ([stopped] if stopped else [])))
    if error:
        raise CheckFail(f"{what}: the forward pass raised {error}")


def _compare_outputs(got, want, what, tol):
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


# ---------------------------------------------------------------------- layer descriptions
def _conv(cin, cout, k, s, p, bias=True, kind="Conv2d"):
    return {"type": kind, "in": cin, "out": cout, "kernel": k, "stride": s, "padding": p, "dilation": 1,
            "groups": 1, "bias": bias}


def _lrelu(slope):
    return {"type": "LeakyReLU", "slope": slope}


def _maxpool(k):
    return {"type": "MaxPool2d", "kernel": k, "stride": k, "padding": 0}
