"""The cube's store: opening it, reading and writing its objects, and its state.

Everything that reads or writes a cube's objects goes through :class:`CubeStore`;
no other module builds paths inside a cube. It stands on the backends of
:mod:`cube.store.backends` (local folders and buckets, retries, bounded metadata).
Besides the Zarr hierarchy of the data, a cube holds two small control groups whose
attributes are written whole, in one write of their ``zarr.json`` (an atomic replace
on a local disk, one PUT on object storage):

- ``cube_state``: what the writers have done (``complete``, ``pending``,
  ``gaps``, ``history``, ``clouds``); :meth:`CubeStore.commit` replaces it;
- ``writer_lock``: present while a process converts or runs the cloud pass
  (:mod:`cube.store.lock`: one writer at a time, stale locks broken).

The xarray views of a cube (:func:`cube.store.views.open_cube` and the patches' order and labels) build on
this module.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr
import zarr
import zarr.api.asynchronous
from zarr.abc.store import Store
from zarr.buffer import cpu, default_buffer_prototype
from zarr.storage import LocalStore, StorePath

from ..dataset.problems import FileProblem
from . import chunks, reads
from .backends import (
    CLOUD_VARIABLES,
    CubeLocalStore,
    MetadataError,
    parse_metadata,
    storage_requests,
    sync,
    zarr_store,
)
from .lock import LOCK, check_held, describe_owner, owner_gone, writer_lock
from .outputs import check_no_links, writing
from .schema import SCHEMA_VERSION, UPGRADABLE

STATE = "cube_state"
"""The control group of the cube's state (see the module docstring; the other is :data:`cube.store.lock.LOCK`)."""
INDEX_FILE = "index.parquet"
"""The GeoParquet index of the patches (:mod:`cube.store.index`), a plain file at the cube's root."""
FILES = (INDEX_FILE,)
"""Plain files a cube may hold besides its Zarr hierarchy (:meth:`CubeStore.write_file`)."""
CONVERSION_STATE = "conversion_state"
"""The root attribute that marks the data of an unfinished conversion (see :data:`INCOMPLETE_NOTE`)."""
INCOMPLETE_NOTE = (
    "incomplete: the conversion writing this cube has not finished; open it with "
    "cube.open_cube(CUBE, allow_incomplete=True) or finish it with `crts convert SRC CUBE --resume`"
)
"""Until its conversion completes, a cube's root ``zarr.json`` carries this as the attribute
:data:`CONVERSION_STATE` and as the kind of its consolidated metadata. zarr knows no such kind, so a plain
``xr.open_zarr(CUBE)`` (which reads consolidated metadata by default) fails with a ValueError quoting it, and
with ``consolidated=False`` the attribute shows it; unconverted patches would otherwise read as zeros. The
consolidation that completes a conversion replaces both: a complete cube's metadata is as before."""
_TORN_WRITE = re.compile(r"\.[0-9a-f]{32}\.partial$")
"""zarr's local temporary files (``<key>.<uuid>.partial``), left behind when a writer is killed mid-write."""
DIRECT_SHARD_WRITES = True
"""Whether :meth:`CubeStore.write_shard` encodes the shards that :func:`cube.store.chunks.writable` accepts itself
(the same bytes as zarr, in one write); False leaves every write to zarr (the tests compare the two)."""
Mode = Literal["r", "r+"]
"""How zarr opens a group or array of the cube: read only, or read and write."""


class IncompleteCubeError(RuntimeError):
    """The store exists but its conversion has not finished."""


@dataclass
class CubeState:
    """What the writers of a cube have done; stored whole in the ``cube_state`` group's attributes."""

    complete: bool = False
    pending: dict | None = None
    """An unfinished conversion: ``start`` (first new position), ``patches`` ([group, roi, pid] each), ``grown``."""
    gaps: int = 0
    history: list[str] = field(default_factory=list)
    clouds: dict = field(default_factory=lambda: {"detectors": [], "complete": False})
    """The cloud pass: its ``detectors`` and whether it finished (``complete``)."""
    upgrade: dict | None = None
    """An unfinished :func:`cube.store.upgrade.upgrade`: the ``array`` it rewrites and its ``step``."""

    def cloud_detectors(self) -> tuple[str, ...]:
        """Detectors of a finished cloud pass (empty while none has finished)."""
        return tuple(self.clouds["detectors"]) if self.clouds.get("complete") else ()


