"""The backends of a cube's store: where its objects live and how they are read, retried and bounded.

A cube is a local folder (zarr's LocalStore) or a prefix in a bucket or behind an HTTP server (zarr's
ObjectStore over obstore); :func:`zarr_store` picks one by the location's scheme (:data:`SCHEMES`). On top of
zarr's stores this module adds what a cube needs of every backend:

- bounded metadata: every JSON metadata object is parsed within :data:`METADATA_BYTES` and
  :data:`METADATA_DEPTH` (:func:`parse_metadata`), and zarr's and xarray's own reads of ``zarr.json`` are
  refused above the size bound (:func:`bounded_metadata`), each with a one-line :class:`MetadataError`;
- retries: the object-store client retries as :data:`RETRY` says, writes and deletes included
  (:class:`PatientObjectStore`);
- one-line errors: a failed request of the object-store client becomes a :class:`StorageError`
  (:func:`storage_error`, :func:`storage_requests`);
- direct reads of byte ranges and tails of local files (:func:`read_ranges`, :func:`read_tail`).

:class:`cube.store.store.CubeStore` is the one user of these backends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from zarr.abc.store import ByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.buffer import cpu

# The one zarr internal the package uses, imported here only: zarr 3.1 to 3.4 offer no public way to wait, from
# synchronous code, for a store's coroutine on zarr's own event loop (cube.store's modules take it from here,
# hence the explicit re-export form).
from zarr.core.sync import sync as sync
from zarr.storage import LocalStore, ObjectStore

from ..dataset.problems import FileProblem

if TYPE_CHECKING:  # obstore's configuration types exist for type checkers only
    from obstore.store import ClientConfig, MemoryStore, RetryConfig
    from obstore.store import ObjectStore as ObstoreStore
    from zarr.abc.buffer import Buffer, BufferPrototype

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
        raise MetadataError(
            where, f"{len(data)} bytes of metadata, more than a cube's can be ({METADATA_BYTES}, METADATA_BYTES)"
        )
    deep = MetadataError(where, f"metadata nested more than {METADATA_DEPTH} deep (METADATA_DEPTH)")
    try:
        document = json.loads(data)
    except RecursionError:  # deeper than the parser's recursion: far deeper than METADATA_DEPTH
        raise deep from None
    except ValueError as err:  # undecodable bytes or JSON syntax
        raise MetadataError(where, f"not JSON ({str(err).splitlines()[0][:200]})") from None
    level = [document]  # the values at one depth, from the top
    for _ in range(METADATA_DEPTH):
        level = [
            item
            for value in level
            if isinstance(value, dict | list)
            for item in (value.values() if isinstance(value, dict) else value)
        ]
    if any(isinstance(value, dict | list) for value in level):  # a container inside METADATA_DEPTH others
        raise deep
    return document


class StorageError(RuntimeError):
    """The object store failed a request: a missing bucket, denied access, an unreachable server."""


_REASONS = {
    "NotFoundError": "not found (does the bucket exist?)",
    "PermissionDeniedError": "access denied (check the credentials)",
    "UnauthenticatedError": "not authenticated (check the credentials)",
}


def storage_error(err: Exception, location: str) -> StorageError | None:
    """A one-line :class:`StorageError` for an error of the object-store client, else None."""
    if not type(err).__module__.startswith("obstore") and not (
        isinstance(err, FileNotFoundError) and "Error performing" in str(err)
    ):
        return None
    kind = "NotFoundError" if isinstance(err, FileNotFoundError) else type(err).__name__
    first = (str(err).splitlines() or [kind])[0]
    return StorageError(f"{location}: {_REASONS.get(kind, first[:200])}")


@contextmanager
def storage_requests(location: str) -> Iterator[None]:
    """Errors of the object-store client inside as :class:`StorageError` (a missing local folder passes)."""
    try:
        yield
    except Exception as err:
        translated = storage_error(err, location)
        if translated is None:
            raise
        raise translated from None


SCHEMES = ("s3", "gs", "http", "https", "file", "memory")
"""URL schemes of a cube's location besides a plain path (``http(s)`` read-only)."""
_MEMORY: dict[str, MemoryStore] = {}
"""``memory://`` stores of this process, by URL (for tests and notebooks)."""


RETRY: RetryConfig = {
    "max_retries": 10,
    "retry_timeout": dt.timedelta(minutes=3),
    "backoff": {"init_backoff": dt.timedelta(milliseconds=100), "max_backoff": dt.timedelta(seconds=15), "base": 2},
}
"""How the object-store client retries a request that failed with a 5xx answer, a dropped or refused
connection or a read timeout: up to 10 times, within 3 minutes, waiting 0.1 s, 0.2 s, 0.4 s ... (at most
15 s, with jitter) in between. What still fails reaches the caller as :class:`StorageError` (one line).
The storage option ``max_retries`` sets the number of retries (0: none, to fail fast)."""


def _object_store(location: str, scheme: str, storage_options: dict) -> ObstoreStore:
    """An obstore store for a URL, retrying as :data:`RETRY` says; ``anon=True`` means unsigned requests."""
    from obstore.store import MemoryStore, from_url

    if scheme == "memory":
        return _MEMORY.setdefault(location.rstrip("/"), MemoryStore())
    options = dict(storage_options)
    if str(options.pop("anon", "false")).lower() in ("true", "1", "yes"):
        options["skip_signature"] = True
    # the user's values under ClientConfig's own keys: obstore checks their types when it builds the client
    client = cast(
        "ClientConfig", {k: options.pop(k) for k in ("allow_http", "timeout", "connect_timeout") if k in options}
    )
    if scheme == "http":
        client.setdefault("allow_http", True)  # the URL says so
    return from_url(location, client_options=client or None, retry_config=_retry_config(options), **options)


