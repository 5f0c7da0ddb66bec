"""One GeoTIFF opened once for its header (georeference, bands, type, size) and its pixels.

Files laid out as the data set's are (uncompressed, pixels stored in one run, an
EPSG-coded CRS, a north-up transform) are read by tifffile from the file's bytes,
read in one go: no GDAL open, no PROJ look-up per file. Every other file (or one
larger than :data:`MAX_FILE_BYTES`, or any that tifffile finds odd) is read by
rasterio, as before: both readers give the same header and the same pixels
(tests/cube/ingest/test_geotiff.py). A file alike in its size and its header
bytes to one parsed before (a patch's time steps) reuses that parse
(:data:`PARSED`). Set :data:`FAST_READER` to False to read every file with
rasterio.

Examples
--------
>>> import tempfile, rasterio
>>> from rasterio.transform import from_origin
>>> path = Path(tempfile.mkdtemp()) / "s1.tif"
>>> with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=2, dtype="float32",
...                    crs="EPSG:32631", transform=from_origin(600000.0, 5000000.0, 10.0, 10.0)) as dst:
...     dst.write(np.ones((2, 4, 4), "float32"))
>>> with open_geotiff(path) as tif:
...     tif.header.epsg, tif.header.transform[:3], tif.read().shape, type(tif).__name__
(32631, (10.0, 0.0, 600000.0), (2, 4, 4), 'PlainGeoTiff')
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import tifffile
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError

from ..dataset.problems import FileProblem

FAST_READER = True
"""Whether files that allow it are read by tifffile (False: every file by rasterio, as the tests compare)."""

MAX_FILE_BYTES = 4 * 1024 * 1024
"""Largest file read by tifffile (4 MiB); larger ones go to rasterio. The data set's largest file, an S2 patch (13
bands x 256 x 256 px x 2 B = 1.7 MB of pixels plus a few kB of tags), fits twice: whatever tifffile allocates for a
crafted file (its tags, the pixel array) is bounded by the bytes read, at most this."""

TAG_TYPES = {
    **dict.fromkeys((256, 257, 278), (3, 4)),  # width, length, rows per strip: SHORT or LONG
    **dict.fromkeys((273, 279), (3, 4, 16)),  # strip offsets and byte counts: SHORT, LONG or LONG8
    **dict.fromkeys((254,), (4,)),  # subfile type: LONG
    **dict.fromkeys((258, 259, 262, 266, 274, 277, 284, 317, 338, 339), (3,)),  # the image's layout: SHORT
    **dict.fromkeys((33550, 33922, 34264, 34736), (12,)),  # pixel scale, tiepoint, transformation, params: DOUBLE
    **dict.fromkeys((34735,), (3,)),  # the GeoKey directory: SHORT
    **dict.fromkeys((269, 270, 305, 306, 315, 34737, 42112, 42113), (2,)),  # names, notes, GDAL's metadata: ASCII
}
"""The tags a file read by tifffile may hold, each with the TIFF types the specification gives it (3 SHORT, 4 LONG,
16 LONG8, 12 DOUBLE, 2 ASCII). GDAL refuses some other types where tifffile takes them (a FLOAT image width), and
a tag not listed (tiles, colour maps, orientation, ...) may change what GDAL reads: such files go to rasterio."""

HEADER_BYTES = 64 * 1024
"""Bytes read of a file whose header alone is wanted (64 KiB): GDAL writes a file's tags before its pixels (the data
set's files: their first 2 kB); tags further on make tifffile fail on the bytes read, and rasterio reads the file."""

GEOKEYS_KNOWN = {1024, 1025, 1026, 2049, 2054, 3072, 3073, 3076}
"""GeoKeys of a plain EPSG-coded projected CRS, as the data set's UTM files have (model and raster type, citations,
the EPSG code, the default units); a file with any other key (an ellipsoid, a datum, projection parameters, a
geographic CRS) gives GDAL more to build its CRS from, and goes to rasterio."""

GEOKEY_DEFAULTS = {1025: 1, 2054: 9102, 3076: 9001}
"""The only values accepted for these keys: pixels as areas, angles in degrees, lengths in metres."""

