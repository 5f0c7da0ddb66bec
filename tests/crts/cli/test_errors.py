from __future__ import annotations

from pathlib import Path

import pytest

from crts.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rois", "ROIs1868/17,ROIs9999/1"], "invalid ROI 'ROIs9999/1'"),
        (["--size", "5"], "invalid size 5"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["synth", str(tmp_path / "d"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("crts synth: error:")


@pytest.mark.parametrize("error", [KeyError("band"), TypeError("'int' object is not subscriptable"), IndexError()])
def test_an_unchecked_error_is_one_line_unless_debugging(
    error: Exception, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
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
    assert (
        err.count("\n") == 1
        and err.startswith(f"crts info: error: an input of unexpected content or type ({type(error).__name__}")
        and "CRTS_DEBUG=1" in err
    )
    monkeypatch.setenv("CRTS_DEBUG", "1")
    with pytest.raises(type(error)):
        main(["info", "cube.zarr"])


def test_a_full_disk_names_what_the_command_writes_and_a_fault_of_the_program_has_no_line() -> None:
    import errno
    from argparse import Namespace

    from crts.cli.errors import error_line

    args = Namespace(command="synth", out=None, archives="arch", cube=None)
    assert error_line(OSError(errno.ENOSPC, "No space left on device"), args) == "arch: No space left on device"
    assert error_line(RuntimeError("a bug"), args) is None
