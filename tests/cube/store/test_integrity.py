"""`crts verify` / cube.verify: an intact cube passes silently; damaged shards are named, one line each, with the
patches they hold and how to get them back, exit status 2; a selection checks only its patches; on a bucket too."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import cube
from crts.cli import main
from cube import convert
from cube.store.chunks import DamagedShardError
from cube.store.integrity import verify
from cube.store.reads import get_tails
from cube.store.store import CubeStore
from cube.synth import make_dataset
from tests.helpers import chunks_per_shard, damage_cases, damaged_copy, index_of, label_of, with_index

HINT = (
    "repair: crts convert does not convert stored patches again (a resumed or repeated conversion skips them); "
    "restore the shards from a copy, or convert their ROIs from the source into a new cube: crts convert {src} "
    "NEW.zarr --rois {rois}"
)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 ROIs (one train, one test) x 2 patches x 4 steps of 32 px."""
    return make_dataset(
        tmp_path_factory.mktemp("verify") / "src",
        ["ROIs1868/17", "ROIs2017/63"],
        patches_per_roi=2,
        size=32,
        times=4,
        seed=5,
        workers=1,
        progress=False,
    )


@pytest.fixture(scope="module")
def intact(tree: Path) -> Path:
    dst = tree.parent / "cube.zarr"
    convert(tree, dst, workers=1, progress=False)
    return dst


def _flip_crc(shard: bytes) -> bytes:
    return shard[:-1] + bytes([shard[-1] ^ 0xFF])


def _huge_length(entries: int) -> object:
    def edit(shard: bytes) -> bytes:
        index = index_of(shard, entries)
        index[1, 1] = 2**40
        return with_index(shard, index)

    return edit


