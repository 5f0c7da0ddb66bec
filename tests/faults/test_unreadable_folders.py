"""A folder of the tree that cannot be read is reported, never left out silently.

Tests run as root, for whom ``chmod 000`` changes nothing, so the folders are
made unreadable for everyone: replaced by a dangling link, a link loop or a
file. A whole ROI, both modality folders of a ROI, or the last time step of
every modality folder used to vanish from the cube without a word (exit
status 0); one modality or one earlier step showed only as missing files.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cube import ConversionError, convert, open_cube
from cube.dataset.layout import scan_cr, scan_ts
from cube.synth import make_dataset

pytestmark = pytest.mark.faults


def dangling_link(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.symlink_to(folder.with_name(folder.name + "-gone"))


def link_loop(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.symlink_to(folder)


def a_file(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.write_text("not a folder")


BREAKS: dict[str, Callable[[Path], None]] = {f.__name__: f for f in (dangling_link, link_loop, a_file)}
FOLDERS = {"ROI group": "ROIs2017", "ROI": "ROIs2017/32", "modality": "ROIs2017/32/S2", "time step": "ROIs2017/32/S1/3"}


@pytest.fixture
def source(tiny_root: Path, tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(tiny_root, src, ignore=shutil.ignore_patterns("ground_truth"))
    return src


@pytest.mark.parametrize("level", list(FOLDERS))
@pytest.mark.parametrize("how", list(BREAKS))
def test_scan_names_the_unreadable_folder(source: Path, level: str, how: str) -> None:
    folder = source / FOLDERS[level]
    BREAKS[how](folder)
    files, problems = scan_ts(source)
    assert [p for p in problems if p.path == str(folder) and p.roi is None], problems
    assert files and not [f for f in files if f.path.is_relative_to(folder)]


SILENT = {  # each left data out of the cube without a word before
    "ROI": ["ROIs2017/32"],
    "both modalities": ["ROIs2017/32/S1", "ROIs2017/32/S2"],
    "last time step": [f"{roi}/{m}/3" for roi in ("ROIs1868/17", "ROIs2017/32") for m in ("S1", "S2")],
}


@pytest.mark.parametrize("case", list(SILENT))
def test_fail_names_the_folder(source: Path, tmp_path: Path, case: str) -> None:
    for folder in SILENT[case]:
        dangling_link(source / folder)
    with pytest.raises(ConversionError) as err:
        convert(source, tmp_path / "c.zarr", workers=1, progress=False)
    for folder in SILENT[case]:
        assert f"{source / folder}: cannot be read as a folder" in str(err.value)
    assert not (tmp_path / "c.zarr").exists()


def test_skip_reports_the_folder_and_converts_the_rest(source: Path, tmp_path: Path) -> None:
    link_loop(source / "ROIs2017/32")
    report = tmp_path / "report.json"
    convert(source, tmp_path / "c.zarr", on_error="skip", report=report, clouds=(), workers=1, progress=False)
    problems = json.loads(report.read_text())["problems"]
    assert [p["path"] for p in problems] == [str(source / "ROIs2017/32")]
    assert "cannot be read as a folder" in problems[0]["message"]
    assert set(open_cube(tmp_path / "c.zarr").roi.values.tolist()) == {17}


@pytest.mark.parametrize(
    "folders", [["ROIs1158_spring_s2_cloudy"], [f"ROIs1158_spring_{k}/{k}_106" for k in ("s1", "s2", "s2_cloudy")]]
)
def test_mono_temporal_folders_too(tmp_path: Path, folders: list[str]) -> None:
    root = make_dataset(
        tmp_path / "cr",
        ["ROIs1158/106", "ROIs1868/17"],
        patches_per_roi=1,
        size=32,
        layout="sen12mscr",
        workers=1,
        progress=False,
    )
    for folder in folders:
        link_loop(root / folder)
    files, problems = scan_cr(root)
    assert [str(p) for p in problems] == [
        f"{root / f}: cannot be read as a folder (Too many levels of symbolic links)" for f in sorted(folders)
    ]
    assert {f.roi.number for f in files} == ({17} if len(folders) == 3 else {17, 106})
    with pytest.raises(ConversionError, match=f"{root / folders[0]}: cannot be read as a folder"):
        convert(root, tmp_path / "cr.zarr", workers=1, progress=False)
