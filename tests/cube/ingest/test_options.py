"""A conversion's options: one frozen object, with convert()'s keywords and defaults, checked at construction."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from cube.ingest.conversion import convert
from cube.ingest.options import ConversionOptions


def test_the_options_are_convert_s_keywords_with_the_same_defaults() -> None:
    keywords = {
        name: p.default
        for name, p in inspect.signature(convert).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    fields = {f.name: f.default for f in dataclasses.fields(ConversionOptions)}
    assert fields == keywords


def test_the_options_cannot_change_after_construction() -> None:
    options = ConversionOptions(workers=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.workers = 3  # type: ignore[misc]
    assert dataclasses.replace(options, resume=True).workers == 2


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"on_error": "ignore"}, "invalid on_error 'ignore': choose one of fail, skip"),
        ({"workers": 0}, "invalid workers 0: give at least 1 process"),
        ({"clouds": ("fmask",)}, "invalid detector 'fmask'"),
        ({"groups_at_once": 0}, "invalid groups_at_once 0: read at least 1 group of archives at once"),
    ],
)
def test_a_value_that_cannot_be_right_is_refused_in_one_line(given: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        ConversionOptions(**given)
    assert "\n" not in str(err.value)


def test_a_replaced_value_is_checked_too() -> None:
    with pytest.raises(ValueError, match="invalid workers -1"):
        dataclasses.replace(ConversionOptions(), workers=-1)
