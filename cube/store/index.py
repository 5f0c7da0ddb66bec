"""A GeoParquet index of a cube's patches, to find them by place in geopandas, QGIS or GDAL.

One row per patch, in the cube's sample order (:func:`cube.open_cube`):

- ``geometry``: the patch's footprint in WGS84 (EPSG:4326), the file's geometry column;
- ``footprint_utm`` (WKT) and ``epsg``: the footprint in the patch's own UTM CRS (a
  GeoParquet geometry column has one CRS for all rows; the patches lie in many zones);
- ``patch`` (position along the cube's ``patch`` dimension), ``roi_group``, ``roi``,
  ``patch_id``, ``split``, ``region``;
- ``n_valid_s2`` (S2 images converted), ``first_s2_date``, ``last_s2_date`` and
  ``s2_dates`` (a list of the valid images' dates), all of valid images only;
- ``coverage_<detector>``: mean cloud coverage (0..1) of the valid S2 images, one column
  per detector of the finished cloud pass.

The table is built from the cube's small label arrays, georeference, validity and
coverage table only (never an image), with one coordinate transformation per UTM
zone: time and memory grow linearly with the number of patches. The cloud pass
writes it into the cube (:data:`cube.store.store.INDEX_FILE`) when it finishes;
``crts index`` rewrites it or writes it elsewhere.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr
from pyproj import Transformer

from .outputs import replacing
from .store import INDEX_FILE, CubeStore, as_store
from .views import finished_detectors, open_cube, patch_bounds


def footprints(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Footprints of every patch as shapely polygons: in its UTM CRS, and in WGS84 (lon, lat).

    Examples
    --------
    >>> utm, wgs84 = footprints(open_cube("cube.zarr", chunks=None))  # doctest: +SKIP
    """
    utm = shapely.box(*patch_bounds(ds).T)
    wgs84 = np.empty(len(utm), dtype=object)
    codes = ds.epsg.values
    for code in np.unique(codes):
        rows = codes == code
        to_wgs84 = Transformer.from_crs(int(code), 4326, always_xy=True)
        wgs84[rows] = shapely.transform(utm[rows], lambda xy, t=to_wgs84: np.column_stack(t.transform(*xy.T)))
    return utm, wgs84


def _dates(ds: xr.Dataset, valid: np.ndarray) -> dict[str, object]:
    """First and last S2 date and the list of dates of each patch's valid S2 images."""
    days = ds.S2_date.values.astype("datetime64[D]")
    dates = pd.DataFrame(np.where(valid, days, np.datetime64("NaT", "D")))
    return {
        "first_s2_date": dates.min(axis=1).dt.date.to_numpy(),
        "last_s2_date": dates.max(axis=1).dt.date.to_numpy(),
        "s2_dates": [row[keep].tolist() for row, keep in zip(days, valid, strict=True)],
    }


