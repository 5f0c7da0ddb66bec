"""A wrong output folder is refused in one line, before any write: nothing a command did not create is lost."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from crts.cli import main

pytestmark = pytest.mark.faults


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its content's digest."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *words: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for word in words:
        assert word in err, err


@pytest.fixture
def source(tiny_root: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny GeoTIFF tree (the tests try to write into it)."""
    return Path(shutil.copytree(tiny_root, tmp_path / "SEN12MSCRTS"))


def test_convert_refuses_a_folder_that_is_not_a_cube(source: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "important.txt").write_text("keep me")
    (out / "sub" / "model.pt").write_bytes(b"\x00" * 100)
    before = _snapshot(out)
    _refused(["convert", str(source), str(out), "--workers", "1", "--detectors", "none"], capsys,
             str(out), "is not a cube", "'important.txt'")
    assert _snapshot(out) == before and sorted(p.name for p in out.iterdir()) == ["important.txt", "sub"]


def test_convert_refuses_a_training_run_folder(source: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "train"
    (run / "tensorboard").mkdir(parents=True)
    for name in ("last.pt", "config.json", "log.csv", "tensorboard/events.out"):
        (run / name).write_text(name)
    before = _snapshot(run)
    _refused(["convert", str(source), str(run), "--workers", "1"], capsys, "is not a cube")
    assert _snapshot(run) == before


@pytest.mark.parametrize("inside", ["", "ROIs1868", "ROIs1868/17/cube.zarr"])
def test_convert_never_writes_inside_its_source(source: Path, capsys: pytest.CaptureFixture[str],
                                                inside: str) -> None:
    before = _snapshot(source)
    _refused(["convert", str(source), str(source / inside), "--workers", "1"], capsys, "inside the source")
    assert _snapshot(source) == before


def test_convert_refuses_a_cube_that_would_hold_its_source(source: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(source)
    _refused(["convert", str(source), str(tmp_path), "--workers", "1"], capsys, "would hold the source")
    assert _snapshot(source) == before


def test_convert_report_is_never_written_inside_the_source(source: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["convert", str(source), str(tmp_path / "cube.zarr"), "--report", str(source / "r.json")], capsys,
             "the report lies inside the source")
    assert not (tmp_path / "cube.zarr").exists() and not (source / "r.json").exists()


def test_convert_resume_needs_a_conversion_to_resume(source: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _refused(["convert", str(source), str(tmp_path / "cube.zarr"), "--resume"], capsys,
             "no conversion to resume", "leave out --resume")
    assert not (tmp_path / "cube.zarr").exists()


def test_convert_into_an_empty_folder_works(source: Path, tmp_path: Path) -> None:
    (tmp_path / "cube.zarr").mkdir()
    assert main(["convert", str(source), str(tmp_path / "cube.zarr"), "--workers", "1", "--detectors", "none"]) == 0
    assert (tmp_path / "cube.zarr" / "cube_state" / "zarr.json").exists()


def test_convert_keeps_files_a_user_put_into_a_cube(source: Path, tmp_path: Path) -> None:
    cube = tmp_path / "cube.zarr"
    assert main(["convert", str(source), str(cube), "--workers", "1", "--detectors", "none",
                 "--rois", "ROIs1868/17"]) == 0
    (cube / "NOTES.md").write_text("my notes")
    assert main(["convert", str(source), str(cube), "--workers", "1", "--detectors", "none"]) == 0
    assert (cube / "NOTES.md").read_text() == "my notes"


def test_report_writes_only_into_a_new_folder_or_an_earlier_report(sampling_cube: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cube = Path(shutil.copytree(sampling_cube, tmp_path / "cube.zarr"))
    assert main(["evaluate", str(cube), "--baseline", "mosaic", "--min-cov", "0.05", "--run", "m"]) == 0
    capsys.readouterr()  # (its progress bar)
    mine = tmp_path / "figures"
    mine.mkdir()
    (mine / "samples.csv").write_text("my table")
    _refused(["report", str(cube), "--out", str(mine)], capsys, "holds files that are not an evaluation report",
             "samples.csv")
    assert (mine / "samples.csv").read_text() == "my table" and len(list(mine.iterdir())) == 1
    report = tmp_path / "report"
    assert main(["report", str(cube), "--out", str(report)]) == 0
    assert main(["report", str(cube), "--out", str(report)]) == 0  # its own earlier report is replaced
    assert (report / "report.md").read_text().startswith("# Evaluation report: m")


def test_synth_overwrite_replaces_only_a_synthetic_data_set(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    _refused(["synth", str(tmp_path), "--size", "16", "--times", "1", "--overwrite"], capsys,
             "not made by this generator")
    assert (tmp_path / "thesis.tex").read_text() == "years of work"
