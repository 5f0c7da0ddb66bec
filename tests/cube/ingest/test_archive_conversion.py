"""Converting the published archives as they are gives the cube of the extracted tree; resumable, bounded scratch."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zarr

from cube import convert, open_cube
from cube.dataset.layout import scan_ts
from cube.ingest import archive_conversion
from cube.ingest.archive_conversion import ConversionError
from cube.ingest.archives import ArchiveError
from cube.synth import make_dataset
from cube.synth.archives import write_archives
from tests.helpers import assert_same_cube, europa_archives, kill_when
from tests.servers import http_server


@pytest.fixture(scope="module")
def tiny_archives(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_root`` as its four published archives; the members of s2_europa.tar.gz in a random order."""
    out = tmp_path_factory.mktemp("archives") / "archives"
    write_archives(tiny_root, out, shuffle=["s2_europa.tar.gz"], progress=False)
    return out


def test_archives_give_the_cube_of_the_extracted_tree(
    tiny_archives: Path, tiny_root: Path, tiny_cube: Path, tmp_path: Path
) -> None:
    assert sorted(p.name for p in tiny_archives.iterdir()) == [
        "s1_africa_test.tar.gz",
        "s1_europa.tar.gz",
        "s2_africa_test.tar.gz",
        "s2_europa.tar.gz",
    ]
    report = convert(tiny_archives, tmp_path / "cube.zarr", times=4, workers=1, progress=False)
    assert_same_cube(tmp_path / "cube.zarr", tiny_cube)
    ds = open_cube(tmp_path / "cube.zarr")
    assert ds.attrs["source_root"] == str(tiny_archives)
    files, _ = scan_ts(tiny_root)
    for f in files:  # every image names its archive and member
        p = int(np.flatnonzero((ds.roi.values == f.roi.number) & (ds.patch_id.values == f.pid))[0])
        top = "europa" if f.roi.number == 17 else f"{f.modality.lower()}_africa_test"
        archive = f"{f.modality.lower()}_{'europa' if f.roi.number == 17 else 'africa_test'}.tar.gz"
        assert ds[f"{f.modality}_path"].values[p, f.t] == f"{archive}!{top}/{f.path.relative_to(tiny_root)}"
    assert sorted(report.archives_read) == sorted(p.name for p in tiny_archives.glob("*.tar.gz"))
    assert report.patches_added == 6 and report.gaps == 0 and report.cloud_pass_patches == 6
    assert report.scratch_peak_bytes > 0 and not (tmp_path / "cube.zarr.scratch").exists()


def test_archives_served_over_http(tiny_archives: Path, tiny_cube: Path, tmp_path: Path) -> None:
    with http_server(tiny_archives) as url:
        urls = [f"{url}/{p.name}" for p in sorted(tiny_archives.glob("*.tar.gz"))]
        report = convert(urls, tmp_path / "cube.zarr", times=4, workers=1, clouds=(), progress=False)
    assert report.patches_added == 6
    ds = open_cube(tmp_path / "cube.zarr")
    assert str(ds.S2_path.values[0, 0]).startswith(f"{url}/s2_")
    assert_same_cube(tmp_path / "cube.zarr", tiny_cube)


def test_archives_and_a_tree_together(tiny_archives: Path, tmp_path: Path) -> None:
    tree = make_dataset(
        tmp_path / "tree", ["ROIs1970/21"], patches_per_roi=1, size=32, times=4, workers=1, progress=False
    )
    convert(
        [tiny_archives / "s1_europa.tar.gz", tiny_archives / "s2_europa.tar.gz", tree],
        tmp_path / "cube.zarr",
        times=4,
        workers=1,
        clouds=(),
        progress=False,
    )
    ds = open_cube(tmp_path / "cube.zarr")
    assert list(ds.roi.values) == [17, 17, 17, 21]
    first = scan_ts(tree)[0][0].path  # a tree's files are named relative to the common folder of all sources
    assert ds.S1_path.values[-1, 0] == first.relative_to(ds.attrs["source_root"]).as_posix()
    archive = (tiny_archives / "s1_europa.tar.gz").relative_to(ds.attrs["source_root"])
    assert ds.S1_path.values[0, 0].startswith(f"{archive}!europa/ROIs1868/17/S1/0/")
    assert bool(ds.valid.all())