logging.getLogger("tifffile").addHandler(logging.NullHandler())  # its notes on odd tags: such files go to rasterio


@dataclass(frozen=True)
class Header:
    """What a GeoTIFF says of itself: CRS (EPSG code, None if it has none; as text for messages), affine transform
    (the six coefficients a..f), pixel type, band count, height and width."""

    epsg: int | None
    crs: str
    transform: tuple[float, ...]
    dtype: np.dtype
    count: int
    height: int
    width: int


class PlainGeoTiff:
    """A file read by tifffile: its header, and its pixels at ``offset`` of its bytes."""

    def __init__(self, header: Header, content: bytes | bytearray, offset: int, planar: bool) -> None:
        self.header, self.content, self.offset, self.planar = header, content, offset, planar

    def read(self) -> np.ndarray:
        """The pixels, (bands, rows, columns): a view of the file's bytes, no copy (read-only where those are).

        Raises
        ------
        ValueError
            For a file opened for its header only.
        """
        h = self.header
        flat = np.frombuffer(self.content, h.dtype, h.count * h.height * h.width, self.offset)
        if self.planar:
            return flat.reshape(h.count, h.height, h.width)
        return flat.reshape(h.height, h.width, h.count).transpose(2, 0, 1)


class GdalGeoTiff:
    """A file read by rasterio (GDAL)."""

    def __init__(self, src: rasterio.DatasetReader) -> None:
        self.src = src
        crs = src.crs
        epsg = crs.to_epsg() if crs is not None else None
        self.header = Header(
            None if epsg is None else int(epsg),
            crs.to_string() if crs else "missing",
            tuple(src.transform)[:6],
            np.dtype(src.dtypes[0]),
            src.count,
            src.height,
            src.width,
        )

    def read(self) -> np.ndarray:
        """The pixels, (bands, rows, columns)."""
        return self.src.read()


@contextmanager
def open_geotiff(path: Path, header_only: bool = False) -> Iterator[PlainGeoTiff | GdalGeoTiff]:
    """The GeoTIFF at ``path``, opened once; with ``header_only`` only its first :data:`HEADER_BYTES` are read where
    tifffile reads it (no pixels then).

    Raises
    ------
    FileProblem
        If GDAL cannot read the file (a file tifffile reads is one GDAL reads alike).
    """
    plain = plain_geotiff(path, header_only=header_only) if FAST_READER else None
    if plain is not None:
        yield plain
        return
    try:
        with rasterio.open(path) as src:
            yield GdalGeoTiff(src)
    except RasterioError as err:
        raise FileProblem(path, f"cannot be read as a GeoTIFF (corrupt or truncated?): {err}") from None


def plain_geotiff(
    path: Path, content: bytes | bytearray | None = None, header_only: bool = False
) -> PlainGeoTiff | None:
    """The file read by tifffile if it is laid out as the data set's files are (``header_only``: of its bytes, the
    first :data:`HEADER_BYTES`); None if it is not (or is not a TIFF tifffile reads): rasterio reads it then."""
    if os.path.exists(f"{path}.aux.xml"):
        return None  # GDAL lets a PAM side file override the file's own tags
    read = (content, len(content)) if content is not None else file_bytes(path, header_only)
    if read is None or read[1] > MAX_FILE_BYTES:
        return None
    content, size = read
    known = PARSED.find(content, size)
    if known is not None:
        return known
    try:
        with tifffile.TiffFile(io.BytesIO(content)) as tif:
            page = tif.pages.first
            form = tif.tiff
            entries = struct.unpack_from(form.tagnoformat, content, page.offset)[0]
            after = page.offset + form.tagnosize + entries * form.tagsize  # where the next image's offset lies
            if (
                tif.byteorder != "<"
                or entries != len(page.tags)
                or struct.unpack_from(form.offsetformat, content, after)[0]
            ):
                return None  # big-endian, tags tifffile left out (of a type it does not know), or another image
            plain = _plain_page(page, content, size)
            if (
                plain is not None
                and max(after + form.offsetsize, *(t.valueoffset + t.valuebytecount for t in page.tags.values()))
                <= plain.offset
            ):  # the whole header lies before the pixels
                PARSED.add(content, size, plain)
            return plain
    except Exception:  # any complaint of tifffile about a crafted file: rasterio decides
        return None


