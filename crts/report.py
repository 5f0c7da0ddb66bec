"""Reports of evaluation runs: metric tables (overall, by region, by coverage bin) and figures; for runs with
predicted variances (UnCRtainTS) also their calibration and the error of the most certain images."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.image import AxesImage

from cube.analysis.plots import CLOUD_COLOUR, READABLE, draw_clouds, finish, true_colour
from cube.clouds.detectors import NO_DATA
from cube.dataset.bands import S2_SCALE
from cube.dataset.rois import region_of
from cube.store.outputs import check_output_folder, writing
from cube.store.runs import list_runs, open_run, side_by_side
from cube.store.store import CubeStore, as_store
from cube.store.views import open_cube, patch_labels

from .metric_definitions import CALIBRATION_BINS, METRIC_UNITS

METRICS = ("rmse", "mae", "psnr", "sam", "ssim", "rmse_cloudy", "rmse_clear", "mae_cloudy", "mae_clear")
COVERAGE_BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 1.0)
Panel = tuple[str, np.ndarray, np.ndarray | None]
"""One image of an example figure: title, image (RGB or a 2D map), cloud mask to contour or None."""


def samples_table(cube: str | os.PathLike | CubeStore, runs: list[str] | None = None) -> pd.DataFrame:
    """One row per (run, sample): labels, region, the run's cloud detector (``detector``), the mean coverage
    of the inputs by that detector (``input_coverage``) and its bin, and every metric."""
    frames = []
    for run in runs or list_runs(cube):
        ds = open_run(cube, run)
        frame = pd.DataFrame({name: ds[name].values for name in METRICS if name in ds})
        frame.insert(0, "run", run)
        labels = patch_labels(ds)
        frame["roi"] = [str(label.roi) for label in labels]
        frame["patch_id"] = ds.patch_id.values
        frame["region"] = [region_of(label.roi) for label in labels]
        frame["detector"] = ds.attrs["cloud_masks"]
        frame["input_coverage"] = ds.input_coverage.values.mean(axis=1)
        frame["coverage_bin"] = pd.cut(frame.input_coverage, COVERAGE_BINS, include_lowest=True).astype(str)
        frames.append(frame)
    if not frames:
        raise FileNotFoundError(f"{cube}: no evaluation runs (crts evaluate writes them)")
    return pd.concat(frames, ignore_index=True)


def metric_tables(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Means of every metric by run: overall, by region, by input-coverage bin (with sample counts)."""
    metrics = [m for m in METRICS if m in table]
    out = {}
    finite = table.replace([np.inf], np.nan)
    for name, keys in (
        ("overall", ["run"]),
        ("by_region", ["region", "run"]),
        ("by_coverage", ["coverage_bin", "run"]),
    ):
        grouped = finite.groupby(keys)
        out[name] = grouped[metrics].mean().join(grouped.size().rename("samples"))
    return out


def _input_clouds(ds: xr.Dataset, one: xr.Dataset, detector: str) -> np.ndarray:
    """The detector's masks of one sample's inputs (input, y, x) as 0/1 (a map: in [0, 1]) to contour at 0.5;
    gaps count as clear."""
    times = xr.DataArray(one.input_times.values, dims="input")
    mask = ds[detector].isel(patch=int(one.patch), time=times).values
    if mask.dtype == np.uint8:
        return ((mask > 0) & (mask != NO_DATA)).astype(np.float32)
    return np.nan_to_num(mask.astype(np.float32))


def _panels(ds: xr.Dataset, shown: dict, runs: list[str], row: int, detector: str) -> list[Panel]:
    """Titled images of one example: true-colour inputs with their cloud masks and the target, then per run
    its prediction, its error map and, for runs with variance, its uncertainty map (2D maps in [0, 1]
    reflectance, without a mask)."""
    one = shown[runs[0]].isel(sample=row)
    target = one.target.values
    clouds = _input_clouds(ds, one, detector)
    images = [
        (f"input {str(d)[:10]}", true_colour(one.inputs.values[k]), clouds[k])
        for k, d in enumerate(one.input_dates.values)
    ]
    images.append((f"target {str(one.target_date.values)[:10]}", true_colour(target), None))
    for run in runs:
        prediction = shown[run].prediction.values[row]
        error = np.abs(prediction.astype(float) - np.clip(target, 0, S2_SCALE)).mean(0) / S2_SCALE
        images += [(run, true_colour(prediction), None), (f"|error|\n{run}", error, None)]
        if "variance" in shown[run]:
            variance = shown[run].variance.values[row].astype(np.float32)
            images.append((f"predicted std\n{run}", np.sqrt(variance.mean(0)), None))
    return images


def _draw_row(axes: np.ndarray, panels: list[Panel], vmax: float) -> AxesImage:
    """One example's panels into a row of axes; returns the last error or uncertainty map drawn."""
    for ax, (title, image, clouds) in zip(axes, panels, strict=True):
        if image.ndim == 2:
            shown = ax.imshow(image, cmap="magma", vmin=0, vmax=vmax)
        else:
            ax.imshow(image)
        if clouds is not None:
            draw_clouds(ax, clouds)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    return shown