def _single_precision(raw: xr.Dataset) -> xr.Dataset:
    """Make packed variables of a not yet decoded Dataset decode to float32.

    xarray decodes to the type of ``scale_factor``, which JSON attributes give as
    float64. For integers of up to 16 bits and a scale that is a float32 number,
    float32 decoding is exact: every product fits float64's mantissa, so the
    float32 product is the float32 of the float64 one.
    """
    for variable in raw.variables.values():
        scale = variable.attrs.get("scale_factor")
        if (
            isinstance(scale, float)
            and np.float32(scale) == scale
            and "add_offset" not in variable.attrs
            and variable.dtype.kind in "iu"
            and variable.dtype.itemsize <= 2
        ):
            variable.attrs["scale_factor"] = np.float32(scale)
    return raw


def _load_coordinates(raw: xr.Dataset) -> None:
    """Read the coordinates of a not yet decoded Dataset into memory, all at once (concurrent requests).

    Not yet decoded, most coordinates are still data variables, named by ``coordinates``
    attributes; decoding (indexes, dates) would read them one after another.
    """
    holders: list[xr.Dataset | xr.Variable] = [raw, *raw.variables.values()]
    names = {str(name) for name in raw.coords} | {
        name for holder in holders for name in str(holder.attrs.get("coordinates", "")).split()
    }
    loaded = sync(raw[sorted(names & set(raw.variables))].load_async())
    for name in loaded.variables:
        raw.variables[name].data = loaded.variables[name].data


def _group_document(attributes: dict) -> bytes:
    return json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attributes}, indent=1).encode()


