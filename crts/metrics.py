"""The paper's image metrics (docs/reference.md §8 Metrics), per image on batches, on CPU or CUDA.

All take predictions and targets (N, C, H, W) scaled to [0, 1] and return one
value per image (N,); average them over the test samples for the reported
numbers (:func:`evaluate_batch` does both). For models that predict variances
(UnCRtainTS): the mean variance per image, and per run the calibration errors
UCE and AUCE and the error of the most certain images, as UnCRtainTS reports them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .metric_definitions import CALIBRATION_BINS

SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2


def rmse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Root mean squared error per image; with ``mask`` (N, H, W) only over its True pixels (NaN if none)."""
    return torch.sqrt(_mean((prediction - target) ** 2, mask))


def mae(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error per image; with ``mask`` (N, H, W) only over its True pixels (NaN if none)."""
    return _mean((prediction - target).abs(), mask)


def _mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.flatten(1).mean(1)
    weights = mask[:, None].expand_as(values).to(values.dtype)
    return (values * weights).flatten(1).sum(1) / weights.flatten(1).sum(1)  # 0/0 = NaN: no such pixel


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """20 log10(1 / RMSE) per image; +inf for a perfect prediction."""
    return 20 * torch.log10(1 / rmse(prediction, target))


def sam(prediction: torch.Tensor, target: torch.Tensor, degrees: bool = True) -> torch.Tensor:
    """Spectral angle per pixel, averaged per image: degrees (UnCRtainTS) or radians (the 2022 toolbox).

    Pixels where either spectrum is all zero have no angle and are left out.
    """
    cosine = (prediction * target).sum(1) / (prediction.norm(dim=1) * target.norm(dim=1))
    angle = torch.acos(torch.clamp(cosine, -1, 1))
    angle = torch.rad2deg(angle) if degrees else angle
    return angle.flatten(1).nanmean(1)


def _gaussian_window(channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64) - SSIM_WINDOW // 2
    g = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    window = (g[:, None] @ g[None, :]).to(device=device, dtype=dtype)
    return window.expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW).contiguous()


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image: 11x11 Gaussian window (sigma 1.5), zero padding, per channel,
    C1 = 0.01^2, C2 = 0.03^2, the SSIM map averaged over channels and pixels (pytorch-ssim convention)."""
    channels = prediction.shape[1]
    window = _gaussian_window(channels, prediction.device, prediction.dtype)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, padding=SSIM_WINDOW // 2, groups=channels)

    mu_p, mu_t = blur(prediction), blur(target)
    var_p = blur(prediction * prediction) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(prediction * target) - mu_p * mu_t
    ssim_map = ((2 * mu_p * mu_t + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_p**2 + mu_t**2 + SSIM_C1) * (var_p + var_t + SSIM_C2)
    )
    return ssim_map.flatten(1).mean(1)


def evaluate_batch(
    prediction: torch.Tensor, target: torch.Tensor, cloudy: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Every metric per image: RMSE, MAE, PSNR, SAM (degrees), SSIM, and, given the union of the input
    masks ``cloudy`` (N, H, W), RMSE and MAE over cloudy and over clear pixels."""
    prediction, target = prediction.float(), target.float()
    out = {
        "rmse": rmse(prediction, target),
        "mae": mae(prediction, target),
        "psnr": psnr(prediction, target),
        "sam": sam(prediction, target),
        "ssim": ssim(prediction, target),
    }
    if cloudy is not None:
        cloudy = cloudy.bool()
        out |= {
            "rmse_cloudy": rmse(prediction, target, cloudy),
            "mae_cloudy": mae(prediction, target, cloudy),
            "rmse_clear": rmse(prediction, target, ~cloudy),
            "mae_clear": mae(prediction, target, ~cloudy),
        }
    return out


def mean_variance(variance: torch.Tensor) -> torch.Tensor:
    """Mean predicted variance per image, (N, C, H, W) -> (N,) (NaN entries left out): the image's uncertainty."""
    return variance.float().flatten(1).nanmean(1)


def mean_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean signed error ``target - prediction`` per image, (N,): the per-image error UnCRtainTS calibrates."""
    return (target.float() - prediction.float()).flatten(1).nanmean(1)


def calibration_bins(
    variance: torch.Tensor, error: torch.Tensor, n_bins: int = CALIBRATION_BINS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images binned by their mean predicted variance, as UnCRtainTS bins them for calibration.

    ``n_bins - 1`` equal steps between the smallest and largest variance form the bin
    edges (``numpy.digitize`` of the variances on ``linspace(min, max, n_bins)[1:]``,
    so the last bin holds the largest value).

    Parameters
    ----------
    variance : torch.Tensor
        (images,) mean predicted variance per image (:func:`mean_variance`).
    error : torch.Tensor
        (images,) per-image error (:func:`mean_error` in UnCRtainTS).
    n_bins : int
        20 in UnCRtainTS (5 % steps).

    Returns
    -------
    tuple of torch.Tensor
        (n_bins,) float64 each: the images per bin, the root mean squared ``error``
        and the root mean ``variance`` (the predicted standard deviation) of each
        bin; NaN for empty bins.
    """
    variance, error = variance.double().flatten(), error.double().flatten()
    edges = torch.linspace(float(variance.min()), float(variance.max()), n_bins, dtype=torch.float64)[1:]
    bins = torch.bucketize(variance, edges, right=True)  # = numpy.digitize(variance, edges)
    counts = torch.bincount(bins, minlength=n_bins).double()
    rms_error = torch.sqrt(torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, error**2) / counts)
    rms_std = torch.sqrt(torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, variance) / counts)
    return counts, rms_error, rms_std


