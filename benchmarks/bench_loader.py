"""Samples/s of the cube dataset against the original-style GeoTIFF loader, and the raw read ceiling.

Same samples in the same run (4 patches x 30 steps, 256 px, split 'all'):
- with s2cloudless masks: ours reads 4 steps and stored masks; the baseline
  (benchmarks/baseline_loader.py) opens 60 GeoTIFFs and runs s2cloudless on 30 images;
- masks off (cloud_masks=None, the whole series): both read all 60 images;
- ceiling: the same chunks read raw from the cube with zarr (no scaling), and
  the loader's share of that bandwidth;
- decode limit: the same shard files read with plain file reads (index, then the
  touched inner chunks) and the chunks decoded with numcodecs' Blosc in a loop, no
  scaling; whole samples (3 inputs + target) against it, the direct reads
  (CubeStore.read, cube/store/chunks.py) against zarr's, random 64 px windows against
  whole samples, and the bytes one 64 px window and one whole sample read;
- worker scaling: random 64 px windows/s through the loader with 2 workers against none (one torch
  thread in the main process, as in the workers: on a loaded 2-core machine torch's thread pool
  made collating a batch up to 10x slower);
- the way batches travel from workers (crts.data.batches.SHARED_BYTES): whole-patch windows/s
  with 2 workers, arrays of 1 MiB or more in shared memory and the rest in the message, against
  all in the message and all in shared memory;
- worker start methods: time to the first batch and steady windows/s of
  ``crts.data.loader`` with 2 workers started by fork, forkserver (the first
  loader of a process also starts the server) and spawn, against 0 workers.
Goals (issue 5): >= 100x with s2cloudless masks, >= 5x masks off, share >= 50%; (issue 24) whole samples
>= 0.5 of the decode limit, 64 px windows >= 4x whole samples, 2 workers >= 1.8x one process.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import zarr
from numcodecs import Blosc

from benchmarks.baseline_loader import GeoTiffLoader
from crts.data import SEN12MSCRTS, SampleWindows, batches, loader
from cube import convert
from cube.store import reads
from cube.store.schema import WINDOW_TILE_PX
from cube.store.store import CubeStore
from cube.synth import make_dataset

PASSES = 5
"""Passes over the 4 samples per timing of whole samples (4 x as many epochs of windows): single passes of about
60 ms made the window / whole ratio swing between 3.4 and 6.5 from run to run."""


def _rate(fn: Callable[[], object], items: int, repeat: int = 1) -> float:
    best = min(_seconds(fn) for _ in range(repeat))
    return items / best


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _first_batch_and_rate(windows: SampleWindows, method: str | None, passes: int = 30) -> tuple[float, float]:
    """Seconds to the first batch of a new loader (workers starting), then windows/s over the rest of one long
    pass (``passes`` x the windows), so that the steady rate does not include the workers' start."""
    order = list(range(len(windows))) * passes
    data = loader(windows, batch_size=4, num_workers=0 if method is None else 2, start_method=method, sampler=order)
    start = time.perf_counter()
    batches = iter(data)
    next(batches)
    first = time.perf_counter() - start
    return first, _rate(lambda: [None for _ in batches], len(order) - 4)


def start_methods(samples: SEN12MSCRTS, passes: int = 30) -> dict:
    """Start-up and steady rate of 2 workers per start method (128 px windows of ``samples``, ``passes`` x over
    them), and ratios to fork."""
    windows = SampleWindows(samples, {"y": 128, "x": 128})
    windows[0]  # the parent has read the cube (and used dask) before the workers start, as in training
    runs = {
        "0 workers": None,
        "fork": "fork",
        "forkserver (starts the server)": "forkserver",
        "forkserver (server running)": "forkserver",
        "spawn": "spawn",
    }
    measured = {label: _first_batch_and_rate(windows, method, passes) for label, method in runs.items()}
    out = {}
    for label, (first, rate) in measured.items():
        out[f"start method {label}: first batch s"] = round(first, 2)
        out[f"start method {label}: steady windows/s"] = round(rate, 1)
    for label, (first, _) in measured.items():
        if label not in ("0 workers", "fork"):
            out[f"start method {label}: first batch / fork's"] = round(first / measured["fork"][0], 1)
    return out


