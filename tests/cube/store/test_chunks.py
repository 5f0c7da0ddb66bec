"""Direct reads of the cube's shards (cube.store.chunks via CubeStore.read) give exactly what zarr reads: whole images,
windows, masks, gaps, several tiles, into given arrays, and from a bucket.

The direct shard writer (chunks.encode_shard via CubeStore.write_shard) stores exactly the bytes zarr stores: 256 and
64 px tiles, uint16 and float32, chunks of fill values left out, on a local disk and in a bucket, and any shard
hypothesis makes (dtypes, fill values, tiles, chunks of fill values, -0.0 and NaN); arrays of any other layout go
through zarr; a converted cube is the same byte for byte with the writer on and off."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import given
from hypothesis import strategies as st
from zarr.buffer import default_buffer_prototype
from zarr.codecs import BloscCodec, ZstdCodec

from cube import convert, open_cube
from cube.store import chunks
from cube.store import store as store_module
from cube.store.backends import sync
from cube.store.schema import compressor
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


TIMES = 3


def _raw(store: CubeStore, key: str) -> bytes | None:
    found = sync(store.store.get(key, prototype=default_buffer_prototype()))
    return None if found is None else found.to_bytes()


def _array(
    store: CubeStore, name: str, dtype: str, bands: int, tile: int, fill: float, **options: object
) -> zarr.Array:
    """An image array as the cube makes it (``options`` override the sharding codec's or the array's settings)."""
    config, shape = options.pop("config", None), (1, TIMES, bands, 256, 256)
    shards = {"shape": shape, "index_location": options.pop("index_location", "end")}
    return zarr.create_array(
        store.store,
        name=name,
        shape=(3, TIMES, bands, 256, 256),
        chunks=(1, 1, bands, tile, tile),
        shards=None if options.pop("unsharded", False) else shards,
        dtype=dtype,
        fill_value=fill,
        compressors=options.pop("compressors", (compressor(np.dtype(dtype)),)),
        dimension_names=("patch", "time", "band", "y", "x"),
        config=config,
        zarr_format=3,
        **options,
    )


def _patches(dtype: str, bands: int, tile: int, fill: float) -> list[np.ndarray]:
    """Three patches: noise with one image and one tile of fill values (and of -0.0 or NaN for floats); then all
    fill values (no object); then noise in one tile only (the other chunks left out)."""
    rng = np.random.default_rng(tile + bands)
    first = (rng.integers(0, 5000, (TIMES, bands, 256, 256)) / (1 if dtype == "uint16" else 7)).astype(dtype)
    first[1] = fill
    first[2, :, :tile, tile : 2 * tile] = fill
    if dtype == "float32":
        first[0, :, -tile:, -tile:] = -0.0  # zarr compares a fill value of 0.0 bit by bit: this chunk is stored
        first[2, :, -tile:, :tile] = np.nan
    last = np.full_like(first, fill)
    last[2, :, -tile:, -tile:] = first[0, :, :tile, :tile]
    return [first, np.full_like(first, fill), last]


CASES = [("uint16", 13, 0.0), ("float32", 2, float("nan")), ("float32", 2, 0.0)]


@pytest.mark.parametrize("location", ["local", "memory://shard-writer/cube"])
@pytest.mark.parametrize("tile", [256, 64])
@pytest.mark.parametrize(("dtype", "bands", "fill"), CASES)
def test_same_bytes_as_zarr(tmp_path: Path, location: str, tile: int, dtype: str, bands: int, fill: float) -> None:
    where = str(tmp_path / "cube") if location == "local" else f"{location}/{tile}/{dtype}/{fill}"
    store = CubeStore(where, "r+")
    ours, theirs = (_array(store, name, dtype, bands, tile, fill) for name in ("ours", "theirs"))
    assert chunks.writable(ours) is not None
    for index, data in enumerate(_patches(dtype, bands, tile, fill)):
        ours[index] = data + 1  # something to replace, also where the new shard is all fill values
        store.write_shard(ours, index, data)
        theirs[index] = data
        key = f"c/{index}/0/0/0/0"
        assert _raw(store, f"ours/{key}") == _raw(store, f"theirs/{key}")
        np.testing.assert_array_equal(zarr.open_array(store.store, path="ours")[index], data)
    assert _raw(store, "ours/c/1/0/0/0/0") is None  # fill values only: no object, as zarr leaves it


def _fallbacks(store: CubeStore) -> list[zarr.Array]:
    """Arrays whose layout the writer does not know: each goes through zarr."""
    return [
        _array(store, "unsharded", "uint16", 13, 256, 0, unsharded=True),
        _array(store, "index_first", "uint16", 13, 64, 0, index_location="start"),
        _array(store, "empty_written", "uint16", 13, 256, 0, config={"write_empty_chunks": True}),
        _array(store, "zstd_alone", "uint16", 13, 64, 0, compressors=(ZstdCodec(),)),
        _array(store, "big_endian", ">u2", 13, 256, 0),
    ]


def test_other_layouts_go_through_zarr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CubeStore(tmp_path / "cube", "r+")
    monkeypatch.setattr(chunks, "encode_shard", None)  # the direct writer is not called
    data = _patches("uint16", 13, 64, 0)[0]
    for array in _fallbacks(store):
        assert chunks.writable(array) is None, array.path
        store.write_shard(array, 0, data)
        np.testing.assert_array_equal(array[0], data)


def test_blosc_settings_copied_exactly(tmp_path: Path) -> None:
    """Another level, shuffle and block size: still zarr's bytes."""
    store = CubeStore(tmp_path / "cube", "r+")
    codec = BloscCodec(cname="zstd", clevel=2, shuffle="shuffle", typesize=2, blocksize=4096)
    ours, theirs = (_array(store, name, "uint16", 13, 64, 0, compressors=(codec,)) for name in ("ours", "theirs"))
    data = _patches("uint16", 13, 64, 0)[0]
    store.write_shard(ours, 0, data)
    theirs[0] = data
    assert _raw(store, "ours/c/0/0/0/0/0") == _raw(store, "theirs/c/0/0/0/0/0")


