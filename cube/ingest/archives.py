"""Reading the published ``.tar.gz`` archives member by member, as a stream, without extracting them.

A source of a conversion is an archive (a local file or an ``http(s)://`` URL)
or an extracted tree. An archive's members are read once, in the order they
lie in it; each member's name is mapped to its path in the data set's tree
(the part from the first ``ROIsXXXX`` folder on), so the tree's own parser and
checks apply. Names as recorded in a cube: ``<archive>!<member>``, e.g.
``s2_africa.tar.gz!africa/ROIs2017/140/S2/0/s2_ROIs2017_140_ImgNo_0_2018-01-03_patch_12.tif``.

Decompression: ISA-L's ``igzip`` (python-isal), for local files and URLs alike (it
reads a stream that cannot seek): about half the time and CPU of Python's
``gzip`` (``benchmarks/bench_archives.py``), and, measured on the largest
synthetic archive, as fast as ``rapidgzip`` on 2 threads (1.1-1.3 s against
1.1-1.2 s) at half its CPU (1.1-1.3 s against 2.0-2.3 s). More cores are used by
reading several groups of archives at once. It checks the gzip CRC and length at the end, so a
truncated or corrupt archive always ends in an :class:`ArchiveError`.

Bounds: the tar stream is parsed here (not by :mod:`tarfile`, which reads PAX
headers whole and expands sparse members), each length checked before anything
is read: a member's data (:data:`MEMBER_LIMIT`), the extended headers before a
member (:data:`HEADER_LIMIT`), the data after the end of the tar archive
(:data:`TRAILING_LIMIT`), and the compressed bytes read by the output they give
(:data:`INPUT_PER_OUTPUT`, :data:`INPUT_SLACK`: compressed data that gives no
output is not read on without end). Only regular ``.tif`` members are read; every other
member's bytes are skipped in chunks, unread, and links, devices, FIFOs and
sparse files named ``.tif`` are refused without reading their data. A URL is
followed through redirects to http(s) only, never from https to http.
"""

from __future__ import annotations

import http.client
import io
import math
import os
import re
import struct
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, cast

from isal import igzip, isal_zlib

from ..dataset.problems import FileProblem
from ..dataset.rois import Roi, region_of, split_of

if TYPE_CHECKING:  # typeshed's buffer protocol, not importable
    from _typeshed import WriteableBuffer

ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz")
IMAGE_SUFFIX = ".tif"
"""The data set's images are GeoTIFFs: the only members read; others are skipped unread."""
MEMBER_LIMIT = 4 << 20
"""The most bytes a member may hold. The data set's largest image is an S2 patch, 13 bands x 256 x 256 px of
uint16: 1,703,936 B of pixels (an S1 patch, 2 bands of float32: 524,288 B), about 1.7 MB as a GeoTIFF with its
tags. 4 MiB leaves room for other strip layouts and tags; a member is read whole and spooled, so this is also the
most one member costs in memory and in the scratch folder. A larger member is refused, its bytes skipped unread."""
HEADER_LIMIT = 64 << 10
"""The most bytes of extended headers (PAX records, GNU long names, old GNU sparse maps) before one member. The
data set's hold a path (at most 4,096 B, Linux's PATH_MAX) and a few times and ids: some hundred bytes. More stops
the archive's reading (what follows cannot be told apart from them)."""
TRAILING_LIMIT = 1 << 20
"""The most bytes read after the tar archive's end block. tar pads an archive to a whole record, 10 KiB by default
(20 blocks of 512 B); 1 MiB allows blocking factors up to 2,048. More there is refused, and not read."""
INPUT_SLACK = 1 << 20
"""The most compressed bytes read beyond what the output read (and asked for) so far can need (see
:data:`INPUT_PER_OUTPUT`). igzip reads its input 512 KiB at a time ahead of its output, and holds up to 8 KiB of
output in its buffer; a gzip header's name, comment and extra field are some bytes in the data set's archives. More
compressed input without output (empty deflate blocks, empty gzip members, endless zero padding after a member:
igzip reads on through them without returning) is refused: from a URL it would never end."""
INPUT_PER_OUTPUT = 1.01
"""The most compressed bytes per byte of output (besides :data:`INPUT_SLACK`). Deflate's worst case, data that does
not compress, is stored blocks: 5 B per 65,535 B (+0.008 %); a stream of gzip members (pigz, bgzip) adds at most
26 B per member of 64 KiB (+0.04 %). The data set's GeoTIFFs compress, so their archives need less than one byte of
input per byte of output; 1 % more than the output covers any gzip writer."""
URL_TIMEOUT_S = 60
"""Seconds without a byte from a server before reading an archive from a URL gives up (one line, an
:class:`ArchiveError`)."""
SKIP_CHUNK = 1 << 20
"""The most bytes held at once while skipping a member's data."""
BLOCK = 512
"""tar's block: headers are one block, data is padded to whole blocks."""
MEMBER_SEPARATOR = "!"
"""Between an archive's name and a member's name in the paths a cube records."""
_TOP = re.compile(r"ROIs\d{4}(_[a-z]+_(s1|s2|s2_cloudy))?")
"""The first folder of a member that belongs to the tree: ``ROIs1868`` or ``ROIs1158_spring_s1``."""
_GROUP = (re.compile(r"^s[12]_(?P<key>.+)$"), re.compile(r"^(?P<key>ROIs\d{4}_[a-z]+)_(s1|s2|s2_cloudy)$"))
"""Archive stems whose archives share patches: ``s1_africa``/``s2_africa``, ``ROIs1158_spring_s1``/``_s2``/..."""


