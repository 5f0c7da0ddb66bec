"""The cube's store: opening it, its state, its single-writer lock, and georeferenced views of its patches.

Everything that reads or writes a cube's objects goes through :class:`CubeStore`;
no other module builds paths inside a cube. Besides the Zarr hierarchy of the
data, a cube holds two small control groups whose attributes are written whole,
in one write of their ``zarr.json`` (an atomic replace on a local disk, one PUT
on object storage):

- ``cube_state``: what the writers have done (``complete``, ``pending``,
  ``gaps``, ``history``, ``clouds``); :meth:`CubeStore.commit` replaces it;
- ``writer_lock``: present while a process converts or runs the cloud pass;
  created only if absent (a create-only write), so one writer at a time holds it.
  A lock whose owner is gone from this host is broken automatically; any other
  lock only with ``force_unlock=True`` (``--force-unlock``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import re
import socket
import sys
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import psutil
import xarray as xr
import zarr
import zarr.api.asynchronous
from natsort import natsort_keygen
from zarr.abc.store import ByteRequest, SuffixByteRequest
from zarr.core.buffer import cpu, default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import LocalStore, ObjectStore, StorePath

from . import chunks
from ..dataset.problems import FileProblem
from ..dataset.rois import GROUPS, PatchLabel, Roi
from .outputs import check_no_links, writing
from .schema import DESCRIPTIONS, SCHEMA_VERSION, UPGRADABLE

STATE, LOCK = "cube_state", "writer_lock"
"""The control groups (see the module docstring)."""
INDEX_FILE = "index.parquet"
"""The GeoParquet index of the patches (:mod:`cube.store.index`), a plain file at the cube's root."""
FILES = (INDEX_FILE,)
"""Plain files a cube may hold besides its Zarr hierarchy (:meth:`CubeStore.write_file`)."""
CONVERSION_STATE = "conversion_state"
"""The root attribute that marks the data of an unfinished conversion (see :data:`INCOMPLETE_NOTE`)."""
INCOMPLETE_NOTE = ("incomplete: the conversion writing this cube has not finished; open it with "
                   "cube.open_cube(CUBE, allow_incomplete=True) or finish it with `crts convert SRC CUBE --resume`")
"""Until its conversion completes, a cube's root ``zarr.json`` carries this as the attribute
:data:`CONVERSION_STATE` and as the kind of its consolidated metadata. zarr knows no such kind, so a plain
``xr.open_zarr(CUBE)`` (which reads consolidated metadata by default) fails with a ValueError quoting it, and
with ``consolidated=False`` the attribute shows it; unconverted patches would otherwise read as zeros. The
consolidation that completes a conversion replaces both: a complete cube's metadata is as before."""
_TORN_WRITE = re.compile(r"\.[0-9a-f]{32}\.partial$")
"""zarr's local temporary files (``<key>.<uuid>.partial``), left behind when a writer is killed mid-write."""


METADATA_BYTES = 16 * 2**20
"""Largest JSON metadata object of a cube read (16 MiB): a full-size cube's root ``zarr.json`` with its
consolidated metadata is 37 KB (15,600 patches, measured on cube.synth.hollow's cube), and ``cube_state``
at its largest lists every patch of an unfinished conversion (about 0.5 MB)."""
METADATA_DEPTH = 32
"""Deepest nesting of objects and arrays in a cube's JSON metadata (a root ``zarr.json`` with consolidated
metadata is 10 deep): deeper documents exhaust the recursion of Python's JSON parser (zarr's too)."""


class MetadataError(FileProblem):
    """A JSON metadata object of a cube (``zarr.json``, consolidated metadata, a run pointer) that is not
    JSON, too large or nested too deep to read: its location and the problem, in one line."""


def parse_metadata(data: bytes, where: str) -> object:
    """Parse one JSON metadata object of a cube within :data:`METADATA_BYTES` and :data:`METADATA_DEPTH`.

    Parameters
    ----------
    data : bytes
        The object's content.
    where : str
        Its location, for the message.

    Raises
    ------
    MetadataError
        If it is too large, not JSON, or nested too deep.
    """
    if len(data) > METADATA_BYTES:
        raise MetadataError(where, f"{len(data)} bytes of metadata, more than a cube's can be ({METADATA_BYTES}, "
                                   "METADATA_BYTES)")
    deep = MetadataError(where, f"metadata nested more than {METADATA_DEPTH} deep (METADATA_DEPTH)")
    try:
        document = json.loads(data)
    except RecursionError:  # deeper than the parser's recursion: far deeper than METADATA_DEPTH
        raise deep from None
    except ValueError as err:  # undecodable bytes or JSON syntax
        raise MetadataError(where, f"not JSON ({str(err).splitlines()[0][:200]})") from None
    level = [document]  # the values at one depth, from the top
    for _ in range(METADATA_DEPTH):
        level = [item for value in level if isinstance(value, dict | list)
                 for item in (value.values() if isinstance(value, dict) else value)]
    if any(isinstance(value, dict | list) for value in level):  # a container inside METADATA_DEPTH others
        raise deep
    return document


class IncompleteCubeError(RuntimeError):
    """The store exists but its conversion has not finished."""


class WriterLockedError(RuntimeError):
    """Another process holds the cube's writer lock."""


class StorageError(RuntimeError):
    """The object store failed a request: a missing bucket, denied access, an unreachable server."""


