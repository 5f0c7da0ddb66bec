"""Reports of evaluation runs (crts.report): per-sample table, metric tables, figures, the report folder.

Reports of UnCRtainTS runs and the example figures' contents are tested with the runs in tests/crts/test_evaluate.py.
"""

from __future__ import annotations

import builtins
import errno
import io
import math
import os
import re
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from crts.evaluate import evaluate
from crts.report import (
    COVERAGE_BINS,
    REPORT_TITLE,
    metric_tables,
    plot_metric_vs_coverage,
    samples_table,
    uncertainty_table,
    write_report,
)
from cube.store.outputs import OutputRefused
from cube.store.runs import open_run


@pytest.fixture
def empty_cube(tiny_cube: Path, tmp_path: Path) -> Path:
    """A cube without evaluation runs."""
    return Path(shutil.copytree(tiny_cube, tmp_path / "cube.zarr"))


@pytest.fixture
def run_cube(empty_cube: Path) -> Path:
    """A cube with one run, ``least`` (the least-cloudy baseline on the test split: 3 samples of ROIs2017/32)."""
    evaluate(empty_cube, "least", baseline="least_cloudy", split="test", min_cov=0.05, progress=False)
    return empty_cube


def _table() -> pd.DataFrame:
    """Four samples of two runs in two regions, one with a perfect (infinite PSNR) prediction."""
    return pd.DataFrame(
        {
            "run": ["a", "a", "b", "b"],
            "region": ["africa", "europa", "africa", "europa"],
            "detector": "s2cloudless_mask",
            "input_coverage": [0.05, 0.6, 0.05, 0.6],
            "coverage_bin": ["(-0.001, 0.1]", "(0.5, 0.7]", "(-0.001, 0.1]", "(0.5, 0.7]"],
            "rmse": [0.1, 0.3, 0.0, 0.2],
            "psnr": [20.0, 10.0, math.inf, 14.0],
        }
    )


def test_metric_tables_are_means_by_run_region_and_coverage_with_counts() -> None:
    tables = metric_tables(_table())
    overall = tables["overall"]
    assert overall.loc["a", "rmse"] == pytest.approx(0.2) and overall.loc["b", "rmse"] == pytest.approx(0.1)
    assert overall.loc["b", "psnr"] == 14.0  # a perfect sample's infinite PSNR is left out of the mean
    assert overall["samples"].tolist() == [2, 2] and list(overall.columns) == ["rmse", "psnr", "samples"]
    assert tables["by_region"].loc[("europa", "a"), "rmse"] == pytest.approx(0.3)
    assert tables["by_coverage"].loc[("(-0.001, 0.1]", "b"), "samples"] == 1


def test_metric_against_coverage_names_runs_and_detectors(tmp_path: Path) -> None:
    fig = plot_metric_vs_coverage(_table())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a (s2cloudless_mask)", "b (s2cloudless_mask)"]
    assert "s2cloudless_mask" in ax.get_xlabel() and ax.get_ylabel().startswith("RMSE per sample")
    plt.close(fig)
    assert plot_metric_vs_coverage(_table(), tmp_path / "f.png", metric="psnr").stat().st_size > 1000


def test_a_cube_without_runs_is_refused_before_the_folder_is_made(empty_cube: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no evaluation runs") as err:
        write_report(empty_cube, tmp_path / "report")
    assert "\n" not in str(err.value) and not (tmp_path / "report").exists()


def test_the_samples_table_holds_each_sample_s_metrics_coverage_and_detector(run_cube: Path) -> None:
    table, run = samples_table(run_cube), open_run(run_cube, "least")
    assert len(table) == run.sizes["sample"] == 3 and set(table.run) == {"least"}
    np.testing.assert_array_equal(table.rmse.values, run.rmse.values)
    assert (table.rmse > 0).all() and table.psnr.notna().all()
    np.testing.assert_allclose(table.input_coverage.values, run.input_coverage.values.mean(axis=1))
    assert set(table.region) == {"africa"} and set(table.detector) == {run.attrs["cloud_masks"]}
    bins = pd.cut(table.input_coverage, COVERAGE_BINS, include_lowest=True).astype(str)
    assert table.coverage_bin.tolist() == bins.tolist()
    assert uncertainty_table(run_cube, ["least"]).empty  # a baseline predicts no variances


def test_a_report_rewrites_its_own_folder_and_refuses_any_other(run_cube: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    first = write_report(run_cube, out).read_text()
    assert first.startswith(f"{REPORT_TITLE}least\n") and "## uncertainty" not in first
    assert not (out / "uncertainty.csv").exists()
    assert write_report(run_cube, out).read_text() == first
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds files that are not an evaluation report") as err:
        write_report(run_cube, tmp_path / "mine")
    assert "\n" not in str(err.value) and sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_report_is_never_written_into_a_cube(run_cube: Path) -> None:
    before = _files(run_cube)
    for out in (run_cube, run_cube / "runs" / "report", run_cube / "new" / "report"):
        with pytest.raises(
            OutputRefused,
            match=f"^{re.escape(str(out))}: the folder for an evaluation report "
            f"(is|lies inside) the cube {re.escape(str(run_cube))};",
        ) as err:
            write_report(run_cube, out)
        assert "\n" not in str(err.value)
    assert _files(run_cube) == before


def test_a_failing_write_of_the_report_is_one_error_naming_the_file(
    run_cube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, real_open = tmp_path / "report", io.open

    def opened(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if str(file).endswith("samples.csv") and "w" in mode:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(file))
        return real_open(file, mode, *args, **kwargs)

    for module in (io, builtins):
        monkeypatch.setattr(module, "open", opened)
    with pytest.raises(OutputRefused) as err:
        write_report(run_cube, out)
    assert str(err.value) == f"{out}: the report cannot be written: Input/output error ({out / 'samples.csv'})"
    assert not (out / "report.md").exists()  # written last: an unfinished report is never taken for one
