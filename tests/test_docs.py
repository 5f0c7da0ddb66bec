"""The documentation builds with warnings as errors, every public module has an API page, every name a package
offers is on its page, links resolve, the benchmarks page is what its generator makes of the committed results,
and environment.yml installs what pyproject.toml and the Makefile do."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import crts
import cube
from benchmarks.page import RESULTS, describe_machine, render

ROOT = Path(__file__).resolve().parents[1]
LOCAL_LINK = re.compile(r"\]\((?!https?:|mailto:)([^)#\s]+)(?:#([^)\s]+))?\)")
"""A Markdown link to a file of this repository, with its anchor if any."""


def sphinx_build(source: Path, out: Path) -> subprocess.CompletedProcess:
    """``sphinx-build -W --keep-going -b html SOURCE OUT`` in a new process, with this checkout importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(source), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation built once for this module, into a temporary folder; fails on any warning."""
    out = tmp_path_factory.mktemp("html")
    done = sphinx_build(ROOT / "docs", out)
    assert done.returncode == 0 and "WARNING" not in done.stderr and "ERROR" not in done.stderr, done.stderr[-5000:]
    return out


def public_modules(package: types.ModuleType) -> list[str]:
    """Every module of a package whose dotted name has no part starting with an underscore."""
    found = [package.__name__]
    for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if not any(part.startswith("_") for part in module.name.split(".")):
            found.append(module.name)
    return found


@pytest.mark.slow  # about 35 s on 2 cores: Sphinx imports every module for the API pages
def test_the_documentation_builds_without_a_warning(html: Path) -> None:
    pages = {path.stem for path in html.glob("*.html")}
    assert {
        "index",
        "getting-started",
        "exploring",
        "cloud-statistics",
        "training",
        "evaluating",
        "api",
        "cli",
        "schema",
        "reference",
        "benchmarks",
        "architecture",
        "extending",
        "trust",
        "changelog",
    } <= pages
    first_heading = re.search(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert first_heading in (html / "changelog.html").read_text()  # CHANGELOG.md is included, not copied


@pytest.mark.slow  # shares the build above
def test_every_public_module_has_an_api_page(html: Path) -> None:
    modules = public_modules(cube) + public_modules(crts)
    assert len(modules) > 60
    missing = [name for name in modules if not (html / "generated" / f"{name}.html").is_file()]
    assert not missing, f"no API page for {missing}"


def offered_names(package: types.ModuleType) -> set[str]:
    """The public names a user imports from a package (``from crts.models import ResNet3D``) that it does not
    define itself: those of its ``__all__``, and those imported on first use (listed by its ``__dir__`` only)."""
    names = {*getattr(package, "__all__", ()), *(set(dir(package)) - set(vars(package)))}
    defined = {name for name, value in vars(package).items() if getattr(value, "__module__", None) == package.__name__}
    return {name for name in names if not name.startswith("_")} - defined


API_LINK = re.compile(
    r'<a class="reference internal" href="([\w.]+\.html)#([\w.-]+)"[^>]*><code[^>]*><span class="pre">(\w+)<'
)
"""A link of an API page's summary table: the page and anchor it points to, and the name it shows."""


@pytest.mark.slow  # shares the build above
def test_every_name_a_package_offers_is_on_its_api_page(html: Path) -> None:
    """Names a package imports on first use (PEP 562) or re-exports are defined elsewhere, so autodoc alone shows
    none of them on the package's page: each must be listed there, linking to where it is documented."""
    packages = [
        name
        for name in public_modules(cube) + public_modules(crts)
        if hasattr(importlib.import_module(name), "__path__")
    ]
    checked = 0
    for name in packages:
        offered = offered_names(importlib.import_module(name))
        page = (html / "generated" / f"{name}.html").read_text()
        links = {shown: (target, anchor) for target, anchor, shown in API_LINK.findall(page)}
        assert not offered - set(links), f"the API page of {name} misses {sorted(offered - set(links))}"
        for shown in offered:
            target, anchor = links[shown]
            assert f'id="{anchor}"' in (html / "generated" / target).read_text(), (
                f"{name}.{shown}: no {target}#{anchor}"
            )
        checked += len(offered)
    assert checked >= 40  # cube's, cube.clouds', cube.synth's, crts.data's, crts.models' and crts.cli's names


