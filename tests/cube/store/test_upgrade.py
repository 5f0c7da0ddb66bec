"""`crts upgrade`: a schema-2 cube (valid one patch per chunk, coverage 256) comes up to date in place."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from cube import open_cube
from cube.dataset.problems import FileProblem
from cube.store.lock import LOCK
from cube.store.schema import SCHEMA_VERSION, TABLE_CHUNK
from cube.store.store import STATE, CubeState, CubeStore
from cube.store.upgrade import COPY, upgrade
from tests.helpers import as_schema_2


def tables(cube: Path) -> dict[str, np.ndarray]:
    ds = open_cube(cube, chunks=None)
    return {"valid": ds.valid.values, "coverage": ds.coverage.values, "S2": ds.S2.isel(patch=[0, -1]).values}


def test_an_old_cube_is_refused_with_the_upgrade_command(tiny_cube: Path, tmp_path: Path) -> None:
    old = as_schema_2(tiny_cube, tmp_path / "old.zarr")
    assert zarr.open_array(old / "valid").chunks[0] == 1
    with pytest.raises(FileNotFoundError, match=r"schema version 2, not 3; .*crts upgrade"):
        open_cube(old)


def test_upgrade_rewrites_the_tables_in_place_and_then_does_nothing(tiny_cube: Path, tmp_path: Path) -> None:
    old = as_schema_2(tiny_cube, tmp_path / "old.zarr")
    assert upgrade(old) == ["valid", "coverage"]
    assert zarr.open_array(old / "valid").chunks[0] == TABLE_CHUNK
    assert zarr.open_array(old / "coverage").chunks[0] == TABLE_CHUNK
    for name, values in tables(tiny_cube).items():
        np.testing.assert_array_equal(tables(old)[name], values)
    xr.testing.assert_identical(
        open_cube(old).reset_coords(drop=True).valid, open_cube(tiny_cube).reset_coords(drop=True).valid
    )
    assert CubeStore(old).state().history[-1].endswith(f"chunked by {TABLE_CHUNK} patches")
    before = sorted(p.stat().st_mtime_ns for p in old.rglob("zarr.json"))
    assert upgrade(old) == []  # a current cube: nothing is written
    assert sorted(p.stat().st_mtime_ns for p in old.rglob("zarr.json")) == before
    assert CubeStore(old).group_attributes("")["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize("step", ["copying", "copied", "replaced", "metadata"])
def test_an_upgrade_killed_at_any_step_finishes_when_run_again(tiny_cube: Path, tmp_path: Path, step: str) -> None:
    old = as_schema_2(tiny_cube, tmp_path / "old.zarr")
    store = CubeStore(old, "r+")
    with store.writer("upgrade") as owner:  # what a kill -9 at that step leaves: the step committed, work half done
        state = store.state()
        state.upgrade = {"array": None if step == "metadata" else "valid", "step": step}
        store.commit(state, owner)
        if step in ("copied", "replaced"):
            store.copy_array("valid", COPY, (TABLE_CHUNK, *store.array("valid").shape[1:]))
        if step == "copied":
            store.delete("valid")  # killed while writing the table again
    with pytest.raises(FileNotFoundError, match="crts upgrade"):
        open_cube(old)
    upgrade(old)
    assert COPY not in CubeStore(old).children() and CubeStore(old).state().upgrade is None
    for name, values in tables(tiny_cube).items():
        np.testing.assert_array_equal(tables(old)[name], values)


@pytest.mark.slow
def test_kill_9_during_the_upgrade_then_again_gives_the_same_cube(default_cube: Path, tmp_path: Path) -> None:
    old = as_schema_2(default_cube, tmp_path / "old.zarr")
    proc = subprocess.Popen(
        [sys.executable, "-m", "crts", "upgrade", str(old)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while proc.poll() is None and not (old / COPY).exists():
        pass
    proc.kill()
    proc.wait()
    done = subprocess.run([sys.executable, "-m", "crts", "upgrade", str(old)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "schema version 3" in done.stdout
    for name, values in tables(default_cube).items():
        np.testing.assert_array_equal(tables(old)[name], values)


def test_a_state_without_a_root_group_is_no_cube_to_upgrade(tmp_path: Path) -> None:
    """Refused in one line before anything is written (it was a TypeError after the state's commit)."""
    store = CubeStore(tmp_path / "cube.zarr", "r+")
    store.write_group(STATE, asdict(CubeState(complete=True)))
    before = (tmp_path / "cube.zarr" / STATE / "zarr.json").read_bytes()
    with pytest.raises(FileProblem, match=r"cube\.zarr/zarr\.json: missing or not a group: the cube has lost its root"):
        upgrade(tmp_path / "cube.zarr")
    assert (tmp_path / "cube.zarr" / STATE / "zarr.json").read_bytes() == before
    assert store.children() == [STATE] and LOCK not in store.children()
