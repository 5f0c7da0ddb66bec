"""Predict a split with a model or a baseline, score it with the paper's metrics, write it into the cube.

Runs are written and published by :mod:`cube.store.runs` (the cube's own variables are
never touched; an interrupted run leaves nothing visible; two runs never write
to the same objects).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import dask.array as da
import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from cube.dataset.bands import S2_BANDS, S2_SCALE
from cube.store.runs import RunWriter, check_run_name
from cube.store.store import as_store

from . import __version__
from .blend import PatchBlender
from .data.batches import SampleWindows, loader
from .data.sen12mscrts import SEN12MSCRTS
from .devices import resolve_device
from .metric_definitions import CALIBRATION_BINS, METRIC_UNITS, REFLECTANCE
from .metrics import (
    calibration_bins,
    error_by_certainty,
    evaluate_batch,
    mean_error,
    mean_variance,
    uncertainty_calibration,
)
from .models.adapter import DEFAULT_INPUTS, Prediction, from_model_scale, to_model_scale
from .models.checkpoints import load_checkpoint, model_config
from .models.registry import kind_of, new_baseline


class TargetAmongInputsWarning(UserWarning):
    """Some samples of an evaluation have their target among their inputs: their scores say nothing."""


KEPT_PERCENT = 5
"""Step of the kept shares of the error-by-certainty curve, in percent."""
VARIANCE_DTYPE = np.float16
"""Stored type of the predicted variances (relative precision 2**-11 from 6.1e-5 up; see docs/schema.md)."""
DIMS = ("sample", "S2_band", "y", "x")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train_config(content: dict) -> dict:
    """A checkpoint's training settings (empty where it holds none, or text that is not a JSON object)."""
    try:
        trained = json.loads(content.get("train_config") or "{}")
    except (json.JSONDecodeError, TypeError):  # a checkpoint saved by hand may hold anything there
        trained = {}
    return trained if isinstance(trained, dict) else {}


def _baseline_predict(net: torch.nn.Module, config: dict, inputs: torch.Tensor, batch: dict) -> Prediction:
    """A baseline's prediction in [0, 1] (it works on the [-1, 1] scale, with the inputs' masks)."""
    masks = batch["input_masks"].to(inputs.device, non_blocking=True)
    return from_model_scale(net(to_model_scale(inputs), masks)), None


class _Predictor:
    """A model or baseline with how to call it, and its provenance attributes."""

    predict: Callable[[torch.nn.Module, dict, torch.Tensor, dict], Prediction]
    """How the model predicts: its kind's :meth:`crts.models.adapter.ModelAdapter.predict`, or a baseline's."""

    def __init__(self, checkpoint: str | None, baseline: str | None) -> None:
        if (checkpoint is None) == (baseline is None):
            raise ValueError("give exactly one of a checkpoint or a baseline")
        if baseline is not None:
            self.model, self.config, self.predict, self.uncertain = new_baseline(baseline), {}, _baseline_predict, False
            self.provenance, self.trained_inputs = {"baseline": baseline}, DEFAULT_INPUTS
            return
        assert checkpoint is not None  # exactly one of the two is given
        self.model, content = load_checkpoint(checkpoint)
        kind, self.config = kind_of(self.model), model_config(self.model)
        self.predict, self.uncertain = kind.predict, kind.uncertain(self.config)
        self.trained_inputs = kind.trained_inputs(self.config, _train_config(content))
        self.provenance = {
            "checkpoint": str(Path(checkpoint).resolve()),
            "model": content["model"],
            "checkpoint_sha256": _sha256(Path(checkpoint)),
            "model_config": json.dumps(self.config),
            "train_config": content.get("train_config", ""),
        }

    def __call__(self, batch: dict, device: torch.device) -> Prediction:
        """A batch's prediction in [0, 1], clipped there, and its variance (or None)."""
        mean, variance = self.predict(self.model, self.config, batch["inputs"].to(device), batch)
        return mean.clamp(0, 1), None if variance is None else variance.float()


