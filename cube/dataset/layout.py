"""File and folder names of SEN12MS-CR-TS and SEN12MS-CR, and discovery of the files in a tree.

Multi-temporal (docs/reference.md §1 Layout)::

    <root>/ROIs1868/73/S2/14/s2_ROIs1868_73_ImgNo_14_2018-06-21_patch_171.tif

Mono-temporal (docs/reference.md §6 SEN12MS-CR)::

    <root>/ROIs1158_spring_s2_cloudy/s2_cloudy_106/ROIs1158_spring_s2_cloudy_106_p407.tif
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from natsort import natsorted

from .problems import FileProblem, Problem
from .rois import GROUPS, Roi

MODALITIES: tuple[str, ...] = ("S1", "S2")
SEASONS: dict[str, str] = {"ROIs1158": "spring", "ROIs1868": "summer", "ROIs1970": "fall", "ROIs2017": "winter"}
_File = TypeVar("_File", "TsFile", "CrFile")

_TS_NAME = re.compile(
    r"^(?P<mod>s[12])_(?P<group>ROIs\d{4})_(?P<roi>\d+)_ImgNo_(?P<t>\d+)_"
    r"(?P<date>\d{4}-\d{2}-\d{2})_patch_(?P<pid>\d+)\.tif$"
)
_CR_NAME = re.compile(
    r"^(?P<group>ROIs\d{4})_(?P<season>[a-z]+)_(?P<kind>s1|s2|s2_cloudy)_(?P<scene>\d+)_p(?P<pid>\d+)\.tif$"
)


@dataclass(frozen=True)
class TsFile:
    """One multi-temporal GeoTIFF, as its name and folders describe it."""

    modality: str
    roi: Roi
    t: int
    date: dt.date
    pid: int
    path: Path


@dataclass(frozen=True)
class CrFile:
    """One mono-temporal GeoTIFF (S1, cloud-free S2 or cloudy S2 of a patch)."""

    kind: str
    roi: Roi
    pid: int
    path: Path


def ts_relpath(modality: str, roi: Roi, t: int, date: dt.date, pid: int) -> Path:
    """Path of a multi-temporal file relative to the data set root."""
    mod = modality.lower()
    name = f"{mod}_{roi.group}_{roi.number}_ImgNo_{t}_{date.isoformat()}_patch_{pid}.tif"
    return Path(roi.group, str(roi.number), modality, str(t), name)


def cr_relpath(kind: str, roi: Roi, pid: int) -> Path:
    """Path of a mono-temporal file relative to the data set root."""
    season = f"{roi.group}_{SEASONS[roi.group]}"
    return Path(f"{season}_{kind}", f"{kind}_{roi.number}", f"{season}_{kind}_{roi.number}_p{pid}.tif")


def parse_ts_path(path: Path, root: Path) -> TsFile:
    """Parse a multi-temporal file's name and check it against its folders.

    Raises
    ------
    FileProblem
        Naming the file and what does not parse or does not match its folder.
    """
    m = _TS_NAME.match(path.name)
    if m is None:
        raise FileProblem(
            path, "file name does not follow s<1|2>_ROIsXXXX_<roi>_ImgNo_<t>_<YYYY-MM-DD>_patch_<pid>.tif"
        )
    try:
        date = dt.date.fromisoformat(m["date"])
    except ValueError:
        raise FileProblem(path, f"invalid date {m['date']!r} in file name") from None
    parsed = TsFile(m["mod"].upper(), Roi(m["group"], int(m["roi"])), int(m["t"]), date, int(m["pid"]), path)
    folders = path.relative_to(root).parts[:-1]
    expected = (parsed.roi.group, str(parsed.roi.number), parsed.modality, str(parsed.t))
    if folders != expected:
        raise FileProblem(path, f"file name says {'/'.join(expected)} but it lies in {'/'.join(folders)}")
    return parsed


def parse_cr_path(path: Path, root: Path) -> CrFile:
    """Parse a mono-temporal file's name and check it against its folders (raises :class:`FileProblem`)."""
    m = _CR_NAME.match(path.name)
    if m is None or m["group"] not in SEASONS or SEASONS[m["group"]] != m["season"]:
        raise FileProblem(path, "file name does not follow ROIsXXXX_<season>_<s1|s2|s2_cloudy>_<scene>_p<pid>.tif")
    parsed = CrFile(m["kind"], Roi(m["group"], int(m["scene"])), int(m["pid"]), path)
    if path.relative_to(root) != cr_relpath(parsed.kind, parsed.roi, parsed.pid):
        raise FileProblem(path, "lies in the wrong folder for its name")
    return parsed


