"""A model kind's adapter: the defaults every kind inherits, and the [0, 1] <-> [-1, 1] scale."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from crts.models.adapter import (
    DEFAULT_INPUTS,
    ModelAdapter,
    from_model_scale,
    to_model_scale,
)
from crts.models.recipe import Recipe


class Halves(ModelAdapter):
    """A kind whose prediction is half its last input's S2 bands."""

    recipe = Recipe("halves", "half the last image", {"lr": 0.1})

    def predict(self, net: nn.Module, config: dict, inputs: torch.Tensor, batch: dict) -> tuple:
        return inputs[:, -1, :13] / 2, None


def test_the_recipe_gives_name_summary_and_defaults() -> None:
    kind = Halves()
    assert (kind.name, kind.summary, kind.defaults) == ("halves", "half the last image", {"lr": 0.1})
    assert not kind.uncertain({}) and kind.encoder(nn.Linear(1, 1)) is None
    assert kind.trained_inputs({}, {}) == DEFAULT_INPUTS and kind.trained_inputs({}, {"n_input_samples": 5}) == 5
    with pytest.raises(ValueError, match=r"^init_encoder: the halves model has no pre-trained encoder to load$"):
        kind.load_encoder(nn.Linear(1, 1), "encoder.pt")


def test_the_default_training_loss_is_on_the_prediction() -> None:
    inputs = torch.full((1, 2, 15, 2, 2), 0.5)
    loss = Halves().training_loss(nn.Identity(), {}, "l1", inputs, torch.zeros(1, 13, 2, 2), {})
    assert loss.item() == pytest.approx(0.25)


def test_the_model_scale_round_trips() -> None:
    x = torch.tensor([0.0, 0.25, 1.0])
    torch.testing.assert_close(to_model_scale(x), torch.tensor([-1.0, -0.5, 1.0]))
    torch.testing.assert_close(from_model_scale(to_model_scale(x)), x)