class ParsedHeaders:
    """Files read by tifffile, by their size, the number of their bytes read and their bytes before their pixels,
    where those bytes hold the whole header (the TIFF header, the image's tags and their values): a file alike in
    all three is the same file but for its pixels, and reuses the parse (a patch's 30 time steps share their
    header bytes in the synthetic data set: one parse and check instead of 30, 0.2 ms each). Bounded: the last
    ``entries`` headers of at most ``longest`` bytes each; safe to share between threads.

    Examples
    --------
    >>> headers = ParsedHeaders()
    >>> headers.find(b"II*\\x00" + bytes(100), 104) is None
    True
    """

    def __init__(self, entries: int = 64, longest: int = 16384) -> None:
        self.entries, self.longest = entries, longest
        self._known: dict[tuple[int, int, bytes], PlainGeoTiff] = {}
        self._lengths: dict[int, None] = {}  # lengths of the headers known, in the order first seen
        self._lock = threading.Lock()

    def find(self, content: bytes | bytearray, size: int) -> PlainGeoTiff | None:
        """The file ``content`` (of a file of ``size`` bytes) as a :class:`PlainGeoTiff`, where a file alike was
        parsed before; None otherwise."""
        with self._lock:
            lengths = list(self._lengths)
        for length in lengths:
            known = self._known.get((size, len(content), bytes(content[:length])))
            if known is not None:
                return PlainGeoTiff(known.header, content, known.offset, known.planar)
        return None

    def add(self, content: bytes | bytearray, size: int, plain: PlainGeoTiff) -> None:
        """Keep the parse ``plain`` of ``content`` (of a file of ``size`` bytes), whose header ends at its pixels."""
        if plain.offset > self.longest:
            return
        key = (size, len(content), bytes(content[: plain.offset]))
        with self._lock:
            self._known[key] = PlainGeoTiff(plain.header, b"", plain.offset, plain.planar)
            self._lengths[plain.offset] = None
            while len(self._known) > self.entries:
                del self._known[next(iter(self._known))]
            while len(self._lengths) > 8:
                del self._lengths[next(iter(self._lengths))]


PARSED = ParsedHeaders()
"""The process's :class:`ParsedHeaders`."""


