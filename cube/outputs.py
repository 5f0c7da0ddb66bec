"""Where a command may write: a folder that is new, empty or already its own, and never inside its source.

Every command that writes a folder (``crts convert``, ``train``, ``report``,
``synth``) checks it here before its first write, so that a mistyped output
path is refused in one line instead of overwriting or deleting what the folder
holds. Single files written for other programs (exports, the patch index's
``--out``) go through :func:`replacing`: never half a file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


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
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: is a file, not a folder for {what}")
    entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if entries and not own(folder):
        raise ValueError(f"{folder}: holds files that are not {what} (e.g. {entries[0]}); choose an empty or new "
                         "folder")


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed to it if the block succeeds and deleted otherwise: readers
    see the old file or the whole new one, and a failed write leaves no partial file."""
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        yield partial
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