def _coverage(ds: xr.Dataset, valid: np.ndarray, detectors: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Mean coverage of each patch's valid S2 images per detector (NaN for a patch without any)."""
    coverage = ds.coverage.sel(detector=list(detectors)).values
    known = valid[:, :, None] & ~np.isnan(coverage)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(known, coverage, 0).sum(axis=1) / known.sum(axis=1)
    return {f"coverage_{name}": means[:, k] for k, name in enumerate(detectors)}


def patch_index_table(ds: xr.Dataset, detectors: tuple[str, ...] | None = None) -> gpd.GeoDataFrame:
    """The index of the patches of a SEN12MS-CR-TS cube (see the module docstring for its columns).

    Parameters
    ----------
    ds : xarray.Dataset
        The cube, as :func:`cube.open_cube` opens it (``chunks=None`` is fastest).
    detectors : tuple of str, optional
        Whose coverage to give; default every detector of the finished cloud pass.

    Raises
    ------
    ValueError
        For a SEN12MS-CR cube, or a cube without a finished cloud pass (and no ``detectors``).

    Examples
    --------
    >>> table = patch_index_table(open_cube("cube.zarr", chunks=None))  # doctest: +SKIP
    >>> table[table.intersects(shapely.box(11.0, 47.0, 12.0, 48.0))]  # patches in a lon/lat box  # doctest: +SKIP
    """
    if ds.attrs.get("layout") != "sen12mscrts":
        raise ValueError("the patch index covers SEN12MS-CR-TS cubes (it gives S2 dates and cloud coverage)")
    detectors = detectors or finished_detectors(ds)
    if not detectors:
        raise ValueError(
            "the cube has no finished cloud pass, so no coverage to index: run `crts clouds CUBE` "
            "(with --resume if one was interrupted)"
        )
    valid = ds.valid.sel(modality="S2").values
    utm, wgs84 = footprints(ds)
    labels = {
        name: ds[name].values.astype(object if name in ("roi_group", "split", "region") else np.int64)
        for name in ("roi_group", "roi", "patch_id", "split", "region")
    }
    columns = {
        "patch": np.arange(ds.sizes["patch"]),
        **labels,
        "epsg": ds.epsg.values.astype(np.int64),
        "footprint_utm": shapely.to_wkt(utm, rounding_precision=3),
        "n_valid_s2": valid.sum(axis=1),
        **_dates(ds, valid),
        **_coverage(ds, valid, tuple(detectors)),
    }
    return gpd.GeoDataFrame(columns, geometry=wgs84, crs="EPSG:4326")


def index_bytes(table: gpd.GeoDataFrame) -> bytes:
    """The table as a GeoParquet file (zstd-compressed, with its bounding-box column for spatial filters)."""
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False, compression="zstd", write_covering_bbox=True)
    return buffer.getvalue()


def read_index(cube: str | os.PathLike | CubeStore, storage_options: dict | None = None) -> gpd.GeoDataFrame:
    """The index that the cloud pass or ``crts index`` wrote into a cube.

    Raises
    ------
    FileNotFoundError
        If the cube holds no index.

    Examples
    --------
    >>> read_index("cube.zarr").explore()  # doctest: +SKIP
    """
    store = as_store(cube, storage_options=storage_options)
    data = store.read_file(INDEX_FILE)
    if data is None:
        raise FileNotFoundError(f"{store.location}: no patch index; write one with `crts index CUBE`")
    return gpd.read_parquet(io.BytesIO(data))


def store_index(store: CubeStore, ds: xr.Dataset, detectors: tuple[str, ...] | None = None) -> str:
    """Build the index of ``ds`` and write it whole into the cube (by the writer-lock holder); returns where."""
    store.write_file(INDEX_FILE, index_bytes(patch_index_table(ds, detectors)))
    return store.file_location(INDEX_FILE)


def write_index(
    cube: str | os.PathLike | CubeStore,
    out: str | os.PathLike | None = None,
    *,
    storage_options: dict | None = None,
    force_unlock: bool = False,
) -> str:
    """Write the patch index of a cube into the cube (``out=None``, holding its writer lock) or to a local file.

    Returns the path (or URL) written.

    Raises
    ------
    FileNotFoundError
        If there is no cube, or ``out``'s folder does not exist.
    ValueError
        If the cube has no finished cloud pass, or is a SEN12MS-CR cube.
    cube.store.lock.WriterLockedError
        If another process is writing the cube (``out=None`` only).

    Examples
    --------
    >>> write_index("cube.zarr")  # doctest: +SKIP
    'cube.zarr/index.parquet'
    """
    store = as_store(cube, storage_options=storage_options)
    if out is not None:
        data = index_bytes(patch_index_table(open_cube(store, chunks=None)))
        with replacing(Path(out)) as partial:
            partial.write_bytes(data)
        return str(out)
    open_cube(store, chunks=None)  # fail on a missing or incomplete cube before taking the lock
    store = store.reopened("r+")
    with store.writer("patch index", force_unlock=force_unlock):
        return store_index(store, open_cube(store, chunks=None))
