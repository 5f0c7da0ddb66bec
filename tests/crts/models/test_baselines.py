"""The paper's baselines on hand-made inputs."""

from __future__ import annotations

import torch

from crts.models import LeastCloudy, Mosaic


def _inputs(values: list[float]) -> torch.Tensor:
    """(1, T, 15, 2, 2) on the model scale with every S2 pixel of step t equal to values[t]."""
    x = torch.zeros(1, len(values), 15, 2, 2)
    for t, v in enumerate(values):
        x[0, t, :13] = v
    return x


def test_least_cloudy_picks_the_lowest_mask_sum_first_on_ties() -> None:
    x = _inputs([0.1, 0.2, 0.3])
    masks = torch.tensor([[[[1, 1], [0, 0]], [[0, 1], [0, 0]], [[1, 0], [0, 0]]]], dtype=torch.float32)
    assert torch.equal(LeastCloudy()(x, masks), x[:, 1, :13])


def test_mosaic_averages_clear_inputs_in_unit_scale_and_fills_where_none() -> None:
    x = _inputs([0.0, 0.5, -1.0])  # in [0, 1]: 0.5, 0.75, 0 (exact zero: missing)
    masks = torch.zeros(1, 3, 2, 2)
    masks[0, 0, 0, 0] = 1  # step 0 cloudy at (0, 0)
    masks[0, 1, 0, 0] = 1  # step 1 cloudy at (0, 0): nothing clear there
    out = Mosaic()(x, masks)
    assert out.shape == (1, 13, 2, 2)
    torch.testing.assert_close(out[0, :, 0, 0], torch.full((13,), 0.5))  # 0.75 in [0, 1]
    torch.testing.assert_close(out[0, :, 1, 1], torch.full((13,), (0.5 + 0.75) / 2 * 2 - 1))
