"""cube.parallel: where local worker processes would re-run the calling script, and what runs instead."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cube import open_cube
from cube.parallel import run_tasks

PROBE = "from cube.parallel import unguarded_script_call\n"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("body", "expected_line"),
    [
        ("print(unguarded_script_call())\n", 2),
        ("def main():\n    print(unguarded_script_call())\n\n\nmain()\n", 6),
        ("if __name__ == '__main__':\n    print(unguarded_script_call())\n", None),
        ("def main():\n    print(unguarded_script_call())\n\n\nif '__main__' == __name__:\n    main()\n", None),
        ("if __name__ == '__main__':\n    pass\nprint(unguarded_script_call())\n", 4),
    ],
)
def test_a_call_from_a_scripts_top_level_is_found_unless_guarded(
    tmp_path: Path, body: str, expected_line: int | None
) -> None:
    script = tmp_path / "probe.py"
    script.write_text(PROBE + body)
    out = _run([str(script)], tmp_path).stdout.strip()
    assert out == ("None" if expected_line is None else repr((str(script), expected_line)))


def test_no_script_to_rerun_from_c_or_a_packages_main(tmp_path: Path) -> None:
    assert _run(["-c", PROBE + "print(unguarded_script_call())"], tmp_path).stdout.strip() == "None"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "__main__.py").write_text(PROBE + "print(unguarded_script_call())\n")
    (tmp_path / "pkg" / "run.py").write_text(PROBE + "print(unguarded_script_call())\n")
    assert _run(["-m", "pkg"], tmp_path).stdout.strip() == "None"  # spawn skips a package's __main__
    assert _run(["-m", "pkg.run"], tmp_path).stdout.strip() == repr((str(tmp_path / "pkg" / "run.py"), 2))


@pytest.mark.slow  # two conversions of the tiny set in subprocesses, one with 2 local worker processes
def test_an_unguarded_script_converts_in_process_and_a_guarded_one_uses_workers(
    tiny_root: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "conv.py"
    plain.write_text(f"import cube\ncube.convert({str(tiny_root)!r}, 'plain.zarr', workers=2)\nprint('done')\n")
    done = _run([str(plain)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("done") == 1 and "Traceback" not in done.stderr
    warning = [line for line in done.stderr.splitlines() if "RuntimeWarning" in line]
    assert warning == [
        f"{plain}:2: RuntimeWarning: running in this process, 2 tasks at a time: 2 worker processes "
        "would each re-run this script from its start; put its top-level code under "
        '`if __name__ == "__main__":` to use them'
    ]  # once, though convert runs two passes
    guarded = tmp_path / "guarded.py"
    guarded.write_text(
        textwrap.dedent(f"""\
        import cube

        if __name__ == "__main__":
            cube.convert({str(tiny_root)!r}, "guarded.zarr", workers=2, progress=False)
            print("done")
        """)
    )
    done = _run([str(guarded)], tmp_path)
    assert done.returncode == 0 and done.stdout.count("done") == 1 and "RuntimeWarning" not in done.stderr
    a, b = open_cube(tmp_path / "plain.zarr"), open_cube(tmp_path / "guarded.zarr")
    assert a.S2.equals(b.S2) and a.coverage.equals(b.coverage)


def test_a_busy_dashboard_port_prints_nothing(recwarn: pytest.WarningsRecorder) -> None:
    """dask's scheduler serves HTTP on 8787 by default and warned in three lines where it was taken."""
    with socket.socket() as taken:
        with contextlib.suppress(OSError):  # (already taken by another process: the same case)
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        assert sorted(run_tasks([(-1,), (-2,)], abs, 2, None, False, "abs")) == [1, 2]
    assert not [w for w in recwarn if "already in use" in str(w.message)]
