"""One shot on a GPU and/or many-core machine: training steps, GPU busy share, GPU cloud pass, loader workers, archives.

``make bench-device`` runs it (``python -m benchmarks.bench_device``), sized by what it finds (CUDA or not, cores);
each row measures against its baseline in the same run:

- training steps (CUDA): the full-size 3D ResNet (F=256, B=16, T=3) and UnCRtainTS (published configuration) at
  256 px, batch 8 bf16 autocast against batch 1 fp32 (:func:`benchmarks.training.samples_per_s`);
- GPU busy share (CUDA): ``crts train`` of the full-size 3D ResNet (its default crop, batch 8, bf16) on a synthetic
  cube with the default DataLoader workers: nvidia-smi's ``utilization.gpu`` sampled every ``SMI_PERIOD_MS`` while it
  runs (start-up and validation included), and 1 - the data-wait share of its log (training steps only);
- cloud pass: the torch forest (:mod:`crts.clouds_gpu`) on CUDA against the compiled kernel
  (:mod:`cube.clouds.forest`, one core) on the same random S2 digital numbers: pixels/s, ratio, equality;
- DataLoader workers 1/2/4/8 (as many as the cores allow) against one process: whole-image samples/s from a
  synthetic cube through ``crts.data.loader``;
- archive groups at once: synthetic archives to a cube with every core a worker, one group at a time against all
  groups at once (``groups_at_once``), each conversion's start of its worker processes included.

Each row runs in a process of its own within its budget (:data:`ROW_BUDGET_S`, :data:`TOTAL_BUDGET_S` in all): a row
that cannot run here, overruns or fails says so in one line, and the others still run. ``--tiny`` runs every row at
a toy size, on the CPU where there is no CUDA, to check that it works (its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from benchmarks.bench_loader import loader_rate
from benchmarks.page import RESULTS, write_result
from benchmarks.training import data_wait, samples_per_s
from crts.clouds_gpu import TorchForestPredictor
from crts.data import SEN12MSCRTS, SampleWindows
from crts.models import ResNet3D, UnCRtainTS
from cube import convert
from cube.clouds.forest import fast_probability
from cube.ingest.archives import archive_group
from cube.synth import make_dataset
from cube.synth.archives import make_archived_dataset

NAME = "bench_device"
TOTAL_BUDGET_S = 470
"""The rows' limit together: 8 minutes less 10 s for the run's own start and clean-up, so that one 10-minute command
on a lent GPU machine holds the whole run with its install."""
ROW_BUDGET_S = {
    "training steps": 150,
    "GPU busy share": 110,
    "cloud pass": 45,
    "DataLoader workers": 75,
    "archive groups at once": 85,
}
"""Seconds each row may take, its synthetic data and its process's start included (sum: 465 s, within
TOTAL_BUDGET_S); a row still running then is stopped. Sized for one H100 and 16 cores from estimates, not yet
measurements: a batch-8 bf16 step of the full-size 3D ResNet at 256 px is about 2.4e14 floating-point operations (96
2D and a few 3D convolutions of 256 channels, forward and backward), about a second at a few hundred TFLOP/s, so
each model's warm-up and 5 timed steps per configuration take well under a minute; the busy share's cube (4 ROIs x
16 patches x 8 steps, about 1 GB of GeoTIFFs) is synthesised and converted by 16 processes in about half a minute
before 60 steps of training; the archives (4 ROIs x 6 patches x 8 steps) are written once and converted twice."""
TINY_BUDGET_S = 60
"""Seconds each row may take at ``--tiny`` size (about 5-15 s each on a loaded 2-core machine)."""
SMI_PERIOD_MS = 200
"""How often nvidia-smi samples the GPU's utilization while ``crts train`` runs."""
WORKER_COUNTS = (1, 2, 4, 8)
"""DataLoader workers measured against one process (those up to the CPU count)."""


