"""Fuzz target: generated and mutated ``.tar.gz`` bytes into the archive reader
(:func:`cube.ingest.archives.read_members`).

Whatever the bytes, only :class:`~cube.ingest.archives.ArchiveError` comes out, every message is one line, no member
read is larger than :data:`~cube.ingest.archives.MEMBER_LIMIT`, and the reader's Python allocations stay within a few
chunks, whatever sizes the headers claim.
"""

from __future__ import annotations

import io
import tarfile
import tracemalloc
import zlib

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from cube.ingest.archives import MEMBER_LIMIT, SKIP_CHUNK, TRAILING_LIMIT, ArchiveError, read_members

pytestmark = pytest.mark.fuzz

PEAK = MEMBER_LIMIT + 4 * SKIP_CHUNK
"""The most the reader may allocate (traced by tracemalloc) for the small inputs generated here."""
NAMES = [
    "europa/ROIs1868/17/S2/0/s2_ROIs1868_17_ImgNo_0_2018-01-03_patch_0.tif",
    "europa/notes.bin",
    "x.tif",
    "a\nb.tif",
    "d/" * 60 + "long.tif",
    "",
]
KINDS = [b"0", b"\0", b"7", b"1", b"2", b"3", b"4", b"5", b"6", b"S", b"x", b"g", b"L", b"K", b"V", b"Z"]
SIZES = st.one_of(
    st.integers(0, 1500), st.sampled_from([MEMBER_LIMIT, MEMBER_LIMIT + 1, 1 << 30, 1 << 40, 8**11 - 1, 1 << 80])
)
PAX_KEYS = [
    "path",
    "size",
    "GNU.sparse.realsize",
    "GNU.sparse.size",
    "GNU.sparse.name",
    "GNU.sparse.major",
    "mtime",
    "linkpath",
]


@st.composite
def pax_data(draw: st.DrawFn) -> bytes:
    """PAX records, well formed or not."""
    records = b""
    for key, value in draw(
        st.dictionaries(
            st.sampled_from(PAX_KEYS), st.one_of(st.integers(0, 1 << 64).map(str), st.text(max_size=20)), max_size=4
        )
    ).items():
        body = f" {key}={value}\n".encode()
        length = len(body) + len(str(len(body)))
        length += len(str(length)) != len(str(len(body)))
        records += str(length).encode() + body
    return draw(st.one_of(st.just(records), st.binary(max_size=200)))


@st.composite
def tar_bytes(draw: st.DrawFn) -> bytes:
    """A few members of any kind, with claimed sizes that may not match their data, an end block or not, and
    some trailing zeros."""
    out = b""
    for _ in range(draw(st.integers(0, 5))):
        info = tarfile.TarInfo(draw(st.sampled_from(NAMES)))
        info.type = draw(st.sampled_from(KINDS))
        data = draw(pax_data()) if info.type in (b"x", b"g") else draw(st.binary(max_size=1500))
        info.size = draw(st.one_of(st.just(len(data)), SIZES))
        try:
            out += info.tobuf(tarfile.GNU_FORMAT)
        except ValueError:  # a size tarfile cannot write
            out += tarfile.TarInfo("x.tif").tobuf(tarfile.GNU_FORMAT)
        out += data + bytes(-len(data) % 512)
    out += bytes(draw(st.sampled_from([0, 512, 1024, 10240])))
    return out + bytes(draw(st.sampled_from([0, 100, TRAILING_LIMIT + 1])))


def mutated(data: bytes, flips: list[tuple[float, int]], keep: float) -> bytes:
    """``data`` with bytes replaced at the given fractions of its length, cut to ``keep`` of it."""
    out = bytearray(data)
    for where, value in flips:
        if out:
            out[int(where * (len(out) - 1))] = value
    return bytes(out[: max(0, round(keep * len(out)))])


FLIPS = st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=3)
DAMAGE = ["none", "none", "tar bytes", "gzip bytes", "cut", "raw"]
"""How an input is damaged: not at all (a third of them), bytes of the tar or of its gzip replaced, the gzip cut
short, or raw bytes instead."""


@given(tar=tar_bytes(), damage=st.sampled_from(DAMAGE), flips=FLIPS, keep=st.floats(0, 1), raw=st.binary(max_size=300))
def test_only_archive_errors_in_one_line_and_bounded_reads(
    tar: bytes, damage: str, flips: list, keep: float, raw: bytes
) -> None:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing
    tar = mutated(tar, flips, 1.0) if damage == "tar bytes" else tar
    data = compressor.compress(tar) + compressor.flush()
    data = {"gzip bytes": mutated(data, flips, 1.0), "cut": mutated(data, [], keep), "raw": raw}.get(damage, data)
    tracemalloc.start()
    try:
        for name, content in read_members(io.BytesIO(data), "fuzz.tar.gz"):
            event("refused" if isinstance(content, ArchiveError) else "read")
            assert "\n" not in name
            if isinstance(content, ArchiveError):
                assert "\n" not in str(content) and str(content).startswith(f"fuzz.tar.gz!{name}: ")
            else:
                assert isinstance(content, bytes) and len(content) <= MEMBER_LIMIT and name.endswith(".tif")
    except ArchiveError as err:
        event(str(err).split(": ")[-1][:30])
        assert "\n" not in str(err) and str(err).startswith("fuzz.tar.gz: ")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK
