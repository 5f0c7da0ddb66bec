"""The bands of the data set's GeoTIFFs: names, order, wavelengths and dtypes."""

from __future__ import annotations

import numpy as np

from cube.dataset.bands import (
    BANDS,
    DTYPES,
    S1_BANDS,
    S2_BANDS,
    S2_WAVELENGTH_NM,
    bands_of,
)


def test_s2_has_13_bands_in_wavelength_order() -> None:
    assert len(S2_BANDS) == len(S2_WAVELENGTH_NM) == 13
    assert S2_BANDS.index("B8A") == 8 and S2_BANDS[1:4] == ("B2", "B3", "B4")  # true colour reads 3, 2, 1
    by_wavelength = sorted(S2_BANDS, key=lambda b: S2_WAVELENGTH_NM[S2_BANDS.index(b)])
    assert by_wavelength == list(S2_BANDS)
    assert S2_WAVELENGTH_NM[S2_BANDS.index("B10")] == 1373.5  # the cirrus band


def test_each_modality_s_bands_and_dtype() -> None:
    assert BANDS == {"S1": ("VV", "VH"), "S2": S2_BANDS} and S1_BANDS == ("VV", "VH")
    assert {"S1": np.dtype("float32"), "S2": np.dtype("uint16")} == DTYPES
    assert bands_of("S1") == S1_BANDS and bands_of("S2") is bands_of("S2_cloudy") is S2_BANDS
