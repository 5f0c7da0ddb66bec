"""Images of the cube's sharded arrays read straight from their bytes: the loader's hot path.

zarr-python 3.1 reads a shard's index again for every inner chunk it reads and spends
about 2 ms of Python per chunk (benchmarks/bench_loader.py compares the two). zarr 3.3 and
later coalesce the byte ranges of a read within a shard, but on Python 3.13 with zarr 3.4.2
the loaders' selections through ``AsyncArray.getitem`` (one sample's gathered) still took
1.3 to 6.9x as long as this reader on a local disk (4 steps as whole images or 64 px windows,
a patch's 30 steps; 256 and 64 px tiles) and 1.1 to 1.8x in a bucket with 20 ms per request
(benchmarks/bench_shard_reads.py, two runs on a loaded 2-core machine), so it reads them all.

For a basic selection that lies in one shard of an array stored the way the cube stores its
images (sharding; inner chunks of bytes + Blosc; an index of bytes + crc32c at the shard's end),
:func:`plan` lists the inner chunks it touches, :func:`read_chunks` reads each touched
shard's index once and then all the touched chunks (two round trips on a bucket, whatever
the number of images), and :func:`assemble` decodes them with Blosc, straight into the
output where a chunk lies wholly inside it. :meth:`cube.store.store.CubeStore.read` uses it and
leaves every other array and selection to zarr; tests/cube/store/test_chunks.py checks that both
give the same arrays.

Every shard's index is checked before anything is read or allocated from it (:func:`checked_index`):
its size, its crc32c, and every entry against the object's size and the most a chunk can take
(:func:`longest_chunk`); every chunk's Blosc header against its length and its image's size
before it is decoded. A shard that fails is a :class:`DamagedShardError` naming its key.

Writes go the other way: :func:`writable` accepts the arrays whose whole shards :func:`encode_shard` encodes into
exactly the bytes zarr writes (tests/cube/store/test_chunks.py compares them), so that
:meth:`cube.store.store.CubeStore.write_shard` puts each shard in one write, without zarr's codec pipeline.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import zarr
import zarr.core.indexing
from numcodecs import Blosc
from numcodecs.checksum32 import CRC32C
from zarr.abc.store import RangeByteRequest
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec
from zarr.core.buffer.cpu import NDBuffer

from ..dataset.problems import FileProblem

_BLOSC, _CRC32C = Blosc(), CRC32C()
GetRanges = Callable[[dict[str, list[RangeByteRequest]]], dict[str, list[np.ndarray | None]]]
"""Reads byte ranges of objects of the store, by key (None each where an object is absent)."""
GetTails = Callable[[dict[str, int]], dict[str, tuple[np.ndarray, int] | None]]
"""Reads the last ``n`` bytes of objects of the store and their sizes, by key (None where an object is absent)."""
BLOSC_HEADER = 16
"""Bytes of a Blosc frame's header, and the most it adds to what it holds (c-blosc's ``BLOSC_MAX_OVERHEAD``):
no stored chunk is shorter than this, nor longer than its image's bytes plus this."""
_MISSING = 2**64 - 1
"""Offset and length of an inner chunk that was never written (it reads as the fill value)."""
SHARD_THREADS = 2
"""Threads that compress the inner chunks of one shard. Blosc releases the GIL while it compresses (numcodecs'
one-thread context, the one zarr uses from its worker threads): the 30 S2 images of a patch took 63 ms in 2 threads
against 91 ms in one on the 2-core machine. A dask worker runs one task per core, so more would only contend."""
_SHUFFLES = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}


def _name(setting: object) -> str:
    """The name of a setting of zarr's Blosc, bytes or sharding codec: an enum member in zarr 3.1, a string in zarr
    3.4."""
    return str(getattr(setting, "value", setting))


