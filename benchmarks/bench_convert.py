"""Converting a synthetic set (4 ROIs x 6 patches x 30 steps), against reading every GeoTIFF once with rasterio.

Goals (issue 3): conversion time <= 1.5x reading (same single process);
cube bytes <= 1.0x GeoTIFF bytes. Also: reading one (patch, time) image from the cube.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
import zarr

from cube import convert, open_cube
from cube.dataset.layout import scan_ts
from cube.synth import make_dataset

PATCHES_PER_ROI = 6


def _bytes(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def _best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp) / "src", patches_per_roi=PATCHES_PER_ROI, workers=2, progress=False)
        files = [f.path for f in scan_ts(root)[0]]

        def read_all() -> None:
            for path in files:
                with rasterio.open(path) as src:
                    src.read()

        read_s = _best_of(read_all)
        convert_1 = _best_of(
            lambda: convert(root, Path(tmp) / f"c1_{time.monotonic_ns()}.zarr", workers=1, clouds=(), progress=False)
        )
        start = time.perf_counter()
        convert(root, Path(tmp) / "cube.zarr", workers=2, clouds=(), progress=False)  # the cloud pass: bench_stats
        convert_2 = time.perf_counter() - start
        cube_bytes = sum(p.stat().st_size for p in (Path(tmp) / "cube.zarr").rglob("*") if p.is_file())
        tif_bytes = _bytes(files)

        ds = open_cube(Path(tmp) / "cube.zarr", chunks=None)
        s2 = zarr.open_array(Path(tmp) / "cube.zarr" / "S2", mode="r")
        rng = np.random.default_rng(0)
        picks = list(zip(rng.integers(0, ds.sizes["patch"], 50), rng.integers(0, 30, 50), strict=True))
        zarr_read = _best_of(lambda: [s2[p, t] for p, t in picks]) / len(picks)
        xr_read = _best_of(lambda: [ds.S2[p, t].values for p, t in picks]) / len(picks)
        tif_read = _best_of(
            lambda: [rasterio.open(root / str(ds.S2_path.values[p, t])).read() for p, t in picks]
        ) / len(picks)
    image_mb = 13 * 256 * 256 * 2 / 1e6
    return {
        "geotiffs": len(files),
        "read_all_geotiffs_s": round(read_s, 2),
        "convert_1_process_s": round(convert_1, 2),
        "ratio_convert_vs_read_same_process": round(convert_1 / read_s, 2),
        "convert_2_workers_s (dask LocalCluster, incl. start-up)": round(convert_2, 2),
        "ratio_convert_2_workers_vs_read": round(convert_2 / read_s, 2),
        "cube_bytes_vs_geotiff_bytes": round(cube_bytes / tif_bytes, 3),
        "read_one_S2_image_ms (zarr)": round(zarr_read * 1e3, 2),
        "read_one_S2_image_ms (xarray, chunks=None)": round(xr_read * 1e3, 2),
        "read_one_S2_image_ms (its GeoTIFF, baseline)": round(tif_read * 1e3, 2),
        "one_image_MB_per_s (zarr)": round(image_mb / zarr_read, 1),
        "goals": "ratio_convert_vs_read <= 1.5; cube_bytes_vs_geotiff_bytes <= 1.0",
    }
