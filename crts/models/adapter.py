"""What training, evaluation, checkpoints and the CLI know of a model: :class:`ModelAdapter`.

Every model file ends with its adapter; :mod:`crts.models.registry` lists them by
the name ``crts train --model`` takes. Nothing outside a model's file and the
registry asks which model it has (see docs/extending.md).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from cube.dataset.bands import S1_BANDS, S2_BANDS

from ..losses import reconstruction_loss
from .recipe import Recipe
from .state import StateDict

if TYPE_CHECKING:
    from ..settings import TrainConfig

Prediction = tuple[torch.Tensor, torch.Tensor | None]
"""Means (N, 13, H, W) in [0, 1] and, from models that predict them, variances in that scale squared."""
S1_CHANNELS, S2_CHANNELS = len(S1_BANDS), len(S2_BANDS)
"""Channels of each input time step of crts batches: S2's bands first, then S1's."""
DEFAULT_INPUTS = 3
"""Input time steps of a checkpoint whose training config does not say (the original's ``input_t``)."""


class ModelAdapter:
    """One model kind: how it is built, fed, trained, checked and loaded from its original's files.

    Subclasses set the class attributes (``recipe`` from the kind's torch-free
    recipe module) and implement :meth:`build`, :meth:`predict` and
    :meth:`config_of`; the rest has defaults that fit models working on the
    [0, 1] scale.
    """

    recipe: ClassVar[Recipe]
    """The kind's name, summary, training recipe and options, torch-free beside the model's file
    (:mod:`crts.models.kinds` lists them)."""
    model_class: ClassVar[type[nn.Module]]
    """The module; its constructor's arguments are the config our checkpoints store."""
    anchors: ClassVar[tuple[tuple[str, int], ...]]
    """Tensors (and their dimensions) that :meth:`config_of` reads the size from."""

    @property
    def name(self) -> str:
        """The kind's name: ``crts train --model NAME``, ``model`` in our checkpoints."""
        return self.recipe.name

    @property
    def summary(self) -> str:
        """A few words for ``--help``."""
        return self.recipe.summary

    @property
    def defaults(self) -> dict[str, object]:
        """Training settings (:class:`crts.settings.TrainConfig`) left unset take these: the original's recipe."""
        return self.recipe.defaults

    def build(self, settings: TrainConfig) -> nn.Module:
        """A new model from the training settings."""
        raise NotImplementedError

    def predict(self, net: nn.Module, config: dict, inputs: torch.Tensor, batch: dict) -> Prediction:
        """Means in [0, 1] (and variances or None) of ``inputs`` (N, T, 15, H, W) in [0, 1] on the device.

        ``net`` is the model, maybe wrapped (DDP, ``torch.compile``); ``config`` its
        config; ``batch`` the rest of the crts batch (masks, dates), still on the CPU.
        """
        raise NotImplementedError

    def training_loss(
        self, net: nn.Module, config: dict, loss: str, inputs: torch.Tensor, target: torch.Tensor, batch: dict
    ) -> torch.Tensor:
        """The loss ``loss`` of a training step (default: on the [0, 1] scale, with the variances)."""
        mean, variance = self.predict(net, config, inputs, batch)
        return reconstruction_loss(loss, mean.float(), target, None if variance is None else variance.float())

    def uncertain(self, config: dict) -> bool:
        """Whether a model of ``config`` predicts variances."""
        return False

    def trained_inputs(self, config: dict, train_config: dict) -> int:
        """The input time steps a checkpoint's model was trained with (its training config's)."""
        return int(train_config.get("n_input_samples", DEFAULT_INPUTS))

    def config_of(self, state: StateDict) -> dict:
        """The config entries that a state dict's tensors determine."""
        raise NotImplementedError

    def check_config(self, config: dict, source: str) -> None:
        """Refuse, in one line naming ``source``, values the constructor would not refuse itself."""

    def encoder(self, model: nn.Module) -> nn.Module | None:
        """The part ``init_encoder`` loads and ``freeze_encoder_steps`` freezes; None: the model has none."""
        return None

    def load_encoder(self, model: nn.Module, path: str | os.PathLike) -> None:
        """Initialise :meth:`encoder` from a pre-trained file."""
        raise ValueError(f"init_encoder: the {self.name} model has no pre-trained encoder to load")

    def load_original(self, path_or_state_dict: str | os.PathLike | StateDict, **options: object) -> nn.Module:
        """A model with the weights of an original implementation's file."""
        raise NotImplementedError


def to_model_scale(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1], the scale the 3D ResNet and the baselines work on.

    Examples
    --------
    >>> to_model_scale(torch.tensor([0.0, 0.5, 1.0])).tolist()
    [-1.0, 0.0, 1.0]
    """
    return x * 2 - 1


def from_model_scale(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] (the inverse of :func:`to_model_scale`)."""
    return (x + 1) / 2
