"""Predict a split with a model or a baseline, score it with the paper's metrics, write it into the cube.

Each run lives in its own group ``runs/<name>`` of the cube store; the cube's own
variables are never touched. A run is written beside its final place and renamed
into it only when complete, so an interrupted run leaves nothing that looks
complete, and two runs never write to the same folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import torch
import xarray as xr
import zarr
from zarr.errors import ContainsGroupError
from tqdm.auto import tqdm

from cube.bands import S2_BANDS, S2_SCALE

from . import __version__
from .data import SEN12MSCRTS, SampleWindows, loader
from .metrics import evaluate_batch
from .models import LeastCloudy, Mosaic, load_checkpoint

BASELINES = {"least_cloudy": LeastCloudy, "mosaic": Mosaic}
RUNS = "runs"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model(checkpoint: str | None, baseline: str | None) -> tuple[torch.nn.Module, dict]:
    if (checkpoint is None) == (baseline is None):
        raise ValueError("give exactly one of a checkpoint or a baseline")
    if baseline is not None:
        if baseline not in BASELINES:
            raise ValueError(f"invalid baseline {baseline!r}: choose from {', '.join(BASELINES)}")
        return BASELINES[baseline](), {"baseline": baseline}
    model, content = load_checkpoint(checkpoint)
    return model, {"checkpoint": str(Path(checkpoint).resolve()), "checkpoint_sha256": _sha256(Path(checkpoint)),
                   "model_config": json.dumps(model.config), "train_config": content.get("train_config", "")}


def evaluate(cube: str | os.PathLike, run: str, *, checkpoint: str | None = None, baseline: str | None = None,
             split: str = "test", region: str = "all", cloud_masks: str = "s2cloudless_mask",
             n_input_samples: int | None = None, min_cov: float = 0.0, max_cov: float = 1.0,
             import_index: str | None = None, batch_size: int = 4, device: str = "auto",
             progress: bool = True) -> Path:
    """Predict every sample of a split and write predictions and per-sample metrics to ``runs/<run>``.

    Returns the run's path; open it with :func:`open_run`.

    Parameters
    ----------
    cube : path
        The cube (with its cloud pass).
    run : str
        Name of the run; an existing run of that name is replaced once this one is complete.
    checkpoint, baseline : str
        Our checkpoint (``crts train``), or ``least_cloudy`` / ``mosaic``.
    split, region, cloud_masks, min_cov, max_cov, import_index
        The samples, as for :class:`crts.data.SEN12MSCRTS` (``import_index``: a
        published ``.npy`` or our ``.json`` index file). With the default
        coverage window the least cloudy step (the target) can be among the
        inputs, as in the original; ``min_cov > 0`` keeps clear steps out.
    n_input_samples : int, optional
        Default: the checkpoint's, or 3.
    """
    if not run or "/" in run or run.startswith("."):
        raise ValueError(f"invalid run name {run!r}: a plain name such as 'resnet_a'")
    model, provenance = _model(checkpoint, baseline)
    n = n_input_samples or getattr(model, "config", {}).get("n_inputs", 3)
    samples = SEN12MSCRTS(cube, split=split, region=region, cloud_masks=cloud_masks, n_input_samples=n,
                          min_cov=min_cov, max_cov=max_cov, import_data_path=import_index)
    torch_device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                "cpu" if device == "auto" else device)
    model = model.to(torch_device).eval()
    size = samples._array("S2").shape[-1]
    staging = _staging(Path(cube), run)
    labels = {
        "S2_band": np.array(S2_BANDS, dtype=object),
        "roi_group": ("sample", np.array([lab["roi"].split("/")[0] for lab in samples.labels], dtype=object)),
        "roi": ("sample", np.array([int(lab["roi"].split("/")[1]) for lab in samples.labels], np.int32)),
        "patch_id": ("sample", np.array([lab["patch_id"] for lab in samples.labels], np.int32)),
        "target_time": ("sample", samples.index.target),
        "input_times": (("sample", "input"), samples.index.inputs),
        "input_coverage": (("sample", "input"), np.take_along_axis(samples.coverage, samples.index.inputs, axis=1)),
        "coverage_bin": ("sample", samples.index.coverage_bin)}
    template = xr.Dataset(
        {"prediction": (("sample", "S2_band", "y", "x"),
                        da.zeros((len(samples), len(S2_BANDS), size, size), dtype=np.uint16,
                                 chunks=(1, len(S2_BANDS), size, size)),
                        {"long_name": "predicted cloud-free S2 reflectance x 10000 (clipped to [0, 10000])"})},
        coords=labels)
    template.to_zarr(staging, zarr_format=3, consolidated=False, mode="w-", compute=False)
    stored = zarr.open_array(staging / "prediction", mode="r+")
    scores: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for batch in tqdm(loader(SampleWindows(samples), batch_size=batch_size), desc=f"evaluating {run}",
                          disable=not progress):
            inputs = batch["inputs"].to(torch_device) * 2 - 1
            masks = batch["input_masks"].to(torch_device)
            predicted = ((model(inputs, masks) + 1) / 2).clamp(0, 1)
            per_image = evaluate_batch(predicted, batch["target"].to(torch_device), masks.amax(1) > 0)
            pdx = batch["pdx"].numpy()
            stored.set_orthogonal_selection((pdx,), np.round(predicted.cpu().numpy() * S2_SCALE).astype(np.uint16))
            for name, values in per_image.items():
                scores.setdefault(name, np.full(len(samples), np.nan, np.float32))[pdx] = values.cpu().numpy()
    metrics = xr.Dataset(
        {name: ("sample", values, {"long_name": f"{name} of the prediction against the target, in [0, 1] scale"
                                                + (" (degrees)" if name == "sam" else "")})
         for name, values in scores.items()},
        attrs={**provenance, "run": run, "split": split, "region": region, "cloud_masks": cloud_masks,
               "n_input_samples": n, "min_cov": min_cov, "max_cov": max_cov,
               "index": str(Path(import_index).resolve()) if import_index else "computed",
               "index_sha256": _sha256(Path(import_index)) if import_index and Path(import_index).is_file() else "",
               "code_version": __version__, "created": f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}",
               "complete": True})
    metrics.to_zarr(staging, zarr_format=3, consolidated=False, mode="a")
    return _publish(staging, run)


def _staging(cube: Path, run: str) -> Path:
    """A fresh hidden folder beside the run's final place, unique to this process."""
    runs = cube / RUNS
    if not (runs / "zarr.json").exists():
        try:
            zarr.open_group(cube, mode="r+").require_group(RUNS)
        except (ContainsGroupError, KeyError, FileNotFoundError):  # another run created it at the same moment
            if not (runs / "zarr.json").exists():
                raise
    return runs / f".{run}.{uuid.uuid4().hex}.partial"


