"""Value scaling of S1 and S2 for learning (``rescale_method``, docs/reference.md §3 Scaling)."""

from __future__ import annotations

import numpy as np

from cube.dataset.bands import S2_SCALE

RESCALE_METHODS: tuple[str, ...] = ("default", "resnet")
S2_DIVISORS: dict[str, float] = {"default": S2_SCALE, "resnet": 2000.0}
"""What ``scale_s2`` divides the clipped digital numbers by, per ``rescale_method``."""
S1_LAUNCH = np.datetime64("2014-04-03")
"""Dates are given as days since the Sentinel-1 launch ('S1 TD', 'S2 TD')."""


def scale_s2(s2: np.ndarray, method: str = "default", out: np.ndarray | None = None) -> np.ndarray:
    """S2 digital numbers clipped to [0, 10000], then / 10000 ('default', [0, 1]) or / 2000 ('resnet', [0, 5]).

    ``out``: a float32 array of ``s2``'s shape to write into (returned); by default a new one.
    """
    out = np.empty(s2.shape, np.float32) if out is None else out
    np.clip(s2, 0, S2_SCALE, out=out, casting="unsafe")  # digital numbers are exact in float32: clip, then cast
    return np.divide(out, np.float32(S2_DIVISORS[method]), out=out)


def s2_reflectance(scaled: np.ndarray, method: str = "default") -> np.ndarray:
    """Top-of-atmosphere reflectance (0..1) of S2 values scaled by :func:`scale_s2` with ``method``.

    Examples
    --------
    >>> s2_reflectance(scale_s2(np.array([3000]), "resnet"), "resnet")
    array([0.3], dtype=float32)
    """
    return np.asarray(scaled, np.float32) * np.float32(S2_DIVISORS[method] / S2_SCALE)


def scale_s1(s1: np.ndarray, method: str = "default", out: np.ndarray | None = None) -> np.ndarray:
    """S1 dB (bands on axis -3) clipped and mapped: 'default' both bands [-25, 0] -> [0, 1];
    'resnet' VV [-25, 0] and VH [-32.5, 0] -> [0, 2].

    NaN (no radar data at swath edges) becomes 0 after scaling, as in the original loader
    (``fmax`` takes the lower bound for NaN, which maps to 0). ``out``: a float32 array of
    ``s1``'s shape to write into (returned; it may be ``s1`` itself); by default a new one.
    """
    low = np.array([-25.0, -25.0 if method == "default" else -32.5], np.float32).reshape(2, 1, 1)  # band axis -3
    span = np.float32(1.0 if method == "default" else 2.0)
    out = np.empty(s1.shape, np.float32) if out is None else out
    np.fmax(s1, low, out=out, casting="unsafe")
    np.fmin(out, np.float32(0.0), out=out)
    np.subtract(out, low, out=out)
    np.divide(out, -low, out=out)
    return out if span == 1 else np.multiply(out, span, out=out)


def days_since_s1_launch(dates: np.ndarray) -> np.ndarray:
    """Whole days from 2014-04-03 to each date (int64)."""
    return (dates.astype("datetime64[D]") - S1_LAUNCH).astype(np.int64)