_REASONS = {"NotFoundError": "not found (does the bucket exist?)",
            "PermissionDeniedError": "access denied (check the credentials)",
            "UnauthenticatedError": "not authenticated (check the credentials)"}


def storage_error(err: Exception, location: str) -> StorageError | None:
    """A one-line :class:`StorageError` for an error of the object-store client, else None."""
    if not type(err).__module__.startswith("obstore") and not (isinstance(err, FileNotFoundError)
                                                               and "Error performing" in str(err)):
        return None
    kind = "NotFoundError" if isinstance(err, FileNotFoundError) else type(err).__name__
    first = (str(err).splitlines() or [kind])[0]
    return StorageError(f"{location}: {_REASONS.get(kind, first[:200])}")


@contextmanager
def _requests(location: str) -> Iterator[None]:
    """Errors of the object-store client inside as :class:`StorageError` (a missing local folder passes)."""
    try:
        yield
    except Exception as err:
        translated = storage_error(err, location)
        if translated is None:
            raise
        raise translated from None


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
        if (isinstance(scale, float) and np.float32(scale) == scale and "add_offset" not in variable.attrs
                and variable.dtype.kind in "iu" and variable.dtype.itemsize <= 2):
            variable.attrs["scale_factor"] = np.float32(scale)
    return raw


def _load_coordinates(raw: xr.Dataset) -> None:
    """Read the coordinates of a not yet decoded Dataset into memory, all at once (concurrent requests).

    Not yet decoded, most coordinates are still data variables, named by ``coordinates``
    attributes; decoding (indexes, dates) would read them one after another.
    """
    names = set(raw.coords) | {name for holder in (raw, *raw.variables.values())
                               for name in str(holder.attrs.get("coordinates", "")).split()}
    loaded = sync(raw[sorted(names & set(raw.variables))].load_async())
    for name in loaded.variables:
        raw.variables[name].data = loaded.variables[name].data


