from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crts.cli import main


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_region_and_cloud_masks_list_their_choices(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--region {all,africa,america,asiaEast,asiaWest,europa}" in out
    assert "--cloud-masks {s2cloudless_mask,s2cloudless_map,cloud_cloudshadow_mask}" in out
    assert "--region europe" not in out


def test_evaluate_takes_the_cube_as_positional_argument(
    tiny_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cube = shutil.copytree(tiny_cube, tmp_path / "cube.zarr")
    assert main(["evaluate", str(cube), "--baseline", "least_cloudy", "--split", "all", "--run", "lc"]) == 0
    assert "run lc:" in capsys.readouterr().out


def test_train_lists_model_loss_and_sampler_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--model {resnet3d,uncrtaints,utae}" in out and "--sampler {fixed,random}" in out and "--loss {l1" in out


@pytest.mark.parametrize("loss", ["l2", "MGNLL"])
def test_utae_trains_evaluates_and_reports_from_the_command_line(
    sampling_cube: Path, tmp_path: Path, loss: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The U-TAE through every command, with its defaults (l2, no variances) and with MGNLL (variances)."""
    import json

    from cube.store.runs import open_run

    cube = tmp_path / "cube.zarr"
    shutil.copytree(sampling_cube, cube)
    run = tmp_path / "utae"
    assert (
        main(
            [
                "train",
                str(cube),
                "--model",
                "utae",
                "--out",
                str(run),
                "--loss",
                loss,
                "--width",
                "8",
                "--n-head",
                "4",
                "--d-model",
                "16",
                "--crop",
                "32",
                "--n-input-samples",
                "2",
                "--max-steps",
                "3",
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    saved = json.loads((run / "config.json").read_text())
    assert (saved["lr"], saved["sampler"], saved["width"], saved["scale_by"]) == (1e-3, "random", 8, 1.0)
    assert (
        main(
            [
                "evaluate",
                str(cube),
                "--checkpoint",
                str(run / "last.pt"),
                "--run",
                "utae",
                "--split",
                "test",
                "--min-cov",
                "0.05",
            ]
        )
        == 0
    )
    evaluated = open_run(cube, "utae")
    assert evaluated.attrs["model"] == "utae" and evaluated.attrs["n_input_samples"] == 2
    assert ("variance" in evaluated) == (loss == "MGNLL") and ("uce" in evaluated) == (loss == "MGNLL")
    assert main(["report", str(cube), "--out", str(tmp_path / "report")]) == 0
    assert "| utae" in (tmp_path / "report" / "report.md").read_text()
    capsys.readouterr()