class CubeStore:
    """A cube's objects, state and lock, for reading (``mode='r'``) or writing (``mode='r+'``).

    Parameters
    ----------
    location : path or str
        The cube: a local path, or a ``s3://``, ``gs://``, ``http(s)://`` (read-only),
        ``file://`` or ``memory://`` URL (see :func:`cube.store.backends.zarr_store`).
    mode : {"r", "r+"}
        Read only, or read and write.
    storage_options : dict, optional
        Options of the object store (endpoint, region, credentials, ``anon``).

    Notes
    -----
    Every read and write of a cube's objects goes through this class (xarray
    writes through :meth:`write_dataset`, zarr through :meth:`group` and
    :meth:`array`). What lies where belongs to one module each, which uses
    this class for the I/O: the variables to :mod:`cube.store.schema`, the
    ``runs/<run>/<version>`` groups to :mod:`cube.store.runs`, the state to this
    module, the writer lock to :mod:`cube.store.lock`.
    """

    def __init__(self, location: str | os.PathLike, mode: str = "r", storage_options: dict | None = None) -> None:
        self.location, self.mode, self.storage_options = str(location), mode, dict(storage_options or {})
        self.store = zarr_store(location, read_only=mode == "r", storage_options=storage_options)
        self.local = isinstance(self.store, LocalStore)
        self.layouts: dict[str, tuple[zarr.AsyncArray, chunks.Layout | None]] = {}
        """The arrays that :meth:`read` opened, with their layouts (:func:`cube.store.reads.layouts`)."""

    def __repr__(self) -> str:
        return f"CubeStore({self.location!r})"

    def __reduce__(self) -> tuple:
        """Pickled as its arguments: each process (dask worker, DataLoader worker) opens its own connection.

        A cube in a bucket also carries this process's object-store variables (``AWS_*``,
        ``GOOGLE_*``, ``AZURE_*``: credentials, endpoint), which the receiving process sets
        before it connects: a fork server started before they were set would give its
        workers none of them (they then ask an instance-metadata service for credentials).
        """
        environment = {} if self.local else {k: v for k, v in os.environ.items() if k.startswith(CLOUD_VARIABLES)}
        return _reopen, (self.location, self.mode, self.storage_options, environment)

    def reopened(self, mode: str) -> CubeStore:
        """The same cube in another mode."""
        return self if mode == self.mode else CubeStore(self.location, mode, self.storage_options)

    # -- objects -------------------------------------------------------------------------------------------
    def read_json(self, key: str) -> dict | None:
        """A JSON object of the store, or None if absent."""
        data = self._get(key)
        if data is None:
            return None
        where = f"{self.location.rstrip('/')}/{key}"
        document = parse_metadata(data, where)
        if not isinstance(document, dict):
            raise MetadataError(where, f"a JSON {type(document).__name__}, not an object")
        return document

    def root_document(self) -> dict:
        """The root group's ``zarr.json``.

        Raises
        ------
        FileNotFoundError
            If there is none (no cube here).
        """
        root = self.read_json("zarr.json")
        if root is None:
            raise FileNotFoundError(f"{self.location}: no cube here (no zarr.json)")
        return root

    def folder(self) -> Path:
        """The folder of a local cube (callers ask where :attr:`local` is true).

        Raises
        ------
        ValueError
            For a cube in a bucket or behind an HTTP server, which has none.
        """
        if not isinstance(self.store, CubeLocalStore):
            raise ValueError(f"{self.location}: a cube in a bucket has no local folder")
        return self.store.root

    def _get(self, key: str) -> bytes | None:
        """An object's bytes, or None if absent."""
        try:
            with storage_requests(self.location), self.parsed_by_zarr():
                buffer = sync(self.store.get(key, prototype=default_buffer_prototype()))
        except FileNotFoundError:  # a local store whose folder does not exist
            return None
        return None if buffer is None else buffer.to_bytes()

    def write(self, key: str, data: bytes) -> None:
        """Write one object whole (readers see the old or the new content, never a mix)."""
        with storage_requests(self.location):
            sync(self.store.set(key, cpu.Buffer.from_bytes(data)))

    def write_file(self, name: str, data: bytes) -> None:
        """Write one of the cube's plain files (:data:`FILES`) whole: a temporary file renamed into place on
        a local disk, one PUT on object storage, so readers never see a part of it.

        Raises
        ------
        ValueError
            If ``name`` is not one of :data:`FILES` (so for every method on plain files).
        """
        self.write(_plain_file(name), data)  # zarr's LocalStore writes <name>.<uuid>.partial, then renames it

    def read_file(self, name: str) -> bytes | None:
        """The content of one of the cube's plain files (:data:`FILES`), or None if it has not been written."""
        return self._get(_plain_file(name))

    def file_location(self, name: str) -> str:
        """Path (local cube) or URL of one of the cube's plain files, for other programs (QGIS, GDAL)."""
        name = _plain_file(name)
        return str(self.folder() / name) if self.local else f"{self.location.rstrip('/')}/{name}"

    def create(self, key: str, data: bytes) -> bool:
        """Write an object only if it does not exist; True if this call created it.

        Read back, so that a write retried after a lost answer (:class:`cube.store.backends.PatientObjectStore`)
        still tells whether it was this call's.
        """
        with storage_requests(self.location):
            sync(self.store.set_if_not_exists(key, cpu.Buffer.from_bytes(data)))
        return self.read_json(key) == json.loads(data)

    def delete(self, name: str) -> None:
        """Delete an object, or everything under ``name`` as a prefix, and nothing outside the cube.

        In a local cube, a name reached through a symbolic link is refused before anything is deleted
        (:func:`cube.store.outputs.check_no_links`): zarr's local store would delete the link's target. In a bucket only
        the objects under ``name/`` (with the ``/``: ``v1`` never takes ``v10``) below the cube's prefix go.

        Raises
        ------
        cube.store.outputs.OutputRefused
            For a name reached through a link, or one that the file system refuses to delete (an immutable folder).
        """
        checked = writing(check_no_links(self.folder(), name), "cannot be deleted") if self.local else nullcontext()
        with checked, storage_requests(self.location):
            sync(self.store.delete(name))
            sync(self.store.delete_dir(name))

    def children(self, prefix: str = "") -> list[str]:
        """Names directly under a prefix."""

        async def listing() -> list[str]:
            return [name async for name in self.store.list_dir(prefix)]

        try:
            with storage_requests(self.location):
                return sorted(sync(listing()))
        except FileNotFoundError:  # a local store whose folder does not exist
            return []

    def check_cube_or_empty(self) -> None:
        """Refuse a location that holds objects but no cube: a cube is written into an empty place or over itself.

        Raises
        ------
        ValueError
            Naming the location and one of the objects it holds.
        """
        if self.state() is not None or self.group_attributes("") is not None:
            return
        foreign = [name for name in self.children() if name != LOCK]  # a lock alone: a writer that died at once
        if foreign:
            raise ValueError(
                f"{self.location}: exists and is not a cube (it holds {foreign[0]!r}"
                f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}); nothing was written: "
                "give a new or empty folder (or URL) for the cube"
            )

    def group_attributes(self, path: str) -> dict | None:
        """The attributes of a group, or None if there is no group at ``path``."""
        document = self.read_json(f"{path}/zarr.json" if path else "zarr.json")
        return None if document is None or document.get("node_type") != "group" else document["attributes"]

    def write_group(self, path: str, attributes: dict, *, only_if_absent: bool = False) -> bool:
        """Write a group's metadata (attributes whole) in one write; True if written."""
        data, key = _group_document(attributes), f"{path}/zarr.json" if path else "zarr.json"
        if only_if_absent:
            return self.create(key, data)
        self.write(key, data)
        return True

    def remove_torn_writes(self, prefixes: list[str]) -> None:
        """Delete temporary files of writes that a killed writer left under ``prefixes`` (local disks only)."""
        if not self.local:
            return
        root = self.folder()
        for prefix in prefixes:
            for leftover in (root / prefix).rglob("*.partial"):
                if leftover.is_file() and _TORN_WRITE.search(leftover.name):
                    leftover.unlink(missing_ok=True)

    # -- zarr and xarray -----------------------------------------------------------------------------------
    @contextmanager
    def parsed_by_zarr(self, path: str = "") -> Iterator[None]:
        """zarr and xarray read the metadata of the node at ``path`` inside: a document nested too deep for
        their JSON parser (a RecursionError) becomes a :class:`cube.store.backends.MetadataError` naming it; one
        too large (refused by :func:`cube.store.backends.bounded_metadata`, which knows only its key) is named
        with the cube's location."""
        try:
            yield
        except MetadataError as err:
            if err.path.startswith(self.location):
                raise
            raise MetadataError(f"{self.location.rstrip('/')}/{err.path}", err.message) from None
        except RecursionError:
            name = path.strip("/")
            for key in ("zarr.json", *([f"{name}/zarr.json"] if name else [])):
                self.read_json(key)  # raises the MetadataError that names the document
            raise MetadataError(f"{self.location.rstrip('/')}/{path}", "metadata nested too deep to read") from None

    def at(self, path: str = "") -> Store | StorePath:
        """The store rooted at a group's path, for zarr and xarray calls on that group alone.

        (Opened through the root, a group not listed in the root's consolidated
        metadata, such as a run published after it, would not be found.)
        """
        return StorePath(self.store, path) if path else self.store

    def write_dataset(
        self,
        ds: xr.Dataset,
        path: str = "",
        *,
        mode: Literal["w-", "a", "r+"],
        compute: Literal[True, False] = True,  # not bool: xarray's to_zarr has one overload for each
        encoding: Mapping | None = None,
        region: Mapping[str, slice] | None = None,
    ) -> None:
        """Write ``ds`` into the group at ``path`` with :meth:`xarray.Dataset.to_zarr` (Zarr v3, metadata not
        consolidated: :meth:`commit` consolidates); ``mode`` (``w-`` a new group, ``a`` new variables or
        attributes, ``r+`` a ``region`` of existing variables), ``compute`` and ``encoding`` as to_zarr takes them."""
        ds.to_zarr(
            self.at(path),
            mode=mode,
            compute=compute,
            encoding=encoding,
            region=region,
            zarr_format=3,
            consolidated=False,
        )

    def size_bytes(self) -> int | None:
        """Bytes of every file of a local cube (None in a bucket, where listing every object would cost a
        request per thousand objects)."""
        if not self.local:
            return None
        return sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(self.location.removeprefix("file://"))
            for name in names
        )

    def group(self, path: str = "", mode: Mode = "r") -> zarr.Group:
        """A group as zarr sees it now (not as its consolidated metadata saw it at the last commit)."""
        with self.parsed_by_zarr(path):
            return zarr.open_group(self.at(path), mode=mode, use_consolidated=False, zarr_format=3)

    def copy_array(self, source: str, target: str, chunks: tuple[int, ...]) -> None:
        """Write array ``source`` again as ``target`` (replacing it) with other chunks: the same shape, type, fill
        value, codecs, dimension names, attributes and values."""
        old = self.array(source)
        new = zarr.create_array(
            self.store,
            name=target,
            shape=old.shape,
            chunks=chunks,
            dtype=old.dtype,
            fill_value=old.fill_value,
            compressors=old.compressors,
            filters=old.filters,
            dimension_names=old.metadata.dimension_names if old.metadata.zarr_format == 3 else None,
            attributes=dict(old.attrs),
            overwrite=True,
            zarr_format=3,
        )
        new[...] = old[...]

    def write_shard(self, array: zarr.Array, index: int, data: np.ndarray) -> None:
        """Write ``data`` as position ``index`` along the first axis of ``array`` (an array of this store), which
        :func:`cube.store.chunks.encode_shard` puts in one write where it is one whole shard of an array that
        :func:`cube.store.chunks.writable` accepts (see :data:`DIRECT_SHARD_WRITES`), and zarr writes otherwise.
        A shard of fill values only is deleted, as zarr deletes it."""
        where = chunks.writable(array) if DIRECT_SHARD_WRITES else None
        if where is None or where.shard != (1, *array.shape[1:]) or not 0 <= index < array.shape[0]:
            array[index] = data
            return
        key = where.key((index, *(0,) * (array.ndim - 1)))
        parts = chunks.encode_shard(where, data[np.newaxis])
        with storage_requests(self.location):
            sync(self.store.delete(key) if parts is None else self.store.set_parts(key, parts))

    def array(self, name: str, mode: Mode = "r") -> zarr.Array:
        """One variable of the cube (or of a run: ``runs/<name>/<version>/prediction``) as a zarr array."""
        with self.parsed_by_zarr(name):
            return zarr.open_array(self.store, path=name, mode=mode, zarr_format=3)

    def values(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The values of array ``name`` from ``start`` to ``stop`` along its first axis (its end by default)."""
        # zarr types a read as any array-like or a scalar: a slice keeps its axis, so zarr gives a NumPy array,
        # which asarray passes through as it is
        return np.asarray(self.array(name)[start:stop])

    def read(
        self, requests: list[tuple[str, tuple]], out: Sequence[np.ndarray | None] | None = None
    ) -> list[np.ndarray]:
        """Basic selections ``(variable, selection)`` of cube arrays, all read at once, into ``out`` where given
        (:func:`cube.store.reads.read`)."""
        return reads.read(self, requests, out)

    def dataset(
        self, group: str | None = None, chunks: dict | None = None, *, load_coordinates: bool = False
    ) -> xr.Dataset:
        """A group as an :class:`xarray.Dataset` (lazy), from its consolidated metadata where it has them.

        Packed variables (small integers with a ``scale_factor``, such as
        ``s2cloudless_probability``) decode to float32, not float64: the same
        numbers, each the float32 of what float64 decoding gives. With
        ``load_coordinates``, every coordinate is read into memory, all at once
        (over a network: one round trip for all of them, instead of one each).
        """
        with warnings.catch_warnings(), self.parsed_by_zarr(group or ""):
            warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated", RuntimeWarning)
            opened = partial(
                xr.open_zarr,
                self.at(group or ""),
                chunks=chunks,
                decode_cf=False,
                zarr_format=3,
                create_default_indexes=not load_coordinates,
            )
            try:
                raw = opened(consolidated=None)
            except ValueError as err:  # the data of an unfinished conversion (mark_incomplete): read as they are
                if INCOMPLETE_NOTE not in str(err):
                    raise
                raw = opened(consolidated=False)
        if load_coordinates:
            _load_coordinates(raw)
        return xr.decode_cf(_single_precision(raw))

    def consolidate(self, group: str | None = None) -> None:
        """Write the consolidated metadata of a group (the root by default): one read opens it.

        The root's leaves out the control groups (state and lock): they change after
        the data's metadata is final (a commit, a released lock), and are always read
        from their own ``zarr.json``, so the consolidated copy never shows a stale state
        or a lock that is gone.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Consolidated metadata is currently not part", UserWarning)
            with plain_files_ignored():
                zarr.consolidate_metadata(self.store, path=group)
        if group:
            return
        root = self.root_document()
        root["attributes"].pop(CONVERSION_STATE, None)  # the data are final: see mark_incomplete
        listed = root["consolidated_metadata"]["metadata"]
        root["consolidated_metadata"]["metadata"] = {
            key: value for key, value in listed.items() if key.split("/")[0] not in (STATE, LOCK)
        }
        self.write("zarr.json", json.dumps(root, indent=2).encode())

    def mark_incomplete(self) -> None:
        """Mark the root group as the data of an unfinished conversion, in one write of its ``zarr.json``
        (see :data:`INCOMPLETE_NOTE`); the next :meth:`consolidate` of the root removes the mark."""
        root = self.root_document()
        root["attributes"][CONVERSION_STATE] = INCOMPLETE_NOTE
        root["consolidated_metadata"] = {"kind": INCOMPLETE_NOTE, "must_understand": False, "metadata": {}}
        self.write("zarr.json", json.dumps(root, indent=2).encode())

    # -- state ---------------------------------------------------------------------------------------------
    def state(self) -> CubeState | None:
        """The committed state, or None if no writer has committed one."""
        attributes = self.group_attributes(STATE)
        return None if attributes is None else CubeState(**attributes)

    def commit(self, state: CubeState, owner: dict) -> None:
        """Replace the state in one write, if ``owner`` still holds the writer lock
        (:func:`cube.store.lock.check_held`)."""
        check_held(self, owner)
        self.write_group(STATE, asdict(state))

    # -- the writer lock -----------------------------------------------------------------------------------
    def writer(self, purpose: str, *, force_unlock: bool = False) -> AbstractContextManager[dict]:
        """Hold the cube's writer lock for the duration of a ``with`` block; yields the owner record
        (:func:`cube.store.lock.writer_lock`).

        Raises
        ------
        cube.store.lock.WriterLockedError
            If another live process holds it (its pid, host, command and start are named).
        """
        return writer_lock(self, purpose, force_unlock=force_unlock)


@contextmanager
def plain_files_ignored() -> Iterator[None]:
    """Silence zarr's warning, while it lists a group's members (zarr and xarray writes into existing groups
    do), that the cube's plain files (:data:`FILES`) are no Zarr nodes: they are not meant to be."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", f"Object at ({'|'.join(map(re.escape, FILES))}) is not recognized", UserWarning
        )
        yield


def member_array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of a group (zarr gives a group's member as an array or a group; a cube's variables are
    arrays).

    Raises
    ------
    ValueError
        If it is a group: the store is no cube that this toolkit wrote.
    """
    found = group[name]
    if not isinstance(found, zarr.Array):
        raise ValueError(f"{group.store_path}/{name}: a Zarr group, where a cube holds an array")
    return found


def _reopen(location: str, mode: str, storage_options: dict, environment: dict[str, str]) -> CubeStore:
    """A pickled :class:`CubeStore` in another process, with the object-store variables of the one that sent it."""
    os.environ.update(environment)
    return CubeStore(location, mode, storage_options)


def _plain_file(name: str) -> str:
    if name not in FILES:
        raise ValueError(f"invalid cube file {name!r}: a cube holds {', '.join(FILES)}")
    return name


def as_store(cube: str | os.PathLike | CubeStore, mode: str = "r", storage_options: dict | None = None) -> CubeStore:
    """A :class:`CubeStore` for a path, URL or store (in ``mode``)."""
    if isinstance(cube, CubeStore):
        return cube.reopened(mode)
    return CubeStore(cube, mode, storage_options)


def checked_state(store: CubeStore, allow_incomplete: bool = False, attributes: dict | None = None) -> CubeState:
    """The state of a cube of this schema version; raises unless it is complete (or ``allow_incomplete``) and,
    where complete, beside its root group.

    ``attributes``: the root group's, where the caller has read them already.
    """
    attributes, state = attributes if attributes is not None else store.group_attributes(""), store.state()
    if attributes is None and state is None:
        tree = store.local and any(name.startswith("ROIs") for name in store.children())
        raise FileNotFoundError(
            f"{store.location}: no cube here (no zarr.json)"
            + (
                ": it holds a GeoTIFF tree; convert it first with `crts convert SRC CUBE`"
                if tree
                else "; make one with `crts convert SRC CUBE`"
            )
        )
    if attributes is not None and attributes.get("schema_version") != SCHEMA_VERSION:
        found = attributes.get("schema_version")
        remedy = (
            f"bring it up to date in place with `crts upgrade {store.location}`"
            if found in UPGRADABLE
            else "convert the source again into a new cube"
        )
        raise FileNotFoundError(f"{store.location}: a cube of schema version {found}, not {SCHEMA_VERSION}; {remedy}")
    state = state or CubeState()
    if not state.complete and not allow_incomplete:
        holder = store.group_attributes(LOCK)
        if holder is not None and not owner_gone(holder):
            raise IncompleteCubeError(
                f"{store.location}: is being written ({describe_owner(holder)}); open it when that process has finished"
            )
        raise IncompleteCubeError(
            f"{store.location}: the conversion writing this cube did not finish; "
            "re-run `crts convert SRC CUBE --resume` to complete it"
        )
    if attributes is None and state.complete:  # a committed state beside a lost or overwritten root document
        raise FileProblem(
            f"{store.location.rstrip('/')}/zarr.json", "missing or not a group: the cube has lost its root"
        )
    return state
