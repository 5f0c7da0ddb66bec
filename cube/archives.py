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
"""

from __future__ import annotations

import os
import re
import tarfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from isal import igzip, isal_zlib

from .problems import FileProblem
from .rois import Roi, region_of, split_of

ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz")
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


def _open_raw(archive: Archive) -> BinaryIO:
    """The archive's compressed bytes as a stream."""
    try:
        if is_url(archive.location):
            return urllib.request.urlopen(archive.location, timeout=60)  # noqa: S310 (http(s) only, checked)
        return open(archive.location, "rb")
    except OSError as err:  # urllib's errors are OSErrors too
        raise ArchiveError(archive.name, f"cannot be opened ({getattr(err, 'reason', None) or err})") from None


_BROKEN = (tarfile.TarError, EOFError, isal_zlib.error, OSError)
"""What igzip and tarfile raise on a truncated or corrupt archive (a bad CRC: ``gzip.BadGzipFile``, an OSError)."""


class MemberStream:
    """The regular-file members of one archive, in the order they lie in it: ``(member name, bytes)``.

    The archive is opened at once (an :class:`ArchiveError` if it cannot be). A
    read that breaks raises :class:`ArchiveError` naming the archive and the last
    member read whole.
    """

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self._raw = _open_raw(archive)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        last, count = None, 0
        try:
            with self._raw, igzip.IGzipFile(fileobj=self._raw, mode="rb") as data:
                with tarfile.open(fileobj=data, mode="r|") as tar:
                    for info in tar:
                        if info.isfile():
                            content = tar.extractfile(info).read()
                            if len(content) != info.size:
                                raise EOFError("a member ends early")
                            yield info.name, content
                            last, count = info.name, count + 1
                while data.read(1 << 20):  # to the gzip trailer: its CRC and length are checked there
                    pass
        except _BROKEN as err:
            where = f"after member {last} ({count} read whole)" if last else "before its first member"
            reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
            raise ArchiveError(self.archive.name, f"truncated or corrupt archive, broke {where}: {reason}") from None
