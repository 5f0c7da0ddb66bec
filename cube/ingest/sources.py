"""What the source of a conversion names: one extracted tree (the tree driver, :mod:`cube.ingest.tree`), or
archives and trees (the archive driver, :mod:`cube.ingest.archive_conversion`)."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .archives import Archive, archive_name, is_archive, is_url
from .validate import detect_layout


@dataclass
class Sources:
    """What a conversion reads besides a single tree: archives and trees, and the root names are relative to."""

    root: str
    layout: str
    archives: list[Archive] = field(default_factory=list)
    trees: list[Path] = field(default_factory=list)

    def groups(self) -> dict[str, list[Archive]]:
        """The archives by group (the archives whose members make up the same patches), groups in name order."""
        out: dict[str, list[Archive]] = defaultdict(list)
        for archive in self.archives:
            out[archive.group].append(archive)
        return dict(sorted(out.items()))


def _layout_of_archive(name: str) -> str:
    """The data set of a published archive, by its name (SEN12MS-CR's start with ``ROIs``)."""
    return "sen12mscr" if archive_name(name).startswith("ROIs") else "sen12mscrts"


def resolve_sources(src: str | os.PathLike | list) -> Sources | None:
    """The archives and trees ``src`` names; None for a single extracted tree (converted as ever).

    ``src``: a tree, a folder of archives, an archive, an ``http(s)://`` URL of one,
    or a list of those.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the source that is missing, or neither a tree nor archives, or of another layout.
    """
    items = [str(s) for s in src] if isinstance(src, list | tuple) else [str(src)]
    archives: list[str] = []
    trees: list[Path] = []
    for item in items:
        if is_url(item) or (is_archive(item) and Path(item).is_file()):
            archives.append(item if is_url(item) else str(Path(item).resolve()))
        elif not Path(item).exists():
            raise FileNotFoundError(f"{item}: no such file, folder or URL")
        elif any(Path(item).glob("ROIs*")) or not Path(item).is_dir():
            detect_layout(Path(item))  # a tree (or a clear message of what it is not)
            trees.append(Path(item).resolve())
        else:
            found = sorted(str(p.resolve()) for p in Path(item).iterdir() if is_archive(p) and p.is_file())
            if not found:
                raise FileNotFoundError(f"{item}: holds neither ROIsXXXX/ folders nor .tar.gz archives")
            archives += found
    if not archives and len(trees) == 1:
        return None
    layouts = {_layout_of_archive(a) for a in archives} | {detect_layout(t) for t in trees}
    if len(layouts) > 1:
        raise ValueError(
            f"{', '.join(items)}: mixes SEN12MS-CR-TS and SEN12MS-CR sources; convert them into separate cubes"
        )
    local = [str(Path(a).parent) for a in archives if not is_url(a)] + [str(t.parent) for t in trees]
    root = os.path.commonpath(local) if local else archives[0].rsplit("/", 1)[0]
    named = [Archive(a, a if is_url(a) else os.path.relpath(a, root)) for a in archives]
    return Sources(root, layouts.pop(), named, trees)
