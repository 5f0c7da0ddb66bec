"""Archives -> cube without extracting them, against tar -xzf of every archive and the tree -> cube, same run.

Synthetic set of 4 ROIs x 4 patches x 30 steps of 256 px, as its published archives
(walking order). Goal (issue 23): archives -> cube <= 1.0x the time of the
extraction alone. Also: peak scratch bytes, every group of archives read at once
against one group at a time, and decompressing one archive with ISA-L's igzip (what
the converter uses) against Python's gzip.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from isal import igzip

from cube import convert
from cube.ingest.archives import archive_group
from cube.synth.archives import make_archived_dataset

PATCHES_PER_ROI = 4


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process's threads and its children) of ``fn()``."""
    before, start = os.times(), time.perf_counter()
    fn()
    wall, after = time.perf_counter() - start, os.times()
    return wall, sum(after[i] - before[i] for i in range(4))


def _seconds(fn: Callable[[], object]) -> float:
    return _timed(fn)[0]


def _gunzip(path: Path, module: object) -> None:
    with module.open(path) as data:
        while data.read(1 << 20):
            pass


def run(patches_per_roi: int = PATCHES_PER_ROI, size: int = 256, times: int = 30, repeat: int = 3) -> dict:
    """Every row; smaller ``patches_per_roi``, ``size``, ``times`` and ``repeat`` for a quick check."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archives = make_archived_dataset(
            tmp / "archives", patches_per_roi=patches_per_roi, size=size, times=times, workers=2, progress=False
        )
        tree = tmp / "tree"
        tree.mkdir()
        extract, extract_cpu = _timed(
            lambda: [subprocess.run(["tar", "-xzf", str(a), "-C", str(tree)], check=True) for a in archives]
        )
        merged = tmp / "merged"  # the toolbox's merge: every extracted top folder into one tree
        merge = _seconds(
            lambda: subprocess.run(f"mkdir -p {merged} && cp -al {tree}/*/* {merged}/", shell=True, check=True)
        )
        tree_convert, tree_cpu = _timed(
            lambda: convert(merged, tmp / "tree.zarr", workers=1, clouds=(), progress=False)
        )
        reports = {}

        def from_archives(at_once: int) -> None:
            reports[at_once] = convert(
                tmp / "archives",
                tmp / f"archives-{at_once}.zarr",
                workers=1,
                clouds=(),
                progress=False,
                groups_at_once=at_once,
                times=times,
            )

        archive_convert, archive_cpu = _timed(lambda: from_archives(1))
        groups = len({archive_group(a.name) for a in archives})
        all_at_once, all_cpu = _timed(lambda: from_archives(groups))
        largest = max(archives, key=lambda a: a.stat().st_size)
        python_gzip = min(_seconds(lambda: _gunzip(largest, gzip)) for _ in range(repeat))
        isal = min(_seconds(lambda: _gunzip(largest, igzip)) for _ in range(repeat))
        archive_bytes = sum(a.stat().st_size for a in archives)
        tree_bytes = sum(p.stat().st_size for p in merged.rglob("*.tif"))
    return {
        "archives": len(archives),
        "archive_MB": round(archive_bytes / 1e6, 1),
        "tree_MB": round(tree_bytes / 1e6, 1),
        "tar_xzf_all_s": round(extract, 2),
        "merge_s (hard links)": round(merge, 2),
        "tree_to_cube_s (1 process)": round(tree_convert, 2),
        "extract_plus_convert_s": round(extract + merge + tree_convert, 2),
        "archives_to_cube_s (1 process)": round(archive_convert, 2),
        "cpu_s: tar_xzf_all / tree_to_cube / archives_to_cube": [
            round(extract_cpu, 1),
            round(tree_cpu, 1),
            round(archive_cpu, 1),
        ],
        "ratio_archives_to_cube_vs_extraction_alone": round(archive_convert / extract, 2),
        "ratio_archives_to_cube_vs_extract_plus_convert": round(archive_convert / (extract + merge + tree_convert), 2),
        "scratch_peak_MB": round(reports[1].scratch_peak_bytes / 1e6, 1),
        "scratch_peak_vs_tree_bytes": round(reports[1].scratch_peak_bytes / tree_bytes, 3),
        f"archives_to_cube_s ({groups} groups at once)": round(all_at_once, 2),
        f"archives_to_cube_cpu_s ({groups} groups at once)": round(all_cpu, 1),
        "ratio_all_groups_at_once_vs_one_at_a_time": round(all_at_once / archive_convert, 2),
        f"scratch_peak_MB ({groups} groups at once)": round(reports[groups].scratch_peak_bytes / 1e6, 1),
        "peak_disk_archive_path_vs_extract_path": "cube + archives + scratch vs cube + archives + tree",
        "gunzip_largest_archive_s (Python gzip)": round(python_gzip, 3),
        "gunzip_largest_archive_s (isal igzip)": round(isal, 3),
        "ratio_isal_vs_python_gzip": round(isal / python_gzip, 2),
        "goals": "ratio_archives_to_cube_vs_extraction_alone <= 1.0",
    }
