"""The synthetic sky: coverage by season, cloud fields of the asked extent, and exact masks."""

from __future__ import annotations

import numpy as np
import pytest

from cube.synth.clouds import PAD, Sky, apply_sky, draw_coverage, draw_sky

SHAPE = (64, 64)


def test_coverage_is_clear_overcast_or_between_and_cloudier_in_the_cloudy_season() -> None:
    rng = np.random.default_rng(0)
    winter = np.array([draw_coverage(rng, "europa", 15) for _ in range(400)])
    summer = np.array([draw_coverage(rng, "europa", 197) for _ in range(400)])
    assert ((winter >= 0) & (winter <= 1)).all() and (winter == 0).any() and (winter >= 0.96).any()
    assert winter.mean() > summer.mean() and (summer == 0).mean() > (winter == 0).mean()


@pytest.mark.parametrize("coverage", [0.0, 0.3, 0.9])
def test_a_sky_covers_about_the_asked_fraction(coverage: float) -> None:
    sky = draw_sky(np.random.default_rng(4), SHAPE, coverage, latitude=45.0)
    assert sky.opacity.shape == sky.cirrus.shape == (SHAPE[0] + 2 * PAD, SHAPE[1] + 2 * PAD)
    inner = sky.opacity[PAD:-PAD, PAD:-PAD]
    assert ((inner > 0) | (sky.cirrus[PAD:-PAD, PAD:-PAD] > 0)).mean() == pytest.approx(coverage, abs=0.05)


def _sky(opacity: float, shift: tuple[int, int] = (0, 0)) -> Sky:
    """A uniform sky over SHAPE: no cirrus, even brightness."""
    padded = (SHAPE[0] + 2 * PAD, SHAPE[1] + 2 * PAD)
    return Sky(
        opacity=np.full(padded, opacity, np.float32),
        cirrus=np.zeros(padded, np.float32),
        brightness=np.ones(padded, np.float32),
        cirrus_b10=0.05,
        shift=shift,
        shadow_strength=0.9,
    )


def test_a_clear_sky_leaves_the_ground_and_an_opaque_one_hides_it() -> None:
    clear = np.random.default_rng(5).uniform(0.01, 0.4, (13, *SHAPE)).astype(np.float32)
    cloudy, cloud, shadow = apply_sky(clear, _sky(0.0))
    np.testing.assert_array_equal(cloudy, clear)
    assert not cloud.any() and not shadow.any()
    top, cloud, _ = apply_sky(clear, _sky(1.0))
    assert cloud.all() and top.dtype == np.float32
    np.testing.assert_allclose(top, apply_sky(clear * 0.5, _sky(1.0))[0], atol=1e-6)  # the ground is gone
    assert top[10].mean() == pytest.approx(0.05 * 1.3)  # B10 of cloud tops: cirrus_b10 x (0.8 + 0.5)


def test_a_shadow_is_masked_only_beside_its_cloud() -> None:
    sky = _sky(0.0, shift=(0, 20))
    sky.opacity[PAD : PAD + 10, PAD : PAD + 10] = 1.0  # a cloud in the top-left corner, its shadow 20 px away
    cloudy, cloud, shadow = apply_sky(np.full((13, *SHAPE), 0.2, np.float32), sky)
    assert cloud[:10, :10].all() and cloud.sum() == 100
    assert shadow[:10, 20:30].all() and shadow.sum() == 100 and not (shadow & cloud).any()
    np.testing.assert_allclose(cloudy[0, :10, 20:30], 0.2 * (1 - 0.9 * 0.35))  # B1 loses 35 % under full shadow
    np.testing.assert_allclose(cloudy[0, 20:, 40:], 0.2)  # away from cloud and shadow
