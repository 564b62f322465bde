"""hw2_ResNet: exact architecture (hw2 Q3(a)(b)), shapes, BatchNorm behaviour, input checks."""
import pytest
import torch
from torch import nn

from hw2_ResNet import Block, ResNet


def expected_param_count(C, num_classes=10):
    """From the spec's layer list, not from the model."""
    conv_in = 1 * C * 3 * 3          # Conv2d(1, C, 3), no bias
    bn = 2 * C                       # BatchNorm2d(C): weight + bias
    block_conv = C * C * 3 * 3       # Conv2d(C, C, 3), no bias
    fc = C * num_classes + num_classes
    return conv_in + bn + (block_conv + bn) * 2 + fc


@pytest.mark.parametrize("C", [1, 2, 4, 7, 64])
def test_parameter_count_matches_layer_list(C):
    model = ResNet(C)
    assert sum(p.numel() for p in model.parameters()) == expected_param_count(C)


# Totals worked out by hand from the assignment's layer list, e.g. C = 4: conv 1*4*9 = 36,
# BN 8, block convs 2 * 4*4*9 = 288, block BNs 16, Linear 4*10 + 10 = 50 -> 398.
@pytest.mark.parametrize("C, total", [(1, 53), (2, 132), (4, 398), (64, 75338)])
def test_parameter_count_literal_totals(C, total):
    assert sum(p.numel() for p in ResNet(C).parameters()) == total


def test_layer_order_and_hyperparameters():
    C = 4
    model = ResNet(C)
    kinds = [type(m) for m in model.children()]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, Block,
                     nn.AdaptiveAvgPool2d, nn.Linear]
    conv, bn, _, pool, block, avg, fc = model.children()
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding) \
        == (1, C, (3, 3), (2, 2), (1, 1))
    assert bn.num_features == C
    assert pool.kernel_size == 2 and pool.stride == 2
    assert avg.output_size == 1
    assert (fc.in_features, fc.out_features) == (C, 10) and fc.bias is not None
    b = [type(m) for m in block.children()]
    assert b == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d]
    for m in (block.conv1, block.conv2):
        assert (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding) \
            == (C, C, (3, 3), (1, 1), (1, 1))
    text = repr(model)
    assert text.index("Conv2d(1, 4") < text.index("MaxPool2d") < text.index("Block") \
        < text.index("AdaptiveAvgPool2d") < text.index("Linear")


def test_no_bias_in_convolutions():
    model = ResNet(8)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3
    assert all(m.bias is None for m in convs)


@pytest.mark.parametrize("N", [1, 5, 128])
@pytest.mark.parametrize("HW", [8, 28])
def test_output_shape(N, HW):
    torch.manual_seed(0)
    model = ResNet(4)
    for mode in (model.train, model.eval):
        mode()
        out = model(torch.randn(N, 1, HW, HW))
        assert out.shape == (N, 10)
        assert torch.isfinite(out).all()


def test_num_classes():
    assert ResNet(3, num_classes=5)(torch.randn(2, 1, 8, 8)).shape == (2, 5)


@pytest.mark.parametrize("shape", [(3, 1, 2, 2), (4, 1, 5, 5), (2, 1, 28, 28)])
def test_block_keeps_shape(shape):
    C = 6
    x = torch.randn(shape[0], C, *shape[2:])
    assert Block(C)(x).shape == x.shape


def test_block_is_relu_when_second_bn_is_zero():
    torch.manual_seed(1)
    block = Block(5)
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
    x = torch.randn(4, 5, 3, 3)
    for mode in (block.train, block.eval):
        mode()
        assert torch.equal(block(x), torch.relu(x))


def test_block_computes_relu_of_x_plus_f():
    """Independent computation of ReLU(x + BN(Conv(ReLU(BN(Conv(x)))))) in train mode."""
    torch.manual_seed(2)
    block = Block(3)
    x = torch.randn(6, 3, 4, 4)

    def bn(h, m):
        mean = h.mean((0, 2, 3), keepdim=True)
        var = h.var((0, 2, 3), unbiased=False, keepdim=True)
        return (h - mean) / torch.sqrt(var + m.eps) * m.weight.view(1, -1, 1, 1) \
            + m.bias.view(1, -1, 1, 1)

    with torch.no_grad():
        f = bn(torch.nn.functional.conv2d(
            torch.relu(bn(torch.nn.functional.conv2d(x, block.conv1.weight, padding=1),
                          block.bn1)), block.conv2.weight, padding=1), block.bn2)
        expected = torch.relu(x + f)
        assert torch.allclose(block(x), expected, atol=1e-5)


