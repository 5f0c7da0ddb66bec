"""bench_stats at a tiny size: every row is there and every number finite."""

from __future__ import annotations

from benchmarks.bench_stats import run
from tests.benchmarks.rows import assert_every_row_finite


def test_the_tiny_size_gives_every_row() -> None:
    assert_every_row_finite("bench_stats", run(n_patches=106, times=3, patches_per_roi=1, size=32, repeat=1))
