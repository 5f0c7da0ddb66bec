"""Predict a split with a model or a baseline, score it with the paper's metrics, write it into the cube.

Runs are written and published by :mod:`cube.runs` (the cube's own variables are
never touched; an interrupted run leaves nothing visible; two runs never write
to the same objects).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import dask.array as da
import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from cube.bands import S2_BANDS, S2_SCALE
from cube.runs import RunWriter, check_run_name
from cube.store import as_store

from . import __version__
from .data import SEN12MSCRTS, SampleWindows, loader
from .metrics import evaluate_batch
from .models import LeastCloudy, Mosaic, load_checkpoint

BASELINES = {"least_cloudy": LeastCloudy, "mosaic": Mosaic}


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
             storage_options: dict | None = None, progress: bool = True) -> str:
    """Predict every sample of a split and write predictions and per-sample metrics as run ``run`` of the cube.

    Returns the published run's location; open it with :func:`cube.runs.open_run`.

    Parameters
    ----------
    cube : path, str or cube.store.CubeStore
        The cube (with its cloud pass): a path or URL.
    run : str
        Name of the run (letters, digits, ``_``, ``-``, ``.`` not first, at most 100
        characters); an existing run of that name is replaced once this one is complete.
    checkpoint, baseline : str
        Our checkpoint (``crts train``), or ``least_cloudy`` / ``mosaic``.
    split, region, cloud_masks, min_cov, max_cov, import_index
        The samples, as for :class:`crts.data.SEN12MSCRTS` (``import_index``: a
        published ``.npy`` or our ``.json`` index file). With the default
        coverage window the least cloudy step (the target) can be among the
        inputs, as in the original; ``min_cov > 0`` keeps clear steps out.
    n_input_samples : int, optional
        Default: the checkpoint's, or 3.
    storage_options : dict, optional
        Object-store options (see :func:`cube.open_cube`).
    """
    check_run_name(run)
    model, provenance = _model(checkpoint, baseline)
    n = n_input_samples or getattr(model, "config", {}).get("n_inputs", 3)
    store = as_store(cube, "r+", storage_options)
    samples = SEN12MSCRTS(store.reopened("r"), split=split, region=region, cloud_masks=cloud_masks,
                          n_input_samples=n, min_cov=min_cov, max_cov=max_cov, import_data_path=import_index)
    torch_device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                "cpu" if device == "auto" else device)
    model = model.to(torch_device).eval()
    size = samples.image_size
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
    writer = RunWriter(store, run, template)
    stored = writer.array("prediction")
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
               })
    return writer.publish(metrics)
