"""Coverage tables and filters agree with a plain pandas computation from the raw arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cube import open_cube
from cube.analysis.stats import (
    CoverageIndex,
    clear_share,
    coverage_index,
    coverage_table,
    histogram,
    patches_with_clear_steps,
    time_steps_in_range,
)
from tests.helpers import coverage_rows, random_coverage_index


@pytest.fixture(scope="module")
def index() -> CoverageIndex:
    return random_coverage_index()


@pytest.mark.parametrize("by", [["region"], ["region", "split"], ["month"], ["roi", "time"], ["detector"]])
def test_grouped_table_equals_pandas(index: CoverageIndex, by: list[str]) -> None:
    keys = by if "detector" in by else ["detector", *by]
    expected = (
        coverage_rows(index)
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
    frame = coverage_rows(index)
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
    frame = coverage_rows(index)
    by_region = histogram(index, bins=4, by="region", detector="det_b")
    assert by_region.to_numpy().sum() == (frame.detector == "det_b").sum()
    assert by_region.loc["0.75-1.00"].sum() == ((frame.detector == "det_b") & (frame.coverage >= 0.75)).sum()
    assert histogram(index, bins=4, detector="det_b")["all"].tolist() == by_region.sum(axis=1).tolist()


def test_bad_keys_and_detectors_are_named(index: CoverageIndex) -> None:
    with pytest.raises(ValueError, match="invalid grouping 'planet'"):
        coverage_table(index, ["planet"])
    with pytest.raises(ValueError, match="'det_c' is not in this index"):
        clear_share(index, detector="det_c")


def test_on_a_real_cube(default_cube: Path) -> None:
    ds = open_cube(default_cube)
    idx = coverage_index(ds, "s2cloudless_mask")
    table = coverage_table(idx, ["region", "split"])
    assert table.images.sum() == 240
    assert set(table.index) == {("africa", "train"), ("europa", "train"), ("europa", "val"), ("europa", "test")}
    mean = float(ds.coverage.sel(detector="s2cloudless_mask").mean())
    assert np.average(table.mean_coverage, weights=table.images) == pytest.approx(mean, rel=1e-5)


def test_one_key_as_a_string_is_one_group(index: CoverageIndex) -> None:
    pd.testing.assert_frame_equal(coverage_table(index, "region"), coverage_table(index, ["region"]))


def test_an_unknown_detector_names_the_valid_ones(tiny_cube: Path) -> None:
    with pytest.raises(ValueError, match="invalid detector 'fmask': choose from s2cloudless_mask, s2cloudless_map"):
        coverage_index(open_cube(tiny_cube), "fmask")
