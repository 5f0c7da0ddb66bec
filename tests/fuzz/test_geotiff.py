"""Fuzz target: the GeoTIFF checks of discovery and conversion (cube.ingest.validate.read_header and read_checked)
through the one-open reader (cube.ingest.geotiff) on mutated small GeoTIFFs laid out as the data set's: each file
is read or refused with one FileProblem line naming it, never another error, and what the tifffile path gives
(header and pixels, or the refusal) is exactly what rasterio alone gives."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cube.ingest.validate import Expected
from tests.helpers import assert_read_alike, mutated, write_geotiff

pytestmark = pytest.mark.fuzz
FOLDER = Path(tempfile.mkdtemp(prefix="fuzz_geotiff_reader_"))
atexit.register(shutil.rmtree, FOLDER, True)  # the inputs written for the readers go with the process
SHAPES = {"S1": (2, "float32"), "S2": (13, "uint16")}


def _genuine(modality: str) -> bytes:
    """A 16 x 16 px GeoTIFF of the modality's bands and type, written as cube.synth writes the data set's files."""
    count, dtype = SHAPES[modality]
    data = (np.random.default_rng(0).random((count, 16, 16)) * 1000).astype(dtype)
    return write_geotiff(FOLDER / f"{modality}.tif", data).read_bytes()


GENUINE = {modality: _genuine(modality) for modality in SHAPES}


@given(st.sampled_from(list(SHAPES)).flatmap(lambda m: st.tuples(st.just(m), mutated(GENUINE[m]))))
def test_mutated_geotiffs_read_as_rasterio_reads_them(case: tuple[str, bytes]) -> None:
    modality, data = case
    path = FOLDER / "case.tif"
    path.write_bytes(data)
    count, dtype = SHAPES[modality]
    assert_read_alike(path, Expected(count, np.dtype(dtype), 16), modality)
