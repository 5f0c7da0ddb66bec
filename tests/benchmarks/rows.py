"""Checks shared by the tiny-size benchmark tests: the committed result's rows, and every number finite."""

from __future__ import annotations

import json
import math
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
ADDED_BY_THE_RUNNER = {"purpose", "machine"}
"""Keys ``python -m benchmarks`` adds to a result file beside the rows ``run()`` returns."""


def assert_every_row_finite(name: str, result: dict, absent: tuple[str, ...] = ()) -> None:
    """Assert that ``result`` has every row of ``benchmarks/results/<name>.json`` but ``absent`` and every number is
    finite.

    Parameters
    ----------
    name : str
        The benchmark's module name, e.g. ``"bench_clouds"``.
    result : dict
        What that benchmark's ``run()`` returned (lists of numbers are flattened; text is not a number).
    absent : tuple of str
        Rows of the committed result that this run may lack (a baseline whose library is not installed here).
    """
    committed = set(json.loads((RESULTS / f"{name}.json").read_text())) - ADDED_BY_THE_RUNNER - set(absent)
    assert committed <= set(result), f"rows missing: {sorted(committed - set(result))}"
    values = [v for value in result.values() for v in (value if isinstance(value, list) else [value])]
    numbers = [v for v in values if not isinstance(v, str)]
    assert all(isinstance(n, bool | int | float) and math.isfinite(n) for n in numbers), result
