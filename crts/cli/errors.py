"""How ``crts`` ends: bad input, a refusing file system or object store, and unchecked errors in one line
(exit status 2); Ctrl-C in one line saying what was kept (exit status 130); warnings in one line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from cube.store.outputs import PATH_ERRNOS, REFUSING_ERRNOS

USER_ERRNOS = REFUSING_ERRNOS | PATH_ERRNOS
"""OS errors that a command's paths or the file system cause, not the program: reported like bad input (EPERM of
an immutable folder, EACCES, EROFS, ENOSPC, EDQUOT, ENAMETOOLONG, EIO, ENOTDIR, EISDIR)."""


OUTPUTS = ("out", "dest", "archives", "cube")
"""Options naming what a command writes, in the order :func:`error_line` names one for an OS error that names no
file."""


INTERRUPTED = {
    "synth": "the data set is unfinished: write it again with --overwrite",
    "download": "the complete archives and the .part of the one being downloaded are kept (and the cube as "
    "converted so far): run the same command to resume",
    "convert": "the patches converted so far are kept: run the same command with --resume to finish",
    "clouds": "the masks computed so far are kept: run the same command with --resume to finish",
    "train": "the run's last checkpoint is kept: run the same command with --resume to continue",
    "train without a checkpoint": "no checkpoint was written yet, nothing to resume: run the same command again "
    "(without --resume) to start the run over",
    "evaluate": "no run was published; the cube is as it was",
    "report": "the report is unfinished: write it again",
    "map": "the page is unfinished: write it again (the same command)",
    "upgrade": "the upgrade is unfinished and the cube unreadable until it is done: run the same command again",
}
"""What a sub-command stopped by Ctrl-C leaves, and how to go on (the others change nothing); ``crts train``
stopped before its run has a checkpoint (its first ``--checkpoint-every`` steps) says the second train entry."""


def interrupted(args: argparse.Namespace) -> str:
    """What the sub-command of ``args`` left when Ctrl-C stopped it (:data:`INTERRUPTED`)."""
    run = getattr(args, "run_folder", None)  # set by crts train once the run's folder is known
    if args.command == "train" and not (run and (run / "last.pt").is_file()):
        return INTERRUPTED["train without a checkpoint"]
    return INTERRUPTED.get(args.command, "nothing was changed")


def one_line_warning(command: str) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints ``crts COMMAND: warning: <message>`` (no source line)."""

    def show(message: Warning | str, *args: object, **kwargs: object) -> None:
        print(f"crts {command}: warning: {message}", file=sys.stderr)

    return show


UNCHECKED = (TypeError, LookupError, AttributeError)
"""Errors that an input of an unexpected type or content raises where no check named it first: one line too."""


TORCH_EXTRA = {"torch": "PyTorch", "tensorboard": "TensorBoard", "xbatcher": "xbatcher"}
"""The modules of the package's ``torch`` extra (by their names in messages): training and evaluation import
them, the cube, the data commands and the reports of stored runs do not, so a plain ``pip install`` leaves them
out."""


INSTALL_TORCH = "pip install 'sen12mscrts-cube[torch]' (or first a build of PyTorch for your GPU from pytorch.org)"
"""How to install :data:`TORCH_EXTRA`, named by a command that needs it where it is missing."""


DEBUG_VARIABLE = "CRTS_DEBUG"
"""Set (to anything) in the environment, faults other than bad input end with their traceback."""


def error_line(err: Exception, args: argparse.Namespace) -> str | None:
    """The one line that a command of ``args`` ends with for ``err``; None: a fault of the program, which ends
    with its traceback.

    Bad input, a refusing file system and the object store's failures are one line (:func:`user_error`), and so
    is an :data:`UNCHECKED` error unless :data:`DEBUG_VARIABLE` is set.
    """
    output = next((getattr(args, name) for name in OUTPUTS if getattr(args, name, None)), "the output")
    message = user_error(err, getattr(args, "cube", None) or "the cube", output)
    if message is None and (os.environ.get(DEBUG_VARIABLE) or not isinstance(err, UNCHECKED)):
        return None
    return message or unchecked(err)


def unchecked(err: Exception) -> str:
    """One line for an unchecked error, e.g. ``KeyError 'x'`` from a file of unexpected content.

    Examples
    --------
    >>> unchecked(KeyError("band"))
    "an input of unexpected content or type (KeyError: 'band'); set CRTS_DEBUG=1 for the traceback"
    """
    detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return (
        f"an input of unexpected content or type ({detail.splitlines()[0][:300]}); set {DEBUG_VARIABLE}=1 for "
        "the traceback"
    )


def user_error(err: Exception, location: str, output: str = "the output") -> str | None:
    """The one-line message of an error that bad input, a refusing file system or the object store caused;
    None for a fault of the program (it propagates as a traceback). A missing module of the ``torch`` extra
    (:data:`TORCH_EXTRA`) is the user's install: one line saying how to add it. ``location``: the cube, for the
    object store's errors; ``output``: what the command writes, named for an OS error that names no file (a full
    disk's write)."""
    missing = (err.name or "").split(".")[0] if isinstance(err, ModuleNotFoundError) else None
    if missing in TORCH_EXTRA:
        return f"this command needs {TORCH_EXTRA[missing]}, which is not installed: {INSTALL_TORCH}"
    if isinstance(err, OSError) and err.errno in USER_ERRNOS:
        return _message(err) if err.filename is not None else f"{output}: {err.strerror or os.strerror(err.errno)}"
    if isinstance(err, ValueError | FileExistsError | FileNotFoundError):
        return _message(err)  # (before cube.store.store is imported: an argument refused before the work began)
    from cube.store.backends import StorageError, storage_error
    from cube.store.lock import WriterLockedError
    from cube.store.store import IncompleteCubeError

    if isinstance(err, IncompleteCubeError | WriterLockedError | StorageError):
        return _message(err)
    translated = storage_error(err, location)  # an object store's failure deep inside zarr or xarray
    return None if translated is None else str(translated)


def _message(err: Exception) -> str:
    """The message; an OS error's as ``<file>: <reason>`` (``<reason>`` alone where it names no file)."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename is not None else err.strerror
    return str(err)
