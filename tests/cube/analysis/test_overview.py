"""cube.analysis.overview (cube.summary): what a cube holds, from the cube's own arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cube import convert, open_cube, summary
from cube.analysis.stats import coverage_index
from cube.store.store import CubeStore
from cube.synth import make_dataset


def test_summary_counts_patches_dates_gaps_and_size(tiny_cube: Path) -> None:
    ds = open_cube(tiny_cube)
    facts = summary(ds, CubeStore(tiny_cube))
    assert facts["patches"] == 6 and facts["time_steps"] == 4 and facts["gaps"] == 0
    assert facts["by_split_region"].loc["test", "africa"] == 3 and facts["by_split_region"].loc["val", "europa"] == 3
    assert (facts["first_date"], facts["last_date"]) == ("2018-02-01", "2018-10-21")
    assert facts["mean_coverage"]["s2cloudless_mask"] == np.nanmean(ds.coverage.sel(detector="s2cloudless_mask"))
    assert facts["runs"] == []
    assert facts["bytes"] == sum(f.stat().st_size for f in Path(tiny_cube).rglob("*") if f.is_file())


def test_summary_counts_missing_images_and_needs_a_store_for_runs_and_size(tiny_cube: Path) -> None:
    ds = open_cube(tiny_cube).load()
    ds["valid"][0, 1, 0] = False
    facts = summary(ds)
    assert facts["gaps"] == 1 and facts["runs"] is None and facts["bytes"] is None


def test_coverage_index_repr_is_one_line(tiny_cube: Path) -> None:
    text = repr(coverage_index(open_cube(tiny_cube), "s2cloudless_mask"))
    assert text == "CoverageIndex(6 patches x 4 time steps, 24 valid images, detectors s2cloudless_mask)"


def test_summary_of_a_mono_temporal_cube(tmp_path: Path) -> None:
    root = make_dataset(
        tmp_path / "cr",
        ["ROIs1158/106", "ROIs1868/17"],
        patches_per_roi=1,
        size=32,
        layout="sen12mscr",
        workers=1,
        progress=False,
    )
    convert(root, tmp_path / "cr.zarr", workers=1, progress=False)
    facts = summary(open_cube(tmp_path / "cr.zarr"))
    assert (facts["patches"], facts["time_steps"], facts["first_date"], facts["gaps"]) == (2, 1, None, 0)
    assert facts["mean_coverage"] == {} and facts["detectors"] == ()  # no cloud pass in a SEN12MS-CR cube
