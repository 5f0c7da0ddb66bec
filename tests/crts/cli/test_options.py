from __future__ import annotations

import pytest

from crts.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["CUBE_A", "--cube", "CUBE_B"], "give the cube once: CUBE 'CUBE_A' or --cube 'CUBE_B'"),
        ([], "give the cube as CUBE (or --cube CUBE)"),
    ],
)
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_the_cube_is_given_exactly_once(
    command: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    more = ["--baseline", "mosaic", "--run", "r"] if command == "evaluate" else []
    assert main([command, *args, *more]) == 2
    err = capsys.readouterr().err
    assert err == f"crts {command}: error: {message}\n"


def test_a_storage_option_that_is_not_key_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["info", "cube.zarr", "--storage-option", "anon"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'anon' is not KEY=VALUE" in err
