"""Package-level promises."""

from __future__ import annotations

import subprocess
import sys


def test_cube_never_imports_torch_or_crts() -> None:
    code = ("import sys, cube, cube.synth, cube.synth.preview, cube.detectors, cube.layout, cube.rois; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'crts')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