def _publish(staging: Path, run: str) -> Path:
    """Swap a completely written run into place by renames (never a half-written visible run)."""
    runs = staging.parent
    final = runs / run
    retired = runs / f".{run}.{uuid.uuid4().hex}.replaced"
    if final.exists():
        final.rename(retired)
    staging.rename(final)
    shutil.rmtree(retired, ignore_errors=True)
    return final


def list_runs(cube: str | os.PathLike) -> list[str]:
    """Names of the complete runs in a cube."""
    runs = Path(cube) / RUNS
    return sorted(p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")) if runs.exists() else []


def open_run(cube: str | os.PathLike, run: str) -> xr.Dataset:
    """A run's predictions and per-sample metrics as a Dataset (dims sample, S2_band, y, x, input).

    ``roi_group``, ``roi``, ``patch_id`` and ``target_time`` label each sample, so
    it lines up with the cube (:func:`side_by_side` does that for you).
    """
    path = Path(cube) / RUNS / run
    if not (path / "zarr.json").exists():
        raise FileNotFoundError(f"{cube}: no complete run {run!r} (runs: {', '.join(list_runs(cube)) or 'none'})")
    return xr.open_zarr(path, consolidated=False).set_coords(["input_times", "input_coverage"])


def side_by_side(cube_ds: xr.Dataset, run_ds: xr.Dataset) -> xr.Dataset:
    """A run's predictions beside their targets and inputs from the cube, all on the ``sample`` dimension.

    Parameters
    ----------
    cube_ds : xarray.Dataset
        The cube (:func:`cube.open_cube`).
    run_ds : xarray.Dataset
        One of its runs (:func:`open_run`), or a selection of its samples.

    Returns
    -------
    xarray.Dataset
        The run (``prediction``, per-sample metrics, labels) with ``target``
        (sample, S2_band, y, x) and ``inputs`` (sample, input, S2_band, y, x) from
        the cube as S2 reflectance x 10000, ``patch`` (position in ``cube_ds``)
        and the S2 dates of target and inputs. Lazy where the cube is (dask).

    Examples
    --------
    >>> both = side_by_side(open_cube("cube.zarr"), open_run("cube.zarr", "resnet_a"))  # doctest: +SKIP
    >>> (both.prediction.astype(float) - both.target).sel(S2_band="B4").isel(sample=0).plot()  # doctest: +SKIP
    """
    def keys(ds: xr.Dataset) -> pd.MultiIndex:
        return pd.MultiIndex.from_arrays([ds.roi_group.values.astype(object), ds.roi.values.astype(int),
                                          ds.patch_id.values.astype(int)])

    patch = keys(cube_ds).get_indexer(keys(run_ds))
    if (patch < 0).any():
        missing = keys(run_ds)[patch < 0][0]
        raise KeyError(f"patch {missing[2]} of {missing[0]}/{missing[1]} of the run is not in the cube")
    where = xr.DataArray(patch, dims="sample")
    target = xr.DataArray(run_ds.target_time.values, dims="sample")
    inputs = xr.DataArray(run_ds.input_times.values, dims=("sample", "input"))
    s2 = cube_ds.S2.reset_coords(drop=True).drop_vars("time")
    dates = cube_ds.S2_date.reset_coords(drop=True).drop_vars("time")
    both = run_ds.assign(target=s2.isel(patch=where, time=target), inputs=s2.isel(patch=where, time=inputs))
    return both.assign_coords(patch=where, target_date=dates.isel(patch=where, time=target),
                              input_dates=dates.isel(patch=where, time=inputs))
