"""Views of a cube as xarray objects: the cube opened as a Dataset, the order and labels of its patches, and
georeferenced patches.

:func:`open_cube` opens a cube through :class:`cube.store.store.CubeStore` (checking its state) with its
patches in the original toolbox's sample order; the other functions work on the Dataset it gives (or one with
the same coordinates), :func:`stored_order` on the store.
"""

from __future__ import annotations

import os
from collections.abc import Hashable

import numpy as np
import xarray as xr
from natsort import natsort_keygen

from ..dataset.rois import GROUPS, PatchLabel, Roi
from .reads import labels_of
from .schema import DESCRIPTIONS
from .store import CubeStore, as_store, checked_state


def open_cube(
    path: str | os.PathLike | CubeStore,
    *,
    chunks: dict | str | None = "patch",
    allow_incomplete: bool = False,
    storage_options: dict | None = None,
) -> xr.Dataset:
    """Open a cube written by :func:`cube.convert` as an :class:`xarray.Dataset`.

    Patches come in the original toolbox's sample order for split 'all' (ROI
    groups, then ROIs in table order, then patch numbers in natural order), also
    after ROIs were appended in another order. The attribute ``cloud_detectors``
    names the detectors of the cube's finished cloud pass, separated by spaces (``""``: none).

    Parameters
    ----------
    path : path, str or CubeStore
        The cube: a path, or a ``s3://``, ``gs://``, ``http(s)://``, ``file://``
        or ``memory://`` URL.
    chunks : "patch", "inner", dict or None
        ``"patch"`` (default): one dask chunk per patch (a stored shard: all its
        time steps) of the image and mask variables, one for each smaller variable;
        a computation reads only the images it selects. ``"inner"``: one dask chunk
        per stored image (one patch, one time step): 30 times more chunks, which
        dask pays for at every computation (0.4 s per image read at 15,600 patches,
        docs/scale-out.md). ``None``: no dask, lazy numpy-backed arrays. A dict:
        dask chunks by dimension, as for :meth:`xarray.Dataset.chunk`.
    allow_incomplete : bool
        Open a cube whose conversion has not finished (for inspection only).
    storage_options : dict, optional
        Object-store options (endpoint, region, credentials, ``anon``); by
        default the standard environment variables are used.

    Raises
    ------
    FileNotFoundError
        If there is no cube at ``path``.
    cube.store.store.IncompleteCubeError
        If the conversion that writes it was interrupted or is still running.

    Examples
    --------
    >>> ds = open_cube("cube.zarr")  # doctest: +SKIP
    >>> ds.S2.sel(S2_band=["B4", "B3", "B2"]).isel(patch=0, time=5)  # doctest: +SKIP
    """
    store = as_store(path, storage_options=storage_options)
    try:
        ds = store.dataset(chunks=None, load_coordinates=True)  # labels are small: read them, all at once
    except Exception:
        checked_state(store, allow_incomplete)  # says why in one line where it can: no cube, an old or partial one
        raise
    state = checked_state(store, allow_incomplete, ds.attrs)
    ds.attrs["cloud_detectors"] = " ".join(state.cloud_detectors())  # a string: netCDF-safe
    for name in DESCRIPTIONS.keys() & ds.data_vars.keys():  # cubes written with older descriptions show today's
        ds[name].attrs.update(DESCRIPTIONS[name])
    order = sample_order(ds)
    if not np.array_equal(order, np.arange(ds.sizes["patch"])):
        ds = ds.isel(patch=order)  # lazy: composes with later selections, before any dask graph exists
    return ds if chunks is None else _chunked(ds, chunks)


def _chunked(ds: xr.Dataset, chunks: str | dict) -> xr.Dataset:
    """The data variables as dask arrays (see :func:`open_cube`'s ``chunks``)."""
    if isinstance(chunks, dict):
        return ds.chunk(chunks)
    if chunks not in ("patch", "inner"):
        raise ValueError(f"invalid chunks {chunks!r}: give 'patch', 'inner', None or a dict of dimension sizes")
    out = ds.copy()
    for name in ds.data_vars:
        variable = ds[name].variable  # (a DataArray's chunk would chunk its coordinates too)
        image = "y" in variable.dims and "patch" in variable.dims
        per: dict[Hashable, int] = {
            "patch": 1,
            **({"time": 1} if chunks == "inner" and "time" in variable.dims else {}),
        }
        out[name] = variable.chunk({d: per.get(d, -1) for d in variable.dims} if image else -1)
    return out


def finished_detectors(ds: xr.Dataset) -> tuple[str, ...]:
    """The detectors of the finished cloud pass of a cube opened by :func:`open_cube`."""
    return tuple(ds.attrs.get("cloud_detectors", "").split())


