"""Downloading the published archives (the choices of the original toolbox's ``util/dl_data.sh``), resumably.

Every archive is fetched over HTTP into ``<name>.part`` and renamed to its name
only once it holds exactly as many bytes as the server's size for it (the
``Content-Length`` of a whole answer, the total of a ``Content-Range``), so a
partial download never looks complete. A ``.part`` left by an interrupted run is
continued with a ``Range`` request from its size; a server that ignores the
range sends the whole archive and the download starts over.

With a cube to convert into, each group of archives (S1 and S2 of one region
and split; the three of a SEN12MS-CR season: a patch needs all of them) is
converted as soon as its archives are complete, and may then be deleted, so
the disk holds at most the cube plus one group's archives. A group whose
archives the cube already names is neither downloaded nor converted again.

The real URLs are in :data:`PUBLISHED`, the one table of them (also in
docs/convert-real-data.md). Its sizes are the numbers ``dl_data.sh`` books: the
script compares their sum with the free space ``df`` reports, in blocks of
1 KiB (its message says 512-byte sectors), not in bytes (read as bytes, the
whole data set would be 1.3 GB). They are only listed, as approximate sizes;
what is checked is the server's size.

Nothing beyond the size the server states (the ``Content-Length`` of a 200, the
range of a 206) is ever written: a server that sends more, or states no size,
is refused in one line; one that sends less is a transfer to resume. Redirects
are followed to http(s) only, never from https to http, every hop checked.
"""

from __future__ import annotations

import difflib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from tqdm.auto import tqdm

from ..store.outputs import check_not_in_cube
from .archives import MEMBER_SEPARATOR, archive_group, open_url, printable, reason_of

if TYPE_CHECKING:
    from .building import ConversionReport
    from .options import ConversionOptions

TIMEOUT_S = 60
"""Seconds without a byte from the server before a download is given up (and can be resumed)."""
BOOKED_FACTOR = 2
"""A server's size for an archive may be at most this many times the size ``dl_data.sh`` books for it (those are
approximate, in KiB; twice is far beyond their rounding): a larger one is refused before a byte is written."""
CHUNK = 1 << 20
"""The most bytes read and written at a time (what the connection has, up to this)."""
TS_REGIONS: tuple[str, ...] = ("africa", "america", "asiaEast", "asiaWest", "europa")
"""Regions of SEN12MS-CR-TS, one S1 and one S2 archive each per split."""
DOWNLOAD_SPLITS: tuple[str, ...] = ("all", "train", "test")
"""The collections of SEN12MS-CR-TS: train (with val) and test."""
_TRAIN, _TEST, _CR = (
    f"https://dataserv.ub.tum.de/s/{c}/download?path=/&files=" for c in ("m1639953", "m1659251", "m1554803")
)


@dataclass(frozen=True)
class Published:
    """One published archive: its name, its URL, and the size ``dl_data.sh`` books for it (KiB, approximate)."""

    name: str
    url: str
    booked_kib: int

    @property
    def group(self) -> str:
        return archive_group(self.name)

    @property
    def dataset(self) -> str:
        return "sen12mscr" if self.name.startswith("ROIs") else "sen12mscrts"

    @property
    def s1(self) -> bool:
        return self.name.startswith("s1_") or self.name.endswith("_s1.tar.gz")


