"""A cube's JSON metadata (zarr.json, its attributes, consolidated metadata, the state and run pointers) is read
within bounds: too deep, too large or not JSON is one line naming the object, exit status 2, never a traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crts.cli import main
from cube.store import backends
from cube.store.backends import METADATA_DEPTH, MetadataError, parse_metadata
from cube.store.store import CubeStore
from cube.synth.hollow import make_hollow

pytestmark = pytest.mark.faults

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(scope="module")
def hollow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small complete cube (metadata and labels, no images)."""
    path = tmp_path_factory.mktemp("metadata") / "cube.zarr"
    make_hollow(path, 53, times=4, size=32)
    return path


def _with_attribute(hollow: Path, tmp_path: Path, key: str, value: str) -> Path:
    """A copy of the cube whose object ``key`` has one more attribute, given as JSON text."""
    cube = tmp_path / "cube.zarr"
    shutil.copytree(hollow, cube)
    text = (cube / key).read_text()
    assert text.count('"attributes": {') >= 1
    (cube / key).write_text(text.replace('"attributes": {', f'"attributes": {{"extra": {value}, ', 1))
    return cube


@pytest.mark.parametrize("key", ["zarr.json", "cube_state/zarr.json"])
def test_crts_info_names_metadata_nested_100000_deep(hollow: Path, tmp_path: Path, key: str) -> None:
    cube = _with_attribute(hollow, tmp_path, key, DEEP)
    done = subprocess.run(
        [sys.executable, "-m", "crts", "info", str(cube)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert (
        done.stderr == f"crts info: error: {cube}/{key}: metadata nested more than {METADATA_DEPTH} deep "
        "(METADATA_DEPTH)\n"
    )


def test_an_array_whose_own_metadata_is_too_deep_is_named(hollow: Path, tmp_path: Path) -> None:
    cube = _with_attribute(hollow, tmp_path, "S2/zarr.json", DEEP)
    with pytest.raises(MetadataError, match=f"^{cube}/S2/zarr.json: metadata nested more than 32 deep"):
        CubeStore(cube).array("S2")


def test_metadata_at_the_depth_bound_is_read(hollow: Path, tmp_path: Path) -> None:
    nested = "[" * (METADATA_DEPTH - 2) + "]" * (METADATA_DEPTH - 2)  # in the document and its attributes
    cube = _with_attribute(hollow, tmp_path, "cube_state/zarr.json", nested)
    assert CubeStore(cube).group_attributes("cube_state")["extra"] == json.loads(nested)
    with pytest.raises(MetadataError, match="nested more than 32 deep"):
        parse_metadata(b'{"a": ' + b"[" * METADATA_DEPTH + b"]" * METADATA_DEPTH + b"}", "x")


def test_oversized_metadata_is_refused(
    hollow: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(backends, "METADATA_BYTES", 1000)
    assert main(["info", str(hollow)]) == 2
    size = (hollow / "zarr.json").stat().st_size
    assert capsys.readouterr().err == (
        f"crts info: error: {hollow}/zarr.json: {size} bytes of metadata, more than "
        "a cube's can be (1000, METADATA_BYTES)\n"
    )


def test_metadata_that_is_not_json_is_named(hollow: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cube = tmp_path / "cube.zarr"
    shutil.copytree(hollow, cube)
    (cube / "cube_state" / "zarr.json").write_bytes(b'{"node_type": "group", "attributes": {"complete": tr')
    assert main(["info", str(cube)]) == 2
    assert capsys.readouterr().err.startswith(f"crts info: error: {cube}/cube_state/zarr.json: not JSON (")


def test_a_run_pointer_nested_too_deep_is_named(
    hollow: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cube = tmp_path / "cube.zarr"
    shutil.copytree(hollow, cube)
    (cube / "runs" / "a").mkdir(parents=True)
    (cube / "runs" / "a" / "zarr.json").write_text(
        f'{{"zarr_format": 3, "node_type": "group", "attributes": {{"run": "a", "version": {DEEP}}}}}'
    )
    assert main(["runs", str(cube)]) == 2
    assert (
        capsys.readouterr().err == f"crts runs: error: {cube}/runs/a/zarr.json: metadata nested more than 32 "
        "deep (METADATA_DEPTH)\n"
    )
