"""L-TAE: the date encoding, attention that sums to one and ignores padded steps, group aggregation."""

from __future__ import annotations

import math

import pytest
import torch

from crts.models.ltae import LTAE, PERIOD, aggregate_groups, positional_encoding


def test_the_positional_encoding_by_hand() -> None:
    code = positional_encoding(torch.tensor([0.0, 100.0]), d=4, n_repeat=2)
    assert code.shape == (2, 8)
    expected = [math.sin(100), math.cos(100), math.sin(100 / PERIOD**0.5), math.cos(100 / PERIOD**0.5)]
    torch.testing.assert_close(code[1], torch.tensor(expected * 2))
    torch.testing.assert_close(code[0], torch.tensor([0.0, 1.0, 0.0, 1.0] * 2))


def test_attention_sums_to_one_over_the_unpadded_steps() -> None:
    torch.manual_seed(0)
    model = LTAE(in_channels=8, n_head=2, d_k=4, d_model=8)
    pad = torch.tensor([[False, False, True]])
    masks = model(torch.randn(1, 3, 8, 2, 2), torch.tensor([[0, 10, 20]]), pad)
    assert masks.shape == (2, 1, 3, 2, 2)
    torch.testing.assert_close(masks.sum(dim=2), torch.ones(2, 1, 2, 2))
    assert masks[:, :, 2].max() < 1e-6
    with pytest.raises(ValueError, match="pass dates"):
        model(torch.randn(1, 3, 8, 2, 2))
    with pytest.raises(ValueError, match="d_model 10 must be a multiple of n_head 4"):
        LTAE(in_channels=8, n_head=4, d_model=10)


def test_each_head_weights_its_own_channel_group() -> None:
    x = torch.arange(1.0, 3.0).view(1, 2, 1, 1, 1).expand(1, 2, 4, 2, 2)  # step values 1 and 2, four channels
    attention = torch.tensor([[1.0, 0.0], [0.25, 0.75]]).view(2, 1, 2, 1, 1).expand(2, 1, 2, 2, 2)
    out = aggregate_groups(x, attention)
    assert out.shape == (1, 4, 2, 2)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([1.0, 1.0, 1.75, 1.75]))
    pooled = aggregate_groups(x, attention, pad_mask=torch.tensor([[False, True]]))
    torch.testing.assert_close(pooled[0, :, 0, 0], torch.tensor([1.0, 1.0, 0.25, 0.25]))  # the padded step: 0