PUBLISHED: tuple[Published, ...] = (
    Published("s1_africa.tar.gz", _TRAIN + "s1_africa.tar.gz", 60544524),
    Published("s2_africa.tar.gz", _TRAIN + "s2_africa.tar.gz", 98233900),
    Published("s1_america.tar.gz", _TRAIN + "s1_america.tar.gz", 67947416),
    Published("s2_america.tar.gz", _TRAIN + "s2_america.tar.gz", 110245004),
    Published("s1_asiaEast.tar.gz", _TRAIN + "s1_asiaEast.tar.gz", 70230104),
    Published("s2_asiaEast.tar.gz", _TRAIN + "s2_asiaEast.tar.gz", 113948560),
    Published("s1_asiaWest.tar.gz", _TRAIN + "s1_asiaWest.tar.gz", 59218848),
    Published("s2_asiaWest.tar.gz", _TRAIN + "s2_asiaWest.tar.gz", 96082796),
    Published("s1_europa.tar.gz", _TRAIN + "s1_europa.tar.gz", 121213836),
    Published("s2_europa.tar.gz", _TRAIN + "s2_europa.tar.gz", 196669740),
    Published("s1_africa_test.tar.gz", _TEST + "s1_africa_test.tar.gz", 15668120),
    Published("s2_africa_test.tar.gz", _TEST + "s2_africa_test.tar.gz", 25421744),
    Published("s1_america_test.tar.gz", _TEST + "s1_america_test.tar.gz", 15668160),
    Published("s2_america_test.tar.gz", _TEST + "s2_america_test.tar.gz", 25421824),
    Published("s1_asiaEast_test.tar.gz", _TEST + "s1_asiaEast_test.tar.gz", 24982736),
    Published("s2_asiaEast_test.tar.gz", _TEST + "s2_asiaEast_test.tar.gz", 40534760),
    Published("s1_asiaWest_test.tar.gz", _TEST + "s1_asiaWest_test.tar.gz", 9252904),
    Published("s2_asiaWest_test.tar.gz", _TEST + "s2_asiaWest_test.tar.gz", 15012924),
    Published("s1_europa_test.tar.gz", _TEST + "s1_europa_test.tar.gz", 49040432),
    Published("s2_europa_test.tar.gz", _TEST + "s2_europa_test.tar.gz", 79568460),
    Published("ROIs1158_spring_s1.tar.gz", _CR + "ROIs1158_spring_s1.tar.gz", 15026120),
    Published("ROIs1158_spring_s2.tar.gz", _CR + "ROIs1158_spring_s2.tar.gz", 48568904),
    Published("ROIs1158_spring_s2_cloudy.tar.gz", _CR + "ROIs1158_spring_s2_cloudy.tar.gz", 48569368),
    Published("ROIs1868_summer_s1.tar.gz", _CR + "ROIs1868_summer_s1.tar.gz", 17456784),
    Published("ROIs1868_summer_s2.tar.gz", _CR + "ROIs1868_summer_s2.tar.gz", 56425520),
    Published("ROIs1868_summer_s2_cloudy.tar.gz", _CR + "ROIs1868_summer_s2_cloudy.tar.gz", 56426004),
    Published("ROIs1970_fall_s1.tar.gz", _CR + "ROIs1970_fall_s1.tar.gz", 21127832),
    Published("ROIs1970_fall_s2.tar.gz", _CR + "ROIs1970_fall_s2.tar.gz", 68291864),
    Published("ROIs1970_fall_s2_cloudy.tar.gz", _CR + "ROIs1970_fall_s2_cloudy.tar.gz", 68292448),
    Published("ROIs2017_winter_s1.tar.gz", _CR + "ROIs2017_winter_s1.tar.gz", 9460956),
    Published("ROIs2017_winter_s2.tar.gz", _CR + "ROIs2017_winter_s2.tar.gz", 30580552),
    Published("ROIs2017_winter_s2_cloudy.tar.gz", _CR + "ROIs2017_winter_s2_cloudy.tar.gz", 30580812),
)
"""Every published archive with its mediaTUM URL (train m1639953, test m1659251, SEN12MS-CR m1554803) and the
size ``dl_data.sh`` books for it, in KiB (approximate: the server's size is what a download is checked against)."""


class DownloadError(ValueError):
    """A download that cannot go on: unreachable server, refused request, or a size that does not check out."""


