"""The sources pass the linter, the formatter's check and the type checker, as configured in pyproject.toml
(ruff over the repository; mypy over every module of cube/ and crts/, none of them exempt)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
"""The tools installed beside this interpreter (the dev extra)."""
CHECKS = {
    "ruff check": ["ruff", "check", "--no-fix", "--output-format", "concise", "."],
    "ruff format --check": ["ruff", "format", "--check", "."],
    "mypy": ["mypy"],
}
"""Each check's command line, run from the repository root; mypy keeps its cache in .mypy_cache."""


@pytest.mark.parametrize("check", list(CHECKS))
def test_sources_pass(check: str) -> None:
    tool, *arguments = CHECKS[check]
    if not (BIN / tool).exists():
        pytest.skip(f"{tool} is not installed beside {sys.executable} (pip install -e '.[dev]')")
    done = subprocess.run([str(BIN / tool), *arguments], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{check} found problems:\n{done.stdout}{done.stderr}"


def test_no_module_is_exempt_from_the_type_checker() -> None:
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"].get("overrides", [])
    exempt = [override["module"] for override in overrides if override.get("ignore_errors")]
    assert exempt == [], f"modules whose type errors mypy ignores: {exempt}"
