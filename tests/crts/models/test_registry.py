from __future__ import annotations

import pytest

from crts.cli import main
from crts.models.kinds import BASELINE_NAMES
from crts.models.registry import BASELINES, new_baseline


def test_every_baseline_name_has_its_module_and_evaluate_offers_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert tuple(BASELINES) == BASELINE_NAMES
    assert all(type(new_baseline(name)) is BASELINES[name] for name in BASELINE_NAMES)
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "--baseline {least_cloudy,mosaic}" in " ".join(capsys.readouterr().out.split())


def test_an_unknown_baseline_is_one_line_naming_the_baselines() -> None:
    with pytest.raises(ValueError, match=r"^invalid baseline 'median': choose from least_cloudy, mosaic$"):
        new_baseline("median")
