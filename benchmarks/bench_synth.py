"""Synthesising the default data set, against only writing the same GeoTIFFs.

Baseline: writing the same number of S1 and S2 GeoTIFFs of the same size,
dtype and georeference from ready-made arrays with rasterio (the I/O floor).
Goal (issue 2): the default set in well under a minute on 2 cores.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

from cube.dataset.layout import scan_ts
from cube.synth import make_dataset

WORKERS = 2


def _write_only(files: list, out: Path) -> None:
    s1 = np.random.default_rng(0).normal(-12, 4, (2, 256, 256)).astype(np.float32)
    s2 = np.random.default_rng(0).integers(0, 10000, (13, 256, 256)).astype(np.uint16)
    for i, f in enumerate(files):
        data = s1 if f.modality == "S1" else s2
        with rasterio.open(
            out / f"{i}.tif",
            "w",
            driver="GTiff",
            width=256,
            height=256,
            count=data.shape[0],
            dtype=data.dtype,
            crs=CRS.from_epsg(32632),
            transform=Affine(10, 0, 500000, 0, -10, 5000000),
        ) as dst:
            dst.write(data)


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = make_dataset(Path(tmp) / "synthetic", workers=WORKERS, progress=False)
        synth_s = time.perf_counter() - start
        files, _ = scan_ts(root)
        (Path(tmp) / "plain").mkdir()
        start = time.perf_counter()
        _write_only(files, Path(tmp) / "plain")
        write_s = time.perf_counter() - start
    return {
        "files": len(files),
        "synthesis_s": round(synth_s, 2),
        "write_only_s": round(write_s, 2),
        "ratio_synthesis_vs_write_only": round(synth_s / write_s, 2),
        "workers": WORKERS,
        "goal": "synthesis_s well under 60 s on 2 cores",
    }
