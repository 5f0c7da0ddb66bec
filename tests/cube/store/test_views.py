"""cube.store.views: a converted cube works with plain xarray, matplotlib and rioxarray, without project code, and
open_cube's views of it (labels, georeferenced patches) agree with the cube."""

from __future__ import annotations

import shutil
from pathlib import Path

import dask
import matplotlib
import numpy as np
import pytest
import rasterio
import xarray as xr
import zarr

from cube import georeferenced, open_cube
from cube.dataset.layout import scan_ts
from cube.dataset.rois import PatchLabel
from cube.store.views import patch_index, patch_labels

matplotlib.use("Agg")


def test_plain_xarray_plots_every_patch_north_up(tiny_cube: Path) -> None:
    ds = xr.open_zarr(tiny_cube, consolidated=False)
    size = ds.sizes["y"]
    np.testing.assert_array_equal(ds.y.values, (np.arange(size)[::-1] + 0.5) * 10.0)
    np.testing.assert_array_equal(ds.x.values, (np.arange(size) + 0.5) * 10.0)
    assert ds.y.attrs["units"] == ds.x.attrs["units"] == "m"
    rgb = ds.S2.sel(S2_band=["B4", "B3", "B2"]).isel(patch=0, time=1)
    image = rgb.plot.imshow(robust=True)
    bottom, top = image.axes.get_ylim()
    assert image.origin == "upper" and bottom < top
    assert image.get_extent()[3] == top  # row 0 is drawn at the top of the axes


@pytest.mark.parametrize("selection", [{"patch": 0, "time": 0}, {}], ids=["one image", "whole cube"])
def test_any_selection_exports_to_netcdf_and_reads_back(tiny_cube: Path, tmp_path: Path, selection: dict) -> None:
    pytest.importorskip("netCDF4", reason="netCDF3 (scipy) has no unsigned integers; the cube needs netCDF4")
    for ds in (xr.open_zarr(tiny_cube, consolidated=False), open_cube(tiny_cube)):
        part = ds.isel(selection)
        part.to_netcdf(tmp_path / "x.nc")
        with xr.open_dataset(tmp_path / "x.nc") as back:
            xr.testing.assert_identical(back.load(), part.load())  # values, labels, dates and attributes


def test_a_georeferenced_image_exports_to_geotiff_with_band_names(tiny_cube: Path, tmp_path: Path) -> None:
    ds = open_cube(tiny_cube)
    image = georeferenced(ds, 1).isel(time=2)
    image.rio.to_raster(tmp_path / "x.tif")
    with rasterio.open(tmp_path / "x.tif") as src:
        assert src.descriptions == tuple(ds.S2_band.values)
        assert src.transform == image.rio.transform() and src.crs == image.rio.crs
        np.testing.assert_array_equal(src.read(), ds.S2.isel(patch=1, time=2).values)
    georeferenced(ds, 1, bands=["B4", "B3", "B2"]).isel(time=2).rio.to_raster(tmp_path / "rgb.tif")
    with rasterio.open(tmp_path / "rgb.tif") as src:
        assert src.descriptions == ("B4", "B3", "B2")
        np.testing.assert_array_equal(src.read(), ds.S2.isel(patch=1, time=2).sel(S2_band=["B4", "B3", "B2"]).values)


def test_bands_carry_wavelengths_and_cloud_parameters_are_numbers(tiny_cube: Path) -> None:
    ds = xr.open_zarr(tiny_cube, consolidated=False)
    wavelength = ds.S2_wavelength.sel(S2_band=["B2", "B8A", "B12"])
    np.testing.assert_allclose(wavelength.values, [492.4, 864.7, 2202.4], rtol=1e-6)
    assert wavelength.attrs["units"] == "nm"
    parameters = {
        name: value
        for var in ("s2cloudless_probability", "s2cloudless_mask", "cloud_cloudshadow_mask")
        for name, value in ds[var].attrs.items()
        if "threshold" in name or name.startswith("s2cloudless_")
    }
    assert parameters["s2cloudless_threshold"] == 0.4 and parameters["s2cloudless_all_bands"] == 1
    assert all(isinstance(value, int | float) for value in parameters.values())


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_images_say_what_their_numbers_are_also_in_cubes_written_before(tiny_cube: Path, tmp_path: Path) -> None:
    cube = tmp_path / "cube.zarr"
    shutil.copytree(tiny_cube, cube)
    before = {
        "S2": {
            "long_name": "Sentinel-2 L1C top-of-atmosphere reflectance x 10000",
            "units": "1",
            "reflectance_scale": 10000.0,
        },
        "S1": {"long_name": "Sentinel-1 GRD backscatter (VV, VH)", "units": "dB"},
    }
    for name, attrs in before.items():  # the descriptions that cubes were written with before
        array = zarr.open_array(cube / name, mode="r+")
        array.attrs.put({**{k: v for k, v in array.attrs.items() if k not in ("standard_name", "comment")}, **attrs})
    zarr.consolidate_metadata(str(cube))
    assert xr.open_zarr(cube).S2.attrs["units"] == "1"
    ds = open_cube(cube)
    assert ds.S2.attrs["units"] == "1e-4" and ds.S2.attrs["standard_name"] == "toa_bidirectional_reflectance"
    assert ds.S1.attrs["units"] == "dB" and ds.S1.attrs["standard_name"].startswith("surface_backwards_scattering")
    image = ds.S2.sel(S2_band="B4").isel(patch=0, time=1).plot.imshow()
    assert image.colorbar.ax.get_ylabel().replace("\n", "") == "Sentinel-2 L1C top-of-atmosphere reflectance [1e-4]"
    assert ds.s2cloudless_probability.attrs["units"] == ds.s2cloudless_map.attrs["units"] == "1"
    assert "units" not in ds.s2cloudless_mask.attrs  # flags (CF flag_values) have no units


