"""Archives are read member by member as a stream; a broken one is one error naming where it broke."""

from __future__ import annotations

import re
import tarfile
import time
import zlib
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
from isal import igzip

from cube.ingest import archives
from cube.ingest.archives import MEMBER_LIMIT, Archive, ArchiveError, MemberStream
from tests.helpers import CASES, GIB, crafted, europa_archives, header, member, members_of, write_tar_gz
from tests.servers import http_server


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return europa_archives(tmp_path_factory.mktemp("one_archive"), patches=2) / "s2_europa.tar.gz"


def test_members_stream_in_archive_order_with_their_bytes(archive: Path) -> None:
    members = list(MemberStream(Archive(str(archive), archive.name)))
    assert [name for name, _ in members] == sorted(name for name, _ in members)  # a walk of the tree
    assert len(members) == 2 * 3 and all(name.startswith("europa/ROIs1868/17/S2/") for name, _ in members)
    assert all(content[:2] in (b"II", b"MM") for _, content in members)  # whole GeoTIFFs


def test_a_url_streams_the_same_members(archive: Path) -> None:
    local = list(MemberStream(Archive(str(archive), archive.name)))
    with http_server(archive.parent) as url:
        remote = list(MemberStream(Archive(f"{url}/{archive.name}", archive.name)))
    assert remote == local


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_a_truncated_archive_names_the_last_member_read_whole(archive: Path, tmp_path: Path, keep: float) -> None:
    data = archive.read_bytes()
    broken = tmp_path / archive.name
    broken.write_bytes(data[: int(len(data) * keep)])
    read = []
    with pytest.raises(
        ArchiveError,
        match=r"^s2_europa.tar.gz: truncated or corrupt archive, broke after member "
        r"europa/ROIs1868/17/S2/",
    ) as caught:
        for name, _ in MemberStream(Archive(str(broken), broken.name)):
            read.append(name)
    assert read and read[-1] in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("where", [0.5, -6])  # a byte of the compressed data; of the CRC in the trailer
def test_a_corrupt_byte_is_an_error(archive: Path, tmp_path: Path, where: float) -> None:
    data = bytearray(archive.read_bytes())
    data[int(len(data) * where) if where > 0 else where] ^= 0xFF
    broken = tmp_path / archive.name
    broken.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"^s2_europa.tar.gz: truncated or corrupt archive, broke "):
        list(MemberStream(Archive(str(broken), broken.name)))


def test_a_missing_archive_url_is_one_error(tmp_path: Path) -> None:
    with http_server(tmp_path) as url, pytest.raises(ArchiveError, match=r"s2_x.tar.gz: cannot be opened"):
        MemberStream(Archive(f"{url}/s2_x.tar.gz", "s2_x.tar.gz"))


# Crafted archives: headers made with tarfile, streamed through igzip, so a member of 1 GiB costs a few MB on disk.


@pytest.mark.parametrize("case", CASES)
def test_what_an_archive_claims_is_bounded_and_named_in_one_line(archive: Path, tmp_path: Path, case: str) -> None:
    path, named = crafted(archive, tmp_path, case)
    assert path.stat().st_size < 3 << 20  # tiny on disk, whatever it claims
    got, errors = [], []
    try:
        for name, content in MemberStream(Archive(str(path), path.name)):
            (errors if isinstance(content, ArchiveError) else got).append((name, content))
    except ArchiveError as err:
        errors.append((None, err))
    assert len(errors) == 1 and "\n" not in str(errors[0][1])
    assert re.fullmatch(re.escape(path.name) + CASES[case].format(member=re.escape(named)) + ".*", str(errors[0][1]))
    assert all(len(content) <= MEMBER_LIMIT for _, content in got)
    lost = {"zeros": 1, "sparse": 1, "pax": 1, "other": 0, "trailing": 0}[case]  # the rest is read on
    assert len(got) == len(members_of(archive)) - lost


