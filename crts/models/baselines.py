"""The paper's non-learned baselines (docs/reference.md §7.2 Baselines), called as ``model(inputs, masks)``.

Inputs (N, T, 15, H, W) on the model scale [-1, 1] (S2 bands first), masks
(N, T, H, W) with 1 = cloudy; outputs (N, 13, H, W) on the model scale.
"""

from __future__ import annotations

import torch
from torch import nn

from .adapter import S2_CHANNELS, from_model_scale, to_model_scale

MOSAIC_FILL = 0.75
"""Mosaic value, in [0, 1], where no input is clear (0.5 on the model scale, as the original)."""


class LeastCloudy(nn.Module):
    """The S2 input whose mask sums lowest (the first on ties)."""

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        cloudiness = masks.flatten(2).sum(-1)  # (N, T)
        best = torch.argmin(cloudiness, dim=1)  # first minimum
        return inputs[torch.arange(len(inputs), device=inputs.device), best, :S2_CHANNELS]


class Mosaic(nn.Module):
    """Per pixel and band, the mean of the inputs that are clear there (mask 0 and value not exactly 0).

    Computed in [0, 1]; where no input qualifies, 0.75 (0.5 on the model scale).
    """

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        s2 = from_model_scale(inputs[:, :, :S2_CHANNELS])
        usable = (masks[:, :, None] == 0) & (s2 != 0)
        count = usable.sum(1)
        mean = (s2 * usable).sum(1) / count.clamp(min=1)
        return to_model_scale(torch.where(count > 0, mean, torch.full_like(mean, MOSAIC_FILL)))