def test_shard_of_wrong_shape_refused(tmp_path: Path) -> None:
    array = _array(CubeStore(tmp_path / "cube", "r+"), "S2", "uint16", 13, 256, 0)
    where = chunks.writable(array)
    assert where is not None
    with pytest.raises(ValueError, match=r"has shape \(1, 3, 13, 256, 256\)"):
        chunks.encode_shard(where, np.zeros((1, 2, 13, 256, 256), "uint16"))


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 64 px SEN12MS-CR-TS tree with one S2 and one S1 file missing (gaps of fill values), and a SEN12MS-CR one."""
    base = tmp_path_factory.mktemp("writer")
    ts = make_dataset(
        base / "ts", ["ROIs1868/17"], patches_per_roi=2, size=64, times=4, seed=5, workers=1, progress=False
    )
    for folder in ("ROIs1868/17/S2/1", "ROIs1868/17/S1/3"):
        min((ts / folder).glob("*.tif")).unlink()
    cr = make_dataset(base / "cr", patches_per_roi=2, size=64, layout="sen12mscr", seed=5, workers=1, progress=False)
    return {"ts": ts, "cr": cr}


def _files(root: Path) -> dict[str, bytes]:
    """Every object of a local cube but its state (which holds the conversion's time)."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.parent.name != "cube_state"
    }


@pytest.mark.parametrize(("tree", "tile"), [("ts", 64), ("ts", 256), ("cr", 256)])
def test_cube_same_with_writer_on_and_off(
    trees: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tree: str, tile: int
) -> None:
    cubes = {}
    for direct in (True, False):
        monkeypatch.setattr(store_module, "DIRECT_SHARD_WRITES", direct)
        cubes[direct] = tmp_path / f"{direct}.zarr"
        convert(trees[tree], cubes[direct], workers=1, clouds=(), tile=tile, on_error="skip", progress=False)
    assert (chunks.writable(CubeStore(cubes[True]).array("S2")) is None) == (tree == "cr")  # SEN12MS-CR: no shards
    assert _files(cubes[True]) == _files(cubes[False])
    xr.testing.assert_identical(open_cube(cubes[True]).load(), open_cube(cubes[False]).load())
    if tree == "ts":
        assert not open_cube(cubes[True]).valid.values.all()  # the gaps are there, as fill values


@st.composite
def _shards(draw: st.DrawFn) -> tuple[dict, np.ndarray]:
    """An array's settings (dtype, fill value, image and tile size, bands, steps) and one shard of values whose
    chunks are each noise, the fill value, noise with fill values, or (floats) -0.0 or NaN."""
    dtype = np.dtype(draw(st.sampled_from(["uint8", "uint16", "int16", "float32", "float64"])))
    fill = draw(st.sampled_from([0, 7, *([float("nan"), -0.0] if dtype.kind == "f" else [])]))
    size = draw(st.sampled_from([8, 16, 32]))
    tile = size // draw(st.sampled_from([1, 2, 4]))
    shape = (1, draw(st.integers(1, 4)), draw(st.integers(1, 3)), size, size)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = rng.integers(0, 100, shape).astype(dtype)
    for t, y, x in itertools.product(range(shape[1]), range(0, size, tile), range(0, size, tile)):
        chunk = data[0, t, :, y : y + tile, x : x + tile]
        kind = draw(st.sampled_from(["noise", "fill", "part", "zero", "nan"]))
        if kind == "fill":
            chunk[...] = fill
        elif kind == "part":
            chunk[:, : tile // 2] = fill
        elif kind in ("zero", "nan") and dtype.kind == "f":
            chunk[...] = -0.0 if kind == "zero" else np.nan
    return {"dtype": dtype, "fill": fill, "tile": tile, "shape": shape}, data


@given(_shards())
def test_any_shard_same_bytes_as_zarr(case: tuple[dict, np.ndarray]) -> None:
    settings, data = case
    store = CubeStore("memory://shard-writer/property", "r+")
    ours, theirs = (
        zarr.create_array(
            store.store,
            name=name,
            shape=settings["shape"],
            chunks=(1, 1, settings["shape"][2], settings["tile"], settings["tile"]),
            shards=settings["shape"],
            dtype=settings["dtype"],
            fill_value=settings["fill"],
            compressors=(compressor(settings["dtype"]),),
            overwrite=True,
            zarr_format=3,
        )
        for name in ("ours", "theirs")
    )
    store.write_shard(ours, 0, data[0])
    theirs[0] = data[0]
    assert _raw(store, "ours/c/0/0/0/0/0") == _raw(store, "theirs/c/0/0/0/0/0")
    np.testing.assert_array_equal(ours[0], data[0])
