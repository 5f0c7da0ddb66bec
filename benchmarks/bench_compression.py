"""Codecs for the image variables: size and speed on synthetic S1 and S2, against no compression.

Writes all 30 steps of 4 patches per modality into a sharded array (inner chunk =
one image, shard = one patch, as in the cube) with each codec, then reads single
images back. Synthetic data compresses differently from real data: re-run this on
a sample of the real data set before changing the default.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from cube.dataset.layout import scan_ts
from cube.synth import make_dataset

CODECS = {
    "none": None,
    "blosc-lz4-shuffle": lambda size: BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=size),
    "blosc-lz4-bitshuffle": lambda size: BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=size),
    "blosc-zstd1-bitshuffle": lambda size: BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle", typesize=size),
    "blosc-zstd3-bitshuffle": lambda size: BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle", typesize=size),
    "blosc-zstd3-shuffle": lambda size: BloscCodec(cname="zstd", clevel=3, shuffle="shuffle", typesize=size),
    "zstd3": lambda size: ZstdCodec(level=3),
}


def _measure(data: np.ndarray, codec: Callable[[int], object] | None, path: Path) -> tuple[float, int, float]:
    compressors = () if codec is None else (codec(data.dtype.itemsize),)
    array = zarr.create_array(
        path,
        shape=data.shape,
        dtype=data.dtype,
        chunks=(1, 1, *data.shape[2:]),
        shards=(1, *data.shape[1:]),
        compressors=compressors,
        zarr_format=3,
    )
    start = time.perf_counter()
    for p in range(data.shape[0]):
        array[p] = data[p]
    write = time.perf_counter() - start
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    start = time.perf_counter()
    for p in range(data.shape[0]):
        for t in range(0, data.shape[1], 3):
            array[p, t]
    read = (time.perf_counter() - start) / (data.shape[0] * len(range(0, data.shape[1], 3)))
    return write, size, read


def run() -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(Path(tmp) / "src", ["ROIs1868/17", "ROIs1970/21"], workers=2, progress=False)
        files = scan_ts(root)[0]
        for modality in ("S1", "S2"):
            paths = sorted((f for f in files if f.modality == modality), key=lambda f: (f.roi, f.pid, f.t))
            data = np.stack([rasterio.open(f.path).read() for f in paths]).reshape(4, 30, -1, 256, 256)
            _, base_size, base_read = _measure(data, None, Path(tmp) / f"{modality}_baseline")
            for name, codec in CODECS.items():
                write, size, read = _measure(data, codec, Path(tmp) / f"{modality}_{name}")
                out[f"{modality} {name}"] = (
                    f"size {size / base_size:.3f}x, write {data.nbytes / write / 1e6:.0f} "
                    f"MB/s, read one image {read * 1e3:.2f} ms "
                    f"({read / base_read:.2f}x uncompressed)"
                )
    return out
