"""What a conversion's source names: one tree (the tree driver), or archives and trees (the archive driver)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cube.ingest.sources import resolve_sources


def test_one_tree_goes_to_the_tree_driver(tiny_root: Path) -> None:
    assert resolve_sources(tiny_root) is None
    assert resolve_sources([str(tiny_root)]) is None


def test_archives_are_grouped_and_named_relative_to_their_folder(tmp_path: Path) -> None:
    for name in ("s2_europa.tar.gz", "s1_europa.tar.gz", "s1_africa_test.tar.gz", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    sources = resolve_sources(tmp_path)
    assert sources.root == str(tmp_path.resolve()) and sources.layout == "sen12mscrts" and sources.trees == []
    groups = sources.groups()
    assert list(groups) == ["africa_test", "europa"]
    assert [a.name for a in groups["europa"]] == ["s1_europa.tar.gz", "s2_europa.tar.gz"]


def test_a_tree_with_archives_is_read_by_the_archive_driver(tiny_root: Path, tmp_path: Path) -> None:
    (tmp_path / "s1_europa.tar.gz").write_bytes(b"")
    sources = resolve_sources([tiny_root, tmp_path / "s1_europa.tar.gz"])
    assert sources.trees == [tiny_root.resolve()] and [a.name for a in sources.archives] == [
        str((tmp_path / "s1_europa.tar.gz").relative_to(sources.root))
    ]


def test_a_folder_of_neither_and_mixed_data_sets_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"holds neither ROIsXXXX/ folders nor .tar.gz archives"):
        resolve_sources(tmp_path)
    mixed = [tmp_path / "s1_europa.tar.gz", tmp_path / "ROIs1158_spring_s1.tar.gz"]
    for path in mixed:
        path.write_bytes(b"")
    with pytest.raises(ValueError, match="mixes SEN12MS-CR-TS and SEN12MS-CR sources; convert them into separate"):
        resolve_sources(mixed)


def test_a_missing_source_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'absent'}: no such file, folder or URL"):
        resolve_sources(tmp_path / "absent")