class DamagedShardError(FileProblem):
    """A shard whose index or chunks cannot be what zarr wrote: its key (with the cube's location and the patches
    it holds where :meth:`cube.store.store.CubeStore.read` knows them) and what is wrong, in one line."""

    def __init__(self, path: object, message: str, patches: range = range(0), labels: tuple = ()) -> None:
        super().__init__(path, message)
        self.patches, self.labels = patches, labels
        """Positions along the ``patch`` axis (in the store's order) that the shard holds (empty: not known), and
        their labels (:class:`cube.dataset.rois.PatchLabel`, where known)."""

    def __reduce__(self) -> tuple:
        return type(self), (self.path, self.message, self.patches, self.labels)


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

    @property
    def chunk_bytes(self) -> int:
        """Bytes of one decoded inner chunk."""
        return math.prod(self.chunk) * self.array.dtype.itemsize

    def patches(self, shard: tuple[int, ...]) -> range:
        """Positions along the array's ``patch`` axis that a shard holds (empty if its first axis is another)."""
        if (self.array.metadata.dimension_names or (None,))[0] != "patch":
            return range(0)
        return range(shard[0] * self.shard[0], min((shard[0] + 1) * self.shard[0], self.array.shape[0]))

    def key(self, shard: tuple[int, ...]) -> str:
        """The store key of the shard at grid position ``shard``."""
        return f"{self.array.path}/{self.array.metadata.encode_chunk_key(shard)}".lstrip("/")

    def damaged(self, key: str, message: str) -> DamagedShardError:
        """The error of the shard stored at ``key``."""
        shard = tuple(int(n) for n in key.rsplit("/c/", 1)[-1].split("/")) if "/c/" in key else ()
        return DamagedShardError(key, f"damaged shard: {message}", self.patches(shard) if shard else range(0))


def layout(array: zarr.AsyncArray) -> Layout | None:
    """The layout of an array whose images :func:`plan` can read, or None (zarr reads it)."""
    if array.metadata.zarr_format != 3:  # Zarr v2 has no sharding
        return None
    codecs = array.metadata.codecs
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec) or array.dtype.newbyteorder("<") != array.dtype:
        return None
    sharding = codecs[0]
    inner, index = sharding.codecs, sharding.index_codecs
    where = _name(sharding.index_location)
    if not (
        len(inner) == 2
        and isinstance(inner[0], BytesCodec)
        and isinstance(inner[1], BloscCodec)
        and len(index) == 2
        and isinstance(index[0], BytesCodec)
        and isinstance(index[1], Crc32cCodec)
        and where == "end"
    ):
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
    axes = [
        _axis(start - s * size, stop - s * size, chunk, int(stride))
        for (start, stop, _), s, size, chunk, stride in zip(
            bounds, shard, where.shard, where.chunk, strides, strict=True
        )
    ]
    pieces = [
        Piece(
            sum(part[0] for part in parts),
            tuple(part[1] for part in parts),
            tuple(part[2] for part in parts),
            all(part[3] for part in parts),
        )
        for parts in itertools.product(*axes)
    ]
    full_shape = tuple(stop - start for start, stop, _ in bounds)
    return Plan(
        where,
        where.key(tuple(shard)),
        pieces,
        full_shape,
        tuple(n for n, (_, _, single) in zip(full_shape, bounds, strict=True) if not single),
    )


