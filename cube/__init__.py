"""The SEN12MS-CR-TS data cube: GeoTIFF discovery, conversion to Zarr, cloud masks and statistics.

This package never imports torch or :mod:`crts`.
"""

__version__ = "0.1.0"

from .conversion import ConversionError, ConversionReport, convert
from .store import IncompleteCubeError, georeferenced, open_cube, patch_index

__all__ = ["ConversionError", "ConversionReport", "IncompleteCubeError", "convert", "georeferenced", "open_cube",
           "patch_index"]
