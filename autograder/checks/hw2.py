"""hw2 question 3(a)(b) (Block and ResNet): everything the grader checks, with its points.

Read top to bottom: the spec (the handout's numbers, each written once), the checks in grading
order with their points, then how each check works. A check is a function ``check_<key>(c)``
that returns None (or a note) for full marks and raises CheckFail for none; ``c.ask(op, ...)``
sends one request to the worker that runs the student's file (see ``autograde_worker.py``).
"""

from __future__ import annotations

import sys

from ..protocol import _compare_layers, _compare_outputs, _conv, _enc, _encs, _maxpool, _outputs, _rand, _weights_in_use_order
from ..registry import Check, CheckFail, _exp, assemble

# ==========================================================================================
# THE SPEC: the handout's numbers (hw2.md, question 3)
# ==========================================================================================
FILE, TITLE, NUMBER = "hw2_ResNet.py", "hw2 (ResNet)", 2
IN_CHANNELS, CLASSES = 1, 10  # ResNet(C): (N, 1, H, W) -> (N, 10)


def _bn(c):
    return {"type": "BatchNorm2d", "features": c}


def _block_table(c):  # Block(C): f(x) = BN(Conv3x3(ReLU(BN(Conv3x3(x))))), output ReLU(x + f(x))
    return [_conv(c, c, 3, 1, 1, bias=False), _bn(c), {"type": "ReLU"}, _conv(c, c, 3, 1, 1, bias=False), _bn(c),
            {"type": "ReLU"}]


def _resnet_table(c):  # ResNet(C): the stem, one Block, global average pooling, the classifier
    return ([_conv(IN_CHANNELS, c, 3, 2, 1, bias=False), _bn(c), {"type": "ReLU"}, _maxpool(2)] + _block_table(c)
            + [{"type": "AdaptiveAvgPool2d", "size": 1}, {"type": "Linear", "in": c, "out": CLASSES, "bias": True}])


RESNET_PARAMS_TEXT = "18C^2 + 25C + 10"  # 9C + 2C (stem, BN) + 18C^2 + 4C (Block) + 10C + 10 (Linear)


def RESNET_PARAMS(C):
    return 18 * C * C + 25 * C + 10


# how the grader probes (its choices, not the handout's)
BLOCK_CHANNELS = (1, 4, 16)  # every check runs for each C
RESNET_SIZES = (8, 28)  # input sizes: the digits' 8x8, and MNIST's 28x28
TOL_FUNCTION = 1e-5  # relative tolerance of the function checks (on max(1, |expected|))

# ResNet is built with this stand-in Block (sent after the Block checks): a wrong Block costs only Block points
BLOCK_STANDIN = {"Block": {"args": ["C"], "names": ["num_channels"], "layers": [  # Block(C) or Block(num_channels=C)
    {"type": "Residual", "body": _block_table("C")[:5]}, {"type": "ReLU"}]}}

_C = ", ".join(map(str, BLOCK_CHANNELS))
OWN_BLOCK = ("Block_shape", "Block_no_bias", "Block_layers", "Block_train", "Block_eval")

# ==========================================================================================
# THE CHECKS, in grading order (100 points with the import checks' 6)
# ==========================================================================================
CHECKS = [  # (each row's function, check_<key>, is below; assemble() at the end attaches it)
    Check("Block_shape", 6, f"Block(C), C = {_C}: output shape equals the input shape"),
    Check("Block_no_bias", 6, "Block(C): its convolutions have no bias"),
    Check("Block_layers", 10, "Block(C): Conv3x3 -> BN -> ReLU -> Conv3x3 -> BN, then ReLU(x + f(x)), in order"),
    Check("Block_train", 12, "Block(C): with the reference's weights, output equals the reference's in train mode"),
    Check("Block_eval", 8, "Block(C): with the reference's weights and BN statistics, equal output in eval mode"),
    # the ResNet checks build ResNet with the stand-in Block: only after the student's own Block
    Check("ResNet_shape", 8, f"ResNet(C), C = {_C}: output (N, {CLASSES}) for "
                             f"{' and '.join(f'{s}x{s}' for s in RESNET_SIZES)} inputs", after=OWN_BLOCK),
    Check("ResNet_no_bias", 4, "ResNet(C): its convolutions have no bias", after=OWN_BLOCK),
    Check("ResNet_layers", 12, f"ResNet(C): Conv({IN_CHANNELS}, C, 3, stride 2, pad 1) -> BN -> ReLU -> MaxPool(2) -> "
                               f"Block -> AdaptiveAvgPool(1) -> Linear(C, {CLASSES})", after=OWN_BLOCK),
    Check("ResNet_params", 8, f"ResNet(C): {_exp(RESNET_PARAMS_TEXT)} parameters", after=OWN_BLOCK),
    Check("ResNet_train", 12, "ResNet(C): with the reference's weights, output equals the reference's in train mode",
          after=OWN_BLOCK),
    Check("ResNet_eval", 8, "ResNet(C): with the reference's weights and BN statistics, equal output in eval mode",
          after=OWN_BLOCK),
]

# ==========================================================================================
# HOW EACH CHECK WORKS
# ==========================================================================================
def _hw2_request(which, channels):
    return {"cls": which, "args": [channels], "standin": BLOCK_STANDIN if which == "ResNet" else None}