@dataclass(frozen=True)
class Size:
    """How big each row's work is: the device's size or ``--tiny``."""

    px: int
    """Height and width of the training steps' samples, and of the synthetic images."""
    steps: int
    """Timed training steps per configuration (after one warm-up)."""
    train_steps: int
    """Steps of ``crts train`` for the busy share."""
    patches: int
    """Patches per ROI of the synthetic cube (enough for training steps between epochs' validation)."""
    archive_patches: int
    """Patches per ROI of the synthetic archives."""
    times: int
    """Time steps of the synthetic cube and archives."""
    loader_items: int
    """Samples per DataLoader pass."""
    cloud_images: int
    """S2 images of the cloud pass."""
    rois: tuple[str, ...] | None
    """ROIs of the synthetic cube and archives (None: cube.synth's default four, a train, a val and two test)."""
    tiny: bool


DEVICE_SIZE = Size(
    px=256,
    steps=5,
    train_steps=60,
    patches=16,
    archive_patches=6,
    times=8,
    loader_items=400,
    cloud_images=64,
    rois=None,
    tiny=False,
)
TINY_SIZE = Size(
    px=32,
    steps=1,
    train_steps=3,
    patches=2,
    archive_patches=2,
    times=4,
    loader_items=16,
    cloud_images=1,
    rois=("ROIs1868/56", "ROIs1868/17"),
    tiny=True,
)


