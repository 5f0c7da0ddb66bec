"""Coverage tables and filters agree with a plain pandas computation from the raw arrays."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from cube import open_cube
from cube.analysis.plots import plot_coverage
from cube.analysis.stats import (
    CoverageIndex,
    clear_share,
    coverage_index,
    coverage_table,
    histogram,
    patches_with_clear_steps,
    time_steps_in_range,
)
from cube.synth.scores import score_detectors
from tests.figures import smallest_font


@pytest.fixture(scope="module")
def index() -> CoverageIndex:
    """A random index with gaps: 40 patches x 6 steps x 2 detectors."""
    rng = np.random.default_rng(3)
    coverage = rng.choice([0.0, 0.005, 0.3, 0.7, 1.0], size=(40, 6, 2)).astype(np.float32)
    coverage[rng.random(coverage.shape[:2]) < 0.1] = np.nan
    labels = pd.DataFrame(
        {
            "roi_group": rng.choice(["ROIs1868", "ROIs2017"], 40),
            "roi": rng.integers(1, 4, 40),
            "patch_id": np.arange(40),
            "region": rng.choice(["africa", "europa", "america"], 40),
            "split": rng.choice(["train", "val", "test"], 40),
        }
    )
    labels["roi_name"] = labels.roi_group + "/" + labels.roi.astype(str)
    dates = np.datetime64("2018-01-05") + rng.integers(0, 365, (40, 6)).astype("timedelta64[D]")
    return CoverageIndex(coverage, ("det_a", "det_b"), labels, dates.astype("datetime64[ns]"))


def _long(index: CoverageIndex) -> pd.DataFrame:
    """One row per (patch, time, detector), by pandas alone."""
    p, t, d = np.meshgrid(*(np.arange(n) for n in index.coverage.shape), indexing="ij")
    frame = pd.DataFrame(
        {
            "patch": p.ravel(),
            "time": t.ravel(),
            "detector": np.array(index.detectors)[d.ravel()],
            "coverage": index.coverage.ravel(),
        }
    )
    frame = frame.join(index.labels, on="patch")
    frame["roi"] = frame.roi_name
    frame["month"] = pd.DatetimeIndex(index.dates[frame.patch, frame.time]).month
    return frame.dropna(subset=["coverage"])


@pytest.mark.parametrize("by", [["region"], ["region", "split"], ["month"], ["roi", "time"], ["detector"]])
def test_grouped_table_equals_pandas(index: CoverageIndex, by: list[str]) -> None:
    keys = by if "detector" in by else ["detector", *by]
    expected = (
        _long(index)
        .groupby(keys)
        .coverage.agg(
            images="count",
            mean_coverage="mean",
            clear_share=lambda c: (c <= 0.01).mean(),
            cloudy_share=lambda c: (c >= 0.5).mean(),
        )
    )
    got = coverage_table(index, by)
    pd.testing.assert_frame_equal(
        got.sort_index(), expected.sort_index(), check_dtype=False, check_index_type=False, check_names=False
    )


def test_filters(index: CoverageIndex) -> None:
    frame = _long(index)
    a = frame[frame.detector == "det_a"]
    counts = a[a.coverage < 0.1].groupby("patch").size()
    got = patches_with_clear_steps(index, k=3, max_coverage=0.1, detector="det_a")
    assert list(got.index) == sorted(counts[counts >= 3].index)
    assert list(got.n_steps) == list(counts[counts >= 3].sort_index())
    rows = time_steps_in_range(index, 0.3, 0.7, detector="det_b")
    b = frame[(frame.detector == "det_b") & frame.coverage.between(0.3, 0.7)]
    assert sorted(zip(rows.patch, rows.time, strict=True)) == sorted(zip(b.patch, b.time, strict=True))
    shares = clear_share(index, "region", detector="det_a")
    expected = a.groupby("region").coverage.apply(lambda c: (c <= 0.01).mean())
    pd.testing.assert_series_equal(shares.sort_index(), expected.sort_index(), check_names=False)


def test_histogram_counts_every_valid_image(index: CoverageIndex) -> None:
    frame = _long(index)
    by_region = histogram(index, bins=4, by="region", detector="det_b")
    assert by_region.to_numpy().sum() == (frame.detector == "det_b").sum()
    assert by_region.loc["0.75-1.00"].sum() == ((frame.detector == "det_b") & (frame.coverage >= 0.75)).sum()
    assert histogram(index, bins=4, detector="det_b")["all"].tolist() == by_region.sum(axis=1).tolist()


def test_bad_keys_and_detectors_are_named(index: CoverageIndex) -> None:
    with pytest.raises(ValueError, match="invalid grouping 'planet'"):
        coverage_table(index, ["planet"])
    with pytest.raises(ValueError, match="'det_c' is not in this index"):
        clear_share(index, detector="det_c")


def test_on_a_real_cube(default_cube: Path, tmp_path: Path) -> None:
    ds = open_cube(default_cube)
    idx = coverage_index(ds, "s2cloudless_mask")
    table = coverage_table(idx, ["region", "split"])
    assert table.images.sum() == 240
    assert set(table.index) == {("africa", "train"), ("europa", "train"), ("europa", "val"), ("europa", "test")}
    mean = float(ds.coverage.sel(detector="s2cloudless_mask").mean())
    assert np.average(table.mean_coverage, weights=table.images) == pytest.approx(mean, rel=1e-5)
    assert plot_coverage(idx, out=tmp_path / "c.png").stat().st_size > 10_000
    scores = score_detectors(ds)
    assert scores.loc["s2cloudless_mask", "iou"] >= 0.6
    assert set(scores.truth) == {"cloud", "shadow", "cloud or shadow"}


def test_one_key_as_a_string_is_one_group(index: CoverageIndex) -> None:
    pd.testing.assert_frame_equal(coverage_table(index, "region"), coverage_table(index, ["region"]))


def test_an_unknown_detector_names_the_valid_ones(tiny_cube: Path) -> None:
    with pytest.raises(ValueError, match="invalid detector 'fmask': choose from s2cloudless_mask, s2cloudless_map"):
        coverage_index(open_cube(tiny_cube), "fmask")


def test_coverage_figure_names_months_counts_images_and_keeps_splits_apart_from_regions(index: CoverageIndex) -> None:
    fig = plot_coverage(index, "det_b")
    hist, month, clear = fig.axes
    assert [t.get_text() for t in month.get_xticklabels()] == [
        "Jan",
        "Feb",
        "Mar",
        "Apr",
        "May",
        "Jun",
        "Jul",
        "Aug",
        "Sep",
        "Oct",
        "Nov",
        "Dec",
    ]
    images = _long(index).query("detector == 'det_b'").groupby(["region", "split"]).size()
    by_region = [f"{region} (n={n})" for region, n in images.groupby("region").sum().items()]
    assert [t.get_text() for t in hist.get_legend().get_texts()] == by_region
    assert [t.get_text() for t in month.get_legend().get_texts()] == by_region
    assert sorted(t.get_text() for t in clear.texts if t.get_text()) == sorted(f"n={n}" for n in images)
    region_colours = {to_hex(line.get_color()) for line in month.lines}
    assert {to_hex(bar.get_facecolor()) for bar in hist.patches} == region_colours and len(region_colours) == 3
    split_colours = {to_hex(bar.get_facecolor()) for bar in clear.patches}
    assert len(split_colours) == 3 and not split_colours & region_colours
    assert smallest_font(fig) >= 10
    plt.close(fig)