def _group_document(attributes: dict) -> bytes:
    return json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attributes}, indent=1).encode()


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def owner_record(purpose: str) -> dict:
    """Who writes: a unique token, host, process (with its start time, so a reused pid is told apart)."""
    return {"token": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
            "pid_started": _process_started(os.getpid()), "purpose": purpose,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
            "since": f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"}


def owner_gone(owner: dict) -> bool:
    """True if the process that wrote ``owner`` (see :func:`owner_record`) ran on this host and has ended."""
    if owner.get("host") != socket.gethostname():
        return False
    started = _process_started(int(owner.get("pid", -1)))
    return started is None or owner.get("pid_started") is None or abs(started - owner["pid_started"]) > 1e-3


SCHEMES = ("s3", "gs", "http", "https", "file", "memory")
"""URL schemes of a cube's location besides a plain path (``http(s)`` read-only)."""
_MEMORY: dict[str, object] = {}
"""``memory://`` stores of this process, by URL (for tests and notebooks)."""


RETRY = {"max_retries": 10, "retry_timeout": dt.timedelta(minutes=3),
         "backoff": {"init_backoff": dt.timedelta(milliseconds=100), "max_backoff": dt.timedelta(seconds=15),
                     "base": 2}}
"""How the object-store client retries a request that failed with a 5xx answer, a dropped or refused
connection or a read timeout: up to 10 times, within 3 minutes, waiting 0.1 s, 0.2 s, 0.4 s ... (at most
15 s, with jitter) in between. What still fails reaches the caller as :class:`StorageError` (one line).
The storage option ``max_retries`` sets the number of retries (0: none, to fail fast)."""


def _object_store(location: str, scheme: str, storage_options: dict) -> object:
    """An obstore store for a URL, retrying as :data:`RETRY` says; ``anon=True`` means unsigned requests."""
    from obstore.store import MemoryStore, from_url

    if scheme == "memory":
        return _MEMORY.setdefault(location.rstrip("/"), MemoryStore())
    options = dict(storage_options)
    if str(options.pop("anon", "false")).lower() in ("true", "1", "yes"):
        options["skip_signature"] = True
    client = {k: options.pop(k) for k in ("allow_http", "timeout", "connect_timeout") if k in options}
    if scheme == "http":
        client.setdefault("allow_http", True)  # the URL says so
    return from_url(location, client_options=client or None, retry_config=_retry_config(options), **options)


def _retry_config(options: dict) -> dict:
    """:data:`RETRY` with the ``max_retries`` of the storage options (taken out of them), if they give one."""
    given = options.pop("max_retries", RETRY["max_retries"])
    if not str(given).isdigit():
        raise ValueError(f"invalid storage option max_retries={given!r}: give a whole number >= 0")
    return {**RETRY, "max_retries": int(given)}


async def _again(request: Callable[[], Awaitable[object]]) -> object:
    """Await ``request()``, again as :data:`RETRY` says while it fails for the network (obstore's generic error)."""
    from obstore.exceptions import GenericError

    backoff = RETRY["backoff"]
    wait, longest = backoff["init_backoff"].total_seconds(), backoff["max_backoff"].total_seconds()
    for _ in range(RETRY["max_retries"]):
        try:
            return await request()
        except GenericError:
            await asyncio.sleep(wait * random.uniform(0.5, 1.0))
            wait = min(wait * backoff["base"], longest)
    return await request()


class MetadataBounded:
    """A zarr store whose ``zarr.json`` objects are refused above :data:`METADATA_BYTES` (what zarr and xarray
    read themselves: consolidated metadata, arrays' and groups' documents), with a :class:`MetadataError`."""

    async def get(self, key: str, prototype: object = None, byte_range: ByteRequest | None = None) -> object:
        buffer = await super().get(key, prototype, byte_range)
        if buffer is not None and key.rsplit("/", 1)[-1] == "zarr.json" and len(buffer) > METADATA_BYTES:
            raise MetadataError(key, f"{len(buffer)} bytes of metadata, more than a cube's can be ({METADATA_BYTES}, "
                                     "METADATA_BYTES)")
        return buffer


class CubeLocalStore(MetadataBounded, LocalStore):
    """zarr's store of a local folder, its metadata bounded (:class:`MetadataBounded`)."""


class PatientObjectStore(MetadataBounded, ObjectStore):
    """zarr's obstore-backed store, whose writes and deletes are retried after a dropped connection too.

    obstore retries 5xx answers of every request, but a dropped connection only for
    reads: it does not know a PUT or DELETE to be safe to repeat. In a cube they are:
    an object is always written whole (a repeat writes the same bytes), a delete
    repeated deletes once, and a create-only write is read back by
    :meth:`CubeStore.create`, which so tells whether a lost attempt was its own.
    """

    async def set(self, key: str, value: object) -> None:
        await _again(lambda: super(PatientObjectStore, self).set(key, value))

    async def set_if_not_exists(self, key: str, value: object) -> None:
        await _again(lambda: super(PatientObjectStore, self).set_if_not_exists(key, value))

    async def delete(self, key: str) -> None:
        await _again(lambda: super(PatientObjectStore, self).delete(key))

    async def delete_dir(self, prefix: str) -> None:
        await _again(lambda: super(PatientObjectStore, self).delete_dir(prefix))


def zarr_store(location: str | os.PathLike, read_only: bool, storage_options: dict | None = None) -> object:
    """The zarr store of a path or URL: zarr's LocalStore for paths and ``file://``, obstore for the rest.

    Credentials and endpoints come from the standard variables (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``, ``AWS_ENDPOINT_URL``, Google's application
    default credentials) unless ``storage_options`` gives them (obstore's configuration keys).

    Raises
    ------
    ValueError
        For an unknown scheme, or an ``http(s)://`` cube opened for writing.
    """
    text = str(location)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("", "file"):
        return CubeLocalStore(Path(text.removeprefix("file://")), read_only=read_only)
    if scheme not in SCHEMES:
        raise ValueError(f"{text}: unknown URL scheme {scheme!r}; a cube is a path or a {', '.join(SCHEMES)} URL")
    if scheme in ("http", "https") and not read_only:
        raise ValueError(f"{text}: HTTP is read-only; write the cube to a path or an s3:// or gs:// URL")
    return PatientObjectStore(_object_store(text, scheme, storage_options or {}), read_only=read_only)


class CubeStore:
    """A cube's objects, state and lock, for reading (``mode='r'``) or writing (``mode='r+'``).

    Parameters
    ----------
    location : path or str
        The cube: a local path, or a ``s3://``, ``gs://``, ``http(s)://`` (read-only),
        ``file://`` or ``memory://`` URL (see :func:`zarr_store`).
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
    ``runs/<run>/<version>`` groups to :mod:`cube.store.runs`, the state and the
    writer lock to this module.
    """

    def __init__(self, location: str | os.PathLike, mode: str = "r", storage_options: dict | None = None) -> None:
        self.location, self.mode, self.storage_options = str(location), mode, dict(storage_options or {})
        self.store = zarr_store(location, read_only=mode == "r", storage_options=storage_options)
        self.local = isinstance(self.store, LocalStore)
        self._layouts: dict[str, tuple[zarr.AsyncArray, chunks.Layout | None]] = {}

    def __repr__(self) -> str:
        return f"CubeStore({self.location!r})"

    def __reduce__(self) -> tuple:
        """Pickled as its arguments: each process (dask worker, DataLoader worker) opens its own connection.

        A cube in a bucket also carries this process's object-store variables (``AWS_*``,
        ``GOOGLE_*``, ``AZURE_*``: credentials, endpoint), which the receiving process sets
        before it connects: a fork server started before they were set would give its
        workers none of them (they then ask an instance-metadata service for credentials).
        """
        environment = {} if self.local else {k: v for k, v in os.environ.items() if k.startswith(_CLOUD_VARIABLES)}
        return _reopen, (self.location, self.mode, self.storage_options, environment)

    def reopened(self, mode: str) -> CubeStore:
        """The same cube in another mode."""
        return self if mode == self.mode else CubeStore(self.location, mode, self.storage_options)

    # -- objects -------------------------------------------------------------------------------------------
    def read_json(self, key: str) -> dict | None:
        """A JSON object of the store, or None if absent."""
        data = self._get(key)
        return None if data is None else parse_metadata(data, f"{self.location.rstrip('/')}/{key}")

    def _get(self, key: str) -> bytes | None:
        """An object's bytes, or None if absent."""
        try:
            with _requests(self.location), self.parsed_by_zarr():
                buffer = sync(self.store.get(key, prototype=default_buffer_prototype()))
        except FileNotFoundError:  # a local store whose folder does not exist
            return None
        return None if buffer is None else buffer.to_bytes()

    def write(self, key: str, data: bytes) -> None:
        """Write one object whole (readers see the old or the new content, never a mix)."""
        with _requests(self.location):
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
        return str(Path(self.store.root) / name) if self.local else f"{self.location.rstrip('/')}/{name}"

    def create(self, key: str, data: bytes) -> bool:
        """Write an object only if it does not exist; True if this call created it.

        Read back, so that a write retried after a lost answer (:class:`PatientObjectStore`)
        still tells whether it was this call's.
        """
        with _requests(self.location):
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
        checked = writing(check_no_links(self.store.root, name), "cannot be deleted") if self.local else nullcontext()
        with checked, _requests(self.location):
            sync(self.store.delete(name))
            sync(self.store.delete_dir(name))

    def children(self, prefix: str = "") -> list[str]:
        """Names directly under a prefix."""
        async def listing() -> list[str]:
            return [name async for name in self.store.list_dir(prefix)]
        try:
            with _requests(self.location):
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
            raise ValueError(f"{self.location}: exists and is not a cube (it holds {foreign[0]!r}"
                             f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}); nothing was written: "
                             "give a new or empty folder (or URL) for the cube")

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
        root = Path(self.store.root) if self.local else None
        for prefix in prefixes if root else ():
            for leftover in (root / prefix).rglob("*.partial"):
                if leftover.is_file() and _TORN_WRITE.search(leftover.name):
                    leftover.unlink(missing_ok=True)

    # -- zarr and xarray -----------------------------------------------------------------------------------
    @contextmanager
    def parsed_by_zarr(self, path: str = "") -> Iterator[None]:
        """zarr and xarray read the metadata of the node at ``path`` inside: a document nested too deep for
        their JSON parser (a RecursionError) becomes a :class:`MetadataError` naming it; one too large (refused by
        :class:`MetadataBounded`, which knows only its key) is named with the cube's location."""
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

    def at(self, path: str = "") -> object:
        """The store rooted at a group's path, for zarr and xarray calls on that group alone.

        (Opened through the root, a group not listed in the root's consolidated
        metadata, such as a run published after it, would not be found.)
        """
        return StorePath(self.store, path) if path else self.store

    def write_dataset(self, ds: xr.Dataset, path: str = "", **to_zarr: object) -> None:
        """Write ``ds`` into the group at ``path`` with :meth:`xarray.Dataset.to_zarr` (Zarr v3, metadata not
        consolidated: :meth:`commit` consolidates); ``to_zarr`` holds its other arguments (mode, region, ...)."""
        ds.to_zarr(self.at(path), zarr_format=3, consolidated=False, **to_zarr)

    def size_bytes(self) -> int | None:
        """Bytes of every file of a local cube (None in a bucket, where listing every object would cost a
        request per thousand objects)."""
        if not self.local:
            return None
        return sum(os.path.getsize(os.path.join(root, name))
                   for root, _, names in os.walk(self.location.removeprefix("file://")) for name in names)

    def group(self, path: str = "", mode: str = "r") -> zarr.Group:
        """A group as zarr sees it now (not as its consolidated metadata saw it at the last commit)."""
        with self.parsed_by_zarr(path):
            return zarr.open_group(self.at(path), mode=mode, use_consolidated=False, zarr_format=3)

    def copy_array(self, source: str, target: str, chunks: tuple[int, ...]) -> None:
        """Write array ``source`` again as ``target`` (replacing it) with other chunks: the same shape, type, fill
        value, codecs, dimension names, attributes and values."""
        old = self.array(source)
        new = zarr.create_array(self.store, name=target, shape=old.shape, chunks=chunks, dtype=old.dtype,
                                fill_value=old.fill_value, compressors=old.compressors, filters=old.filters,
                                dimension_names=old.metadata.dimension_names, attributes=dict(old.attrs),
                                overwrite=True, zarr_format=3)
        new[...] = old[...]

    def array(self, name: str, mode: str = "r") -> zarr.Array:
        """One variable of the cube (or of a run: ``runs/<name>/<version>/prediction``) as a zarr array."""
        with self.parsed_by_zarr(name):
            return zarr.open_array(self.store, path=name, mode=mode, zarr_format=3)

    def get_ranges(self, requests: dict[str, list[ByteRequest]]) -> dict[str, list[np.ndarray | None]]:
        """Byte ranges of objects, by key, as uint8 arrays (each None if its object is absent).

        On a local disk they are read at once in this thread (a thread or event-loop hop
        per range costs more than reading a chunk); on object storage all at once,
        concurrently, nearby ranges of an object merged (zarr's ObjectStore over obstore's ``get_ranges``).
        """
        if self.local:
            return {key: _read_ranges(Path(self.store.root) / key, ranges) for key, ranges in requests.items()}

        async def ranges_of(key: str, ranges: list[ByteRequest]) -> list:
            try:
                return await self.store.get_partial_values(default_buffer_prototype(), [(key, r) for r in ranges])
            except FileNotFoundError:  # a shard never written (as on the disk)
                return [None] * len(ranges)

        async def gather() -> list:
            return await asyncio.gather(*(ranges_of(key, ranges) for key, ranges in requests.items()))
        answers = sync(gather())
        return {key: [None if a is None else a.as_numpy_array() for a in found]
                for key, found in zip(requests, answers, strict=True)}

    def get_tails(self, requests: dict[str, int]) -> dict[str, tuple[np.ndarray, int] | None]:
        """The last ``n`` bytes (fewer if the object is shorter; uint8) and the size of objects, by key (None
        where absent): one read each, at once (on object storage a suffix request, whose answer gives the size)."""
        if self.local:
            return {key: _read_tail(Path(self.store.root) / key, n) for key, n in requests.items()}
        import obstore

        async def tail_of(key: str, n: int) -> tuple[np.ndarray, int] | None:
            try:
                result = await obstore.get_async(self.store.store, key, options={"range": {"suffix": n}})
                return np.frombuffer(await result.bytes_async(), np.uint8), int(result.meta["size"])
            except FileNotFoundError:  # a shard never written (as on the disk)
                return None

        async def gather() -> list:
            return await asyncio.gather(*(tail_of(key, n) for key, n in requests.items()))
        with _requests(self.location):
            return dict(zip(requests, sync(gather()), strict=True))

    def named(self, err: chunks.DamagedShardError,
              labels: list[PatchLabel] | dict[int, PatchLabel] | None = None) -> chunks.DamagedShardError:
        """A damaged shard's error with the cube's location and the labels of the patches it holds (``labels``:
        by store position, where the caller has them; else those of the shard's patches are read)."""
        if labels is None and err.patches:
            labels = dict(zip(err.patches, patch_labels(xr.Dataset({name: ("patch", self.array(name)[
                err.patches.start:err.patches.stop]) for name in ("roi_group", "roi", "patch_id")})), strict=True))
        held = tuple(labels[p] for p in err.patches)
        where = f"{self.location.rstrip('/')}/{err.path}" + (f" ({', '.join(map(str, held))})" if held else "")
        return chunks.DamagedShardError(where, err.message, err.patches, held)

    def read(self, requests: list[tuple[str, tuple]], out: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Basic selections ``(variable, selection)`` of cube arrays, all read at once.

        Images of the cube's sharded arrays are read by :mod:`cube.store.chunks`: each shard's
        index once, then the chunks, all at once (over a network: two latencies for the
        whole list, not one per image), Blosc decoding into the result. Other arrays and
        selections are read by zarr, concurrently. ``out`` (optional): one C-contiguous array
        per request (or None), of its result's shape and the array's type, to read into;
        it is what is returned.

        Raises
        ------
        cube.store.chunks.DamagedShardError
            For a damaged shard, naming it and the patches it holds.
        """
        new = sorted({name for name, _ in requests} - set(self._layouts))
        if new:  # all at once: one round trip on a bucket

            async def open_arrays() -> list[zarr.AsyncArray]:
                return await asyncio.gather(*(zarr.api.asynchronous.open_array(store=self.store, path=name, mode="r",
                                                                               zarr_format=3) for name in new))
            with _requests(self.location), self.parsed_by_zarr():
                self._layouts.update({name: (array, chunks.layout(array))
                                      for name, array in zip(new, sync(open_arrays()), strict=True)})
        targets = out or [None] * len(requests)
        for (name, _), target in zip(requests, targets, strict=True):
            stored = self._layouts[name][0].dtype
            if target is not None and target.dtype != stored:
                raise ValueError(f"{name}: cannot read {stored} images into a {target.dtype} array")
        plans = [(where := self._layouts[name][1]) and chunks.plan(where, sel) for name, sel in requests]

        async def zarr_reads() -> list[np.ndarray]:
            return await asyncio.gather(*(self._layouts[name][0].getitem(sel)
                                          for (name, sel), p in zip(requests, plans, strict=True) if not p))
        try:
            with _requests(self.location), ThreadPoolExecutor(1) as pool:  # zarr's reads beside the direct ones
                pending = None if all(plans) else pool.submit(sync, zarr_reads())
                direct = iter(chunks.read_chunks(self.get_tails, self.get_ranges, [p for p in plans if p]))
                others = iter(pending.result() if pending else [])
            return [chunks.assemble(p, next(direct), target) if p else _into(target, next(others))
                    for p, target in zip(plans, targets, strict=True)]
        except chunks.DamagedShardError as err:
            raise self.named(err) from None

    def dataset(self, group: str | None = None, chunks: dict | None = None, *,
                load_coordinates: bool = False) -> xr.Dataset:
        """A group as an :class:`xarray.Dataset` (lazy), from its consolidated metadata where it has them.

        Packed variables (small integers with a ``scale_factor``, such as
        ``s2cloudless_probability``) decode to float32, not float64: the same
        numbers, each the float32 of what float64 decoding gives. With
        ``load_coordinates``, every coordinate is read into memory, all at once
        (over a network: one round trip for all of them, instead of one each).
        """
        with warnings.catch_warnings(), self.parsed_by_zarr(group or ""):
            warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated", RuntimeWarning)
            opened = partial(xr.open_zarr, self.at(group or ""), chunks=chunks, decode_cf=False, zarr_format=3,
                             create_default_indexes=not load_coordinates)
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
        root = self.read_json("zarr.json")
        root["attributes"].pop(CONVERSION_STATE, None)  # the data are final: see mark_incomplete
        listed = root["consolidated_metadata"]["metadata"]
        root["consolidated_metadata"]["metadata"] = {
            key: value for key, value in listed.items() if key.split("/")[0] not in (STATE, LOCK)}
        self.write("zarr.json", json.dumps(root, indent=2).encode())

    def mark_incomplete(self) -> None:
        """Mark the root group as the data of an unfinished conversion, in one write of its ``zarr.json``
        (see :data:`INCOMPLETE_NOTE`); the next :meth:`consolidate` of the root removes the mark."""
        root = self.read_json("zarr.json")
        root["attributes"][CONVERSION_STATE] = INCOMPLETE_NOTE
        root["consolidated_metadata"] = {"kind": INCOMPLETE_NOTE, "must_understand": False, "metadata": {}}
        self.write("zarr.json", json.dumps(root, indent=2).encode())

    # -- state ---------------------------------------------------------------------------------------------
    def state(self) -> CubeState | None:
        """The committed state, or None if no writer has committed one."""
        attributes = self.group_attributes(STATE)
        return None if attributes is None else CubeState(**attributes)

    def commit(self, state: CubeState, owner: dict) -> None:
        """Replace the state in one write, if ``owner`` still holds the writer lock."""
        holder = self.group_attributes(LOCK)
        if holder is None or holder.get("token") != owner["token"]:
            raise WriterLockedError(f"{self.location}: this process lost the writer lock "
                                    f"(now held by {_describe(holder)}); nothing was committed")
        self.write_group(STATE, asdict(state))

    # -- the writer lock -----------------------------------------------------------------------------------
    @contextmanager
    def writer(self, purpose: str, *, force_unlock: bool = False) -> Iterator[dict]:
        """Hold the cube's writer lock for the duration of a ``with`` block; yields the owner record.

        Raises
        ------
        WriterLockedError
            If another live process holds it (its pid, host, command and start are named).
        """
        owner = owner_record(purpose)
        self._acquire(owner, force_unlock)
        try:
            yield owner
        finally:
            holder = self.group_attributes(LOCK)
            if holder is not None and holder.get("token") == owner["token"]:
                self.delete(LOCK)
                if self.local and not self.children():  # a writer that stopped before writing leaves no folder
                    with suppress(OSError):  # (a link, a mount point, a parent it may not change: it stays)
                        Path(self.store.root).rmdir()

    def _acquire(self, owner: dict, force_unlock: bool) -> None:
        for _ in range(3):
            if self.write_group(LOCK, owner, only_if_absent=True):
                return
            holder = self.group_attributes(LOCK)
            if holder is None:
                continue  # released in between
            if not (force_unlock or owner_gone(holder)):
                raise WriterLockedError(
                    f"{self.location}: another process is writing this cube ({_describe(holder)}); wait for it to "
                    "finish, or, if that process died on another machine, re-run with --force-unlock")
            # only the one process that creates this marker breaks the stale lock; others just retry
            if self.write_group(f"{LOCK}/broken.{holder.get('token')}", {"breaker": owner["token"]},
                                only_if_absent=True):
                sync(self.store.delete(f"{LOCK}/zarr.json"))
        raise WriterLockedError(f"{self.location}: could not take the writer lock; another process keeps taking it")


@contextmanager
def plain_files_ignored() -> Iterator[None]:
    """Silence zarr's warning, while it lists a group's members (zarr and xarray writes into existing groups
    do), that the cube's plain files (:data:`FILES`) are no Zarr nodes: they are not meant to be."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", f"Object at ({'|'.join(map(re.escape, FILES))}) is not recognized",
                                UserWarning)
        yield


