from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

import pytest

from crts.cli import main
from crts.models.kinds import RECIPES
from crts.settings import TrainConfig


def test_the_torch_free_recipes_name_the_registry_s_model_kinds() -> None:
    from crts.models import MODELS

    assert list(RECIPES) == list(MODELS)  # what --help and --model offer, in the same order
    assert all(MODELS[name].defaults is RECIPES[name].defaults for name in MODELS)
    assert all(MODELS[name].recipe is RECIPES[name] and MODELS[name].name == name for name in MODELS)


def test_the_kinds_and_the_settings_import_without_torch() -> None:
    code = "import sys, crts.models.kinds, crts.settings; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_a_setting_that_two_kinds_read_is_declared_once() -> None:
    declared = [option for kind in RECIPES.values() for option in kind.options]
    for option in declared:
        assert all(other is option for other in declared if other.name == option.name), option.name


@pytest.mark.parametrize("kind", list(RECIPES))
def test_a_kind_s_recipe_and_options_reach_train_help(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    recipe = RECIPES[kind]
    assert f"{kind}: {recipe.summary}" in out
    for option in recipe.options:
        flag = "--" + option.name.replace("_", "-")
        assert f"{flag} {option.name.upper()} {option.help} (default: " in out
    for name, value in recipe.defaults.items():  # each setting's default names every kind's value
        flag = name.replace("_", "-")
        assert f"{kind} {value}" in out.split(f"--{flag} ")[-1].split(" --")[0]


@pytest.mark.parametrize("kind", list(RECIPES))
def test_a_kind_s_options_and_defaults_reach_train_config(kind: str) -> None:
    recipe, hints = RECIPES[kind], typing.get_type_hints(TrainConfig)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for option in recipe.options:
        assert option.name in fields and option.type in (hints[option.name], *typing.get_args(hints[option.name]))
    resolved = TrainConfig(cube="c.zarr", model=kind).resolved()
    assert {name: getattr(resolved, name) for name in recipe.defaults} == recipe.defaults
