"""Conversion is lossless, labelled, georeferenced, incremental and resumable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr

from cube import IncompleteCubeError, convert, georeferenced, open_cube, patch_index
from cube.dataset.layout import scan_cr, scan_ts
from cube.synth import make_dataset
from tests.helpers import checksums, kill_when


def _file_of(ds: xr.Dataset, root: Path, modality: str, p: int, t: int) -> Path:
    return root / str(ds[f"{modality}_path"].values[p, t])


def test_every_pixel_of_sampled_images_equals_its_geotiff(default_cube: Path, synthetic_root: Path) -> None:
    ds = open_cube(default_cube)
    rng = np.random.default_rng(0)
    for p, t in zip(rng.integers(0, ds.sizes["patch"], 12), rng.integers(0, ds.sizes["time"], 12), strict=True):
        for modality in ("S1", "S2"):
            with rasterio.open(_file_of(ds, synthetic_root, modality, p, t)) as src:
                expected = src.read()
            stored = ds[modality].isel(patch=p, time=t).values
            assert stored.dtype == expected.dtype
            np.testing.assert_array_equal(stored, expected)  # NaN positions of S1 included
    assert bool(ds.valid.all())


def test_labels_and_dates_come_from_the_file_names(default_cube: Path, synthetic_root: Path) -> None:
    ds = open_cube(default_cube)
    files, _ = scan_ts(synthetic_root)
    for f in files:
        p = patch_index(ds, f.roi, f.pid)
        assert ds[f"{f.modality}_date"].values[p, f.t].astype("datetime64[D]").item() == f.date
        assert ds[f"{f.modality}_path"].values[p, f.t] == f.path.relative_to(synthetic_root).as_posix()
    assert list(ds.roi_group.values) == ["ROIs1868"] * 4 + ["ROIs1970"] * 2 + ["ROIs2017"] * 2
    assert list(ds.split.values) == ["val", "val", "train", "train", "train", "train", "test", "test"]
    assert list(ds.region.values) == ["europa"] * 4 + ["africa"] * 2 + ["europa"] * 2
    assert list(ds.S2_band.values) == ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
    assert list(ds.S1_band.values) == ["VV", "VH"]


def test_plain_xarray_shows_labels_and_dates(default_cube: Path) -> None:
    ds = xr.open_zarr(default_cube, consolidated=False)
    assert ds.S2.dims == ("patch", "time", "S2_band", "y", "x")
    assert ds.S2_date.dtype == np.dtype("datetime64[ns]")
    assert ds.S2.sel(S2_band="B4").dims == ("patch", "time", "y", "x")
    assert ds.attrs["dataset"] == "SEN12MS-CR-TS"


def test_georeferenced_patch_has_the_geotiff_bounds_and_crs(default_cube: Path, synthetic_root: Path) -> None:
    ds = open_cube(default_cube)
    for p in (0, 5):
        one = georeferenced(ds, p)
        with rasterio.open(_file_of(ds, synthetic_root, "S2", p, 0)) as src:
            assert one.rio.crs == src.crs
            assert one.rio.bounds() == pytest.approx(tuple(src.bounds))
            assert one.rio.transform() == src.transform


def test_storage_is_sharded_per_patch(default_cube: Path) -> None:
    per_patch = {name: len(list((default_cube / name / "c").iterdir())) for name in ("S1", "S2", "valid", "coverage")}
    assert per_patch == {"S1": 8, "S2": 8, "valid": 1, "coverage": 1}  # a shard per patch; tables of 4096 patches
    assert len(list((default_cube / "S2" / "c" / "0").rglob("*"))) <= 4  # a shard, not 30 chunk files


def test_appending_rois_keeps_sample_order_and_values(tiny_root: Path, tiny_cube: Path, tmp_path: Path) -> None:
    dst = tmp_path / "grown.zarr"
    first = convert(tiny_root, dst, rois=["ROIs2017/32"], workers=1, progress=False)
    second = convert(tiny_root, dst, rois=["ROIs2017/32", "ROIs1868/17"], workers=1, progress=False)
    assert (first.patches_added, second.patches_added, second.patches_in_cube) == (3, 3, 6)
    grown, whole = open_cube(dst), open_cube(tiny_cube)
    assert list(grown.roi.values) == [17, 17, 17, 32, 32, 32]
    for name in ("S1", "S2", "valid", "S2_date", "patch_id", "transform"):
        xr.testing.assert_identical(grown[name].reset_coords(drop=True), whole[name].reset_coords(drop=True))
    again = convert(tiny_root, dst, workers=1, progress=False)
    assert again.patches_added == 0


def test_selection_by_split_and_region(tiny_root: Path, tmp_path: Path) -> None:
    report = convert(tiny_root, tmp_path / "c.zarr", split="val", region="europa", workers=1, progress=False)
    assert report.patches_in_cube == 3
    assert set(open_cube(tmp_path / "c.zarr").roi.values) == {17}
    with pytest.raises(ValueError, match="no files of ROI"):
        convert(tiny_root, tmp_path / "d.zarr", rois=["ROIs1868/56"], workers=1, progress=False)


def test_mono_temporal_layout(tmp_path: Path) -> None:
    root = make_dataset(
        tmp_path / "cr",
        ["ROIs1158/106", "ROIs1868/17"],
        patches_per_roi=2,
        size=32,
        layout="sen12mscr",
        workers=1,
        progress=False,
    )
    convert(root, tmp_path / "cr.zarr", workers=1, progress=False)
    ds = open_cube(tmp_path / "cr.zarr")
    assert ds.attrs["dataset"] == "SEN12MS-CR"
    assert ds.S2_cloudy.dims == ("patch", "S2_band", "y", "x") and "time" not in ds.dims
    kinds = {"s1": "S1", "s2": "S2", "s2_cloudy": "S2_cloudy"}
    for f in scan_cr(root)[0]:
        p = patch_index(ds, f.roi, f.pid)
        with rasterio.open(f.path) as src:
            np.testing.assert_array_equal(ds[kinds[f.kind]].isel(patch=p).values, src.read())
    assert list(ds.split.values) == ["test", "test", "val", "val"]


def test_mono_temporal_scenes_beyond_the_time_series_rois_are_kept(tmp_path: Path) -> None:
    root = make_dataset(
        tmp_path / "cr", ["ROIs1158/106"], patches_per_roi=1, size=32, layout="sen12mscr", workers=1, progress=False
    )
    for path in sorted(root.glob("ROIs1158_*/**/*_106*"), key=lambda p: -len(p.parts)):  # files, then folders
        path.rename(path.with_name(path.name.replace("_106", "_12")))
    convert(root, tmp_path / "cr.zarr", workers=1, progress=False)
    ds = open_cube(tmp_path / "cr.zarr")
    assert list(ds.roi.values) == [12] and list(ds.split.values) == ["unlisted"]
    convert(root, tmp_path / "train.zarr", split="train", workers=1, progress=False)  # listed s1_1 takes s1_12
    assert list(open_cube(tmp_path / "train.zarr").roi.values) == [12]
    with pytest.raises(ValueError, match="no patches"):
        convert(root, tmp_path / "test.zarr", split="test", workers=1, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["while creating the store", "after some patches"])
def test_kill_9_then_resume_gives_the_same_cube(
    synthetic_root: Path, default_cube: Path, tmp_path: Path, moment: str
) -> None:
    dst = tmp_path / "cube.zarr"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crts",
            "convert",
            str(synthetic_root),
            str(dst),
            "--workers",
            "1",
            "--detectors",
            "none",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if moment == "while creating the store":
        kill_when(proc, lambda: (dst / "cube_state" / "zarr.json").exists())
    else:
        kill_when(proc, lambda: len(list(dst.glob("S2/c/*"))) >= 3)
        done = int(zarr.open_array(dst / "valid", mode="r")[:].all(axis=(1, 2)).sum())
    if dst.exists():
        with pytest.raises(IncompleteCubeError, match="--resume"):
            open_cube(dst)
        with pytest.raises(ValueError, match="unfinished conversion"):
            convert(synthetic_root, dst, workers=1, clouds=(), progress=False)
    report = convert(synthetic_root, dst, resume=True, workers=1, clouds=(), progress=False)
    if moment == "after some patches":
        assert report.patches_converted == 8 - done  # patches whose valid rows were written are not redone
    assert open_cube(dst).sizes["patch"] == 8
    assert checksums(dst) == checksums(default_cube)


def test_an_existing_dask_cluster_does_the_work(tiny_root: Path, tiny_cube: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        convert(tiny_root, tmp_path / "c.zarr", scheduler=cluster.scheduler_address, progress=False)
    xr.testing.assert_identical(
        open_cube(tmp_path / "c.zarr").S2.reset_coords(drop=True), open_cube(tiny_cube).S2.reset_coords(drop=True)
    )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("clouds", ("fmask",), "invalid detector 'fmask'"),
        ("split", "tset", "invalid split 'tset'"),
        ("tile", 7, "invalid tile 7 px"),
        ("on_error", "ignore", "invalid on_error 'ignore'"),
    ],
)
def test_a_bad_argument_is_refused_before_anything_is_written(
    tiny_root: Path, tmp_path: Path, option: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        convert(tiny_root, tmp_path / "cube.zarr", workers=1, progress=False, **{option: value})
    assert not (tmp_path / "cube.zarr").exists()


def test_patch_index_refuses_a_roi_number_alone(tiny_cube: Path) -> None:
    with pytest.raises(ValueError, match=r"invalid ROI 63: give it as 'ROIsXXXX/NN'"):
        patch_index(open_cube(tiny_cube), 63, 490)


def test_images_are_stored_in_tiles_and_a_window_reads_the_same_pixels(tiny_root: Path, tmp_path: Path) -> None:
    tiled, whole = tmp_path / "tiled.zarr", tmp_path / "whole.zarr"
    convert(tiny_root, tiled, workers=1, tile=16, progress=False)
    convert(tiny_root, whole, workers=1, tile=32, progress=False)
    a, b = zarr.open_group(tiled, mode="r"), zarr.open_group(whole, mode="r")
    assert a["S2"].chunks == (1, 1, 13, 16, 16) and a["S2"].shards == (1, 4, 13, 32, 32)
    assert a["s2cloudless_mask"].chunks == (1, 1, 16, 16) and b["S2"].chunks == (1, 1, 13, 32, 32)
    for name in ("S2", "S1", "s2cloudless_mask", "coverage"):
        np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
    np.testing.assert_array_equal(a["S2"][1, 2, :, 5:21, 9:30], b["S2"][1, 2][:, 5:21, 9:30])
    with pytest.raises(ValueError, match=r"invalid tile 12 px: it must divide the patch size \(32 px\)"):
        convert(tiny_root, tmp_path / "bad.zarr", workers=1, tile=12, progress=False)
    assert not (tmp_path / "bad.zarr" / "S2").exists()
