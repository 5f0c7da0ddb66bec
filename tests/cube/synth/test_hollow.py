"""A hollow cube has the metadata, layout and state of a converted cube, without image shards."""

from __future__ import annotations

from pathlib import Path

from cube import open_cube
from cube.store.store import CubeStore, plain_files_ignored
from cube.synth.hollow import make_hollow


def layout(path: Path) -> dict[str, tuple]:
    with plain_files_ignored():  # the patch index
        arrays = dict(CubeStore(path).group().arrays())
    return {
        name: (array.dtype, array.metadata.dimension_names, array.chunks[1:], array.shards)
        for name, array in arrays.items()
    }


def test_a_hollow_cube_is_laid_out_as_a_converted_one(tiny_cube: Path, tmp_path: Path) -> None:
    hollow = make_hollow(tmp_path / "hollow.zarr", 6, parts=3, times=4, size=32).location
    assert layout(Path(hollow)) == layout(tiny_cube)
    made, converted = CubeStore(hollow).state(), CubeStore(tiny_cube).state()
    assert (made.complete, made.pending, made.clouds) == (converted.complete, converted.pending, converted.clouds)
    assert CubeStore(hollow).read_file("index.parquet") is not None
    ds = open_cube(hollow)
    assert ds.attrs.keys() == open_cube(tiny_cube).attrs.keys()
    assert list(ds.roi_group.values) == sorted(ds.roi_group.values)  # sample order, though written in 3 parts
    assert not any(Path(hollow, "S2").rglob("c/*"))  # no image shard
    assert len(set(ds.split.values)) == 3