@pytest.fixture
def damaged(intact: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy with S2 of store position 1 failing its crc and S1 of position 3 giving a chunk 1 TiB; the messages
    (the second whole, the first's start)."""
    copy = tmp_path / "cube.zarr"
    shutil.copytree(intact, copy)
    edits = {"S2/c/1/0/0/0/0": _flip_crc, "S1/c/3/0/0/0/0": _huge_length(chunks_per_shard(intact, "S1"))}
    for key, edit in edits.items():
        (copy / key).write_bytes(edit((copy / key).read_bytes()))
    return copy, [
        f"{copy}/S1/c/3/0/0/0/0 ({label_of(intact, 3)}): damaged shard: its index gives chunk 1 {2**40} bytes at byte",
        f"{copy}/S2/c/1/0/0/0/0 ({label_of(intact, 1)}): damaged shard: its index fails its crc32c checksum",
    ]


def test_an_intact_cube_passes_silently(intact: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(intact)]) == 0
    assert capsys.readouterr() == ("", "")
    report = cube.verify(intact)
    assert report.damaged == [] and report.shards == 4 * len(_sharded(intact))


def _listing(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``path`` with its size and modification time."""
    return {str(f.relative_to(path)): (f.stat().st_size, f.stat().st_mtime_ns) for f in path.rglob("*") if f.is_file()}


def _sharded(path: Path) -> list[str]:
    return [
        name
        for name in (
            "S1",
            "S2",
            "s2cloudless_mask",
            "s2cloudless_map",
            "cloud_cloudshadow_mask",
            "s2cloudless_probability",
        )
        if (path / name).is_dir()
    ]


def test_damaged_shards_are_named_one_line_each(
    damaged: tuple[Path, list[str]], tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy, expected = damaged
    before = _listing(copy)
    assert main(["verify", str(copy)]) == 2
    assert _listing(copy) == before  # nothing written, nothing repaired or deleted
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(expected[0]) and lines[1] == expected[1]
    rois = ",".join(dict.fromkeys(label_of(copy, p).split(" patch ")[0] for p in (3, 1)))
    total = 4 * len(_sharded(copy))
    assert err == f"crts verify: error: {copy}: 2 of {total} shard(s) damaged; {HINT.format(src=tree, rois=rois)}\n"


@pytest.mark.parametrize("case", list(damage_cases(1, 1)))
def test_each_damage_is_named_alike_by_verify_and_the_read_path(
    intact: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    chunk_bytes = 13 * 32 * 32 * 2  # one S2 image of this cube
    edit, _ = damage_cases(chunks_per_shard(intact, "S2"), chunk_bytes)[case]
    copy, _ = damaged_copy(intact, tmp_path, "S2/c/2/0/0/0/0", edit)
    with pytest.raises(DamagedShardError) as err:
        CubeStore(copy).read([("S2", (2, t)) for t in range(4)])
    assert main(["verify", str(copy)]) == 2
    assert capsys.readouterr().out == f"{err.value}\n"


def test_the_read_path_names_the_same_shard(
    damaged: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    copy, expected = damaged
    with pytest.raises(DamagedShardError) as err:
        CubeStore(copy).read([("S2", (1, 0))])
    assert str(err.value) == expected[1]


def test_a_selection_checks_only_its_patches(damaged: tuple[Path, list[str]]) -> None:
    copy, expected = damaged
    first = label_of(copy, 0).replace(" patch ", "/")
    assert verify(copy, patches=[first]).damaged == []
    one = verify(copy, patches=[label_of(copy, 1).replace(" patch ", "/")])
    assert [str(e) for e in one.damaged] == [expected[1]] and one.shards == len(_sharded(copy))
    roi = label_of(copy, 3).split(" patch ")[0]
    assert [str(e)[: len(expected[0])] for e in verify(copy, patches=[roi]).damaged] == [expected[0]]


@pytest.mark.parametrize(
    ("option", "values"), [("split", ("train", "test", "val")), ("region", ("europa", "america", "africa"))]
)
def test_split_and_region_select(damaged: tuple[Path, list[str]], option: str, values: tuple[str, ...]) -> None:
    copy = damaged[0]
    of = CubeStore(copy).array(option)[:]
    for value in values:
        report = verify(copy, **{option: value})
        assert sorted(e.patches.start for e in report.damaged) == [p for p in (1, 3) if of[p] == value]
        assert report.shards == int((of == value).sum()) * len(_sharded(copy))


def test_an_absent_image_shard_is_named(intact: Path, tmp_path: Path) -> None:
    copy = tmp_path / "cube.zarr"
    shutil.copytree(intact, copy)
    (copy / "S2/c/2/0/0/0/0").unlink()
    (copy / "s2cloudless_mask/c/2/0/0/0").unlink(missing_ok=True)
    report = verify(copy)
    assert [str(e) for e in report.damaged] == [
        f"{copy}/S2/c/2/0/0/0/0 ({label_of(copy, 2)}): damaged shard: absent, "
        "but the valid flags say its patch has images"
    ]


@pytest.mark.parametrize(
    ("patches", "message"),
    [
        ("ROIs1868/18", "--patches 'ROIs1868/18': no such ROI or patch in the cube"),
        ("ROIs1868/17/x", "--patches 'ROIs1868/17/x': give ROIsXXXX/NN or ROIsXXXX/NN/PATCH"),
    ],
)
def test_a_bad_selection_is_one_line(
    intact: Path, patches: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(intact), "--patches", patches]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"crts verify: error: {message}") and err.count("\n") == 1


@pytest.mark.slow
def test_a_cube_in_a_bucket(s3_cube: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = s3_cube  # this module's only user of it: damaging it below disturbs no other test
    assert main(["verify", url]) == 0 and capsys.readouterr() == ("", "")
    store = CubeStore(url, "r+")
    key = "S2/c/1/0/0/0/0"
    store.write(key, _flip_crc(get_tails(store, {key: 10**9})[key][0].tobytes()))
    assert main(["verify", url]) == 2
    out, _ = capsys.readouterr()
    assert out == f"{url}/{key} ({label_of(url, 1)}): damaged shard: its index fails its crc32c checksum\n"


def test_a_command_reading_the_damaged_shard_ends_in_one_line(
    damaged: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    copy, expected = damaged
    split = CubeStore(copy).array("split")[1]
    code = main(
        ["evaluate", str(copy), "--baseline", "least_cloudy", "--split", str(split), "--run", "x", "--device", "cpu"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1] == f"crts evaluate: error: {expected[1]}"
    assert cube.list_runs(CubeStore(copy)) == []  # nothing published
