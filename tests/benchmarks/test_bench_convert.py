"""bench_convert at a tiny size: every row is there and a number (the benchmark cannot break unnoticed)."""

from __future__ import annotations

import math

from benchmarks.bench_convert import run


def test_the_tiny_size_gives_every_row() -> None:
    result = run(patches_per_roi=2, fewer=1, size=32, times=2, repeat=1)
    numbers = [
        number
        for key, value in result.items()
        if key != "goals"
        for number in (value if isinstance(value, list) else [value])
    ]
    assert result["geotiffs"] == 4 * 2 * 2 * 2  # 4 ROIs x 2 patches x 2 steps x S1 and S2
    assert all(isinstance(number, int | float) and math.isfinite(number) for number in numbers), result
    assert {
        "floor_cpu_s (tifffile read + Blosc compress of every file once, one thread)",
        "convert_1_process_cpu_s (--workers 1 --detectors none)",
        "ratio_convert_cpu_vs_floor",
        "ratio_convert_cpu_vs_floor_with_writes (median of A/B pairs)",
        "ratio_marginal_vs_floor_with_writes_per_patch",
        "marginal_cpu_s_per_patch (8 vs 4 patches)",
        "floor_cpu_s_per_patch",
        "ratio_marginal_vs_floor_per_patch",
        "read_all_geotiffs_s",
        "ratio_convert_vs_read_same_process",
    } <= set(result)
