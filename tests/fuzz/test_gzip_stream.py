"""Fuzz target: generated gzip streams (members, header fields, deflate blocks, flushes, runs of empty blocks or
members, padding) around a small tar archive into the archive reader (:func:`cube.ingest.archives.read_members`).

A stream whose input without output stays well inside :data:`~cube.ingest.archives.INPUT_SLACK` is read whole and gives
its members; one with more is refused in one line, having read at most the bound and one read of igzip beyond it.
Nothing else comes out but a one-line :class:`~cube.ingest.archives.ArchiveError`.
"""

from __future__ import annotations

import io
import math
import struct
import tarfile
import zlib

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from cube.ingest.archives import INPUT_PER_OUTPUT, INPUT_SLACK, SKIP_CHUNK, ArchiveError, read_members

pytestmark = pytest.mark.fuzz

EMPTY_BLOCK = b"\x00\x00\x00\xff\xff"
"""A deflate stored block of no bytes, not the last one."""
READ_AHEAD = 512 << 10
"""igzip's reads of its input: the reader may read this much beyond the bound before it sees it."""
ASKED = SKIP_CHUNK
"""The most output the reader asks for beyond what the stream holds (a read after the tar's end)."""
SAFE = INPUT_SLACK // 4
"""Bytes without output that a stream may hold and still be read whole (the rest of the slack is igzip's read-ahead
and the tar's own zeros)."""
RUNS = st.sampled_from([0, 0, 0, 1, 7, 1000, SAFE // 2 // len(EMPTY_BLOCK), 3 * INPUT_SLACK // len(EMPTY_BLOCK)])
"""How many empty blocks (or members, or bytes of padding) one run holds: none, a few, within the bound, beyond."""


def gzip_header(name: bytes | None, comment: bytes | None, extra: bytes | None) -> bytes:
    flags = (4 if extra is not None else 0) | (8 if name is not None else 0) | (16 if comment is not None else 0)
    out = b"\x1f\x8b\x08" + bytes([flags]) + bytes(6)
    if extra is not None:
        out += struct.pack("<H", len(extra)) + extra
    return out + b"".join(field + b"\0" for field in (name, comment) if field is not None)


@st.composite
def tar_archive(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A small tar archive of one or two images (random bytes or zeros) and its members."""
    buffer, members = io.BytesIO(), []
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(draw(st.integers(1, 2))):
            data = draw(st.one_of(st.binary(max_size=3000), st.integers(0, 300_000).map(bytes)))
            info = tarfile.TarInfo(f"europa/ROIs1868/17/S2/{i}/image_{i}.tif")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            members.append((info.name, data))
    return buffer.getvalue(), members


@st.composite
def gzip_stream(draw: st.DrawFn, tar: bytes) -> tuple[bytes, int]:
    """``tar`` as gzip members of flushed deflate pieces, with runs of empty blocks between pieces, empty members
    between members and zeros after the last; also the bytes of those runs and of the headers' fields."""
    cuts = sorted(draw(st.lists(st.integers(0, len(tar)), max_size=4)))
    pieces = [tar[a:b] for a, b in zip([0, *cuts], [*cuts, len(tar)], strict=True)]
    members = sorted(draw(st.sets(st.integers(1, max(1, len(pieces) - 1)), max_size=2)))
    out, junk = b"", 0
    for group in (pieces[a:b] for a, b in zip([0, *members], [*members, len(pieces)], strict=True)):
        fields = [
            draw(
                st.one_of(
                    st.none(), st.binary(max_size=40).map(lambda b: b.replace(b"\0", b".")), st.just(b"n" * (600 << 10))
                )
            )
            for _ in range(2)
        ]  # (longer than igzip's buffer)
        fields.append(draw(st.one_of(st.none(), st.binary(max_size=300))))
        empty_members = draw(RUNS) // 4
        out += (gzip_header(None, None, None) + b"\x03\x00" + bytes(8)) * empty_members + gzip_header(*fields)
        junk += 20 * empty_members + sum(len(f) + 2 for f in fields if f is not None)
        compressor = zlib.compressobj(draw(st.integers(0, 9)), zlib.DEFLATED, -15)
        for piece in group:
            run = draw(RUNS)
            out += compressor.compress(piece) + compressor.flush(
                draw(st.sampled_from([zlib.Z_SYNC_FLUSH, zlib.Z_FULL_FLUSH]))
            )
            out += EMPTY_BLOCK * run
            junk += len(EMPTY_BLOCK) * run
        data = b"".join(group)
        out += compressor.flush() + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    padding = draw(RUNS)
    return out + bytes(padding), junk + padding


@given(data=st.data())
def test_input_without_output_is_read_to_its_bound_and_no_further(data: st.DataObject) -> None:
    tar, members = data.draw(tar_archive())
    stream, junk = data.draw(gzip_stream(tar))
    raw = io.BytesIO(stream)
    try:
        got = [(name, content) for name, content in read_members(raw, "fuzz.tar.gz")]
    except ArchiveError as err:
        event("refused")
        assert "\n" not in str(err) and str(err).startswith("fuzz.tar.gz: ")
        assert junk > SAFE, str(err)  # a stream read whole by gzip is not refused for less
        assert "INPUT_SLACK" in str(err) or "Gzip header exceeds input buffer" in str(err), str(err)
        assert raw.tell() <= math.ceil((len(tar) + ASKED) * INPUT_PER_OUTPUT) + INPUT_SLACK + READ_AHEAD
    else:
        event("read whole")
        assert got == members
        assert junk <= math.ceil((len(tar) + ASKED) * INPUT_PER_OUTPUT) + INPUT_SLACK + READ_AHEAD
