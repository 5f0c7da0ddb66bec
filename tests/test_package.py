"""Package-level promises."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest


def test_cube_never_imports_torch_or_crts() -> None:
    code = (
        "import importlib, pkgutil, sys, cube; "
        "names = [m.name for m in pkgutil.walk_packages(cube.__path__, 'cube.')]; "
        "assert {'cube.analysis.plots', 'cube.analysis.stats', 'cube.synth.preview'} <= set(names), names; "
        "[importlib.import_module(name) for name in names]; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'crts')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"docs/reference\.md §(\d+(?:\.\d+)?) ([A-Za-z0-9-]+(?: [A-Z0-9][A-Za-z0-9-]*)*)")


def test_the_code_s_citations_of_the_reference_name_its_sections() -> None:
    headings = re.findall(r"^#{2,3} §(\d+(?:\.\d+)?) (.+)$", (ROOT / "docs" / "reference.md").read_text(), re.M)
    sections = dict(headings)
    cited = {}
    for folder in ("cube", "crts", "benchmarks", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"reference sections? \d", text, re.I), f"{path}: cite docs/reference.md §N Title"
            cited |= dict.fromkeys(CITATION.findall(text), path)
    assert len(cited) >= 8, cited
    for (number, title), path in cited.items():
        assert sections.get(number, "").startswith(title), f"{path}: §{number} {title} is not a reference section"


def test_public_names_keep_their_paths_and_light_modules_stay_light() -> None:
    # cube's public names and cube.clouds' pass names are looked up on first use: a light module such as the
    # ROI table or the detectors imports no xarray, and every listed name still resolves (issue 33's moves).
    code = (
        "import sys, cube, cube.dataset.rois, cube.clouds.detectors; "
        "heavy = [m for m in ('xarray', 'zarr', 'dask') if m in sys.modules]; assert not heavy, heavy; "
        "import cube.clouds; from cube.clouds import compute; "
        "assert all(getattr(cube.clouds, n) is getattr(compute, n) for n in cube.clouds.PASS_NAMES); "
        "from cube.analysis import export; assert cube.export is export; "
        "assert all(getattr(cube, n) is not None for n in cube.__all__)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


WITHOUT_TORCH = """import json, sys
from crts.cli.errors import TORCH_EXTRA
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in TORCH_EXTRA:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
from crts.cli import main
def run(argv):
    try:
        return main(argv)
    except SystemExit as end:
        return end.code
print(json.dumps([run(argv) for argv in json.loads(sys.argv[1])]))
"""
"""Runs ``crts`` once per argument list of its JSON argument where the ``torch`` extra cannot be imported (as
after a plain ``pip install``); prints the exit statuses as JSON."""


def crts_without_torch(*argvs: list[str], cwd: Path) -> tuple[list[int], str]:
    """The exit statuses of ``crts`` with each of ``argvs`` without the ``torch`` extra, and its stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, json.dumps(argvs)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def test_the_base_dependencies_leave_out_the_torch_extra() -> None:
    import tomllib

    from crts.cli.errors import TORCH_EXTRA

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not names(project["dependencies"]) & set(TORCH_EXTRA), project["dependencies"]
    assert names(project["optional-dependencies"]["torch"]) == set(TORCH_EXTRA)


def test_the_data_commands_run_without_torch_and_the_others_say_how_to_install_it(tmp_path: Path) -> None:
    commands = [
        "synth",
        "download",
        "convert",
        "clouds",
        "info",
        "stats",
        "index",
        "runs",
        "upgrade",
        "verify",
        "train",
        "evaluate",
        "report",
    ]
    statuses, _ = crts_without_torch(
        ["--help"],
        *[[name, "--help"] for name in commands],
        ["synth", "syn", "--rois", "ROIs1868/17", "--patches-per-roi", "1", "--size", "32", "--times", "2"],
        ["convert", "syn", "cube.zarr", "--workers", "1"],
        ["info", "cube.zarr"],
        ["stats", "cube.zarr"],
        cwd=tmp_path,
    )
    assert statuses == [0] * (len(commands) + 5)
    statuses, err = crts_without_torch(
        ["train", "cube.zarr", "--out", "run"], ["clouds", "cube.zarr", "--device", "cuda"], cwd=tmp_path
    )
    assert statuses == [2, 2] and err.splitlines() == [
        f"crts {name}: error: this command needs PyTorch, which is not installed: pip install "
        "'sen12mscrts-cube[torch]' (or first a build of PyTorch for your GPU from pytorch.org)"
        for name in ("train", "clouds")
    ]
    assert not (tmp_path / "run").exists()


