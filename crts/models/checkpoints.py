"""Our checkpoint format: a model's state dict, its kind and config, checked against each other on reading.

Every kind's own knowledge (how its size is read off its tensors, which values its
config may hold) comes from its adapter in :mod:`crts.models.registry`. Files are read
with ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import torch

from .registry import MODELS, kind_of
from .state import load_file

LEGACY_KIND = "resnet3d"
"""The kind of checkpoints that name none (written before UnCRtainTS)."""


def model_config(model: torch.nn.Module) -> dict:
    """The config a model of a registered kind keeps: its constructor's arguments, as our checkpoints store them.

    Raises
    ------
    TypeError
        For a module without a config dict (not a model of a registered kind).
    """
    config = getattr(model, "config", None)  # torch types a module's attributes as its tensors and modules
    if not isinstance(config, dict):
        raise TypeError(f"a {type(model).__name__} keeps no config dict: not a model of a registered kind")
    return config


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, **extra: object) -> Path:
    """Our checkpoints: a plain state dict, the model's kind and JSON-serialisable config (plus ``extra``)."""
    path = Path(path)
    kind = kind_of(model).name
    torch.save({"state_dict": model.state_dict(), "model": kind, "config": dict(model_config(model)), **extra}, path)
    return path


def read_checkpoint(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    *,
    needs: tuple[str, ...] = (),
    config: dict | None = None,
) -> dict:
    """The content of one of our checkpoints, checked before anything is built from it.

    Parameters
    ----------
    path : path
        A file written by :func:`save_checkpoint`.
    map_location : str or torch.device
        Where to load the tensors.
    needs : tuple of str
        Entries the checkpoint must hold besides ``state_dict`` and ``config``.
    config : dict, optional
        The model config it must have been saved from (e.g. that of a run to resume).

    Raises
    ------
    ValueError
        One line naming the file and the problem: not a PyTorch file, not a
        checkpoint, a config that its tensors contradict, or another config than ``config``.
    """
    content = load_file(path, map_location)
    wanted = ("state_dict", "config", *needs)
    if not isinstance(content, dict):
        raise ValueError(f"{path}: not a checkpoint of crts train (it holds a {type(content).__name__}, not a dict)")
    if missing := [k for k in wanted if k not in content]:
        raise ValueError(f"{path}: not a checkpoint of crts train (it lacks {', '.join(map(repr, missing))})")
    kind = content.setdefault("model", LEGACY_KIND)
    if not isinstance(kind, str) or kind not in MODELS:
        raise ValueError(f"{path}: a model of kind {kind!r}; known kinds: {', '.join(MODELS)}")
    _check_config(content["config"], kind, str(path))
    _check_state_dict(content["state_dict"], content["config"], kind, str(path))
    if config is not None and (key := _first_difference(content["config"], config)):
        raise ValueError(
            f"{path}: a model with {key}={content['config'].get(key)}, but this run builds {key}={config.get(key)}"
        )
    return content


def _first_difference(a: dict, b: dict) -> str | None:
    return next((k for k in a if a[k] != b.get(k)), None)


def _check_config(config: object, kind: str, source: str) -> None:
    """A config must give every argument of its model class, with values its adapter accepts."""
    if not isinstance(config, dict):
        raise ValueError(f"{source}: config is a {type(config).__name__}, not a dict")
    keys = tuple(inspect.signature(MODELS[kind].model_class).parameters)
    if unknown := [k for k in config if k not in keys]:
        raise ValueError(f"{source}: config has unknown key {unknown[0]!r}")
    if missing := [k for k in keys if k not in config]:
        raise ValueError(f"{source}: config lacks {missing[0]!r}")
    MODELS[kind].check_config(config, source)


def _check_state_dict(state: object, config: dict, kind: str, source: str) -> None:
    """The tensors must be exactly those that ``config`` builds: names, shapes, floating point or not."""
    if not isinstance(state, dict):
        raise ValueError(f"{source}: state dict is a {type(state).__name__}, not a dict")
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{source}: {name!r} holds a {type(value).__name__}, not a tensor")
    for name, ndim in MODELS[kind].anchors:
        if name not in state:
            raise ValueError(f"{source}: state dict lacks {name}")
        if state[name].ndim != ndim:
            raise ValueError(f"{source}: tensor {name} has {state[name].ndim} dimensions, not {ndim}")
    derived = MODELS[kind].config_of(state)
    if key := _first_difference(derived, config):
        raise ValueError(f"{source}: config says {key}={config[key]}, but its tensors make {key}={derived[key]}")
    with torch.device("meta"):  # the config now matches real tensors: building it on no memory is cheap
        expected = dict(MODELS[kind].model_class(**config).state_dict())
    if missing := [name for name in expected if name not in state]:
        raise ValueError(f"{source}: state dict lacks {missing[0]}")
    if unexpected := [name for name in state if name not in expected]:
        raise ValueError(f"{source}: state dict has unexpected tensor {unexpected[0]}")
    for name, built in expected.items():
        if tuple(state[name].shape) != tuple(built.shape):
            raise ValueError(
                f"{source}: tensor {name} has shape {tuple(state[name].shape)}, but the config "
                f"makes {tuple(built.shape)}"
            )
        if state[name].is_floating_point() != built.is_floating_point():
            raise ValueError(
                f"{source}: tensor {name} holds {state[name].dtype}, not "
                f"{'floating point' if built.is_floating_point() else 'integer'} numbers"
            )


def load_checkpoint(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """A model rebuilt from its kind and config with the saved weights, and the whole checkpoint dict.

    Checkpoints without a kind (written before UnCRtainTS) hold a :class:`ResNet3D`.

    Raises
    ------
    ValueError
        If the file is not a sound checkpoint (see :func:`read_checkpoint`).
    """
    content = read_checkpoint(path)
    model = MODELS[content["model"]].model_class(**content["config"])
    model.load_state_dict(content["state_dict"])
    return model, content
