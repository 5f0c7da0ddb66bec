from __future__ import annotations

from pathlib import Path

import pytest

from crts.cli import main
from cube.dataset.layout import scan_ts


def test_synth_writes_a_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "synth",
            str(tmp_path / "d"),
            "--rois",
            "ROIs1868/17,ROIs2017/63",
            "--patches-per-roi",
            "1",
            "--size",
            "32",
            "--times",
            "2",
            "--workers",
            "1",
        ]
    )
    assert code == 0
    files, problems = scan_ts(tmp_path / "d")
    assert len(files) == 2 * 1 * 2 * 2 and problems == []
    assert "wrote sen12mscrts data set with 2 ROIs" in capsys.readouterr().out


def test_non_empty_output_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("x")
    assert main(["synth", str(tmp_path), "--size", "16", "--times", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_convert_then_resume_is_a_no_op(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cube = tmp_path / "cube.zarr"
    assert main(["convert", str(tiny_root), str(cube), "--workers", "1", "--report", str(tmp_path / "r.json")]) == 0
    assert "6 patches (6 added, 6 converted, 6 through the cloud pass)" in capsys.readouterr().out
    assert main(["convert", str(tiny_root), str(cube), "--workers", "1", "--resume"]) == 0
    assert "6 patches (0 added, 0 converted, 0 through the cloud pass)" in capsys.readouterr().out
    assert (tmp_path / "r.json").exists()


def test_convert_bad_file_is_named(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(tiny_root, src)
    victim = next((src / "ROIs2017/32/S2/3").glob("*.tif"))
    victim.write_bytes(b"not a tiff")
    assert main(["convert", str(src), str(tmp_path / "c.zarr"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "crts convert: error:" in err and str(victim) in err and "cannot be read" in err


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--workers", "0"], "invalid workers 0"), (["--detectors", "fmask"], "invalid detector 'fmask'")],
)
def test_download_refuses_a_bad_conversion_option_before_fetching(
    tmp_path: Path, option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "archives"
    assert (
        main(
            [
                "download",
                str(dest),
                "--regions",
                "europa",
                "--split",
                "test",
                "--base-url",
                "http://127.0.0.1:9",
                "--convert",
                str(tmp_path / "cube.zarr"),
                *option,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not dest.exists() and not (tmp_path / "cube.zarr").exists()


def test_clouds_command_is_a_no_op_when_done(tiny_cube: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clouds", str(tiny_cube), "--workers", "1"]) == 0
    assert "cloud pass over 0 patch(es)" in capsys.readouterr().out
    assert main(["clouds", str(tiny_cube), "--detectors", "fmask"]) == 2
    assert "invalid detector(s) fmask" in capsys.readouterr().err
