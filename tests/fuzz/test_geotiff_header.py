"""Fuzz target: the GeoTIFF checks of discovery and conversion (cube.ingest.validate.read_header and read_checked) on
mutated small GeoTIFFs: each file is read, or refused with one FileProblem line naming it, never another error."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given
from hypothesis import strategies as st
from rasterio.transform import from_origin

from cube.dataset.problems import FileProblem
from cube.ingest.validate import Expected, read_checked, read_header
from tests.helpers import mutated

pytestmark = pytest.mark.fuzz
FOLDER = Path(tempfile.mkdtemp(prefix="fuzz_geotiff_"))
atexit.register(shutil.rmtree, FOLDER, True)  # the inputs written for the parsers go with the process
TRANSFORM = from_origin(500000.0, 4000000.0, 10.0, 10.0)
EPSG = 32633


def _genuine(modality: str) -> bytes:
    """A small GeoTIFF of the modality's bands and type (16 x 16 px), as the data set's files are made."""
    count, dtype = (2, "float32") if modality == "S1" else (13, "uint16")
    path = FOLDER / f"{modality}.tif"
    rng = np.random.default_rng(0)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=16,
        height=16,
        count=count,
        dtype=dtype,
        crs=f"EPSG:{EPSG}",
        transform=TRANSFORM,
    ) as dst:
        dst.write((rng.random((count, 16, 16)) * 1000).astype(dtype))
    return path.read_bytes()


GENUINE = {modality: _genuine(modality) for modality in ("S1", "S2")}


@given(st.sampled_from(["S1", "S2"]).flatmap(lambda m: st.tuples(st.just(m), mutated(GENUINE[m]))))
def test_mutated_geotiffs(case: tuple[str, bytes]) -> None:
    modality, data = case
    path = FOLDER / "case.tif"
    path.write_bytes(data)
    expected = Expected(2 if modality == "S1" else 13, np.dtype("float32" if modality == "S1" else "uint16"), 16)
    for check in (
        lambda: read_header(path),
        lambda: read_checked(path, modality, expected, EPSG, tuple(TRANSFORM)[:6]),
    ):
        try:
            check()
        except FileProblem as err:
            assert err.path == str(path) and "\n" not in str(err)