def plot_samples(
    cube: str | os.PathLike | CubeStore, runs: list[str], samples: list[int], out: Path | None = None
) -> plt.Figure | Path:
    """Per chosen sample: RGB of the inputs with the run's cloud masks contoured, the target, each run's
    prediction, its error map and, for runs with variance (UnCRtainTS), its uncertainty map.

    Error and uncertainty maps share one colour scale and colour bar (0 to the 99th percentile of all
    their pixels). The inputs and masks are those of the first run (its ``cloud_masks`` detector).
    Returns the figure, or the path of the PNG written to ``out``.
    """
    ds = open_cube(cube, chunks=None)
    shown = {run: side_by_side(ds, open_run(cube, run).isel(sample=samples)) for run in runs}
    detector = shown[runs[0]].attrs["cloud_masks"]
    rows = [_panels(ds, shown, runs, row, detector) for row in range(len(samples))]
    maps = np.concatenate([image.ravel() for panels in rows for _, image, _ in panels if image.ndim == 2])
    vmax = max(float(np.percentile(maps, 99)), 1e-3)
    with plt.rc_context(READABLE):
        fig, axes = plt.subplots(
            len(samples),
            len(rows[0]),
            figsize=(2.3 * len(rows[0]) + 1.5, 2.7 * len(samples) + 1),
            squeeze=False,
            layout="constrained",
        )
        for row, (ax_row, panels) in enumerate(zip(axes, rows, strict=True)):
            error_map = _draw_row(ax_row, panels, vmax)
            one = shown[runs[0]].isel(sample=row)
            ax_row[0].set_ylabel(f"{one.roi_group.values}/{int(one.roi)}\npatch {int(one.patch_id)}")
        fig.colorbar(
            error_map,
            ax=axes,
            extend="max",
            shrink=0.9,
            label="|error| (mean of 13 bands), predicted std (RMS of 13 bands)\n[0, 1] reflectance",
        )
        fig.suptitle(
            f"True-colour inputs, target and predictions (B4, B3, B2; reflectance 0-0.3), S2 dates;\n"
            f"{CLOUD_COLOUR} contours: the inputs' clouds by {detector}"
        )
    return finish(fig, out, dpi=100)


def uncertainty_table(cube: str | os.PathLike | CubeStore, runs: list[str]) -> pd.DataFrame:
    """Per run with variance (UnCRtainTS): UCE, AUCE, mean predicted variance and the RMSE of the most
    certain half and of all images; empty when no run has variance."""
    rows = {}
    for run in runs:
        ds = open_run(cube, run)
        if "variance" in ds:
            kept = ds.rmse_by_kept_share
            rows[run] = {
                "uce": float(ds.uce),
                "auce": float(ds.auce),
                "mean_variance": float(ds.mean_variance.mean()),
                "rmse_most_certain_50%": float(kept.sel(kept_share=0.5, method="nearest")),
                "rmse_all": float(kept.isel(kept_share=-1)),
            }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("run")


def plot_uncertainty(
    cube: str | os.PathLike | CubeStore, runs: list[str], out: Path | None = None
) -> plt.Figure | Path:
    """Calibration diagram (RMS error against RMS predicted standard deviation per bin of mean predicted
    variance, with the diagonal of perfect calibration) and RMSE against the share of the most certain
    images kept, for the runs with variance. Returns the figure, or the path of the PNG written to ``out``."""
    with plt.rc_context(READABLE):
        fig, (calibration, kept) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
        largest = 0.0
        for run in runs:
            ds = open_run(cube, run)
            if "variance" not in ds:
                continue
            std, error = ds.calibration_std.values, ds.calibration_rmse.values
            calibration.scatter(
                std,
                error,
                s=12 + 60 * ds.calibration_images.values / ds.sizes["sample"],
                label=f"{run} (UCE {float(ds.uce):.4f})",
                alpha=0.8,
            )
            largest = max(largest, np.nanmax(std), np.nanmax(error))
            kept.plot(100 * ds.kept_share.values, ds.rmse_by_kept_share.values, marker="o", ms=3, label=run)
        calibration.plot([0, largest], [0, largest], "k--", lw=1, label="perfect calibration")
        calibration.set(
            xlabel="RMS predicted std per bin ([0, 1] reflectance)",
            ylabel="RMS of per-image mean error per bin\n([0, 1] reflectance)",
            title="Calibration (bins of mean predicted variance;\nmarker size: images in the bin)",
        )
        kept.set(
            xlabel="images kept, most certain first (%)",
            ylabel="mean RMSE of the kept images\n([0, 1] reflectance)",
            title="Error of the most certain images",
            xlim=(0, 100),
        )
        for ax in (calibration, kept):
            ax.legend()
            ax.grid(alpha=0.3)
    return finish(fig, out)