def compute_device(size: Size) -> torch.device | None:
    """CUDA where torch sees it, else the CPU at ``--tiny`` size, else None (the GPU rows are skipped)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu") if size.tiny else None


def models(size: Size) -> dict[str, torch.nn.Module]:
    """The two models by name: full size, or small at ``--tiny`` size (the settings of ``make demo``)."""
    if size.tiny:
        return {
            "3D ResNet": ResNet3D(features=8, blocks=1),
            "UnCRtainTS": UnCRtainTS(encoder_widths=(16,), decoder_widths=(16,) * 5, n_head=4, d_model=32),
        }
    return {"3D ResNet (F=256, B=16, T=3)": ResNet3D(), "UnCRtainTS (published)": UnCRtainTS()}


def training_steps(size: Size, scratch: Path) -> dict:
    """Samples/s of batch 1 fp32 and batch 8 bf16 autocast training steps of both models, and their ratio."""
    device = compute_device(size)
    if device is None:
        return {"skipped": "no CUDA device"}
    out: dict = {"device": str(device), "patch px": size.px}
    for name, model in models(size).items():
        model = model.to(device)
        base = samples_per_s(model, 1, size.px, device, False, size.steps)
        out[f"{name}: batch 1 fp32 samples/s (baseline)"] = round(base, 3)
        try:
            amp = samples_per_s(model, 8, size.px, device, True, size.steps)
        except torch.cuda.OutOfMemoryError:
            out[f"{name}: batch 8 bf16"] = "out of GPU memory"
            continue
        finally:
            torch.cuda.empty_cache()  # the failed or finished step's blocks, before the next model
        out[f"{name}: batch 8 bf16 samples/s"] = round(amp, 3)
        out[f"{name}: ratio batch 8 bf16 / batch 1 fp32"] = round(amp / base, 2)
    return out


def synthetic_cube(size: Size, scratch: Path) -> Path:
    """A synthetic cube with its s2cloudless masks in ``scratch``, made once (whole, or not at all) for later rows."""
    cube = scratch / "cube.zarr"
    if not cube.exists():
        workers = 1 if size.tiny else cores()
        options = {"patches_per_roi": size.patches, "size": size.px, "times": size.times, "overwrite": True}
        root = make_dataset(scratch / "src", size.rois, workers=workers, progress=False, **options)
        shutil.rmtree(scratch / "cube.partial.zarr", ignore_errors=True)
        convert(root, scratch / "cube.partial.zarr", workers=workers, clouds=("s2cloudless_mask",), progress=False)
        (scratch / "cube.partial.zarr").rename(cube)
    return cube


def cores() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


def gpu_utilization(run: Callable[[], object]) -> tuple[float | None, object]:
    """Mean of nvidia-smi's ``utilization.gpu`` (%) sampled while ``run()`` runs (None without nvidia-smi), and what
    ``run()`` returned."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None, run()
    query = [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", f"-lms={SMI_PERIOD_MS}"]
    with subprocess.Popen(query, stdout=subprocess.PIPE, text=True) as sampler:
        try:
            result = run()
        finally:
            sampler.terminate()
            samples, _ = sampler.communicate()
    values = [float(line) for line in samples.split() if line.replace(".", "", 1).isdigit()]
    return (sum(values) / len(values) if values else None), result


def busy_share(size: Size, scratch: Path) -> dict:
    """The GPU's busy share while ``crts train`` trains from the cube with the default DataLoader workers."""
    device = compute_device(size)
    if device is None:
        return {"skipped": "no CUDA device"}
    cube = synthetic_cube(size, scratch)
    settings: dict = {"max_steps": size.train_steps, "crop": min(size.px, 128)}
    if size.tiny:
        settings |= {"features": 8, "blocks": 1}
    utilization, wait = gpu_utilization(
        lambda: data_wait(cube, scratch / "train", device.type, 8 if not size.tiny else 2, **settings)
    )
    return {
        "device": str(device),
        "model": "3D ResNet, " + ("F=8, B=1" if size.tiny else "F=256, B=16") + f", {settings['crop']} px crops",
        "steps": size.train_steps,
        "GPU busy share, nvidia-smi utilization.gpu mean": "no nvidia-smi"
        if utilization is None
        else f"{utilization:.0f}%",
        "GPU busy share, 1 - data-wait share of the training log": f"{1 - float(wait):.0%}",
    }


def cloud_pass(size: Size, scratch: Path) -> dict:
    """Pixels/s of the torch forest on CUDA against the compiled CPU kernel (one core), on the same images."""
    rng = np.random.default_rng(0)
    s2 = rng.integers(0, 10_000, (size.cloud_images, 13, size.px, size.px), dtype=np.uint16)
    pixels = s2.shape[0] * size.px * size.px
    kernel = fast_probability()
    kernel(s2[:1])  # warm-up (a kernel built at first use is built here)
    seconds, expected = timed(lambda: kernel(s2))
    out: dict = {"images": f"{s2.shape[0]} x 13 x {size.px} x {size.px}", "CPU kernel": repr(kernel)}
    out["CPU kernel (one core) pixels/s (baseline)"] = round(pixels / seconds)
    device = compute_device(size)
    if device is None:
        return out | {"torch forest": "skipped: no CUDA device"}
    forest = TorchForestPredictor(device)
    forest(s2[:1])
    gpu_seconds, got = timed(lambda: forest(s2))
    out[f"torch forest on {device} pixels/s"] = round(pixels / gpu_seconds)
    out[f"ratio torch forest on {device} / CPU kernel"] = round(seconds / gpu_seconds, 2)
    out["probabilities equal"] = bool(np.array_equal(got, expected))
    return out


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall seconds of ``fn()``, waiting for CUDA's queued work, and what it returned."""
    start = time.perf_counter()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def loader_workers(size: Size, scratch: Path) -> dict:
    """Whole-image samples/s through ``crts.data.loader`` with 1, 2, 4 and 8 workers against one process."""
    samples = SEN12MSCRTS(synthetic_cube(size, scratch))
    windows = SampleWindows(samples, {"y": size.px, "x": size.px})
    order = [i % len(windows) for i in range(size.loader_items)]
    counts = [n for n in WORKER_COUNTS if n <= cores()] if not size.tiny else [1, 2]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each worker (bench_loader: torch's thread pool slowed batching)
    try:
        base = loader_rate(windows, 0, order)
        rates = {n: loader_rate(windows, n, order) for n in counts}
    finally:
        torch.set_num_threads(threads)
    out: dict = {"samples": f"{len(windows)} whole {size.px} px samples, {len(order)} per pass, batches of 4"}
    out["1 process samples/s (baseline)"] = round(base, 1)
    for n, rate in rates.items():
        label = f"{n} worker{'s' if n > 1 else ''}"
        out[f"{label} samples/s"] = round(rate, 1)
        out[f"ratio {label} / 1 process"] = round(rate / base, 2)
    return out


def archive_groups(size: Size, scratch: Path) -> dict:
    """Synthetic archives to a cube with every core a worker: one group at a time against all groups at once."""
    workers = 1 if size.tiny else cores()
    archives = make_archived_dataset(
        scratch / "archives",
        patches_per_roi=size.patches,
        size=size.px,
        times=size.times,
        workers=workers,
        progress=False,
    )
    groups = len({archive_group(a.name) for a in archives})
    seconds = {}
    for at_once in sorted({1, groups}):
        seconds[at_once], _ = timed(
            lambda at_once=at_once: convert(
                scratch / "archives",
                scratch / f"archives-{at_once}.zarr",
                workers=workers,
                clouds=(),
                progress=False,
                times=size.times,
                groups_at_once=at_once,
            )
        )
    megabytes = sum(a.stat().st_size for a in archives) / 1e6
    out: dict = {"archives": f"{len(archives)} ({megabytes:.1f} MB) in {groups} groups", "workers": workers}
    out["1 group at a time s (baseline)"] = round(seconds[1], 2)
    out[f"{groups} groups at once s"] = round(seconds[groups], 2)
    out["ratio time all groups at once / one at a time"] = round(seconds[groups] / seconds[1], 2)
    return out


ROWS: dict[str, Callable[[Size, Path], dict]] = {
    "training steps": training_steps,
    "GPU busy share": busy_share,
    "cloud pass": cloud_pass,
    "DataLoader workers": loader_workers,
    "archive groups at once": archive_groups,
}
"""Each row's measurement, in the order they run (the busy share makes the cube the loader row reuses)."""


def run_row(name: str, size: Size, scratch: Path, budget_s: float) -> dict:
    """One row's measures, measured in a process of its own stopped (with its workers) after ``budget_s``.

    Returns
    -------
    dict
        The row's measures; ``{"skipped": why}`` where it cannot run here or overran its budget, ``{"failed":
        last line of its error}`` where it failed.
    """
    into = scratch / f"row-{list(ROWS).index(name)}.json"
    command = [sys.executable, "-m", "benchmarks.bench_device", "--row", name, "--scratch", str(scratch)]
    command += ["--into", str(into), *(["--tiny"] if size.tiny else [])]
    root = Path(__file__).resolve().parents[1]
    with subprocess.Popen(command, cwd=root, stderr=subprocess.PIPE, text=True, start_new_session=True) as child:
        try:
            _, errors = child.communicate(timeout=budget_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # its own session: the row's DataLoader and dask workers too
            child.communicate()
            return {"skipped": f"over its {budget_s:.0f} s budget, stopped"}
    if child.returncode or not into.exists():
        return {"failed": (errors.strip().splitlines() or [f"exit status {child.returncode}"])[-1]}
    return json.loads(into.read_text())


def run(tiny: bool = False) -> dict:
    """Every row within its budget, flattened as ``"row: measure"``; a row skipped or failed as ``"row": why``."""
    size = TINY_SIZE if tiny else DEVICE_SIZE
    out: dict = {"size": "tiny (a check that it works; numbers mean nothing)" if tiny else "device", "cores": cores()}
    deadline = time.monotonic() + TOTAL_BUDGET_S
    with tempfile.TemporaryDirectory(prefix="bench-device-") as scratch:
        for name in ROWS:
            budget = round(min(TINY_BUDGET_S if tiny else ROW_BUDGET_S[name], deadline - time.monotonic()))
            if budget <= 0:
                out[name] = f"skipped: the {TOTAL_BUDGET_S} s of all rows are spent"
                continue
            seconds, measures = timed(lambda name=name, budget=budget: run_row(name, size, Path(scratch), budget))
            if set(measures) & {"skipped", "failed"}:
                out[name] = " ".join(f"{key}: {value}" for key, value in measures.items())
            else:
                out |= {f"{name}: {key}": value for key, value in measures.items()}
            out[f"{name}: seconds (budget {budget} s)"] = round(seconds, 1)
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.bench_device [--tiny] [--results DIR]``: run, write the result file, print a table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_device", description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="every row at a toy size, to check that it works")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"folder of the result file (default {RESULTS})")
    parser.add_argument("--row", choices=list(ROWS), help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.row:  # one row, in the process run_row started
        args.into.write_text(json.dumps(ROWS[args.row](TINY_SIZE if args.tiny else DEVICE_SIZE, args.scratch)))
        return
    result = run(args.tiny)
    path = write_result(NAME, __doc__.strip().splitlines()[0], result, args.results)
    print(tabulate(result.items(), headers=["measure", "value"], tablefmt="github"))
    print(f"result written to {path}")


if __name__ == "__main__":
    main()
