"""cube.store.backends: the store of each location, its bounded metadata, one-line storage errors and the direct
reads of local files. (Buckets themselves: tests/test_object_storage.py, tests/faults/test_bucket_faults.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.buffer import default_buffer_prototype

from cube.store import backends
from cube.store.backends import (
    CubeLocalStore,
    MetadataError,
    PatientObjectStore,
    StorageError,
    read_ranges,
    read_tail,
    storage_error,
    storage_requests,
    sync,
    zarr_store,
)


def test_each_location_gets_its_store(tmp_path: Path) -> None:
    assert isinstance(zarr_store(tmp_path / "cube.zarr", read_only=True), CubeLocalStore)
    assert zarr_store(f"file://{tmp_path}/cube.zarr", read_only=True).root == tmp_path / "cube.zarr"
    memory = zarr_store("memory://backends/cube", read_only=False)
    assert isinstance(memory, PatientObjectStore)
    assert zarr_store("memory://backends/cube/", read_only=True).store is memory.store  # one per URL and process


@pytest.mark.parametrize(
    "location, read_only, options, message",
    [
        (
            "ftp://host/cube.zarr",
            True,
            {},
            "^ftp://host/cube.zarr: unknown URL scheme 'ftp'; a cube is a path or a s3, "
            "gs, http, https, file, memory URL$",
        ),
        ("https://host/cube.zarr", False, {}, "^https://host/cube.zarr: HTTP is read-only; write the cube to a path"),
        (
            "s3://bucket/cube.zarr",
            True,
            {"max_retries": "many"},
            "^invalid storage option max_retries='many': give a whole number >= 0$",
        ),
    ],
)
def test_bad_locations_and_options_are_one_line(location: str, read_only: bool, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        zarr_store(location, read_only=read_only, storage_options=options)


def test_zarr_s_own_metadata_reads_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "zarr.json").write_bytes(b"{" + b" " * 1000 + b"}")
    (tmp_path / "c").write_bytes(b"x" * 2000)
    monkeypatch.setattr(backends, "METADATA_BYTES", 1000)
    store = CubeLocalStore(tmp_path, read_only=True)
    with pytest.raises(
        MetadataError,
        match=r"^zarr.json: 1002 bytes of metadata, more than a cube's can be \(1000, "
        r"METADATA_BYTES\)$",
    ):
        sync(store.get("zarr.json", prototype=default_buffer_prototype()))
    assert len(sync(store.get("c", prototype=default_buffer_prototype()))) == 2000  # data objects are not metadata


def test_only_the_object_store_client_s_errors_become_storage_errors() -> None:
    assert storage_error(ValueError("mine"), "s3://b/cube") is None
    assert storage_error(FileNotFoundError("no such file"), "s3://b/cube") is None  # a missing local folder
    missing = storage_error(FileNotFoundError("Generic S3 error: Error performing GET"), "s3://b/cube")
    assert isinstance(missing, StorageError) and str(missing) == "s3://b/cube: not found (does the bucket exist?)"
    with pytest.raises(StorageError, match=r"^s3://b/cube: not found"), storage_requests("s3://b/cube"):
        raise FileNotFoundError("Error performing GET http://127.0.0.1/b/cube/zarr.json")
    with pytest.raises(KeyError), storage_requests("s3://b/cube"):
        raise KeyError("passes")


def test_local_ranges_and_tails_are_read_straight_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shard"
    path.write_bytes(bytes(range(100)))
    first, last = read_ranges(path, [RangeByteRequest(10, 14), SuffixByteRequest(3)])
    np.testing.assert_array_equal(first, [10, 11, 12, 13])
    np.testing.assert_array_equal(last, [97, 98, 99])
    with pytest.raises(OSError, match=f"^{path}: 20 bytes at 90 were asked, the file is 100 bytes$"):
        read_ranges(path, [RangeByteRequest(90, 110)])
    tail, size = read_tail(path, 1000)
    assert size == 100 and tail.tobytes() == bytes(range(100))
    assert read_ranges(tmp_path / "none", [SuffixByteRequest(3)] * 2) == [None, None]
    assert read_tail(tmp_path / "none" / "deeper", 8) is None


def test_an_object_in_parts_is_written_whole_on_a_disk_and_in_memory(tmp_path: Path) -> None:
    parts = [b"chunk one ", b"", b"chunk two " * 1000, b"index"]
    for store in (zarr_store(tmp_path / "cube.zarr", read_only=False), zarr_store("memory://parts/c", False)):
        sync(store.set_parts("S2/c/0/0", parts))
        stored = sync(store.get("S2/c/0/0", prototype=default_buffer_prototype()))
        assert stored is not None and stored.to_bytes() == b"".join(parts)
    assert [p.name for p in (tmp_path / "cube.zarr" / "S2" / "c" / "0").iterdir()] == ["0"]  # no .partial left


def test_a_failed_write_in_parts_leaves_the_old_object_and_no_partial_file(tmp_path: Path) -> None:
    store = zarr_store(tmp_path, read_only=False)
    sync(store.set_parts("shard", [b"old"]))
    with pytest.raises(TypeError):
        sync(store.set_parts("shard", [b"new, until", "not bytes"]))  # type: ignore[list-item]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard"]
    assert (tmp_path / "shard").read_bytes() == b"old"
    with pytest.raises(ValueError, match="read-only"):
        sync(zarr_store(tmp_path, read_only=True).set_parts("shard", [b"new"]))