def _axis(start: int, stop: int, chunk: int, stride: int) -> list[tuple[int, slice, slice, bool]]:
    """Along one axis (positions within the shard): per touched chunk its index offset, the part of it taken,
    where that part goes, and whether the part is the whole chunk."""
    parts = []
    for k in range(start // chunk, (stop - 1) // chunk + 1):
        low, high = max(start, k * chunk), min(stop, (k + 1) * chunk)
        parts.append(
            (
                k * stride,
                slice(low - k * chunk, high - k * chunk),
                slice(low - start, high - start),
                high - low == chunk,
            )
        )
    return parts


def _bounds(shape: tuple[int, ...], selection: tuple) -> list[tuple[int, int, bool]] | None:
    """(start, stop, is an integer) per axis of a basic selection, or None for anything else or out of bounds."""
    selection = selection if isinstance(selection, tuple) else (selection,)
    if len(selection) > len(shape):
        return None
    bounds = []
    for size, item in zip(shape, selection + (slice(None),) * (len(shape) - len(selection)), strict=True):
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


def read_chunks(get_tails: GetTails, get_ranges: GetRanges, plans: list[Plan]) -> list[list[np.ndarray | None]]:
    """The encoded chunks (bytes) of every plan (None: never written): the index of each shard once, checked, then
    the chunks of all shards at once; ``get_tails({key: n})`` reads the end of objects and their sizes
    (:func:`cube.store.reads.get_tails`), ``get_ranges({key: ranges})`` byte ranges of objects
    (:func:`cube.store.reads.get_ranges`).

    Raises
    ------
    DamagedShardError
        For the first shard whose index fails :func:`checked_index`.
    """
    if not plans:
        return []
    shards = {plan.key: plan.layout for plan in plans}
    tails = get_tails({key: where.index_bytes for key, where in shards.items()})
    indexes = {
        key: None if (tail := tails[key]) is None else checked_index(where, key, *tail) for key, where in shards.items()
    }
    spans: dict[str, list[RangeByteRequest | None]] = {key: [] for key in shards}
    for plan in plans:
        spans[plan.key] += [_range(indexes[plan.key], piece.chunk) for piece in plan.pieces]
    found = get_ranges({key: [span for span in wanted if span is not None] for key, wanted in spans.items()})
    data = {key: iter(found[key]) for key in shards}  # a chunk never written (span None) reads as None
    unread = {key: iter(wanted) for key, wanted in spans.items()}
    return [[None if next(unread[plan.key]) is None else next(data[plan.key]) for _ in plan.pieces] for plan in plans]


def longest_chunk(where: Layout) -> int:
    """The most bytes an inner chunk of ``where`` can be stored in: its image's bytes in a Blosc frame."""
    return where.chunk_bytes + BLOSC_HEADER


def checked_index(where: Layout, key: str, raw: np.ndarray, size: int) -> np.ndarray:
    """A shard's index (offset, length per inner chunk; :data:`_MISSING` twice: never written), checked.

    Parameters
    ----------
    where : Layout
        The array's layout.
    key : str
        The shard's key, for messages.
    raw : numpy.ndarray
        The object's last ``where.index_bytes`` bytes (fewer if it is shorter), as uint8.
    size : int
        The object's size in bytes.

    Raises
    ------
    DamagedShardError
        If the object is shorter than an index, the index fails its crc32c, or an entry is not a chunk that
        lies in the data before the index and fits :func:`longest_chunk`.
    """
    if size < where.index_bytes or raw.size != where.index_bytes:
        raise where.damaged(key, f"{size} bytes, shorter than its index ({where.index_bytes} bytes): truncated")
    try:
        index = np.frombuffer(_CRC32C.decode(raw), "<u8").reshape(-1, 2)
    except RuntimeError:
        raise where.damaged(key, "its index fails its crc32c checksum") from None
    missing = index == _MISSING
    end, longest = size - where.index_bytes, longest_chunk(where)
    offsets, lengths = index[:, 0], index[:, 1]
    bad = (missing[:, 0] != missing[:, 1]) | ~missing[:, 0] & (
        (lengths < BLOSC_HEADER)
        | (lengths > longest)
        | (offsets > end)
        | (offsets + np.minimum(lengths, longest) > end)
    )
    if bad.any():
        chunk = int(np.flatnonzero(bad)[0])
        start, length = int(offsets[chunk]), int(lengths[chunk])
        raise where.damaged(
            key,
            f"its index gives chunk {chunk} {length} bytes at byte {start}; a chunk takes "
            f"{BLOSC_HEADER} to {longest} bytes within the {end} bytes before the index",
        )
    return index


def _range(index: np.ndarray | None, chunk: int) -> RangeByteRequest | None:
    if index is None or index[chunk, 0] == _MISSING:
        return None
    start = int(index[chunk, 0])
    return RangeByteRequest(start, start + int(index[chunk, 1]))


def assemble(plan: Plan, chunks: list[np.ndarray | None], out: np.ndarray | None = None) -> np.ndarray:
    """Decode a plan's chunks into ``out`` (a new array by default; else C-contiguous, of the plan's shape)."""
    array = plan.layout.array
    out = np.empty(plan.shape, array.dtype) if out is None else out
    full = np.ndarray(plan.full_shape, out.dtype, buffer=out)  # a view (raises rather than copy): writes land in out
    scratch = None
    for piece, data in zip(plan.pieces, chunks, strict=True):
        target = full[piece.target]
        if data is None:
            target[...] = array.metadata.fill_value
        elif piece.whole and target.flags.c_contiguous:
            decode(plan, piece.chunk, data, target)
        else:
            scratch = np.empty(plan.layout.chunk, array.dtype) if scratch is None else scratch
            decode(plan, piece.chunk, data, scratch)
            target[...] = scratch[piece.source]
    return out


def decode(plan: Plan, chunk: int, data: np.ndarray, out: np.ndarray) -> None:
    """Decode one stored inner chunk into ``out`` (C-contiguous, one chunk's bytes), its Blosc header checked
    first: the sizes it gives must be the chunk's length and its image's bytes.

    Raises
    ------
    DamagedShardError
        If the header or the frame is damaged.
    """
    header = np.frombuffer(data[:BLOSC_HEADER].tobytes(), "<u4", 3, 4) if data.size >= BLOSC_HEADER else None
    if header is None or header[0] != plan.layout.chunk_bytes or header[2] != data.size:
        raise plan.layout.damaged(
            plan.key,
            f"chunk {chunk} ({data.size} bytes) is no Blosc frame of an image of {plan.layout.chunk_bytes} bytes",
        )
    try:
        _BLOSC.decode(data, out=out)
    except (RuntimeError, ValueError) as err:
        raise plan.layout.damaged(plan.key, f"chunk {chunk} does not decode ({err})") from None


morton_order: Callable[[tuple[int, ...]], Iterable[tuple[int, ...]]] = (
    getattr(zarr.core.indexing, "morton_order_coords", None) or zarr.core.indexing.morton_order_iter
)
"""The order in which zarr's sharding codec writes a shard's inner chunks (Morton order of their grid positions):
zarr's own function, ``morton_order_coords`` in zarr 3.4, ``morton_order_iter`` in 3.1."""


def writable(array: zarr.Array) -> Layout | None:
    """The layout of an array whose whole shards :func:`encode_shard` encodes exactly as zarr does, or None (zarr
    writes it): :func:`layout`'s, with both byte codecs little-endian (or none for 1-byte values), numbers in C
    order, and chunks that hold only the fill value left out (zarr's ``write_empty_chunks=False``)."""
    where = layout(array.async_array)
    if where is None or array.config.write_empty_chunks or array.config.order != "C" or array.dtype.kind not in "iuf":
        return None
    sharding = where.array.metadata.codecs[0]
    assert isinstance(sharding, ShardingCodec)  # as layout() found it
    if getattr(sharding, "subchunk_write_order", "morton") != "morton":  # zarr >= 3.4 can write other orders
        return None
    ordered = [codec.endian for codec in (*sharding.codecs, *sharding.index_codecs) if isinstance(codec, BytesCodec)]
    return where if all(endian is None or _name(endian) == "little" for endian in ordered) else None


def blosc_of(codec: BloscCodec) -> Blosc:
    """numcodecs' Blosc with exactly the settings of zarr's Blosc codec ``codec`` (as zarr builds it)."""
    return Blosc(
        cname=_name(codec.cname),
        clevel=codec.clevel,
        shuffle=_SHUFFLES[_name(codec.shuffle)],
        blocksize=codec.blocksize,
        typesize=codec.typesize,
    )


def fill_only(chunk: np.ndarray, fill: object) -> bool:
    """Whether zarr takes ``chunk`` for the fill value alone, and stores nothing for it (its ``all_equal``: NaN
    equals NaN, a fill value of 0.0 only +0.0); its first value is looked at first, where most chunks differ."""
    return all(NDBuffer.from_numpy_array(part).all_equal(fill) for part in (chunk.reshape(-1)[:1], chunk))


@functools.cache
def shard_pool(threads: int) -> ThreadPoolExecutor:
    """The ``threads`` threads that compress shards' chunks, started once per process (not once per shard)."""
    return ThreadPoolExecutor(max(1, threads), thread_name_prefix="cube-shard")


def encode_shard(where: Layout, data: np.ndarray, threads: int = SHARD_THREADS) -> list[bytes] | None:
    """The object zarr stores for a whole shard of :func:`writable` array ``where`` holding ``data``, as its parts
    in order (the object is their concatenation, which the caller writes without joining them on a local disk).

    Its inner chunks in zarr's order (Morton order of their grid positions), each compressed with the array's
    Blosc settings (:func:`blosc_of`) unless it holds only the fill value (then its index entry is :data:`_MISSING`
    twice), then the index (offset, length as little-endian uint64 per chunk, in C order) and its crc32c.

    Parameters
    ----------
    where : Layout
        The array's layout.
    data : numpy.ndarray
        The shard's values, of the shard's shape.
    threads : int
        Threads that compress the chunks (always pool threads: numcodecs compresses differently in the main
        thread, with Blosc's global context, than in others, where zarr calls it).

    Returns
    -------
    list of bytes or None
        The compressed chunks in the order stored, then the index; None where every chunk holds the fill value:
        zarr then stores no object.
    """
    if data.shape != where.shard:
        raise ValueError(f"a shard of {where.array.path} has shape {where.shard}, not {data.shape}")
    data = data.astype(where.array.dtype, copy=False)
    order = list(morton_order(where.chunks_per_shard))
    codec, fill = blosc_of(where.array.metadata.codecs[0].codecs[1]), where.array.metadata.fill_value

    def encoded(position: tuple[int, ...]) -> bytes | None:
        chunk = np.ascontiguousarray(
            data[tuple(slice(p * n, (p + 1) * n) for p, n in zip(position, where.chunk, strict=True))]
        )
        return None if fill_only(chunk, fill) else codec.encode(chunk)

    parts = list(shard_pool(threads).map(encoded, order))
    if all(part is None for part in parts):
        return None
    index = np.full((*where.chunks_per_shard, 2), _MISSING, "<u8")
    offset = 0
    for position, part in zip(order, parts, strict=True):
        if part is not None:
            index[position] = offset, len(part)
            offset += len(part)
    return [part for part in parts if part is not None] + [_CRC32C.encode(index).tobytes()]
