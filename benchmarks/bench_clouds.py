"""The cloud pass's s2cloudless probabilities: the compiled forest against s2cloudless, per core and end to end.

Same synthetic images, same run. Per core: one thread each (s2cloudless's
LightGBM ``predict`` with ``num_threads=1``; the kernel is single-threaded).
End to end: ``compute_clouds`` for both s2cloudless products on a fresh copy
of the same cube, with s2cloudless itself as the predictor (the old path) and
with the default (compiled) one, in-process and with 2 worker processes.
Goal (issue 14): >= 10x images/s per core, identical masks.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from cube import convert
from cube.clouds import compute_clouds
from cube.detectors import _reflectance, _s2cloudless
from cube.forest import fast_probability, kernel_path
from cube.synth import make_dataset

IMAGES_IN_DATA_SET = 470_000
PRODUCTS = ("s2cloudless_mask", "s2cloudless_map")


def _s2cloudless_one_thread(s2: np.ndarray) -> np.ndarray:
    """s2cloudless's own probabilities with LightGBM on one thread."""
    return _s2cloudless().get_cloud_probability_maps(_reflectance(s2).transpose(0, 2, 3, 1), num_threads=1)


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _pass(cube: Path, copy: Path, **kwargs) -> tuple[float, xr.Dataset]:
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(cube, copy)
    seconds, _ = _timed(lambda: compute_clouds(copy, PRODUCTS, progress=False, **kwargs))
    return seconds, xr.open_zarr(copy, consolidated=False)[list(PRODUCTS)].load()


def run() -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp) / "src", ["ROIs1868/17"], patches_per_roi=2, times=8, workers=2,
                            progress=False)
        cube = Path(tmp) / "cube.zarr"
        convert(root, cube, workers=1, clouds=(), progress=False)
        s2 = xr.open_zarr(cube, consolidated=False).S2.values.reshape(-1, 13, 256, 256)
        build_s, _ = _timed(lambda: kernel_path(Path(tmp) / "cache"))
        out["kernel build (fresh cache)_s"] = round(build_s, 2)
        ready_s, fast = _timed(fast_probability)
        out["compiled forest ready (cached build, load, probe check)_s"] = round(ready_s, 2)
        base_s, expected = _timed(lambda: _s2cloudless_one_thread(s2))
        fast_s, got = _timed(lambda: fast(s2))
        out["s2cloudless, one thread_images_per_s"] = round(len(s2) / base_s, 2)
        out["compiled forest, one thread_images_per_s"] = round(len(s2) / fast_s, 2)
        out["speed-up per core"] = round(base_s / fast_s, 1)
        out["max |probability difference|"] = float(np.abs(got - expected).max())
        for name, per_s in (("s2cloudless", len(s2) / base_s), ("compiled forest", len(s2) / fast_s)):
            out[f"core-hours for {IMAGES_IN_DATA_SET:,} images, {name}"] = round(IMAGES_IN_DATA_SET / per_s / 3600)
        old_s, old = _pass(cube, Path(tmp) / "old.zarr", workers=1, predictor=_s2cloudless_one_thread)
        new_s, new = _pass(cube, Path(tmp) / "new.zarr", workers=1)
        two_s, two = _pass(cube, Path(tmp) / "two.zarr", workers=2)
        out["cloud pass (mask+map), s2cloudless, in-process_images_per_s"] = round(len(s2) / old_s, 2)
        out["cloud pass (mask+map), compiled forest, in-process_images_per_s"] = round(len(s2) / new_s, 2)
        out["cloud pass (mask+map), compiled forest, 2 workers_images_per_s"] = round(len(s2) / two_s, 2)
        out["ratio cloud pass s2cloudless / compiled (time, in-process)"] = round(old_s / new_s, 1)
        out["stored masks and maps identical"] = bool(old.equals(new) and old.equals(two))
    out["goal"] = ">= 10x images/s per core, identical masks"
    return out
