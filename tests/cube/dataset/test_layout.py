from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cube.dataset.layout import cr_relpath, parse_cr_path, parse_ts_path, scan_ts, ts_relpath
from cube.dataset.rois import Roi

ROOT = Path("/data")


def test_ts_name_matches_the_reference_example() -> None:
    rel = ts_relpath("S2", Roi("ROIs1868", 73), 14, dt.date(2018, 6, 21), 171)
    assert rel.as_posix() == "ROIs1868/73/S2/14/s2_ROIs1868_73_ImgNo_14_2018-06-21_patch_171.tif"
    assert rel.name.split("_")[5] == "2018-06-21"  # field 5 is the date


def test_ts_name_round_trip() -> None:
    roi = Roi("ROIs2017", 8)
    path = ROOT / ts_relpath("S1", roi, 29, dt.date(2018, 12, 30), 3)
    parsed = parse_ts_path(path, ROOT)
    assert (parsed.modality, parsed.roi, parsed.t, parsed.date, parsed.pid) == ("S1", roi, 29, dt.date(2018, 12, 30), 3)


def test_cr_name_matches_the_reference_example() -> None:
    rel = cr_relpath("s2_cloudy", Roi("ROIs1158", 106), 407)
    assert rel.as_posix() == ("ROIs1158_spring_s2_cloudy/s2_cloudy_106/ROIs1158_spring_s2_cloudy_106_p407.tif")
    parsed = parse_cr_path(ROOT / rel, ROOT)
    assert (parsed.kind, parsed.roi, parsed.pid) == ("s2_cloudy", Roi("ROIs1158", 106), 407)


@pytest.mark.parametrize(
    ("rel", "problem"),
    [
        ("ROIs1868/73/S2/14/s2_ROIs1868_73_ImgNo_14_2018-06-21_patch_171.tiff", "does not follow"),
        ("ROIs1868/73/S2/14/s2_ROIs1868_73_ImgNo_14_2018-13-21_patch_171.tif", "invalid date"),
        ("ROIs1868/73/S2/15/s2_ROIs1868_73_ImgNo_14_2018-06-21_patch_171.tif", "lies in ROIs1868/73/S2/15"),
        ("ROIs1868/73/S1/14/s2_ROIs1868_73_ImgNo_14_2018-06-21_patch_171.tif", "lies in"),
    ],
)
def test_bad_names_are_reported_with_the_file(rel: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as err:
        parse_ts_path(ROOT / rel, ROOT)
    assert rel.split("/")[-1] in str(err.value)


def test_scan_uses_natural_order_and_reports_strays(tmp_path: Path) -> None:
    roi = Roi("ROIs1868", 17)
    for pid in (10, 9, 100):
        path = tmp_path / ts_relpath("S2", roi, 0, dt.date(2018, 1, 3), pid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    stray = tmp_path / "ROIs1868/17/S2/0/notes.tif"
    stray.touch()
    (tmp_path / "index.npy").touch()  # files beside the ROI folders are not looked at
    files, problems = scan_ts(tmp_path)
    assert [f.pid for f in files] == [9, 10, 100]
    assert [p.path for p in problems] == [str(stray)] and "file name does not follow" in problems[0].message
