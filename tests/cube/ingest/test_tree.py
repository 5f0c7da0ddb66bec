"""The tree driver: the whole tree checked before the first write, then the writes under the writer lock."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from cube.ingest.building import ConversionError
from cube.ingest.options import ConversionOptions
from cube.ingest.tree import convert_tree


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"times": 4}, "invalid times 4: a tree's time steps are counted"),
        ({"groups_at_once": 2}, "invalid groups_at_once 2: a tree is read by the workers"),
    ],
)
def test_archive_options_are_refused_for_a_tree(tiny_root: Path, tmp_path: Path, option: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        convert_tree(tiny_root, tmp_path / "cube.zarr", ConversionOptions(**option), time.perf_counter())
    assert not (tmp_path / "cube.zarr").exists()


def test_a_file_missing_anywhere_in_the_tree_stops_it_before_the_first_write(tiny_root: Path, tmp_path: Path) -> None:
    tree = Path(shutil.copytree(tiny_root, tmp_path / "SEN12MSCRTS"))
    last = sorted(tree.glob("ROIs2017/32/S2/3/*_patch_*.tif"))[-1]
    last.unlink()
    options = ConversionOptions(workers=1, progress=False, clouds=())
    with pytest.raises(ConversionError, match=f"1 problem\\(s\\) in {tree}") as err:
        convert_tree(tree, tmp_path / "cube.zarr", options, time.perf_counter())
    assert "ROIs2017" in str(err.value)
    assert not (tmp_path / "cube.zarr").exists()


def test_a_tree_is_converted_and_reported(tiny_root: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    out = convert_tree(
        tiny_root,
        tmp_path / "cube.zarr",
        ConversionOptions(workers=1, progress=False, clouds=(), report=report),
        time.perf_counter(),
    )
    assert (out.patches_in_cube, out.patches_added, out.patches_converted, out.gaps) == (6, 6, 6, 0)
    assert out.layout == "sen12mscrts" and out.source == str(tiny_root.resolve()) and report.is_file()
