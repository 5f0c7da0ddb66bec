"""The cloud/shadow heuristic gives the original toolbox's masks pixel for pixel (docs/reference.md §4 Detectors).

The reference below is written from the recipe, independently of
``cube.clouds.detectors``: float32 throughout (as the original, which reads every
image as float32), except the 7x7 mean filter, whose float64 kernel makes that
step and the clipping float64. It uses other SciPy calls than the package
(maximum/minimum filters for the grey closing, ``ndimage.convolve`` with zero
padding for ``signal.convolve2d(mode='same')``, ``ndimage.median_filter`` with
zero padding for ``signal.medfilt2d``); they agree, borders included.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from cube.clouds.detectors import (
    CLEAR,
    CLOUD,
    REGISTRY,
    SHADOW,
    cloud_cloudshadow_classes,
    cloud_cloudshadow_mask,
    heuristic_cloud_score,
    s2cloudless_mask,
)


def _rescale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (x - lo) / (hi - lo)


def reference_score(s2: np.ndarray) -> np.ndarray:
    """Cloud score of the recipe: float32 up to the 7x7 mean, float64 from there."""
    img = np.clip(s2.astype(np.float32), 0, 10000) / 10000.0
    score = np.ones(img.shape[1:], np.float32)
    snow_sum = img[2] + img[11]
    snow_sum[snow_sum == 0] = 0.001
    for part, lo, hi in (
        (img[1], 0.1, 0.5),
        (img[0], 0.1, 0.3),
        (img[0] + img[10], 0.4, 0.9),
        (img[3] + img[2] + img[1], 0.2, 0.8),
        ((img[2] - img[11]) / snow_sum, 0.8, 0.6),
    ):
        score = np.minimum(score, _rescale(part, lo, hi))
    assert score.dtype == np.float32
    closed = ndimage.minimum_filter(ndimage.maximum_filter(score, size=5), size=5)
    smooth = ndimage.convolve(closed.astype(np.float64), np.ones((7, 7)) / 49, mode="constant", cval=0.0)
    return np.clip(smooth, 0.00001, 1.0)


def reference_classes(s2: np.ndarray) -> np.ndarray:
    """0 clear, 1 cloud, 2 shadow, by the recipe (cloud wins)."""
    img = np.clip(s2.astype(np.float32), 0, 10000) / 10000.0
    csi, blue = (img[7] + img[11]) / 2.0, img[1]
    t3 = np.min(csi) + 3 / 4 * (np.mean(csi) - np.min(csi))
    t4 = np.min(blue) + 5 / 6 * (np.mean(blue) - np.min(blue))
    assert t3.dtype == t4.dtype == np.float32
    marked = np.zeros(csi.shape, np.float32)
    marked[(csi < t3) & (blue < t4)] = -1
    shadow = ndimage.median_filter(marked, size=5, mode="constant", cval=0.0) < 0
    classes = np.where(shadow, SHADOW, CLEAR).astype(np.uint8)
    classes[reference_score(s2) >= 0.2] = CLOUD
    return classes


def _crafted() -> dict[str, tuple[np.ndarray, int]]:
    """16 x 16 images on a float32/float64 tie, with the number of cloud or shadow pixels of the recipe.

    B1 = 1400 puts the B1 ramp at 0.2 exactly in decimal; float64 rounds the score
    just above 0.2 (100 cloud pixels inside the zero-padded border), float32 just
    below (none). B1 + B10 = 5000 does the same for the B1 + B10 ramp. The shadow
    image has CSI = T3 exactly in decimal on 112 px, which float64 calls shadow.
    """
    base = np.full((13, 16, 16), 4000, np.uint16)
    base[0], base[1], base[10] = 3000, 5000, 6000
    base[1, :2, :2] = 4000  # the only dark blue: too small to survive the shadow's median filter
    b1 = base.copy()
    b1[0] = 1400
    b1_b10 = base.copy()
    b1_b10[10] = 2000
    shadow = np.full((13, 16, 16), 500, np.uint16)
    shadow[1, :, 8:] = 3000  # blue: dark on the left half
    shadow[[7, 11]] = 8783
    shadow[[7, 11], :, :1] = 1000
    shadow[[7, 11], :, 1:8] = 5344  # mean CSI 0.6792 -> T3 = 0.1 + 0.75 * 0.5792 = 0.5344
    return {"B1 ramp": (b1, 0), "B1 + B10 ramp": (b1_b10, 0), "shadow threshold": (shadow, 0)}


@pytest.mark.parametrize("name", list(_crafted()))
def test_float32_ties_follow_the_original(name: str) -> None:
    s2, marked = _crafted()[name]
    classes = cloud_cloudshadow_classes(s2)
    np.testing.assert_array_equal(classes, reference_classes(s2))
    assert int(cloud_cloudshadow_mask(s2).sum()) == marked


@pytest.mark.slow
def test_every_pixel_of_the_default_set_matches_the_float32_recipe(synthetic_root: Path) -> None:
    paths = sorted(synthetic_root.glob("ROIs*/*/S2/*/*.tif"))
    assert len(paths) == 240
    for path in paths:
        with rasterio.open(path) as src:
            s2 = src.read()
        np.testing.assert_allclose(
            heuristic_cloud_score(s2), reference_score(s2), rtol=0, atol=1e-12, err_msg=path.name
        )
        classes = reference_classes(s2)
        np.testing.assert_array_equal(cloud_cloudshadow_classes(s2), classes, err_msg=path.name)
        np.testing.assert_array_equal(cloud_cloudshadow_mask(s2), classes != CLEAR, err_msg=path.name)


def test_the_registry_s_float_masks_are_the_original_loader_s(synthetic_root: Path) -> None:
    """``float_mask`` (what the loaders give, its mean the coverage) equals the toolbox's per-detector recipe."""
    from cube.clouds.detectors import (
        DETECTORS,
        REGISTRY,
        float_mask,
        s2cloudless_map,
        s2cloudless_mask,
        s2cloudless_probability,
    )

    path = sorted(synthetic_root.glob("ROIs*/*/S2/*/*.tif"))[0]
    with rasterio.open(path) as src:
        s2 = src.read()
    expected = {
        "s2cloudless_mask": s2cloudless_mask(s2).astype(np.float32),
        "s2cloudless_map": s2cloudless_map(s2cloudless_probability(s2)),
        "cloud_cloudshadow_mask": cloud_cloudshadow_mask(s2).astype(np.float32),
    }
    assert DETECTORS == tuple(REGISTRY) == tuple(expected)
    for name, mask in expected.items():
        np.testing.assert_array_equal(float_mask(name, s2), mask)
        assert REGISTRY[name].gap == (255 if REGISTRY[name].dtype == np.uint8 else pytest.approx(np.nan, nan_ok=True))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: s2cloudless_mask(), "s2cloudless_mask needs the S2 image"),
        (lambda: REGISTRY["s2cloudless_mask"].detect(np.zeros((1, 13, 16, 16), np.uint16), None), "needs the S2"),
        (lambda: REGISTRY["s2cloudless_map"].detect(np.zeros((1, 13, 16, 16), np.uint16), None), "probabilities"),
    ],
)
def test_the_probability_detectors_without_probabilities_are_one_value_error(
    call: Callable[[], object], message: str
) -> None:
    """s2cloudless's mask with neither images nor probabilities, and the registry's probability detectors given
    none, say what they need (they failed on None: an AttributeError, a TypeError)."""
    with pytest.raises(ValueError, match=message):
        call()