def test_batchnorm_train_vs_eval():
    torch.manual_seed(3)
    model = ResNet(4)
    x = torch.randn(16, 1, 8, 8) * 3 + 1
    before = model.bn.running_mean.clone()
    model.train()
    out_batch = model(x)[:2]
    out_pair = model(x[:2])
    assert not torch.allclose(out_batch, out_pair, atol=1e-4)  # batch statistics
    assert not torch.equal(model.bn.running_mean, before)      # running stats moved
    model.eval()
    frozen = model.bn.running_mean.clone()
    out_batch = model(x)[:2]
    out_pair = model(x[:2])
    assert torch.allclose(out_batch, out_pair, atol=1e-6)      # running statistics
    assert torch.equal(model.bn.running_mean, frozen)          # no update in eval


@pytest.mark.parametrize("bad", [0, -3])
def test_non_positive_width_raises(bad):
    with pytest.raises(ValueError, match=f"num_channels must be a positive int, got {bad}"):
        ResNet(bad)
    with pytest.raises(ValueError, match=f"num_channels must be a positive int, got {bad}"):
        Block(bad)


@pytest.mark.parametrize("bad", [2.5, "4", True])
def test_non_int_width_raises(bad):
    with pytest.raises(TypeError, match="num_channels must be a positive int"):
        ResNet(bad)
    with pytest.raises(TypeError, match="num_channels must be a positive int"):
        Block(bad)


def test_numpy_integers_are_accepted():
    np = pytest.importorskip("numpy")
    model = ResNet(np.int64(4), num_classes=np.int32(7))
    assert model.num_channels == 4 and type(model.num_channels) is int
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 7)
    assert Block(np.int64(3))(torch.zeros(1, 3, 4, 4)).shape == (1, 3, 4, 4)


@pytest.mark.parametrize("bad, exc", [("10", TypeError), (10.0, TypeError), (True, TypeError),
                                      (0, ValueError)])
def test_bad_num_classes(bad, exc):
    with pytest.raises(exc, match="num_classes must be a positive int"):
        ResNet(2, num_classes=bad)


@pytest.mark.parametrize("dtype, fix_x, fix_model", [
    (torch.float64, r"x\.float\(\)", r"model\.double\(\)"),
    (torch.float16, r"x\.float\(\)", r"model\.half\(\)"),
])
def test_input_dtype_must_match_parameters(dtype, fix_x, fix_model):
    """A raw torch RuntimeError ("Input type (double) and bias type (float)") before."""
    pattern = (r"input dtype must match the model's parameters: x is " + str(dtype)
               + r" but the parameters are torch\.float32; convert the input with " + fix_x
               + " or the model with " + fix_model)
    with pytest.raises(TypeError, match=pattern):
        ResNet(2)(torch.zeros(2, 1, 8, 8, dtype=dtype))
    with pytest.raises(TypeError, match=pattern):
        Block(2)(torch.zeros(2, 2, 4, 4, dtype=dtype))
    # the suggested fixes work
    assert ResNet(2)(torch.zeros(2, 1, 8, 8, dtype=dtype).float()).dtype == torch.float32
    assert ResNet(2).double()(torch.zeros(2, 1, 8, 8, dtype=torch.float64)).dtype == torch.float64


def test_works_under_autocast_bf16():
    """Under autocast the layers cast their inputs themselves: a bf16 input passes the dtype
    check there (and the output equals the fp32 model's to bf16 accuracy), but not outside it."""
    torch.manual_seed(0)
    model, x = ResNet(4).eval(), torch.randn(3, 1, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x.bfloat16())
        assert Block(4)(torch.randn(2, 4, 4, 4).bfloat16()).shape == (2, 4, 4, 4)
    assert out.shape == (3, 10) and torch.allclose(out.float(), model(x), atol=0.1)
    with pytest.raises(TypeError, match="dtype must match"):
        model(x.bfloat16())


def test_wrong_input_rank_raises():
    model = ResNet(2)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(torch.randn(4, 8, 8))
    with pytest.raises(ValueError, match="4 dimensions"):
        model(torch.randn(1, 4, 1, 8, 8))


def test_wrong_channel_count_raises():
    with pytest.raises(ValueError, match=r"x must have 1 channel\(s\) in dimension 1, got "
                                         r"shape \(4, 3, 8, 8\)"):
        ResNet(2)(torch.randn(4, 3, 8, 8))
    with pytest.raises(ValueError, match=r"x must have 5 channel\(s\) in dimension 1"):
        Block(5)(torch.randn(4, 3, 8, 8))


def test_bad_input_type_raises():
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor, got list"):
        ResNet(2)([[0.0]])
    with pytest.raises(TypeError, match="x must be a floating-point tensor, got dtype torch.int64"):
        ResNet(2)(torch.zeros(2, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="x must be at least 3x3 pixels"):
        ResNet(2)(torch.zeros(2, 1, 2, 2))


def test_module_is_self_contained(repo_root):
    import ast
    import os

    tree = ast.parse(open(os.path.join(repo_root, "hw2_ResNet.py")).read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported == {"torch"}


def test_import_is_silent(repo_root):
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('error'); import hw2_ResNet, sys; "
            "assert 'utils_train_script' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
