"""Direct reads of the cube's shards (cube.store.chunks via CubeStore.read) give exactly what zarr reads: whole images,
windows, masks, gaps, several tiles, into given arrays, and from a bucket."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from cube import convert
from cube.store import chunks
from cube.store.store import CubeStore
from cube.synth import make_dataset
from tests.helpers import chunks_per_shard, damage_cases, damaged_copy, label_of

NAMES = ("S2", "S1", "s2cloudless_mask", "cloud_cloudshadow_mask")
REMOVED = ("ROIs1868/17/S2/2", "ROIs2017/63/S1/4")
"""Folders (ROI, modality, time step) of the 64 px tree whose first file is removed: a gap in each modality."""


def _selections(image: int) -> list[tuple]:
    """Whole images, windows (across tiles and flush with the edges), single bands, negative indexes, time ranges."""
    return [
        (0, 0),
        (1, 2),
        (3, 5),
        (2, -1),
        (-1, 3, slice(None), slice(7, 39), slice(30, image)),
        (0, 4, slice(None), slice(0, 16), slice(0, 16)),
        (1, 0, 1),
        (2, slice(1, 4)),
        (0, slice(None)),
        (slice(None), 1),
    ]  # the last one spans shards: zarr reads it


def _image_selections(name: str, image: int) -> list[tuple]:
    """The selections for a mask (no band axis) keep their meaning: drop the band slice."""
    if name.startswith("S"):
        return _selections(image)
    return [sel[:2] + sel[3:] if len(sel) > 3 else sel[:2] for sel in _selections(image)]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 ROIs x 2 patches x 6 steps of 64 px, with one S2 and one S1 file missing."""
    root = make_dataset(
        tmp_path_factory.mktemp("chunks") / "src",
        ["ROIs1868/17", "ROIs2017/63"],
        patches_per_roi=2,
        size=64,
        times=6,
        seed=3,
        workers=1,
        progress=False,
    )
    for folder in REMOVED:
        min((root / folder).glob("*.tif")).unlink()
    return root


@pytest.fixture(scope="module", params=[64, 32])
def cube(tree: Path, request: pytest.FixtureRequest) -> Path:
    """The tree converted with one inner chunk per image (64 px) and with 4 per image (32 px), gaps skipped."""
    dst = tree.parent / f"cube{request.param}.zarr"
    if not dst.exists():
        convert(tree, dst, workers=1, on_error="skip", tile=request.param, progress=False)
    return dst


def _zarr_reads(cube: Path | str, name: str, selections: list[tuple], **options: object) -> list[np.ndarray]:
    array = zarr.open_array(CubeStore(cube, **options).store, path=name, mode="r")
    return [np.asarray(array[sel]) for sel in selections]


@pytest.mark.parametrize("name", NAMES)
def test_direct_reads_equal_zarr_reads(cube: Path, name: str) -> None:
    store = CubeStore(cube)
    image = store.array(name).shape[-1]
    selections = _image_selections(name, image)
    assert chunks.layout(zarr.open_array(store.store, path=name, mode="r")._async_array) is not None  # direct path
    got = store.read([(name, sel) for sel in selections])
    for sel, ours, theirs in zip(selections, got, _zarr_reads(cube, name, selections), strict=True):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, sel
        np.testing.assert_array_equal(ours, theirs, err_msg=str(sel))


def test_gaps_read_as_the_fill_value(cube: Path) -> None:
    store = CubeStore(cube)
    gaps = np.argwhere(~store.array("valid")[:])  # (patch, time step, modality: S1, S2)
    assert sorted(modality for _, _, modality in gaps) == [0, 1]
    for p, t, modality in gaps:
        image, present = store.read([(("S1", "S2")[modality], (int(p), int(t))), ("S2", (int(p), int(t) - 1))])
        assert (np.isnan(image) if modality == 0 else image == 0).all() and (present != 0).any()


def test_reads_into_given_arrays_of_a_stack(cube: Path) -> None:
    store, steps = CubeStore(cube), [4, 0, 5]
    area = (slice(3, 40), slice(20, 64))
    s2 = np.empty((3, 13, 37, 44), np.uint16)
    images = np.zeros((3, 15, 37, 44), np.float32)
    returned = store.read(
        [("S2", (1, t, slice(None), *area)) for t in steps] + [("S1", (1, t, slice(None), *area)) for t in steps],
        [*s2, *images[:, 13:]],
    )
    assert all(r.base is not None for r in returned)  # the given arrays (views of the stacks)
    np.testing.assert_array_equal(s2, np.stack(_zarr_reads(cube, "S2", [(1, t, slice(None), *area) for t in steps])))
    np.testing.assert_array_equal(
        images[:, 13:], np.stack(_zarr_reads(cube, "S1", [(1, t, slice(None), *area) for t in steps]))
    )
    assert (images[:, :13] == 0).all()


def test_a_given_array_of_another_type_is_refused(cube: Path) -> None:
    with pytest.raises(ValueError, match="S1: cannot read float32 images into a uint16 array"):
        CubeStore(cube).read([("S1", (0, 0))], [np.empty((2, 64, 64), np.uint16)])


@pytest.mark.faults
@pytest.mark.parametrize(
    "case",
    [
        "past the end",
        "1 TiB long",
        "too short",
        "one byte short",
        "half missing",
        "bad crc",
        "truncated index",
        "cut before its index",
    ],
)
def test_a_damaged_shard_is_named_with_its_patch(cube: Path, tmp_path: Path, case: str) -> None:
    array = zarr.open_array(CubeStore(cube).store, path="S2", mode="r")
    chunk_bytes = int(np.prod(array.metadata.codecs[0].chunk_shape)) * array.dtype.itemsize
    edit, message = damage_cases(chunks_per_shard(cube, "S2"), chunk_bytes)[case]
    key = "S2/c/2/0/0/0/0"
    copy, numbers = damaged_copy(cube, tmp_path, key, edit)
    with pytest.raises(chunks.DamagedShardError) as err:
        CubeStore(copy).read([("S2", (2, t)) for t in range(array.shape[1])])
    assert str(err.value) == f"{copy}/{key} ({label_of(cube, 2)}): " + message.format(**numbers)
    assert err.value.patches == range(2, 3)
    assert CubeStore(copy).read([("S2", (1, 0))])[0].shape == array.shape[2:]  # the other shards still read


@pytest.mark.slow
def test_reads_from_a_bucket_equal_zarr_reads_of_the_local_cube(tree: Path) -> None:
    from tests.servers import create_bucket, s3_server

    local = tree.parent / "cube32.zarr"
    if not local.exists():
        convert(tree, local, workers=1, on_error="skip", tile=32, progress=False)
    with s3_server():
        url = f"{create_bucket('direct-reads')}/cube.zarr"
        convert(tree, url, workers=1, on_error="skip", tile=32, progress=False)
        for name in NAMES:
            selections = _image_selections(name, 64)
            got = CubeStore(url).read([(name, sel) for sel in selections])
            for sel, ours, theirs in zip(selections, got, _zarr_reads(local, name, selections), strict=True):
                np.testing.assert_array_equal(ours, theirs, err_msg=f"{name} {sel}")
