"""Converting a synthetic set (4 ROIs x 6 patches x 30 steps) against its floor: one read and one compression per file.

The floor: every GeoTIFF's pixels read once with tifffile and compressed once with the cube's own codec (Blosc lz4,
bit shuffle, level 5: cube.store.schema.compressor) on one thread, in CPU seconds. Goals (issue 35): tree -> cube
(``--workers 1 --detectors none``) <= 1.5x the floor in CPU seconds, and so the cost of each patch beyond the fixed
start-up (two set sizes converted, their difference per patch). The floor writes nothing, and writing costs as much
as the rest here (the kernel copies each byte into fresh page-cache pages: system time that moves with the disk's
state from run to run), so beside it the floor with writes: the same, and each patch's compressed steps written
into a new file (what a shard is), in a new folder each round as each conversion writes a new cube; floor with
writes and conversion alternate (A B A B) and their ratio is taken pair by pair. Kept as a baseline too: reading
every GeoTIFF with rasterio (issue 3: conversion <= 1.5x that, same process). Also: cube bytes <= 1.0x GeoTIFF
bytes, and reading one (patch, time) image from the cube.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
import tifffile
import zarr

from cube import convert, open_cube
from cube.dataset.layout import scan_ts
from cube.store.chunks import blosc_of
from cube.store.schema import compressor
from cube.synth import make_dataset

PATCHES_PER_ROI = 6
"""Patches per ROI of the set measured (4 ROIs: 1440 GeoTIFFs of 256 px, 30 steps)."""
FEWER_PATCHES_PER_ROI = 2
"""Patches per ROI of the smaller set converted for the cost per patch beyond the fixed start-up."""


def _bytes(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def _best_of(fn: Callable[[], object], repeat: int = 3, clock: Callable[[], float] = time.perf_counter) -> float:
    """The shortest of ``repeat`` runs of ``fn()``, in seconds of ``clock`` (wall, or this process's CPU)."""
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def floor(files: list[Path], out: Path | None = None, per_object: int = 30) -> None:
    """Read every file's pixels once with tifffile and compress them once with the cube's codec, on one thread
    (a worker thread, where numcodecs compresses as the converter's writer and zarr do); with ``out`` (a new
    folder), also write the compressed bytes of each ``per_object`` files one after another into one new file
    there (as a shard holds a patch's steps)."""

    def read_and_compress() -> None:
        held: list = []
        for n, path in enumerate(files, 1):
            pixels = np.ascontiguousarray(tifffile.imread(path))
            encoded = blosc_of(compressor(pixels.dtype)).encode(pixels)
            if out is None:
                continue
            held.append(encoded)
            if n % per_object == 0 or n == len(files):
                with open(out / str(n), "xb") as f:
                    f.writelines(held)
                held = []

    with ThreadPoolExecutor(1) as pool:
        pool.submit(read_and_compress).result()


def _cpu_s(fn: Callable[[], object]) -> tuple[float, float]:
    """User and system CPU seconds of this process (every thread) while ``fn()`` runs."""
    start = resource.getrusage(resource.RUSAGE_SELF)
    fn()
    end = resource.getrusage(resource.RUSAGE_SELF)
    return end.ru_utime - start.ru_utime, end.ru_stime - start.ru_stime


TICK_S = 1 / os.sysconf("SC_CLK_TCK")
"""The clock tick (10 ms on Linux): the kernel splits CPU time into user and system by the ticks that land in
each, so a part shorter than a tick can read 0."""


def _ratio_of_cpu(a: float, b: float) -> float:
    """``a / b``, CPU seconds both, with ``b`` read as at least one clock tick (a tiny run's floor can read 0)."""
    return a / max(b, TICK_S)


def _convert(root: Path, cube: Path) -> None:
    """Tree -> a new cube at ``cube`` in one process, no cloud pass."""
    convert(root, cube, workers=1, clouds=(), progress=False)


def _pairs(root: Path, files: list[Path], tmp: Path, times: int, repeat: int) -> tuple[dict, float, float]:
    """The floor with writes and the conversion alternated ``repeat`` times (A B A B), each into a new folder:
    rows of the best CPU seconds of each, their user and system parts and the median of the ratios pair by pair;
    and the best CPU seconds of each."""
    runs: list[tuple[tuple[float, float], tuple[float, float]]] = []
    for _ in range(repeat):
        out = tmp / f"floor_{time.monotonic_ns()}"
        out.mkdir()
        cube = tmp / f"pair_{time.monotonic_ns()}.zarr"
        runs.append((_cpu_s(lambda out=out: floor(files, out, times)), _cpu_s(lambda cube=cube: _convert(root, cube))))
        for written in (out, cube):  # a full-size run's outputs would fill the disk
            shutil.rmtree(written)
    floor_best = min(runs, key=lambda pair: sum(pair[0]))[0]
    convert_best = min(runs, key=lambda pair: sum(pair[1]))[1]
    rows = {
        "floor_with_writes_cpu_s (the floor, and each patch's compressed steps written into a new file)": round(
            sum(floor_best), 2
        ),
        "floor_with_writes_user_system_cpu_s": [round(v, 2) for v in floor_best],
        "convert_1_process_user_system_cpu_s": [round(v, 2) for v in convert_best],
        "ratio_convert_cpu_vs_floor_with_writes (median of A/B pairs)": round(
            statistics.median(_ratio_of_cpu(sum(c), sum(f)) for f, c in runs), 2
        ),
        "ratio_convert_user_cpu_vs_floor_with_writes_user": round(
            statistics.median(_ratio_of_cpu(c[0], f[0]) for f, c in runs), 2
        ),
    }
    return rows, sum(floor_best), sum(convert_best)


def _convert_cpu(root: Path, tmp: Path, repeat: int) -> float:
    """Best CPU seconds of this process for tree -> cube in one process (no cloud pass), each into a new cube."""
    return _best_of(lambda: _convert(root, tmp / f"c1_{time.monotonic_ns()}.zarr"), repeat, time.process_time)


def _marginal(
    tmp: Path, size: int, times: int, fewer: int, more: int, more_cpu: float, floors: tuple[float, float], repeat: int
) -> dict:
    """Rows of the cost per patch beyond the fixed start-up: a set of ``fewer`` patches per ROI converted as well
    (the floor has no start-up: its cost per patch, without and with writes (``floors``), is the whole set's
    divided by its patches)."""
    root = make_dataset(tmp / "fewer", patches_per_roi=fewer, size=size, times=times, workers=2, progress=False)
    fewer_cpu = _convert_cpu(root, tmp, repeat)
    per_patch = (more_cpu - fewer_cpu) / (4 * (more - fewer))
    floor_per_patch, with_writes = (cpu / (4 * more) for cpu in floors)
    return {
        f"convert_1_process_cpu_s ({4 * fewer} patches)": round(fewer_cpu, 2),
        "fixed_start_up_cpu_s (convert minus its patches at the marginal cost)": round(
            fewer_cpu - 4 * fewer * per_patch, 2
        ),
        f"marginal_cpu_s_per_patch ({more} vs {fewer} patches per ROI)": round(per_patch, 3),
        "floor_cpu_s_per_patch": round(floor_per_patch, 3),
        "ratio_marginal_vs_floor_per_patch": round(per_patch / floor_per_patch, 2),
        "floor_with_writes_cpu_s_per_patch": round(with_writes, 3),
        "ratio_marginal_vs_floor_with_writes_per_patch": round(per_patch / with_writes, 2),
    }


def run(
    patches_per_roi: int = PATCHES_PER_ROI,
    fewer: int = FEWER_PATCHES_PER_ROI,
    size: int = 256,
    times: int = 30,
    repeat: int = 3,
) -> dict:
    """Every row; smaller ``patches_per_roi``, ``fewer``, ``size`` and ``times`` for a quick check."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = make_dataset(
            tmp / "src", patches_per_roi=patches_per_roi, size=size, times=times, workers=2, progress=False
        )
        files = [f.path for f in scan_ts(root)[0]]

        def read_all() -> None:
            for path in files:
                with rasterio.open(path) as src:
                    src.read()

        read_s = _best_of(read_all, repeat)
        floor_cpu = _best_of(lambda: floor(files), repeat, time.process_time)
        pairs, floor_writes_cpu, convert_cpu = _pairs(root, files, tmp, times, repeat)
        convert_1 = _best_of(lambda: _convert(root, tmp / f"c1_{time.monotonic_ns()}.zarr"), repeat)
        floors = (floor_cpu, floor_writes_cpu)
        marginal = _marginal(tmp, size, times, fewer, patches_per_roi, convert_cpu, floors, repeat)
        start = time.perf_counter()
        convert(root, tmp / "cube.zarr", workers=2, clouds=(), progress=False)  # the cloud pass: bench_stats
        convert_2 = time.perf_counter() - start
        cube_bytes = sum(p.stat().st_size for p in (tmp / "cube.zarr").rglob("*") if p.is_file())
        tif_bytes = _bytes(files)

        ds = open_cube(tmp / "cube.zarr", chunks=None)
        s2 = zarr.open_array(tmp / "cube.zarr" / "S2", mode="r")
        rng = np.random.default_rng(0)
        picks = list(zip(rng.integers(0, ds.sizes["patch"], 50), rng.integers(0, times, 50), strict=True))
        zarr_read = _best_of(lambda: [s2[p, t] for p, t in picks], repeat) / len(picks)
        xr_read = _best_of(lambda: [ds.S2[p, t].values for p, t in picks], repeat) / len(picks)
        tif_read = _best_of(
            lambda: [rasterio.open(root / str(ds.S2_path.values[p, t])).read() for p, t in picks], repeat
        ) / len(picks)
    image_mb = 13 * size * size * 2 / 1e6
    return {
        "geotiffs": len(files),
        "floor_cpu_s (tifffile read + Blosc compress of every file once, one thread)": round(floor_cpu, 2),
        "convert_1_process_cpu_s (--workers 1 --detectors none)": round(convert_cpu, 2),
        "ratio_convert_cpu_vs_floor": round(convert_cpu / floor_cpu, 2),
        **pairs,
        **marginal,
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
        "goals": "ratio_convert_cpu_vs_floor <= 1.5 and ratio_marginal_vs_floor_per_patch <= 1.5 (issue 35; the "
        "floor with writes is what can be met wherever writing costs what it does here); "
        "ratio_convert_vs_read <= 1.5 (rasterio, issue 3); cube_bytes_vs_geotiff_bytes <= 1.0",
    }