class EndlessZeros(SimpleHTTPRequestHandler):
    """A served archive whose gzip stream goes on with zeros after its tar archive, for as long as it is read."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        raw = igzip.decompress((Path(self.directory) / "s2_europa.tar.gz").read_bytes())
        compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing
        self.send_response(200)
        self.end_headers()
        try:
            self.wfile.write(compressor.compress(raw))
            for _ in range(1 << 14):  # 16 GiB of zeros, unless the reader stops first
                self.wfile.write(compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH))
        except OSError:  # the reader closed the connection
            pass


def test_endless_data_after_the_tar_archive_stops_within_its_bound(archive: Path) -> None:
    start = time.monotonic()
    with (
        http_server(archive.parent, EndlessZeros) as url,
        pytest.raises(
            ArchiveError,
            match=r"^s2_europa.tar.gz: truncated or corrupt archive, broke after member europa/.*: "
            r"more than 1048576 B follow the end of the tar archive",
        ),
    ):
        list(MemberStream(Archive(f"{url}/s2_europa.tar.gz", "s2_europa.tar.gz")))
    assert time.monotonic() - start < 20


class Stalls(SimpleHTTPRequestHandler):
    """Sends the headers and the first 100 bytes of a served archive, then nothing for 5 s."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write((Path(self.directory) / "s2_europa.tar.gz").read_bytes()[:100])
        self.wfile.flush()
        time.sleep(5)


def test_a_stalled_server_times_out_in_one_line(archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archives, "URL_TIMEOUT_S", 0.5)
    start = time.monotonic()
    with (
        http_server(archive.parent, Stalls) as url,
        pytest.raises(
            ArchiveError,
            match=r"^s2_europa.tar.gz: truncated or corrupt archive, broke before its first member: "
            r"timed out$",
        ),
    ):
        list(MemberStream(Archive(f"{url}/s2_europa.tar.gz", "s2_europa.tar.gz")))
    assert time.monotonic() - start < 4


class BreaksMidChunk(SimpleHTTPRequestHandler):
    """A chunked answer that announces a chunk of 1000 bytes, sends 10 and closes."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(b"3e8\r\n" + (Path(self.directory) / "s2_europa.tar.gz").read_bytes()[:10])


def test_a_chunked_answer_cut_short_is_one_line(archive: Path) -> None:
    """It raised http.client.IncompleteRead (a traceback from crts convert)."""
    with (
        http_server(archive.parent, BreaksMidChunk) as url,
        pytest.raises(
            ArchiveError,
            match=r"^s2_europa.tar.gz: truncated or corrupt archive, broke before its first member: "
            r"IncompleteRead\(0 bytes read\)$",
        ),
    ):
        list(MemberStream(Archive(f"{url}/s2_europa.tar.gz", "s2_europa.tar.gz")))


def pax(records: dict[str, str]) -> Iterator[bytes]:
    """A PAX header with these records."""
    data = b""
    for key, value in records.items():
        body = f" {key}={value}\n".encode()
        size = len(body) + len(str(len(body) + 2))
        data += str(size).encode() + body
    yield header("././@PaxHeader", len(data), tarfile.XHDTYPE)
    yield data + bytes(-len(data) % 512)


def test_links_devices_fifos_and_sparse_files_named_tif_are_refused_unread(tmp_path: Path) -> None:
    parts = [
        header("a/link.tif", 0, tarfile.SYMTYPE),
        header("a/fifo.tif", 0, tarfile.FIFOTYPE),
        header("a/device.tif", 1 << 30, tarfile.CHRTYPE),  # a size that a device's header does not hold
        *pax(
            {
                "GNU.sparse.major": "1",
                "GNU.sparse.minor": "0",
                "GNU.sparse.name": "a/sparse.tif",
                "GNU.sparse.realsize": str(GIB),
            }
        ),
        header("a/GNUSparseFile.0/sparse.tif", 512),
        bytes(512),
        header("a/dir.tif/", 0, tarfile.DIRTYPE),
        *member("a/notes.txt", b"skipped"),  # both skipped
        *member("a/image.tif", b"II*\0"),
        bytes(1024),
    ]
    path = write_tar_gz(tmp_path / "s2_x.tar.gz", parts)
    got = [
        (name, content if isinstance(content, bytes) else str(content))
        for name, content in MemberStream(Archive(str(path), path.name))
    ]
    assert got == [
        ("a/link.tif", "s2_x.tar.gz!a/link.tif: a symbolic link, not a regular file: refused, skipped unread"),
        ("a/fifo.tif", "s2_x.tar.gz!a/fifo.tif: a FIFO, not a regular file: refused, skipped unread"),
        ("a/device.tif", "s2_x.tar.gz!a/device.tif: a character device, not a regular file: refused, skipped unread"),
        (
            "a/sparse.tif",
            "s2_x.tar.gz!a/sparse.tif: a sparse file claiming 1073741824 B, not a regular file: "
            "refused, skipped unread",
        ),
        ("a/image.tif", b"II*\0"),
    ]


def test_an_endless_old_gnu_sparse_map_stops_the_archive(tmp_path: Path) -> None:
    extension = bytearray(512)
    extension[504] = 1  # another extension block follows
    sparse = header("a/sparse.tif", 512, tarfile.GNUTYPE_SPARSE, {482: b"\1", 483: b"%011o\0" % GIB})
    parts = [*member("a/first.tif", b"II*\0"), sparse, *[bytes(extension)] * 1000]
    path = write_tar_gz(tmp_path / "s2_x.tar.gz", parts)
    with pytest.raises(
        ArchiveError,
        match=r"^s2_x.tar.gz: truncated or corrupt archive, broke after member "
        r"a/first.tif \(1 read whole\): the old GNU sparse map of a/sparse.tif"
        r" is longer than 65536 B \(HEADER_LIMIT\): refused unread$",
    ):
        list(MemberStream(Archive(str(path), path.name)))


# Compressed data that gives no output: igzip reads on through it, without returning, for as long as it lasts.

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
"""A gzip member's header without name, comment or extra field."""
EMPTY_BLOCK = b"\x00\x00\x00\xff\xff"
"""A deflate stored block of no bytes, not the last one (what a sync flush writes, after its 3 bits)."""
EMPTY_MEMBER = GZIP_HEADER + b"\x03\x00" + bytes(8)
"""A whole gzip member of no bytes (its last block empty, CRC 0, size 0)."""
NO_OUTPUT = {"empty deflate blocks": (GZIP_HEADER, EMPTY_BLOCK), "empty gzip members": (b"", EMPTY_MEMBER)}
BOUND = (
    r"^s2_x.tar.gz: truncated or corrupt archive, broke before its first member: \d+ B of compressed data for "
    r"at most 512 B of output, more than any gzip writer needs \(INPUT_PER_OUTPUT, INPUT_SLACK\): refused, read "
    r"no further$"
)


