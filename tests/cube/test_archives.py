"""Archives are read member by member as a stream; a broken one is one error naming where it broke."""

from __future__ import annotations

from pathlib import Path

import pytest

from cube.archives import Archive, ArchiveError, MemberStream
from cube.synth import make_dataset
from cube.synth.archives import write_archives
from tests.servers import http_server


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("one_archive")
    tree = make_dataset(base / "tree", ["ROIs1868/17"], patches_per_roi=2, size=16, times=3, workers=1,
                        progress=False)
    write_archives(tree, base / "archives", progress=False)
    return base / "archives" / "s2_europa.tar.gz"


def test_members_stream_in_archive_order_with_their_bytes(archive: Path) -> None:
    members = list(MemberStream(Archive(str(archive), archive.name)))
    assert [name for name, _ in members] == sorted(name for name, _ in members)  # a walk of the tree
    assert len(members) == 2 * 3 and all(name.startswith("europa/ROIs1868/17/S2/") for name, _ in members)
    assert all(content[:2] in (b"II", b"MM") for _, content in members)  # whole GeoTIFFs


def test_a_url_streams_the_same_members(archive: Path) -> None:
    local = list(MemberStream(Archive(str(archive), archive.name)))
    with http_server(archive.parent) as url:
        remote = list(MemberStream(Archive(f"{url}/{archive.name}", archive.name)))
    assert remote == local


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_a_truncated_archive_names_the_last_member_read_whole(archive: Path, tmp_path: Path, keep: float) -> None:
    data = archive.read_bytes()
    broken = tmp_path / archive.name
    broken.write_bytes(data[: int(len(data) * keep)])
    read = []
    with pytest.raises(ArchiveError, match=r"^s2_europa.tar.gz: truncated or corrupt archive, broke after member "
                                           r"europa/ROIs1868/17/S2/") as caught:
        for name, _ in MemberStream(Archive(str(broken), broken.name)):
            read.append(name)
    assert read and read[-1] in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("where", [0.5, -6])  # a byte of the compressed data; of the CRC in the trailer
def test_a_corrupt_byte_is_an_error(archive: Path, tmp_path: Path, where: float) -> None:
    data = bytearray(archive.read_bytes())
    data[int(len(data) * where) if where > 0 else where] ^= 0xFF
    broken = tmp_path / archive.name
    broken.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"^s2_europa.tar.gz: truncated or corrupt archive, broke "):
        list(MemberStream(Archive(str(broken), broken.name)))


def test_a_missing_archive_url_is_one_error(tmp_path: Path) -> None:
    with http_server(tmp_path) as url, pytest.raises(ArchiveError, match="s2_x.tar.gz: cannot be opened"):
        MemberStream(Archive(f"{url}/s2_x.tar.gz", "s2_x.tar.gz"))
