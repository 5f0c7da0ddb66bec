"""The one-open GeoTIFF reader (cube.ingest.geotiff): the header and pixels it gives equal rasterio's for files
written every way, the data set's layout is read by tifffile, everything else by rasterio, and crafted files stay
within bounded memory."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from rasterio.transform import Affine, from_origin

from cube.ingest import geotiff
from cube.ingest.geotiff import GdalGeoTiff, ParsedHeaders, PlainGeoTiff, open_geotiff
from cube.ingest.validate import Expected, read_header
from cube.synth import make_dataset
from tests.helpers import TRANSFORM, assert_read_alike, write_geotiff


def both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple, tuple]:
    """(reader class, header, pixels) of ``path`` as read now, and as rasterio alone reads it."""
    with open_geotiff(path) as tif:
        fast = (type(tif), tif.header, tif.read().copy())
    monkeypatch.setattr(geotiff, "FAST_READER", False)
    with open_geotiff(path) as tif:
        slow = (type(tif), tif.header, tif.read())
    monkeypatch.setattr(geotiff, "FAST_READER", True)
    return fast, slow


S2 = (np.arange(13 * 32 * 32) % 5000).astype("uint16").reshape(13, 32, 32)
S1 = (np.random.default_rng(1).standard_normal((2, 32, 32)) * 10).astype("float32")

WAYS = {
    "default": ({}, PlainGeoTiff),
    "band interleaved": ({"interleave": "band"}, PlainGeoTiff),
    "one row per strip": ({"blockysize": 1}, PlainGeoTiff),
    "geographic": ({"crs": "EPSG:4326", "transform": from_origin(2.0, 48.0, 1e-4, 1e-4)}, GdalGeoTiff),
    "tiled": ({"tiled": True, "blockxsize": 16, "blockysize": 16}, GdalGeoTiff),
    "deflate": ({"compress": "deflate"}, GdalGeoTiff),
    "deflate, predictor, band interleaved": (
        {"compress": "deflate", "predictor": 2, "interleave": "band"},
        GdalGeoTiff,
    ),
    "lzw tiled": ({"compress": "lzw", "tiled": True, "blockxsize": 16, "blockysize": 16}, GdalGeoTiff),
    "big-endian": ({"endianness": "big"}, GdalGeoTiff),
    "rotated": ({"transform": Affine(10.0, 1.0, 600000.0, 1.0, -10.0, 5000000.0)}, PlainGeoTiff),
    "a WKT CRS": ({"crs": "+proj=utm +zone=31 +ellps=intl +units=m"}, GdalGeoTiff),
}


@pytest.mark.parametrize("modality", ["S1", "S2"])
@pytest.mark.parametrize("way", list(WAYS))
def test_header_and_pixels_equal_rasterio_s_however_the_file_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str, modality: str
) -> None:
    options, reader = WAYS[way]
    path = write_geotiff(tmp_path / "x.tif", S1 if modality == "S1" else S2, **options)
    (kind, header, pixels), (slow_kind, slow_header, slow_pixels) = both(path, monkeypatch)
    assert (kind, slow_kind) == (reader, GdalGeoTiff)
    assert header == slow_header and pixels.dtype == slow_pixels.dtype
    np.testing.assert_array_equal(pixels, slow_pixels)


def test_the_synthetic_files_are_read_by_tifffile_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_dataset(
        tmp_path / "src", ["ROIs1868/17"], patches_per_roi=1, size=32, times=2, workers=1, progress=False
    )
    files = sorted(root.rglob("*.tif"))
    assert len(files) == 4
    for path in files:
        (kind, header, pixels), (_, slow_header, slow_pixels) = both(path, monkeypatch)
        assert kind is PlainGeoTiff and header == slow_header
        np.testing.assert_array_equal(pixels, slow_pixels)


def test_a_pam_side_file_sends_the_file_to_rasterio(tmp_path: Path) -> None:
    path = write_geotiff(tmp_path / "x.tif", S1)
    Path(f"{path}.aux.xml").write_text("<PAMDataset><SRS>EPSG:32632</SRS></PAMDataset>")
    with open_geotiff(path) as tif:
        assert type(tif) is GdalGeoTiff and tif.header.epsg == 32632  # GDAL's own reading of a side file


def test_a_file_larger_than_the_bound_is_read_by_rasterio(tmp_path: Path) -> None:
    data = np.zeros((13, 300, 300), "uint16")  # 2.3 MB of pixels; the bound lowered under it below
    path = write_geotiff(tmp_path / "x.tif", data)
    assert path.stat().st_size < geotiff.MAX_FILE_BYTES  # a file this size goes to tifffile
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(geotiff, "MAX_FILE_BYTES", path.stat().st_size - 1)
        with open_geotiff(path) as tif:
            assert type(tif) is GdalGeoTiff and tif.read().shape == data.shape


def test_a_truncated_file_is_the_same_one_line_problem(tmp_path: Path) -> None:
    path = write_geotiff(tmp_path / "x.tif", S2)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _, (kind, message) = assert_read_alike(path, Expected(13, np.dtype("uint16"), 32), "S2")
    assert kind == "problem" and "cannot be read as a GeoTIFF (corrupt or truncated?)" in message


def _ifd_entry(path: Path, code: int) -> int:
    """Where the IFD entry of tag ``code`` of a classic little-endian TIFF lies."""
    with tifffile.TiffFile(path) as tif:
        return tif.pages.first.tags[code].offset


def _craft(path: Path, code: int, kind: int, count: int, value: int) -> None:
    """Rewrite the IFD entry of tag ``code``: its type, count and value (or offset)."""
    at = _ifd_entry(path, code)
    content = bytearray(path.read_bytes())
    content[at + 2 : at + 12] = struct.pack("<HII", kind, count, value)
    path.write_bytes(bytes(content))


CRAFTED = {
    "60000 x 60000 px": [(256, 4, 1, 60000), (257, 4, 1, 60000)],
    "2^28 strip offsets": [(273, 4, 1 << 28, 8)],
    "2^28 strip byte counts": [(279, 4, 1 << 28, 8)],
    "a 4 GB geokey directory": [(34735, 3, (1 << 31) - 1, 8)],
}

BOUNDED = """
import resource, sys
from pathlib import Path
import numpy as np
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
from cube.dataset.problems import FileProblem
from cube.ingest.validate import Expected, read_checked, read_header
path = Path(sys.argv[1])
for check in (lambda: read_header(path), lambda: read_checked(path, "S2", Expected(13, np.dtype("uint16"), 40),
                                                                32631, (10.0, 0.0, 600000.0, 0.0, -10.0, 5000000.0))):
    try:
        check()
        print("read")
    except FileProblem as err:
        print("problem", err)
