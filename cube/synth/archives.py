"""Pack a SEN12MS-CR-TS (or SEN12MS-CR) tree into the archives the data set is published as.

SEN12MS-CR-TS: one ``.tar.gz`` per collection, modality and region. The train
collection (train and val ROIs) has ``s1_<region>.tar.gz`` holding
``<region>/ROIsXXXX/<roi>/S1/<t>/...tif``; the test collection has
``s1_<region>_test.tar.gz`` holding ``s1_<region>_test/ROIsXXXX/...`` (S2 alike).
SEN12MS-CR: ``ROIs1158_spring_s1.tar.gz`` holding ``ROIs1158_spring_s1/s1_<scene>/...tif``
(``_s2``, ``_s2_cloudy`` alike; one per season).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tarfile
from collections import defaultdict
from collections.abc import Collection
from pathlib import Path
from typing import TypedDict, Unpack

from tqdm.auto import tqdm

from ..dataset.layout import scan_cr, scan_ts
from ..dataset.rois import Roi
from ..ingest.archives import archive_of
from ..store.outputs import check_not_in_cube
from .dataset import MANIFEST, TRUTH_DIR, make_dataset, prepare_output

COMPRESSLEVEL = 6
"""gzip level of the archives: gzip's and tar's default, as the published archives were presumably written."""


class TreeOptions(TypedDict, total=False):
    """The options of :func:`cube.synth.make_dataset` that :func:`make_archived_dataset` passes on to it."""

    patches_per_roi: int
    size: int
    times: int
    seed: int
    layout: str
    workers: int | None


def _members(tree: Path) -> dict[str, list[tuple[str, Path]]]:
    """Archive name -> (member name, file) of every file of the tree, in the tree's sorted walking order."""
    archives: dict[str, list[tuple[str, Path]]] = defaultdict(list)
    ts, problems = scan_ts(tree)
    cr, cr_problems = ([], []) if ts else scan_cr(tree)
    if problems or cr_problems or not (ts or cr):
        raise ValueError(
            f"{tree}: not a complete SEN12MS-CR-TS or SEN12MS-CR tree "
            f"({[*map(str, problems + cr_problems), 'no files'][0]})"
        )
    for f in ts:
        name, top = archive_of(f.modality, f.roi)
        archives[name].append((f"{top}/{f.path.relative_to(tree).as_posix()}", f.path))
    for c in cr:
        relative = c.path.relative_to(tree).as_posix()
        archives[f"{relative.split('/')[0]}.tar.gz"].append((relative, c.path))
    return {name: sorted(files) for name, files in sorted(archives.items())}


def _write_archive(path: Path, files: list[tuple[str, Path]], shuffled: bool, seed: int) -> None:
    """One archive with its folders and files, in walking order or shuffled; complete or absent."""
    folders = sorted({"/".join(name.split("/")[:i]) for name, _ in files for i in range(1, name.count("/") + 1)})
    entries: list[tuple[str, Path | None]] = [(folder, None) for folder in folders] + list(files)
    if shuffled:
        random.Random(seed).shuffle(entries)
    else:
        entries.sort(key=lambda e: e[0])  # a walk: each folder, then what lies in it
    part = path.with_name(path.name + ".part")
    with tarfile.open(part, "w:gz", compresslevel=COMPRESSLEVEL) as tar:
        for name, file in entries:
            if file is None:
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                tar.add(file, arcname=name, recursive=False)
    os.replace(part, path)


def write_archives(
    tree: str | os.PathLike,
    out: str | os.PathLike,
    *,
    shuffle: Collection[str] | bool = (),
    seed: int = 0,
    progress: bool = True,
) -> list[Path]:
    """Pack a tree into the published archives (see the module docstring) in ``out``.

    Parameters
    ----------
    tree : path
        A SEN12MS-CR-TS or SEN12MS-CR tree (e.g. of :func:`cube.synth.make_dataset`).
    out : path
        Folder for the archives (created if absent); refused inside a cube (:class:`cube.store.outputs.OutputRefused`).
    shuffle : collection of str or bool
        Names of archives whose members are written in a random order (True:
        all); the others hold them in the order of a walk of the tree.
    seed : int
        Seed of the shuffled orders.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of pathlib.Path
        The archives written, by name.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = make_dataset(Path(tmp) / "tree", ["ROIs1868/17", "ROIs2017/63"], patches_per_roi=1, size=16,
    ...                         times=1, workers=1, progress=False)
    ...     [p.name for p in write_archives(root, Path(tmp) / "archives", progress=False)]
    ['s1_europa.tar.gz', 's1_europa_test.tar.gz', 's2_europa.tar.gz', 's2_europa_test.tar.gz']
    """
    tree, out = Path(tree), Path(out)
    check_not_in_cube(out, "the archives folder")
    archives = _members(tree)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, files in tqdm(archives.items(), desc="archiving", unit="archive", disable=not progress):
        _write_archive(out / name, files, shuffle is True or name in (shuffle or ()), seed)
        written.append(out / name)
    return written


def make_archived_dataset(
    out: str | os.PathLike,
    rois: list[str | Roi] | None = None,
    *,
    overwrite: bool = False,
    shuffle: Collection[str] | bool = (),
    progress: bool = True,
    **options: Unpack[TreeOptions],
) -> list[Path]:
    """A synthetic data set written only as its published archives, with its ground truth and manifest beside them.

    The tree is written into ``out`` first (``options``: :class:`TreeOptions`, as for
    :func:`cube.synth.make_dataset`), packed with :func:`write_archives` and
    deleted; ``out/synthetic.json`` then lists the archives, and
    :func:`cube.synth.open_truth` reads ``out`` as it reads a tree.

    Returns
    -------
    list of pathlib.Path
        The archives written.
    """
    out = Path(out)
    prepare_output(out, overwrite)
    (out / MANIFEST).write_text(json.dumps({"generator": "cube.synth", "complete": False}))  # until the end
    tree = make_dataset(out / "tree.partial", rois, progress=progress, **options)
    archives = write_archives(tree, out, shuffle=shuffle, seed=int(options.get("seed", 0)), progress=progress)
    shutil.move(tree / TRUTH_DIR, out / TRUTH_DIR)
    manifest = json.loads((tree / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({**manifest, "archives": [p.name for p in archives]}, indent=2))
    shutil.rmtree(tree)
    return archives
