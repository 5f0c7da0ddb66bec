"""Cloud detectors with the original toolbox's parameters, and :data:`REGISTRY`, the one place that says what
a detector is (what it needs, its mask function, its stored variable, its float mask).

All functions take raw S2 digital numbers (L1C reflectance x 10000) with bands
first, as stored in the GeoTIFFs and the cube: one image (13, H, W) or, where
said, a stack (N, 13, H, W). Adding a detector: its functions and one
:class:`Detector` entry in :data:`REGISTRY` (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from ..dataset.bands import S2_SCALE

if TYPE_CHECKING:
    from s2cloudless import S2PixelCloudDetector


class S2cloudlessParams(TypedDict):
    """The arguments of ``S2PixelCloudDetector`` that the toolbox sets, with their types."""

    threshold: float
    average_over: int
    dilation_size: int
    all_bands: bool


S2CLOUDLESS_PARAMS = S2cloudlessParams(threshold=0.4, average_over=4, dilation_size=2, all_bands=True)
"""Exactly the toolbox's ``S2PixelCloudDetector`` arguments."""
MAP_MIN_PROBABILITY = 0.5
MAP_SIGMA = 2.0
HEURISTIC_CLOUD_THRESHOLD = 0.2
CLEAR, CLOUD, SHADOW = 0, 1, 2
"""Classes of :func:`cloud_cloudshadow_classes`."""
NO_DATA = 255
"""Stored value of the uint8 masks for images that are gaps (float masks: NaN)."""


@cache
def s2cloudless_detector() -> S2PixelCloudDetector:
    """The s2cloudless classifier with the toolbox's parameters (:data:`S2CLOUDLESS_PARAMS`), built once."""
    from s2cloudless import S2PixelCloudDetector  # here: 1-2 s (lightgbm) that readers of masks never pay

    return S2PixelCloudDetector(**S2CLOUDLESS_PARAMS)


def reflectance(s2: np.ndarray) -> np.ndarray:
    """Clipped to [0, 10000] and divided by 10000, as float32."""
    return np.clip(s2, 0, S2_SCALE).astype(np.float32) / np.float32(S2_SCALE)


def _as_stack(s2: np.ndarray) -> np.ndarray:
    stack = s2[None] if s2.ndim == 3 else s2
    if stack.ndim != 4 or stack.shape[1] != 13:
        raise ValueError(f"expected S2 of shape (13, H, W) or (N, 13, H, W), got {s2.shape}")
    return stack


def s2cloudless_probability(s2: np.ndarray) -> np.ndarray:
    """Cloud probability in [0, 1] (float32), shape (H, W) or (N, H, W)."""
    stack = reflectance(_as_stack(s2)).transpose(0, 2, 3, 1)
    prob = s2cloudless_detector().get_cloud_probability_maps(stack)
    return prob[0] if s2.ndim == 3 else prob


def s2cloudless_mask(s2: np.ndarray | None = None, probability: np.ndarray | None = None) -> np.ndarray:
    """Binary cloud mask (uint8): probability averaged over 4 px, > 0.4, dilated by 2 px.

    Give ``s2`` (image or stack), or its ``probability`` to skip the classifier; neither is a ValueError.
    """
    if probability is not None:
        prob = probability
    elif s2 is not None:
        prob = s2cloudless_probability(s2)
    else:
        raise ValueError("s2cloudless_mask needs the S2 image(s) or their s2cloudless probability")
    mask = s2cloudless_detector().get_mask_from_prob(prob[None] if prob.ndim == 2 else prob)
    return mask[0] if prob.ndim == 2 else mask


def s2cloudless_map(probability: np.ndarray) -> np.ndarray:
    """The toolbox's cloud map from s2cloudless probabilities of one image (H, W).

    Probabilities below 0.5 are set to 0, then Gaussian-smoothed (sigma 2,
    scipy defaults: reflect mode, truncate 4); float32 in [0, 1].
    """
    from scipy import ndimage  # here, not at the top: `crts stats` and `info` load this module's constants only

    kept = np.where(probability < MAP_MIN_PROBABILITY, 0, probability).astype(np.float32)
    return ndimage.gaussian_filter(kept, sigma=MAP_SIGMA).astype(np.float32)


