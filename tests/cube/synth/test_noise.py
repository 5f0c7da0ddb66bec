"""Power-law noise fields and the threshold that covers a chosen fraction of one."""

from __future__ import annotations

import numpy as np
import pytest

from cube.synth.noise import fractal_noise, threshold_for_fraction


def test_a_field_is_zero_mean_unit_variance_float32_and_reproducible() -> None:
    field = fractal_noise(np.random.default_rng(1), (32, 48), beta=3.0)
    assert field.shape == (32, 48) and field.dtype == np.float32
    assert abs(field.mean()) < 1e-5 and field.std() == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_array_equal(field, fractal_noise(np.random.default_rng(1), (32, 48), beta=3.0))


def test_a_steeper_spectrum_is_smoother() -> None:
    def roughness(beta: float) -> float:
        field = fractal_noise(np.random.default_rng(2), (64, 64), beta)
        return float(np.abs(np.diff(field, axis=1)).mean())

    assert roughness(4.0) < roughness(3.0) < roughness(2.0)


def test_a_stretched_field_varies_less_along_its_angle() -> None:
    field = fractal_noise(np.random.default_rng(3), (64, 64), 3.0, stretch=6.0, angle=0.0)  # along x
    assert np.abs(np.diff(field, axis=1)).mean() < np.abs(np.diff(field, axis=0)).mean() / 2


def test_the_threshold_leaves_the_asked_fraction_above_it() -> None:
    field = np.arange(100, dtype=np.float32).reshape(10, 10)
    assert (field > threshold_for_fraction(field, 0.25)).mean() == 0.25
    assert threshold_for_fraction(field, 0) == np.inf and threshold_for_fraction(field, 1.0) == -np.inf
