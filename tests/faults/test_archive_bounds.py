"""Archives that claim far more than the data set holds (crafted by the test, a few MB on disk): ``crts convert``
ends with one line naming the archive and the member, exit status 2, in bounded memory, leaving no scratch; with
``--on-error skip`` the rest is converted and only the images lost are gaps."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cube import convert
from tests.helpers import CASES, crafted, europa_archives

PEAK_RSS = 600 << 20
"""Peak resident memory allowed to a conversion of a crafted archive (the unbounded reader took 1.35-3.46 GB)."""
LOST = {"zeros": 1, "sparse": 1, "pax": 1, "other": 0, "trailing": 0}
"""Images a crafted archive loses (the member refused; for the PAX header, the member after it, the last)."""


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two archives of one patch of 3 steps of 16 px."""
    return europa_archives(tmp_path_factory.mktemp("bounds"), patches=1)


MEASURED = """
import atexit, sys
out = sys.argv.pop(1)


def peak():  # this process image's own high-water mark (ru_maxrss would include the parent's, kept across exec)
    with open("/proc/self/status") as status, open(out, "w") as f:
        f.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))


atexit.register(peak)
from crts.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``crts`` that writes its peak resident memory (KiB) to the file named by its first argument as it exits."""


def crts_measured(args: list[str], peak_file: Path) -> tuple[int, str, int]:
    """``crts ARGS`` in a subprocess (at most 300 s): its exit status, stderr, and peak resident memory in bytes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, str(peak_file), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    return done.returncode, done.stderr, int(peak_file.read_text()) * 1024


@pytest.mark.parametrize("case", CASES)
def test_a_crafted_archive_is_one_line_in_bounded_memory_and_leaves_no_scratch(
    good: Path, tmp_path: Path, case: str
) -> None:
    src = shutil.copytree(good, tmp_path / "archives")
    _, named = crafted(good / "s2_europa.tar.gz", src, case)
    code, err, peak = crts_measured(
        ["convert", str(src), str(tmp_path / "cube.zarr"), "--times", "3", "--workers", "1", "--detectors", "none"],
        tmp_path / "peak",
    )
    assert code == 2 and "Traceback" not in err
    expected = CASES[case].format(member=re.escape(named))
    assert re.match(rf"crts convert: error: s2_europa\.tar\.gz{expected}", err.strip().splitlines()[-1])
    assert peak < PEAK_RSS
    assert not (tmp_path / "cube.zarr.scratch").exists()


@pytest.mark.parametrize("case", CASES)
def test_with_on_error_skip_the_rest_converts_and_the_images_lost_are_gaps(
    good: Path, tmp_path: Path, case: str
) -> None:
    src = shutil.copytree(good, tmp_path / "archives")
    _, named = crafted(good / "s2_europa.tar.gz", src, case)
    report = convert(src, tmp_path / "cube.zarr", times=3, workers=1, on_error="skip", clouds=(), progress=False)
    assert report.patches_added == 1 and report.gaps == LOST[case]
    refused = [p for p in report.problems if p["path"].startswith("s2_europa.tar.gz")]
    assert len(refused) == 1 and named in f"{refused[0]['path']} {refused[0]['message']}"
    assert not (tmp_path / "cube.zarr.scratch").exists()
