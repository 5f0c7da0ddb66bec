"""The synthetic set written as the published archives: their names, top folders and member order."""

from __future__ import annotations

import tarfile
from pathlib import Path

from cube.synth import open_truth
from cube.synth.archives import make_archived_dataset


def test_archives_have_the_published_names_and_layout(tmp_path: Path) -> None:
    archives = make_archived_dataset(
        tmp_path / "a",
        ["ROIs1868/17", "ROIs2017/63"],
        patches_per_roi=2,
        size=16,
        times=2,
        workers=1,
        progress=False,
        shuffle=["s1_europa_test.tar.gz"],
    )
    assert [a.name for a in archives] == [
        "s1_europa.tar.gz",
        "s1_europa_test.tar.gz",
        "s2_europa.tar.gz",
        "s2_europa_test.tar.gz",
    ]
    tops = {}
    for path in archives:
        with tarfile.open(path) as tar:
            files = [m.name for m in tar.getmembers() if m.isfile()]
            tops[path.name] = {name.split("/")[0] for name in tar.getnames()}
        assert len(files) == 2 * 2
        walked = files == sorted(files)
        assert walked == (path.name != "s1_europa_test.tar.gz") or len(files) < 3
    assert tops == {
        "s1_europa.tar.gz": {"europa"},
        "s2_europa.tar.gz": {"europa"},
        "s1_europa_test.tar.gz": {"s1_europa_test"},
        "s2_europa_test.tar.gz": {"s2_europa_test"},
    }
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        [a.name for a in archives] + ["ground_truth", "synthetic.json"]
    )  # no tree left
    assert open_truth(tmp_path / "a").sizes["patch"] == 4