def _labels(samples: SEN12MSCRTS) -> dict:
    """The run's coordinates: bands, and per sample its patch, target and input steps and their coverage."""
    index = samples.sample_index
    return {
        "S2_band": np.array(S2_BANDS, dtype=object),
        "roi_group": ("sample", np.array([lab.roi.group for lab in samples.labels], dtype=object)),
        "roi": ("sample", np.array([lab.roi.number for lab in samples.labels], np.int32)),
        "patch_id": ("sample", np.array([lab.patch_id for lab in samples.labels], np.int32)),
        "target_time": ("sample", index.target),
        "input_times": (("sample", "input"), index.inputs),
        "input_coverage": (("sample", "input"), np.take_along_axis(samples.coverage, index.inputs, axis=1)),
        "coverage_bin": ("sample", index.coverage_bin),
        "target_in_inputs": (
            "sample",
            index.target_in_inputs,
            {"long_name": "the target time step is also an input (its scores are trivial)"},
        ),
    }


def _template(samples: SEN12MSCRTS, uncertain: bool) -> xr.Dataset:
    """The run's images, lazily allocated: ``prediction``, and ``variance`` for models that predict it."""
    size = samples.image_size
    shape, chunks = (len(samples), len(S2_BANDS), size, size), (1, len(S2_BANDS), size, size)
    variables = {
        "prediction": (
            DIMS,
            da.zeros(shape, dtype=np.uint16, chunks=chunks),
            {"long_name": "predicted cloud-free S2 reflectance x 10000 (clipped to [0, 10000])"},
        )
    }
    if uncertain:
        variables["variance"] = (
            DIMS,
            da.zeros(shape, dtype=VARIANCE_DTYPE, chunks=chunks),
            {"long_name": "predicted variance of the reflectance (float16)", "units": f"({REFLECTANCE})^2"},
        )
    return xr.Dataset(variables, coords=_labels(samples))


def _predict_all(
    predictor: _Predictor,
    windows: SampleWindows,
    writer: RunWriter,
    device: torch.device,
    batch_size: int,
    progress: bool,
) -> dict[str, np.ndarray]:
    """Write every sample's prediction (and variance) into the run; returns the per-image scores (float32).

    The model predicts batches of windows; :class:`crts.blend.PatchBlender` puts
    each patch together, and whole patches are scored and written ``batch_size`` at a time.
    """
    blender, complete = PatchBlender(windows, device), []
    names = ("prediction", "variance") if predictor.uncertain else ("prediction",)
    stored = {name: writer.array(name) for name in names}  # opened once, not per batch
    scores: dict[str, np.ndarray] = {}
    batches = loader(windows, batch_size=batch_size, pin_memory=device.type == "cuda")
    bar = tqdm(total=len(windows.samples), desc=f"evaluating {writer.name}", unit="sample", disable=not progress)
    with torch.no_grad(), bar:
        for n, batch in enumerate(batches, 1):
            prediction, variance = predictor(batch, device)
            outputs = {"prediction": prediction} | ({} if variance is None else {"variance": variance})
            pasted = {k: batch[k].to(device, non_blocking=True) for k in ("target", "input_masks")}
            for j, (pdx, y0, x0) in enumerate(zip(*(batch[k].tolist() for k in ("pdx", "y0", "x0")), strict=True)):
                whole = blender.add(
                    pdx, y0, x0, {k: v[j] for k, v in outputs.items()}, {k: v[j] for k, v in pasted.items()}
                )
                complete += [] if whole is None else [(pdx, whole)]
            while len(complete) >= batch_size or (complete and n == len(batches)):
                _score_and_write(complete[:batch_size], stored, scores, len(windows.samples))
                bar.update(len(complete[:batch_size]))
                complete = complete[batch_size:]
    return scores


def _score_and_write(
    patches: list[tuple[int, dict]], stored: dict, scores: dict[str, np.ndarray], samples: int
) -> None:
    """Score whole patches with the paper's metrics and write their prediction (and variance) into the run's
    ``stored`` arrays."""
    pdx = np.array([p for p, _ in patches])
    prediction, target, masks = (
        torch.stack([whole[k] for _, whole in patches]) for k in ("prediction", "target", "input_masks")
    )
    per_image = evaluate_batch(prediction, target, masks.amax(1) > 0)
    stored["prediction"].set_orthogonal_selection(
        (pdx,), np.round(prediction.cpu().numpy() * S2_SCALE).astype(np.uint16)
    )
    if "variance" in stored:
        variance = torch.stack([whole["variance"] for _, whole in patches])
        largest = float(np.finfo(VARIANCE_DTYPE).max)
        stored["variance"].set_orthogonal_selection(
            (pdx,), variance.clamp(max=largest).cpu().numpy().astype(VARIANCE_DTYPE)
        )
        per_image |= {"mean_variance": mean_variance(variance), "mean_error": mean_error(prediction, target)}
    for name, values in per_image.items():
        scores.setdefault(name, np.full(samples, np.nan, np.float32))[pdx] = values.cpu().numpy()