def no_output(case: str, size: int) -> Iterator[bytes]:
    """About ``size`` bytes of a gzip stream that decompresses to nothing, in chunks of about 1 MiB."""
    start, unit = NO_OUTPUT[case]
    yield start
    for _ in range(size >> 20):
        yield unit * ((1 << 20) // len(unit))


@pytest.mark.parametrize("case", NO_OUTPUT)
def test_compressed_data_without_output_is_read_only_to_its_bound(tmp_path: Path, case: str) -> None:
    """The old reader read the whole file (16 MiB here) and called it truncated."""
    path = tmp_path / "s2_x.tar.gz"
    with path.open("wb") as out:
        out.writelines(no_output(case, 16 << 20))
    with path.open("rb") as raw:
        with pytest.raises(ArchiveError, match=BOUND):
            list(archives.read_members(raw, path.name))
        assert raw.tell() <= archives.INPUT_SLACK + (512 << 10)  # one read of igzip's beyond the bound at most


class EmptyBlocks(SimpleHTTPRequestHandler):
    """A gzip stream of empty deflate blocks, 64 MiB unless the reader stops first; ``sent``: bytes written."""

    sent = 0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            for chunk in no_output("empty deflate blocks", 64 << 20):
                self.wfile.write(chunk)
                EmptyBlocks.sent += len(chunk)
        except OSError:  # the reader closed the connection
            pass


def test_a_url_of_empty_deflate_blocks_stops_at_the_bound(tmp_path: Path) -> None:
    """From a server that goes on, the old reader read on for as long as it sent (without end for an endless one)."""
    EmptyBlocks.sent = 0
    start = time.monotonic()
    with http_server(tmp_path, EmptyBlocks) as url, pytest.raises(ArchiveError, match=BOUND):
        list(MemberStream(Archive(f"{url}/s2_x.tar.gz", "s2_x.tar.gz")))
    assert time.monotonic() - start < 10
    assert EmptyBlocks.sent < 16 << 20  # what was read, and what the connection's buffers took before it closed


def test_a_gzip_header_longer_than_igzip_reads_is_one_line(tmp_path: Path) -> None:
    """A file name of 1 MiB in the gzip header: igzip raised OverflowError (a traceback from crts convert)."""
    path = tmp_path / "s2_x.tar.gz"
    path.write_bytes(GZIP_HEADER[:3] + b"\x08" + GZIP_HEADER[4:] + b"a" * (1 << 20) + b"\0" + EMPTY_BLOCK)
    with pytest.raises(
        ArchiveError,
        match=r"^s2_x.tar.gz: truncated or corrupt archive, broke before its first "
        r"member: Gzip header exceeds input buffer size of 524288$",
    ):
        list(MemberStream(Archive(str(path), path.name)))
