"""Coverage queries over a full-size index, and the cloud pass's throughput.

Index: 50,000 patches x 30 steps x 3 detectors over the 53 ROIs (about 3x the
whole data set's 15,600 patches), a hollow cube (:mod:`cube.synth.hollow`: written
by the converter's and the cloud pass's own code, with the real set's spread of coverage).
Baseline for queries: the same table by a pandas groupby on a tidy frame.
Baseline for the cloud pass: s2cloudless alone on the same images.
Goal (issue 4): every query < 0.5 s.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cube import convert, open_cube
from cube.analysis.stats import (
    coverage_index,
    coverage_table,
    histogram,
    patches_with_clear_steps,
    time_steps_in_range,
)
from cube.clouds.compute import compute_clouds
from cube.clouds.detectors import s2cloudless_probability
from cube.synth import make_dataset
from cube.synth.hollow import make_hollow

N_PATCHES, TIMES = 50_000, 30


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run(
    n_patches: int = N_PATCHES, times: int = TIMES, patches_per_roi: int = 2, size: int = 256, repeat: int = 3
) -> dict:
    """Every row; smaller ``n_patches`` (index), ``times``, ``patches_per_roi`` and ``size`` (cloud pass) and
    ``repeat`` for a quick check (the rows keep their names)."""
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = make_hollow(Path(tmp) / "index.zarr", n_patches, times=times)
        load_s, index = _timed(lambda: coverage_index(open_cube(store)))
        out["load index from the store (50,000 x 30 x 3)_s"] = round(load_s, 3)
        queries = {
            "table by region": lambda: coverage_table(index, ["region"]),
            "table by region, split": lambda: coverage_table(index, ["region", "split"]),
            "table by region, month": lambda: coverage_table(index, ["region", "month"]),
            "table by roi, time": lambda: coverage_table(index, ["roi", "time"]),
            ">= 10 steps below 5% coverage": lambda: patches_with_clear_steps(index, 10, 0.05),
            "steps with coverage in [0.2, 0.4]": lambda: time_steps_in_range(index, 0.2, 0.4),
            "histogram by region": lambda: histogram(index, 20, by="region"),
        }
        for name, query in queries.items():
            out[f"{name}_s"] = round(min(_timed(query)[0] for _ in range(repeat)), 3)

        def pandas_baseline() -> pd.DataFrame:
            p, t, d = np.meshgrid(*(np.arange(n) for n in index.coverage.shape), indexing="ij")
            frame = pd.DataFrame(
                {
                    "detector": np.array(index.detectors)[d.ravel()],
                    "region": index.labels.region.to_numpy()[p.ravel()],
                    "month": pd.DatetimeIndex(index.dates[p.ravel(), t.ravel()]).month,
                    "coverage": index.coverage.ravel(),
                }
            )
            return frame.groupby(["detector", "region", "month"]).coverage.agg(
                ["count", "mean", lambda c: (c <= 0.01).mean(), lambda c: (c >= 0.5).mean()]
            )

        baseline = _timed(pandas_baseline)[0]
        out["pandas baseline, table by region, month_s"] = round(baseline, 3)
        out["ratio pandas / ours (region, month)"] = round(baseline / out["table by region, month_s"], 1)

        root = make_dataset(
            Path(tmp) / "src",
            ["ROIs1868/17"],
            patches_per_roi=patches_per_roi,
            size=size,
            times=times,
            workers=2,
            progress=False,
        )
        convert(root, Path(tmp) / "cube.zarr", workers=1, clouds=(), progress=False)
        images = patches_per_roi * times
        pass_s, _ = _timed(lambda: compute_clouds(Path(tmp) / "cube.zarr", workers=1, progress=False))
        s2 = xr.open_zarr(Path(tmp) / "cube.zarr", consolidated=False).S2.values.reshape(-1, 13, size, size)
        alone_s, _ = _timed(lambda: s2cloudless_probability(s2))
        out["cloud pass, all 3 detectors, in-process_images_per_s"] = round(images / pass_s, 2)
        out["s2cloudless probability alone_images_per_s"] = round(images / alone_s, 2)
        out["ratio cloud pass / s2cloudless alone (time)"] = round(pass_s / alone_s, 2)
    out["goal"] = "every query < 0.5 s"
    return out
