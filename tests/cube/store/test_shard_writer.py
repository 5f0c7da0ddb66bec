"""The direct shard writer (cube.store.chunks.encode_shard via CubeStore.write_shard) stores exactly the bytes zarr
stores: 256 and 64 px tiles, uint16 and float32, chunks of fill values left out, on a local disk and in a bucket;
arrays of any other layout go through zarr; a converted cube is the same byte for byte with the writer on and off;
and any shard (hypothesis: dtypes, fill values, tiles, chunks of fill values, -0.0 and NaN) equals zarr's."""

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
