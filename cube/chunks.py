"""Images of the cube's sharded arrays read straight from their bytes: the loader's hot path.

zarr-python 3.1 reads a shard's index again for every inner chunk it reads and spends
about 2 ms of Python per chunk (benchmarks/bench_loader.py compares the two). For a basic
selection that lies in one shard of an array stored the way the cube stores its images
(sharding; inner chunks of bytes + Blosc; an index of bytes + crc32c at the shard's end),
:func:`plan` lists the inner chunks it touches, :func:`read_chunks` reads each touched
shard's index once and then all the touched chunks (two round trips on a bucket, whatever
the number of images), and :func:`assemble` decodes them with Blosc, straight into the
output where a chunk lies wholly inside it. :meth:`cube.store.CubeStore.read` uses it and
leaves every other array and selection to zarr; tests/cube/test_chunks.py checks that both
give the same arrays.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import zarr
from numcodecs import Blosc
from numcodecs.checksum32 import CRC32C
from zarr.abc.store import ByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec
from zarr.codecs.sharding import ShardingCodecIndexLocation

_BLOSC, _CRC32C = Blosc(), CRC32C()
GetRanges = Callable[[dict[str, list[ByteRequest]]], dict[str, list[np.ndarray | None]]]
"""Reads byte ranges of objects of the store, by key (None each where an object is absent)."""
_MISSING = 2**64 - 1
"""Offset and length of an inner chunk that was never written (it reads as the fill value)."""


@dataclass(frozen=True)
class Layout:
    """How an array's shards are stored (for arrays that :func:`layout` accepts)."""

    array: zarr.AsyncArray
    shard: tuple[int, ...]
    chunk: tuple[int, ...]

    @property
    def chunks_per_shard(self) -> tuple[int, ...]:
        return tuple(s // c for s, c in zip(self.shard, self.chunk, strict=True))

    @property
    def index_bytes(self) -> int:
        """Size of a shard's index: offset and length (2 x uint64) per inner chunk, then its crc32c."""
        return 16 * math.prod(self.chunks_per_shard) + 4


def layout(array: zarr.AsyncArray) -> Layout | None:
    """The layout of an array whose images :func:`plan` can read, or None (zarr reads it)."""
    codecs = getattr(array.metadata, "codecs", ())
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec) or array.dtype.newbyteorder("<") != array.dtype:
        return None
    sharding = codecs[0]
    inner, index = sharding.codecs, sharding.index_codecs
    if not (len(inner) == 2 and isinstance(inner[0], BytesCodec) and isinstance(inner[1], BloscCodec)
            and len(index) == 2 and isinstance(index[0], BytesCodec) and isinstance(index[1], Crc32cCodec)
            and sharding.index_location == ShardingCodecIndexLocation.end):
        return None
    return Layout(array, tuple(array.metadata.chunk_grid.chunk_shape), tuple(sharding.chunk_shape))


@dataclass(frozen=True)
class Piece:
    """One inner chunk of a read: its position in the shard's index, its part and where that goes."""

    chunk: int
    source: tuple[slice, ...]
    """The part of the decoded chunk that the selection takes."""
    target: tuple[slice, ...]
    """Where that part goes in the output (at full rank: integer selections keep a length-1 axis)."""
    whole: bool
    """The selection takes the whole chunk."""


@dataclass(frozen=True)
class Plan:
    """The inner chunks of one shard that a selection reads."""

    layout: Layout
    key: str
    pieces: list[Piece]
    full_shape: tuple[int, ...]
    shape: tuple[int, ...]
    """The result's shape (integer selections dropped, as numpy and zarr drop them)."""


