"""Files of one patch: a GeoTIFF of one image, a netCDF of its variables, georeferenced, whole or not at all.

Both write a temporary file beside the target and rename it to the target only
once it is complete, so an export that fails or is interrupted leaves no partial
file (and an existing target untouched). Bad selections are refused with a
one-line ValueError before anything is written. The georeference (CRS,
transform, CF grid mapping ``spatial_ref``) is :func:`cube.georeferenced`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..store.outputs import replacing
from ..store.views import georeferenced


def image_variables(ds: xr.Dataset) -> list[str]:
    """Variables of a cube that hold images (``y`` and ``x`` among their dimensions): what can be exported."""
    return [str(name) for name, v in ds.data_vars.items() if {"y", "x"} <= set(v.dims)]


def _target(path: str | os.PathLike, overwrite: bool) -> Path:
    target = Path(path)
    if target.exists() and not overwrite:
        raise ValueError(f"{target}: exists; pass overwrite=True to replace it")
    if not target.parent.is_dir():
        raise ValueError(f"{target}: its folder {target.parent} does not exist")
    return target


def _check(ds: xr.Dataset, patch: int, variables: list[str]) -> None:
    known = image_variables(ds)
    unknown = [name for name in variables if name not in known]
    if unknown or not variables:
        raise ValueError(
            f"unknown variable {', '.join(map(repr, unknown)) or '(none)'}: choose from {', '.join(known)}"
        )
    if isinstance(patch, bool) or not isinstance(patch, int | np.integer) or not 0 <= patch < ds.sizes["patch"]:
        raise ValueError(f"invalid patch {patch!r}: give a position 0..{ds.sizes['patch'] - 1} (cube.patch_index)")


def _steps(ds: xr.Dataset, time: object, several: bool) -> dict:
    """The ``isel`` of the time steps chosen (``{}``: all, or a cube without time); ``several``: a list may be."""
    if time is None and ("time" not in ds.dims or several):
        return {}
    steps = time if several and isinstance(time, list | tuple) else [time]
    if "time" not in ds.dims or not all(
        isinstance(t, int | np.integer) and not isinstance(t, bool) and 0 <= t < ds.sizes["time"] for t in steps
    ):
        allowed = (
            "no time step (the cube has none)"
            if "time" not in ds.dims
            else f"time steps 0..{ds.sizes['time'] - 1}"
            if several
            else f"one time step 0..{ds.sizes['time'] - 1} (a GeoTIFF holds one image)"
        )
        raise ValueError(f"invalid time {time!r}: give {allowed}")
    return {"time": time}


def _modality(ds: xr.Dataset, variable: str) -> str:
    """The modality whose image a variable is (or is computed from: the cloud masks are S2's)."""
    return variable if variable in ds.modality.values else "S2"


def _date_tags(ds: xr.Dataset, modality: str, where: dict) -> dict[str, str]:
    """GeoTIFF tags of an image's acquisition date (none where the cube has no dates, or the image is a gap)."""
    name = f"{modality}_date"
    date = ds[name].isel(where).values if name in ds.coords else np.datetime64("NaT")
    if np.isnat(date):
        return {}
    day = pd.Timestamp(date)
    return {"ACQUISITION_DATE": f"{day:%Y-%m-%d}", "TIFFTAG_DATETIME": f"{day:%Y:%m:%d %H:%M:%S}"}


def to_geotiff(
    ds: xr.Dataset,
    patch: int,
    time: int | None,
    path: str | os.PathLike,
    variable: str = "S2",
    *,
    bands: list[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one image of a patch to a GeoTIFF in the patch's UTM CRS; returns its path.

    Bands are named by their labels; the tags ``ACQUISITION_DATE`` (``YYYY-MM-DD``)
    and ``TIFFTAG_DATETIME`` give the image's acquisition date (``S1_date`` for
    ``S1``, else ``S2_date``). An image that is a gap (``valid`` False) gets the
    variable's fill value as nodata (float variables always have NaN as nodata).

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (:func:`cube.open_cube`).
    patch : int
        Position along ``patch`` (:func:`cube.patch_index`).
    time : int or None
        The time step (None for a cube without time, SEN12MS-CR).
    path : path
        The GeoTIFF to write.
    variable : str
        An image variable (:func:`image_variables`): ``S2``, ``S1``, a cloud mask, ...
    bands : list of str, optional
        Band labels to write, in that order (default all).
    overwrite : bool
        Replace an existing file.

    Raises
    ------
    ValueError
        Before writing anything: an unknown variable or band, a patch or time step
        out of range, several time steps, or an existing file without ``overwrite``.

    Examples
    --------
    >>> to_geotiff(ds, patch_index(ds, "ROIs1868/17", 352), 5, "b432.tif", bands=["B4", "B3", "B2"])  # doctest: +SKIP
    """
    target = _target(path, overwrite)
    _check(ds, patch, [variable])
    steps = _steps(ds, time, several=False)
    band = next((d for d in ds[variable].dims if isinstance(d, str) and d.endswith("_band")), None)
    unknown = [b for b in bands or () if band is None or b not in ds[band].values]
    if unknown or (bands is not None and not bands):
        raise ValueError(
            f"invalid bands {bands!r}: {variable} has bands "
            f"{', '.join(map(str, ds[band].values)) if band else '(none)'}"
        )
    image = georeferenced(ds, patch, variable, bands).isel(steps).load()
    where = {"patch": patch, **steps}
    modality = _modality(ds, variable)
    if not bool(ds.valid.isel(where).sel(modality=modality)) and "_FillValue" not in image.encoding:
        image = image.rio.write_nodata(image.encoding["fill_value"])
    with replacing(target) as partial:
        image.rio.to_raster(partial, driver="GTiff", tags=_date_tags(ds, modality, where))
    return target


def to_netcdf(
    ds: xr.Dataset,
    patch: int,
    path: str | os.PathLike,
    variables: list[str] | None = None,
    *,
    time: int | list[int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a patch's image variables to a netCDF-4 file with its CF grid mapping; returns its path.

    x/y are the patch's UTM coordinates and ``spatial_ref`` its CRS and transform,
    so ``xr.open_dataset(path, decode_coords="all").S2.rio.crs`` is the patch's
    CRS. Labels, dates and the variables' own attributes come along.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (:func:`cube.open_cube`).
    patch : int
        Position along ``patch`` (:func:`cube.patch_index`).
    path : path
        The netCDF file to write.
    variables : list of str, optional
        Image variables (:func:`image_variables`; default all of them).
    time : int or list of int, optional
        Time steps (default all).
    overwrite : bool
        Replace an existing file.

    Raises
    ------
    ValueError
        Before writing anything: an unknown variable, a patch or time step out of
        range, or an existing file without ``overwrite``.

    Examples
    --------
    >>> to_netcdf(ds, patch_index(ds, "ROIs1868/17", 352), "patch.nc", ["S2", "s2cloudless_mask"])  # doctest: +SKIP
    """
    target = _target(path, overwrite)
    names = image_variables(ds) if variables is None else list(variables)
    _check(ds, patch, names)
    steps = _steps(ds, time, several=True)
    parts = []
    for name in names:
        one = georeferenced(ds, patch, name).isel(steps)
        one.attrs = dict(ds[name].attrs)  # band labels are a coordinate: netCDF keeps the variable's own long_name
        parts.append(one)
    # compat and join: xarray's defaults until they change (passed, xarray does not warn that they will)
    out = xr.merge(parts, compat="no_conflicts", join="outer", combine_attrs="override")
    out.attrs = {**ds.attrs, "Conventions": "CF-1.8"}
    with replacing(target) as partial:
        out.to_netcdf(partial, engine="netcdf4")
    return target
