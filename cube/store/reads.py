"""Reads of many images and byte ranges of a cube at once: :meth:`cube.store.store.CubeStore.read`.

:func:`read` reads basic selections of the cube's arrays together: images of its sharded arrays straight from
their bytes (:mod:`cube.store.chunks`, whose :func:`cube.store.chunks.read_chunks` takes :func:`get_tails` and
:func:`get_ranges` for the I/O), the rest through zarr, concurrently. A damaged shard's error is named with the
cube's location and the labels of the patches it holds (:func:`named`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import zarr
import zarr.api.asynchronous
from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.buffer import default_buffer_prototype

from ..dataset.rois import PatchLabel, Roi
from . import chunks
from .backends import CubeLocalStore, PatientObjectStore, read_ranges, read_tail, storage_requests, sync


class ReadStore(Protocol):
    """What the reads need of a cube's store (:class:`cube.store.store.CubeStore` has it): its location, whether
    it is local, zarr's store under it (``store``), the arrays opened so far (``layouts``) and these methods."""

    location: str
    local: bool
    layouts: dict[str, tuple[zarr.AsyncArray, chunks.Layout | None]]

    @property
    def store(self) -> CubeLocalStore | PatientObjectStore:
        """zarr's store of the cube."""

    def folder(self) -> Path:
        """The folder of a local cube."""

    def values(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The values of an array from ``start`` to ``stop`` along its first axis."""

    def parsed_by_zarr(self, path: str = "") -> AbstractContextManager[None]:
        """Metadata errors that zarr meets inside, named."""


def get_ranges(
    store: ReadStore, requests: Mapping[str, Sequence[RangeByteRequest | SuffixByteRequest]]
) -> dict[str, list[np.ndarray | None]]:
    """Byte ranges of objects of the cube, by key, as uint8 arrays (each None if its object is absent).

    On a local disk they are read at once in this thread (a thread or event-loop hop
    per range costs more than reading a chunk); on object storage all at once,
    concurrently, nearby ranges of an object merged (zarr's ObjectStore over obstore's ``get_ranges``).
    """
    if store.local:
        return {key: read_ranges(store.folder() / key, ranges) for key, ranges in requests.items()}

    async def ranges_of(key: str, ranges: Sequence[RangeByteRequest | SuffixByteRequest]) -> list:
        try:
            return await store.store.get_partial_values(default_buffer_prototype(), [(key, r) for r in ranges])
        except FileNotFoundError:  # a shard never written (as on the disk)
            return [None] * len(ranges)

    async def gather() -> list:
        return await asyncio.gather(*(ranges_of(key, ranges) for key, ranges in requests.items()))

    answers = sync(gather())
    return {
        key: [None if a is None else a.as_numpy_array() for a in found]
        for key, found in zip(requests, answers, strict=True)
    }


def get_tails(store: ReadStore, requests: dict[str, int]) -> dict[str, tuple[np.ndarray, int] | None]:
    """The last ``n`` bytes (fewer if the object is shorter; uint8) and the size of objects of the cube, by key
    (None where absent): one read each, at once (on object storage a suffix request, whose answer gives the
    size)."""
    if isinstance(store.store, CubeLocalStore):
        return {key: read_tail(store.store.root / key, n) for key, n in requests.items()}
    import obstore

    objects = store.store.store

    async def tail_of(key: str, n: int) -> tuple[np.ndarray, int] | None:
        try:
            result = await obstore.get_async(objects, key, options={"range": {"suffix": n}})
            return np.frombuffer(memoryview(await result.bytes_async()), np.uint8), int(result.meta["size"])
        except FileNotFoundError:  # a shard never written (as on the disk)
            return None

    async def gather() -> list:
        return await asyncio.gather(*(tail_of(key, n) for key, n in requests.items()))

    with storage_requests(store.location):
        return dict(zip(requests, sync(gather()), strict=True))


def named(
    store: ReadStore,
    err: chunks.DamagedShardError,
    labels: list[PatchLabel] | dict[int, PatchLabel] | None = None,
) -> chunks.DamagedShardError:
    """A damaged shard's error with the cube's location and the labels of the patches it holds (``labels``:
    by store position, where the caller has them; else those of the shard's patches are read)."""
    if labels is None and err.patches:
        labels = dict(
            zip(
                err.patches,
                labels_of(
                    *(
                        store.values(name, err.patches.start, err.patches.stop)
                        for name in ("roi_group", "roi", "patch_id")
                    )
                ),
                strict=True,
            )
        )
    held = () if labels is None else tuple(labels[p] for p in err.patches)  # None: no patches known
    where = f"{store.location.rstrip('/')}/{err.path}" + (f" ({', '.join(map(str, held))})" if held else "")
    return chunks.DamagedShardError(where, err.message, err.patches, held)


def read(
    store: ReadStore, requests: list[tuple[str, tuple]], out: Sequence[np.ndarray | None] | None = None
) -> list[np.ndarray]:
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
    opened = layouts(store, [name for name, _ in requests])
    targets = out or [None] * len(requests)
    for (name, _), target in zip(requests, targets, strict=True):
        stored = opened[name][0].dtype
        if target is not None and target.dtype != stored:
            raise ValueError(f"{name}: cannot read {stored} images into a {target.dtype} array")
    plans = [None if (where := opened[name][1]) is None else chunks.plan(where, sel) for name, sel in requests]

    async def zarr_reads() -> list[np.ndarray]:
        found = await asyncio.gather(
            *(opened[name][0].getitem(sel) for (name, sel), p in zip(requests, plans, strict=True) if not p)
        )
        # zarr types a read as any array-like or a scalar; with its default (CPU) buffers it is a NumPy array
        # where the selection keeps an axis, as every caller's does
        return cast(list[np.ndarray], found)

    try:
        with storage_requests(store.location), ThreadPoolExecutor(1) as pool:  # zarr's reads beside the direct ones
            pending = None if all(plans) else pool.submit(sync, zarr_reads())
            direct = iter(
                chunks.read_chunks(partial(get_tails, store), partial(get_ranges, store), [p for p in plans if p])
            )
            others = iter(pending.result() if pending else [])
        return [
            chunks.assemble(p, next(direct), target) if p else _into(target, next(others))
            for p, target in zip(plans, targets, strict=True)
        ]
    except chunks.DamagedShardError as err:
        raise named(store, err) from None


def layouts(store: ReadStore, names: Iterable[str]) -> dict[str, tuple[zarr.AsyncArray, chunks.Layout | None]]:
    """The cube's arrays ``names`` opened, with their layouts (:func:`cube.store.chunks.layout`), kept by the
    store (:attr:`cube.store.store.CubeStore.layouts`): those not opened before are opened all at once (one round
    trip on a bucket)."""
    new = sorted(set(names) - set(store.layouts))
    if new:

        async def open_arrays() -> list[zarr.AsyncArray]:
            return await asyncio.gather(
                *(
                    zarr.api.asynchronous.open_array(store=store.store, path=name, mode="r", zarr_format=3)
                    for name in new
                )
            )

        with storage_requests(store.location), store.parsed_by_zarr():
            store.layouts.update(
                {name: (array, chunks.layout(array)) for name, array in zip(new, sync(open_arrays()), strict=True)}
            )
    return store.layouts


def labels_of(roi_group: Iterable, roi: Iterable, patch_id: Iterable) -> list[PatchLabel]:
    """The labels of patches from their coordinates ``roi_group``, ``roi`` and ``patch_id`` (one item per patch
    each): :func:`named` labels a damaged shard's patches with it, :func:`cube.store.views.patch_labels` those of
    an opened cube."""
    return [PatchLabel(Roi(str(g), int(r)), int(p)) for g, r, p in zip(roi_group, roi, patch_id, strict=True)]


def _into(target: np.ndarray | None, result: np.ndarray) -> np.ndarray:
    if target is None:
        return result
    target[...] = result
    return target