"""


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_header_is_refused_or_read_in_bounded_memory(tmp_path: Path, case: str) -> None:
    path = write_geotiff(tmp_path / "x.tif", np.ones((13, 40, 40), "uint16"))
    for code, kind, count, value in CRAFTED[case]:
        _craft(path, code, kind, count, value)
    probe = [
        sys.executable,
        "-c",
        "import cube.ingest.validate, resource, sys; print(open('/proc/self/status').read())",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    status = subprocess.run(probe, capture_output=True, text=True, env=env, check=True).stdout
    base = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmPeak:"))) * 1024
    limit = base + (200 << 20)  # imports, plus 200 MB: a pixel buffer of the claimed size would not fit
    done = subprocess.run(
        [sys.executable, "-c", BOUNDED, str(path), str(limit)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and (lines[1].startswith("problem") or "60000" not in case)
    assert all(line == "read" or line.startswith(f"problem {path}: ") for line in lines)


FOUND = {
    "an image width of 0": [(256, 3, 1, 0)],
    "a FLOAT image width": [(256, 11, 1, struct.unpack("<I", struct.pack("<f", 32.0))[0])],
    "a SampleFormat of type 0, which tifffile leaves out": [(339, 0, 2, 3 | 3 << 16)],
    "an ExtraSamples kind of 3": [(338, 3, 1, 3)],
}
"""Files the fuzz target tests/fuzz/test_geotiff.py found read by tifffile where GDAL refuses them."""


@pytest.mark.parametrize("case", list(FOUND))
def test_files_the_fuzz_target_found_are_refused_as_rasterio_refuses_them(tmp_path: Path, case: str) -> None:
    path = write_geotiff(tmp_path / "x.tif", S1)
    for code, kind, count, value in FOUND[case]:
        _craft(path, code, kind, count, value)
    header, pixels = assert_read_alike(path, Expected(2, np.dtype("float32"), 32), "S1")
    assert header[0] == pixels[0] == "problem"


def test_a_nul_inside_geoasciiparams_is_refused_as_rasterio_refuses_it(tmp_path: Path) -> None:
    # found by the fuzz target too: libtiff drops the tag, GDAL builds no CRS
    path = write_geotiff(tmp_path / "x.tif", S1)
    with tifffile.TiffFile(path) as tif:
        at = tif.pages.first.tags[34737].valueoffset
    content = bytearray(path.read_bytes())
    content[at] = 0
    path.write_bytes(bytes(content))
    header, _ = assert_read_alike(path, Expected(2, np.dtype("float32"), 32), "S1")
    assert header == ("problem", f"{path}: has no EPSG-coded CRS")


def test_a_header_alone_is_read_from_the_file_s_first_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_geotiff(tmp_path / "x.tif", np.zeros((13, 256, 256), "uint16"))  # 1.7 MB, as the data set's S2 files
    assert path.stat().st_size > geotiff.HEADER_BYTES
    with open_geotiff(path, header_only=True) as tif:
        assert type(tif) is PlainGeoTiff and len(tif.content) == geotiff.HEADER_BYTES
        with pytest.raises(ValueError):
            tif.read()
    fast = read_header(path)
    monkeypatch.setattr(geotiff, "FAST_READER", False)
    assert fast == read_header(path) == (32631, tuple(TRANSFORM)[:6], np.dtype("uint16"), 13, 256)


def test_a_file_alike_but_for_its_pixels_reuses_the_parse_and_reads_its_own_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = ParsedHeaders()
    monkeypatch.setattr(geotiff, "PARSED", parsed)
    first, alike = write_geotiff(tmp_path / "a.tif", S2), write_geotiff(tmp_path / "b.tif", S2 + 1)
    moved = write_geotiff(tmp_path / "c.tif", S2, transform=from_origin(600010.0, 5000000.0, 10.0, 10.0))
    with open_geotiff(first):
        pass
    assert parsed.find(alike.read_bytes(), alike.stat().st_size) is not None  # the same bytes before the pixels
    assert parsed.find(moved.read_bytes(), moved.stat().st_size) is None  # another transform: parsed anew
    for path, pixels in ((alike, S2 + 1), (moved, S2)):
        (kind, header, read), (_, slow_header, _) = both(path, monkeypatch)
        assert kind is PlainGeoTiff and header == slow_header
        np.testing.assert_array_equal(read, pixels)


def test_a_header_whose_values_lie_after_the_pixels_is_parsed_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = ParsedHeaders()
    monkeypatch.setattr(geotiff, "PARSED", parsed)
    path = write_geotiff(tmp_path / "x.tif", S1)
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages.first.tags[34737]  # GeoAsciiParams: its value moved to the end, after the pixels
        entry, start, length = tag.offset, tag.valueoffset, tag.valuebytecount
    content = bytearray(path.read_bytes())
    content[entry + 8 : entry + 12] = struct.pack("<I", len(content))
    path.write_bytes(bytes(content + content[start : start + length]))
    (kind, header, _), (_, slow_header, _) = both(path, monkeypatch)
    assert kind is PlainGeoTiff and header == slow_header
    assert parsed.find(path.read_bytes(), path.stat().st_size) is None  # the bytes before the pixels are not all


def test_parsed_headers_are_bounded(tmp_path: Path) -> None:
    parsed = ParsedHeaders(entries=2)
    paths = [write_geotiff(tmp_path / f"{n}.tif", S1, transform=from_origin(6e5 + n, 5e6, 10, 10)) for n in range(3)]
    for path in paths:
        content = path.read_bytes()
        plain = geotiff.plain_geotiff(path, content)
        assert plain is not None
        parsed.add(content, len(content), plain)
    found = [parsed.find(path.read_bytes(), path.stat().st_size) is not None for path in paths]
    assert found == [False, True, True]  # the oldest went
    short = ParsedHeaders(longest=plain.offset - 1)  # a header longer than the bound is not kept
    short.add(content, len(content), plain)
    assert short.find(content, len(content)) is None