def sample_order(ds: xr.Dataset) -> np.ndarray:
    """Positions that sort the patches in the original's sample order.

    ROI groups in their order, ROIs (SEN12MS-CR: scenes) by number, which is the
    ROI table's order, then patch numbers in natural order.
    """
    natural = natsort_keygen()
    keys = [
        (GROUPS.index(str(g)), int(r), natural(str(p)))
        for g, r, p in zip(ds.roi_group.values, ds.roi.values, ds.patch_id.values, strict=True)
    ]
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=int)


def stored_order(store: CubeStore) -> np.ndarray:
    """For each patch in sample order (as :func:`open_cube` gives them), its position in the store."""
    return sample_order(
        xr.Dataset({name: ("patch", store.array(name)[:]) for name in ("roi_group", "roi", "patch_id")})
    )


def patch_bounds(ds: xr.Dataset) -> np.ndarray:
    """Bounds (left, bottom, right, top) of every patch in its CRS, shape (patch, 4)."""
    t, width, height = ds.transform.values, ds.sizes["x"], ds.sizes["y"]
    return np.stack([t[:, 2], t[:, 5] + t[:, 4] * height, t[:, 2] + t[:, 0] * width, t[:, 5]], axis=1)


def patch_labels(ds: xr.Dataset) -> list[PatchLabel]:
    """The label of every patch along the ``patch`` dimension, from the coordinates ``roi_group``, ``roi`` and
    ``patch_id`` (the inverse of :func:`patch_index`)."""
    return labels_of(ds.roi_group.values, ds.roi.values, ds.patch_id.values)


def patch_index(ds: xr.Dataset, roi: str | Roi, patch_id: int) -> int:
    """Position of a patch along the ``patch`` dimension, by ROI (``'ROIsXXXX/NN'`` or a :class:`Roi`) and
    patch number.

    Raises
    ------
    ValueError
        If ``roi`` is neither a :class:`Roi` nor a string such as ``'ROIs1868/17'``.
    KeyError
        If the cube holds no such patch.
    """
    if not isinstance(roi, str | Roi):
        raise ValueError(f"invalid ROI {roi!r}: give it as 'ROIsXXXX/NN', e.g. patch_index(ds, 'ROIs1868/17', 352)")
    roi = roi if isinstance(roi, Roi) else Roi.parse(roi, known=False)
    hits = np.flatnonzero(
        (ds.roi_group.values == roi.group) & (ds.roi.values == roi.number) & (ds.patch_id.values == patch_id)
    )
    if len(hits) != 1:
        raise KeyError(f"patch {patch_id} of {roi} is not in the cube")
    return int(hits[0])


def georeferenced(ds: xr.Dataset, patch: int, variable: str = "S2", bands: list[str] | None = None) -> xr.DataArray:
    """One patch of a variable with x/y coordinates, CRS and transform set (rioxarray).

    The CRS and transform are a CF grid mapping: the coordinate ``spatial_ref``,
    named by the variable's ``grid_mapping`` (in its encoding), and x/y in metres
    with their CF ``standard_name``, so netCDF exports carry them (read them back
    with ``xr.open_dataset(path, decode_coords="all")``); :mod:`cube.analysis.export` writes
    files. ``patch`` is a position along the ``patch`` dimension (see :func:`patch_index`).
    An image variable's ``long_name`` becomes its band labels (the variable's own
    moves to ``description``), so ``rio.to_raster`` names the bands ``B1 ... B12``;
    choose bands with ``bands`` (a later ``.sel`` of bands leaves ``long_name``
    naming all of them, which ``rio.to_raster`` refuses).

    Examples
    --------
    >>> s2 = georeferenced(ds, patch_index(ds, "ROIs1868/17", 352))  # doctest: +SKIP
    >>> s2.rio.crs, s2.rio.bounds()  # doctest: +SKIP
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor; imported here: 1-2 s that opening a cube skips)
    from rasterio.transform import Affine

    one = ds[variable].isel(patch=patch)
    band = next((d for d in one.dims if isinstance(d, str) and d.endswith("_band")), None)
    if band:  # per-band names: rioxarray writes them as the GeoTIFF's band descriptions
        one = one.sel({band: list(bands)}) if bands is not None else one
        one = one.assign_attrs(
            description=one.attrs.get("long_name", ""), long_name=tuple(str(b) for b in one[band].values)
        )
    transform = Affine(*ds.transform.isel(patch=patch).values.tolist())
    cols, rows = np.arange(one.sizes["x"]) + 0.5, np.arange(one.sizes["y"]) + 0.5
    one = one.assign_coords(x=("x", transform.c + transform.a * cols), y=("y", transform.f + transform.e * rows))
    return (
        one.rio.write_crs(f"EPSG:{int(ds.epsg.isel(patch=patch))}")
        .rio.write_transform(transform)
        .rio.write_coordinate_system()
    )
