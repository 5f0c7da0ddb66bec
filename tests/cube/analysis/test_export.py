"""Files of one patch (cube.analysis.export): georeferenced GeoTIFFs and netCDF, written whole or not at all."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
import zarr

from cube import georeferenced, open_cube
from cube.analysis.export import to_geotiff, to_netcdf


def test_a_netcdf_of_a_patch_reads_back_with_its_crs_and_transform(tiny_cube: Path, tmp_path: Path) -> None:
    pytest.importorskip("netCDF4")
    ds = open_cube(tiny_cube)
    to_netcdf(ds, 4, tmp_path / "p.nc", ["S2", "s2cloudless_mask"], time=[1, 3])
    expected = georeferenced(ds, 4)
    with xr.open_dataset(tmp_path / "p.nc", decode_coords="all") as back:
        for name in ("S2", "s2cloudless_mask"):
            assert back[name].encoding["grid_mapping"] == "spatial_ref"
            assert back[name].rio.crs == expected.rio.crs and back[name].rio.transform() == expected.rio.transform()
        assert back.x.attrs["standard_name"] == "projection_x_coordinate" and back.y.attrs["units"] == "metre"
        np.testing.assert_array_equal(back.S2.values, ds.S2.isel(patch=4, time=[1, 3]).values)
        np.testing.assert_array_equal(back.S2_date.values, ds.S2_date.isel(patch=4, time=[1, 3]).values)
        assert back.S2.attrs["units"] == "1e-4" and back.attrs["Conventions"] == "CF-1.8"


def test_a_geotiff_has_the_date_and_a_gap_its_nodata(tiny_cube: Path, tmp_path: Path) -> None:
    cube = tmp_path / "cube.zarr"
    shutil.copytree(tiny_cube, cube)
    zarr.open_array(cube / "valid", mode="r+")[2, 1, 1] = False  # S2 of patch 2, step 1: a gap, as converted
    zarr.open_array(cube / "S2", mode="r+")[2, 1] = 0  # (its fill value)
    ds = open_cube(cube)
    for patch, nodata in ((0, None), (2, 0)):  # a valid image, the gap
        to_geotiff(ds, patch, 1, tmp_path / f"{patch}.tif", bands=["B4", "B3", "B2"])
        expected = georeferenced(ds, patch)
        with rasterio.open(tmp_path / f"{patch}.tif") as src:
            assert src.nodata == nodata and src.descriptions == ("B4", "B3", "B2")
            assert src.crs == expected.rio.crs and src.transform == expected.rio.transform()
            day = pd.Timestamp(ds.S2_date.isel(patch=patch, time=1).values)
            assert src.tags()["ACQUISITION_DATE"] == f"{day:%Y-%m-%d}"
            assert src.tags()["TIFFTAG_DATETIME"] == f"{day:%Y:%m:%d} 00:00:00"
            np.testing.assert_array_equal(
                src.read(), ds.S2.isel(patch=patch, time=1).sel(S2_band=["B4", "B3", "B2"]).values
            )
    with rasterio.open(tmp_path / "2.tif") as src:
        assert src.read(masked=True).mask.all()  # the gap reads as nodata everywhere
    to_geotiff(ds, 2, 1, tmp_path / "s1.tif", "S1")
    with rasterio.open(tmp_path / "s1.tif") as src:
        day = pd.Timestamp(ds.S1_date.isel(patch=2, time=1).values)
        assert src.tags()["ACQUISITION_DATE"] == f"{day:%Y-%m-%d}" and src.descriptions == ("VV", "VH")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ds, path: to_geotiff(ds, 0, [1, 2], path), "invalid time \\[1, 2\\]: give one time step 0..3"),
        (lambda ds, path: to_geotiff(ds, 0, 1, path, "coverage"), "unknown variable 'coverage': choose from"),
        (lambda ds, path: to_geotiff(ds, 0, 1, path, bands=["B99"]), "invalid bands \\['B99'\\]"),
        (lambda ds, path: to_netcdf(ds, 6, path), "invalid patch 6: give a position 0..5"),
        (lambda ds, path: to_netcdf(ds, 0, path, time=4), "invalid time 4: give time steps 0..3"),
    ],
    ids=["several steps", "not an image", "band", "patch", "step"],
)
def test_a_refused_export_writes_nothing(tiny_cube: Path, tmp_path: Path, call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as refused:
        call(open_cube(tiny_cube), tmp_path / "x.out")
    assert "\n" not in str(refused.value) and not list(tmp_path.iterdir())


def test_an_existing_file_stays_unless_overwritten_and_a_failed_write_leaves_none(
    tiny_cube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("netCDF4")
    ds, target = open_cube(tiny_cube), tmp_path / "x.nc"
    target.write_text("mine")
    with pytest.raises(ValueError, match=f"{target}: exists; pass overwrite=True"):
        to_netcdf(ds, 0, target)
    assert target.read_text() == "mine"

    def half_a_file(self: xr.Dataset, path: Path, **kwargs: object) -> None:
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(xr.Dataset, "to_netcdf", half_a_file)
        with pytest.raises(OSError, match="disk full"):
            to_netcdf(ds, 0, target, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["x.nc"] and target.read_text() == "mine"
    to_netcdf(ds, 0, target, overwrite=True)
    with xr.open_dataset(target) as back:
        assert back.sizes["time"] == 4 and "S1" in back


def test_a_netcdf_export_warns_nothing(tiny_cube: Path, tmp_path: Path) -> None:
    """The merge of a patch's variables passes xarray's combine options (compat, join) that keep today's result,
    so xarray's FutureWarning about their defaults changing is not raised (here: an error)."""
    pytest.importorskip("netCDF4")
    ds = open_cube(tiny_cube)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_netcdf(ds, 1, tmp_path / "p.nc", time=[0, 2])
    with xr.open_dataset(tmp_path / "p.nc") as back:
        assert set(back.data_vars) >= {"S1", "S2", "s2cloudless_mask", "cloud_cloudshadow_mask"}
        np.testing.assert_array_equal(back.S1.values, ds.S1.isel(patch=1, time=[0, 2]).values)
