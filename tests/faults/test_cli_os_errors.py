"""A file system that refuses a write or a name is the user's problem: one line and exit 2, never a traceback."""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crts.cli import main
from cube import convert
from cube.store.store import CubeStore
from tests.helpers import TINY_TRAINING, as_schema_2, crts, error_line, refused

pytestmark = pytest.mark.faults


def _synth(out: Path) -> list[str]:
    return [
        "synth",
        str(out),
        "--rois",
        "ROIs1868/17",
        "--patches-per-roi",
        "1",
        "--size",
        "16",
        "--times",
        "1",
        "--workers",
        "1",
    ]


def test_a_name_too_long(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / ("a" * 300)
    assert refused(_synth(out), capsys) == f"crts synth: error: {out}: File name too long"


def test_a_file_where_a_folder_should_be(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "data"
    assert refused(_synth(out), capsys) == f"crts synth: error: {out}: Not a directory"


def test_a_full_disk(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(
        [
            "convert",
            str(tiny_root),
            str(tmp_path / "cube.zarr"),
            "--workers",
            "1",
            "--detectors",
            "none",
            "--report",
            "/dev/full",
        ],
        capsys,
    )
    assert line == "crts convert: error: /dev/full: No space left on device"  # after the progress bar


def _can(command: list[str]) -> bool:
    return shutil.which(command[0]) is not None and subprocess.run(command, capture_output=True).returncode == 0


def test_a_read_only_file_system(tmp_path: Path) -> None:
    mount = ["unshare", "--mount", "sh", "-c", f'mount -t tmpfs -o ro,size=1m none {tmp_path} && exec "$@"', "sh"]
    if not _can([*mount, "true"]):
        pytest.skip("needs root to mount a read-only tmpfs in a private mount namespace")
    done = crts(*_synth(tmp_path / "data"), wrapper=tuple(mount))
    assert error_line(done.returncode, done.stderr) == f"crts synth: error: {tmp_path / 'data'}: Read-only file system"


def test_permission_denied(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    without_override = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    if not _can([*without_override, "true"]) or _can([*without_override, "touch", str(locked / "x")]):
        pytest.skip("needs setpriv to drop root's right to override file permissions")
    done = crts(*_synth(locked / "data"), wrapper=tuple(without_override))
    assert error_line(done.returncode, done.stderr) == f"crts synth: error: {locked / 'data'}: Permission denied"


def _readonly_commands(sampling_cube: Path, tiny_root: Path, locked: Path, cube: Path) -> dict[str, list[str]]:
    return {
        "convert": ["convert", str(tiny_root), str(locked / "c.zarr"), "--workers", "1"],
        "train": ["train", str(sampling_cube), "--out", str(locked / "run"), *SMALL_TRAINING],
        "report": ["report", str(cube), "--out", str(locked / "report")],
        "stats": ["stats", str(sampling_cube), "--plot", str(locked / "p.png")],
        "evaluate": ["evaluate", str(cube), "--baseline", "mosaic", "--min-cov", "0.05", "--run", "m"],
    }


@pytest.mark.parametrize("command", ["convert", "train", "report", "stats", "evaluate"])
def test_read_only_outputs_are_one_line(sampling_cube: Path, tiny_root: Path, tmp_path: Path, command: str) -> None:
    if command in ("train", "evaluate", "report"):
        pytest.importorskip("torch")  # the subprocess needs it (where it is missing, they say so: test_package.py)
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
    done = crts(*_readonly_commands(sampling_cube, tiny_root, locked, cube)[command], wrapper=tuple(without_override))
    line = error_line(done.returncode, done.stderr, "Permission denied")
    assert line.startswith(f"crts {command}: error: "), line
    assert list(locked.iterdir()) == []


# -- every command that writes, where the file system answers EPERM (an immutable folder) or EIO ------------------

WRITERS = [
    "convert",
    "clouds",
    "train",
    "evaluate",
    "report",
    "index",
    "index --out",
    "synth",
    "download",
    "upgrade",
    "runs --prune",
    "stats --plot",
]
"""Every command that writes (and the options of two that write elsewhere than their cube)."""
SMALL_TRAINING = [*TINY_TRAINING, "--max-steps", "1"]


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder``, files with their content's digest."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "/"
        for p in sorted(folder.rglob("*"))
    }


def _with_a_leftover(cube: Path) -> Path:
    """``cube`` with a run version that its writer (gone) never published: what ``crts runs --prune`` deletes."""
    import dask.array as da
    import xarray as xr

    from cube.store.runs import RunWriter

    store = CubeStore(cube, mode="r+")
    leftover = RunWriter(store, "b", xr.Dataset({"rmse": ("sample", da.zeros(3, chunks=3))}))
    store.group(leftover.path, mode="r+").update_attributes({"writer": {**leftover.writer, "pid_started": 0.0}})
    return cube


def _writer_case(command: str, sampling_cube: Path, tiny_root: Path, tmp_path: Path) -> tuple[list[str], Path]:
    """The arguments of ``command`` and the folder it writes into (to be refused): a new empty folder ``locked``
    for the commands that write new files, else (a copy of) the cube they change in place."""
    locked = tmp_path / "locked"
    locked.mkdir()
    new = {
        "convert": ["convert", str(tiny_root), str(locked / "c.zarr"), "--workers", "1", "--detectors", "none"],
        "train": ["train", str(sampling_cube), "--out", str(locked / "run"), *SMALL_TRAINING],
        "index --out": ["index", str(sampling_cube), "--out", str(locked / "patches.parquet")],
        "synth": [
            "synth",
            str(locked / "data"),
            "--rois",
            "ROIs1868/17",
            "--patches-per-roi",
            "1",
            "--size",
            "16",
            "--times",
            "1",
            "--workers",
            "1",
        ],
        "download": [
            "download",
            str(locked / "archives"),
            "--regions",
            "europa",
            "--split",
            "test",
            "--base-url",
            "http://127.0.0.1:9",
        ],
        "stats --plot": ["stats", str(sampling_cube), "--plot", str(locked / "coverage.png")],
    }
    if command in new:
        return new[command], locked
    locked.rmdir()
    cube = tmp_path / "cube.zarr"
    if command == "clouds":
        convert(tiny_root, cube, workers=1, clouds=(), progress=False)
    elif command == "upgrade":
        as_schema_2(sampling_cube, cube)
    else:
        shutil.copytree(sampling_cube, cube)
    if command == "report":
        assert main(["evaluate", str(cube), "--baseline", "mosaic", "--min-cov", "0.05", "--run", "m"]) == 0
        (tmp_path / "locked").mkdir()
        return ["report", str(cube), "--out", str(tmp_path / "locked" / "report")], tmp_path / "locked"
    if command == "runs --prune":
        _with_a_leftover(cube)
    return {
        "clouds": ["clouds", str(cube), "--detectors", "cloud_cloudshadow_mask", "--workers", "1"],
        "evaluate": ["evaluate", str(cube), "--baseline", "mosaic", "--min-cov", "0.05", "--run", "m"],
        "index": ["index", str(cube)],
        "upgrade": ["upgrade", str(cube)],
        "runs --prune": ["runs", str(cube), "--prune"],
    }[command], cube


@pytest.fixture
def immutable() -> Iterator[Callable[[Path], None]]:
    """Makes a folder and everything in it immutable (``chattr -R +i``: the OS answers EPERM to root too),
    undone after the test."""
    made: list[Path] = []

    def make(folder: Path) -> None:
        if not _can(["chattr", "-R", "+i", str(folder)]):
            pytest.skip("needs chattr and a file system with the immutable flag (ext4, tmpfs), as root")
        made.append(folder)
        if _can(["touch", str(folder / "probe")]):
            pytest.skip("the immutable flag does not stop this process")

    yield make
    for folder in made:
        subprocess.run(["chattr", "-R", "-i", str(folder)], check=True)


def _failing_writes(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int) -> None:
    """Make every write (a file opened for writing, a new folder, a deletion) under ``folder`` fail with the OS
    error ``code``, as a failing disk does, in this process."""

    def under(path: object) -> bool:
        return not isinstance(path, int) and Path(os.path.abspath(os.fsdecode(path))).is_relative_to(folder)

    def refuse(path: object) -> None:
        raise OSError(code, os.strerror(code), os.fsdecode(path))

    real_open, real_os_open, real_mkdir, real_rmtree = io.open, os.open, os.mkdir, shutil.rmtree

    def opened(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if under(file) and set(mode) & set("wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def os_opened(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if kwargs.get("dir_fd") is None and under(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def made(path: object, *args: object, **kwargs: object) -> None:
        if kwargs.get("dir_fd") is None and under(path):
            refuse(path)
        real_mkdir(path, *args, **kwargs)

    def removed(path: object, *args: object, **kwargs: object) -> None:
        if under(path):
            refuse(path)
        real_rmtree(path, *args, **kwargs)

    for module, name, replacement in (
        (io, "open", opened),
        (builtins, "open", opened),
        (os, "open", os_opened),
        (os, "mkdir", made),
        (shutil, "rmtree", removed),
    ):
        monkeypatch.setattr(module, name, replacement)


def _refused_in_one_line(argv: list[str], capsys: pytest.CaptureFixture[str], folder: Path, reason: str) -> None:
    line = refused(argv, capsys, reason)
    assert line.startswith(f"crts {argv[0]}: error: {folder}"), line


@pytest.mark.parametrize("command", WRITERS)
def test_an_immutable_output_is_one_line(
    sampling_cube: Path,
    tiny_root: Path,
    tmp_path: Path,
    command: str,
    capsys: pytest.CaptureFixture[str],
    immutable: Callable[[Path], None],
) -> None:
    argv, folder = _writer_case(command, sampling_cube, tiny_root, tmp_path)
    immutable(folder)
    before, inputs = _snapshot(tmp_path), _snapshot(tiny_root)
    capsys.readouterr()
    _refused_in_one_line(argv, capsys, folder, "Operation not permitted")
    assert _snapshot(tmp_path) == before and _snapshot(tiny_root) == inputs


@pytest.mark.parametrize("command", WRITERS)
def test_a_failing_disk_is_one_line(
    sampling_cube: Path,
    tiny_root: Path,
    tmp_path: Path,
    command: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv, folder = _writer_case(command, sampling_cube, tiny_root, tmp_path)
    before, inputs = _snapshot(tmp_path), _snapshot(tiny_root)
    capsys.readouterr()
    _failing_writes(monkeypatch, folder, errno.EIO)
    _refused_in_one_line(argv, capsys, folder, "Input/output error")
    monkeypatch.undo()
    assert _snapshot(tmp_path) == before and _snapshot(tiny_root) == inputs


class _FailingFile(io.BytesIO):
    """A file whose writes fail as a failing disk's ``write(2)`` does: EIO, naming no file."""

    def write(self, data: object) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))


def test_a_write_that_names_no_file_names_the_output(
    tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cube = tmp_path / "cube.zarr"
    real_open = io.open

    def opened(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        inside = not isinstance(file, int) and Path(os.fsdecode(file)).is_relative_to(cube)
        return _FailingFile() if inside and "w" in mode else real_open(file, mode, *args, **kwargs)

    for module in (io, builtins):
        monkeypatch.setattr(module, "open", opened)
    _refused_in_one_line(
        ["convert", str(tiny_root), str(cube), "--workers", "1", "--detectors", "none"],
        capsys,
        cube,
        "Input/output error",
    )
    monkeypatch.undo()
    assert not [p for p in cube.rglob("*") if p.is_file()]


def _disk_full_after(monkeypatch: pytest.MonkeyPatch, folder: Path, writes: int) -> None:
    """Let ``writes`` files be opened for writing under ``folder``, then fail every further one with ENOSPC, as a
    disk that fills up mid-run does, in this process."""
    real_open, count = io.open, [0]

    def opened(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if not isinstance(file, int) and set(mode) & set("wax+") and Path(os.fsdecode(file)).is_relative_to(folder):
            count[0] += 1
            if count[0] > writes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(file))
        return real_open(file, mode, *args, **kwargs)

    for module in (io, builtins):
        monkeypatch.setattr(module, "open", opened)


@pytest.mark.parametrize("source", ["tree", "archives"])
def test_a_disk_that_fills_up_mid_conversion_is_one_line_and_resume_finishes(
    tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """The old message named a zarr temporary file inside the cube and said nothing of --resume."""
    from cube.synth.archives import write_archives

    src = tiny_root if source == "tree" else write_archives(tiny_root, tmp_path / "archives", progress=False)[0].parent
    cube = tmp_path / "cube.zarr"
    argv = [
        "convert",
        str(src),
        str(cube),
        "--workers",
        "1",
        "--detectors",
        "none",
        *([] if source == "tree" else ["--times", "4"]),
    ]
    _disk_full_after(monkeypatch, cube / "S2" / "c", 3)  # the images of three patches' first steps are written
    line = refused(argv, capsys)
    monkeypatch.undo()
    assert line.startswith(
        f"crts convert: error: {cube}: the conversion stopped (the patches written so far "
        "are kept: run the same command with --resume to finish): No space left on device ("
        f"{cube / 'S2' / 'c'}"
    ), line
    assert main([*argv, "--resume"]) == 0
    assert CubeStore(cube).state().complete and CubeStore(cube).array("valid")[:].all()
    assert not list(cube.rglob("*.partial")) and not (tmp_path / "cube.zarr.scratch").exists()