def _describe(name: str) -> dict[str, str]:
    """Attributes of a per-sample score."""
    if name == "mean_variance":
        return {
            "long_name": "mean predicted variance of the image (13 bands, all pixels)",
            "units": f"({REFLECTANCE})^2",
        }
    if name == "mean_error":
        return {
            "long_name": "mean signed error target - prediction of the image, the error UCE and AUCE "
            "calibrate against (as UnCRtainTS)",
            "units": REFLECTANCE,
        }
    units, scale = METRIC_UNITS[name.split("_")[0]]
    return {"long_name": f"{name} of the prediction against the target{scale}", "units": units}


def uncertainty_summary(mean_var: np.ndarray, error: np.ndarray, rmse: np.ndarray) -> xr.Dataset:
    """A run's uncertainty scores from per-image mean variance, mean signed error and RMSE (as stored).

    Returns
    -------
    xarray.Dataset
        ``uce`` and ``auce`` (scalars, :func:`crts.metrics.uncertainty_calibration`
        over :data:`CALIBRATION_BINS` bins); per ``calibration_bin`` the images,
        ``calibration_rmse`` (RMS of the images' mean error) and ``calibration_std``
        (root mean predicted variance); ``rmse_by_kept_share``: the mean RMSE of the
        share ``kept_share`` (5 %, 10 %, ..., 100 %) of images with the lowest mean variance.
    """
    variance, signed = torch.from_numpy(mean_var), torch.from_numpy(error)
    uce, auce = uncertainty_calibration(variance, signed, CALIBRATION_BINS)
    counts, rms_error, rms_std = calibration_bins(variance, signed, CALIBRATION_BINS)
    kept = error_by_certainty(variance, torch.from_numpy(rmse), KEPT_PERCENT)
    per_bin = ("calibration_bin",)
    shares = np.arange(1, len(kept) + 1) * KEPT_PERCENT / 100
    return xr.Dataset(
        {
            "uce": (
                (),
                uce,
                {
                    "long_name": f"uncertainty calibration error over {CALIBRATION_BINS} bins of mean "
                    "predicted variance (weighted by images)",
                    "units": REFLECTANCE,
                },
            ),
            "auce": (
                (),
                auce,
                {"long_name": "unweighted mean calibration error of the non-empty bins", "units": REFLECTANCE},
            ),
            "calibration_images": (per_bin, counts.numpy().astype(np.int32), {"long_name": "images in the bin"}),
            "calibration_rmse": (
                per_bin,
                rms_error.numpy().astype(np.float32),
                {
                    "long_name": "root mean square of the images' mean error in the bin (NaN: empty)",
                    "units": REFLECTANCE,
                },
            ),
            "calibration_std": (
                per_bin,
                rms_std.numpy().astype(np.float32),
                {"long_name": "root mean predicted variance of the bin's images (NaN: empty)", "units": REFLECTANCE},
            ),
            "rmse_by_kept_share": (
                "kept_share",
                kept.numpy().astype(np.float32),
                {
                    "long_name": "mean RMSE of the kept images, the most certain (lowest mean variance) first",
                    "units": REFLECTANCE,
                },
            ),
        },
        coords={
            "calibration_bin": np.arange(CALIBRATION_BINS, dtype=np.int32),
            "kept_share": ("kept_share", shares, {"long_name": "share of the images kept", "units": "1"}),
        },
    )