def uncertainty_calibration(
    variance: torch.Tensor, error: torch.Tensor, n_bins: int = CALIBRATION_BINS
) -> tuple[float, float]:
    """Uncertainty calibration error (UCE) and its unweighted variant (AUCE) of a run, as UnCRtainTS computes them.

    Images are binned by their mean predicted variance (:func:`calibration_bins`).
    Per bin, the calibration error is ``|RMS(error) - sqrt(mean(variance))|``
    (root-mean error against root-mean predicted standard deviation); UCE weights it by
    the bin's share of images, AUCE averages it over non-empty bins.

    Parameters
    ----------
    variance : torch.Tensor
        (images,) mean predicted variance per image (:func:`mean_variance`).
    error : torch.Tensor
        (images,) per-image error; UnCRtainTS passes the mean signed error
        (:func:`mean_error`), which is what its reported UCE measures.
    n_bins : int
        20 in UnCRtainTS (5 % steps).

    Returns
    -------
    tuple of float
        (UCE, AUCE).
    """
    counts, rms_error, rms_std = calibration_bins(variance, error, n_bins)
    calibration = (rms_error - rms_std).abs()  # NaN for empty bins
    return float(torch.nansum(counts / counts.sum() * calibration)), float(torch.nanmean(calibration))


def error_by_certainty(variance: torch.Tensor, error: torch.Tensor, percent: int = 5) -> torch.Tensor:
    """Mean error of the x % most certain images for x = percent, 2 percent, ..., 100 (UnCRtainTS's discard curve).

    Images are ranked by ascending ``variance`` (stable on ties); entry k is the
    mean ``error`` of the first ``floor((k + 1) * percent * images / 100)`` of them
    (NaN where that is none). UnCRtainTS plots it with the per-image mean squared error.

    Returns
    -------
    torch.Tensor
        (100 // percent,) float64.
    """
    order = torch.argsort(variance.flatten(), stable=True)
    ranked = error.double().flatten()[order]
    steps = 100 // percent
    return torch.stack([ranked[: (k + 1) * len(ranked) // steps].nanmean() for k in range(steps)])