def select(
    regions: list[str], split: str = "all", s1: bool = True, sen12mscr: bool = False, base_url: str | None = None
) -> list[Published]:
    """The archives of ``dl_data.sh``'s choices, ordered by group (as a conversion of their folder reads them).

    Parameters
    ----------
    regions : list of str
        SEN12MS-CR-TS regions, ``["all"]`` for every one, ``["none"]`` or ``[]`` for none.
    split : {"all", "train", "test"}
        Collections of SEN12MS-CR-TS.
    s1 : bool
        Also the Sentinel-1 archives.
    sen12mscr : bool
        Also the mono-temporal SEN12MS-CR (all four seasons).
    base_url : str, optional
        A server holding the archives under their names, instead of mediaTUM.

    Raises
    ------
    ValueError
        Naming an unknown region or split, or when nothing is chosen.

    Examples
    --------
    >>> [a.name for a in select(["europa"], "test", base_url="http://127.0.0.1:8000")]
    ['s1_europa_test.tar.gz', 's2_europa_test.tar.gz']
    >>> select(["asiaEast"], "train", s1=False)[0].url
    'https://dataserv.ub.tum.de/s/m1639953/download?path=/&files=s2_asiaEast.tar.gz'
    """
    regions = [r for r in regions if r != "none"]
    for region in regions:
        if region not in (*TS_REGIONS, "all"):
            close = difflib.get_close_matches(region, TS_REGIONS, n=1)
            raise ValueError(
                f"--regions: unknown region {region!r} (choose from all, none, {', '.join(TS_REGIONS)})"
                + (f"; did you mean {close[0]!r}?" if close else "")
            )
    if split not in DOWNLOAD_SPLITS:
        raise ValueError(f"--split: unknown split {split!r} (choose from {', '.join(DOWNLOAD_SPLITS)})")
    chosen = set(TS_REGIONS) if "all" in regions else set(regions)
    suffixes = {"all": ("", "_test"), "train": ("",), "test": ("_test",)}[split]
    names = {f"{m}_{r}{s}.tar.gz" for r in chosen for s in suffixes for m in ("s1", "s2")}
    out = [a for a in PUBLISHED if (a.name in names or (sen12mscr and a.dataset == "sen12mscr")) and (s1 or not a.s1)]
    if not out:
        raise ValueError("nothing to download: choose --regions, or --sen12mscr")
    if base_url:
        out = [Published(a.name, f"{base_url.rstrip('/')}/{a.name}", a.booked_kib) for a in out]
    return sorted(out, key=lambda a: (a.group, a.name))


def plan_lines(archives: list[Published], dest: str | os.PathLike) -> list[str]:
    """``--dry-run``: a line per archive (name, approximate size, what DEST has of it, URL) and a total."""
    dest = Path(dest)
    lines = []
    for a in archives:
        part = dest / f"{a.name}.part"
        have = (
            "downloaded"
            if (dest / a.name).is_file()
            else f"partial ({part.stat().st_size} B)"
            if part.is_file()
            else "to download"
        )
        lines.append(f"{a.name:34} ~{a.booked_kib * 1024 / 1e9:6.1f} GB  {have:22} {a.url}")
    total = sum(a.booked_kib for a in archives) * 1024 / 1e9
    lines.append(
        f"{len(archives)} archive(s), about {total:.1f} GB in all (the sizes dl_data.sh books, "
        "approximate; each download is checked against the server's size)"
    )
    return lines


def _parse_range(header: str | None, have: int, url: str) -> tuple[int, int]:
    """The end (exclusive) and total size of a 206 answer's ``Content-Range: bytes <have>-<last>/<total>``."""
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", header or "")
    if match and match[3] == "*":
        raise DownloadError(
            f"{url}: the server gives no archive size in the range {header!r}: the download cannot be checked"
        )
    if not match or int(match[1]) != have or not have <= int(match[2]) < int(match[3]):
        raise DownloadError(f"{url}: asked for the bytes from {have} on, got the range {header!r}")
    return int(match[2]) + 1, int(match[3])


def _stated(response: http.client.HTTPResponse, archive: Published, have: int) -> tuple[int, int, int]:
    """Where the answer starts, where it ends (exclusive) and the archive's size, as the server states them;
    refused where it states none, disagrees with itself, or states far more than the archive is booked at."""
    length, ranged = response.headers.get("Content-Length"), response.headers.get("Content-Range")
    if response.status not in (200, 206):
        raise DownloadError(f"{archive.url}: HTTP {response.status} {printable(response.reason)}: not an archive")
    if length is not None and not re.fullmatch(r"[0-9]{1,20}", length):
        raise DownloadError(f"{archive.url}: the server states an unreadable size (Content-Length {length!r})")
    if response.status == 206:
        start, (end, total) = have, _parse_range(ranged, have, archive.url)
        if length is not None and int(length) != end - start:
            raise DownloadError(
                f"{archive.url}: the server states {length} B (Content-Length) for the "
                f"{end - start} B of its range {ranged!r}"
            )
    elif length is None:
        raise DownloadError(f"{archive.url}: the server gives no size (Content-Length): the download cannot be checked")
    else:  # 200: the whole archive (a server that ignores Range: start over)
        start, end, total = 0, int(length), int(length)
    if total > BOOKED_FACTOR * archive.booked_kib * 1024:
        raise DownloadError(
            f"{archive.url}: the server states {total} B, more than {BOOKED_FACTOR} times the "
            f"~{archive.booked_kib * 1024} B booked for {archive.name}: refused"
        )
    return start, end, total


