"""Metrics against hand-computed values, their properties, and an independent SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import signal

from crts.metrics import (
    error_by_certainty,
    evaluate_batch,
    mae,
    mean_error,
    mean_variance,
    psnr,
    rmse,
    sam,
    ssim,
    uncertainty_calibration,
)


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
        assert ours[i].item() == pytest.approx(
            _ssim_numpy(prediction[i].double().numpy(), target[i].double().numpy()), abs=1e-9
        )


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
    assert math.isnan(scores["rmse_cloudy"][0])  # (crts.report leaves it out of the means)
    torch.testing.assert_close(scores["rmse_cloudy"][1:], torch.full((2,), 0.2))
    assert torch.isinf(evaluate_batch(target, target)["psnr"]).all()  # a perfect prediction


def test_mean_variance_and_error_per_image() -> None:
    variance = torch.stack([torch.full((13, 4, 4), 0.5), torch.full((13, 4, 4), 2.0)])
    assert mean_variance(variance).tolist() == [0.5, 2.0]
    prediction, target = torch.zeros(2, 13, 4, 4), torch.zeros(2, 13, 4, 4)
    target[0, :, :2] = 0.5  # half the pixels off by 0.5 in the first image
    prediction[1] = 0.25
    assert mean_error(prediction, target).tolist() == [0.25, -0.25]


def test_uncertainty_calibration_by_hand() -> None:
    # 20 bins on [0, 1] with edges at k/19: 0 -> bin 0, 0.5 -> bin 9, 1 -> bin 19
    variance = torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0])
    error = torch.tensor([0.1, -0.1, 0.5, 1.0, -1.0])
    bins = [abs(0.1 - 0.0), abs(0.5 - math.sqrt(0.5)), abs(1.0 - 1.0)]  # |RMS error - sqrt(mean variance)|
    uce, auce = uncertainty_calibration(variance, error)
    assert uce == pytest.approx(2 / 5 * bins[0] + 1 / 5 * bins[1] + 2 / 5 * bins[2])
    assert auce == pytest.approx(sum(bins) / 3)


def test_calibrated_predictions_have_small_uce() -> None:
    g = torch.Generator().manual_seed(0)
    variance = torch.rand(20000, generator=g, dtype=torch.float64) * 0.09 + 0.01
    calibrated = torch.randn(20000, generator=g, dtype=torch.float64) * variance.sqrt()
    uce, auce = uncertainty_calibration(variance, calibrated)
    assert uce < 0.01  # the last bin holds only the largest variance: one sample, which AUCE weighs as a bin
    assert auce < 0.05
    assert uncertainty_calibration(variance, 3 * calibrated)[0] > 0.3  # errors 3x the predicted deviation


def test_calibration_bins_are_numpy_digitize() -> None:
    g = torch.Generator().manual_seed(1)
    variance = torch.rand(500, generator=g, dtype=torch.float64) ** 3
    error = torch.randn(500, generator=g, dtype=torch.float64)
    edges = np.linspace(variance.min().item(), variance.max().item(), 20)[1:]
    bins = np.digitize(variance.numpy(), edges)
    stats = [
        (
            np.sqrt(np.mean(error.numpy()[bins == b] ** 2)),
            np.sqrt(np.mean(variance.numpy()[bins == b])),
            np.mean(bins == b),
        )
        for b in np.unique(bins)
    ]
    expected_uce = sum(w * abs(e - s) for e, s, w in stats)
    expected_auce = sum(abs(e - s) for e, s, _ in stats) / len(stats)
    assert uncertainty_calibration(variance, error) == pytest.approx((expected_uce, expected_auce))


def test_error_by_certainty() -> None:
    variance, error = torch.tensor([0.4, 0.1, 0.3, 0.2]), torch.tensor([4.0, 1.0, 3.0, 2.0])
    assert error_by_certainty(variance, error, percent=25).tolist() == [1.0, 1.5, 2.0, 2.5]
    curve = error_by_certainty(variance, error)  # 5 % steps of 4 images: the first 4 steps hold no image
    assert len(curve) == 20 and torch.isnan(curve[:4]).all() and curve[4] == 1.0 and curve[-1] == 2.5
    ties = error_by_certainty(torch.zeros(4), error, percent=25)  # equal variances keep the given order
    assert ties.tolist() == [4.0, 2.5, 8 / 3, 2.5]
