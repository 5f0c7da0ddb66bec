"""bench_loader at a tiny size: every row is there and every number finite."""

from __future__ import annotations

from benchmarks.bench_loader import run
from tests.benchmarks.rows import assert_every_row_finite


def test_the_tiny_size_gives_every_row() -> None:
    assert_every_row_finite(
        "bench_loader", run(patches_per_roi=1, size=128, times=4, scaling_passes=10, long_passes=10)
    )
