"""The metrics' definitions: torch-free, and naming every metric a report tables."""

from __future__ import annotations

import subprocess
import sys

from crts.metric_definitions import METRIC_UNITS
from crts.report import METRICS


def test_the_definitions_and_the_report_import_without_torch() -> None:
    code = (
        "import sys, crts.metric_definitions, crts.report; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorboard', 'xbatcher')]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_reported_metric_has_its_units() -> None:
    assert {name.split("_")[0] for name in METRICS} == set(METRIC_UNITS)
