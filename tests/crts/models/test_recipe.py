"""A model kind's recipe and options: frozen data that TrainConfig's settings must match."""

from __future__ import annotations

import dataclasses

import pytest

from crts.models.kinds import RECIPES
from crts.models.recipe import ModelOption, Recipe
from crts.settings import TrainConfig


def test_a_recipe_is_frozen_and_has_no_options_unless_given() -> None:
    recipe = Recipe("tiny", "a tiny model", {"lr": 0.1})
    assert recipe.options == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelOption("width", int, "channels").type = float  # type: ignore[misc]


@pytest.mark.parametrize("kind", list(RECIPES))
def test_every_default_and_option_names_a_setting_of_its_type(kind: str) -> None:
    settings = {field.name: field for field in dataclasses.fields(TrainConfig)}
    recipe = RECIPES[kind]
    assert set(recipe.defaults) <= set(settings)
    for option in recipe.options:
        assert option.type.__name__ in str(settings[option.name].type), option.name