_TS_FOLDERS = (re.compile(r"\d+"), re.compile("|".join(MODALITIES)), re.compile(r"\d+"))
"""Names of the folders below a ROI group folder: ROI number, modality, time step."""
_CR_KIND_FOLDER = re.compile(r"ROIs[^.]*_[^.]*_s[^.]*")
"""Mono-temporal folders directly under the root (``ROIs1158_spring_s2_cloudy``; archives beside them have dots)."""
_CR_SCENE_FOLDER = (re.compile(r"(s1|s2|s2_cloudy)_\d+"),)


def _listing(folder: Path, problems: list[Problem]) -> list[os.DirEntry]:
    """The entries of a folder by name, or none and a problem naming it if it cannot be listed.

    It cannot when it is unreadable, a file, a broken link or a link loop.
    """
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as err:
        problems.append(Problem(str(folder), f"cannot be read as a folder ({err.strerror or err})"))
        return []


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop
        return False


def _tifs(folders: list[Path], levels: tuple[re.Pattern, ...], problems: list[Problem]) -> list[Path]:
    """The ``.tif`` files ``len(levels)`` folders below ``folders``.

    Every folder on the way is listed, and every entry named like a folder of
    its level (``levels``: ROI ``17``, modality ``S2``, time step ``3``) is
    tried as one, so a folder that cannot be read is a problem, never silently
    left out. Other files on the way are ignored.
    """
    for name in levels:
        folders = [
            Path(e.path)
            for folder in folders
            for e in _listing(folder, problems)
            if _is_dir(e) or name.fullmatch(e.name)
        ]
    return [Path(e.path) for folder in folders for e in _listing(folder, problems) if e.name.endswith(".tif")]


def _parsed(
    paths: list[Path], parse: Callable[[Path, Path], _File], root: Path, problems: list[Problem]
) -> list[_File]:
    """``parse`` of each path, in natural sort order; a path that does not parse adds its problem to ``problems``."""
    files = []
    for path in natsorted(paths, key=str):
        try:
            files.append(parse(path, root))
        except FileProblem as err:
            problems.append(err.located())
    return files


def scan_ts(root: str | os.PathLike) -> tuple[list[TsFile], list[Problem]]:
    """Every ``.tif`` of a SEN12MS-CR-TS tree, parsed, in natural sort order.

    Only ``ROIs*`` folders are read, so extra files beside them (archives,
    index files, ground truth of synthetic data) are ignored.

    Returns
    -------
    files, problems
        Parsed files, and one :class:`~cube.dataset.problems.Problem` per file that did not parse or folder
        that could not be read.
    """
    root = Path(root)
    problems: list[Problem] = []
    groups = [root / group for group in GROUPS if os.path.lexists(root / group)]
    return _parsed(_tifs(groups, _TS_FOLDERS, problems), parse_ts_path, root, problems), problems


def scan_cr(root: Path | str) -> tuple[list[CrFile], list[Problem]]:
    """Every ``.tif`` of a SEN12MS-CR tree, parsed, in natural sort order; problems as for :func:`scan_ts`."""
    root = Path(root)
    problems: list[Problem] = []
    kinds = [Path(e.path) for e in _listing(root, problems) if _CR_KIND_FOLDER.fullmatch(e.name)]
    return _parsed(_tifs(kinds, _CR_SCENE_FOLDER, problems), parse_cr_path, root, problems), problems
