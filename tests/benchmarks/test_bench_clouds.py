"""bench_clouds at a tiny size: every row is there, every number finite, the probabilities and masks identical."""

from __future__ import annotations

from benchmarks.bench_clouds import run
from tests.benchmarks.rows import assert_every_row_finite


def test_the_tiny_size_gives_every_row() -> None:
    result = run(patches_per_roi=1, times=2, size=32, repeats=1)
    assert_every_row_finite("bench_clouds", result)
    differences = {key: value for key, value in result.items() if key.startswith("max |probability difference|")}
    assert differences and set(differences.values()) == {0.0}, differences
    assert result["stored masks and maps identical"] is True
