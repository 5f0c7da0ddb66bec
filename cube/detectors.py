"""Cloud detectors with the original toolbox's parameters (reference section 4).

All functions take raw S2 digital numbers (L1C reflectance x 10000) with bands
first, as stored in the GeoTIFFs and the cube, for one image (13, H, W) or a
stack (N, 13, H, W).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from s2cloudless import S2PixelCloudDetector

from .bands import S2_SCALE

S2CLOUDLESS_PARAMS = {"threshold": 0.4, "average_over": 4, "dilation_size": 2, "all_bands": True}
"""Exactly the toolbox's ``S2PixelCloudDetector`` arguments."""


@cache
def _s2cloudless() -> S2PixelCloudDetector:
    return S2PixelCloudDetector(**S2CLOUDLESS_PARAMS)


def _as_stack(s2: np.ndarray) -> np.ndarray:
    """(N, H, W, 13) reflectance in [0, 1], as s2cloudless wants it."""
    stack = s2[None] if s2.ndim == 3 else s2
    if stack.ndim != 4 or stack.shape[1] != 13:
        raise ValueError(f"expected S2 of shape (13, H, W) or (N, 13, H, W), got {s2.shape}")
    return np.clip(stack, 0, S2_SCALE).astype(np.float32).transpose(0, 2, 3, 1) / np.float32(S2_SCALE)


def s2cloudless_probability(s2: np.ndarray) -> np.ndarray:
    """Cloud probability in [0, 1] (float32), shape (H, W) or (N, H, W)."""
    prob = _s2cloudless().get_cloud_probability_maps(_as_stack(s2))
    return prob[0] if s2.ndim == 3 else prob


def s2cloudless_mask(s2: np.ndarray, probability: np.ndarray | None = None) -> np.ndarray:
    """Binary cloud mask (uint8): probabilities averaged over 4 px, > 0.4, dilated by 2 px.

    Pass ``probability`` when it is already known to skip the classifier.
    """
    prob = s2cloudless_probability(s2) if probability is None else probability
    mask = _s2cloudless().get_mask_from_prob(prob[None] if prob.ndim == 2 else prob)
    return mask[0] if prob.ndim == 2 else mask
