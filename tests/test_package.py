"""Package-level promises."""

from __future__ import annotations

import subprocess
import sys


def test_cube_never_imports_torch_or_crts() -> None:
    code = ("import importlib, pkgutil, sys, cube; "
            "names = [m.name for m in pkgutil.walk_packages(cube.__path__, 'cube.')]; "
            "assert {'cube.plots', 'cube.stats', 'cube.synth.preview'} <= set(names), names; "
            "[importlib.import_module(name) for name in names]; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'crts')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
