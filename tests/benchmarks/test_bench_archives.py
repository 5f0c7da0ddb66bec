"""bench_archives at a tiny size: every row is there and every number finite."""

from __future__ import annotations

from benchmarks.bench_archives import run
from tests.benchmarks.rows import assert_every_row_finite


def test_the_tiny_size_gives_every_row() -> None:
    result = run(patches_per_roi=1, size=32, times=2, repeat=1)
    assert_every_row_finite("bench_archives", result)
    assert result["archives"] == 6
