"""The SEN12MS-CR-TS data cube: GeoTIFF discovery, conversion to Zarr, cloud masks and statistics.

This package never imports torch or :mod:`crts`. Its public names are imported
on first use (PEP 562), so that importing a light module such as
:mod:`cube.dataset.rois` does not import xarray, zarr and dask.
"""

from importlib import import_module

__version__ = "0.1.0"

_HOMES = {
    "ConversionError": "ingest.building",
    "ConversionReport": "ingest.building",
    "convert": "ingest.conversion",
    "list_runs": "store.runs",
    "open_run": "store.runs",
    "side_by_side": "store.runs",
    "IncompleteCubeError": "store.store",
    "WriterLockedError": "store.lock",
    "georeferenced": "store.views",
    "open_cube": "store.views",
    "patch_index": "store.views",
    "summary": "analysis.overview",
    "verify": "store.integrity",
}
"""Each public name and the module that defines it."""
_SUBMODULES = {"export": "analysis.export"}
"""Modules reached as attributes (``cube.export.to_geotiff``), and where they live."""

__all__ = sorted([*_HOMES, *_SUBMODULES])


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        return import_module(f".{_SUBMODULES[name]}", __name__)
    if name not in _HOMES:
        raise AttributeError(f"module 'cube' has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