_CLOUD_VARIABLES = ("AWS_", "GOOGLE_", "AZURE_")
"""Prefixes of the environment variables that object stores read (credentials, endpoints, regions)."""


def _reopen(location: str, mode: str, storage_options: dict, environment: dict[str, str]) -> CubeStore:
    """A pickled :class:`CubeStore` in another process, with the object-store variables of the one that sent it."""
    os.environ.update(environment)
    return CubeStore(location, mode, storage_options)


def _read_ranges(path: Path, ranges: list[ByteRequest]) -> list[np.ndarray | None]:
    """Byte ranges of a local file, each read straight into a new array (None each if there is no file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return [None] * len(ranges)
    try:
        size, out = os.fstat(fd).st_size, []
        for request in ranges:
            start, end = ((max(size - request.suffix, 0), size) if isinstance(request, SuffixByteRequest)
                          else (request.start, request.end))
            data = np.empty(end - start, np.uint8)
            if os.preadv(fd, [data], start) != data.size:
                raise OSError(f"{path}: {end - start} bytes at {start} were asked, the file is {size} bytes")
            out.append(data)
        return out
    finally:
        os.close(fd)


def _read_tail(path: Path, n: int) -> tuple[np.ndarray, int] | None:
    """The last ``n`` bytes of a local file (fewer if it is shorter) and its size; None if there is no file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        size = os.fstat(fd).st_size
        data = np.empty(min(n, size), np.uint8)
        got = os.preadv(fd, [data], size - data.size)
        return data[:got], size
    finally:
        os.close(fd)


