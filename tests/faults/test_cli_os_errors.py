"""A file system that refuses a write or a name is the user's problem: one line and exit 2, never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crts.cli import main

pytestmark = pytest.mark.faults


def _synth(out: Path) -> list[str]:
    return ["synth", str(out), "--rois", "ROIs1868/17", "--patches-per-roi", "1", "--size", "16", "--times", "1",
            "--workers", "1"]


def test_a_name_too_long(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / ("a" * 300)
    assert main(_synth(out)) == 2
    assert capsys.readouterr().err == f"crts synth: error: {out}: File name too long\n"


def test_a_file_where_a_folder_should_be(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "data"
    assert main(_synth(out)) == 2
    assert capsys.readouterr().err == f"crts synth: error: {out}: Not a directory\n"


def test_a_full_disk(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["convert", str(tiny_root), str(tmp_path / "cube.zarr"), "--workers", "1", "--detectors", "none",
                 "--report", "/dev/full"])
    assert code == 2
    err = capsys.readouterr().err  # after the progress bar
    assert err.endswith("\ncrts convert: error: /dev/full: No space left on device\n") and "Traceback" not in err


def _crts_under(wrapper: list[str], args: list[str]) -> subprocess.CompletedProcess:
    """``crts ARGS`` as a subprocess behind ``wrapper`` (a command that takes a command line)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([*wrapper, sys.executable, "-m", "crts", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def _can(command: list[str]) -> bool:
    return shutil.which(command[0]) is not None and subprocess.run(command, capture_output=True).returncode == 0


def test_a_read_only_file_system(tmp_path: Path) -> None:
    mount = ["unshare", "--mount", "sh", "-c", f"mount -t tmpfs -o ro,size=1m none {tmp_path} && exec \"$@\"", "sh"]
    if not _can([*mount, "true"]):
        pytest.skip("needs root to mount a read-only tmpfs in a private mount namespace")
    done = _crts_under(mount, _synth(tmp_path / "data"))
    assert done.returncode == 2
    assert done.stderr == f"crts synth: error: {tmp_path / 'data'}: Read-only file system\n"


def test_permission_denied(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    without_override = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    if not _can([*without_override, "true"]) or _can([*without_override, "touch", str(locked / "x")]):
        pytest.skip("needs setpriv to drop root's right to override file permissions")
    done = _crts_under(without_override, _synth(locked / "data"))
    assert done.returncode == 2
    assert done.stderr == f"crts synth: error: {locked / 'data'}: Permission denied\n"


def _readonly_commands(sampling_cube: Path, tiny_root: Path, locked: Path, cube: Path) -> dict[str, list[str]]:
    small = ["--features", "4", "--blocks", "1", "--crop", "16", "--batch-size", "2", "--n-input-samples", "2",
             "--max-steps", "1"]
    return {"convert": ["convert", str(tiny_root), str(locked / "c.zarr"), "--workers", "1"],
            "train": ["train", str(sampling_cube), "--out", str(locked / "run"), *small],
            "report": ["report", str(cube), "--out", str(locked / "report")],
            "stats": ["stats", str(sampling_cube), "--plot", str(locked / "p.png")],
            "evaluate": ["evaluate", str(cube), "--baseline", "mosaic", "--min-cov", "0.05", "--run", "m"]}


@pytest.mark.parametrize("command", ["convert", "train", "report", "stats", "evaluate"])
def test_read_only_outputs_are_one_line(sampling_cube: Path, tiny_root: Path, tmp_path: Path, command: str) -> None:
    without_override = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if not _can([*without_override, "true"]) or _can([*without_override, "touch", str(locked / "x")]):
        pytest.skip("needs setpriv to drop root's right to override file permissions")
    cube = Path(shutil.copytree(sampling_cube, tmp_path / "cube.zarr"))
    if command == "report":
        assert main(["evaluate", str(cube), "--baseline", "mosaic", "--min-cov", "0.05", "--run", "m"]) == 0
    for path in [cube, *cube.rglob("*")] if command == "evaluate" else []:
        path.chmod(0o555 if path.is_dir() else 0o444)  # a cube on a read-only share
    done = _crts_under(without_override, _readonly_commands(sampling_cube, tiny_root, locked, cube)[command])
    lines = [line for line in done.stderr.splitlines() if "%|" not in line and "warning:" not in line]
    assert done.returncode == 2 and len(lines) == 1 and "Permission denied" in lines[0], done.stderr
    assert lines[0].startswith(f"crts {command}: error: ") and "Traceback" not in done.stderr
    assert list(locked.iterdir()) == []
