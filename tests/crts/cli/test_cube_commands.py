from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from crts.cli import main


def test_stats_prints_tables_plots_and_truth(
    tiny_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    assert (
        main(
            [
                "stats",
                str(tiny_cube),
                "--by",
                "region",
                "--detector",
                "s2cloudless_mask",
                "--format",
                "json",
                "--plot",
                str(tmp_path / "c.png"),
                "--truth",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    rows = json.loads(out.split("\nagainst the synthetic ground truth:")[0])
    assert {row["region"] for row in rows} == {"europa", "africa"} and sum(r["images"] for r in rows) == 24
    assert "precision" in out and (tmp_path / "c.png").exists()
    assert main(["stats", str(tiny_cube), "--by", "month,time"]) == 0
    table = capsys.readouterr().out
    assert "cloud_cloudshadow_mask" in table and "mean coverage (% of pixels)" in table.splitlines()[0]
    assert main(["stats", str(tiny_cube), "--by", "region", "--format", "csv"]) == 0
    fractions = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert main(["stats", str(tiny_cube), "--by", "region"]) == 0
    shown = capsys.readouterr().out.splitlines()[2:]  # header, index names, then one row per detector and region
    assert [float(line.split()[-3]) for line in shown] == pytest.approx(
        list(fractions.mean_coverage * 100), abs=0.05
    )  # the table's percent are the csv's fractions


def test_info_summarises_the_cube(tiny_cube: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tiny_cube)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{tiny_cube}: 6 patches x 4 time steps, S2 dates 2018-02-01 to 2018-10-21, 0 gap(s)"
    assert out[1] == "cloud pass: s2cloudless_mask, s2cloudless_map, cloud_cloudshadow_mask"
    assert out[2].startswith("mean coverage: s2cloudless_mask 0.")
    assert out[3] == "runs: none" and out[4].endswith(" MiB")
    assert out[-2:] == ["test         3       0", "val          0       3"]
