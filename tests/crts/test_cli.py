from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import crts
from crts.cli import build_parser, main, reference_markdown, sub_parsers
from cube.dataset.layout import scan_ts


def test_help_lists_the_sub_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "synth" in capsys.readouterr().out


def test_synth_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    out = capsys.readouterr().out
    for option in ("--rois", "--patches-per-roi", "--size", "--times", "--seed", "--layout", "--overwrite"):
        assert option in out


def test_synth_writes_a_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["synth", str(tmp_path / "d"), "--rois", "ROIs1868/17,ROIs2017/63", "--patches-per-roi", "1",
                 "--size", "32", "--times", "2", "--workers", "1"])
    assert code == 0
    files, problems = scan_ts(tmp_path / "d")
    assert len(files) == 2 * 1 * 2 * 2 and problems == []
    assert "wrote sen12mscrts data set with 2 ROIs" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--rois", "ROIs1868/17,ROIs9999/1"], "invalid ROI 'ROIs9999/1'"),
    (["--size", "5"], "invalid size 5"),
])
def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                               message: str) -> None:
    assert main(["synth", str(tmp_path / "d"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("crts synth: error:")


def test_non_empty_output_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("x")
    assert main(["synth", str(tmp_path), "--size", "16", "--times", "1"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    crts = Path(sys.executable).with_name("crts")
    out = subprocess.run([str(crts), "--help"], capture_output=True, text=True, check=True).stdout
    assert "usage: crts" in out


def test_convert_then_resume_is_a_no_op(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cube = tmp_path / "cube.zarr"
    assert main(["convert", str(tiny_root), str(cube), "--workers", "1", "--report", str(tmp_path / "r.json")]) == 0
    assert "6 patches (6 added, 6 converted, 6 through the cloud pass)" in capsys.readouterr().out
    assert main(["convert", str(tiny_root), str(cube), "--workers", "1", "--resume"]) == 0
    assert "6 patches (0 added, 0 converted, 0 through the cloud pass)" in capsys.readouterr().out
    assert (tmp_path / "r.json").exists()


def test_convert_bad_file_is_named(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(tiny_root, src)
    victim = next((src / "ROIs2017/32/S2/3").glob("*.tif"))
    victim.write_bytes(b"not a tiff")
    assert main(["convert", str(src), str(tmp_path / "c.zarr"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "crts convert: error:" in err and str(victim) in err and "cannot be read" in err


@pytest.mark.parametrize(("option", "message"), [(["--workers", "0"], "invalid workers 0"),
                                                 (["--detectors", "fmask"], "invalid detector 'fmask'")])
def test_download_refuses_a_bad_conversion_option_before_fetching(tmp_path: Path, option: list[str], message: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "archives"
    assert main(["download", str(dest), "--regions", "europa", "--split", "test", "--base-url", "http://127.0.0.1:9",
                 "--convert", str(tmp_path / "cube.zarr"), *option]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not dest.exists() and not (tmp_path / "cube.zarr").exists()


def test_convert_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    out = capsys.readouterr().out
    for option in ("--rois", "--split", "--region", "--workers", "--scheduler", "--resume", "--on-error", "--report"):
        assert option in out


def test_stats_prints_tables_plots_and_truth(tiny_cube: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["stats", str(tiny_cube), "--by", "region", "--detector", "s2cloudless_mask", "--format", "json",
                 "--plot", str(tmp_path / "c.png"), "--truth"]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out.split("\nagainst the synthetic ground truth:")[0])
    assert {row["region"] for row in rows} == {"europa", "africa"} and sum(r["images"] for r in rows) == 24
    assert "precision" in out and (tmp_path / "c.png").exists()
    assert main(["stats", str(tiny_cube), "--by", "month,time"]) == 0
    table = capsys.readouterr().out
    assert "cloud_cloudshadow_mask" in table and "mean_coverage" in table


def test_clouds_command_is_a_no_op_when_done(tiny_cube: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clouds", str(tiny_cube), "--workers", "1"]) == 0
    assert "cloud pass over 0 patch(es)" in capsys.readouterr().out
    assert main(["clouds", str(tiny_cube), "--detectors", "fmask"]) == 2
    assert "invalid detector(s) fmask" in capsys.readouterr().err


CLI_REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


@pytest.mark.skipif(sys.version_info[:2] != (3, 11),
                    reason="argparse lays out help differently in other Python versions; docs/cli.md is made on 3.11")
def test_cli_reference_is_up_to_date() -> None:
    assert CLI_REFERENCE.read_text() == reference_markdown(), \
        "docs/cli.md is stale: regenerate it with `crts --help-markdown > docs/cli.md`"


def test_cli_reference_has_every_sub_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help-markdown"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text == reference_markdown()
    commands = sub_parsers(build_parser())
    assert set(commands) == {"synth", "download", "convert", "clouds", "info", "stats", "train", "evaluate",
                             "report", "index", "runs", "upgrade", "verify"}
    for name in commands:
        assert f"## `crts {name}`" in text and f"usage: crts {name} " in text
    assert "--help-markdown" not in build_parser().format_help()


def test_help_prints_percent_signs_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["stats", "--help"])
    out = capsys.readouterr().out
    assert "1%)" in out and "%%" not in out


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_region_and_cloud_masks_list_their_choices(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--region {all,africa,america,asiaEast,asiaWest,europa}" in out
    assert "--cloud-masks {s2cloudless_mask,s2cloudless_map,cloud_cloudshadow_mask}" in out
    assert "--region europe" not in out


@pytest.mark.parametrize(("args", "message"), [
    (["CUBE_A", "--cube", "CUBE_B"], "give the cube once: CUBE 'CUBE_A' or --cube 'CUBE_B'"),
    ([], "give the cube as CUBE (or --cube CUBE)"),
])
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_the_cube_is_given_exactly_once(command: str, args: list[str], message: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    more = ["--baseline", "mosaic", "--run", "r"] if command == "evaluate" else []
    assert main([command, *args, *more]) == 2
    err = capsys.readouterr().err
    assert err == f"crts {command}: error: {message}\n"


def test_evaluate_takes_the_cube_as_positional_argument(tiny_cube: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    cube = shutil.copytree(tiny_cube, tmp_path / "cube.zarr")
    assert main(["evaluate", str(cube), "--baseline", "least_cloudy", "--split", "all", "--run", "lc"]) == 0
    assert "run lc:" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"crts {crts.__version__}\n"


def test_info_summarises_the_cube(tiny_cube: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tiny_cube)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{tiny_cube}: 6 patches x 4 time steps, S2 dates 2018-02-01 to 2018-10-21, 0 gap(s)"
    assert out[1] == "cloud pass: s2cloudless_mask, s2cloudless_map, cloud_cloudshadow_mask"
    assert out[2].startswith("mean coverage: s2cloudless_mask 0.")
    assert out[3] == "runs: none" and out[4].endswith(" MiB")
    assert out[-2:] == ["test         3       0", "val          0       3"]


def test_the_torch_free_recipes_name_the_registry_s_model_kinds() -> None:
    from crts.models import MODELS
    from crts.settings import RECIPES

    assert list(RECIPES) == list(MODELS)  # what --help and --model offer, in the same order
    assert all(MODELS[name].defaults is RECIPES[name].defaults for name in MODELS)


def test_train_lists_model_loss_and_sampler_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--model {resnet3d,uncrtaints,utae}" in out and "--sampler {fixed,random}" in out and "--loss {l1" in out


@pytest.mark.parametrize("loss", ["l2", "MGNLL"])
def test_utae_trains_evaluates_and_reports_from_the_command_line(sampling_cube: Path, tmp_path: Path, loss: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The U-TAE through every command, with its defaults (l2, no variances) and with MGNLL (variances)."""
    import json

    from cube.store.runs import open_run

    cube = tmp_path / "cube.zarr"
    shutil.copytree(sampling_cube, cube)
    run = tmp_path / "utae"
    assert main(["train", str(cube), "--model", "utae", "--out", str(run), "--loss", loss, "--width", "8",
                 "--n-head", "4", "--d-model", "16", "--crop", "32", "--n-input-samples", "2", "--max-steps", "3",
                 "--batch-size", "2"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert (saved["lr"], saved["sampler"], saved["width"], saved["scale_by"]) == (1e-3, "random", 8, 1.0)
    assert main(["evaluate", str(cube), "--checkpoint", str(run / "last.pt"), "--run", "utae", "--split", "test",
                 "--min-cov", "0.05"]) == 0
    evaluated = open_run(cube, "utae")
    assert evaluated.attrs["model"] == "utae" and evaluated.attrs["n_input_samples"] == 2
    assert ("variance" in evaluated) == (loss == "MGNLL") and ("uce" in evaluated) == (loss == "MGNLL")
    assert main(["report", str(cube), "--out", str(tmp_path / "report")]) == 0
    assert "| utae" in (tmp_path / "report" / "report.md").read_text()
    capsys.readouterr()


@pytest.mark.parametrize("error", [KeyError("band"), TypeError("'int' object is not subscriptable"), IndexError()])
def test_an_unchecked_error_is_one_line_unless_debugging(error: Exception, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import crts.cli

    def fail(args: object) -> None:
        raise error

    real = crts.cli.build_parser

    def parser(*names: object) -> object:
        built = real(*names)
        crts.cli.sub_parsers(built)["info"].set_defaults(handler=fail)
        return built

    monkeypatch.setattr(crts.cli, "build_parser", parser)
    assert main(["info", "cube.zarr"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"crts info: error: an input of unexpected content or type "
                                                   f"({type(error).__name__}") and "CRTS_DEBUG=1" in err
    monkeypatch.setenv("CRTS_DEBUG", "1")
    with pytest.raises(type(error)):
        main(["info", "cube.zarr"])