def _into(target: np.ndarray | None, result: np.ndarray) -> np.ndarray:
    if target is None:
        return result
    target[...] = result
    return target


def _plain_file(name: str) -> str:
    if name not in FILES:
        raise ValueError(f"invalid cube file {name!r}: a cube holds {', '.join(FILES)}")
    return name


def _describe(holder: dict | None) -> str:
    if holder is None:
        return "nobody"
    return (f"{holder.get('purpose', 'a writer')} by pid {holder.get('pid')} on host {holder.get('host')} since "
            f"{holder.get('since')}: {holder.get('command')!r}")


def as_store(cube: str | os.PathLike | CubeStore, mode: str = "r",
             storage_options: dict | None = None) -> CubeStore:
    """A :class:`CubeStore` for a path, URL or store (in ``mode``)."""
    if isinstance(cube, CubeStore):
        return cube.reopened(mode)
    return CubeStore(cube, mode, storage_options)


def open_cube(path: str | os.PathLike | CubeStore, *, chunks: dict | None | str = "patch",
              allow_incomplete: bool = False, storage_options: dict | None = None) -> xr.Dataset:
    """Open a cube written by :func:`cube.convert` as an :class:`xarray.Dataset`.

    Patches come in the original toolbox's sample order for split 'all' (ROI
    groups, then ROIs in table order, then patch numbers in natural order), also
    after ROIs were appended in another order. The attribute ``cloud_detectors``
    names the detectors of the cube's finished cloud pass, separated by spaces (``""``: none).

    Parameters
    ----------
    path : path, str or CubeStore
        The cube: a path, or a ``s3://``, ``gs://``, ``http(s)://``, ``file://``
        or ``memory://`` URL.
    chunks : "patch", "inner", dict or None
        ``"patch"`` (default): one dask chunk per patch (a stored shard: all its
        time steps) of the image and mask variables, one for each smaller variable;
        a computation reads only the images it selects. ``"inner"``: one dask chunk
        per stored image (one patch, one time step): 30 times more chunks, which
        dask pays for at every computation (0.4 s per image read at 15,600 patches,
        docs/scale-out.md). ``None``: no dask, lazy numpy-backed arrays. A dict:
        dask chunks by dimension, as for :meth:`xarray.Dataset.chunk`.
    allow_incomplete : bool
        Open a cube whose conversion has not finished (for inspection only).
    storage_options : dict, optional
        Object-store options (endpoint, region, credentials, ``anon``); by
        default the standard environment variables are used.

    Raises
    ------
    FileNotFoundError
        If there is no cube at ``path``.
    IncompleteCubeError
        If the conversion that writes it was interrupted or is still running.

    Examples
    --------
    >>> ds = open_cube("cube.zarr")  # doctest: +SKIP
    >>> ds.S2.sel(S2_band=["B4", "B3", "B2"]).isel(patch=0, time=5)  # doctest: +SKIP
    """
    store = as_store(path, storage_options=storage_options)
    try:
        ds = store.dataset(chunks=None, load_coordinates=True)  # labels are small: read them, all at once
    except Exception:
        checked_state(store, allow_incomplete)  # says why in one line where it can: no cube, an old or partial one
        raise
    state = checked_state(store, allow_incomplete, ds.attrs)
    ds.attrs["cloud_detectors"] = " ".join(state.cloud_detectors())  # a string: netCDF-safe
    for name in DESCRIPTIONS.keys() & ds.data_vars.keys():  # cubes written with older descriptions show today's
        ds[name].attrs.update(DESCRIPTIONS[name])
    order = sample_order(ds)
    if not np.array_equal(order, np.arange(ds.sizes["patch"])):
        ds = ds.isel(patch=order)  # lazy: composes with later selections, before any dask graph exists
    return ds if chunks is None else _chunked(ds, chunks)


