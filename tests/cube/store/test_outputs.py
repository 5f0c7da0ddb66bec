"""Where outputs may go: never inside a cube or the source, only into folders a command owns, written whole.

The commands' refusals are tested end to end in tests/faults/test_output_folders.py; these are the checks
themselves.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from cube.store.outputs import (
    CUBE_DOCUMENT_MAX_BYTES,
    OutputRefused,
    check_no_links,
    check_not_in_cube,
    check_output_folder,
    check_outside,
    is_cube,
    replacing,
    writing,
)


def _group(folder: Path, attributes: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zarr.json").write_text(json.dumps({"node_type": "group", "attributes": attributes}))
    return folder


def test_a_cube_is_a_group_naming_its_schema_or_holding_the_cube_state(tmp_path: Path) -> None:
    assert is_cube(_group(tmp_path / "a", {"schema_version": 3}))
    assert not is_cube(_group(tmp_path / "b", {"other": 1}))  # a plain zarr group
    _group(tmp_path / "c" / "cube_state", {})
    assert is_cube(tmp_path / "c")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "zarr.json").write_bytes(b"\xff not json")
    assert not is_cube(tmp_path / "d") and not is_cube(tmp_path / "absent")


def test_an_oversized_cube_document_is_not_read(tmp_path: Path) -> None:
    folder = _group(tmp_path / "big", {"schema_version": 3})
    with (folder / "zarr.json").open("a") as f:
        f.write(" " * CUBE_DOCUMENT_MAX_BYTES)
    assert not is_cube(folder)


def test_an_output_inside_a_cube_or_through_a_link_into_one_is_refused(tmp_path: Path) -> None:
    cube = _group(tmp_path / "cube.zarr", {"schema_version": 3})
    (tmp_path / "link").symlink_to(cube)
    for path, where in (
        (cube / "S2" / "out.csv", "lies inside the cube"),
        (tmp_path / "link" / "x", "lies inside"),
        (cube, "is the cube"),
    ):
        with pytest.raises(OutputRefused, match=where) as raised:
            check_not_in_cube(path)
        assert "\n" not in str(raised.value)
    check_not_in_cube(cube, itself=False)  # the cube's own folder, as a command that writes into it asks
    check_not_in_cube(tmp_path / "beside.csv")


def test_an_output_must_neither_lie_in_nor_hold_the_source(tmp_path: Path) -> None:
    source = tmp_path / "data" / "SEN12MSCRTS"
    check_outside(tmp_path / "data" / "cube.zarr", source)
    for target, words in (
        (source, "lies inside the source"),
        (source / "x", "lies inside the source"),
        (tmp_path, "would hold the source"),
    ):
        with pytest.raises(ValueError, match=words):
            check_outside(target, source, "the cube")


def test_an_output_folder_must_be_new_empty_or_already_the_command_s(tmp_path: Path) -> None:
    def own(folder: Path) -> bool:
        return (folder / "report.md").exists()

    check_output_folder(tmp_path / "new", own, "a report")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "report.md").write_text("")
    check_output_folder(tmp_path / "mine", own, "a report")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ValueError, match=r"holds files that are not a report \(e.g. mine\)"):
        check_output_folder(tmp_path, own, "a report")
    with pytest.raises(ValueError, match=r"notes\.txt: is a file, not a folder for a report"):
        check_output_folder(tmp_path / "notes.txt", own, "a report")


def test_deletion_through_a_link_or_out_of_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "runs" / "a").mkdir(parents=True)
    assert check_no_links(tmp_path, "runs/a") == tmp_path / "runs" / "a"
    (tmp_path / "runs" / "b").symlink_to(tmp_path / "runs" / "a")
    with pytest.raises(OutputRefused, match="is a symbolic link"):
        check_no_links(tmp_path, "runs/b")
    with pytest.raises(OutputRefused, match="lies outside"):
        check_no_links(tmp_path / "runs", "../runs")


def test_a_replaced_file_is_whole_or_untouched_and_no_partial_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as partial:
        partial.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old"
    with replacing(target) as partial:
        partial.write_text("new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["table.csv"]


def test_a_refusing_os_error_becomes_one_line_naming_the_output() -> None:
    with pytest.raises(OutputRefused) as raised, writing("/d/out", "the table cannot be written"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/d/out/part")
    assert str(raised.value) == "/d/out: the table cannot be written: No space left on device (/d/out/part)"
    with pytest.raises(FileNotFoundError), writing("/d/out"):  # not a refusal: passes unchanged
        raise FileNotFoundError(errno.ENOENT, "gone")