def evaluate(
    cube: str | os.PathLike,
    run: str,
    *,
    checkpoint: str | None = None,
    baseline: str | None = None,
    split: str = "test",
    region: str = "all",
    cloud_masks: str = "s2cloudless_mask",
    n_input_samples: int | None = None,
    min_cov: float = 0.0,
    max_cov: float = 1.0,
    import_index: str | None = None,
    batch_size: int = 4,
    window: int | None = None,
    overlap: int = 0,
    device: str = "auto",
    storage_options: dict | None = None,
    progress: bool = True,
) -> str:
    """Predict every sample of a split and write predictions and per-sample metrics as run ``run`` of the cube.

    Returns the published run's location; open it with :func:`cube.store.runs.open_run`.
    Runs of UnCRtainTS also hold ``variance`` (sample, S2_band, y, x), the per-image
    ``mean_variance`` and ``mean_error``, and :func:`uncertainty_summary`.

    Parameters
    ----------
    cube : path, str or cube.store.store.CubeStore
        The cube (with its cloud pass): a path or URL.
    run : str
        Name of the run (letters, digits, ``_``, ``-``, ``.`` not first, at most 100
        characters); an existing run of that name is replaced once this one is complete.
    checkpoint, baseline : str
        Our checkpoint (``crts train``, 3D ResNet or UnCRtainTS), or ``least_cloudy`` / ``mosaic``.
    split, region, cloud_masks, min_cov, max_cov, import_index
        The samples, as for :class:`crts.data.SEN12MSCRTS` (``import_index``: a
        published ``.npy`` or our ``.json`` index file). With the default
        coverage window the least cloudy step (the target) can be among the
        inputs, as in the original; ``min_cov > 0`` keeps clear steps out.
    n_input_samples : int, optional
        Default: the checkpoint's (as trained), or 3.
    batch_size : int
        Windows per model call, and patches scored per batch.
    window, overlap : int, optional
        Predict ``window`` x ``window`` px windows overlapping by ``overlap`` px and
        blend them into whole patches (:mod:`crts.blend`): for models trained on
        crops, or a GPU that cannot hold whole patches. Default: whole patches.
    storage_options : dict, optional
        Object-store options (see :func:`cube.open_cube`).
    """
    check_run_name(run)
    if batch_size < 1:
        raise ValueError(f"invalid batch size {batch_size}: must be at least 1")
    torch_device = resolve_device(device)
    predictor = _Predictor(checkpoint, baseline)
    n = predictor.trained_inputs if n_input_samples is None else n_input_samples
    store = as_store(cube, "r+", storage_options)
    samples = SEN12MSCRTS(
        store.reopened("r"),
        split=split,
        region=region,
        cloud_masks=cloud_masks,
        n_input_samples=n,
        min_cov=min_cov,
        max_cov=max_cov,
        import_data_path=import_index,
    )
    windows = SampleWindows(
        samples, None if window is None else {"y": window, "x": window}, {"y": overlap, "x": overlap}
    )  # bad windows are refused before anything is written
    trivial = int(samples.sample_index.target_in_inputs.sum())
    if trivial:
        warnings.warn(
            f"{trivial} of {len(samples)} samples have their target among their inputs (min_cov "
            f"{min_cov}, as the original's sampling allows), so copying an input scores perfectly on them; "
            "keep clear steps out of the inputs with --min-cov 0.05, or use the published index files "
            "(--import-index)",
            TargetAmongInputsWarning,
            stacklevel=2,
        )
    writer = RunWriter(store, run, _template(samples, predictor.uncertain))
    predictor.model.to(torch_device).eval()
    scores = _predict_all(predictor, windows, writer, torch_device, batch_size, progress)
    metrics = xr.Dataset({name: ("sample", values, _describe(name)) for name, values in scores.items()})
    if predictor.uncertain:
        metrics = metrics.merge(uncertainty_summary(scores["mean_variance"], scores["mean_error"], scores["rmse"]))
    return writer.publish(
        metrics.assign_attrs(
            {
                **predictor.provenance,
                "run": run,
                "split": split,
                "region": region,
                "cloud_masks": cloud_masks,
                "n_input_samples": n,
                "min_cov": min_cov,
                "max_cov": max_cov,
                "samples_target_in_inputs": trivial,
                "window_px": window or samples.image_size,
                "overlap_px": overlap,
                "index": str(Path(import_index).resolve()) if import_index else "computed",
                "index_sha256": _sha256(Path(import_index)) if import_index and Path(import_index).is_file() else "",
                "code_version": __version__,
                "created": f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}",
            }
        )
    )
