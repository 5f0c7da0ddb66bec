"""The cube's schema: variables, dimensions, labels, chunking, sharding and compression.

Documented for users in ``docs/schema.md``; the store's attributes carry the
same facts so that a plain ``xr.open_zarr`` shows labels and dates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import xarray as xr
from zarr.codecs import BloscCodec

from ..dataset.bands import BANDS, PIXEL_SIZE_M, S2_SCALE, S2_WAVELENGTH_NM, bands_of
from ..dataset.rois import Roi, cr_split_of, region_of, split_of

SCHEMA_VERSION = 3
"""3: ``valid`` and ``coverage`` chunked by :data:`TABLE_CHUNK` patches (2: one patch per chunk of ``valid``,
256 of ``coverage``); :mod:`cube.store.upgrade` brings older cubes up to date."""
UPGRADABLE = (2,)
"""Older schema versions that :mod:`cube.store.upgrade` brings up to date."""
TABLE_CHUNK = 4096
"""Patches per chunk of the per-patch tables ``valid`` and ``coverage``: 4 chunks for the whole data set, so a
full read costs a few requests (one patch per chunk cost 15,600 files or GETs, 5-10 s at full size)."""
AFFINE = ("a", "b", "c", "d", "e", "f")
"""Order of the per-patch geotransform coefficients (rasterio's Affine: x = a*col + b*row + c, ...)."""


@dataclass(frozen=True)
class Spec:
    """What a layout's cube holds."""

    layout: str
    title: str
    modalities: tuple[str, ...]
    temporal: bool


SPECS: dict[str, Spec] = {
    "sen12mscrts": Spec("sen12mscrts", "SEN12MS-CR-TS", ("S1", "S2"), True),
    "sen12mscr": Spec("sen12mscr", "SEN12MS-CR", ("S1", "S2", "S2_cloudy"), False),
}

_REFLECTANCE = {
    "standard_name": "toa_bidirectional_reflectance",
    "units": "1e-4",
    "reflectance_scale": S2_SCALE,
    "comment": "digital numbers: reflectance x 10000 (divide by reflectance_scale for reflectance)",
}
DESCRIPTIONS: dict[str, dict] = {
    "S1": {
        "long_name": "Sentinel-1 GRD backscatter (VV, VH)",
        "standard_name": "surface_backwards_scattering_coefficient_of_radar_wave",
        "units": "dB",
    },
    "S2": {"long_name": "Sentinel-2 L1C top-of-atmosphere reflectance", **_REFLECTANCE},
    "S2_cloudy": {
        "long_name": "Sentinel-2 L1C top-of-atmosphere reflectance of the cloudy acquisition",
        **_REFLECTANCE,
    },
}
"""Descriptive (CF) attributes of the image variables: what the numbers are. ``units`` are UDUNITS strings, so
``1e-4`` says that a stored 5000 is a reflectance of 0.5. :func:`cube.open_cube` shows these also on cubes
written with older ones."""


def band_dim(modality: str) -> str:
    """Name of a modality's band dimension: ``S1_band`` or ``S2_band`` (shared by S2 and S2_cloudy)."""
    return "S1_band" if modality == "S1" else "S2_band"


def image_dims(spec: Spec, modality: str) -> tuple[str, ...]:
    """Dimensions of a modality's image variable."""
    return ("patch", "time", band_dim(modality), "y", "x") if spec.temporal else ("patch", band_dim(modality), "y", "x")


def compressor(dtype: np.dtype) -> BloscCodec:
    """Blosc/lz4 with bit shuffling: within 4% of zstd's size, reads 30% faster (benchmarks/bench_compression)."""
    return BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=np.dtype(dtype).itemsize)


TILE_PX = 256
"""Edge of the images' inner chunks in px (temporal cubes): one chunk per 256 px image. ``--tile 64`` reads
random 64 px windows 4.6x as fast as whole samples (1.7x with 256 px tiles; benchmarks/bench_windows.py), but
plain ``xr.open_zarr`` makes one dask chunk per tile: at full size (15,600 patches) one image then takes 10.7 s
and 1.4 GB instead of 0.44 s and 0.5 GB, so the analysis-ready default stays one chunk per image (docs/schema.md,
"Tile size")."""
WINDOW_TILE_PX = 64
"""The tile for a cube read mostly as 64 px windows (training on ``--crop 64``): ``crts convert --tile 64``."""


