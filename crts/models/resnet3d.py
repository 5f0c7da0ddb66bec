"""The seq2point 3D ResNet of the SEN12MS-CR-TS paper."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import PadHWReflect, ResBlock2d, ResBlock3d

FUSION_BLOCKS = 5


class ResNet3D(nn.Module):
    """Cloud removal from a short time series: a shared 2D encoder per step, a 3D fusion head, tanh.

    Input (N, T, C_in, H, W): T = ``n_inputs`` time steps, each with 13 S2 bands
    then 2 S1 bands (``in_channels`` = 15), in [-1, 1] under the default scaling.
    Output (N, C_out, H, W): the cloud-free S2 image (``out_channels`` = 13) in [-1, 1].

    Encoder ``model_initial``: conv3x3 (C_in -> F) + ReLU, then ``blocks`` residual
    blocks. Fusion ``model_final``: the encodings stacked along time (N, F, T, H, W),
    conv3d 3x3x3 + ReLU, 5 residual 3D blocks, reflection padding of H and W, a
    conv3d with kernel (T, 3, 3) that collapses time, tanh. Parameter names equal
    the original generator's, so its checkpoints load (see
    :func:`crts.models.load_original_checkpoint`); unlike the original, any batch
    size works. With F = 256, B = 16 and T = 3: 90 tensors, 38,474,253 parameters.

    Examples
    --------
    >>> model = ResNet3D(n_inputs=3, features=16, blocks=2)
    >>> model(torch.zeros(2, 3, 15, 32, 32)).shape
    torch.Size([2, 13, 32, 32])
    """

    def __init__(self, n_inputs: int = 3, in_channels: int = 15, out_channels: int = 13, features: int = 256,
                 blocks: int = 16) -> None:
        super().__init__()
        self.config = {"n_inputs": n_inputs, "in_channels": in_channels, "out_channels": out_channels,
                       "features": features, "blocks": blocks}
        self.model_initial = nn.Sequential(nn.Conv2d(in_channels, features, 3, padding=1), nn.ReLU(inplace=True),
                                           *(ResBlock2d(features) for _ in range(blocks)))
        self.model_final = nn.Sequential(nn.Conv3d(features, features, 3, padding=1), nn.ReLU(inplace=True),
                                         *(ResBlock3d(features) for _ in range(FUSION_BLOCKS)), PadHWReflect(),
                                         nn.Conv3d(features, out_channels, (n_inputs, 3, 3)), nn.Tanh())

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Predict (N, C_out, H, W) from (N, T, C_in, H, W); ``masks`` is accepted for a common signature."""
        n, t, c, h, w = inputs.shape
        if t != self.config["n_inputs"]:
            raise ValueError(f"this model takes {self.config['n_inputs']} time steps, got {t}")
        steps = inputs.reshape(n * t, c, h, w)
        if steps.is_cuda:
            steps = steps.contiguous(memory_format=torch.channels_last)
        encoded = self.model_initial(steps)
        stacked = encoded.reshape(n, t, -1, h, w).transpose(1, 2)  # (N, F, T, H, W)
        if stacked.is_cuda:
            stacked = stacked.contiguous(memory_format=torch.channels_last_3d)
        return self.model_final(stacked).squeeze(2)
