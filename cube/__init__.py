"""The SEN12MS-CR-TS data cube: GeoTIFF discovery, conversion to Zarr, cloud masks and statistics.

This package never imports torch or :mod:`crts`.
"""

__version__ = "0.1.0"

from . import export
from .conversion import ConversionError, ConversionReport, convert
from .runs import list_runs, open_run, side_by_side
from .store import IncompleteCubeError, WriterLockedError, georeferenced, open_cube, patch_index
from .summary import summary

__all__ = ["ConversionError", "ConversionReport", "IncompleteCubeError", "WriterLockedError", "convert",
           "export", "georeferenced", "list_runs", "open_cube", "open_run", "patch_index", "side_by_side",
           "summary"]
