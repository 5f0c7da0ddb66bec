"""Training settings: JSON round trips, the model's recipe for what is unset, and one-line refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from crts.settings import LIMITS, OPTIONAL, Limit, TrainConfig, resolved_setting


def test_a_config_round_trips_through_json_with_overrides_on_top(tmp_path: Path) -> None:
    config = TrainConfig("cube.zarr", crop=64, lr=1e-4)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dataclasses.asdict(config)))
    assert TrainConfig.from_json(path) == config
    assert TrainConfig.from_json(path, crop=32, lr=None) == dataclasses.replace(config, crop=32)  # None: no override


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not a JSON file of settings"),
        ("[1]", "not a JSON object of settings (it holds a list)"),
        ('{"cube": "c", "speed": 1, "colour": 2}', "unknown setting(s) colour, speed"),
    ],
)
def test_a_bad_settings_file_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ValueError) as raised:
        TrainConfig.from_json(path)
    assert str(raised.value).startswith(f"{path}: {message}") and "\n" not in str(raised.value)


def test_unset_settings_take_the_model_s_recipe_and_set_ones_stay() -> None:
    resolved = TrainConfig("cube.zarr", model="resnet3d", epochs=3).resolved()
    assert (resolved.lr, resolved.beta1, resolved.epochs, resolved.loss) == (2e-4, 0.5, 3, "l1")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 0}, "invalid batch_size 0: must be a whole number in [1, inf)"),
        ({"lr": 0.0}, "invalid lr 0.0: must be a number in (0, inf)"),
        ({"beta1": 1.0}, "invalid beta1 1.0: must be a number in [0, 1)"),
        ({"crop": True}, "invalid crop True: must be a whole number in [1, inf)"),
        ({"epochs": 0, "epochs_decay": 0}, "invalid epochs 0 and epochs_decay 0: together at least 1"),
        ({"d_model": 100, "n_head": 16}, "invalid d_model 100: must be a multiple of n_head 16"),
    ],
)
def test_a_setting_out_of_range_is_one_line_naming_it(change: dict, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        TrainConfig("cube.zarr", **change).resolved()
    assert str(raised.value) == message


def test_only_the_optional_settings_may_be_unset() -> None:
    TrainConfig("cube.zarr", max_steps=None, num_workers=None).resolved()
    with pytest.raises(ValueError, match="invalid crop None"):
        TrainConfig("cube.zarr", crop=None).resolved()
    assert set(OPTIONAL) <= set(LIMITS)


def test_a_limit_s_bounds_and_kind() -> None:
    closed, half_open = Limit(1, 3), Limit(0, 1, low_open=True, high_open=True, whole=False)
    assert [closed.holds(v) for v in (0, 1, 3, 4, 2.0, "2")] == [False, True, True, False, False, False]
    assert [half_open.holds(v) for v in (0, 0.5, 1, 1.0)] == [False, True, False, False]
    assert (str(closed), str(half_open)) == ("a whole number in [1, 3]", "a number in (0, 1)")


def test_a_setting_left_to_the_recipe_is_refused_in_one_line_until_resolved() -> None:
    unresolved = TrainConfig("cube.zarr", model="uncrtaints")
    with pytest.raises(ValueError, match=r"^epochs is unset: resolve the settings first"):
        unresolved.all_epochs  # noqa: B018 (the property raises)
    with pytest.raises(ValueError, match=r"^width is unset"):
        resolved_setting(unresolved.width, "width")
    resolved = unresolved.resolved()
    assert (resolved.all_epochs, resolved_setting(resolved.width, "width")) == (20, 128)