def _chunked(ds: xr.Dataset, chunks: str | dict) -> xr.Dataset:
    """The data variables as dask arrays (see :func:`open_cube`'s ``chunks``)."""
    if isinstance(chunks, dict):
        return ds.chunk(chunks)
    if chunks not in ("patch", "inner"):
        raise ValueError(f"invalid chunks {chunks!r}: give 'patch', 'inner', None or a dict of dimension sizes")
    out = ds.copy()
    for name in ds.data_vars:
        variable = ds[name].variable  # (a DataArray's chunk would chunk its coordinates too)
        image = "y" in variable.dims and "patch" in variable.dims
        per = {"patch": 1, **({"time": 1} if chunks == "inner" and "time" in variable.dims else {})}
        out[name] = variable.chunk({d: per.get(d, -1) for d in variable.dims} if image else -1)
    return out


def finished_detectors(ds: xr.Dataset) -> tuple[str, ...]:
    """The detectors of the finished cloud pass of a cube opened by :func:`open_cube`."""
    return tuple(ds.attrs.get("cloud_detectors", "").split())


def checked_state(store: CubeStore, allow_incomplete: bool = False, attributes: dict | None = None) -> CubeState:
    """The state of a cube of this schema version; raises unless it is complete (or ``allow_incomplete``).

    ``attributes``: the root group's, where the caller has read them already.
    """
    attributes, state = attributes if attributes is not None else store.group_attributes(""), store.state()
    if attributes is None and state is None:
        tree = store.local and any(name.startswith("ROIs") for name in store.children())
        raise FileNotFoundError(f"{store.location}: no cube here (no zarr.json)" + (
            ": it holds a GeoTIFF tree; convert it first with `crts convert SRC CUBE`" if tree else
            "; make one with `crts convert SRC CUBE`"))
    if attributes is not None and attributes.get("schema_version") != SCHEMA_VERSION:
        found = attributes.get("schema_version")
        remedy = (f"bring it up to date in place with `crts upgrade {store.location}`" if found in UPGRADABLE else
                  "convert the source again into a new cube")
        raise FileNotFoundError(f"{store.location}: a cube of schema version {found}, not {SCHEMA_VERSION}; {remedy}")
    state = state or CubeState()
    if not state.complete and not allow_incomplete:
        holder = store.group_attributes(LOCK)
        if holder is not None and not owner_gone(holder):
            raise IncompleteCubeError(f"{store.location}: is being written ({_describe(holder)}); open it when "
                                      "that process has finished")
        raise IncompleteCubeError(f"{store.location}: the conversion writing this cube did not finish; "
                                  "re-run `crts convert SRC CUBE --resume` to complete it")
    return state