PIP_OFFLINE = (
    *(sys.executable, "-m", "pip", "install", "-v"),
    *("--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir"),
)
"""pip install with this venv's setuptools and nothing from the network (nor its wheel cache: --no-cache-dir)."""


@pytest.mark.slow
@pytest.mark.parametrize("compiler", ["cc", "false", "no-such-compiler"])
def test_pip_install_builds_the_kernel_where_it_can_and_succeeds_where_it_cannot(compiler: str, tmp_path: Path) -> None:
    # A copy of the project, so that the build writes nothing into the repository.
    source, target = tmp_path / "source", tmp_path / "target"
    for name in ("cube", "crts"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    done = subprocess.run(
        [*PIP_OFFLINE, "--target", str(target), str(source)],
        env={**os.environ, "CC": compiler},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    clouds = target / "cube" / "clouds"
    assert (clouds / "forest.py").is_file() and (clouds / "_forest.c").is_file()
    kernels = [path.name for path in clouds.glob("_forest*.so")]
    if compiler == "cc":
        assert kernels == [f"_forest{sysconfig.get_config_var('EXT_SUFFIX')}"]  # where forest.INSTALLED looks
    else:
        assert kernels == [] and 'building extension "cube.clouds._forest" failed' in done.stdout + done.stderr


def test_crts_report_runs_without_torch_on_the_runs_stored_in_a_cube(tiny_cube: Path, tmp_path: Path) -> None:
    from crts.evaluate import evaluate  # the run is made with torch; the report reads it without

    cube = Path(shutil.copytree(tiny_cube, tmp_path / "cube.zarr"))
    evaluate(cube, "least", baseline="least_cloudy", split="test", min_cov=0.05, progress=False)
    statuses, err = crts_without_torch(["report", "cube.zarr", "--runs", "least", "--out", "report"], cwd=tmp_path)
    assert statuses == [0], err
    assert {"report.md", "overall.csv", "samples.csv"} <= {path.name for path in (tmp_path / "report").iterdir()}


LOADED_AFTER = """import contextlib, io, json, sys
from crts.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(json.loads(sys.argv[1]))
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)))
"""
"""Runs ``crts`` with the argument list of its JSON argument; prints the names of the modules then loaded."""

HEAVY = ("scipy.signal", "dask.array", "distributed", "torch", "matplotlib.pyplot")
"""Modules that cost ``crts`` a tenth of a CPU second or more to import, after numpy, pandas and xarray (measured:
torch 1.05 s, scipy.signal 0.51 s, dask.array 0.41 s, matplotlib.pyplot 0.31 s, distributed 0.15 s)."""


@pytest.mark.parametrize(
    ("argv", "allowed"),
    [
        (["--help"], ()),
        (["info", "--help"], ()),
        (["stats", "--help"], ()),
        (["verify", "--help"], ()),
        (["synth", "--help"], ()),
        # Reading a cube, xarray itself imports dask.array (to tell dask arrays from others): allowed there.
        (["info", "CUBE"], ("dask.array",)),
        (["stats", "CUBE"], ("dask.array",)),
        (["verify", "CUBE"], ("dask.array",)),
    ],
)
def test_help_and_the_light_commands_leave_the_heavy_modules_unloaded(
    argv: list[str], allowed: tuple[str, ...], tiny_cube: Path
) -> None:
    argv = [str(tiny_cube) if arg == "CUBE" else arg for arg in argv]
    done = subprocess.run(
        [sys.executable, "-c", LOADED_AFTER, json.dumps(argv)], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "crts.cli" in loaded
    assert [name for name in HEAVY if name in loaded and name not in allowed] == []
