"""Synthetic landscapes: land cover in the region's shares, seasonal greenness, S2 and S1 renderings."""

from __future__ import annotations

import numpy as np
import pytest

from cube.synth.scene import (
    CROP,
    FOREST,
    REGION_COVER,
    URBAN,
    WATER,
    Landscape,
    greenness,
    make_landscape,
    render_s1,
    render_s2,
)

SHAPE = (96, 96)


@pytest.fixture(scope="module")
def land() -> Landscape:
    return make_landscape(np.random.default_rng(0), SHAPE, "europa", latitude=48.0)


def test_land_cover_uses_every_class_near_the_region_s_shares(land: Landscape) -> None:
    shares = np.bincount(land.cover.ravel(), minlength=6) / land.cover.size
    assert land.cover.dtype == np.uint8 and land.cover.shape == SHAPE
    np.testing.assert_allclose(shares, REGION_COVER["europa"], atol=0.12)
    assert land.green_peak_doy == 200.0  # the northern temperate peak


def test_greenness_peaks_in_summer_for_forest_and_stays_in_0_1(land: Landscape) -> None:
    summer, winter = greenness(land, 200), greenness(land, 15)
    assert summer.min() >= 0 and summer.max() <= 1 and summer.dtype == np.float32
    forest = land.cover == FOREST
    np.testing.assert_allclose(summer[forest], 0.95, atol=1e-6)  # 0.75 + 0.2 at the peak
    assert winter[land.cover == CROP].mean() < summer[land.cover == CROP].mean()


def test_s2_is_13_bands_of_positive_reflectance_and_water_is_dark_in_the_infrared(land: Landscape) -> None:
    s2 = render_s2(land, 200, aerosol=0.0, rng=np.random.default_rng(1))
    assert s2.shape == (13, *SHAPE) and s2.min() >= 0.0005
    nir = s2[7]
    assert nir[land.cover == WATER].mean() < 0.05 < nir[land.cover == FOREST].mean()


def test_s1_is_vv_and_vh_in_db_with_urban_brightest_and_water_darkest(land: Landscape) -> None:
    s1 = render_s1(land, 200, moisture=0.0, rng=np.random.default_rng(2))
    assert s1.shape == (2, *SHAPE) and s1.dtype == np.float32
    vv = s1[0]
    assert vv[land.cover == WATER].mean() < -15 and vv[land.cover == URBAN].mean() > vv[land.cover == CROP].mean()
    assert (s1[1] < s1[0]).mean() > 0.9  # VH below VV
