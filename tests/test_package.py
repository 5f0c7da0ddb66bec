"""Package-level promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


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
