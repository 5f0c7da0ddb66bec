"""cube.store: the consolidated metadata describes the data only, never the state or the lock; labels and
sizes come from the store."""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

from cube import open_cube
from cube.layout import scan_ts
from cube.rois import PatchLabel
from cube.store import LOCK, STATE, CubeStore, patch_index, patch_labels


def test_consolidated_metadata_lists_neither_the_state_nor_the_lock(tiny_cube: Path) -> None:
    listed = json.loads((tiny_cube / "zarr.json").read_text())["consolidated_metadata"]["metadata"]
    assert not [key for key in listed if key.split("/")[0] in (STATE, LOCK)]
    assert {"S2", "S1", "valid", "coverage", "s2cloudless_mask"} <= set(listed)
    assert not (tiny_cube / LOCK).exists()
    state = CubeStore(tiny_cube).state()
    assert state.complete and state.clouds["complete"]
    plain = xr.open_zarr(tiny_cube, consolidated=True)  # opens from the consolidated metadata alone
    assert plain.S2.shape == open_cube(tiny_cube).S2.shape


def test_patch_labels_are_the_inverse_of_patch_index(tiny_cube: Path, tiny_root: Path) -> None:
    ds = open_cube(tiny_cube)
    labels = patch_labels(ds)
    assert sorted(labels) == sorted({PatchLabel(f.roi, f.pid) for f in scan_ts(tiny_root)[0]})
    assert [patch_index(ds, label.roi, label.patch_id) for label in labels] == list(range(ds.sizes["patch"]))


def test_size_of_a_local_cube_counts_every_file_and_a_bucket_has_none(tiny_cube: Path) -> None:
    files = [p for p in tiny_cube.rglob("*") if p.is_file()]
    assert CubeStore(tiny_cube).size_bytes() == sum(p.stat().st_size for p in files) > 0
    assert CubeStore("memory://cube").size_bytes() is None
