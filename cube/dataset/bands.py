"""Band names, dtypes and value conventions of the Sentinel-1 and Sentinel-2 GeoTIFFs."""

from __future__ import annotations

import numpy as np

S1_BANDS: tuple[str, ...] = ("VV", "VH")
"""Sentinel-1 GRD backscatter in dB, float32."""

S2_BANDS: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
"""Sentinel-2 Level-1C top-of-atmosphere reflectance x 10000, all resampled to 10 m."""

S2_WAVELENGTH_NM: tuple[float, ...] = (
    442.7,
    492.4,
    559.8,
    664.6,
    704.1,
    740.5,
    782.8,
    832.8,
    864.7,
    945.1,
    1373.5,
    1613.7,
    2202.4,
)
"""Centre wavelengths of the S2 bands in nm (Sentinel-2A MSI), in the order of :data:`S2_BANDS`."""

DTYPES: dict[str, np.dtype] = {"S1": np.dtype("float32"), "S2": np.dtype("uint16")}
BANDS: dict[str, tuple[str, ...]] = {"S1": S1_BANDS, "S2": S2_BANDS}


def bands_of(modality: str) -> tuple[str, ...]:
    """Band names of a modality's images: S1's for ``S1``, S2's for ``S2`` and ``S2_cloudy`` (SEN12MS-CR).

    Examples
    --------
    >>> bands_of("S1"), len(bands_of("S2_cloudy"))
    (('VV', 'VH'), 13)
    """
    return S1_BANDS if modality == "S1" else S2_BANDS


S2_SCALE = 10000.0
"""Reflectance scale factor of the S2 digital numbers."""

PIXEL_SIZE_M = 10.0
