"""Evaluation runs in the cube: exact predictions and variances, seamless blending of windows, provenance, safe
publishing, reports."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.contour import ContourSet

import crts.evaluate
from crts.data import SEN12MSCRTS, SampleWindows
from crts.evaluate import evaluate
from crts.metrics import uncertainty_calibration
from crts.models import LeastCloudy, ResNet3D, UnCRtainTS, save_checkpoint
from crts.models.uncrtaints import input_dates
from crts.report import plot_metric_vs_coverage, plot_samples, samples_table, write_report
from cube import open_cube
from cube.store.runs import list_runs, open_run, side_by_side
from tests.figures import smallest_font


@pytest.fixture
def cube_copy(sampling_cube: Path, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "cube.zarr"
    shutil.copytree(sampling_cube, dst)
    return dst


def test_written_predictions_equal_the_models_output(cube_copy: Path) -> None:
    evaluate(cube_copy, "least", baseline="least_cloudy", split="test", progress=False)
    run = open_run(cube_copy, "least")
    windows = SampleWindows(SEN12MSCRTS(cube_copy, split="test"))
    for i in (0, len(windows) - 1):
        item = windows[i]
        out = (LeastCloudy()(item["inputs"][None] * 2 - 1, item["input_masks"][None]) + 1) / 2
        expected = np.round(out.clamp(0, 1)[0].numpy() * 10000).astype(np.uint16)
        np.testing.assert_array_equal(run.prediction.values[item["pdx"]], expected)
        assert (run.roi_group.values[item["pdx"]], run.roi.values[item["pdx"]], run.patch_id.values[item["pdx"]]) == (
            item["roi_group"],
            item["roi"],
            item["patch_id"],
        )
    assert run.sizes["sample"] == 6 and float(run.rmse.mean()) >= 0
    units = {name: run[name].attrs["units"] for name in ("rmse", "mae", "psnr", "sam", "ssim", "rmse_cloudy")}
    assert units == {"rmse": "1", "mae": "1", "psnr": "dB", "sam": "degree", "ssim": "1", "rmse_cloudy": "1"}
    ds = open_cube(cube_copy)  # the cube's own variables are untouched and it still opens
    assert "prediction" not in ds and ds.sizes["patch"] == 15


def test_side_by_side_lines_predictions_up_with_the_cube(cube_copy: Path) -> None:
    evaluate(cube_copy, "least", baseline="least_cloudy", split="test", progress=False)
    ds, run = open_cube(cube_copy), open_run(cube_copy, "least")
    both = side_by_side(ds, run.isel(sample=[2, 0]))
    for row, s in enumerate((2, 0)):
        p = int(both.patch[row])
        assert (ds.roi.values[p], ds.patch_id.values[p]) == (run.roi.values[s], run.patch_id.values[s])
        times = run.input_times.values[s]
        np.testing.assert_array_equal(both.inputs.values[row], ds.S2.values[p, times])
        np.testing.assert_array_equal(both.target.values[row], ds.S2.values[p, int(run.target_time.values[s])])
        np.testing.assert_array_equal(both.input_dates.values[row], ds.S2_date.values[p, times])
        least = times[int(np.argmin(run.input_coverage.values[s]))]  # the baseline copies the least cloudy input
        np.testing.assert_array_equal(both.prediction.values[row], np.clip(ds.S2.values[p, least], 0, 10000))
    with pytest.raises(KeyError, match="not in the cube"):
        side_by_side(ds.isel(patch=slice(0, 1)), run)


def test_provenance(cube_copy: Path, tmp_path: Path) -> None:
    model = ResNet3D(n_inputs=2, features=4, blocks=1)
    checkpoint = save_checkpoint(tmp_path / "m.pt", model, train_config='{"seed": 1}')
    evaluate(cube_copy, "tiny", checkpoint=str(checkpoint), split="val", min_cov=0.05, progress=False)
    run = open_run(cube_copy, "tiny")
    attrs = run.attrs
    chosen = run.input_coverage.values[run.coverage_bin.values]
    assert chosen.size and (chosen >= 0.05).all() and attrs["min_cov"] == 0.05 and attrs["max_cov"] == 1.0
    assert attrs["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert '"features": 4' in attrs["model_config"] and attrs["train_config"] == '{"seed": 1}'
    assert attrs["n_input_samples"] == 2 and attrs["index"] == "computed" and attrs["split"] == "val"
    assert attrs["code_version"] and attrs["created"].startswith("20") and attrs["published"].startswith("20")


def test_concurrent_runs_do_not_clash(cube_copy: Path) -> None:
    threads = [
        threading.Thread(
            target=evaluate, args=(cube_copy, name), kwargs={"baseline": baseline, "split": "test", "progress": False}
        )
        for name, baseline in (("a", "least_cloudy"), ("b", "mosaic"), ("a", "least_cloudy"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert list_runs(cube_copy) == ["a", "b"]
    assert open_run(cube_copy, "a").attrs["baseline"] == "least_cloudy"
    assert open_run(cube_copy, "b").attrs["baseline"] == "mosaic"
    for name in ("a", "b"):  # the replaced version, or the losing one of the two writers of "a", is gone
        assert sorted(p.name for p in (cube_copy / "runs" / name).iterdir())[-1] == "zarr.json"
        assert len(list((cube_copy / "runs" / name).iterdir())) == 2


def test_an_interrupted_run_is_never_visible(cube_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluate(cube_copy, "a", baseline="mosaic", split="test", progress=False)

    def crash(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(crts.evaluate, "evaluate_batch", crash)
    with pytest.raises(KeyboardInterrupt):
        evaluate(cube_copy, "a", baseline="least_cloudy", split="test", progress=False)
    with pytest.raises(KeyboardInterrupt):
        evaluate(cube_copy, "new", baseline="least_cloudy", split="test", progress=False)
    assert list_runs(cube_copy) == ["a"]
    assert open_run(cube_copy, "a").attrs["baseline"] == "mosaic"  # the old complete run survives
    with pytest.raises(FileNotFoundError, match="no run 'new'"):
        open_run(cube_copy, "new")


def test_report_has_every_run(cube_copy: Path, tmp_path: Path) -> None:
    for name, baseline in (("least_cloudy", "least_cloudy"), ("mosaic", "mosaic")):
        evaluate(cube_copy, name, baseline=baseline, split="test", progress=False)
    report = write_report(cube_copy, tmp_path / "report")
    text = report.read_text()
    assert "| least_cloudy" in text and "| mosaic" in text and "by coverage" in text
    for name in (
        "overall.csv",
        "by_region.csv",
        "by_coverage.csv",
        "samples.csv",
        "examples.png",
        "rmse_vs_coverage.png",
    ):
        assert (tmp_path / "report" / name).stat().st_size > 100


def test_report_figures_share_one_error_scale_contour_the_inputs_clouds_and_name_the_detector(cube_copy: Path) -> None:
    evaluate(cube_copy, "least", baseline="least_cloudy", split="test", progress=False)
    evaluate(cube_copy, "mosaic", baseline="mosaic", split="test", cloud_masks="cloud_cloudshadow_mask", progress=False)
    fig = plot_samples(cube_copy, ["least", "mosaic"], [0, 5])
    *panels, colorbar = fig.axes
    assert [ax.get_label() for ax in fig.axes].count("<colorbar>") == 1 and colorbar.get_label() == "<colorbar>"
    maps = [image for ax in panels for image in ax.get_images() if image.get_array().ndim == 2]
    assert len(maps) == 2 * 2  # an error map per run and example
    assert {(image.norm.vmin, image.norm.vmax) for image in maps} == {(0, colorbar.get_ylim()[1])}
    assert colorbar.get_ylim()[1] == pytest.approx(np.percentile([image.get_array() for image in maps], 99))
    shown = side_by_side(open_cube(cube_copy), open_run(cube_copy, "least").isel(sample=[0, 5]))
    ds = open_cube(cube_copy, chunks=None)
    cloudy = []
    for row, axes in enumerate(np.reshape(panels, (2, -1))):
        inputs = shown.isel(sample=row)
        masks = ds.s2cloudless_mask.isel(patch=int(inputs.patch)).values[inputs.input_times.values]
        contours = [[c for c in ax.collections if isinstance(c, ContourSet)] for ax in axes]
        assert [len(c) for c in contours] == [1] * 3 + [0] * (len(axes) - 3)  # 3 inputs, then target and runs
        cloudy += [bool(((m > 0) & (m < 255)).any()) for m in masks]
        assert [bool(len(c[0].get_paths()[0].vertices)) for c in contours[:3]] == cloudy[-3:]
    assert set(cloudy) == {True, False}  # contours where the detector marks clouds, none on clear inputs
    assert "s2cloudless_mask" in fig.get_suptitle() and smallest_font(fig) >= 10
    plt.close(fig)

    table = samples_table(cube_copy)
    assert table.groupby("run").detector.unique().map(list).to_dict() == {
        "least": ["s2cloudless_mask"],
        "mosaic": ["cloud_cloudshadow_mask"],
    }
    fig = plot_metric_vs_coverage(table)
    ax = fig.axes[0]
    assert "cloud detector: s2cloudless_mask, cloud_cloudshadow_mask" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "least (s2cloudless_mask)",
        "mosaic (cloud_cloudshadow_mask)",
    ]
    np.testing.assert_allclose(ax.collections[1].get_offsets()[:, 0], table.query("run == 'mosaic'").input_coverage)
    assert smallest_font(fig) >= 10
    plt.close(fig)


def test_uncrtaints_run_holds_variances_and_calibration(cube_copy: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = UnCRtainTS(encoder_widths=(16,), decoder_widths=(16, 16), n_head=4, d_model=32, scale_by=10.0).eval()
    checkpoint = save_checkpoint(tmp_path / "u.pt", model, train_config=json.dumps({"n_input_samples": 2}))
    evaluate(cube_copy, "unc", checkpoint=str(checkpoint), split="test", progress=False)
    evaluate(cube_copy, "least", baseline="least_cloudy", split="test", progress=False)
    run = open_run(cube_copy, "unc")
    assert run.attrs["model"] == "uncrtaints" and run.attrs["n_input_samples"] == 2
    assert run.variance.dtype == np.float16 and run.variance.shape == run.prediction.shape
    windows = SampleWindows(SEN12MSCRTS(cube_copy, split="test", n_input_samples=2))
    for i in (0, len(windows) - 1):
        item = windows[i]
        dates = input_dates(item["input_s1_td"][None], item["input_s2_td"][None], use_sar=True)
        with torch.no_grad():
            mean, variance = (out[0].numpy() for out in model(item["inputs"][None], dates))
        stored = run.variance.values[item["pdx"]].astype(np.float32)
        np.testing.assert_allclose(stored, variance, rtol=2**-10)  # float16: relative precision 2**-11
        assert np.abs(run.prediction.values[item["pdx"]].astype(int) - np.round(mean * 10000)).max() <= 1
        assert float(run.mean_variance[item["pdx"]]) == pytest.approx(variance.mean(), rel=1e-5)
        assert float(run.mean_variance[item["pdx"]]) == pytest.approx(stored.mean(), rel=2**-10)
        assert float(run.mean_error[item["pdx"]]) == pytest.approx((item["target"].numpy() - mean).mean(), abs=1e-6)
    mean_var, error = torch.from_numpy(run.mean_variance.values), torch.from_numpy(run.mean_error.values)
    assert (float(run.uce), float(run.auce)) == pytest.approx(uncertainty_calibration(mean_var, error, 20), rel=1e-6)
    assert int(run.calibration_images.sum()) == 6 and run.sizes["calibration_bin"] == 20
    assert run.kept_share.values[[0, -1]].tolist() == [0.05, 1.0] and run.kept_share.attrs["units"] == "1"
    most_certain = run.rmse.values[np.argsort(run.mean_variance.values, kind="stable")[:3]].mean()
    assert float(run.rmse_by_kept_share.sel(kept_share=0.5)) == pytest.approx(most_certain)
    assert float(run.rmse_by_kept_share[-1]) == pytest.approx(float(run.rmse.mean()))
    least = open_run(cube_copy, "least")
    assert not {"variance", "mean_variance", "uce", "rmse_by_kept_share"} & set(least.variables)

    report = write_report(cube_copy, tmp_path / "report", ["least", "unc"])
    text = report.read_text()
    assert "## uncertainty" in text and "uncertainty.png" in text and "| unc" in text.split("## uncertainty")[1]
    assert (tmp_path / "report" / "uncertainty.png").stat().st_size > 100
    table = pd.read_csv(tmp_path / "report" / "uncertainty.csv", index_col="run")
    assert list(table.index) == ["unc"] and table.loc["unc", "uce"] == pytest.approx(float(run.uce))


def test_windowed_evaluation_of_a_per_pixel_model_equals_the_whole_patch_run(cube_copy: Path) -> None:
    evaluate(cube_copy, "whole", baseline="mosaic", split="test", progress=False)
    evaluate(cube_copy, "windows", baseline="mosaic", split="test", window=16, overlap=6, batch_size=3, progress=False)
    whole, windows = open_run(cube_copy, "whole"), open_run(cube_copy, "windows")
    np.testing.assert_array_equal(windows.prediction.values, whole.prediction.values)
    for metric in ("rmse", "psnr", "sam", "ssim", "rmse_cloudy"):
        np.testing.assert_allclose(windows[metric].values, whole[metric].values, rtol=1e-6, err_msg=metric)
    assert (windows.attrs["window_px"], windows.attrs["overlap_px"]) == (16, 6)
    assert (whole.attrs["window_px"], whole.attrs["overlap_px"]) == (32, 0)


def test_a_bad_window_is_refused_before_anything_is_written(cube_copy: Path) -> None:
    with pytest.raises(ValueError, match="overlap 16 px must be smaller than the window"):
        evaluate(cube_copy, "tiles", baseline="mosaic", split="test", window=16, overlap=16, progress=False)
    assert not (cube_copy / "runs" / "tiles").exists()
