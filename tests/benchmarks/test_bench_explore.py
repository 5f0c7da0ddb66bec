"""bench_explore at a tiny size: every row is there and every number finite."""

from __future__ import annotations

import importlib.util

from benchmarks.bench_explore import run
from tests.benchmarks.rows import assert_every_row_finite

IPYLEAFLET_ROWS = (
    "ipyleaflet GeoJSON layer of 15,600 footprints, build_s",
    "ipyleaflet layer state_MB",
    "ratio ipyleaflet / lonboard (state bytes)",
)
"""The baseline's rows, measured only where ipyleaflet is installed (no extra of the package installs it)."""


def test_the_tiny_size_gives_every_row() -> None:
    result = run(n_patches=106, strip_sample=2, size=32, times=2, repeat=1)
    baseline = importlib.util.find_spec("ipyleaflet") is not None
    assert ("ipyleaflet layer" in result) != baseline, result  # where not installed, it says so
    assert_every_row_finite("bench_explore", result, absent=() if baseline else IPYLEAFLET_ROWS)
