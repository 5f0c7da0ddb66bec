"""Our checkpoint format (crts.models.checkpoints): what is saved, the legacy kind, and the checks on reading.

Damaged and foreign files, and configs that contradict their tensors, are in tests/faults/test_checkpoint_files.py;
every model kind's round trip is in the shared model tests (tests/crts/models/base.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from crts.models import MODELS, ResNet3D, load_checkpoint, read_checkpoint, save_checkpoint
from crts.models.checkpoints import LEGACY_KIND, model_config


def _tiny() -> ResNet3D:
    return ResNet3D(n_inputs=2, features=4, blocks=1)


def _raw(tmp_path: Path, **replace: object) -> Path:
    """A checkpoint of :func:`_tiny` written by hand, with entries replaced (None: left out)."""
    model = _tiny()
    content = {"state_dict": model.state_dict(), "model": "resnet3d", "config": dict(model.config)} | replace
    torch.save({k: v for k, v in content.items() if v is not None}, tmp_path / "c.pt")
    return tmp_path / "c.pt"


def _refused(path: Path, message: str, **options: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")) as err:
        read_checkpoint(path, **options)
    assert "\n" not in str(err.value)


def test_a_checkpoint_is_a_plain_dict_of_kind_config_tensors_and_extras(tmp_path: Path) -> None:
    model = _tiny()
    path = save_checkpoint(tmp_path / "c.pt", model, step=7, train_config='{"lr": 0.1}')
    content = torch.load(path, weights_only=True)
    assert set(content) == {"state_dict", "model", "config", "step", "train_config"}
    assert content["model"] == "resnet3d" and content["config"] == model.config and content["step"] == 7
    assert all(torch.equal(content["state_dict"][k], v) for k, v in model.state_dict().items())


def test_a_checkpoint_without_a_kind_is_the_legacy_kind(tmp_path: Path) -> None:
    path = _raw(tmp_path, model=None)
    assert LEGACY_KIND == "resnet3d" and read_checkpoint(path)["model"] == LEGACY_KIND
    model, _ = load_checkpoint(path)
    assert isinstance(model, ResNet3D) and model.config == _tiny().config


def test_an_unknown_kind_is_named_with_the_known_ones(tmp_path: Path) -> None:
    _refused(_raw(tmp_path, model="gan"), f"a model of kind 'gan'; known kinds: {', '.join(MODELS)}")
    _refused(_raw(tmp_path, model=3), f"a model of kind 3; known kinds: {', '.join(MODELS)}")


def test_entries_the_caller_needs_are_named_when_missing(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.pt", _tiny(), step=1)
    _refused(
        path, "not a checkpoint of crts train (it lacks 'optimizer', 'epoch')", needs=("step", "optimizer", "epoch")
    )
    assert read_checkpoint(path, needs=("step",))["step"] == 1


def test_a_checkpoint_of_another_config_than_the_run_s_is_named(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.pt", _tiny())
    other = dict(_tiny().config, features=8)
    _refused(path, "a model with features=4, but this run builds features=8", config=other)
    assert read_checkpoint(path, config=dict(_tiny().config))["config"] == _tiny().config


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"config": [4, 1]}, "config is a list, not a dict"),
        ({"state_dict": "weights"}, "state dict is a str, not a dict"),
    ],
)
def test_entries_of_the_wrong_type_are_named(tmp_path: Path, replace: dict, message: str) -> None:
    _refused(_raw(tmp_path, **replace), message)


def test_tensors_load_where_asked(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.pt", _tiny())
    content = read_checkpoint(path, map_location="meta")
    assert {t.device.type for t in content["state_dict"].values()} == {"meta"}


def test_the_config_of_a_module_of_no_registered_kind_is_refused_naming_its_class() -> None:
    assert model_config(ResNet3D(features=4, blocks=1))["features"] == 4
    with pytest.raises(TypeError, match=r"^a Linear keeps no config dict: not a model of a registered kind$"):
        model_config(torch.nn.Linear(2, 2))
