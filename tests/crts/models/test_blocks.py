"""The 3D ResNet's building blocks: padding, residual scale and the original's parameter names."""

from __future__ import annotations

import torch

from crts.models.blocks import (
    RESIDUAL_SCALE,
    PadHWReflect,
    PadHWReflectTReplicate,
    ResBlock2d,
    ResBlock3d,
)


def test_padding_reflects_space_and_replicates_time() -> None:
    x = torch.arange(2 * 3 * 3, dtype=torch.float32).view(1, 1, 2, 3, 3)
    padded = PadHWReflectTReplicate()(x)
    assert padded.shape == (1, 1, 4, 5, 5)
    assert torch.equal(padded[0, 0, 0], padded[0, 0, 1]) and torch.equal(padded[0, 0, -1], padded[0, 0, -2])
    assert padded[0, 0, 1, 0, 0] == x[0, 0, 0, 1, 1]  # corner reflects across the edge row and column
    assert PadHWReflect()(x).shape == (1, 1, 2, 5, 5)


def test_residual_blocks_add_a_tenth_of_their_branch() -> None:
    x = torch.randn(1, 2, 3, 4, 4)
    block = ResBlock3d(2)
    assert [name for name, _ in block.named_parameters()] == [
        "conv_block.1.weight",
        "conv_block.1.bias",
        "conv_block.4.weight",
        "conv_block.4.bias",
    ]
    torch.nn.init.constant_(block.conv_block[4].bias, 1.0)
    torch.nn.init.zeros_(block.conv_block[4].weight)
    torch.testing.assert_close(block(x), torch.relu(x + RESIDUAL_SCALE))
    flat = ResBlock2d(2)
    torch.nn.init.constant_(flat.conv_block[2].bias, -1.0)
    torch.nn.init.zeros_(flat.conv_block[2].weight)
    torch.testing.assert_close(flat(x[:, :, 0]), x[:, :, 0] - RESIDUAL_SCALE)  # no activation after
