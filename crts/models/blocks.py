"""Building blocks of the 3D ResNet: 2D and 3D residual blocks and the mixed padding of the 3D ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RESIDUAL_SCALE = 0.1
"""Residual branches are added scaled by 0.1 (docs/reference.md §7.1 The 3D ResNet)."""


class ResBlock2d(nn.Module):
    """conv3x3, ReLU, conv3x3 (zero padding 1, no normalisation); ``x + 0.1 * block(x)``, no activation after."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(features, features, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(features, features, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + RESIDUAL_SCALE * self.conv_block(x)


class PadHWReflectTReplicate(nn.Module):
    """Pad (N, C, T, H, W) by 1 on every side: H and W by reflection, T by replication."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1, 0, 0), mode="reflect")
        return F.pad(x, (0, 0, 0, 0, 1, 1), mode="replicate")


class PadHWReflect(nn.Module):
    """Pad (N, C, T, H, W) by 1 in H and W by reflection; T untouched."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (1, 1, 1, 1, 0, 0), mode="reflect")


class ResBlock3d(nn.Module):
    """pad, conv3d 3x3x3, ReLU, pad, conv3d 3x3x3; ``ReLU(x + 0.1 * block(x))``.

    Parameters sit at ``conv_block.1`` and ``conv_block.4``, as in the original's state dicts.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            PadHWReflectTReplicate(),
            nn.Conv3d(features, features, 3),
            nn.ReLU(inplace=True),
            PadHWReflectTReplicate(),
            nn.Conv3d(features, features, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + RESIDUAL_SCALE * self.conv_block(x))
