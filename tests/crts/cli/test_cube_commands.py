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


def test_map_writes_a_page_marking_the_loader_s_sample(
    tiny_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from crts.data.sampling import choose_steps
    from cube import open_cube

    out = tmp_path / "map"
    common = ["map", str(tiny_cube), "--out", str(out), "--n-input-samples"]
    assert main([*common, "2", "--cloud-masks", "s2cloudless_map"]) == 0  # on worker processes (all cores)
    line = capsys.readouterr().out
    assert line.startswith(f"map page: {out}/index.html (6 patches, the sample marked on 6; ")
    assert main([*common, "4", "--no-thumbnails", "--workers", "1"]) == 0
    assert "the sample marked on 0;" in capsys.readouterr().out  # 4 steps hold no sample of 4 inputs and a target
    assert main([*common, "2", "--cloud-masks", "s2cloudless_map", "--workers", "1"]) == 0
    strip = json.loads((out / "strips" / "2.js").read_text().removeprefix("crtsStrip(").rstrip(");\n"))
    expected = choose_steps(open_cube(tiny_cube, chunks=None).coverage.values[[2], :, 1], 2)
    assert strip["target"] == expected.target[0] and strip["inputs"] == expected.inputs[0].tolist()
    assert strip["detectors"][0] == "s2cloudless_map" and len(list((out / "thumbs").iterdir())) == 6


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--min-cov", "2"], ("invalid min_cov 2.0",)),
        (["--n-input-samples", "0"], ("invalid n_input_samples 0",)),
    ],
)
def test_map_refuses_bad_options_in_one_line(
    tiny_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], words: tuple[str, ...]
) -> None:
    from tests.helpers import refused

    refused(["map", str(tiny_cube), "--out", str(tmp_path / "map"), *options], capsys, *words)


def test_map_refuses_a_foreign_folder_and_a_missing_cube(
    tiny_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers import refused

    (tmp_path / "notes.txt").write_text("mine")
    refused(["map", str(tiny_cube), "--out", str(tmp_path)], capsys, "holds files that are not a map page")
    refused(["map", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "m")], capsys, "no cube here")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