def _truncated(archives: Path, out: Path, name: str) -> Path:
    shutil.copytree(archives, out)
    data = (out / name).read_bytes()
    (out / name).write_bytes(data[: len(data) // 2])
    return out


def test_a_truncated_archive_is_one_line_and_its_missing_images_gaps(tiny_archives: Path, tmp_path: Path) -> None:
    src = _truncated(tiny_archives, tmp_path / "archives", "s2_africa_test.tar.gz")
    with pytest.raises(
        ConversionError,
        match=r"^s2_africa_test.tar.gz: truncated or corrupt archive, broke after "
        r"member s2_africa_test/ROIs2017/32/S2/\d/.*--resume",
    ) as caught:
        convert(src, tmp_path / "failed.zarr", times=4, workers=1, clouds=(), progress=False)
    assert "\n" not in str(caught.value)
    report = convert(src, tmp_path / "cube.zarr", times=4, workers=1, on_error="skip", clouds=(), progress=False)
    ds = open_cube(tmp_path / "cube.zarr")
    africa = ds.roi.values == 32
    assert bool(ds.valid.sel(modality="S1").all()) and bool(ds.valid.isel(patch=~africa).all())
    missing = ~ds.valid.sel(modality="S2").values[africa]
    assert 0 < report.gaps == missing.sum() < missing.size  # what the archive held before it broke is kept
    assert report.problems[0]["path"] == "s2_africa_test.tar.gz"


def test_resume_does_not_read_again_the_archives_converted_completely(
    tiny_archives: Path, tiny_cube: Path, tmp_path: Path
) -> None:
    src = _truncated(tiny_archives, tmp_path / "archives", "s2_europa.tar.gz")  # europa is read after africa_test
    with pytest.raises(ConversionError, match=r"s2_europa.tar.gz: truncated"):
        convert(src, tmp_path / "cube.zarr", times=4, workers=1, clouds=(), progress=False)
    shutil.copy(tiny_archives / "s2_europa.tar.gz", src / "s2_europa.tar.gz")  # downloaded again
    report = convert(src, tmp_path / "cube.zarr", resume=True, workers=1, clouds=(), progress=False)
    assert sorted(report.archives_read) == ["s1_europa.tar.gz", "s2_europa.tar.gz"]
    assert_same_cube(tmp_path / "cube.zarr", tiny_cube)


def test_groups_are_read_at_once(
    tiny_archives: Path, tiny_cube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 2 groups at once, europa's readers start while africa_test's wait before their first member."""
    europa_started, seen = threading.Event(), []

    class Stream(archive_conversion.MemberStream):
        def __iter__(self) -> Iterator[tuple[str, bytes | ArchiveError]]:
            if self.archive.group == "africa_test":
                seen.append(europa_started.wait(timeout=5))
            else:
                europa_started.set()
            yield from super().__iter__()

    monkeypatch.setattr(archive_conversion, "MemberStream", Stream)
    report = convert(
        tiny_archives, tmp_path / "cube.zarr", times=4, workers=1, groups_at_once=2, clouds=(), progress=False
    )
    assert seen == [True, True]
    assert sorted(report.archives_read) == sorted(p.name for p in tiny_archives.glob("*.tar.gz"))
    assert_same_cube(tmp_path / "cube.zarr", tiny_cube)


def test_an_archive_given_twice_is_converted_once(tiny_archives: Path, tiny_cube: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_archives, tmp_path / "copy")
    report = convert(
        [tiny_archives, copy],
        tmp_path / "cube.zarr",
        times=4,
        workers=1,
        groups_at_once=2,
        on_error="skip",
        clouds=(),
        progress=False,
    )
    assert_same_cube(tmp_path / "cube.zarr", tiny_cube)
    assert report.gaps == 0 and len(report.problems) == 48  # each member of one copy: 6 patches x 4 steps x 2
    assert all(" a second file for S" in f"{p['path']} {p['message']}" for p in report.problems)
    assert not (tmp_path / "cube.zarr.scratch").exists()


def test_a_patch_with_members_from_two_groups_waits_for_both(
    tiny_archives: Path, tiny_cube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Archives under other names form a group each. Here the S1 group has given each patch of its ROI a member
    when the S2 group ends: those patches wait for the rest of the S1 group (they are not converted with gaps)."""
    src = shutil.copytree(tiny_archives, tmp_path / "archives")
    (src / "s1_africa_test.tar.gz").rename(src / "radar_africa_test.tar.gz")
    s2_started, s1_given, s2_read = threading.Event(), threading.Event(), threading.Event()

    class Stream(archive_conversion.MemberStream):
        """S2 gives a member first; S1 one member of each patch; S2 ends; a second later S1 gives the rest."""

        def __iter__(self) -> Iterator[tuple[str, bytes | ArchiveError]]:
            s1, s2 = (self.archive.group == name for name in ("radar_africa_test", "africa_test"))
            if s1:
                s2_started.wait(timeout=10)
            for count, member in enumerate(super().__iter__()):
                if s1 and count == 3:
                    s1_given.set()
                    s2_read.wait(timeout=10)
                    time.sleep(1)  # the conversion has seen the S2 group end (it looks every 0.1 s)
                yield member
                if s2:
                    s2_started.set()
            if s2:
                s1_given.wait(timeout=10)
                s2_read.set()

    monkeypatch.setattr(archive_conversion, "MemberStream", Stream)
    report = convert(src, tmp_path / "cube.zarr", times=4, workers=1, groups_at_once=3, clouds=(), progress=False)
    assert report.gaps == 0 and report.problems == []
    assert_same_cube(tmp_path / "cube.zarr", tiny_cube)


def test_groups_at_once_is_checked(tiny_archives: Path, tiny_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^invalid groups_at_once 0: read at least 1 group"):
        convert(tiny_archives, tmp_path / "cube.zarr", groups_at_once=0, progress=False)
    with pytest.raises(ValueError, match=r"^invalid groups_at_once 2: a tree is read by the workers"):
        convert(tiny_root, tmp_path / "cube.zarr", groups_at_once=2, progress=False)
    assert not (tmp_path / "cube.zarr").exists()


@pytest.mark.slow
@pytest.mark.parametrize("at_once", ["1", "2"])
def test_kill_9_mid_archive_then_resume_gives_the_same_cube(
    tiny_archives: Path, tiny_cube: Path, tmp_path: Path, at_once: str
) -> None:
    dst = tmp_path / "cube.zarr"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crts",
            "convert",
            str(tiny_archives),
            str(dst),
            "--times",
            "4",
            "--workers",
            "1",
            "--groups-at-once",
            at_once,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_when(proc, lambda: len(list(dst.glob("S2/c/*"))) >= 2)
    done = int(zarr.open_array(dst / "valid", mode="r")[:].all(axis=(1, 2)).sum())
    report = convert(tiny_archives, dst, resume=True, workers=1, progress=False)
    assert report.patches_converted <= 6 - done  # patches whose valid rows were written are not converted again
    assert_same_cube(dst, tiny_cube)


@pytest.mark.parametrize("at_once", [1, 2])
def test_scratch_stays_within_one_roi_of_each_modality_per_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at_once: int
) -> None:
    monkeypatch.setattr(archive_conversion, "BACKLOG_PER_WORKER", 1)  # so that one ROI dominates the bound: with
    monkeypatch.setattr(archive_conversion, "PACING", 4)  # 16, the slack alone is a quarter of this small set
    rois = ["ROIs1868/56", "ROIs1868/121", "ROIs1868/139", "ROIs1970/71"]  # europa train: two archives
    rois += ["ROIs1970/21", "ROIs1970/35", "ROIs1970/40", "ROIs2017/8"][: 4 * (at_once - 1)]  # africa train
    tree = make_dataset(tmp_path / "tree", rois, patches_per_roi=3, size=32, times=4, workers=1, progress=False)
    write_archives(tree, tmp_path / "archives", progress=False)
    report = convert(
        tmp_path / "archives",
        tmp_path / "cube.zarr",
        workers=1,
        times=4,
        clouds=(),
        progress=False,
        groups_at_once=at_once,
    )
    files = scan_ts(tree)[0]
    per_roi = max(sum(f.path.stat().st_size for f in files if f.roi == roi) for roi in {f.roi for f in files})
    per_patch = max(sum(f.path.stat().st_size for f in files if (f.roi, f.pid) == (g.roi, g.pid)) for g in files)
    largest = max(f.path.stat().st_size for f in files)
    total = sum(f.path.stat().st_size for f in files)
    # the stated bound: one ROI of S1 and S2 and the pacing's slack per group read at once, and the patches
    # waiting for a worker
    assert report.scratch_peak_bytes <= at_once * (per_roi + archive_conversion.PACING * largest) + 1 * per_patch
    assert report.scratch_peak_bytes < total / 2


def test_a_full_scratch_disk_is_one_line(
    tiny_archives: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from crts.cli import main

    def full(self: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    scratch = tmp_path / "scratch"
    code = main(
        [
            "convert",
            str(tiny_archives),
            str(tmp_path / "cube.zarr"),
            "--times",
            "4",
            "--workers",
            "1",
            "--scratch",
            str(scratch),
            "--detectors",
            "none",
        ]
    )
    captured = capsys.readouterr().err
    err = captured.strip().splitlines()[-1]  # after the progress bar: one line, no traceback
    assert "Traceback" not in captured
    assert code == 2
    assert err.startswith(f"crts convert: error: {scratch}: the scratch folder is full (0 B spooled)")


def test_archives_of_fewer_steps_say_times_in_one_line_and_leave_no_scratch(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from crts.cli import main

    europa_archives(tmp_path, patches=2, times=12)
    args = ["convert", str(tmp_path / "archives"), str(tmp_path / "cube.zarr"), "--workers", "1", "--detectors", "none"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"crts convert: error: {tmp_path / 'archives'}: the archives hold 12 time step(s) per patch, not "
        "30: convert with --times 12 (times=12)"
    )
    assert not (tmp_path / "cube.zarr.scratch").exists()
    assert main([*args, "--times", "12"]) == 0  # the same command with the flag it names
    assert open_cube(tmp_path / "cube.zarr").sizes["time"] == 12


COUNT_OPENS = """
import os, sys
from collections import Counter
from pathlib import Path
from cube import convert
src, dst, scratch = sys.argv[1:4]
opened = Counter()


def hook(event, args):
    if event == "open" and isinstance(args[0], (str, os.PathLike)) and "r" in str(args[1] or ""):
        path = os.fspath(args[0])
        if path.startswith(scratch) and path.endswith(".tif"):
            opened[path] += 1


sys.addaudithook(hook)
convert(src, dst, times=4, workers=1, clouds=(), scratch=scratch, progress=False)
print(len(opened), sorted(set(opened.values())))
"""
"""Converts archives, counting how often each spooled member is opened for reading (the audit hook hears Python's
opens, the tifffile path's; a file left to GDAL would not be counted)."""


def test_each_spooled_member_is_read_once(tiny_archives: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    scratch = tmp_path / "scratch"
    done = subprocess.run(
        [sys.executable, "-c", COUNT_OPENS, str(tiny_archives), str(tmp_path / "cube.zarr"), str(scratch)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    assert done.stdout.split("\n")[0] == "48 [1]"  # 6 patches x 4 steps x 2 modalities, each opened once
    assert not scratch.exists() or [p.name for p in scratch.iterdir()] == []
