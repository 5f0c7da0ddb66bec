"""UnCRtainTS's convolution blocks: the norms, channel gating and the residual at constant width."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from crts.models.mbconv import (
    GROUPS,
    NORMS,
    MBConv,
    PointwiseBlock,
    SqueezeExcitation,
    norm_layer,
)


def test_each_norm_by_name_and_a_bad_name_in_one_line() -> None:
    assert [type(norm_layer(kind, 8)).__name__ for kind in NORMS] == [
        "GroupNorm",
        "BatchNorm2d",
        "InstanceNorm2d",
        "NoneType",
    ]
    assert norm_layer("group", 8).num_groups == GROUPS
    with pytest.raises(ValueError, match=r"^invalid norm 'layer': choose from group, batch, instance, none$"):
        norm_layer("layer", 8)
    with pytest.raises(ValueError, match="MBConv needs a normalisation"):
        MBConv(8, norm="none")


def test_a_pointwise_block_with_relu_clips_below_zero() -> None:
    block = PointwiseBlock(1, 1, relu=True)
    nn.init.ones_(block.conv.conv[0].weight)
    nn.init.zeros_(block.conv.conv[0].bias)
    torch.testing.assert_close(block(torch.tensor([-2.0, 3.0]).view(1, 1, 1, 2)), torch.tensor([[[[0.0, 3.0]]]]))


def test_squeeze_excitation_with_zero_weights_halves_the_input() -> None:
    gate = SqueezeExcitation(4, 1)
    for layer in gate.fc:
        if isinstance(layer, nn.Linear):
            nn.init.zeros_(layer.weight)
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(gate(x), x / 2)  # sigmoid(0) = 0.5


def test_mbconv_keeps_the_shape_and_is_the_identity_when_its_last_norm_is_zero() -> None:
    block = MBConv(8, expansion=2, norm="group")
    x = torch.randn(2, 8, 5, 5)
    assert block(x).shape == x.shape
    last = block.conv.fn[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    torch.testing.assert_close(block(x), x)