def _open(archive: Published, have: int) -> tuple[http.client.HTTPResponse | None, int, int, int]:
    """The answer to a GET from byte ``have`` on, the byte it starts at, the byte it ends before (as stated), and
    the archive's size.

    None for the answer when ``have`` is already the whole archive (416 with the size).
    """
    request = urllib.request.Request(archive.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = open_url(request, TIMEOUT_S)
    except urllib.error.HTTPError as err:
        total = re.fullmatch(r"bytes \*/(\d+)", err.headers.get("Content-Range") or "")
        if err.code == 416 and total and int(total[1]) == have:
            return None, have, have, have
        if err.code == 416:
            raise DownloadError(
                f"{archive.name}.part: holds {have} B, more than the archive at {archive.url} "
                f"(size {total[1] if total else 'unknown'} B); delete it to start over"
            ) from None
        raise DownloadError(f"{archive.url}: HTTP {err.code} {reason_of(err)}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise DownloadError(f"{archive.url}: cannot be reached ({reason_of(err)})") from None
    try:
        return response, *_stated(response, archive, have)
    except DownloadError:
        response.close()
        raise


def _receive(
    response: http.client.HTTPResponse, out: BinaryIO, archive: Published, span: tuple[int, int], bar: tqdm
) -> None:
    """Write the answer's bytes from ``span[0]`` up to ``span[1]``, never beyond; an answer that goes on past it
    is refused (and what it wrote removed)."""
    start, end = span
    size = start
    while size < end:
        chunk = _read(response, archive, size, end)
        if not chunk:
            return  # ended early: the size check after it says so
        out.write(chunk)
        size += len(chunk)
        bar.update(len(chunk))
    if _read(response, archive, size, end):
        out.truncate(start)
        raise DownloadError(
            f"{archive.url}: the server sent more than the {end - start} B it stated; nothing of this answer is kept"
        )


def _read(response: http.client.HTTPResponse, archive: Published, size: int, end: int) -> bytes:
    """The next bytes of the answer (at most up to ``end``, at least one byte to see whether it goes on)."""
    try:
        return response.read1(max(1, min(CHUNK, end - size)))
    except (http.client.HTTPException, OSError) as err:
        raise DownloadError(
            f"{archive.url}: the transfer broke after {size} of {end} B ({err!r}); "
            f"{archive.name}.part is kept: run the same command again to resume"
        ) from None


def fetch(archive: Published, dest: Path, progress: bool = True) -> int:
    """Download one archive to ``dest/<name>`` through ``<name>.part``, resuming a ``.part``; the bytes fetched.

    Raises
    ------
    DownloadError
        If the server cannot be reached or refuses, states no size or one far beyond the archive's, sends more
        than it stated, or the transfer breaks or ends off the server's size (the ``.part`` is kept: running
        again resumes it).
    """
    part = dest / f"{archive.name}.part"
    have = part.stat().st_size if part.exists() else 0
    response, start, end, total = _open(archive, have)
    if response is not None:
        with (
            response,
            open(part, "r+b" if start else "wb") as out,
            tqdm(
                total=total,
                initial=start,
                desc=archive.name,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                disable=not progress,
            ) as bar,
        ):
            out.seek(start)
            out.truncate()
            _receive(response, out, archive, (start, end), bar)
    if part.stat().st_size != total:
        raise DownloadError(
            f"{archive.url}: got {part.stat().st_size} B, the server's size is {total} B; "
            f"{part.name} is kept: run the same command again to resume"
        )
    os.replace(part, dest / archive.name)
    return total - have if start else total


def prepare_dest(dest: str | os.PathLike) -> Path:
    """DEST, created if absent; a path that is not a writable folder, or lies inside a cube, raises one line naming
    it."""
    dest = Path(dest)
    check_not_in_cube(dest, "the download folder")
    if dest.exists() and not dest.is_dir():
        raise DownloadError(f"{dest}: exists and is not a folder")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        probe = dest / ".crts-download-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise DownloadError(f"{dest}: cannot be written ({err.strerror or err})") from None
    return dest


def archives_in_cube(cube: str | os.PathLike, storage_options: dict | None = None) -> set[str]:
    """The archives that the patches converted completely into ``cube`` name (none if there is no cube yet)."""
    from ..store.store import CubeStore

    store = CubeStore(cube, storage_options=storage_options)
    state = store.state()
    if state is None or store.group_attributes("") is None:
        return set()
    upto = state.pending["start"] if state.pending else store.array("valid").shape[0]
    names: set[str] = set()
    for variable in (c for c in store.children() if c.endswith("_path") and upto):
        paths = np.unique(store.array(variable)[:upto])
        names |= {str(p).split(MEMBER_SEPARATOR, 1)[0] for p in paths if MEMBER_SEPARATOR in str(p)}
    return names


@dataclass
class DownloadReport:
    """What :func:`download` did: archives fetched (and their bytes), found complete, groups converted, deleted."""

    downloaded: list[str] = field(default_factory=list)
    bytes_fetched: int = 0
    present: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    in_cube: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def _groups(archives: list[Published]) -> dict[str, list[Published]]:
    out: dict[str, list[Published]] = {}
    for archive in archives:
        out.setdefault(archive.group, []).append(archive)
    return out


def check_convertible(archives: list[Published]) -> None:
    """Refuse a selection that cannot become one cube: two data sets, or S2 without S1."""
    if len({a.dataset for a in archives}) > 1:
        raise ValueError(
            "--convert: SEN12MS-CR-TS and SEN12MS-CR go into separate cubes: download them with "
            "--regions none --sen12mscr, and without --sen12mscr, separately"
        )
    if not any(a.s1 for a in archives):
        raise ValueError("--convert: every patch needs its S1 images: drop --no-s1")


def _default_options(progress: bool) -> ConversionOptions:
    """The conversion's defaults (imported here: downloading alone needs no converter)."""
    from .options import ConversionOptions

    return ConversionOptions(progress=progress)


def _convert_group(paths: list[Path], cube: str | os.PathLike, options: ConversionOptions) -> ConversionReport:
    """Convert one group's archives into ``cube``, resuming the cube's unfinished conversion if it has one."""
    from ..store.store import CubeStore
    from .conversion import convert_with

    state = CubeStore(cube, storage_options=options.storage_options).state()
    return convert_with(paths, cube, replace(options, resume=state is not None and not state.complete))


def download(
    archives: list[Published],
    dest: str | os.PathLike,
    *,
    cube: str | os.PathLike | None = None,
    delete_archives: bool = False,
    convert_options: ConversionOptions | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DownloadReport:
    """Download the archives into ``dest``, group by group; with ``cube``, convert each group once it is complete.

    Parameters
    ----------
    archives : list of Published
        From :func:`select`, in group order.
    dest : path
        Folder for the archives (created if absent). An archive already there
        (complete: only complete ones get their name) is not fetched again.
    cube : path or URL, optional
        Cube to convert each group into (see :func:`cube.ingest.conversion.convert`); a
        group whose archives it names already is skipped.
    delete_archives : bool
        With ``cube``: delete each group's archives once converted.
    convert_options : cube.ingest.options.ConversionOptions, optional
        The options of each group's conversion (``times``, ``workers``, ``clouds``, ...; its ``resume`` is set per
        group); default: the defaults, with ``progress``.
    progress : bool
        A progress bar in bytes per archive.
    log : callable
        Receives a line per archive and per group done.
    """
    dest = prepare_dest(dest)
    report = DownloadReport()
    storage = convert_options.storage_options if convert_options else None
    done = archives_in_cube(cube, storage) if cube is not None else set()
    for group, members in _groups(archives).items():
        if cube is not None and all(a.name in done for a in members):
            report.in_cube.append(group)
            log(f"{group}: already in {cube}; not downloaded again")
            continue
        for archive in members:
            if (dest / archive.name).is_file():
                report.present.append(archive.name)
                log(f"{archive.name}: already downloaded")
                continue
            report.bytes_fetched += fetch(archive, dest, progress)
            report.downloaded.append(archive.name)
        if cube is None:
            continue
        paths = [dest / a.name for a in members]
        result = _convert_group(paths, cube, convert_options or _default_options(progress))
        report.converted.append(group)
        log(f"{group}: converted into {cube} ({result.patches_added} patch(es) added)")
        if delete_archives:
            for path in paths:
                path.unlink()
            report.deleted += [p.name for p in paths]
    return report
