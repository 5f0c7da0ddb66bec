"""The model kinds, by the name ``crts train --model`` takes: one :class:`~crts.models.adapter.ModelAdapter` each.

Adding a model: its file (module and adapter), one line here and its recipe in :data:`crts.settings.RECIPES`
(docs/extending.md).
"""

from __future__ import annotations

from torch import nn

from ..settings import recipe
from .adapter import ModelAdapter
from .resnet3d import ResNet3DAdapter
from .uncrtaints import UnCRtainTSAdapter
from .utae import UTAEAdapter

MODELS: dict[str, ModelAdapter] = {adapter.name: adapter for adapter in (ResNet3DAdapter(), UnCRtainTSAdapter(),
                                                                          UTAEAdapter())}
"""Every model kind of ``crts train --model`` and of our checkpoints."""


def model_kind(name: str) -> ModelAdapter:
    """The adapter of the kind ``name``; an unknown name is one ValueError line listing the kinds.

    Examples
    --------
    >>> model_kind("resnet3d").summary
    "the paper's 3D ResNet"
    >>> model_kind("unet")
    Traceback (most recent call last):
    ...
    ValueError: invalid model 'unet': choose from resnet3d, uncrtaints, utae
    """
    recipe(name)  # an unknown name: the one line listing the kinds
    return MODELS[name]


def kind_of(model: nn.Module) -> ModelAdapter:
    """The adapter of a model (of one of the registered classes)."""
    return next(adapter for adapter in MODELS.values() if type(model) is adapter.model_class)
