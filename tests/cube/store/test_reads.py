"""cube.store.reads: byte ranges and tails of a cube's objects (None where absent), reads into given arrays of the
stored type only, damaged shards named with their patches' labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from zarr.abc.store import RangeByteRequest, SuffixByteRequest

from cube.dataset.rois import PatchLabel, Roi
from cube.store.chunks import DamagedShardError
from cube.store.reads import get_ranges, get_tails, labels_of, named, read
from cube.store.store import CubeStore


@pytest.mark.parametrize("location", ["local", "memory://reads/objects"])
def test_ranges_and_tails_of_objects_are_none_where_absent(tmp_path: Path, location: str) -> None:
    store = CubeStore(tmp_path / "cube.zarr" if location == "local" else location, "r+")
    store.write("a/b", bytes(range(10)))
    ranges = get_ranges(
        store, {"a/b": [RangeByteRequest(2, 5), SuffixByteRequest(3)], "a/none": [RangeByteRequest(0, 1)]}
    )
    assert [r.tolist() for r in ranges["a/b"] if r is not None] == [[2, 3, 4], [7, 8, 9]]
    assert ranges["a/none"] == [None]
    tails = get_tails(store, {"a/b": 4, "a/none": 4})
    assert tails["a/none"] is None
    data, size = tails["a/b"]
    assert data.tolist() == [6, 7, 8, 9] and size == 10


def test_a_read_into_an_array_of_another_type_is_refused(tiny_cube: Path) -> None:
    store = CubeStore(tiny_cube)
    image = read(store, [("S2", (0, 0))])[0]
    with pytest.raises(ValueError, match=r"^S2: cannot read uint16 images into a float32 array$"):
        read(store, [("S2", (0, 0))], [np.empty(image.shape, np.float32)])
    into = np.empty_like(image)
    assert read(store, [("S2", (0, 0))], [into])[0] is into
    np.testing.assert_array_equal(into, image)


def test_a_damaged_shard_is_named_with_the_labels_of_its_patches(tiny_cube: Path) -> None:
    store = CubeStore(tiny_cube)
    err = named(store, DamagedShardError("S2/c/0/0/0/0/0", "damaged shard: truncated", range(0, 2)))
    expected = labels_of(*(store.values(name, 0, 2) for name in ("roi_group", "roi", "patch_id")))
    assert err.labels == tuple(expected) and err.path.startswith(str(tiny_cube))
    assert str(err).endswith(f"({', '.join(map(str, expected))}): damaged shard: truncated")
    assert labels_of(["ROIs1868"], [17], [3]) == [PatchLabel(Roi("ROIs1868", 17), 3)]