@pytest.mark.slow  # shares the build above
def test_the_readme_links_resolve(html: Path) -> None:
    """The README is not part of the build, so its links are checked here: the file exists, and a link to a
    page's heading names an anchor of the built page."""
    links = LOCAL_LINK.findall((ROOT / "README.md").read_text())
    assert len(links) > 10
    for target, anchor in links:
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"
        if anchor and target.startswith("docs/"):
            page = (html / Path(target).relative_to("docs")).with_suffix(".html").read_text()
            assert f'id="{anchor}"' in page, f"README.md links to {target}#{anchor}: no such heading"


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """The build's own check of links between pages: a missing page or heading is a warning, so an error."""
    (tmp_path / "conf.py").write_text((ROOT / "docs" / "conf.py").read_text())
    (tmp_path / "other.md").write_text("# Other\n\n## Its heading\n")
    page = "# Home\n\n```{toctree}\nother\n```\n\n## A heading\n\n[there](other.md#its-heading) [here](#a-heading)\n"
    (tmp_path / "index.md").write_text(page)
    assert sphinx_build(tmp_path, tmp_path / "ok").returncode == 0
    broken = page.replace("other.md#", "missing.md#").replace("(#a-", "(#no-") + "[gone](other.md#gone-heading)\n"
    (tmp_path / "index.md").write_text(broken)
    done = sphinx_build(tmp_path, tmp_path / "broken")
    assert done.returncode != 0
    assert all(name in done.stderr for name in ("missing.md", "no-heading", "gone-heading")), done.stderr


def test_the_benchmarks_page_is_current() -> None:
    assert sorted(RESULTS.glob("bench_*.json")), "no committed benchmark result"
    assert (ROOT / "docs" / "benchmarks.md").read_text() == render(), (
        "docs/benchmarks.md is stale: regenerate it with `python -m benchmarks --page docs/benchmarks.md`"
    )


def test_the_benchmarks_page_names_each_result_s_machine(tmp_path: Path) -> None:
    machine = {"cpus": 16, "cpu_model": "Some CPU", "gpu": "Some GPU", "python": "3.11.7", "date": "2026-12-07"}
    (tmp_path / "bench_a.json").write_text(
        json.dumps({"ratio": 1.23456, "note": "a | b", "purpose": "Does A.", "machine": machine})
    )
    (tmp_path / "bench_b.json").write_text(json.dumps({"rate": 2, "machine": {"cpus": 2, "python": "3.11.7"}}))
    page = render(tmp_path)
    assert "## bench_a\n\nDoes A.\n\nMachine: 2026-12-07; 16 CPUs (Some CPU); GPU: Some GPU; Python 3.11.7." in page
    assert "| ratio | 1.235 |" in page and "| note | a \\| b |" in page
    assert describe_machine({"cpus": 2, "python": "3.11.7"}) == (
        "date not recorded; 2 CPUs (model not recorded); GPU: not recorded; Python 3.11.7"
    )
    assert describe_machine({**machine, "gpu": None}).endswith("GPU: none; Python 3.11.7")


def requirements(lines: list[str]) -> dict[str, str]:
    """Each requirement's canonical name and its version bounds, sorted (``dask[distributed]>=2025.1`` also gives
    ``distributed``, which conda ships apart)."""
    found = {}
    for line in lines:
        requirement = Requirement(line)
        bounds = ",".join(sorted(str(spec) for spec in requirement.specifier))
        for name in [requirement.name, *sorted(requirement.extras & {"distributed"})]:
            found[canonicalize_name(name)] = bounds
    return found


def test_environment_yml_installs_what_make_test_installs() -> None:
    """environment.yml is for conda users: the packages and bounds of pyproject.toml with the extras the Makefile
    installs, torch as the Makefile pins it, then this checkout with those extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    makefile = (ROOT / "Makefile").read_text()
    extras = re.search(r'pip install --quiet -e "\.\[([\w,]+)\]"', makefile).group(1)
    wanted = [*project["dependencies"]]
    for extra in extras.split(","):
        wanted += project["optional-dependencies"][extra]
    expected = {
        **requirements(wanted),
        "torch": str(Requirement(re.search(r"^TORCH \?= (\S+)$", makefile, re.M).group(1)).specifier),
    }
    listed = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    pip = next(item["pip"] for item in listed if isinstance(item, dict))
    conda = [
        item for item in listed if isinstance(item, str) and item not in ("pip",) and not item.startswith("python=")
    ]
    assert [line for line in pip if line.startswith("-e")] == [f"-e .[{extras}]"]
    assert requirements(conda + [line for line in pip if not line.startswith("-e")]) == expected
