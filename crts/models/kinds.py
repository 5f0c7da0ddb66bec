"""The model kinds and baselines by name, without torch: what ``crts train --model`` and ``crts evaluate
--baseline`` offer, and the recipes that :class:`crts.settings.TrainConfig` resolves with.

The ``crts`` command builds and checks its arguments from these before it imports torch. The registries with
the models themselves (torch): :mod:`crts.models.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from .recipe import ModelOption, Recipe
from .resnet3d_recipe import RESNET3D_RECIPE
from .uncrtaints_recipe import UNCRTAINTS_RECIPE
from .utae_recipe import UTAE_RECIPE

RECIPES: dict[str, Recipe] = {kind.name: kind for kind in (RESNET3D_RECIPE, UNCRTAINTS_RECIPE, UTAE_RECIPE)}
"""Every model kind by the name ``crts train --model`` takes, in the order of :data:`crts.models.MODELS` (whose
adapters refer to these)."""
BASELINE_NAMES = ("least_cloudy", "mosaic")
"""The baselines ``crts evaluate --baseline`` takes (:data:`crts.models.registry.BASELINES`)."""
T = TypeVar("T")


def by_name(what: str, name: str, registry: Mapping[str, T]) -> T:
    """``registry[name]``; an unknown name is one ValueError line naming ``what`` and listing the names.

    Examples
    --------
    >>> by_name("baseline", "median", dict.fromkeys(BASELINE_NAMES))
    Traceback (most recent call last):
    ...
    ValueError: invalid baseline 'median': choose from least_cloudy, mosaic
    """
    if name not in registry:
        raise ValueError(f"invalid {what} {name!r}: choose from {', '.join(registry)}")
    return registry[name]


def recipe(model: str) -> Recipe:
    """The recipe of the model kind ``model``; an unknown name is one ValueError line listing the kinds.

    Examples
    --------
    >>> recipe("utae").defaults["loss"]
    'l2'
    """
    return by_name("model", model, RECIPES)


def model_options() -> dict[str, ModelOption]:
    """The settings that model kinds read, by name, each once (kinds built on another share its options).

    Examples
    --------
    >>> list(model_options())
    ['features', 'blocks', 'width', 'n_head', 'd_model', 'scale_by']
    """
    return {option.name: option for kind in RECIPES.values() for option in kind.options}
