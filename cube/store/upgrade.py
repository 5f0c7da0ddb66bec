"""Bring a cube of an older schema version up to date in place (``crts upgrade CUBE``).

Only the small arrays and the metadata are rewritten, never an image shard, so an
upgrade of a terabyte cube takes seconds. Schema 2 -> 3 rewrites the per-patch
tables ``valid`` and ``coverage`` with :data:`cube.store.schema.TABLE_CHUNK` patches
per chunk. Each table is copied, then written again from the copy, then the copy
is deleted; every step is committed to the cube's state first, under the writer
lock, so an upgrade killed at any moment (``kill -9`` included) is finished by
running it again, and a second writer is refused.
"""

from __future__ import annotations

import datetime as dt
import os

from .schema import SCHEMA_VERSION, TABLE_CHUNK, UPGRADABLE
from .store import CubeState, CubeStore, as_store, checked_state

TABLES = ("valid", "coverage")
"""The arrays schema 3 chunks by many patches."""
COPY = "upgrade_copy"
"""The temporary copy of the table being rewritten."""


def _rewrite(store: CubeStore, owner: dict, state: CubeState, name: str) -> None:
    """Rewrite one table with its new chunks, from a copy (resumes at the committed step)."""
    progress = state.upgrade if (state.upgrade or {}).get("array") == name else None
    if progress is None or progress.get("step") is None:
        progress = state.upgrade = {"array": name, "step": "copying"}
        store.commit(state, owner)
    step = progress["step"]
    shape = store.array(COPY if step in ("copied", "replaced") else name).shape
    chunks = (TABLE_CHUNK, *shape[1:])
    if step == "copying":
        store.copy_array(name, COPY, chunks)
        progress["step"] = step = "copied"
        store.commit(state, owner)
    if step == "copied":
        store.copy_array(COPY, name, chunks)
        progress["step"] = "replaced"
        store.commit(state, owner)
    store.delete(COPY)
    state.upgrade = None


def upgrade(
    cube: str | os.PathLike | CubeStore, *, force_unlock: bool = False, storage_options: dict | None = None
) -> list[str]:
    """Upgrade a cube to schema version :data:`cube.store.schema.SCHEMA_VERSION` in place; returns what was rewritten.

    A cube that is up to date is left alone (nothing is written, and no write
    access is needed): the result is empty.

    Raises
    ------
    FileNotFoundError
        If there is no cube, or one of a version that cannot be upgraded.
    cube.store.lock.WriterLockedError
        If another process is writing the cube.

    Examples
    --------
    >>> upgrade("cube.zarr")  # doctest: +SKIP
    ['valid', 'coverage']
    """
    store = as_store(cube, storage_options=storage_options)
    attributes = store.group_attributes("")
    if (
        attributes is not None
        and attributes.get("schema_version") == SCHEMA_VERSION
        and not ((store.state() or CubeState()).upgrade)
    ):
        return []
    if attributes is None or attributes.get("schema_version") not in (*UPGRADABLE, SCHEMA_VERSION):
        checked_state(store)  # names what is there and what to do (a state without its root group included)
    store = store.reopened("r+")
    with store.writer("upgrade", force_unlock=force_unlock) as owner:
        state = store.state() or CubeState()
        present, pending = store.children(), (state.upgrade or {}).get("array")
        tables = [name for name in TABLES if name in present or name == pending]
        if (state.upgrade or {}).get("step") != "metadata":
            for name in tables:
                _rewrite(store, owner, state, name)
            state.upgrade = {"array": None, "step": "metadata"}
            store.commit(state, owner)
        # the root without its consolidated metadata: readers see the new chunks at once, then fresh metadata
        store.write_group("", {**store.root_document()["attributes"], "schema_version": SCHEMA_VERSION})
        store.consolidate()
        state.upgrade = None
        state.history.append(
            f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} upgraded to schema version "
            f"{SCHEMA_VERSION}: {', '.join(tables)} chunked by {TABLE_CHUNK} patches"
        )
        store.commit(state, owner)
    return tables
