"""Windows against whole images: loader samples/s by inner-chunk tile, the raw read ceiling, training's data wait.

Same run, same samples (a train and a val ROI x 2 patches x 30 steps, 256 px, s2cloudless masks):
- the cube converted three times, with 256 px (one chunk per image), 128 px and
  64 px inner chunks; on each, SampleWindows' samples/s for whole images and for
  random 128 px and 64 px windows (3 inputs + target: S2, S1 and masks);
- on the tile for training crops (cube.store.schema.WINDOW_TILE_PX): the raw ceiling, the same window
  reads with zarr (CubeStore.read, no scaling, no tensors), and the loader's share of it;
- a short CPU training run (3D ResNet, 16 features, 64 px crops, batch 4, no
  workers) on a cube of 16 train patches (6 time steps each): the share of its time
  spent waiting for data, from its log (weighted by time, validation excluded);
- on CUDA only: the full-size 3D ResNet's GPU busy share (1 - data wait) with
  WORKERS DataLoader workers, 128 px crops, batch 8, bf16 autocast.
Goals (issue 17): 64 px window >= 4x the whole-image rate and >= 50% of the raw
ceiling; GPU busy share >= 90%.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from benchmarks.training import data_wait
from crts.data import SEN12MSCRTS, SampleWindows
from cube import convert
from cube.store.schema import WINDOW_TILE_PX
from cube.synth import make_dataset

TILES = (256, 128, 64)
WINDOWS = (256, 128, 64)
EPOCHS = 5
WORKERS = 6


def _window_reads(windows: SampleWindows) -> list[list[tuple]]:
    """Per item, the raw reads SampleWindows makes: every step's S2, S1 and mask window."""
    samples, h = windows.samples, windows.input_dims["y"]
    reads = []
    for i in range(len(windows)):
        pdx, y0, x0 = windows.position(i)
        p, area = int(samples.positions[pdx]), (slice(y0, y0 + h), slice(x0, x0 + h))
        steps = [*map(int, samples.index.inputs[pdx]), int(samples.index.target[pdx])]
        reads.append(
            [(name, (p, t, slice(None), *area)) for name in ("S2", "S1") for t in steps]
            + [(samples.cloud_masks, (p, t, *area)) for t in steps]
        )
    return reads


def _rates(samples: SEN12MSCRTS, window: int, raw: bool = False) -> float:
    """Best of 3 passes of EPOCHS epochs of random windows (or their raw reads): items/s."""
    windows = SampleWindows(samples, {"y": window, "x": window}, placement="random")
    best = float("inf")
    for _ in range(3):
        plans = []
        for epoch in range(EPOCHS):
            windows.set_epoch(epoch)
            plans.append(_window_reads(windows) if raw else range(len(windows)))
        start = time.perf_counter()
        for epoch, plan in enumerate(plans):
            windows.set_epoch(epoch)
            for item in plan:
                samples.store.read(item) if raw else windows[item]
        best = min(best, time.perf_counter() - start)
    return EPOCHS * len(windows) / best


def _training_cube(tmp: Path) -> Path:
    """16 patches of a train ROI and of a val ROI, 6 time steps: epochs of several steps."""
    root = make_dataset(
        tmp / "train_src", ["ROIs1868/56", "ROIs1868/17"], patches_per_roi=16, times=6, workers=2, progress=False
    )
    convert(root, tmp / "train.zarr", workers=1, clouds=("s2cloudless_mask",), tile=WINDOW_TILE_PX, progress=False)
    return tmp / "train.zarr"


def _training(tmp: Path) -> dict:
    cube, out = _training_cube(tmp), {}
    wait = data_wait(cube, tmp / "cpu", "cpu", 4, features=16, blocks=2, crop=64, max_steps=30)
    out["CPU training (16 features, 64 px, batch 4, no workers): data-wait share"] = f"{wait:.0%}"
    if torch.cuda.is_available():
        wait = data_wait(cube, tmp / "gpu", "cuda", 8, crop=128, num_workers=WORKERS, max_steps=60)
        out[f"CUDA full-size 3D ResNet, 128 px, batch 8, {WORKERS} workers: GPU busy share"] = f"{1 - wait:.0%}"
    return out


def run() -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset(
            Path(tmp) / "src", ["ROIs1868/56", "ROIs1868/17"], patches_per_roi=2, workers=2, progress=False
        )
        for tile in TILES:
            cube = Path(tmp) / f"cube{tile}.zarr"
            convert(root, cube, workers=1, clouds=("s2cloudless_mask",), tile=tile, progress=False)
            samples = SEN12MSCRTS(cube)
            rates = {window: _rates(samples, window) for window in WINDOWS}
            for window, rate in rates.items():
                out[f"tile {tile} px: {window} px windows, samples/s"] = round(rate, 1)
            out[f"tile {tile} px: 64 px window / whole image"] = round(rates[64] / rates[256], 2)
            if tile == WINDOW_TILE_PX:
                raw = _rates(samples, 64, raw=True)
                out[f"tile {tile} px: raw reads of the 64 px windows, samples/s"] = round(raw, 1)
                out[f"tile {tile} px: loader share of the raw 64 px rate"] = f"{rates[64] / raw:.0%}"
        out |= _training(Path(tmp))
    out["goals"] = "64 px window >= 4x whole image and >= 50% of the raw rate; GPU busy share >= 90%"
    return out