def file_bytes(path: Path, header_only: bool = False) -> tuple[bytes, int] | None:
    """The bytes of a file of at most :data:`MAX_FILE_BYTES` (``header_only``: its first :data:`HEADER_BYTES`), in one
    read, and the file's size (None for a larger file, or one that cannot be read: rasterio says what is wrong then,
    as before). Immutable ``bytes``, which ``io.BytesIO`` shares with tifffile instead of copying (a bytearray is
    copied: 1.7 MB more per S2 file)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                return None
            wanted = min(size, HEADER_BYTES) if header_only else size
            content = f.read(wanted)
            return (content, size) if len(content) == wanted else None
    except OSError:
        return None


def _plain_page(page: tifffile.TiffPage, content: bytes | bytearray, size: int) -> PlainGeoTiff | None:
    """The page as a :class:`PlainGeoTiff`, if its pixels lie uncompressed in one run inside the file's ``size``
    bytes (``content``: all of them, or the first ones for a header) and its tags give an EPSG code and a north-up
    transform."""
    simple = (
        all(int(tag.dtype) in TAG_TYPES.get(tag.code, ()) for tag in page.tags.values())
        and all(len(set(np.atleast_1d(page.tags.valueof(code, 1)).tolist())) == 1 for code in (258, 339))
        and all(_plain_ascii(tag, content) for tag in page.tags.values() if int(tag.dtype) == 2)
        and len(page.extrasamples) < page.samplesperpixel
        and all(int(v) in (0, 1, 2) for v in page.extrasamples)  # libtiff refuses other kinds of extra samples
        and page.compression == 1
        and page.predictor == 1
        and page.fillorder == 1
        and page.subfiletype == 0
        and page.photometric in (1, 2)
        and page.planarconfig in (1, 2)
        and page.dtype is not None
        and page.dtype.kind in "uif"
        and page.is_contiguous
        and sum(page.databytecounts) == page.nbytes
        and page.dataoffsets[0] + page.nbytes <= size
        and page.imagedepth == 1
        and min(page.imagewidth, page.imagelength, page.samplesperpixel) > 0
    )
    if not simple:
        return None
    transform, epsg = _transform(page.tags), _epsg(page.tags)
    if transform is None or epsg is None:
        return None
    dtype = np.dtype(page.dtype).newbyteorder("=")
    count = page.samplesperpixel
    header = Header(epsg, f"EPSG:{epsg}", transform, dtype, count, page.imagelength, page.imagewidth)
    return PlainGeoTiff(header, content, page.dataoffsets[0], page.planarconfig == 2 or count == 1)


def _plain_ascii(tag: tifffile.TiffTag, content: bytes | bytearray) -> bool:
    """Whether an ASCII tag's bytes hold no NUL before their last (libtiff drops a tag with one, and GDAL then
    builds no CRS from GeoKeys citing it)."""
    raw = bytes(content[tag.valueoffset : tag.valueoffset + tag.count])
    return len(raw) == tag.count and b"\0" not in raw[:-1]


def _transform(tags: tifffile.TiffTags) -> tuple[float, ...] | None:
    """The affine transform (a, b, c, d, e, f) of ModelPixelScale + one ModelTiepoint, or ModelTransformation, as GDAL
    derives it; None for anything else (several tiepoints, both kinds, a scale that is not positive)."""
    scale, tiepoint, matrix = (tags.valueof(code) for code in (33550, 33922, 34264))
    if matrix is not None and scale is None and tiepoint is None and len(matrix) == 16:
        m = [float(v) for v in matrix]
        return (m[0], m[1], m[3], m[4], m[5], m[7]) if m[12:] == [0.0, 0.0, 0.0, 1.0] else None
    if matrix is not None or scale is None or tiepoint is None or len(scale) != 3 or len(tiepoint) != 6:
        return None
    sx, sy = float(scale[0]), float(scale[1])
    i, j, x, y = (float(v) for v in (tiepoint[0], tiepoint[1], tiepoint[3], tiepoint[4]))
    if not (sx > 0 and sy > 0 and all(map(math.isfinite, (sx, sy, i, j, x, y)))):
        return None
    return (sx, 0.0, x - i * sx, 0.0, -sy, y - j * -sy)


def _epsg(tags: tifffile.TiffTags) -> int | None:
    """The EPSG code of a GeoKeyDirectory that holds nothing but a projected EPSG code (see
    :data:`GEOKEYS_KNOWN`), if PROJ knows that code; None otherwise."""
    directory = tags.valueof(34735)
    if directory is None or len(directory) < 4 or directory[0] != 1 or len(directory) != 4 + 4 * directory[3]:
        return None
    keys = {directory[k]: directory[k + 1 : k + 4] for k in range(4, len(directory), 4)}
    if not set(keys) <= GEOKEYS_KNOWN or any(keys[k] != (0, 1, v) for k, v in GEOKEY_DEFAULTS.items() if k in keys):
        return None
    if keys.get(1024) != (0, 1, 1) or keys.get(3072, (1,))[:2] != (0, 1):
        return None  # not projected, or no EPSG code of its own
    return known_epsg(int(keys[3072][2]))


@functools.lru_cache(maxsize=256)
def known_epsg(code: int) -> int | None:
    """``code`` if GDAL's CRS from it says it is that EPSG code (as rasterio's ``crs.to_epsg()`` of a file would);
    None otherwise. Cached: a data set has a few dozen codes (its UTM zones)."""
    try:
        return code if 0 < code < 32767 and CRS.from_epsg(code).to_epsg() == code else None
    except CRSError:
        return None
