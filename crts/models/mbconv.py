"""Convolution blocks of UnCRtainTS: 1x1 convolution blocks and MBConv with squeeze-excitation.

Attribute names follow the original implementation (PatrickTUM/UnCRtainTS, built
on U-TAE) so that its state dicts load by name: a 1x1 block keeps its layers at
``conv.conv.{0, 1}``, an MBConv its pre-norm at ``conv.norm`` and its layers at
``conv.fn.{0, 1, 3, 4, 6, 7, 8}``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

NORMS = ("group", "batch", "instance", "none")
GROUPS = 4
"""Groups of every group norm in the convolution blocks (the original's ``n_groups``)."""
SE_RATIO = 0.25
"""Squeeze-excitation bottleneck width as a share of the block's input channels."""


def norm_layer(kind: str, channels: int) -> nn.Module | None:
    """A 2D normalisation over ``channels``: ``group`` (4 groups), ``batch``, ``instance`` or ``none`` (None)."""
    if kind == "group":
        return nn.GroupNorm(GROUPS, channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "none":
        return None
    raise ValueError(f"invalid norm {kind!r}: choose from {', '.join(NORMS)}")


def block_norm(kind: str, channels: int) -> nn.Module:
    """:func:`norm_layer` of an MBConv block, which needs one (``none`` refused)."""
    layer = norm_layer(kind, channels)
    if layer is None:
        raise ValueError("MBConv needs a normalisation (group, batch or instance)")
    return layer


class PointwiseBlock(nn.Module):
    """1x1 convolution, then optionally a normalisation and a ReLU; applied to (N, C, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "none", relu: bool = False) -> None:
        super().__init__()
        layers = [nn.Conv2d(in_channels, out_channels, 1), norm_layer(norm, out_channels), nn.ReLU() if relu else None]
        self.conv = nn.Sequential(OrderedDict(conv=nn.Sequential(*(m for m in layers if m is not None))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PreNorm(nn.Module):
    """``fn(norm(x))``."""

    def __init__(self, norm: nn.Module, fn: nn.Module) -> None:
        super().__init__()
        self.norm, self.fn = norm, fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class SqueezeExcitation(nn.Module):
    """Channel gating: global average, Linear (no bias), GELU, Linear (no bias), sigmoid, times the input."""

    def __init__(self, channels: int, bottleneck: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, bottleneck, bias=False),
            nn.GELU(),
            nn.Linear(bottleneck, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(-2, -1)))[..., None, None]


class MBConv(nn.Module):
    """Inverted residual block ``x + fn(norm(x))`` at constant width C (stride 1).

    ``fn``: 1x1 conv C -> E*C (no bias), norm, GELU, depthwise 3x3 conv (reflection
    padding, no bias), norm, GELU, squeeze-excitation (bottleneck C/4), 1x1 conv
    E*C -> C (no bias), norm. E = ``expansion`` (2 in UnCRtainTS).
    """

    def __init__(self, channels: int, expansion: int = 2, norm: str = "batch") -> None:
        super().__init__()
        hidden = channels * expansion
        pre_norm = block_norm(norm, channels)  # first: a refused norm raises before a weight is drawn
        fn = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            block_norm(norm, hidden),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="reflect", groups=hidden, bias=False),
            block_norm(norm, hidden),
            nn.GELU(),
            SqueezeExcitation(hidden, int(channels * SE_RATIO)),
            nn.Conv2d(hidden, channels, 1, bias=False),
            block_norm(norm, channels),
        )
        self.conv = PreNorm(pre_norm, fn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)
