"""Fuzz target: the one-open GeoTIFF reader (cube.ingest.geotiff) on mutated small GeoTIFFs laid out as the data
set's: what the tifffile path gives (header and pixels, or a one-line FileProblem) is exactly what rasterio alone
gives, and nothing else is ever raised."""

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
from cube.ingest import geotiff
from cube.ingest.validate import Expected, read_checked, read_header
from tests.helpers import mutated

pytestmark = pytest.mark.fuzz
FOLDER = Path(tempfile.mkdtemp(prefix="fuzz_geotiff_reader_"))
atexit.register(shutil.rmtree, FOLDER, True)  # the inputs written for the readers go with the process
TRANSFORM = from_origin(500000.0, 4000000.0, 10.0, 10.0)
EPSG = 32633
SHAPES = {"S1": (2, "float32"), "S2": (13, "uint16")}


def _genuine(modality: str) -> bytes:
    """A 16 x 16 px GeoTIFF of the modality's bands and type, written as cube.synth writes the data set's files."""
    count, dtype = SHAPES[modality]
    path = FOLDER / f"{modality}.tif"
    profile = dict(driver="GTiff", width=16, height=16, count=count, dtype=dtype, crs=f"EPSG:{EPSG}")
    with rasterio.open(path, "w", transform=TRANSFORM, **profile) as dst:
        dst.write((np.random.default_rng(0).random((count, 16, 16)) * 1000).astype(dtype))
    return path.read_bytes()


GENUINE = {modality: _genuine(modality) for modality in SHAPES}


def outcome(check: object) -> tuple:
    """What a check gives: ("read", its result) or ("problem", the message)."""
    try:
        return "read", check()  # type: ignore[operator]
    except FileProblem as err:
        assert "\n" not in str(err)
        return "problem", str(err)


def outcomes(path: Path, modality: str, fast: bool) -> list[tuple]:
    """The outcomes of read_header and read_checked, with the tifffile path on or off."""
    count, dtype = SHAPES[modality]
    expected = Expected(count, np.dtype(dtype), 16)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(geotiff, "FAST_READER", fast)
        return [
            outcome(lambda: read_header(path)),
            outcome(lambda: read_checked(path, modality, expected, EPSG, tuple(TRANSFORM)[:6])),
        ]


@given(st.sampled_from(list(SHAPES)).flatmap(lambda m: st.tuples(st.just(m), mutated(GENUINE[m]))))
def test_mutated_geotiffs_read_as_rasterio_reads_them(case: tuple[str, bytes]) -> None:
    modality, data = case
    path = FOLDER / "case.tif"
    path.write_bytes(data)
    fast, slow = outcomes(path, modality, True), outcomes(path, modality, False)
    assert fast[0] == slow[0]
    assert fast[1][0] == slow[1][0]
    if fast[1][0] == "read":
        np.testing.assert_array_equal(fast[1][1], slow[1][1])
    else:
        assert fast[1][1] == slow[1][1]