def image_chunk(size: int, tile: int = TILE_PX) -> tuple[int, int]:
    """Rows and columns of an image's inner chunk: ``tile`` px squares, or the whole image where it is smaller.

    Examples
    --------
    >>> image_chunk(256), image_chunk(256, tile=64), image_chunk(32)
    ((256, 256), (64, 64), (32, 32))
    """
    edge = min(tile, size)
    if edge < 1 or size % edge:
        raise ValueError(f"invalid tile {tile} px: it must divide the patch size ({size} px)")
    return edge, edge


def encoding(spec: Spec, times: int, size: int, dtypes: dict[str, np.dtype], tile: int = TILE_PX) -> dict[str, dict]:
    """Chunks, shards and codecs of the data variables.

    Inner chunk (temporal cubes): one ``tile`` x ``tile`` px part of one (patch,
    time) image with all bands, so a sample reads only the dates and the window it
    uses. Shard: all time steps of one patch, written by exactly one task. Without
    a time axis (SEN12MS-CR) every chunk is a stored object of its own: one whole image.
    ``valid``: :data:`TABLE_CHUNK` patches per chunk, written by the converting process only.
    """
    enc: dict[str, dict] = {}
    for m in spec.modalities:
        bands = len(bands_of(m))
        chunk = (1, 1, bands, *image_chunk(size, tile)) if spec.temporal else (1, bands, size, size)
        enc[m] = {"chunks": chunk, "compressors": (compressor(dtypes[m]),)}
        if spec.temporal:
            enc[m]["shards"] = (1, times, bands, size, size)
    enc["valid"] = {
        "chunks": (TABLE_CHUNK, times, len(spec.modalities)) if spec.temporal else (TABLE_CHUNK, len(spec.modalities))
    }
    return enc


def table_encoding(ds: xr.Dataset) -> dict[str, dict]:
    """:data:`TABLE_CHUNK` patches per chunk for every per-patch variable of a template (labels, dates, paths,
    georeference); :func:`encoding` overrides it for the images and ``valid``.

    Without it, they would be chunked by the patches of the first conversion, and a
    cube converted in parts (test, then val, then train) would cost several requests
    per variable to open instead of one.
    """
    return {
        str(name): {"chunks": (TABLE_CHUNK, *variable.shape[1:])}
        for name, variable in ds.variables.items()
        if variable.dims[:1] == ("patch",)
    }


@dataclass(frozen=True)
class PatchMeta:
    """What the template needs to know of a patch before its pixels are read."""

    roi: Roi
    pid: int
    epsg: int
    transform: tuple[float, ...]
    dates: dict[tuple[str, int], dt.date]
    paths: dict[tuple[str, int], str]


def _per_patch_coords(spec: Spec, patches: list[PatchMeta], times: int) -> dict[str, tuple]:
    coords: dict[str, tuple] = {
        "roi_group": (
            "patch",
            np.array([p.roi.group for p in patches], dtype=object),
            {"long_name": "ROI group (seed scene set); 'ROI' in the official HDF5 naming"},
        ),
        "roi": (
            "patch",
            np.array([p.roi.number for p in patches], dtype=np.int32),
            {"long_name": "ROI number inside its group; 'tile' in the official HDF5 naming"},
        ),
        "patch_id": (
            "patch",
            np.array([p.pid for p in patches], dtype=np.int32),
            {"long_name": "patch number inside the ROI (file name field 'patch_<pid>')"},
        ),
        "region": (
            "patch",
            np.array([region_of(p.roi) for p in patches], dtype=object),
            {"long_name": "region of the original toolbox's region lists"},
        ),
        "split": (
            "patch",
            np.array([(split_of if spec.temporal else cr_split_of)(p.roi) for p in patches], dtype=object),
            {
                "long_name": "official split under region='all'"
                if spec.temporal
                else "SEN12MS-CR split list naming the scene ('unlisted' if none)"
            },
        ),
        "epsg": (
            "patch",
            np.array([p.epsg for p in patches], dtype=np.int32),
            {"long_name": "EPSG code of the patch's UTM CRS"},
        ),
        "transform": (
            ("patch", "affine"),
            np.array([p.transform for p in patches], dtype=np.float64),
            {"long_name": "GeoTIFF geotransform (rasterio Affine a, b, c, d, e, f)"},
        ),
    }
    if spec.temporal:
        for m in spec.modalities:
            dates = [
                [
                    np.datetime64(p.dates[(m, t)], "ns") if (m, t) in p.dates else np.datetime64("NaT", "ns")
                    for t in range(times)
                ]
                for p in patches
            ]
            coords[f"{m}_date"] = (
                ("patch", "time"),
                np.array(dates, dtype="datetime64[ns]"),
                {"long_name": f"{m} acquisition date (from the file name)"},
            )
    return coords