def _retry_config(options: dict) -> RetryConfig:
    """:data:`RETRY` with the ``max_retries`` of the storage options (taken out of them), if they give one."""
    given = options.pop("max_retries", RETRY["max_retries"])
    if not str(given).isdigit():
        raise ValueError(f"invalid storage option max_retries={given!r}: give a whole number >= 0")
    return {**RETRY, "max_retries": int(given)}


async def _again(request: Callable[[], Awaitable[None]]) -> None:
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


def bounded_metadata(key: str, buffer: Buffer | None) -> Buffer | None:
    """``buffer``, the object at ``key`` of a cube's store, unless it is a ``zarr.json`` above
    :data:`METADATA_BYTES`: the stores of this module read every object through it, so what zarr and xarray read
    themselves (consolidated metadata, arrays' and groups' documents) is bounded too.

    Raises
    ------
    MetadataError
        For a ``zarr.json`` above the bound (named by its key: the store knows no more).
    """
    if buffer is not None and key.rsplit("/", 1)[-1] == "zarr.json" and len(buffer) > METADATA_BYTES:
        raise MetadataError(
            key, f"{len(buffer)} bytes of metadata, more than a cube's can be ({METADATA_BYTES}, METADATA_BYTES)"
        )
    return buffer


class CubeLocalStore(LocalStore):
    """zarr's store of a local folder, its metadata bounded (:func:`bounded_metadata`)."""

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        return bounded_metadata(key, await super().get(key, prototype, byte_range))

    async def set_parts(self, key: str, parts: Sequence[bytes]) -> None:
        """Write the object ``key`` whose bytes are ``parts`` one after another, without joining them first (a
        shard's compressed chunks, :meth:`cube.store.store.CubeStore.write_shard`)."""
        if not self._is_open:  # as zarr's own writes do
            await self._open()
        self._check_writable()
        await asyncio.to_thread(write_whole, self.root / key, parts)


def write_whole(path: Path, parts: Sequence[bytes]) -> None:
    """Write ``parts`` one after another as the file ``path``, as zarr's LocalStore writes an object: into
    ``<name>.<uuid>.partial`` beside it, then renamed into place, so that a reader sees the old file or the new
    one, never a part; what a killed writer leaves has the name :mod:`cube.store.store` clears as a torn write
    (zarr's pattern: :func:`cube.store.outputs.replacing` names its temporary files otherwise, and it refuses
    targets inside a cube). The parts are not joined first: joining a patch's 37 MB of S2 chunks into one bytes object
    (fresh pages, faulted in and copied) and writing that took 1.0-3.3 CPU s for 24 such objects, writing the parts
    one after another 0.35-2.0 s (the same run, this machine's disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with partial.open("xb") as f:
            f.writelines(parts)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class PatientObjectStore(ObjectStore):
    """zarr's obstore-backed store, whose writes and deletes are retried after a dropped connection too, its
    metadata bounded (:func:`bounded_metadata`).

    obstore retries 5xx answers of every request, but a dropped connection only for
    reads: it does not know a PUT or DELETE to be safe to repeat. In a cube they are:
    an object is always written whole (a repeat writes the same bytes), a delete
    repeated deletes once, and a create-only write is read back by
    :meth:`cube.store.store.CubeStore.create`, which so tells whether a lost attempt was its own.
    """

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        return bounded_metadata(key, await super().get(key, prototype, byte_range))

    async def set(self, key: str, value: Buffer) -> None:
        await _again(lambda: super(PatientObjectStore, self).set(key, value))

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        await _again(lambda: super(PatientObjectStore, self).set_if_not_exists(key, value))

    async def set_parts(self, key: str, parts: Sequence[bytes]) -> None:
        """Write the object ``key`` whose bytes are ``parts`` one after another (one PUT of them joined)."""
        await self.set(key, cpu.Buffer.from_bytes(b"".join(parts)))

    async def delete(self, key: str) -> None:
        await _again(lambda: super(PatientObjectStore, self).delete(key))

    async def delete_dir(self, prefix: str) -> None:
        await _again(lambda: super(PatientObjectStore, self).delete_dir(prefix))


def zarr_store(
    location: str | os.PathLike, read_only: bool, storage_options: dict | None = None
) -> CubeLocalStore | PatientObjectStore:
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


CLOUD_VARIABLES = ("AWS_", "GOOGLE_", "AZURE_")
"""Prefixes of the environment variables that object stores read (credentials, endpoints, regions): a pickled
:class:`cube.store.store.CubeStore` of a bucket carries them to the process that opens it again."""


def read_ranges(path: Path, ranges: Sequence[RangeByteRequest | SuffixByteRequest]) -> list[np.ndarray | None]:
    """Byte ranges of a local file, each read straight into a new array (None each if there is no file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return [None] * len(ranges)
    try:
        size, out = os.fstat(fd).st_size, list[np.ndarray | None]()
        for request in ranges:
            start, end = (
                (max(size - request.suffix, 0), size)
                if isinstance(request, SuffixByteRequest)
                else (request.start, request.end)
            )
            data = np.empty(end - start, np.uint8)
            if os.preadv(fd, [data.data], start) != data.size:
                raise OSError(f"{path}: {end - start} bytes at {start} were asked, the file is {size} bytes")
            out.append(data)
        return out
    finally:
        os.close(fd)


def read_tail(path: Path, n: int) -> tuple[np.ndarray, int] | None:
    """The last ``n`` bytes of a local file (fewer if it is shorter) and its size; None if there is no file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        size = os.fstat(fd).st_size
        data = np.empty(min(n, size), np.uint8)
        got = os.preadv(fd, [data.data], size - data.size)
        return data[:got], size
    finally:
        os.close(fd)
