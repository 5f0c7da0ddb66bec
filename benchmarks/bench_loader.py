"""Samples/s of the cube dataset against the original-style GeoTIFF loader, and the raw read ceiling.

Same samples in the same run (4 patches x 30 steps, 256 px, split 'all'):
- with s2cloudless masks: ours reads 4 steps and stored masks; the baseline
  (benchmarks/baseline_loader.py) opens 60 GeoTIFFs and runs s2cloudless on 30 images;
- masks off (cloud_masks=None, the whole series): both read all 60 images;
- ceiling: the same chunks read raw from the cube with zarr (no scaling), and
  the loader's share of that bandwidth;
- worker start methods: time to the first batch and steady windows/s of
  ``crts.data.loader`` with 2 workers started by fork, forkserver (the first
  loader of a process also starts the server) and spawn, against 0 workers.
Goals (issue 5): >= 100x with s2cloudless masks, >= 5x masks off, share >= 50%.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

from benchmarks.baseline_loader import GeoTiffLoader
from crts.data import SEN12MSCRTS, SampleWindows, loader
from cube import convert
from cube.synth import make_dataset


def _rate(fn, items: int, repeat: int = 1) -> float:
    best = min(_seconds(fn) for _ in range(repeat))
    return items / best


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _first_batch_and_rate(windows: SampleWindows, method: str | None, epochs: int = 3) -> tuple[float, float]:
    """Seconds to the first batch of a new loader (workers starting), then windows/s over ``epochs`` more epochs."""
    data = loader(windows, batch_size=4, num_workers=0 if method is None else 2, start_method=method)
    start = time.perf_counter()
    batches = iter(data)
    next(batches)
    first = time.perf_counter() - start
    for _ in batches:
        pass
    return first, _rate(lambda: [None for _ in range(epochs) for _ in data], epochs * len(windows))


def start_methods(samples: SEN12MSCRTS) -> dict:
    """Start-up and steady rate of 2 workers per start method (128 px windows of ``samples``), and ratios to fork."""
    windows = SampleWindows(samples, {"y": 128, "x": 128})
    windows[0]  # the parent has read the cube (and used dask) before the workers start, as in training
    runs = {"0 workers": None, "fork": "fork", "forkserver (starts the server)": "forkserver",
            "forkserver (server running)": "forkserver", "spawn": "spawn"}
    measured = {label: _first_batch_and_rate(windows, method) for label, method in runs.items()}
    out = {}
    for label, (first, rate) in measured.items():
        out[f"start method {label}: first batch s"] = round(first, 2)
        out[f"start method {label}: steady windows/s"] = round(rate, 1)
    for label, (first, _) in measured.items():
        if label not in ("0 workers", "fork"):
            out[f"start method {label}: first batch / fork's"] = round(first / measured["fork"][0], 1)
    return out


def run() -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp) / "src", ["ROIs1868/17", "ROIs2017/63"], patches_per_roi=2, workers=2,
                            progress=False)
        cube_path = Path(tmp) / "cube.zarr"
        convert(root, cube_path, workers=1, clouds=("s2cloudless_mask",), progress=False)

        ours = SEN12MSCRTS(cube_path, cloud_masks="s2cloudless_mask")
        base = GeoTiffLoader(root, cloud_masks="s2cloudless_mask")
        n = len(ours)
        assert all(base[i]["idx"] == [*ours.index.inputs[i].tolist(), int(ours.index.target[i])] for i in (0, n - 1))
        ours_rate = _rate(lambda: [ours[i] for i in range(n)], n, repeat=3)
        base_rate = _rate(lambda: [base[i] for i in (0, 1)], 2)
        out["s2cloudless masks: cube samples/s"] = round(ours_rate, 1)
        out["s2cloudless masks: GeoTIFF baseline samples/s"] = round(base_rate, 3)
        out["s2cloudless masks: ratio"] = round(ours_rate / base_rate, 1)

        ours_off, base_off = SEN12MSCRTS(cube_path, cloud_masks=None), GeoTiffLoader(root, cloud_masks=None)
        off_rate = _rate(lambda: [ours_off[i] for i in range(n)], n, repeat=3)
        base_off_rate = _rate(lambda: [base_off[i] for i in range(n)], n, repeat=3)
        out["masks off (whole series): cube samples/s"] = round(off_rate, 1)
        out["masks off (whole series): GeoTIFF baseline samples/s"] = round(base_off_rate, 1)
        out["masks off: ratio"] = round(off_rate / base_off_rate, 2)

        group = zarr.open_group(cube_path, mode="r")
        arrays = [group[name] for name in ("S2", "S1", "s2cloudless_mask")]

        def raw() -> None:
            for i in range(n):
                p = int(ours.positions[i])
                for t in [*ours.index.inputs[i], ours.index.target[i]]:
                    for array in arrays:
                        array[p, int(t)]

        sample_bytes = 4 * sum(int(np.prod(a.shape[2:])) * a.dtype.itemsize for a in arrays)
        raw_rate = _rate(raw, n, repeat=3)
        out["raw chunk reads (same chunks, no scaling) samples/s"] = round(raw_rate, 1)
        out["raw chunk read bandwidth MB/s"] = round(raw_rate * sample_bytes / 1e6, 1)
        out["loader share of the raw read rate"] = f"{ours_rate / raw_rate:.0%}"
        out.update(start_methods(ours))
    out["goals"] = ">= 100x with s2cloudless masks; >= 5x masks off; loader share >= 50%"
    return out
