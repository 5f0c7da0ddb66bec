"""Losses against direct formulas, the original's batch quirk, and stability at extreme variances."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from crts.losses import gaussian_nll, reconstruction_loss


@pytest.fixture
def prediction() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mean = torch.rand(3, 13, 4, 5, generator=g, dtype=torch.float64)
    target = torch.rand(3, 13, 4, 5, generator=g, dtype=torch.float64)
    variance = torch.rand(3, 13, 4, 5, generator=g, dtype=torch.float64) * 0.2 + 0.01
    return mean, target, variance


def test_gnll_is_the_mean_negative_log_density_per_pixel(prediction: tuple) -> None:
    mean, target, variance = prediction
    density = stats.multivariate_normal
    expected = []
    for n in range(3):
        for y in range(4):
            for x in range(5):
                cov = torch.diag(variance[n, :, y, x]).numpy()
                expected.append(-density(mean[n, :, y, x].numpy(), cov).logpdf(target[n, :, y, x].numpy()))
    assert gaussian_nll(mean, target, variance).item() == pytest.approx(sum(expected) / len(expected), rel=1e-10)


def test_batch_logdet_reproduces_the_original_vmap_sum(prediction: tuple) -> None:
    mean, target, variance = prediction
    logdet = variance.log().sum(1)  # (N, H, W)
    data = ((target - mean) ** 2 / variance).sum(1)
    expected = (0.5 * (13 * math.log(2 * math.pi) + logdet.sum(0, keepdim=True) + data)).mean()
    assert gaussian_nll(mean, target, variance, batch_logdet=True).item() == pytest.approx(expected.item())
    one = (mean[:1], target[:1], variance[:1])
    assert gaussian_nll(*one, batch_logdet=True) == gaussian_nll(*one)


def test_stable_for_tiny_and_huge_variances(prediction: tuple) -> None:
    mean, target, _ = prediction
    mean, target = mean.float(), target.float()
    for scale in (0.0, 1e-30, 1e-12, 1e12, 1e30):
        variance = torch.full_like(mean, scale).requires_grad_(True)
        loss = gaussian_nll(mean, target, variance)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(variance.grad).all(), scale
    floored = gaussian_nll(mean, target, torch.zeros_like(mean))
    assert floored == gaussian_nll(mean, target, torch.full_like(mean, 1e-8))


def test_gradient_pushes_variance_towards_the_squared_error() -> None:
    mean, target = torch.zeros(1, 13, 2, 2), torch.full((1, 13, 2, 2), 0.3)
    for start, sign in ((0.01, -1), (1.0, 1)):  # below 0.09: grows; above: shrinks
        variance = torch.full_like(mean, start, requires_grad=True)
        gaussian_nll(mean, target, variance).backward()
        assert (torch.sign(variance.grad) == sign).all()


def test_l1_l2_and_names(prediction: tuple) -> None:
    mean, target, variance = prediction
    assert reconstruction_loss("l1", mean, target) == (mean - target).abs().mean()
    assert reconstruction_loss("l2", mean, target) == ((mean - target) ** 2).mean()
    assert reconstruction_loss("MGNLL", mean, target, variance) == gaussian_nll(mean, target, variance)
    with pytest.raises(ValueError, match="variances"):
        reconstruction_loss("MGNLL", mean, target)
    with pytest.raises(ValueError, match="invalid loss"):
        reconstruction_loss("GNLL", mean, target, variance)