class ArchiveError(FileProblem):
    """An archive that cannot be read to its end: truncated, corrupt, or unreachable."""


def is_archive(location: str | os.PathLike) -> bool:
    """Whether a path or URL names a ``.tar.gz`` archive (by its name)."""
    return archive_name(location).endswith(ARCHIVE_SUFFIXES)


def is_url(location: str | os.PathLike) -> bool:
    return str(location).startswith(("http://", "https://"))


def archive_name(location: str | os.PathLike) -> str:
    """The file name of an archive: of a path, of a URL's path, or of its ``files=`` query (mediaTUM's form).

    Examples
    --------
    >>> archive_name("https://dataserv.ub.tum.de/s/m1639953/download?path=/&files=s2_africa.tar.gz")
    's2_africa.tar.gz'
    >>> archive_name("/data/archives/s1_europa_test.tar.gz")
    's1_europa_test.tar.gz'
    """
    text = str(location)
    if not is_url(text):
        return Path(text).name
    url = urllib.parse.urlsplit(text)
    files = urllib.parse.parse_qs(url.query).get("files")
    return files[0] if files else PurePosixPath(url.path).name


def archive_of(modality: str, roi: Roi) -> tuple[str, str]:
    """The published archive that holds a SEN12MS-CR-TS ROI's files of one modality, and its top folder.

    ROIs that no region list names (ROIs2017/115 and /130, which the original's
    asiaWest list misspells) are in the asiaWest archives.

    Examples
    --------
    >>> archive_of("S2", Roi("ROIs2017", 63))
    ('s2_europa_test.tar.gz', 's2_europa_test')
    >>> archive_of("S1", Roi("ROIs1868", 17))
    ('s1_europa.tar.gz', 'europa')
    """
    region = region_of(roi)
    region = "asiaWest" if region == "unassigned" else region
    if split_of(roi) == "test":
        return f"{modality.lower()}_{region}_test.tar.gz", f"{modality.lower()}_{region}_test"
    return f"{modality.lower()}_{region}.tar.gz", region


def archive_group(name: str) -> str:
    """The archives whose members make up the same patches share a group: S1 and S2 of one region and collection.

    Examples
    --------
    >>> archive_group("s1_africa_test.tar.gz"), archive_group("s2_africa_test.tar.gz")
    ('africa_test', 'africa_test')
    >>> archive_group("ROIs1158_spring_s2_cloudy.tar.gz")
    'ROIs1158_spring'
    """
    stem = next(name[: -len(s)] for s in ARCHIVE_SUFFIXES if name.endswith(s))
    for pattern in _GROUP:
        if match := pattern.match(stem):
            return match["key"]
    return stem