def _hw2_input(which, channels, n=4, hw=5, seed=0):
    if which == "Block":
        return _rand(n, channels, hw, hw, seed=seed)
    return _rand(n, IN_CHANNELS, hw, hw, seed=seed)


def check_Block_shape(c):
    import torch

    for C in BLOCK_CHANNELS:
        x = _rand(3, C, 6, 6, seed=C)
        out, = _outputs(c.ask("forward", **_hw2_request("Block", C), seed=50 + C, what=f"Block({C})(x)",
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
        sizes = (5, 8) if which == "Block" else RESNET_SIZES
        xs = [_hw2_input(which, C, n=4, hw=hw, seed=83 + hw) for hw in sizes]
        with torch.no_grad():
            wants = [ref(x) for x in xs]
        r = c.ask("function", **_hw2_request(which, C), seed=80 + C, probe=_enc(probe), params=_encs(params),
                  hide=c.hide_expected,
                  buffers=_encs(buffers), mode=mode, inputs=_encs(xs), what=f"{which}({C})(x)",
                  what_net=f"{which}({C})")
        for x, got, want in zip(xs, _outputs(r, len(xs)), wants):
            _compare_outputs(got, want, f"{which}({C})(x) in {mode} mode for x of shape {tuple(x.shape)}", TOL_FUNCTION)
        zeroed = zeroed or r["zeroed"]
    if zeroed:  # the bias is the no-bias check's mistake, not this one's (which may be hidden: not named)
        return f"ok, with your convolution biases ({', '.join(zeroed[:3])}) set to zero for this check"


def check_Block_no_bias(c):
    _check_no_bias(c, "Block")


def check_Block_layers(c):
    _check_layers(c, "Block")
    _check_skip(c)


def _check_skip(c):
    """The skip connection, seen by data flow (the trace above cannot see an addition): with
    both convolutions zeroed (and BN at its defaults, eval mode) f(x) = 0, so Block(C)(x) must be
    ReLU(x + 0) = ReLU(x); without the skip it is ReLU(0) = 0."""
    import torch

    C = BLOCK_CHANNELS[-1]
    torch.manual_seed(75)
    ref = c.ref.Block(C)
    probe = _hw2_input("Block", C, n=3, hw=5, seed=76)
    params, buffers = _weights_in_use_order(ref, probe)
    params = [torch.zeros_like(p) if p.dim() == 4 else p.detach().clone() for p in params]  # conv weights: 0
    x = _hw2_input("Block", C, n=4, hw=5, seed=77)
    r = c.ask("function", **_hw2_request("Block", C), seed=75, probe=_enc(probe), params=_encs(params),
              hide=c.hide_expected, buffers=_encs([b.detach().clone() for b in buffers]), mode="eval",
              inputs=[_enc(x)], what=f"Block({C})(x)", what_net=f"Block({C})")
    try:
        _compare_outputs(_outputs(r, 1)[0], torch.relu(x), f"Block({C})(x) with its convolutions set to zero",
                         TOL_FUNCTION)
    except CheckFail:
        raise CheckFail(f"Block({C}): with both convolutions set to zero, the output must be ReLU(x), since "
                        f"f(x) = 0; yours is not: is the skip connection missing (the output is ReLU(x + f(x)))?") \
            from None


def check_Block_train(c):
    return _check_function(c, "Block", "train")


def check_Block_eval(c):
    return _check_function(c, "Block", "eval")


def check_ResNet_shape(c):
    import torch

    for C in BLOCK_CHANNELS:
        steps, shapes = [], []
        for mode in ("train", "eval"):
            steps.append({"mode": mode})
            for hw in RESNET_SIZES:
                x = _rand(5, IN_CHANNELS, hw, hw, seed=hw)
                steps.append({"input": _enc(x)})
                shapes.append((mode, tuple(x.shape)))
        outs = _outputs(c.ask("forward", **_hw2_request("ResNet", C), seed=90 + C, what=f"ResNet({C})(x)",
                              steps=steps), len(shapes))
        for (mode, shape), out in zip(shapes, outs):
            t = out.tensor()
            if t is None or tuple(t.shape) != (5, CLASSES):
                got = tuple(t.shape) if t is not None else out.describe()
                raise CheckFail(f"ResNet({C})(x) in {mode} mode for x of shape {shape} gave {got}, expected {(5, CLASSES)}")
            if not torch.isfinite(t).all():
                raise CheckFail(f"ResNet({C})(x) contains NaN or inf")


def check_ResNet_no_bias(c):
    _check_no_bias(c, "ResNet")


def check_ResNet_layers(c):
    _check_layers(c, "ResNet")


def check_ResNet_params(c):
    note = ""
    for C in BLOCK_CHANNELS:
        r = c.ask("trace", **_hw2_request("ResNet", C), seed=0)
        n = r["params"] - r["conv_bias_params"]  # a conv bias costs only ResNet_no_bias
        want = RESNET_PARAMS(C)
        if n != want:
            raise CheckFail(f"ResNet({C}) has {n:,} parameters (not counting convolution biases), expected "
                            f"{_exp(f'{RESNET_PARAMS_TEXT} = {want:,}')}")
        if r["conv_bias_params"]:
            note = "ok, not counting your convolution biases"
    return note or None


def check_ResNet_train(c):
    return _check_function(c, "ResNet", "train")


def check_ResNet_eval(c):
    return _check_function(c, "ResNet", "eval")




CHECKS = assemble(CHECKS, sys.modules[__name__])  # attaches each check_<key>; asserts the order