def sample_order(ds: xr.Dataset) -> np.ndarray:
    """Positions that sort the patches in the original's sample order.

    ROI groups in their order, ROIs (SEN12MS-CR: scenes) by number, which is the
    ROI table's order, then patch numbers in natural order.
    """
    natural = natsort_keygen()
    keys = [(GROUPS.index(str(g)), int(r), natural(str(p)))
            for g, r, p in zip(ds.roi_group.values, ds.roi.values, ds.patch_id.values, strict=True)]
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=int)


def stored_order(store: CubeStore) -> np.ndarray:
    """For each patch in sample order (as :func:`open_cube` gives them), its position in the store."""
    return sample_order(xr.Dataset({name: ("patch", store.array(name)[:]) for name in ("roi_group", "roi",
                                                                                        "patch_id")}))


def patch_bounds(ds: xr.Dataset) -> np.ndarray:
    """Bounds (left, bottom, right, top) of every patch in its CRS, shape (patch, 4)."""
    t, width, height = ds.transform.values, ds.sizes["x"], ds.sizes["y"]
    return np.stack([t[:, 2], t[:, 5] + t[:, 4] * height, t[:, 2] + t[:, 0] * width, t[:, 5]], axis=1)


def patch_labels(ds: xr.Dataset) -> list[PatchLabel]:
    """The label of every patch along the ``patch`` dimension, from the coordinates ``roi_group``, ``roi`` and
    ``patch_id`` (the inverse of :func:`patch_index`)."""
    return [PatchLabel(Roi(str(g), int(r)), int(p))
            for g, r, p in zip(ds.roi_group.values, ds.roi.values, ds.patch_id.values, strict=True)]


