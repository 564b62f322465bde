"""A one-block residual network for 10-class digit images (hw2, problem 3(a)(b)).

Self-contained: imports only torch. Importing this module only defines ``Block`` and
``ResNet``; training lives in ``utils_train_script.py``.
"""
import torch
from torch import nn


def _check_input(x, num_channels, weight, name="x"):
    """Validate a (N, C, H, W) float tensor with the expected channel count and the dtype of
    the module's parameters (``weight``)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"{name} must have shape (N, {num_channels}, H, W) (4 dimensions), "
            f"got {x.dim()} dimensions with shape {tuple(x.shape)}"
        )
    if x.shape[1] != num_channels:
        raise ValueError(
            f"{name} must have {num_channels} channel(s) in dimension 1, "
            f"got shape {tuple(x.shape)}"
        )
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(
            f"the input dtype must match the model's parameters: {name} is {x.dtype} but the "
            f"parameters are {weight.dtype}; convert the input with "
            f"{name}{_to(weight.dtype)} or the model with model{_to(x.dtype)}"
        )


def _to(dtype):
    """The shortest conversion call for ``dtype``, e.g. '.float()' or '.to(torch.bfloat16)'."""
    method = {torch.float32: "float", torch.float64: "double", torch.float16: "half"}.get(dtype)
    return f".{method}()" if method else f".to({dtype})"


def _check_int(value, name):
    """A positive int; NumPy and other integer types (anything with ``__index__``) are
    accepted, bools and floats are not. Returns a plain int."""
    index = getattr(type(value), "__index__", None)
    if isinstance(value, bool) or index is None:
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}")
    try:
        value = int(index(value))
    except TypeError:  # e.g. a tensor with more than one element
        raise TypeError(f"{name} must be a positive int, got {type(value).__name__}") from None
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


class Block(nn.Module):
    """A basic block of a residual network (hw2 Q3(a)).

    Given input x of shape (N, C, H, W), the block computes

        f(x) = BN(Conv(ReLU(BN(Conv(x)))))

    with both convolutions 3x3, stride 1, padding 1, C -> C channels and no bias, and
    returns ReLU(x + f(x)), of the same shape (N, C, H, W).

    Arguments:
        num_channels: the number of channels C of the input (and output).
    """

    def __init__(self, num_channels):
        super().__init__()
        num_channels = _check_int(num_channels, "num_channels")
        self.num_channels = num_channels
        self.conv1 = nn.Conv2d(num_channels, num_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(num_channels, num_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, x):
        """
        The input will have shape (N, num_channels, H, W),
        where N is the batch size, and H and W give the shape of each channel.

        The output should have the same shape as input.
        """
        _check_input(x, self.num_channels, self.conv1.weight)
        f = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(x + f)


class ResNet(nn.Module):
    """A simplified residual network (hw2 Q3(b)).

    Layers, in order:
        Conv2d(1, C, 3, stride=2, padding=1, bias=False) -> BatchNorm2d(C) -> ReLU
        -> MaxPool2d(2) -> Block(C) -> AdaptiveAvgPool2d(1) -> Linear(C, num_classes)

    Arguments:
        num_channels: the number of output channels C of the first convolution (and the
            width of the residual block).
        num_classes: the number of output classes (10 for digits).
    """

    def __init__(self, num_channels, num_classes=10):
        super().__init__()
        num_channels = _check_int(num_channels, "num_channels")
        num_classes = _check_int(num_classes, "num_classes")
        self.num_channels = num_channels
        self.num_classes = num_classes
        self.conv = nn.Conv2d(1, num_channels, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(num_channels)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.block = Block(num_channels)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(num_channels, num_classes)

    def forward(self, x):
        """
        The input will have shape (N, 1, H, W),
        where N is the batch size, and H and W give the shape of each channel
        (H, W >= 3: 8x8 digits and 28x28 MNIST both work).

        The output should have shape (N, 10) (N, num_classes): unnormalized class scores.
        """
        _check_input(x, 1, self.conv.weight)
        if x.shape[2] < 3 or x.shape[3] < 3:
            raise ValueError(
                f"x must be at least 3x3 pixels (the stride-2 conv and 2x2 max pool need it), "
                f"got shape {tuple(x.shape)}"
            )
        x = self.pool(self.relu(self.bn(self.conv(x))))
        x = self.block(x)
        x = self.avgpool(x).flatten(1)
        return self.fc(x)