def _paths(spec: Spec, patches: list[PatchMeta], times: int) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for m in spec.modalities:
        if spec.temporal:
            values = np.array([[p.paths.get((m, t), "") for t in range(times)] for p in patches], dtype=object)
            out[f"{m}_path"] = (
                ("patch", "time"),
                values,
                {"long_name": f"source {m} GeoTIFF, relative to the source_root attribute ('' if missing)"},
            )
        else:
            values = np.array([p.paths.get((m, 0), "") for p in patches], dtype=object)
            out[f"{m}_path"] = ("patch", values, {"long_name": f"source {m} GeoTIFF, relative to source_root"})
    return out


def pixel_offsets(size: int) -> dict[str, tuple]:
    """Coordinates ``y`` and ``x``: pixel centres in metres from the patch's lower-left corner.

    ``y`` decreases down the rows and ``x`` increases along the columns, so plots
    of any patch are north-up; :func:`cube.georeferenced` gives the UTM coordinates.
    """
    centres = (np.arange(size) + 0.5) * PIXEL_SIZE_M
    described = "pixel centre offset within the patch from its {} edge (cube.georeferenced gives UTM coordinates)"
    return {
        "y": (
            "y",
            centres[::-1].copy(),
            {"long_name": "northing offset within the patch", "units": "m", "description": described.format("bottom")},
        ),
        "x": (
            "x",
            centres,
            {"long_name": "easting offset within the patch", "units": "m", "description": described.format("left")},
        ),
    }


def patch_variables(spec: Spec, patches: list[PatchMeta], times: int) -> xr.Dataset:
    """Everything per patch that is known before pixels are read: labels, georeference, dates, paths.

    All are coordinates, so that ``ds.where(...)`` masks the images and leaves the labels and paths alone.
    """
    return xr.Dataset(coords={**_per_patch_coords(spec, patches, times), **_paths(spec, patches, times)})


def template(
    spec: Spec, patches: list[PatchMeta], times: int, size: int, dtypes: dict[str, np.dtype], attrs: dict
) -> xr.Dataset:
    """The full cube with lazily allocated (never computed) image and validity variables."""
    import dask.array as da  # here: only a conversion builds the template; readers of the schema need no dask.array

    n = len(patches)
    data_vars = {}
    for m in spec.modalities:
        bands = bands_of(m)
        shape = (n, times, len(bands), size, size) if spec.temporal else (n, len(bands), size, size)
        data_vars[m] = (image_dims(spec, m), da.zeros(shape, dtype=dtypes[m], chunks=-1), dict(DESCRIPTIONS[m]))
    valid_dims = ("patch", "time", "modality") if spec.temporal else ("patch", "modality")
    valid_shape = (n, times, len(spec.modalities)) if spec.temporal else (n, len(spec.modalities))
    data_vars["valid"] = (
        valid_dims,
        da.zeros(valid_shape, dtype=bool, chunks=-1),
        {
            "long_name": "the source file was found, checked and converted (False: a gap; "
            "its pixels hold the fill value, 0 or NaN, and must not be used)"
        },
    )
    coords = {
        "time": ("time", np.arange(times, dtype=np.int32), {"long_name": "time step (ImgNo in file names)"}),
        "S1_band": ("S1_band", np.array(BANDS["S1"], dtype=object)),
        "S2_band": ("S2_band", np.array(BANDS["S2"], dtype=object)),
        "modality": ("modality", np.array(spec.modalities, dtype=object)),
        "affine": ("affine", np.array(AFFINE, dtype=object)),
    }
    coords.update(
        pixel_offsets(size),
        S2_wavelength=(
            "S2_band",
            np.array(S2_WAVELENGTH_NM, dtype=np.float32),
            {"long_name": "band centre wavelength (Sentinel-2A MSI)", "units": "nm"},
        ),
    )
    if not spec.temporal:
        del coords["time"]
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs).merge(patch_variables(spec, patches, times))
    return ds
