"""Where a command may write or delete: never inside its source or inside a cube, never through a link.

Every command that writes a folder (``crts convert``, ``train``, ``report``, ``download``,
``synth``) checks it here before its first write, so that a mistyped output
path is refused in one line instead of overwriting or deleting what the folder
holds. Single files written for other programs (exports, the patch index's
``--out``) go through :func:`replacing`: never half a file. Outputs other than
the cube itself are refused inside a cube (:func:`check_not_in_cube`), and in a
folder where the file system refuses new files (:func:`check_writable`). What a
command deletes inside a local cube is checked by :func:`check_no_links` first (in
:meth:`cube.store.store.CubeStore.delete`, the one place that deletes).
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..dataset.problems import FileProblem

REFUSING_ERRNOS = frozenset(
    {errno.EPERM, errno.EACCES, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.EIO}
)
"""OS errors by which a file system refuses an output (an immutable folder, no permission, a read-only or full disk,
a failing device, a name too long): the path's problem, not the program's; :func:`writing` raises them as
:class:`OutputRefused`."""
PATH_ERRNOS = frozenset({errno.ENOTDIR, errno.EISDIR})
"""OS errors of a path of the wrong kind (a file where a folder should be, or the reverse): the user's too, but
raised as they are (``NotADirectoryError``, ``IsADirectoryError``, naming the path)."""
CUBE_DOCUMENT_MAX_BYTES = 4 * 2**20
"""Largest ``zarr.json`` read to tell whether a folder is a cube: a cube's root document with its consolidated
metadata is about 36 kB (whatever its patch count); a larger file there is no cube's and is not read."""


class OutputRefused(FileProblem):
    """An output or a deletion refused: inside a cube, through a link, or where the file system refuses it."""


def is_cube(folder: str | os.PathLike) -> bool:
    """True for a folder holding a cube of this package: its ``zarr.json`` is a group whose attributes name a
    ``schema_version`` (written by :func:`cube.convert`), or it holds the ``cube_state`` group.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "zarr.json").write_text('{"node_type": "group", "attributes": {"schema_version": 3}}')
    ...     is_cube(tmp), is_cube(Path(tmp) / "sub")
    (True, False)
    """
    folder, document = Path(folder), Path(folder) / "zarr.json"
    try:  # (a folder this process may not look into is no cube it could write to)
        if (folder / "cube_state" / "zarr.json").is_file():
            return True
        if not document.is_file() or document.stat().st_size > CUBE_DOCUMENT_MAX_BYTES:
            return False
        group = json.loads(document.read_bytes())
    except (OSError, ValueError):
        return False
    return (
        isinstance(group, dict)
        and group.get("node_type") == "group"
        and "schema_version" in (group.get("attributes") or {})
    )


def check_not_in_cube(path: str | os.PathLike, what: str = "the output", *, itself: bool = True) -> None:
    """Refuse an output ``path`` inside a cube (links resolved), or that is a cube where ``itself``.

    Raises
    ------
    OutputRefused
        Naming the path and the cube.
    """
    resolved = Path(path).resolve()
    for folder in (resolved, *resolved.parents) if itself else resolved.parents:
        if is_cube(folder):
            where = "is the cube" if folder == resolved else "lies inside the cube"
            raise OutputRefused(
                path,
                f"{what} {where} {folder}; a cube holds only what its own commands write there: write it elsewhere",
            )


def check_writable(path: str | os.PathLike, what: str = "the output") -> None:
    """Refuse, before anything is written, an output whose nearest existing folder the file system will not let
    this process add files to (an immutable folder, a read-only file system, no permission).

    The test creates an unnamed file there (``O_TMPFILE``: it never gets a name and is gone when closed); a file
    system without unnamed files is not tested here (its first write then fails instead).

    Raises
    ------
    OutputRefused
        Naming the path, the folder and the reason.
    """
    folder = Path(path).absolute()
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        os.close(os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o600))
    except OSError as err:
        if err.errno in REFUSING_ERRNOS:
            raise OutputRefused(
                path, f"{what} cannot be written: {err.strerror} (in {folder}); nothing was written"
            ) from None


