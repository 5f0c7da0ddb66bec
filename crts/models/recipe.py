"""What a model kind tells ``crts train`` before torch is imported: its :class:`Recipe` and its options.

Each model kind has a small torch-free module beside its model's file (``resnet3d_recipe.py`` beside
``resnet3d.py``) holding its recipe; :mod:`crts.models.kinds` lists them by name, and the kind's adapter
(:class:`crts.models.adapter.ModelAdapter`, with torch) refers to it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelOption:
    """A setting of :class:`crts.settings.TrainConfig` that a model kind reads, as ``crts train`` offers it
    (``--name-with-dashes``)."""

    name: str
    """The setting: a field of TrainConfig."""
    type: type
    """The type of its values."""
    help: str
    """What it sets, for ``crts train --help`` (which adds its default)."""


@dataclass(frozen=True)
class Recipe:
    """A model kind in a few words (for ``--help``), its original's training recipe (the settings of
    :class:`crts.settings.TrainConfig` that it leaves unset take these ``defaults``) and the settings it reads."""

    name: str
    """The kind's name: ``crts train --model NAME``, ``model`` in our checkpoints."""
    summary: str
    defaults: dict[str, object]
    options: tuple[ModelOption, ...] = ()
    """The settings that only this kind (or kinds built on it) reads."""
