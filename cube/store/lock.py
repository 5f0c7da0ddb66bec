"""The single-writer lock of a cube and the owner records that say who writes.

The lock is the control group ``writer_lock`` (:data:`LOCK`) of a cube, present while a process converts or
runs the cloud pass; its attributes are the holder's owner record (:func:`owner_record`). It is created only if
absent (a create-only write), so one writer at a time holds it. A lock whose owner is gone from this host
(:func:`owner_gone`) is broken automatically; any other lock only with ``force_unlock=True``
(``--force-unlock``).

:meth:`cube.store.store.CubeStore.writer` holds the lock (:func:`writer_lock`) and
:meth:`cube.store.store.CubeStore.commit` checks it (:func:`check_held`); both work on any store of the
:class:`LockedStore` shape, so this module needs nothing of the store's module.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Protocol

import psutil
from zarr.abc.store import Store

from .backends import sync

LOCK = "writer_lock"
"""The control group of the writer lock (see the module docstring)."""


class WriterLockedError(RuntimeError):
    """Another process holds the cube's writer lock."""


class LockedStore(Protocol):
    """What the lock needs of a cube's store (:class:`cube.store.store.CubeStore` has it): its location, whether
    it is local, zarr's store under it (``store``), and these methods of its groups and objects."""

    location: str
    local: bool

    @property
    def store(self) -> Store:
        """zarr's store of the cube."""

    def folder(self) -> Path:
        """The folder of a local cube."""

    def group_attributes(self, path: str) -> dict | None:
        """The attributes of a group, or None if there is no group at ``path``."""

    def write_group(self, path: str, attributes: dict, *, only_if_absent: bool = False) -> bool:
        """Write a group's metadata (attributes whole) in one write; True if written."""

    def delete(self, name: str) -> None:
        """Delete an object, or everything under ``name`` as a prefix."""

    def children(self, prefix: str = "") -> list[str]:
        """Names directly under a prefix."""


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def owner_record(purpose: str) -> dict:
    """Who writes: a unique token, host, process (with its start time, so a reused pid is told apart)."""
    return {
        "token": uuid.uuid4().hex,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_started": _process_started(os.getpid()),
        "purpose": purpose,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
        "since": f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}",
    }


def owner_gone(owner: dict) -> bool:
    """True if the process that wrote ``owner`` (see :func:`owner_record`) ran on this host and has ended."""
    if owner.get("host") != socket.gethostname():
        return False
    started = _process_started(int(owner.get("pid", -1)))
    return started is None or owner.get("pid_started") is None or abs(started - owner["pid_started"]) > 1e-3


def describe_owner(holder: dict | None) -> str:
    """An owner record (:func:`owner_record`) for a message: purpose, pid, host, start and command (``nobody``
    for None)."""
    if holder is None:
        return "nobody"
    return (
        f"{holder.get('purpose', 'a writer')} by pid {holder.get('pid')} on host {holder.get('host')} since "
        f"{holder.get('since')}: {holder.get('command')!r}"
    )


@contextmanager
def writer_lock(store: LockedStore, purpose: str, *, force_unlock: bool = False) -> Iterator[dict]:
    """Hold a cube's writer lock for the duration of a ``with`` block; yields the owner record.

    On leaving, the lock is deleted if this owner still holds it, and so is the cube's folder if the writer
    stopped before writing anything into it.

    Raises
    ------
    WriterLockedError
        If another live process holds it (its pid, host, command and start are named).
    """
    owner = owner_record(purpose)
    _acquire(store, owner, force_unlock)
    try:
        yield owner
    finally:
        holder = store.group_attributes(LOCK)
        if holder is not None and holder.get("token") == owner["token"]:
            store.delete(LOCK)
            if store.local and not store.children():  # a writer that stopped before writing leaves no folder
                with suppress(OSError):  # (a link, a mount point, a parent it may not change: it stays)
                    store.folder().rmdir()


def _acquire(store: LockedStore, owner: dict, force_unlock: bool) -> None:
    for _ in range(3):
        if store.write_group(LOCK, owner, only_if_absent=True):
            return
        holder = store.group_attributes(LOCK)
        if holder is None:
            continue  # released in between
        if not (force_unlock or owner_gone(holder)):
            raise WriterLockedError(
                f"{store.location}: another process is writing this cube ({describe_owner(holder)}); wait for it to "
                "finish, or, if that process died on another machine, re-run with --force-unlock"
            )
        # only the one process that creates this marker breaks the stale lock; others just retry
        if store.write_group(f"{LOCK}/broken.{holder.get('token')}", {"breaker": owner["token"]}, only_if_absent=True):
            sync(store.store.delete(f"{LOCK}/zarr.json"))
    raise WriterLockedError(f"{store.location}: could not take the writer lock; another process keeps taking it")


def check_held(store: LockedStore, owner: dict) -> None:
    """Refuse a commit unless ``owner`` (:func:`owner_record`) still holds the cube's writer lock.

    Raises
    ------
    WriterLockedError
        If the lock is gone or another owner holds it (named); nothing was committed.
    """
    holder = store.group_attributes(LOCK)
    if holder is None or holder.get("token") != owner["token"]:
        raise WriterLockedError(
            f"{store.location}: this process lost the writer lock "
            f"(now held by {describe_owner(holder)}); nothing was committed"
        )
