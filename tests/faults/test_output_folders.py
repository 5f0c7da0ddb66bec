"""A wrong output folder is refused in one line, before any write: nothing a command did not create is lost."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from crts.cli import main
from tests.helpers import TINY_TRAINING, refused

pytestmark = pytest.mark.faults


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its content's digest."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def source(tiny_root: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny GeoTIFF tree (the tests try to write into it)."""
    return Path(shutil.copytree(tiny_root, tmp_path / "SEN12MSCRTS"))


def test_convert_refuses_a_folder_that_is_not_a_cube(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "important.txt").write_text("keep me")
    (out / "sub" / "model.pt").write_bytes(b"\x00" * 100)
    before = _snapshot(out)
    refused(
        ["convert", str(source), str(out), "--workers", "1", "--detectors", "none"],
        capsys,
        str(out),
        "is not a cube",
        "'important.txt'",
    )
    assert _snapshot(out) == before and sorted(p.name for p in out.iterdir()) == ["important.txt", "sub"]


def test_convert_refuses_a_training_run_folder(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "train"
    (run / "tensorboard").mkdir(parents=True)
    for name in ("last.pt", "config.json", "log.csv", "tensorboard/events.out"):
        (run / name).write_text(name)
    before = _snapshot(run)
    refused(["convert", str(source), str(run), "--workers", "1"], capsys, "is not a cube")
    assert _snapshot(run) == before


@pytest.mark.parametrize("inside", ["", "ROIs1868", "ROIs1868/17/cube.zarr"])
def test_convert_never_writes_inside_its_source(source: Path, capsys: pytest.CaptureFixture[str], inside: str) -> None:
    before = _snapshot(source)
    refused(["convert", str(source), str(source / inside), "--workers", "1"], capsys, "inside the source")
    assert _snapshot(source) == before


def test_convert_refuses_a_cube_that_would_hold_its_source(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(source)
    refused(["convert", str(source), str(tmp_path), "--workers", "1"], capsys, "would hold the source")
    assert _snapshot(source) == before


def test_convert_report_is_never_written_inside_the_source(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(
        ["convert", str(source), str(tmp_path / "cube.zarr"), "--report", str(source / "r.json")],
        capsys,
        "the report lies inside the source",
    )
    assert not (tmp_path / "cube.zarr").exists() and not (source / "r.json").exists()


def test_convert_resume_needs_a_conversion_to_resume(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(
        ["convert", str(source), str(tmp_path / "cube.zarr"), "--resume"],
        capsys,
        "no conversion to resume",
        "leave out --resume",
    )
    assert not (tmp_path / "cube.zarr").exists()


def test_convert_into_an_empty_folder_works(source: Path, tmp_path: Path) -> None:
    (tmp_path / "cube.zarr").mkdir()
    assert main(["convert", str(source), str(tmp_path / "cube.zarr"), "--workers", "1", "--detectors", "none"]) == 0
    assert (tmp_path / "cube.zarr" / "cube_state" / "zarr.json").exists()


def test_convert_keeps_files_a_user_put_into_a_cube(source: Path, tmp_path: Path) -> None:
    cube = tmp_path / "cube.zarr"
    assert (
        main(["convert", str(source), str(cube), "--workers", "1", "--detectors", "none", "--rois", "ROIs1868/17"]) == 0
    )
    (cube / "NOTES.md").write_text("my notes")
    assert main(["convert", str(source), str(cube), "--workers", "1", "--detectors", "none"]) == 0
    assert (cube / "NOTES.md").read_text() == "my notes"


def test_report_writes_only_into_a_new_folder_or_an_earlier_report(
    sampling_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cube = Path(shutil.copytree(sampling_cube, tmp_path / "cube.zarr"))
    assert main(["evaluate", str(cube), "--baseline", "mosaic", "--min-cov", "0.05", "--run", "m"]) == 0
    capsys.readouterr()  # (its progress bar)
    mine = tmp_path / "figures"
    mine.mkdir()
    (mine / "samples.csv").write_text("my table")
    refused(
        ["report", str(cube), "--out", str(mine)],
        capsys,
        "holds files that are not an evaluation report",
        "samples.csv",
    )
    assert (mine / "samples.csv").read_text() == "my table" and len(list(mine.iterdir())) == 1
    report = tmp_path / "report"
    assert main(["report", str(cube), "--out", str(report)]) == 0
    assert main(["report", str(cube), "--out", str(report)]) == 0  # its own earlier report is replaced
    assert (report / "report.md").read_text().startswith("# Evaluation report: m")


def test_synth_overwrite_replaces_only_a_synthetic_data_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    refused(
        ["synth", str(tmp_path), "--size", "16", "--times", "1", "--overwrite"], capsys, "not made by this generator"
    )
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def _inside_a_cube(cube: Path, tiny_root: Path, tmp_path: Path) -> dict[str, tuple[list[str], Path]]:
    """Each command with an output inside ``cube``: its arguments and the output."""
    small = [*TINY_TRAINING, "--max-steps", "1"]
    return {
        "report": (["report", str(cube), "--out", str(cube / "runs" / "mine")], cube / "runs" / "mine"),
        "train": (["train", str(cube), "--out", str(cube / "train"), *small], cube / "train"),
        "index": (["index", str(cube), "--out", str(cube / "S2" / "patches.parquet")], cube / "S2" / "patches.parquet"),
        "convert": (
            ["convert", str(tiny_root), str(cube / "sub.zarr"), "--workers", "1", "--detectors", "none"],
            cube / "sub.zarr",
        ),
        "convert --report": (
            [
                "convert",
                str(tiny_root),
                str(tmp_path / "new.zarr"),
                "--workers",
                "1",
                "--report",
                str(cube / "report.json"),
            ],
            cube / "report.json",
        ),
    }


@pytest.mark.parametrize("command", ["report", "train", "index", "convert", "convert --report"])
def test_no_output_is_written_inside_a_cube(
    sampling_cube: Path, tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    cube = Path(shutil.copytree(sampling_cube, tmp_path / "cube.zarr"))
    before, source = _snapshot(cube), _snapshot(tiny_root)
    argv, output = _inside_a_cube(cube, tiny_root, tmp_path)[command]
    refused(argv, capsys, f"crts {command.split()[0]}: error: {output}: ", f"inside the cube {cube};")
    assert _snapshot(cube) == before and _snapshot(tiny_root) == source
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.zarr"]


def test_an_export_is_not_written_inside_a_cube(sampling_cube: Path, tmp_path: Path) -> None:
    from cube import open_cube
    from cube.analysis.export import to_geotiff, to_netcdf
    from cube.store.outputs import OutputRefused

    cube = Path(shutil.copytree(sampling_cube, tmp_path / "cube.zarr"))
    before = _snapshot(cube)
    ds = open_cube(cube)
    with pytest.raises(OutputRefused, match=f"^{cube / 'S2' / 'patch.tif'}: the output lies inside the cube {cube};"):
        to_geotiff(ds, 0, 0, cube / "S2" / "patch.tif")
    with pytest.raises(OutputRefused, match=f"^{cube / 'patch.nc'}: the output lies inside the cube {cube};"):
        to_netcdf(ds, 0, cube / "patch.nc", time=0)
    assert _snapshot(cube) == before


def test_prune_through_a_link_is_one_line_and_deletes_nothing(
    tiny_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cube = Path(shutil.copytree(tiny_cube, tmp_path / "cube.zarr"))
    elsewhere = tmp_path / "elsewhere" / "v20200101T000000Z-0123abcd"  # a leftover's name, 2020: pruned if a run's
    elsewhere.mkdir(parents=True)
    (elsewhere / "thesis.tex").write_text("years of work")
    (cube / "runs").mkdir(exist_ok=True)
    (cube / "runs" / "shared").symlink_to(elsewhere.parent)
    refused(
        ["runs", str(cube), "--prune", "--older-than", "1"],
        capsys,
        f"crts runs: error: {cube / 'runs' / 'shared'}: is a symbolic link (to {elsewhere.parent})",
    )
    assert (elsewhere / "thesis.tex").read_text() == "years of work"
    assert (cube / "runs" / "shared").is_symlink()


def _paths(folder: Path) -> dict[str, str]:
    """Every file (with its digest) and folder under ``folder``: a folder created and left empty counts too."""
    return {
        **{p.relative_to(folder).as_posix(): "folder" for p in folder.rglob("*") if p.is_dir()},
        **_snapshot(folder),
    }


@pytest.fixture(scope="module")
def tiny_archives(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cube.synth.archives import write_archives

    out = tmp_path_factory.mktemp("archives") / "archives"
    write_archives(tiny_root, out, progress=False)
    return out


SYNTH = ["--rois", "ROIs1868/17", "--patches-per-roi", "1", "--size", "16", "--times", "1", "--workers", "1"]


def _also_inside_a_cube(cube: Path, archives: Path, tmp_path: Path) -> dict[str, tuple[list[str], Path]]:
    """More commands with an output inside ``cube``, each checked where the output is made: its arguments and the
    output."""
    return {
        "synth": (["synth", str(cube / "synthetic"), *SYNTH], cube / "synthetic"),
        "synth --archives": (["synth", "--archives", str(cube / "archives"), *SYNTH], cube / "archives"),
        "synth OUT --archives": (
            ["synth", str(tmp_path / "tree"), "--archives", str(cube / "archives"), *SYNTH],
            cube / "archives",
        ),
        "synth --preview": (
            ["synth", str(tmp_path / "tree"), "--preview", str(cube / "preview.png"), *SYNTH],
            cube / "preview.png",
        ),
        "stats --plot": (["stats", str(cube), "--plot", str(cube / "coverage.png")], cube / "coverage.png"),
        "download": (
            [
                "download",
                str(cube / "archives"),
                "--regions",
                "europa",
                "--split",
                "test",
                "--base-url",
                "http://127.0.0.1:9",
            ],
            cube / "archives",
        ),
        "convert --scratch": (
            [
                "convert",
                str(archives),
                str(tmp_path / "new.zarr"),
                "--workers",
                "1",
                "--detectors",
                "none",
                "--scratch",
                str(cube / "scratch"),
            ],
            cube / "scratch",
        ),
    }


@pytest.mark.parametrize(
    "command",
    [
        "synth",
        "synth --archives",
        "synth OUT --archives",
        "synth --preview",
        "stats --plot",
        "download",
        "convert --scratch",
    ],
)
def test_no_synthetic_set_figure_download_or_scratch_inside_a_cube(
    sampling_cube: Path, tiny_archives: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """The old code wrote each of these into the cube (a folder left there by download; convert's scratch deleted
    again, after a conversion that went on)."""
    cube = Path(shutil.copytree(sampling_cube, tmp_path / "cube.zarr"))
    before, archives = _paths(cube), _snapshot(tiny_archives)
    argv, output = _also_inside_a_cube(cube, tiny_archives, tmp_path)[command]
    line = refused(argv, capsys, f"inside the cube {cube};")  # (after synth OUT's progress bar)
    assert line.startswith(f"crts {command.split()[0]}: error: {output}: "), line
    assert _paths(cube) == before and _snapshot(tiny_archives) == archives
    assert sorted(p.name for p in tmp_path.iterdir()) in (["cube.zarr"], ["cube.zarr", "tree"])


def test_the_python_api_refuses_the_same_outputs_inside_a_cube(
    sampling_cube: Path, tiny_root: Path, tiny_archives: Path, tmp_path: Path
) -> None:
    from cube import convert, open_cube
    from cube.analysis.plots import plot_coverage
    from cube.analysis.stats import coverage_index
    from cube.ingest.download import download
    from cube.store.outputs import OutputRefused
    from cube.synth import make_dataset
    from cube.synth.archives import make_archived_dataset, write_archives
    from cube.synth.preview import plot_patch

    cube = Path(shutil.copytree(sampling_cube, tmp_path / "cube.zarr"))
    before = _paths(cube)
    index = coverage_index(open_cube(cube))
    calls = {
        "synthetic": lambda out: make_dataset(out, ["ROIs1868/17"], size=16, times=1, workers=1),
        "archived": lambda out: make_archived_dataset(out, ["ROIs1868/17"], size=16, times=1, workers=1),
        "archives": lambda out: write_archives(tiny_root, out, progress=False),
        "coverage.png": lambda out: plot_coverage(index, out=out),
        "preview.png": lambda out: plot_patch(tiny_root, out=out),
        "download": lambda out: download([], out),
        "scratch": lambda out: convert(tiny_archives, tmp_path / "new.zarr", scratch=out, workers=1),
    }
    for name, call in calls.items():
        with pytest.raises(OutputRefused, match=f"^{cube / name}: .* lies inside the cube {cube};"):
            call(cube / name)
    assert _paths(cube) == before and sorted(p.name for p in tmp_path.iterdir()) == ["cube.zarr"]