@pytest.mark.parametrize("chunks", ["inner", None])
def test_the_packed_cloud_probability_opens_as_float32_of_the_same_numbers(tiny_cube: Path, chunks: str | None) -> None:
    probability = open_cube(tiny_cube, chunks=chunks).s2cloudless_probability
    as_float64 = xr.open_zarr(tiny_cube).s2cloudless_probability.values  # xarray's own decoding
    assert as_float64.dtype == np.float64 and probability.dtype == np.float32
    assert probability.nbytes == as_float64.nbytes // 2
    stored = zarr.open_array(tiny_cube / "s2cloudless_probability")[:]
    assert len(np.unique(stored)) > 20  # many distinct levels are compared
    np.testing.assert_array_equal(probability.values, as_float64.astype(np.float32))  # NaN for gaps alike


def test_where_selects_patches_by_label_and_groupby_takes_months(tiny_cube: Path) -> None:
    ds = open_cube(tiny_cube)
    test = ds.where(ds.split == "test", drop=True)
    assert set(test.split.values) == {"test"} and test.sizes["patch"] == 3
    np.testing.assert_array_equal(test.S2.values, ds.S2.isel(patch=ds.split == "test").values)
    np.testing.assert_array_equal(test.S2_path.values, ds.S2_path.isel(patch=ds.split == "test").values)
    by_month = ds.coverage.groupby("S2_date.month").mean()
    assert set(by_month.month.values) == set(np.unique(ds.S2_date.dt.month.values))


def test_plain_xarray_refuses_lazy_labels_as_indexer_and_grouper(tiny_cube: Path) -> None:
    """Why docs/schema.md gives other spellings for plain xr.open_zarr: its labels and dates stay dask arrays."""
    ds = xr.open_zarr(tiny_cube)
    assert dask.is_dask_collection(ds.split.data) and dask.is_dask_collection(ds.S2_date.data)
    with pytest.raises(KeyError, match="boolean dask array"):
        ds.where(ds.split == "test", drop=True)
    with pytest.raises(ValueError, match="chunked array"):
        ds.coverage.groupby("S2_date.month").mean()


def test_plain_xarray_selects_by_labels_and_groups_by_month(tiny_cube: Path) -> None:
    ds = xr.open_zarr(tiny_cube)
    split, roi_group, roi = ds.split.values, ds.roi_group.values, ds.roi.values
    by_label = ds.set_xindex(["roi_group", "roi"]).sel(roi_group="ROIs2017", roi=32)
    in_roi = (roi_group == "ROIs2017") & (roi == 32)
    np.testing.assert_array_equal(by_label.patch_id.values, ds.patch_id.values[in_roi])
    np.testing.assert_array_equal(by_label.S2.values, ds.S2.values[in_roi])
    test = ds.where((ds.split == "test").compute(), drop=True)
    assert dask.is_dask_collection(test.S2.data) and set(test.split.values) == {"test"}
    np.testing.assert_array_equal(test.S2.values, ds.S2.values[split == "test"])
    by_month = ds.coverage.groupby(ds.S2_date.dt.month.compute()).mean()
    loaded = ds.assign_coords({name: ds[name].load() for name in ds.coords})  # then the usual spellings work
    natural = loaded.coverage.groupby("S2_date.month").mean()
    np.testing.assert_array_equal(natural.month.values, by_month.month.values)
    np.testing.assert_allclose(natural.values, by_month.values)
    xr.testing.assert_identical(loaded.where(loaded.split == "test", drop=True).load(), test.load())
    months = ds.S2_date.dt.month.values
    np.testing.assert_allclose(
        by_month.sel(month=months[0, 0]).values,
        np.nanmean(ds.coverage.values[months == months[0, 0]], axis=0),
        rtol=1e-6,
    )


def test_patch_labels_are_the_inverse_of_patch_index(tiny_cube: Path, tiny_root: Path) -> None:
    ds = open_cube(tiny_cube)
    labels = patch_labels(ds)
    assert sorted(labels) == sorted({PatchLabel(f.roi, f.pid) for f in scan_ts(tiny_root)[0]})
    assert [patch_index(ds, label.roi, label.patch_id) for label in labels] == list(range(ds.sizes["patch"]))