def _unit(metric: str) -> str:
    """A metric's unit for an axis label: the reflectance scale for RMSE and MAE, else the stored ``units``."""
    units, scale = METRIC_UNITS[metric.split("_")[0]]
    return scale.removeprefix(", ") if units == "1" and scale else units


def plot_metric_vs_coverage(table: pd.DataFrame, out: Path | None = None, metric: str = "rmse") -> plt.Figure | Path:
    """Per-sample metric against the mean cloud coverage of the inputs by the run's cloud detector (the
    ``detector`` column of :func:`samples_table`), one colour per run.

    Returns the figure, or the path of the PNG written to ``out``.
    """
    detectors = ", ".join(dict.fromkeys(table.detector))
    with plt.rc_context(READABLE):
        fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
        for (run, detector), rows in table.groupby(["run", "detector"]):
            ax.scatter(rows.input_coverage, rows[metric], label=f"{run} ({detector})", s=18, alpha=0.8)
        ax.set(
            xlabel=f"mean cloud coverage of the inputs by {detectors}\n(fraction of pixels)",
            ylabel=f"{metric.upper()} per sample ({_unit(metric)})",
            title=f"{metric.upper()} against the inputs' cloud coverage\n(cloud detector: {detectors})",
        )
        ax.legend(title="run (cloud detector)")
    return finish(fig, out)


REPORT_TITLE = "# Evaluation report: "
"""The first line of ``report.md`` (then the runs), by which an earlier report's folder is recognised."""


def markdown_table(frame: pd.DataFrame) -> str:
    """A table of the report (its index as the first columns) in Markdown, numbers to 4 decimals."""
    return frame.reset_index().to_markdown(index=False, floatfmt=".4f")


def _is_report(folder: Path) -> bool:
    """True for a folder holding a ``report.md`` that :func:`write_report` wrote."""
    try:
        return (folder / "report.md").read_text().startswith(REPORT_TITLE)
    except (OSError, UnicodeDecodeError):
        return False


def write_report(
    cube: str | os.PathLike | CubeStore,
    out: str | os.PathLike,
    runs: list[str] | None = None,
    n_examples: int = 3,
    storage_options: dict | None = None,
) -> Path:
    """Tables (``report.md`` and one CSV per table: ``overall.csv``, ``by_region.csv``, ...) and figures of the
    chosen runs (default: all) into ``out``; returns the path of ``report.md``.

    ``cube`` is a path or URL (``storage_options`` as for :func:`cube.open_cube`); ``out`` a local folder.

    Raises
    ------
    ValueError
        Before anything is written, for an ``out`` that holds other files than an earlier report
        (:func:`cube.store.outputs.check_output_folder`); :class:`cube.store.outputs.OutputRefused` (a ValueError)
        also for one inside a cube, or where the file system refuses to write (then naming the file).
    """
    cube = as_store(cube, storage_options=storage_options)
    out = Path(out)
    check_output_folder(out, _is_report, "an evaluation report")
    table = samples_table(cube, runs)  # (a cube without runs is refused here, before the folder is made)
    with writing(out, "the report cannot be written"):
        return _write_report(cube, out, table, n_examples)


def _write_report(cube: CubeStore, out: Path, table: pd.DataFrame, n_examples: int) -> Path:
    """The report's files of the runs of ``table`` (:func:`samples_table`) into ``out``: see :func:`write_report`."""
    out.mkdir(parents=True, exist_ok=True)
    chosen = list(dict.fromkeys(table.run))
    lines = [f"{REPORT_TITLE}{', '.join(chosen)}", ""]
    for name, frame in metric_tables(table).items():
        frame.to_csv(out / f"{name}.csv")
        lines += [f"## {name.replace('_', ' ')}", "", markdown_table(frame), ""]
    uncertainty = uncertainty_table(cube, chosen)
    if len(uncertainty):
        uncertainty.to_csv(out / "uncertainty.csv")
        lines += [
            "## uncertainty",
            "",
            f"UCE and AUCE over {CALIBRATION_BINS} bins of mean predicted variance; "
            "RMSE of the most certain images ([0, 1] reflectance).",
            "",
            markdown_table(uncertainty),
            "",
        ]
    table.to_csv(out / "samples.csv", index=False)
    examples = list(np.linspace(0, table.groupby("run").size().min() - 1, n_examples).astype(int))
    plot_samples(cube, chosen, sorted(set(examples)), out / "examples.png")
    plot_metric_vs_coverage(table, out / "rmse_vs_coverage.png")
    lines += ["## Figures", "", "![examples](examples.png)", "", "![RMSE vs coverage](rmse_vs_coverage.png)", ""]
    if len(uncertainty):
        plot_uncertainty(cube, list(uncertainty.index), out / "uncertainty.png")
        lines += ["![calibration and error of the most certain images](uncertainty.png)", ""]
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"