class _Ready(torch.utils.data.Dataset):
    """The same item, ready made (a copy each time): what the DataLoader's transfer from workers alone costs."""

    def __init__(self, item: dict, n: int) -> None:
        self.item, self.n = item, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {key: value.clone() if torch.is_tensor(value) else value for key, value in self.item.items()}


def loader_rate(
    windows: torch.utils.data.Dataset, workers: int, order: list[int], start_method: str | None = None
) -> float:
    """Items/s of one pass through ``crts.data.loader`` (batches of 4), timed from its first batch."""
    data = iter(loader(windows, batch_size=4, num_workers=workers, sampler=order, start_method=start_method))
    next(data)
    start = time.perf_counter()
    return sum(len(batch["pdx"]) for batch in data) / (time.perf_counter() - start)


def worker_scaling(samples: SEN12MSCRTS, passes: int = 200) -> dict:
    """Random 64 px windows/s through ``crts.data.loader`` with 2 workers (default start) against none, in one
    long pass (``passes`` x the selection) timed from its first batch (the workers' start left out); beside it
    the transfer limit: ready-made items of the same shapes through 2 workers."""
    windows = SampleWindows(samples, {"y": 64, "x": 64}, placement="random")
    order, threads = list(range(len(windows))) * passes, torch.get_num_threads()
    torch.set_num_threads(1)  # as in each worker: torch's thread pool made batching (torch.stack) 10x slower
    try:
        one, two = loader_rate(windows, 0, order), loader_rate(windows, 2, order)
        ready = loader_rate(_Ready(windows[0], len(order)), 2, list(range(len(order))))
    finally:
        torch.set_num_threads(threads)
    return {
        "64 px windows/s, 1 process": round(one, 1),
        "64 px windows/s, 2 workers": round(two, 1),
        "2 workers / 1 process": round(two / one, 2),
        "transfer limit: ready-made items/s through 2 workers": round(ready, 1),
    }


def shared_memory_split(samples: SEN12MSCRTS, passes: int = 30) -> dict:
    """Whole-patch windows/s through 2 forked workers with :data:`crts.data.batches.SHARED_BYTES` as it is,
    against every array in the pickled message and every array in shared memory (same run)."""
    windows = SampleWindows(samples)
    order, default = list(range(len(windows))) * passes, batches.SHARED_BYTES
    rates = {}
    try:
        for label, limit in (("split", default), ("all in the message", 1 << 62), ("all shared", 0)):
            batches.SHARED_BYTES = limit  # forked workers inherit it
            rates[label] = loader_rate(windows, 2, order, start_method="fork")
    finally:
        batches.SHARED_BYTES = default
    return {
        "whole patches, 2 workers, windows/s: 1 MiB or more shared": round(rates["split"], 1),
        "... / all in the message": round(rates["split"] / rates["all in the message"], 2),
        "... / all in shared memory": round(rates["split"] / rates["all shared"], 2),
    }


def _steps(samples: SEN12MSCRTS, pdx: int) -> list[int]:
    return [*map(int, samples.index.inputs[pdx]), int(samples.index.target[pdx])]