@contextmanager
def writing(path: str | os.PathLike, what: str = "the output cannot be written") -> Iterator[None]:
    """OS errors of the block that refuse an output (:data:`REFUSING_ERRNOS`) as one-line :class:`OutputRefused`:
    ``<path>: <what>: <reason> (<the file the OS named, where another>)``.

    Examples
    --------
    >>> with writing("/d/out", "the report cannot be written"):
    ...     raise OSError(errno.EIO, os.strerror(errno.EIO), "/d/out/a.csv")
    Traceback (most recent call last):
    ...
    cube.store.outputs.OutputRefused: /d/out: the report cannot be written: Input/output error (/d/out/a.csv)
    """
    try:
        yield
    except OSError as err:
        if err.errno not in REFUSING_ERRNOS:
            raise
        named = f" ({err.filename})" if err.filename is not None and str(err.filename) != str(path) else ""
        raise OutputRefused(path, f"{what}: {err.strerror or os.strerror(err.errno)}{named}") from None


def check_no_links(root: str | os.PathLike, key: str) -> Path:
    """``root/key``, checked before it is deleted: no part of ``key`` is a symbolic link and the path stays inside
    ``root``'s real path, so that deleting it never reaches anything outside (``root`` itself may be a link).

    Raises
    ------
    OutputRefused
        Naming the link (and where it points) or the path that leaves ``root``.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     (Path(tmp) / "runs").symlink_to("/")
    ...     check_no_links(tmp, "runs/a/v1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cube.store.outputs.OutputRefused: .../runs: is a symbolic link (to /); nothing is deleted through a link: remove ...
    """
    path = Path(root)
    for part in Path(key).parts:
        path = path / part
        if path.is_symlink():
            raise OutputRefused(
                path,
                f"is a symbolic link (to {os.readlink(path)}); nothing is deleted through a "
                "link: remove the link itself if it is not wanted",
            )
    real = Path(root).resolve()
    if real not in path.resolve().parents:
        raise OutputRefused(path, f"lies outside {real}; nothing outside it is deleted")
    return path


def check_outside(target: str | os.PathLike, source: str | os.PathLike, what: str = "the output") -> None:
    """Refuse a ``target`` that is ``source``, lies inside it, or holds it.

    Raises
    ------
    ValueError
        Naming both paths.

    Examples
    --------
    >>> check_outside("/data/cube.zarr", "/data/SEN12MSCRTS")
    >>> check_outside("/data/SEN12MSCRTS/ROIs1868", "/data/SEN12MSCRTS")
    Traceback (most recent call last):
    ...
    ValueError: /data/SEN12MSCRTS/ROIs1868: the output lies inside the source /data/SEN12MSCRTS; write it elsewhere
    """
    target, source = Path(target).resolve(), Path(source).resolve()
    if target == source or source in target.parents:
        raise ValueError(f"{target}: {what} lies inside the source {source}; write it elsewhere")
    if target in source.parents:
        raise ValueError(f"{target}: {what} would hold the source {source}; write it elsewhere")


def check_output_folder(folder: str | os.PathLike, own: Callable[[Path], bool], what: str) -> None:
    """Refuse an existing ``folder`` that is not empty and not already ``what`` (``own(folder)`` is false).

    Parameters
    ----------
    folder : path
        The output folder; absent is fine.
    own : callable
        True for a folder that this command wrote before (a run, a report).
    what : str
        What the command writes there, for the message (e.g. "a training run").

    Raises
    ------
    ValueError
        If ``folder`` is a file, or holds files that are not ``what``.
    OutputRefused
        If ``folder`` is or lies inside a cube, or the file system refuses new files there.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (Path(tmp) / "notes.txt").write_text("mine")
    ...     check_output_folder(tmp, lambda p: (p / "report.md").exists(), "a report")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...: holds files that are not a report (e.g. notes.txt); choose an empty or new folder
    """
    folder = Path(folder)
    check_not_in_cube(folder, f"the folder for {what}")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: is a file, not a folder for {what}")
    entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if entries and not own(folder):
        raise ValueError(
            f"{folder}: holds files that are not {what} (e.g. {entries[0]}); choose an empty or new folder"
        )
    check_writable(folder, f"the folder for {what}")


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed to it if the block succeeds and deleted otherwise: readers
    see the old file or the whole new one, and a failed write leaves no partial file.

    A ``target`` inside a cube, or where the file system refuses files, is refused before the block runs
    (:class:`OutputRefused`); an OS error of the block that refuses the output is raised as one naming ``target``.
    """
    check_not_in_cube(target, itself=False)
    check_writable(target)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with writing(target):
            yield partial
            os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
