"""The cloud pass's s2cloudless probabilities: the compiled forest against s2cloudless, per core and end to end.

Same synthetic images, same run. Per core: CPU seconds of one thread each
(s2cloudless's LightGBM ``predict`` with ``num_threads=1``; the kernel is
single-threaded), so that other load on the machine counts less; best and
median of ``REPEATS`` rounds, each round timing s2cloudless and each walk of
the kernel this CPU runs (AVX-512 where it has VBMI, portable) in turn; the CPU
and the walk the kernel chose on it (the fastest on the probe) are named.
End to end (wall clock): ``compute_clouds`` for both s2cloudless products on a
fresh copy of the same cube, with s2cloudless itself as the predictor (the old
path) and with the default (compiled) one, in-process and with 2 worker
processes. Goal (issues 14, 35): >= 10x images/s per core (>= 6x with the
portable walk), identical masks.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from cube import convert
from cube.clouds.compute import compute_clouds
from cube.clouds.detectors import reflectance, s2cloudless_detector
from cube.clouds.forest import MODEL_PATH, WALK_NAMES, cache_dir, fast_probability, kernel_path, predictor
from cube.synth import make_dataset

IMAGES_IN_DATA_SET = 470_000
PRODUCTS = ("s2cloudless_mask", "s2cloudless_map")
REPEATS = 5


def _s2cloudless_one_thread(s2: np.ndarray) -> np.ndarray:
    """s2cloudless's own probabilities with LightGBM on one thread."""
    return s2cloudless_detector().get_cloud_probability_maps(reflectance(s2).transpose(0, 2, 3, 1), num_threads=1)


def _timed(fn: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> tuple[float, object]:
    start = clock()
    out = fn()
    return clock() - start, out


def _pass(cube: Path, copy: Path, **kwargs: object) -> tuple[float, xr.Dataset]:
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(cube, copy)
    seconds, _ = _timed(lambda: compute_clouds(copy, PRODUCTS, progress=False, **kwargs))
    return seconds, xr.open_zarr(copy, consolidated=False)[list(PRODUCTS)].load()


def _cpu() -> str:
    """The CPU's model name as Linux lists it (the machine's architecture elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.machine()


def _per_core(s2: np.ndarray, out: dict, repeats: int = REPEATS) -> None:
    """Images per CPU second of s2cloudless and of each walk of the kernel this CPU runs; probabilities compared."""
    fastest = fast_probability()
    walks: dict[str, Callable[[np.ndarray], np.ndarray]] = {"s2cloudless": _s2cloudless_one_thread}
    for walk in getattr(fastest, "walks", ()):
        walks[f"compiled forest, {WALK_NAMES[walk]} walk"] = predictor(cache_dir(), MODEL_PATH, walk)
    out["CPU"] = _cpu()
    out["walk chosen on this CPU (fastest on the probe)"] = WALK_NAMES.get(getattr(fastest, "walk", ""), "none")
    seconds: dict[str, list[float]] = {name: [] for name in walks}
    expected = None
    for _ in range(repeats):
        for name, fn in walks.items():
            spent, got = _timed(lambda fn=fn: fn(s2), time.process_time)
            seconds[name].append(spent)
            expected = got if expected is None else expected
            out[f"max |probability difference|, {name}"] = float(np.abs(got - expected).max())
    base = np.array(seconds["s2cloudless"])
    for name, spent in seconds.items():
        per_s = len(s2) / np.array(spent)
        out[f"{name}, one thread_images_per_cpu_s (best, median)"] = [
            round(float(per_s.max()), 2),
            round(float(np.median(per_s)), 2),
        ]
        out[f"{name}, speed-up per core (best, median)"] = [
            round(float(base.min() / min(spent)), 1),
            round(float(np.median(base / np.array(spent))), 1),
        ]
        out[f"core-hours for {IMAGES_IN_DATA_SET:,} images, {name}"] = round(IMAGES_IN_DATA_SET / per_s.max() / 3600)


def run(patches_per_roi: int = 2, times: int = 8, size: int = 256, repeats: int = REPEATS) -> dict:
    """Every row; smaller ``patches_per_roi``, ``times``, ``size`` and ``repeats`` for a quick check."""
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(
            Path(tmp) / "src",
            ["ROIs1868/17"],
            patches_per_roi=patches_per_roi,
            size=size,
            times=times,
            workers=2,
            progress=False,
        )
        cube = Path(tmp) / "cube.zarr"
        convert(root, cube, workers=1, clouds=(), progress=False)
        s2 = xr.open_zarr(cube, consolidated=False).S2.values.reshape(-1, 13, size, size)
        build_s, _ = _timed(lambda: kernel_path(Path(tmp) / "cache"))
        out["kernel build (fresh cache)_s"] = round(build_s, 2)
        ready_s, _ = _timed(fast_probability)
        out["compiled forest ready (cached build, load, probe check)_s"] = round(ready_s, 2)
        _per_core(s2, out, repeats)
        old_s, old = _pass(cube, Path(tmp) / "old.zarr", workers=1, predictor=_s2cloudless_one_thread)
        new_s, new = _pass(cube, Path(tmp) / "new.zarr", workers=1)
        two_s, two = _pass(cube, Path(tmp) / "two.zarr", workers=2)
        out["cloud pass (mask+map), s2cloudless, in-process_images_per_s"] = round(len(s2) / old_s, 2)
        out["cloud pass (mask+map), compiled forest, in-process_images_per_s"] = round(len(s2) / new_s, 2)
        out["cloud pass (mask+map), compiled forest, 2 workers_images_per_s"] = round(len(s2) / two_s, 2)
        out["ratio cloud pass s2cloudless / compiled (time, in-process)"] = round(old_s / new_s, 1)
        out["stored masks and maps identical"] = bool(old.equals(new) and old.equals(two))
    out["goal"] = ">= 10x images/s per core (portable walk >= 6x), identical masks"
    return out
