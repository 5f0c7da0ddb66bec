"""Fuzz target: a shard's index and bytes (cube.store.chunks). Generated index bytes and object sizes give an index
whose every entry lies in the data and fits a chunk, or one DamagedShardError naming the shard; mutated real
shards read through CubeStore.read give the images or that error, never another exception or a big allocation."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st
from numcodecs.checksum32 import CRC32C

from cube import convert
from cube.store import chunks
from cube.store.store import CubeStore
from cube.synth import make_dataset
from tests.helpers import mutated

pytestmark = pytest.mark.fuzz
FOLDER = Path(tempfile.mkdtemp(prefix="fuzz_shard_"))
atexit.register(shutil.rmtree, FOLDER, True)  # the inputs written for the parsers go with the process
KEY = "S2/c/0/0/0/0/0"


def _cube() -> Path:
    """1 ROI x 1 patch x 3 steps of 16 px, converted (made once per process)."""
    dst = FOLDER / "cube.zarr"
    if not dst.exists():
        root = make_dataset(
            FOLDER / "src", ["ROIs1868/17"], patches_per_roi=1, size=16, times=3, seed=1, workers=1, progress=False
        )
        convert(root, dst, workers=1, progress=False, clouds=())
    return dst


def _layout() -> chunks.Layout:
    return chunks.layout(zarr.open_array(CubeStore(_cube()).store, path="S2", mode="r").async_array)


entries = st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 4096), st.just(2**64 - 1))


@given(st.data())
def test_generated_indexes(data: st.DataObject) -> None:
    where = _layout()
    n = where.index_bytes // 16
    index = np.array(data.draw(st.lists(st.tuples(entries, entries), min_size=n, max_size=n)), np.uint64)
    raw = bytes(CRC32C().encode(index.astype("<u8").tobytes()))
    raw = data.draw(st.just(raw) | mutated(raw))
    size = data.draw(st.integers(0, 2**40) | st.integers(0, 8192))
    end = raw if size >= len(raw) else raw[len(raw) - size :]  # the object's last bytes: raw, or its end
    tail = np.frombuffer(end[max(0, len(end) - where.index_bytes) :], np.uint8)  # what get_tails reads
    try:
        got = chunks.checked_index(where, KEY, tail, size)
    except chunks.DamagedShardError as err:
        assert str(err).startswith(f"{KEY}: damaged shard: ") and "\n" not in str(err)
        return
    stored = got[got[:, 0] != 2**64 - 1]
    data_end = size - where.index_bytes
    assert (
        (stored[:, 1] >= chunks.BLOSC_HEADER)
        & (stored[:, 1] <= chunks.longest_chunk(where))
        & (stored[:, 0] + stored[:, 1] <= data_end)
    ).all()


@given(st.data())
def test_mutated_shards_read_or_are_named(data: st.DataObject) -> None:
    source = _cube()
    genuine = (source / KEY).read_bytes()
    copy = FOLDER / "damaged.zarr"
    if not copy.exists():
        shutil.copytree(source, copy)
    (copy / KEY).write_bytes(data.draw(mutated(genuine)))
    try:
        images = CubeStore(copy).read([("S2", (0, t)) for t in range(3)])
    except chunks.DamagedShardError as err:
        assert str(err).startswith(f"{copy}/{KEY} (ROIs1868/17 patch ") and "\n" not in str(err)
        return
    assert all(image.shape == (13, 16, 16) for image in images)
