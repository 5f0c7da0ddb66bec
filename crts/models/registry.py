"""The model kinds, by the name ``crts train --model`` takes: one :class:`~crts.models.adapter.ModelAdapter` each;
and the baselines, by the name ``crts evaluate --baseline`` takes. Their names, without torch:
:mod:`crts.models.kinds`.

Adding a model: its file (module and adapter), its recipe beside it, and one entry here and in
:data:`crts.models.kinds.RECIPES` (docs/extending.md).
"""

from __future__ import annotations

from torch import nn

from .adapter import ModelAdapter
from .baselines import LeastCloudy, Mosaic
from .kinds import BASELINE_NAMES, by_name
from .resnet3d import ResNet3DAdapter
from .uncrtaints import UnCRtainTSAdapter
from .utae import UTAEAdapter

MODELS: dict[str, ModelAdapter] = {
    adapter.name: adapter for adapter in (ResNet3DAdapter(), UnCRtainTSAdapter(), UTAEAdapter())
}
"""Every model kind of ``crts train --model`` and of our checkpoints."""
BASELINES: dict[str, type[nn.Module]] = dict(zip(BASELINE_NAMES, (LeastCloudy, Mosaic), strict=True))
"""Every baseline of ``crts evaluate --baseline``, called as ``model(inputs, masks)`` on the model scale."""


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
    return by_name("model", name, MODELS)


def kind_of(model: nn.Module) -> ModelAdapter:
    """The adapter of a model (of one of the registered classes)."""
    return next(adapter for adapter in MODELS.values() if type(model) is adapter.model_class)


def new_baseline(name: str) -> nn.Module:
    """A new baseline of the name ``name``; an unknown name is one ValueError line listing the baselines.

    Examples
    --------
    >>> type(new_baseline("mosaic")).__name__
    'Mosaic'
    >>> new_baseline("median")
    Traceback (most recent call last):
    ...
    ValueError: invalid baseline 'median': choose from least_cloudy, mosaic
    """
    return by_name("baseline", name, BASELINES)()
