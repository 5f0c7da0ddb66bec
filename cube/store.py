"""Opening a cube, its completeness marker, and georeferenced views of its patches."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr
from natsort import natsort_keygen
from rasterio.transform import Affine

from .rois import GROUPS, Roi
from .schema import SCHEMA_VERSION


class IncompleteCubeError(RuntimeError):
    """The store exists but its conversion has not finished."""


def open_cube(path: str | os.PathLike, *, chunks: dict | None | str = "inner",
              allow_incomplete: bool = False) -> xr.Dataset:
    """Open a cube written by :func:`cube.convert` as an :class:`xarray.Dataset`.

    Patches come in the original toolbox's sample order for split 'all' (ROI
    groups, then ROIs in table order, then patch numbers in natural order), also
    after ROIs were appended in another order.

    Parameters
    ----------
    path : path
        The cube (a Zarr v3 store).
    chunks : "inner", dict or None
        ``"inner"`` (default): one dask chunk per stored image (one patch, one
        time step); ``None``: no dask, lazy numpy-backed arrays; a dict as in
        :func:`xarray.open_zarr`.
    allow_incomplete : bool
        Open a cube whose conversion has not finished (for inspection only).

    Raises
    ------
    FileNotFoundError
        If there is no cube at ``path``.
    IncompleteCubeError
        If the conversion that writes it was interrupted or is still running.

    Examples
    --------
    >>> ds = open_cube("cube.zarr")  # doctest: +SKIP
    >>> ds.S2.sel(S2_band=["B4", "B3", "B2"]).isel(patch=0, time=5)  # doctest: +SKIP
    """
    path = Path(path)
    if not (path / "zarr.json").exists():
        raise FileNotFoundError(f"{path}: no cube here (no zarr.json)")
    ds = xr.open_zarr(path, consolidated=False, chunks={} if chunks == "inner" else chunks)
    if ds.attrs.get("schema_version") != SCHEMA_VERSION:
        raise FileNotFoundError(f"{path}: not a cube of schema version {SCHEMA_VERSION} "
                                f"(found {ds.attrs.get('schema_version')})")
    if not ds.attrs.get("complete") and not allow_incomplete:
        raise IncompleteCubeError(f"{path}: the conversion writing this cube did not finish; "
                                  "re-run `crts convert ... --resume` to complete it")
    ds = ds.assign_coords({name: ds[name].load() for name in ds.coords})  # labels are small: load them
    order = sample_order(ds)
    if not np.array_equal(order, np.arange(ds.sizes["patch"])):
        ds = ds.isel(patch=order)
    return ds


def sample_order(ds: xr.Dataset) -> np.ndarray:
    """Positions that sort the patches in the original's sample order.

    ROI groups in their order, ROIs (SEN12MS-CR: scenes) by number, which is the
    ROI table's order, then patch numbers in natural order.
    """
    natural = natsort_keygen()
    keys = [(GROUPS.index(str(g)), int(r), natural(str(p)))
            for g, r, p in zip(ds.roi_group.values, ds.roi.values, ds.patch_id.values, strict=True)]
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=int)


def stored_order(path: str | os.PathLike) -> np.ndarray:
    """For each patch in sample order (as :func:`open_cube` gives them), its position in the store."""
    group = zarr.open_group(path, mode="r")
    return sample_order(xr.Dataset({name: ("patch", group[name][:]) for name in ("roi_group", "roi", "patch_id")}))


def patch_bounds(ds: xr.Dataset) -> np.ndarray:
    """Bounds (left, bottom, right, top) of every patch in its CRS, shape (patch, 4)."""
    t, width, height = ds.transform.values, ds.sizes["x"], ds.sizes["y"]
    return np.stack([t[:, 2], t[:, 5] + t[:, 4] * height, t[:, 2] + t[:, 0] * width, t[:, 5]], axis=1)


def patch_index(ds: xr.Dataset, roi: str | Roi, patch_id: int) -> int:
    """Position of a patch along the ``patch`` dimension, by ROI and patch number."""
    roi = roi if isinstance(roi, Roi) else Roi.parse(roi, known=False)
    hits = np.flatnonzero((ds.roi_group.values == roi.group) & (ds.roi.values == roi.number)
                          & (ds.patch_id.values == patch_id))
    if len(hits) != 1:
        raise KeyError(f"patch {patch_id} of {roi} is not in the cube")
    return int(hits[0])


def georeferenced(ds: xr.Dataset, patch: int, variable: str = "S2") -> xr.DataArray:
    """One patch of a variable with x/y coordinates, CRS and transform set (rioxarray).

    ``patch`` is a position along the ``patch`` dimension (see :func:`patch_index`).

    Examples
    --------
    >>> s2 = georeferenced(ds, patch_index(ds, "ROIs1868/17", 352))  # doctest: +SKIP
    >>> s2.rio.crs, s2.rio.bounds()  # doctest: +SKIP
    """
    one = ds[variable].isel(patch=patch)
    transform = Affine(*ds.transform.isel(patch=patch).values.tolist())
    cols, rows = np.arange(one.sizes["x"]) + 0.5, np.arange(one.sizes["y"]) + 0.5
    one = one.assign_coords(x=("x", transform.c + transform.a * cols, {"units": "m"}),
                            y=("y", transform.f + transform.e * rows, {"units": "m"}))
    return (one.rio.write_crs(f"EPSG:{int(ds.epsg.isel(patch=patch))}")
            .rio.write_transform(transform))
