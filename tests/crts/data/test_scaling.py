"""Value scaling for learning (crts.data.scaling): both ``rescale_method`` settings (docs/reference.md §3 Scaling),
and scaling in fewer passes equals the original loader's definition (clip, map, NaN to 0), also in place."""

from __future__ import annotations

import numpy as np
import pytest

from crts.data.scaling import days_since_s1_launch, s2_reflectance, scale_s1, scale_s2


def test_s2_is_clipped_then_divided_in_float32() -> None:
    dn = np.array([0, 1, 5000, 10000, 12000, 65535], dtype=np.uint16)
    out = scale_s2(dn)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.clip(dn, 0, 10000).astype(np.float32) / np.float32(10000))
    np.testing.assert_array_equal(scale_s2(dn, "resnet"), np.array([0, 0.0005, 2.5, 5, 5, 5], dtype=np.float32))
    np.testing.assert_allclose(s2_reflectance(scale_s2(dn, "resnet"), "resnet"), out, rtol=1e-6, atol=0)  # 1 ulp


def test_s1_default_maps_both_bands_from_minus_25_db_and_nan_becomes_0() -> None:
    db = np.array([[-30.0, -25.0, -12.5, 0.0, 3.0, np.nan]] * 2, dtype=np.float32).reshape(2, 1, 6)
    np.testing.assert_array_equal(scale_s1(db)[:, 0], [[0, 0, 0.5, 1, 1, 0]] * 2)


def test_s1_resnet_maps_vv_from_minus_25_and_vh_from_minus_32_5_db_to_0_2() -> None:
    db = np.array([[-25.0, -12.5, 0.0], [-32.5, -16.25, 0.0]], dtype=np.float32).reshape(2, 1, 3)
    out = scale_s1(db, "resnet")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0], [[0, 1, 2], [0, 1, 2]], rtol=0, atol=1e-6)


@pytest.mark.parametrize(("date", "days"), [("2014-04-03", 0), ("2018-01-01", 1369), ("2014-04-02T23:00", -1)])
def test_dates_are_whole_days_since_the_s1_launch(date: str, days: int) -> None:
    assert days_since_s1_launch(np.array([date], dtype="datetime64[m]")).tolist() == [days]


def _original_s1(s1: np.ndarray, method: str) -> np.ndarray:
    low = np.array([-25.0, -25.0 if method == "default" else -32.5], np.float32).reshape(2, 1, 1)
    out = (np.clip(s1, low, np.float32(0)) - low) / (-low)
    return np.nan_to_num(out if method == "default" else out * np.float32(2), nan=0.0)


@pytest.mark.parametrize("method", ["default", "resnet"])
def test_s1_equals_clip_map_and_nan_to_zero_also_in_place(method: str) -> None:
    s1 = np.random.default_rng(1).normal(-15, 12, (3, 2, 16, 16)).astype(np.float32)
    s1[0, 0, :3, :3], s1[1, 1, 0, :2] = np.nan, [np.inf, -np.inf]
    expected = _original_s1(s1, method)
    np.testing.assert_array_equal(scale_s1(s1, method), expected)
    stack = np.full((3, 15, 16, 16), 7, np.float32)
    stack[:, 13:] = s1
    scale_s1(stack[:, 13:], method, out=stack[:, 13:])
    np.testing.assert_array_equal(stack[:, 13:], expected)
    assert (stack[:, :13] == 7).all()


@pytest.mark.parametrize(("method", "divisor"), [("default", 10000), ("resnet", 2000)])
def test_s2_equals_clip_then_divide_into_a_given_array(method: str, divisor: int) -> None:
    s2 = np.random.default_rng(2).integers(0, 65535, (2, 13, 16, 16)).astype(np.uint16)
    expected = np.clip(s2.astype(np.float32), 0, 10000) / np.float32(divisor)
    np.testing.assert_array_equal(scale_s2(s2, method), expected)
    stack = np.zeros((2, 15, 16, 16), np.float32)
    assert scale_s2(s2, method, out=stack[:, :13]).base is stack
    np.testing.assert_array_equal(stack[:, :13], expected)
