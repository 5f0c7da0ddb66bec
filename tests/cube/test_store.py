"""cube.store: the consolidated metadata describes the data only, never the state or the lock."""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

from cube import open_cube
from cube.store import LOCK, STATE, CubeStore


def test_consolidated_metadata_lists_neither_the_state_nor_the_lock(tiny_cube: Path) -> None:
    listed = json.loads((tiny_cube / "zarr.json").read_text())["consolidated_metadata"]["metadata"]
    assert not [key for key in listed if key.split("/")[0] in (STATE, LOCK)]
    assert {"S2", "S1", "valid", "coverage", "s2cloudless_mask"} <= set(listed)
    assert not (tiny_cube / LOCK).exists()
    state = CubeStore(tiny_cube).state()
    assert state.complete and state.clouds["complete"]
    plain = xr.open_zarr(tiny_cube, consolidated=True)  # opens from the consolidated metadata alone
    assert plain.S2.shape == open_cube(tiny_cube).S2.shape