def patch_index(ds: xr.Dataset, roi: str | Roi, patch_id: int) -> int:
    """Position of a patch along the ``patch`` dimension, by ROI (``'ROIsXXXX/NN'`` or a :class:`Roi`) and
    patch number.

    Raises
    ------
    ValueError
        If ``roi`` is neither a :class:`Roi` nor a string such as ``'ROIs1868/17'``.
    KeyError
        If the cube holds no such patch.
    """
    if not isinstance(roi, str | Roi):
        raise ValueError(f"invalid ROI {roi!r}: give it as 'ROIsXXXX/NN', e.g. patch_index(ds, 'ROIs1868/17', 352)")
    roi = roi if isinstance(roi, Roi) else Roi.parse(roi, known=False)
    hits = np.flatnonzero((ds.roi_group.values == roi.group) & (ds.roi.values == roi.number)
                          & (ds.patch_id.values == patch_id))
    if len(hits) != 1:
        raise KeyError(f"patch {patch_id} of {roi} is not in the cube")
    return int(hits[0])


def georeferenced(ds: xr.Dataset, patch: int, variable: str = "S2", bands: list[str] | None = None) -> xr.DataArray:
    """One patch of a variable with x/y coordinates, CRS and transform set (rioxarray).

    The CRS and transform are a CF grid mapping: the coordinate ``spatial_ref``,
    named by the variable's ``grid_mapping`` (in its encoding), and x/y in metres
    with their CF ``standard_name``, so netCDF exports carry them (read them back
    with ``xr.open_dataset(path, decode_coords="all")``); :mod:`cube.analysis.export` writes
    files. ``patch`` is a position along the ``patch`` dimension (see :func:`patch_index`).
    An image variable's ``long_name`` becomes its band labels (the variable's own
    moves to ``description``), so ``rio.to_raster`` names the bands ``B1 ... B12``;
    choose bands with ``bands`` (a later ``.sel`` of bands leaves ``long_name``
    naming all of them, which ``rio.to_raster`` refuses).

    Examples
    --------
    >>> s2 = georeferenced(ds, patch_index(ds, "ROIs1868/17", 352))  # doctest: +SKIP
    >>> s2.rio.crs, s2.rio.bounds()  # doctest: +SKIP
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor; imported here: 1-2 s that opening a cube skips)
    from rasterio.transform import Affine

    one = ds[variable].isel(patch=patch)
    band = next((d for d in one.dims if d.endswith("_band")), None)
    if band:  # per-band names: rioxarray writes them as the GeoTIFF's band descriptions
        one = one.sel({band: list(bands)}) if bands is not None else one
        one = one.assign_attrs(description=one.attrs.get("long_name", ""),
                               long_name=tuple(str(b) for b in one[band].values))
    transform = Affine(*ds.transform.isel(patch=patch).values.tolist())
    cols, rows = np.arange(one.sizes["x"]) + 0.5, np.arange(one.sizes["y"]) + 0.5
    one = one.assign_coords(x=("x", transform.c + transform.a * cols), y=("y", transform.f + transform.e * rows))
    return (one.rio.write_crs(f"EPSG:{int(ds.epsg.isel(patch=patch))}")
            .rio.write_transform(transform).rio.write_coordinate_system())
