"""Cloud detectors with the original toolbox's parameters (reference section 4).

All functions take raw S2 digital numbers (L1C reflectance x 10000) with bands
first, as stored in the GeoTIFFs and the cube: one image (13, H, W) or, where
said, a stack (N, 13, H, W).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from s2cloudless import S2PixelCloudDetector
from scipy import ndimage, signal

from .bands import S2_SCALE

DETECTORS: tuple[str, ...] = ("s2cloudless_mask", "s2cloudless_map", "cloud_cloudshadow_mask")
"""The ``cloud_masks`` choices of the original loader (besides None)."""

S2CLOUDLESS_PARAMS = {"threshold": 0.4, "average_over": 4, "dilation_size": 2, "all_bands": True}
"""Exactly the toolbox's ``S2PixelCloudDetector`` arguments."""
MAP_MIN_PROBABILITY = 0.5
MAP_SIGMA = 2.0
HEURISTIC_CLOUD_THRESHOLD = 0.2
CLEAR, CLOUD, SHADOW = 0, 1, 2
"""Classes of :func:`cloud_cloudshadow_classes`."""


@cache
def _s2cloudless() -> S2PixelCloudDetector:
    return S2PixelCloudDetector(**S2CLOUDLESS_PARAMS)


def _reflectance(s2: np.ndarray) -> np.ndarray:
    """Clipped to [0, 10000] and divided by 10000, as float32."""
    return np.clip(s2, 0, S2_SCALE).astype(np.float32) / np.float32(S2_SCALE)


def _as_stack(s2: np.ndarray) -> np.ndarray:
    stack = s2[None] if s2.ndim == 3 else s2
    if stack.ndim != 4 or stack.shape[1] != 13:
        raise ValueError(f"expected S2 of shape (13, H, W) or (N, 13, H, W), got {s2.shape}")
    return stack


def s2cloudless_probability(s2: np.ndarray) -> np.ndarray:
    """Cloud probability in [0, 1] (float32), shape (H, W) or (N, H, W)."""
    stack = _reflectance(_as_stack(s2)).transpose(0, 2, 3, 1)
    prob = _s2cloudless().get_cloud_probability_maps(stack)
    return prob[0] if s2.ndim == 3 else prob


def s2cloudless_mask(s2: np.ndarray | None = None, probability: np.ndarray | None = None) -> np.ndarray:
    """Binary cloud mask (uint8): probability averaged over 4 px, > 0.4, dilated by 2 px.

    Give ``s2`` (image or stack), or its ``probability`` to skip the classifier.
    """
    prob = s2cloudless_probability(s2) if probability is None else probability
    mask = _s2cloudless().get_mask_from_prob(prob[None] if prob.ndim == 2 else prob)
    return mask[0] if prob.ndim == 2 else mask


def s2cloudless_map(probability: np.ndarray) -> np.ndarray:
    """The toolbox's cloud map from s2cloudless probabilities of one image (H, W).

    Probabilities below 0.5 are set to 0, then Gaussian-smoothed (sigma 2,
    scipy defaults: reflect mode, truncate 4); float32 in [0, 1].
    """
    kept = np.where(probability < MAP_MIN_PROBABILITY, 0, probability).astype(np.float32)
    return ndimage.gaussian_filter(kept, sigma=MAP_SIGMA).astype(np.float32)


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear rescaling (x - lo) / (hi - lo) in the precision of ``x``; ``hi < lo`` gives a falling ramp."""
    return (x - lo) / (hi - lo)


def heuristic_cloud_score(s2: np.ndarray) -> np.ndarray:
    """Smoothed spectral cloud score in [1e-5, 1] of one image (reference section 4).

    In the original's precision, which decides pixels near the 0.2 threshold:
    float32 up to the grey closing, then the 7x7 mean with a float64 kernel
    (so the mean and the clipping are float64).
    """
    r = _reflectance(s2)
    b1, b2, b3, b4, b10, b11 = r[0], r[1], r[2], r[3], r[10], r[11]
    denominator = b3 + b11
    ndsi = (b3 - b11) / np.where(denominator == 0, np.float32(0.001), denominator)
    score = np.ones(b1.shape, np.float32)
    for ramp in (_ramp(b2, 0.1, 0.5), _ramp(b1, 0.1, 0.3), _ramp(b1 + b10, 0.4, 0.9),
                 _ramp(b4 + b3 + b2, 0.2, 0.8), _ramp(ndsi, 0.8, 0.6)):
        score = np.minimum(score, ramp)
    score = ndimage.grey_closing(score, size=(5, 5))
    score = signal.convolve2d(score, np.ones((7, 7)) / 49, mode="same")  # zero padding; float64 from here
    return np.clip(score, 1e-5, 1.0)


def heuristic_shadow(s2: np.ndarray) -> np.ndarray:
    """Boolean cloud-shadow mask of one image: dark in NIR+SWIR and in blue, median-filtered 5x5.

    All in float32 as in the original, the thresholds from float32 minima and means.
    """
    r = _reflectance(s2)
    blue, csi = r[1], (r[7] + r[11]) / 2
    t3 = csi.min() + 3 / 4 * (csi.mean() - csi.min())
    t4 = blue.min() + 5 / 6 * (blue.mean() - blue.min())
    marked = np.where((csi < t3) & (blue < t4), np.float32(-1), np.float32(0))
    return signal.medfilt2d(marked, 5) < 0  # zero-padded at the borders, as the original


def cloud_cloudshadow_classes(s2: np.ndarray) -> np.ndarray:
    """The heuristic's classes of one image (uint8): 0 clear, 1 cloud, 2 shadow (cloud wins)."""
    classes = np.where(heuristic_shadow(s2), SHADOW, CLEAR).astype(np.uint8)
    classes[heuristic_cloud_score(s2) >= HEURISTIC_CLOUD_THRESHOLD] = CLOUD
    return classes


def cloud_cloudshadow_mask(s2: np.ndarray) -> np.ndarray:
    """The toolbox's ``cloud_cloudshadow_mask``: 1 where cloud or shadow, else 0 (uint8)."""
    return (cloud_cloudshadow_classes(s2) != CLEAR).astype(np.uint8)
