from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import crts
from crts.cli import build_parser, main, reference_markdown, sub_parsers


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


def test_console_script_is_installed() -> None:
    crts = Path(sys.executable).with_name("crts")
    out = subprocess.run([str(crts), "--help"], capture_output=True, text=True, check=True).stdout
    assert "usage: crts" in out


def test_convert_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    out = capsys.readouterr().out
    for option in ("--rois", "--split", "--region", "--workers", "--scheduler", "--resume", "--on-error", "--report"):
        assert option in out


CLI_REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "cli.md"


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="argparse lays out help differently in other Python versions; docs/cli.md is made on 3.11",
)
def test_cli_reference_is_up_to_date() -> None:
    assert CLI_REFERENCE.read_text() == reference_markdown(), (
        "docs/cli.md is stale: regenerate it with `crts --help-markdown > docs/cli.md`"
    )


def test_cli_reference_has_every_sub_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help-markdown"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text == reference_markdown()
    commands = sub_parsers(build_parser())
    assert set(commands) == {
        "synth",
        "download",
        "convert",
        "clouds",
        "info",
        "stats",
        "train",
        "evaluate",
        "report",
        "index",
        "map",
        "runs",
        "upgrade",
        "verify",
    }
    for name in commands:
        assert f"## `crts {name}`" in text and f"usage: crts {name} " in text
    assert "--help-markdown" not in build_parser().format_help()


def test_help_prints_percent_signs_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["stats", "--help"])
    out = capsys.readouterr().out
    assert "1%)" in out and "%%" not in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"crts {crts.__version__}\n"
