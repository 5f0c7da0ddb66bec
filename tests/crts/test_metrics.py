"""Metrics against hand-computed values, their properties, and an independent SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import signal

from crts.metrics import aggregate, evaluate_batch, mae, psnr, rmse, sam, ssim


@pytest.fixture
def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 13, 24, 20, generator=g) * 0.8 + 0.1
    prediction = (target + 0.05 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    return prediction, target


def test_identity(images: tuple[torch.Tensor, torch.Tensor]) -> None:
    _, target = images
    assert torch.all(rmse(target, target) == 0) and torch.all(mae(target, target) == 0)
    assert torch.all(torch.isinf(psnr(target, target)))
    assert torch.allclose(sam(target, target), torch.zeros(3), atol=0.05)  # float32 acos near 1
    assert torch.allclose(ssim(target, target), torch.ones(3), atol=1e-5)


def test_known_shift(images: tuple[torch.Tensor, torch.Tensor]) -> None:
    _, target = images
    shifted = target + 0.1
    torch.testing.assert_close(rmse(shifted, target), torch.full((3,), 0.1))
    torch.testing.assert_close(mae(shifted, target), torch.full((3,), 0.1))
    torch.testing.assert_close(psnr(shifted, target), torch.full((3,), 20.0))
    assert torch.allclose(sam(2 * target, target), torch.zeros(3), atol=0.05)  # same direction


def test_spectral_angle_by_hand() -> None:
    target = torch.zeros(1, 2, 1, 2)
    prediction = torch.zeros(1, 2, 1, 2)
    target[0, 0] = 1  # both pixels point along band 0
    prediction[0, 0, 0, 0], prediction[0, 1, 0, 1] = 1, 1  # pixel 0: 0 degrees, pixel 1: 90 degrees
    assert sam(prediction, target).item() == pytest.approx(45)
    assert sam(prediction, target, degrees=False).item() == pytest.approx(math.pi / 4)


def _ssim_numpy(p: np.ndarray, t: np.ndarray) -> float:
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g / g.sum(), g / g.sum())

    def blur(a: np.ndarray) -> np.ndarray:
        return signal.convolve2d(a, w, mode="same", boundary="fill", fillvalue=0)

    maps = []
    for pc, tc in zip(p, t, strict=True):
        mp, mt = blur(pc), blur(tc)
        vp, vt, cv = blur(pc * pc) - mp**2, blur(tc * tc) - mt**2, blur(pc * tc) - mp * mt
        maps.append(((2 * mp * mt + 1e-4) * (2 * cv + 9e-4)) / ((mp**2 + mt**2 + 1e-4) * (vp + vt + 9e-4)))
    return float(np.mean(maps))


def test_ssim_matches_an_independent_implementation(images: tuple[torch.Tensor, torch.Tensor]) -> None:
    prediction, target = images
    ours = ssim(prediction.double(), target.double())
    for i in range(3):
        assert ours[i].item() == pytest.approx(_ssim_numpy(prediction[i].double().numpy(),
                                                           target[i].double().numpy()), abs=1e-9)


def test_cloudy_and_clear_pixels(images: tuple[torch.Tensor, torch.Tensor]) -> None:
    _, target = images
    prediction = target.clone()
    cloudy = torch.zeros(3, 24, 20, dtype=torch.bool)
    cloudy[:, :12] = True
    prediction[:, :, :12] += 0.2  # errors only under clouds
    scores = evaluate_batch(prediction, target, cloudy)
    torch.testing.assert_close(scores["rmse_cloudy"], torch.full((3,), 0.2))
    torch.testing.assert_close(scores["mae_clear"], torch.zeros(3))
    cloudy[0] = False  # no cloudy pixel in image 0: NaN, left out of the mean
    scores = evaluate_batch(prediction, target, cloudy)
    assert math.isnan(scores["rmse_cloudy"][0]) and aggregate(scores)["rmse_cloudy"] == pytest.approx(0.2)
    assert aggregate(evaluate_batch(target, target))["psnr"] == math.inf
