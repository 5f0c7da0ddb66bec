"""Sharded image reads: zarr's own (byte ranges coalesced within a shard on zarr >= 3.3) against cube/store/chunks.py.

The direct reader (cube/store/chunks.py, behind CubeStore.read) serves the loaders' reads of the images:
SEN12MSCRTS reads 4 time steps of S2, S1 and a cloud mask per sample, whole or as a 64 px window (random
offsets, as SampleWindows draws them), and SEN12MSCR a patch's whole record ``(p,)``, here all 30 steps of S2
and S1 (one whole shard each). Every access pattern is read both ways in the same run: CubeStore.read of each
sample's requests, and the same selections through zarr's public API (``zarr.AsyncArray.getitem``, one sample's
selections gathered concurrently, as CubeStore.read reads every selection it leaves to zarr); the results are
checked equal. Cubes: 2 ROIs x 2 patches x 30 steps of 256 px, converted with one inner chunk per image (the
default tile) and with 64 px tiles (``crts convert --tile 64``) on the local disk, and the 64 px one again in a
bucket (moto on 127.0.0.1 behind a proxy that holds every request 20 ms). Each time is the best of several
passes over the 4 samples; the ratio is zarr's time over the direct reader's (above 1: the direct reader is
faster). The result names the Python and zarr that ran it (``make bench`` runs this with Python 3.13 where
there is one).
Goal (issue 34): keep the direct reader only where it is clearly faster (ratio above 1.1).
"""

from __future__ import annotations

import asyncio
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr
import zarr.api.asynchronous

from cube import convert
from cube.store.backends import sync
from cube.store.schema import WINDOW_TILE_PX
from cube.store.store import CubeStore
from cube.synth import make_dataset
from tests.servers import S3Proxy, create_bucket, s3_server

MASK = "cloud_cloudshadow_mask"
"""The cloud mask the samples read (the cheapest detector to compute: the data are what counts here)."""
STEPS = 4
"""Time steps per sample: 3 inputs and the target, as SEN12MSCRTS reads by default."""
WINDOW_PX = 64
DELAY_S = 0.02
"""The proxy's hold on every bucket request: a bucket in a nearby region."""
LOCAL_PASSES, BUCKET_PASSES = 5, 3
"""Passes over the samples per timing (the best one counts): fewer in the bucket, where one pass takes longer."""

Request = tuple[str, tuple]


def patterns(store: CubeStore, seed: int = 0) -> dict[str, list[list[Request]]]:
    """Per access pattern, one list of requests per sample (each patch of the cube once)."""
    patches, times, size = store.array("S2").shape[0], store.array("S2").shape[1], store.array("S2").shape[-1]
    rng = np.random.default_rng(seed)
    steps = [sorted(int(t) for t in rng.choice(times, STEPS, replace=False)) for _ in range(patches)]
    corners = rng.integers(0, size - WINDOW_PX + 1, (patches, 2))
    whole, window, series = [], [], []
    for p in range(patches):
        rows, cols = (slice(int(c), int(c) + WINDOW_PX) for c in corners[p])
        whole.append([(name, (p, t)) for name in ("S2", "S1", MASK) for t in steps[p]])
        window.append(
            [(name, (p, t, slice(None), rows, cols)) for name in ("S2", "S1") for t in steps[p]]
            + [(MASK, (p, t, rows, cols)) for t in steps[p]]
        )
        series.append([(name, (p,)) for name in ("S2", "S1")])
    return {
        f"{STEPS} steps, whole images": whole,
        f"{STEPS} steps, {WINDOW_PX} px windows": window,
        "all 30 steps (p,)": series,
    }


def zarr_reader(store: CubeStore) -> Callable[[list[Request]], list[np.ndarray]]:
    """Reads one sample's requests with zarr's public API: every selection's ``getitem``, gathered."""
    arrays = {
        name: sync(zarr.api.asynchronous.open_array(store=store.store, path=name, mode="r", zarr_format=3))
        for name in ("S2", "S1", MASK)
    }

    async def gather(requests: list[Request]) -> list[np.ndarray]:
        return await asyncio.gather(*(arrays[name].getitem(selection) for name, selection in requests))

    return lambda requests: sync(gather(requests))


def best_seconds(read: Callable[[list[Request]], list[np.ndarray]], samples: list[list[Request]], passes: int) -> float:
    """The fastest of ``passes`` passes reading every sample once, in seconds."""
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        for requests in samples:
            read(requests)
        times.append(time.perf_counter() - start)
    return min(times)


def compare(store: CubeStore, passes: int) -> dict:
    """Per access pattern: ms per sample both ways and zarr's time over the direct reader's, results checked."""
    by_zarr, out = zarr_reader(store), {}
    for label, samples in patterns(store).items():
        for requests in samples:
            for mine, theirs in zip(store.read(requests), by_zarr(requests), strict=True):
                assert np.array_equal(mine, theirs, equal_nan=True), label
        direct = best_seconds(store.read, samples, passes)
        plain = best_seconds(by_zarr, samples, passes)
        out[label] = {
            "direct ms/sample": round(1000 * direct / len(samples), 2),
            "zarr ms/sample": round(1000 * plain / len(samples), 2),
            "zarr / direct": round(plain / direct, 2),
        }
    return out


def run() -> dict:
    out: dict = {"Python": platform.python_version(), "zarr": zarr.__version__}
    with tempfile.TemporaryDirectory() as tmp, s3_server() as endpoint:
        root = make_dataset(
            Path(tmp) / "src", ["ROIs1868/17", "ROIs2017/63"], patches_per_roi=2, workers=2, progress=False
        )
        cubes = {"256 px tiles, local disk": (Path(tmp) / "c256.zarr", None)}
        cubes[f"{WINDOW_TILE_PX} px tiles, local disk"] = (Path(tmp) / "c64.zarr", WINDOW_TILE_PX)
        bucket = f"{create_bucket('bench-shards')}/cube.zarr"
        cubes[f"{WINDOW_TILE_PX} px tiles, bucket ({1000 * DELAY_S:.0f} ms per request)"] = (bucket, WINDOW_TILE_PX)
        proxy = S3Proxy(endpoint, delay=DELAY_S)
        try:
            for label, (where, tile) in cubes.items():
                convert(root, where, workers=1, clouds=(MASK,), progress=False, **({"tile": tile} if tile else {}))
                remote = isinstance(where, str)
                store = CubeStore(where, storage_options={"endpoint": proxy.url} if remote else None)
                for pattern, numbers in compare(store, BUCKET_PASSES if remote else LOCAL_PASSES).items():
                    out[f"{label}: {pattern}"] = numbers
        finally:
            proxy.close()
    out["goal"] = "keep the direct reader only where zarr / direct is above 1.1 (clearly faster)"
    return out