def _maps(probability: np.ndarray | None) -> np.ndarray:
    """:func:`s2cloudless_map` of each image of a stack of probabilities (N, H, W); None is a ValueError (the
    ``s2cloudless_map`` detector is always given the probabilities)."""
    if probability is None:
        raise ValueError("the s2cloudless_map detector needs the images' s2cloudless probabilities")
    return np.stack([s2cloudless_map(p) for p in probability])


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Linear rescaling (x - lo) / (hi - lo) in the precision of ``x``; ``hi < lo`` gives a falling ramp."""
    return (x - lo) / (hi - lo)


def heuristic_cloud_score(s2: np.ndarray) -> np.ndarray:
    """Smoothed spectral cloud score in [1e-5, 1] of one image (docs/reference.md §4 Detectors).

    In the original's precision, which decides pixels near the 0.2 threshold:
    float32 up to the grey closing, then the 7x7 mean with a float64 kernel
    (so the mean and the clipping are float64).
    """
    from scipy import ndimage, signal  # here: importing scipy.signal costs ~0.5 CPU s, see s2cloudless_map

    r = reflectance(s2)
    b1, b2, b3, b4, b10, b11 = r[0], r[1], r[2], r[3], r[10], r[11]
    denominator = b3 + b11
    ndsi = (b3 - b11) / np.where(denominator == 0, np.float32(0.001), denominator)
    score = np.ones(b1.shape, np.float32)
    for ramp in (
        _ramp(b2, 0.1, 0.5),
        _ramp(b1, 0.1, 0.3),
        _ramp(b1 + b10, 0.4, 0.9),
        _ramp(b4 + b3 + b2, 0.2, 0.8),
        _ramp(ndsi, 0.8, 0.6),
    ):
        score = np.minimum(score, ramp)
    score = ndimage.grey_closing(score, size=(5, 5))
    score = signal.convolve2d(score, np.ones((7, 7)) / 49, mode="same")  # zero padding; float64 from here
    return np.clip(score, 1e-5, 1.0)


def heuristic_shadow(s2: np.ndarray) -> np.ndarray:
    """Boolean cloud-shadow mask of one image: dark in NIR+SWIR and in blue, median-filtered 5x5.

    All in float32 as in the original, the thresholds from float32 minima and means.
    """
    from scipy import signal  # here, as in heuristic_cloud_score

    r = reflectance(s2)
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


@dataclass(frozen=True)
class Detector:
    """One cloud detector: how its stored mask is made and read.

    ``detect(images, probability)`` gives the stored masks (N, H, W) of ``dtype`` from
    S2 images (N, 13, H, W) and, with ``uses_probability``, their s2cloudless
    probabilities (N, H, W) (else None); ``to_float`` turns stored masks into the
    float32 masks the loaders give (1 cloudy), whose mean is the image's coverage;
    ``attrs`` are the stored variable's attributes.
    """

    name: str
    detect: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    dtype: type[np.generic]
    attrs: dict = field(default_factory=dict)
    uses_probability: bool = False
    to_float: Callable[[np.ndarray], np.ndarray] = lambda stored: stored.astype(np.float32)

    @property
    def gap(self) -> float:
        """What an image that is a gap holds: 255 for uint8 masks, NaN for float ones."""
        return NO_DATA if self.dtype == np.uint8 else np.nan


S2CLOUDLESS_ATTRS = {f"s2cloudless_{k}": int(v) if isinstance(v, bool) else v for k, v in S2CLOUDLESS_PARAMS.items()}
"""The s2cloudless parameters as attributes: numbers (True as 1: netCDF has no booleans)."""

REGISTRY: dict[str, Detector] = {
    d.name: d
    for d in (
        Detector(
            "s2cloudless_mask",
            lambda images, probability: s2cloudless_mask(probability=probability),
            np.uint8,
            {
                "long_name": "s2cloudless cloud mask (toolbox parameters)",
                "flag_values": [0, 1, NO_DATA],
                "flag_meanings": "clear cloud no_data",
                **S2CLOUDLESS_ATTRS,
            },
            uses_probability=True,
        ),
        Detector(
            "s2cloudless_map",
            lambda images, probability: _maps(probability),
            np.float32,
            {
                "long_name": "s2cloudless cloud map: probabilities < 0.5 set to 0, Gaussian-smoothed",
                "units": "1",
                "min_probability": MAP_MIN_PROBABILITY,
                "gaussian_sigma": MAP_SIGMA,
            },
            uses_probability=True,
        ),
        Detector(
            "cloud_cloudshadow_mask",
            lambda images, probability: np.stack([cloud_cloudshadow_classes(image) for image in images]),
            np.uint8,
            {
                "long_name": "spectral cloud and shadow heuristic of the toolbox (> 0: its combined mask)",
                "flag_values": [0, 1, 2, NO_DATA],
                "flag_meanings": "clear cloud shadow no_data",
                "cloud_threshold": HEURISTIC_CLOUD_THRESHOLD,
            },
            to_float=lambda stored: (stored > 0).astype(np.float32),
        ),
    )
}
"""Every detector, in the order of the ``coverage`` columns of new cubes (read columns by their label)."""
DETECTORS: tuple[str, ...] = tuple(REGISTRY)
"""The ``cloud_masks`` choices of the original loader (besides None)."""


def detector(name: str) -> Detector:
    """The detector ``name``; an unknown name is one ValueError line listing the detectors.

    Examples
    --------
    >>> detector("s2cloudless_map").uses_probability
    True
    >>> detector("fmask")
    Traceback (most recent call last):
    ...
    ValueError: invalid detector 'fmask': choose from s2cloudless_mask, s2cloudless_map, cloud_cloudshadow_mask
    """
    if name not in REGISTRY:
        raise ValueError(f"invalid detector {name!r}: choose from {', '.join(DETECTORS)}")
    return REGISTRY[name]


def float_mask(name: str, s2: np.ndarray) -> np.ndarray:
    """The float32 mask (H, W) of detector ``name`` for one raw S2 image (13, H, W), as the original loader
    computes it on the fly (1 cloudy; the map's values for ``s2cloudless_map``)."""
    d = detector(name)
    probability = s2cloudless_probability(s2)[None] if d.uses_probability else None
    return d.to_float(d.detect(s2[None], probability))[0]
