"""Reports of evaluation runs: metric tables (overall, by region, by coverage bin) and figures; for runs with
predicted variances (UnCRtainTS) also their calibration and the error of the most certain images."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cube import open_cube
from cube.rois import Roi, region_of

from cube.runs import list_runs, open_run, side_by_side
from cube.store import CubeStore, as_store

METRICS = ("rmse", "mae", "psnr", "sam", "ssim", "rmse_cloudy", "rmse_clear", "mae_cloudy", "mae_clear")
COVERAGE_BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 1.0)


def samples_table(cube: str | os.PathLike | CubeStore, runs: list[str] | None = None) -> pd.DataFrame:
    """One row per (run, sample): labels, region, mean input coverage and its bin, and every metric."""
    frames = []
    for run in runs or list_runs(cube):
        ds = open_run(cube, run)
        frame = pd.DataFrame({name: ds[name].values for name in METRICS if name in ds})
        frame.insert(0, "run", run)
        frame["roi"] = [f"{g}/{r}" for g, r in zip(ds.roi_group.values, ds.roi.values, strict=True)]
        frame["patch_id"] = ds.patch_id.values
        frame["region"] = [region_of(Roi.parse(r)) for r in frame.roi]
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
    for name, keys in (("overall", ["run"]), ("by_region", ["region", "run"]),
                       ("by_coverage", ["coverage_bin", "run"])):
        grouped = finite.groupby(keys)
        out[name] = grouped[metrics].mean().join(grouped.size().rename("samples"))
    return out


def _rgb(s2: np.ndarray) -> np.ndarray:
    return np.clip(s2[[3, 2, 1]].transpose(1, 2, 0) / 3000.0, 0, 1)


def _panels(shown: dict, runs: list[str], row: int) -> list[tuple[str, np.ndarray]]:
    """Titled images of one example: true-colour inputs and target, then per run its prediction, its
    error map and, for runs with variance, its uncertainty map (2D maps in [0, 1] reflectance)."""
    one = shown[runs[0]].isel(sample=row)
    target = one.target.values
    images = [(f"input {str(d)[:10]}", _rgb(one.inputs.values[k])) for k, d in enumerate(one.input_dates.values)]
    images.append((f"target {str(one.target_date.values)[:10]}", _rgb(target)))
    for run in runs:
        prediction = shown[run].prediction.values[row]
        error = np.abs(prediction.astype(float) - np.clip(target, 0, 10000)).mean(0) / 10000
        images += [(run, _rgb(prediction)), (f"|error| {run}", error)]
        if "variance" in shown[run]:
            variance = shown[run].variance.values[row].astype(np.float32)
            images.append((f"predicted std {run}", np.sqrt(variance.mean(0))))
    return images


def plot_samples(cube: str | os.PathLike | CubeStore, runs: list[str], samples: list[int], out: Path) -> Path:
    """Per chosen sample: RGB of the inputs, the target, each run's prediction, its error map and, for
    runs with variance (UnCRtainTS), its uncertainty map, on the error map's colour scale."""
    ds = open_cube(cube, chunks=None)
    shown = {run: side_by_side(ds, open_run(cube, run).isel(sample=samples)) for run in runs}
    cols = len(_panels(shown, runs, 0))
    fig, axes = plt.subplots(len(samples), cols, figsize=(2.1 * cols, 2.3 * len(samples)), squeeze=False)
    for row in range(len(samples)):
        for k, (title, image) in enumerate(_panels(shown, runs, row)):
            ax = axes[row, k]
            if image.ndim == 2:
                label = "std, RMS of 13 bands\n[0, 1] reflectance" if title.startswith("predicted std") else \
                    "MAE of 13 bands\n[0, 1] reflectance"
                fig.colorbar(ax.imshow(image, cmap="magma", vmin=0, vmax=0.2), ax=ax, fraction=0.046, label=label)
            else:
                ax.imshow(image)
            ax.set_title(title, fontsize=8)
        one = shown[runs[0]].isel(sample=row)
        axes[row, 0].set_ylabel(f"{one.roi_group.values}/{int(one.roi)}\npatch {int(one.patch_id)}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("True-colour inputs, target and predictions (B4, B3, B2; reflectance 0-0.3), S2 dates")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def uncertainty_table(cube: str | os.PathLike, runs: list[str]) -> pd.DataFrame:
    """Per run with variance (UnCRtainTS): UCE, AUCE, mean predicted variance and the RMSE of the most
    certain half and of all images; empty when no run has variance."""
    rows = {}
    for run in runs:
        ds = open_run(cube, run)
        if "variance" in ds:
            kept = ds.rmse_by_kept_share
            rows[run] = {"uce": float(ds.uce), "auce": float(ds.auce), "mean_variance": float(ds.mean_variance.mean()),
                         "rmse_most_certain_50%": float(kept.sel(kept_share=0.5, method="nearest")),
                         "rmse_all": float(kept.isel(kept_share=-1))}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("run")


def plot_uncertainty(cube: str | os.PathLike, runs: list[str], out: Path) -> Path:
    """Calibration diagram (RMS error against RMS predicted standard deviation per bin of mean predicted
    variance, with the diagonal of perfect calibration) and RMSE against the share of the most certain
    images kept, for the runs with variance."""
    fig, (calibration, kept) = plt.subplots(1, 2, figsize=(11, 4.4))
    largest = 0.0
    for run in runs:
        ds = open_run(cube, run)
        if "variance" not in ds:
            continue
        std, error = ds.calibration_std.values, ds.calibration_rmse.values
        calibration.scatter(std, error, s=12 + 60 * ds.calibration_images.values / ds.sizes["sample"],
                            label=f"{run} (UCE {float(ds.uce):.4f})", alpha=0.8)
        largest = max(largest, np.nanmax(std), np.nanmax(error))
        kept.plot(100 * ds.kept_share.values, ds.rmse_by_kept_share.values, marker="o", ms=3, label=run)
    calibration.plot([0, largest], [0, largest], "k--", lw=1, label="perfect calibration")
    calibration.set(xlabel="RMS predicted standard deviation per bin ([0, 1] reflectance)",
                    ylabel="RMS of per-image mean error per bin ([0, 1] reflectance)",
                    title="Calibration (bins of mean predicted variance;\nmarker size: images in the bin)")
    kept.set(xlabel="images kept, most certain first (%)", ylabel="mean RMSE of the kept images ([0, 1] reflectance)",
             title="Error of the most certain images", xlim=(0, 100))
    for ax in (calibration, kept):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_metric_vs_coverage(table: pd.DataFrame, out: Path, metric: str = "rmse") -> Path:
    """Per-sample metric against the mean cloud coverage of the inputs, one colour per run."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for run, rows in table.groupby("run"):
        ax.scatter(rows.input_coverage, rows[metric], label=run, s=14, alpha=0.8)
    ax.set(xlabel="mean cloud coverage of the inputs", ylabel=f"{metric.upper()} (per sample, [0, 1] scale)",
           title=f"{metric.upper()} against input cloud coverage")
    ax.legend(title="run")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_report(cube: str | os.PathLike | CubeStore, out: str | os.PathLike, runs: list[str] | None = None,
                 n_examples: int = 3, storage_options: dict | None = None) -> Path:
    """Tables (``report.md`` and one CSV per table) and figures of the chosen runs (default: all) into ``out``.

    ``cube`` is a path or URL (``storage_options`` as for :func:`cube.open_cube`); ``out`` a local folder.
    """
    cube = as_store(cube, storage_options=storage_options)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = samples_table(cube, runs)
    chosen = list(dict.fromkeys(table.run))
    lines = [f"# Evaluation report: {', '.join(chosen)}", ""]
    for name, frame in metric_tables(table).items():
        frame.to_csv(out / f"{name}.csv")
        lines += [f"## {name.replace('_', ' ')}", "", frame.reset_index().to_markdown(index=False, floatfmt=".4f"), ""]
    uncertainty = uncertainty_table(cube, chosen)
    if len(uncertainty):
        uncertainty.to_csv(out / "uncertainty.csv")
        lines += ["## uncertainty", "", "UCE and AUCE over 20 bins of mean predicted variance; RMSE of the most "
                  "certain images ([0, 1] reflectance).", "",
                  uncertainty.reset_index().to_markdown(index=False, floatfmt=".4f"), ""]
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