def tree_path(member: str) -> str | None:
    """A member's path inside the data set's tree (from its first ``ROIsXXXX`` folder on), or None if outside it.

    Examples
    --------
    >>> tree_path("africa/ROIs2017/140/S2/0/s2_ROIs2017_140_ImgNo_0_2018-01-03_patch_12.tif")
    'ROIs2017/140/S2/0/s2_ROIs2017_140_ImgNo_0_2018-01-03_patch_12.tif'
    >>> tree_path("ROIs1158_spring_s1/s1_1/ROIs1158_spring_s1_1_p30.tif")
    'ROIs1158_spring_s1/s1_1/ROIs1158_spring_s1_1_p30.tif'
    >>> tree_path("africa/README.txt") is None
    True
    """
    parts = PurePosixPath(member).parts
    first = next((i for i, part in enumerate(parts[:-1]) if _TOP.fullmatch(part)), None)
    return None if first is None else "/".join(parts[first:])


@dataclass(frozen=True)
class Archive:
    """One archive to read: where it is, and its name as a cube records it (relative to the source root)."""

    location: str
    name: str

    @property
    def group(self) -> str:
        return archive_group(archive_name(self.location))


class RedirectChecked(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, each hop checked by :func:`check_redirect` (urllib alone follows ``ftp://``, and
    https to http); at most ``max_redirections`` (10) hops. A redirect's body is not read: it is closed here, before
    urllib reads it whole (a ``Content-Length`` of 25 GB was a MemoryError)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        fp.close()
        check_redirect(req.full_url, newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def check_redirect(old: str, new: str) -> None:
    """Refuse a redirect to anything but http(s), or from https to http (a ``URLError``, one line).

    Examples
    --------
    >>> check_redirect("https://a.org/x.tar.gz", "https://b.org/x.tar.gz")
    >>> check_redirect("http://a.org/x.tar.gz", "ftp://a.org/x.tar.gz")
    Traceback (most recent call last):
    ...
    urllib.error.URLError: <urlopen error refused a redirect from http://a.org/x.tar.gz to ftp://a.org/x.tar.gz: \
only to http(s), never from https to http>
    """
    scheme = urllib.parse.urlsplit(new).scheme
    if scheme not in ("http", "https") or (urllib.parse.urlsplit(old).scheme == "https" and scheme == "http"):
        raise urllib.error.URLError(
            f"refused a redirect from {old} to {new}: only to http(s), never from https to http"
        )


def open_url(request: urllib.request.Request | str, timeout: float) -> http.client.HTTPResponse:
    """A GET of ``request`` (an http(s) URL) with redirects checked (:class:`RedirectChecked`), ``timeout`` seconds
    at most without a byte; urllib's errors (OSErrors) as they come."""
    opener = urllib.request.build_opener(RedirectChecked)
    return opener.open(request, timeout=timeout)


def _open_raw(archive: Archive) -> io.BufferedIOBase:
    """The archive's compressed bytes as a stream."""
    try:
        if is_url(archive.location):
            return open_url(archive.location, URL_TIMEOUT_S)
        return open(archive.location, "rb")
    except OSError as err:  # urllib's errors are OSErrors too
        raise ArchiveError(archive.name, f"cannot be opened ({reason_of(err)})") from None


class DamagedTarError(Exception):
    """A tar stream that is not one, or that claims more than its bounds: the archive is read no further."""


class CompressedInput(io.RawIOBase):
    """The compressed bytes of an archive as igzip reads them, bounded by the ``output`` read and asked for so far
    (set by :class:`Inflated`): at most :data:`INPUT_PER_OUTPUT` times it plus :data:`INPUT_SLACK`; more is a
    :class:`DamagedTarError`."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self.raw, self.taken, self.output = raw, 0, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        count = self.raw.readinto(buffer) or 0
        self.taken += count
        if self.taken > math.ceil(self.output * INPUT_PER_OUTPUT) + INPUT_SLACK:
            raise DamagedTarError(
                f"{self.taken} B of compressed data for at most {self.output} B of output, more than "
                "any gzip writer needs (INPUT_PER_OUTPUT, INPUT_SLACK): refused, read no further"
            )
        return count


class Inflated:
    """The decompressed bytes of a gzip stream (igzip), its compressed input bounded by :class:`CompressedInput`."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self.input, self.given = CompressedInput(raw), 0
        self.gzip = igzip.IGzipFile(fileobj=self.input, mode="rb")

    def read(self, size: int) -> bytes:
        self.input.output = self.given + size
        out = self.gzip.read(size)
        self.given += len(out)
        return out

    def __enter__(self) -> Inflated:
        return self

    def __exit__(self, *exc: object) -> None:
        self.gzip.close()


_BROKEN = (
    DamagedTarError,
    EOFError,
    cast("type[Exception]", isal_zlib.error),  # a class: isal's stub declares it an instance of Exception
    OSError,
    OverflowError,
    http.client.HTTPException,
)
"""What the tar reader, igzip and a URL's answer raise on a truncated, corrupt or unbounded archive (a bad CRC:
``gzip.BadGzipFile``, an OSError; a gzip header longer than igzip's 512 KiB input buffer: an OverflowError; a
chunked answer cut short: ``http.client.IncompleteRead``)."""
_REGULAR = (b"0", b"\0", b"7")
_HEADERS = {b"x": "PAX", b"g": "global PAX", b"L": "GNU long name", b"K": "GNU long link name"}
_SPECIAL = {
    b"1": "hard link",
    b"2": "symbolic link",
    b"3": "character device",
    b"4": "block device",
    b"5": "folder",
    b"6": "FIFO",
}
"""Members without data in the stream (their size field, if any, is ignored, as tar does)."""
_PAX_RECORD = re.compile(rb"(\d{1,20}) ")


def tar_number(field: bytes, what: str) -> int:
    """A header's number: octal digits, or GNU's base-256 (first byte 0x80); anything else is a
    :class:`DamagedTarError`.

    Examples
    --------
    >>> tar_number(b"00000001000\\x00", "size"), tar_number(b"\\x80" + (1 << 40).to_bytes(11, "big"), "size")
    (512, 1099511627776)
    """
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip(b" ")
    if not re.fullmatch(rb"[0-7]*", digits):
        raise DamagedTarError(f"a header's {what} field is not a number ({field!r})")
    return int(digits or b"0", 8)


def pax_number(value: str, what: str) -> int:
    """A PAX record's number (decimal digits); anything else is a :class:`DamagedTarError`."""
    if not re.fullmatch(r"[0-9]{1,30}", value):
        raise DamagedTarError(f"the {what} is not a number ({value[:40]!r})")
    return int(value)


def tar_text(field: bytes) -> str:
    """A NUL-terminated name (UTF-8), see :func:`printable`."""
    return printable(field.split(b"\0", 1)[0].decode("utf-8", "replace"))


def printable(name: str) -> str:
    r"""A name from an archive as it can be shown in one line: with control characters (a newline...) escaped.

    Examples
    --------
    >>> printable("a/b.tif"), printable("a\nb.tif")
    ('a/b.tif', 'a\\nb.tif')
    """
    return name if name.isprintable() else ascii(name)[1:-1]


def reason_of(err: BaseException) -> str:
    """An error's reason in one line: urllib's ``reason`` or its text (its first line, at most 300 characters,
    see :func:`printable`), else its type's name.

    Examples
    --------
    >>> reason_of(OSError("redirect loop.\\nThe last 30x error message was:\\nFound")), reason_of(EOFError())
    ('redirect loop.', 'EOFError')
    """
    lines = str(getattr(err, "reason", None) or err).splitlines()
    return printable(lines[0][:300]) if lines and lines[0].strip() else type(err).__name__


def check_header(block: bytes) -> None:
    """Refuse a block whose checksum (unsigned or signed, as tar writers differ) does not match."""
    stored = tar_number(block[148:156], "checksum")
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = sum(struct.unpack("148b", block[:148])) + 8 * 32 + sum(struct.unpack("356b", block[156:]))
    if stored not in (unsigned, signed):
        raise DamagedTarError("a header's checksum does not match: not a tar archive, or a corrupt one")


def pax_records(data: bytes, header: str) -> dict[str, str]:
    """The ``<length> <key>=<value>\\n`` records of a PAX header (its trailing NULs ignored)."""
    out, pos = {}, 0
    while pos < len(data) and data[pos:].strip(b"\0"):
        match = _PAX_RECORD.match(data, pos)
        end = pos + int(match[1]) if match else 0
        if not match or end <= match.end() or end > len(data) or data[end - 1] != 0x0A:
            raise DamagedTarError(f"the PAX header {header} holds a malformed record at byte {pos}")
        key, sep, value = data[match.end() : end - 1].partition(b"=")
        if not sep:
            raise DamagedTarError(f"the PAX header {header} holds a record without '=' at byte {pos}")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        pos = end
    return out


@dataclass(frozen=True)
class TarMember:
    """A member's header: its name, what it is (``file``, ``sparse file``, ``symbolic link`` ...), the bytes of data
    that follow it in the stream, and the size it claims (a sparse file's expanded size)."""

    name: str
    kind: str
    size: int
    claimed: int


class TarReader:
    """The members of an uncompressed tar stream, in order; a member's data is read by :meth:`read`, or else
    skipped in chunks (never held whole) when the next header is read. Every length is bounded before it is read."""

    def __init__(self, data: Inflated) -> None:
        self.data = data
        self.left = 0
        """Bytes of the current member's data (and its padding) not read yet."""
        self.current: str | None = None
        """The member whose data is being read or skipped."""

    def exactly(self, size: int) -> bytes:
        out = self.data.read(size)
        if len(out) != size:
            raise EOFError("the archive ends early")
        return out

    def skip(self, size: int) -> None:
        while size:
            chunk = self.data.read(min(size, SKIP_CHUNK))
            if not chunk:
                raise EOFError("the archive ends early")
            size -= len(chunk)

    def read(self, member: TarMember) -> bytes:
        """The data of the member just returned (at most :data:`MEMBER_LIMIT` bytes)."""
        if member.size > MEMBER_LIMIT:
            raise DamagedTarError(f"member {member.name} holds {member.size} B, more than {MEMBER_LIMIT}")
        content = self.exactly(member.size)
        self.skip(self.left - member.size)
        self.left = 0
        return content

    def __iter__(self) -> Iterator[TarMember]:
        while (member := self.next()) is not None:
            yield member

    def next(self) -> TarMember | None:
        """The next member's header, after its extended headers; None at the end of the archive."""
        self.skip(self.left)
        self.left, self.current, extended = 0, None, 0
        pax: dict[str, str] = {}
        while True:
            block = self.data.read(BLOCK)
            if not block.strip(b"\0") and len(block) in (0, BLOCK):
                return None  # the end block (or the end of a stream without one, which tar accepts)
            if len(block) != BLOCK:
                raise EOFError("the archive ends early")
            check_header(block)
            name, kind, size = tar_text(block[:100]), block[156:157], tar_number(block[124:136], "size")
            if kind == b"S":
                self.skip_sparse_map(block, name, extended)
            if kind not in _HEADERS:
                return self.member(block, name, kind, size, pax)
            extended += size
            if extended > HEADER_LIMIT:
                raise DamagedTarError(
                    f"the {_HEADERS[kind]} header {name} brings a member's extended headers to "
                    f"{extended} B, more than {HEADER_LIMIT} B (HEADER_LIMIT): refused unread"
                )
            data = self.exactly(size + -size % BLOCK)[:size]
            if kind == b"x":
                pax.update(pax_records(data, name))
            elif kind == b"g":
                pax_records(data, name)  # checked; it applies to no name or size read here
            elif kind == b"L":
                pax.setdefault("path", tar_text(data))

    def skip_sparse_map(self, block: bytes, name: str, extended: int) -> None:
        """Skip an old GNU sparse member's extension blocks (bounded with its other extended headers)."""
        more = block[482]
        while more:
            extended += BLOCK
            if extended > HEADER_LIMIT:
                raise DamagedTarError(
                    f"the old GNU sparse map of {name} is longer than {HEADER_LIMIT} B (HEADER_LIMIT): refused unread"
                )
            more = self.exactly(BLOCK)[504]

    def member(self, block: bytes, name: str, kind: bytes, size: int, pax: dict[str, str]) -> TarMember:
        """The member a header describes, with what its extended headers say (name, size, sparseness)."""
        if block[257:263] == b"ustar\0" and block[345:500].strip(b"\0"):  # POSIX: a name's prefix
            name = f"{tar_text(block[345:500])}/{name}"
        name = printable(pax.get("GNU.sparse.name") or pax.get("path") or name)
        if "size" in pax:
            size = pax_number(pax["size"], f"PAX size of {name}")
        sparse = kind == b"S" or any(key.startswith("GNU.sparse.") for key in pax)
        if kind in _SPECIAL or (kind in _REGULAR and name.endswith("/")):
            what, size = _SPECIAL.get(kind, "folder"), 0
        elif sparse:
            what = "sparse file"
        else:
            what = "file" if kind in _REGULAR else f"member of unknown type {kind!r}"
        realsize = pax.get("GNU.sparse.realsize") or pax.get("GNU.sparse.size")
        claimed = (
            tar_number(block[483:495], "sparse size")
            if kind == b"S"
            else pax_number(realsize, f"PAX sparse size of {name}")
            if realsize
            else size
        )
        self.left, self.current = size + -size % BLOCK, name
        return TarMember(name, what, size, claimed)

    def trailing(self) -> None:
        """After the end block: at most :data:`TRAILING_LIMIT` bytes, to the gzip trailer (checked there)."""
        seen = 0
        while chunk := self.data.read(min(SKIP_CHUNK, TRAILING_LIMIT + 1 - seen)):
            seen += len(chunk)
            if seen > TRAILING_LIMIT:
                raise DamagedTarError(f"more than {TRAILING_LIMIT} B follow the end of the tar archive: refused unread")


def refusal(member: TarMember) -> str | None:
    """Why a member is refused (its data skipped unread), or None: one too big for the data set, or one named as an
    image that is not a regular file."""
    if member.size > MEMBER_LIMIT:
        return (
            f"holds {member.size} B, more than the {MEMBER_LIMIT} B (MEMBER_LIMIT) a file of the data set can be: "
            "refused, skipped unread"
        )
    if not member.name.endswith(IMAGE_SUFFIX) or member.kind == "file":
        return None
    claims = f" claiming {member.claimed} B" if member.kind == "sparse file" else ""
    return f"a {member.kind}{claims}, not a regular file: refused, skipped unread"


def read_members(raw: io.BufferedIOBase, archive: str) -> Iterator[tuple[str, bytes | ArchiveError]]:
    """The ``.tif`` members of a ``.tar.gz`` stream ``raw`` (named ``archive`` in errors): ``(name, bytes)``, or
    ``(name, ArchiveError)`` for a member refused (:func:`refusal`), in the order they lie in the archive.

    Raises
    ------
    ArchiveError
        One line naming ``archive``, the last member read whole and the member it broke in: a stream that breaks,
        is not a tar archive, or goes beyond a bound.
    """
    tar, last, count = None, None, 0
    try:
        with Inflated(raw) as data:
            tar = TarReader(data)
            for member in tar:
                if reason := refusal(member):
                    yield member.name, ArchiveError(f"{archive}{MEMBER_SEPARATOR}{member.name}", reason)
                elif member.kind == "file" and member.name.endswith(IMAGE_SUFFIX):
                    content = tar.read(member)
                    yield member.name, content
                    last, count = member.name, count + 1
            tar.trailing()  # to the gzip trailer: its CRC and length are checked there
    except _BROKEN as err:
        where = f"after member {last} ({count} read whole)" if last else "before its first member"
        if tar is not None and tar.current not in (None, last):
            where += f", in member {tar.current}"
        raise ArchiveError(archive, f"truncated or corrupt archive, broke {where}: {reason_of(err)}") from None


class MemberStream:
    """The ``.tif`` members of one archive, in the order they lie in it: ``(member name, bytes or ArchiveError)``
    (see :func:`read_members`).

    The archive is opened at once (an :class:`ArchiveError` if it cannot be). A
    read that breaks raises :class:`ArchiveError` naming the archive and the last
    member read whole.
    """

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.raw = _open_raw(archive)

    def __iter__(self) -> Iterator[tuple[str, bytes | ArchiveError]]:
        with self.raw:
            yield from read_members(self.raw, self.archive.name)
