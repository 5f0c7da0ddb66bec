"""cube.store.store: the consolidated metadata describes the data only, never the state or the lock; sizes come
from the store; deletes never go through a link."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import xarray as xr

from cube import open_cube
from cube.dataset.problems import FileProblem
from cube.store.backends import MetadataError
from cube.store.lock import LOCK
from cube.store.outputs import OutputRefused
from cube.store.store import STATE, CubeStore
from tests.helpers import refused


def test_consolidated_metadata_lists_neither_the_state_nor_the_lock(tiny_cube: Path) -> None:
    listed = json.loads((tiny_cube / "zarr.json").read_text())["consolidated_metadata"]["metadata"]
    assert not [key for key in listed if key.split("/")[0] in (STATE, LOCK)]
    assert {"S2", "S1", "valid", "coverage", "s2cloudless_mask"} <= set(listed)
    assert not (tiny_cube / LOCK).exists()
    state = CubeStore(tiny_cube).state()
    assert state.complete and state.clouds["complete"]
    plain = xr.open_zarr(tiny_cube, consolidated=True)  # opens from the consolidated metadata alone
    assert plain.S2.shape == open_cube(tiny_cube).S2.shape


def test_size_of_a_local_cube_counts_every_file_and_a_bucket_has_none(tiny_cube: Path) -> None:
    files = [p for p in tiny_cube.rglob("*") if p.is_file()]
    assert CubeStore(tiny_cube).size_bytes() == sum(p.stat().st_size for p in files) > 0
    assert CubeStore("memory://cube").size_bytes() is None


def test_a_local_delete_never_goes_through_a_link(tmp_path: Path) -> None:
    """Every caller of CubeStore.delete is covered, not only those that checked first (the old store deleted the
    link's target: the folder outside the cube)."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "v1").mkdir(parents=True)
    (elsewhere / "v1" / "thesis.tex").write_text("years of work")
    (elsewhere / "valid").write_text("not the cube's")
    cube = tmp_path / "cube.zarr"
    (cube / "runs").mkdir(parents=True)
    (cube / "runs" / "shared").symlink_to(elsewhere)
    (cube / "valid").symlink_to(elsewhere / "valid")
    store = CubeStore(cube, "r+")
    for name, link in [("runs/shared/v1", "runs/shared"), ("runs/shared", "runs/shared"), ("valid", "valid")]:
        with pytest.raises(OutputRefused, match=f"^{cube / link}: is a symbolic link \\(to {elsewhere}"):
            store.delete(name)
    assert (elsewhere / "v1" / "thesis.tex").read_text() == "years of work"
    assert (elsewhere / "valid").read_text() == "not the cube's"
    assert (cube / "runs" / "shared").is_symlink() and (cube / "valid").is_symlink()
    (cube / "runs" / "mine").mkdir()
    store.delete("runs/mine")  # the cube's own folder goes
    assert not (cube / "runs" / "mine").exists()


@pytest.mark.parametrize("document", ["[1, 2]", '"cube"', "3"])
def test_metadata_that_is_no_json_object_is_refused_in_one_line(tmp_path: Path, document: str) -> None:
    """A zarr.json holding another JSON value (it was an AttributeError wherever a key was read)."""
    (tmp_path / "cube.zarr").mkdir()
    (tmp_path / "cube.zarr" / "zarr.json").write_text(document)
    with pytest.raises(MetadataError, match=r"cube\.zarr/zarr\.json: a JSON \w+, not an object$"):
        CubeStore(tmp_path / "cube.zarr").group_attributes("")


def test_a_cube_that_lost_its_root_document_is_refused_in_one_line(
    tiny_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A complete state beside a missing root ``zarr.json`` names that document, in the API and on every command
    (it was zarr's "No group found in store" for ``crts info``/``stats``/``verify``)."""
    damaged = tmp_path / "c.zarr"
    shutil.copytree(tiny_cube, damaged)
    (damaged / "zarr.json").unlink()
    with pytest.raises(FileProblem, match=r"c\.zarr/zarr\.json: missing or not a group: the cube has lost its root"):
        open_cube(damaged)
    for command in ("info", "stats", "verify", "upgrade"):
        refused([command, str(damaged)], capsys, "c.zarr/zarr.json", "lost its root")
