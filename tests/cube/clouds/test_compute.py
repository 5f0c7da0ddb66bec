"""The cloud pass stores exactly what the detectors give, once, resumably."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cube import convert, open_cube
from cube.clouds.compute import clouds_patch, compute_clouds, require_clouds
from cube.clouds.detectors import (
    DETECTORS,
    cloud_cloudshadow_classes,
    s2cloudless_map,
    s2cloudless_mask,
    s2cloudless_probability,
)
from cube.dataset.problems import FileProblem
from cube.store.store import CubeStore
from cube.synth import make_dataset
from tests.helpers import checksums, kill_when


def test_stored_masks_equal_the_detectors_on_the_geotiffs(default_cube: Path, synthetic_root: Path) -> None:
    ds = open_cube(default_cube)
    rng = np.random.default_rng(1)
    for p, t in zip(rng.integers(0, 8, 5), rng.integers(0, 30, 5), strict=True):
        with rasterio.open(synthetic_root / str(ds.S2_path.values[p, t])) as src:
            s2 = src.read()
        prob = s2cloudless_probability(s2)
        one = ds.isel(patch=p, time=t)
        np.testing.assert_array_equal(one.s2cloudless_mask.values, s2cloudless_mask(probability=prob))
        np.testing.assert_array_equal(one.s2cloudless_map.values, s2cloudless_map(prob))
        np.testing.assert_array_equal(one.cloud_cloudshadow_mask.values, cloud_cloudshadow_classes(s2))
        np.testing.assert_allclose(one.s2cloudless_probability.values, prob, atol=0.5 / 250 + 1e-6)


def test_coverage_is_the_mean_of_each_mask(default_cube: Path) -> None:
    ds = open_cube(default_cube)
    cov = ds.coverage
    np.testing.assert_allclose(cov.sel(detector="s2cloudless_mask"), ds.s2cloudless_mask.mean(("y", "x")), rtol=1e-6)
    np.testing.assert_allclose(cov.sel(detector="s2cloudless_map"), ds.s2cloudless_map.mean(("y", "x")), rtol=1e-5)
    np.testing.assert_allclose(
        cov.sel(detector="cloud_cloudshadow_mask"), (ds.cloud_cloudshadow_mask > 0).mean(("y", "x")), rtol=1e-6
    )
    assert list(ds.detector.values) == list(DETECTORS)
    assert tuple(ds.attrs["cloud_detectors"].split()) == DETECTORS


def test_rerunning_is_a_no_op(tiny_cube: Path) -> None:
    before = checksums(tiny_cube, ("s2cloudless_mask", "coverage"))
    shards = sorted(p.stat().st_mtime_ns for p in (tiny_cube / "s2cloudless_mask").rglob("*") if p.is_file())
    assert compute_clouds(tiny_cube, workers=1, progress=False) == 0
    assert checksums(tiny_cube, ("s2cloudless_mask", "coverage")) == before
    assert sorted(p.stat().st_mtime_ns for p in (tiny_cube / "s2cloudless_mask").rglob("*") if p.is_file()) == shards


def test_gaps_get_no_data_and_nan_coverage(tiny_root: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(tiny_root, src, ignore=shutil.ignore_patterns("ground_truth"))
    victim = sorted((src / "ROIs2017/32/S2/1").glob("*.tif"))[0]
    victim.write_bytes(b"broken")
    convert(src, tmp_path / "c.zarr", on_error="skip", workers=1, progress=False)
    ds = open_cube(tmp_path / "c.zarr")
    gap = ~ds.valid.sel(modality="S2")
    assert int(gap.sum()) == 1
    coverage = ds.coverage.values
    assert np.isnan(coverage[gap.values]).all() and not np.isnan(coverage[~gap.values]).any()
    (p,), (t,) = np.nonzero(gap.values)
    assert (ds.s2cloudless_mask.values[p, t] == 255).all() and (ds.cloud_cloudshadow_mask.values[p, t] == 255).all()
    assert np.isnan(ds.s2cloudless_map.values[p, t]).all()


def test_detectors_can_be_added_later(tiny_root: Path, tiny_cube: Path, tmp_path: Path) -> None:
    dst = tmp_path / "c.zarr"
    convert(tiny_root, dst, clouds=("cloud_cloudshadow_mask",), workers=1, progress=False)
    ds = open_cube(dst)
    assert "s2cloudless_mask" not in ds
    with pytest.raises(ValueError, match="crts clouds CUBE --detectors s2cloudless_mask"):
        require_clouds(ds, "s2cloudless_mask")
    assert compute_clouds(dst, ("s2cloudless_mask",), workers=1, progress=False) == 6
    names = ("cloud_cloudshadow_mask", "s2cloudless_mask")
    assert checksums(dst, names) == checksums(tiny_cube, names)
    with pytest.raises(ValueError, match="invalid detector"):
        compute_clouds(dst, ("fmask",), workers=1, progress=False)


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_same_masks(tmp_path: Path) -> None:
    root = make_dataset(
        tmp_path / "src",
        ["ROIs1868/17", "ROIs2017/32"],
        patches_per_roi=4,
        size=64,
        times=30,
        workers=1,
        progress=False,
    )
    reference, dst = tmp_path / "reference.zarr", tmp_path / "cube.zarr"
    convert(root, reference, workers=1, progress=False)
    convert(root, dst, clouds=(), workers=1, progress=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "crts", "clouds", str(dst), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_when(proc, lambda: (dst / "coverage" / "c" / "0" / "0" / "0").exists())  # after the first rows are written
    with pytest.raises(ValueError, match="interrupted cloud pass"):
        compute_clouds(dst, workers=1, progress=False)
    assert compute_clouds(dst, resume=True, workers=1, progress=False) < 8
    names = ("s2cloudless_probability", "s2cloudless_mask", "s2cloudless_map", "cloud_cloudshadow_mask", "coverage")
    assert checksums(dst, names) == checksums(reference, names)
    assert CubeStore(dst).state().clouds == {"detectors": list(DETECTORS), "complete": True}


def test_coverage_columns_are_found_by_their_stored_label() -> None:
    """A cube's coverage columns are read and written by the ``detector`` labels it stores, not by the order of
    DETECTORS (which may change, or grow, after the cube was made)."""
    import zarr

    from cube.clouds.compute import coverage_columns

    group = zarr.group(store=zarr.storage.MemoryStore())
    group.create_array("detector", data=np.array(list(reversed(DETECTORS))))
    assert coverage_columns(group, ("s2cloudless_mask", "cloud_cloudshadow_mask")) == [2, 0]
    group = zarr.group(store=zarr.storage.MemoryStore())
    group.create_array("detector", data=np.array(DETECTORS[:2]))
    with pytest.raises(ValueError, match="no column for cloud_cloudshadow_mask"):
        coverage_columns(group, ("cloud_cloudshadow_mask",))
    group = zarr.group(store=zarr.storage.MemoryStore())
    group.create_group("detector")  # zarr types a member as an array or a group: a group here is named
    with pytest.raises(FileProblem, match="/detector: a group where the cube has an array"):
        coverage_columns(group, ("cloud_cloudshadow_mask",))


def test_a_patch_of_the_probability_detectors_needs_a_predictor(tiny_cube: Path, tmp_path: Path) -> None:
    """``clouds_patch`` (public) without a predictor for a detector that uses s2cloudless probabilities is one
    ValueError line (it called None), raised before anything is written."""
    dst = tmp_path / "c.zarr"
    shutil.copytree(tiny_cube, dst)
    before = checksums(dst, ("s2cloudless_probability", "s2cloudless_mask"))
    with pytest.raises(ValueError, match="s2cloudless_mask: the detectors that use s2cloudless probabilities need"):
        clouds_patch(CubeStore(dst, "r+"), 0, ("s2cloudless_mask",), None)
    assert checksums(dst, ("s2cloudless_probability", "s2cloudless_mask")) == before


def test_a_cube_that_lost_its_root_document_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A committed state beside a missing root ``zarr.json``: the cloud pass names that document in one line (it
    was an AttributeError on None), before it commits anything, and leaves the writer lock free."""
    from crts.cli import main

    root = make_dataset(
        tmp_path / "src", ["ROIs1868/17"], patches_per_roi=1, size=16, times=2, workers=1, progress=False
    )
    dst = tmp_path / "c.zarr"
    convert(root, dst, clouds=("cloud_cloudshadow_mask",), workers=1, progress=False)
    (dst / "zarr.json").unlink()
    before = CubeStore(dst).state()
    with pytest.raises(FileProblem, match=r"c\.zarr/zarr\.json: missing or not a group"):
        compute_clouds(dst, ("s2cloudless_mask",), workers=1, progress=False)
    assert CubeStore(dst).state() == before and not (dst / "s2cloudless_mask").exists()
    assert main(["clouds", str(dst), "--detectors", "s2cloudless_mask", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "c.zarr/zarr.json: missing or not a group" in err[0]