def _decode_limit(cube: Path, samples: SEN12MSCRTS) -> None:
    """Every sample's images with plain file reads (shard index, then each touched chunk) and Blosc decoding."""
    blosc = Blosc()
    for pdx in range(len(samples)):
        for name in ("S2", "S1", samples.cloud_masks):
            array = zarr.open_array(cube / name, mode="r")
            per_step = int(np.prod([s // c for s, c in zip(array.shards[2:], array.chunks[2:], strict=True)]))
            with open(
                cube / name / "c" / str(int(samples.positions[pdx])) / "/".join("0" * (array.ndim - 2)) / "0", "rb"
            ) as shard:
                fd, entries = shard.fileno(), array.shards[1] * per_step
                end = os.fstat(fd).st_size
                index = np.frombuffer(os.pread(fd, 16 * entries, end - 16 * entries - 4), "<u8").reshape(-1, 2)
                for t in _steps(samples, pdx):
                    for offset, size in index[t * per_step : (t + 1) * per_step]:
                        blosc.decode(os.pread(fd, int(size), int(offset)))


def _bytes_read(samples: SEN12MSCRTS, read: Callable[[], object]) -> float:
    """Bytes that ``read()`` fetches from the cube's files (shard indexes and chunks)."""
    total, plain = [0], reads.get_ranges

    def counting(store: CubeStore, requests: dict) -> dict:
        found = plain(store, requests)
        total[0] += sum(a.size for arrays in found.values() for a in arrays if a is not None)
        return found

    reads.get_ranges = counting  # what CubeStore.read calls for the chunks' bytes
    try:
        read()
    finally:
        reads.get_ranges = plain
    return total[0]


def decode_limit(cube: Path, samples: SEN12MSCRTS, whole_rate: float) -> dict:
    """Whole samples against the decode limit, direct against zarr reads, 64 px windows against whole samples."""
    n, names = len(samples), ("S2", "S1", samples.cloud_masks)
    arrays = {name: zarr.open_array(cube / name, mode="r") for name in names}
    limit = _rate(lambda: _decode_limit(cube, samples), n, repeat=5)
    requests = [
        [(name, (int(samples.positions[i]), t)) for name in names for t in _steps(samples, i)] for i in range(n)
    ]
    direct = _rate(lambda: [samples.store.read(r) for r in requests], n, repeat=5)
    plain = _rate(lambda: [arrays[name][sel] for r in requests for name, sel in r], n, repeat=3)
    windows = SampleWindows(samples, {"y": 64, "x": 64}, placement="random")
    epochs = PASSES * 4  # random windows: a new draw each epoch

    def read_windows() -> None:
        for epoch in range(epochs):
            windows.set_epoch(epoch)
            for i in range(len(windows)):
                windows[i]

    window_rate = _rate(read_windows, epochs * len(windows), repeat=3)
    return {
        "decode limit (file reads + Blosc, no scaling) samples/s": round(limit, 1),
        "whole samples / decode limit": round(whole_rate / limit, 2),
        "direct reads (CubeStore.read) samples/s": round(direct, 1),
        "direct reads / zarr reads of the same images": round(direct / plain, 2),
        "64 px windows (random) samples/s": round(window_rate, 1),
        "64 px windows / whole samples": round(window_rate / whole_rate, 2),
        "bytes read per 64 px window (MB)": round(_bytes_read(samples, read_windows) / epochs / n / 1e6, 3),
        "bytes read per whole sample (MB)": round(_bytes_read(samples, lambda: samples[0]) / 1e6, 3),
    }


def run(
    patches_per_roi: int = 2, size: int = 256, times: int = 30, scaling_passes: int = 200, long_passes: int = 30
) -> dict:
    """Every row; smaller ``patches_per_roi``, ``size`` (at least the 128 px windows), ``times`` and passes
    (``scaling_passes`` for :func:`worker_scaling`, ``long_passes`` for :func:`shared_memory_split` and
    :func:`start_methods`) for a quick check."""
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(
            Path(tmp) / "src",
            ["ROIs1868/17", "ROIs2017/63"],
            patches_per_roi=patches_per_roi,
            size=size,
            times=times,
            workers=2,
            progress=False,
        )
        cube_path = Path(tmp) / "cube.zarr"
        convert(root, cube_path, workers=1, clouds=("s2cloudless_mask",), tile=WINDOW_TILE_PX, progress=False)

        ours = SEN12MSCRTS(cube_path, cloud_masks="s2cloudless_mask")
        base = GeoTiffLoader(root, cloud_masks="s2cloudless_mask")
        n = len(ours)
        assert all(base[i]["idx"] == [*ours.index.inputs[i].tolist(), int(ours.index.target[i])] for i in (0, n - 1))
        ours_rate = _rate(lambda: [ours[i] for _ in range(PASSES) for i in range(n)], PASSES * n, repeat=3)
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
        out.update(decode_limit(cube_path, ours, ours_rate))
        out.update(worker_scaling(ours, scaling_passes))
        out.update(shared_memory_split(ours, long_passes))
        out.update(start_methods(ours, long_passes))
    out["goals"] = (
        ">= 100x with s2cloudless masks; >= 5x masks off; loader share >= 50%; whole samples >= 0.5 of the "
        "decode limit; 64 px windows >= 4x whole samples; 2 workers >= 1.8x one process"
    )
    return out