def plan(where: Layout, selection: tuple) -> Plan | None:
    """The chunks a basic selection (integers and step-1 slices, in bounds) reads, if they lie in one shard."""
    bounds = _bounds(where.array.shape, selection)
    if bounds is None:
        return None
    shard = [start // size for (start, _, _), size in zip(bounds, where.shard, strict=True)]
    if any((stop - 1) // size != s for (_, stop, _), size, s in zip(bounds, where.shard, shard, strict=True)):
        return None
    strides = np.cumprod((1, *where.chunks_per_shard[:0:-1]))[::-1]  # of the index, in C order
    axes = [_axis(start - s * size, stop - s * size, chunk, int(stride))
            for (start, stop, _), s, size, chunk, stride in zip(bounds, shard, where.shard, where.chunk, strides,
                                                                 strict=True)]
    pieces = [Piece(sum(part[0] for part in parts), tuple(part[1] for part in parts),
                    tuple(part[2] for part in parts), all(part[3] for part in parts))
              for parts in itertools.product(*axes)]
    full_shape = tuple(stop - start for start, stop, _ in bounds)
    key = f"{where.array.path}/{where.array.metadata.encode_chunk_key(tuple(shard))}".lstrip("/")
    return Plan(where, key, pieces, full_shape,
                tuple(n for n, (_, _, single) in zip(full_shape, bounds, strict=True) if not single))


def _axis(start: int, stop: int, chunk: int, stride: int) -> list[tuple[int, slice, slice, bool]]:
    """Along one axis (positions within the shard): per touched chunk its index offset, the part of it taken,
    where that part goes, and whether the part is the whole chunk."""
    parts = []
    for k in range(start // chunk, (stop - 1) // chunk + 1):
        low, high = max(start, k * chunk), min(stop, (k + 1) * chunk)
        parts.append((k * stride, slice(low - k * chunk, high - k * chunk), slice(low - start, high - start),
                      high - low == chunk))
    return parts


def _bounds(shape: tuple[int, ...], selection: tuple) -> list[tuple[int, int, bool]] | None:
    """(start, stop, is an integer) per axis of a basic selection, or None for anything else or out of bounds."""
    selection = selection if isinstance(selection, tuple) else (selection,)
    if len(selection) > len(shape):
        return None
    bounds = []
    for size, item in itertools.zip_longest(shape, selection, fillvalue=slice(None)):
        if isinstance(item, int | np.integer):
            index = int(item) + (size if item < 0 else 0)
            if not 0 <= index < size:
                return None
            bounds.append((index, index + 1, True))
        elif isinstance(item, slice) and item.step in (None, 1):
            start, stop, _ = item.indices(size)
            if stop <= start:
                return None
            bounds.append((start, stop, False))
        else:
            return None
    return bounds


def read_chunks(get_ranges: GetRanges, plans: list[Plan]) -> list[list[np.ndarray | None]]:
    """The encoded chunks (bytes) of every plan (None: never written): the index of each shard once, then the
    chunks of all shards at once; ``get_ranges({key: ranges})`` reads byte ranges of objects
    (:meth:`cube.store.CubeStore.get_ranges`)."""
    if not plans:
        return []
    shards = {plan.key: plan.layout for plan in plans}
    answers = get_ranges({key: [SuffixByteRequest(where.index_bytes)] for key, where in shards.items()})
    indexes = {key: None if answers[key][0] is None else _index(answers[key][0], key) for key in shards}
    spans: dict[str, list[RangeByteRequest | None]] = {key: [] for key in shards}
    for plan in plans:
        spans[plan.key] += [_range(indexes[plan.key], piece.chunk) for piece in plan.pieces]
    found = get_ranges({key: [span for span in wanted if span is not None] for key, wanted in spans.items()})
    data = {key: iter(found[key]) for key in shards}  # a chunk never written (span None) reads as None
    spans = {key: iter(wanted) for key, wanted in spans.items()}
    return [[None if next(spans[plan.key]) is None else next(data[plan.key]) for _ in plan.pieces] for plan in plans]


def _index(raw: np.ndarray, key: str) -> np.ndarray:
    """A shard's index (offset, length per inner chunk), its checksum verified."""
    try:
        return np.frombuffer(_CRC32C.decode(raw), "<u8").reshape(-1, 2)
    except RuntimeError as err:
        raise RuntimeError(f"{key}: the shard's index is damaged ({err})") from None


def _range(index: np.ndarray | None, chunk: int) -> RangeByteRequest | None:
    if index is None or index[chunk, 0] == _MISSING:
        return None
    start = int(index[chunk, 0])
    return RangeByteRequest(start, start + int(index[chunk, 1]))


def assemble(plan: Plan, chunks: list[np.ndarray | None], out: np.ndarray | None = None) -> np.ndarray:
    """Decode a plan's chunks into ``out`` (a new array by default; else C-contiguous, of the plan's shape)."""
    array = plan.layout.array
    out = np.empty(plan.shape, array.dtype) if out is None else out
    full = out.view()
    full.shape = plan.full_shape  # a view (raises rather than copy): writes land in ``out``
    scratch = None
    for piece, data in zip(plan.pieces, chunks, strict=True):
        target = full[piece.target]
        if data is None:
            target[...] = array.metadata.fill_value
        elif piece.whole and target.flags.c_contiguous:
            _BLOSC.decode(data, out=target)
        else:
            scratch = np.empty(plan.layout.chunk, array.dtype) if scratch is None else scratch
            _BLOSC.decode(data, out=scratch)
            target[...] = scratch[piece.source]
    return out
