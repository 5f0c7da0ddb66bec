"""Loading the original toolbox's checkpoints, and our own checkpoint format.

Mapping of original names (after removing a ``module.`` prefix from DataParallel):

- generator ``*_net_G.pth``: ``model_initial.*`` and ``model_final.*`` map one to one
  onto :class:`ResNet3D`; its size (F, B, T, channels) is read off the shapes;
- mono-temporal ``baseline_resnet.pth``: ``model.{0, 2..B+1}.*`` (possibly behind one
  more leading prefix) become ``model_initial.{0, 2..B+1}.*``, the encoder; its
  layers 18 (conv 256 -> 64) and 20 (conv 64 -> 13) have no counterpart and are dropped;
- UnCRtainTS ``model*.pth.tar``: the generator's state dict (``state_dict_G``, or
  ``state_dict`` behind a ``netG.`` prefix) maps one to one onto :class:`UnCRtainTS`;
  older files name the blocks ``in_block1``, ``out_block1`` ... instead of
  ``in_block.0``, ``out_block.0`` ... (renamed on loading, as the original does).

Files are read with ``torch.load(weights_only=True)``: no pickled code runs. Our checkpoints'
configs are checked against their tensors before a model is built (:func:`read_checkpoint`).
"""

from __future__ import annotations

import inspect
import os
import re
import warnings
from pathlib import Path

import torch

from .resnet3d import ResNet3D
from .uncrtaints import UnCRtainTS

StateDict = dict[str, torch.Tensor]
MODELS: dict[str, type[torch.nn.Module]] = {"resnet3d": ResNet3D, "uncrtaints": UnCRtainTS}
"""Model kinds of our checkpoints (``crts train --model``)."""


def _load_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> object:
    """``torch.load(weights_only=True)``; a file it cannot read as tensors and plain data is one ValueError line.

    OS errors (no such file, permission denied, ...) pass unchanged: they name the file already.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # e.g. about the pickle protocol of a foreign file
            return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as err:  # damaged or foreign bytes fail in many ways: UnpicklingError, RuntimeError, KeyError ...
        raise ValueError(f"{path}: not a PyTorch file of tensors and plain data "
                         f"({type(err).__name__} in torch.load)") from None


def _read(path_or_state_dict: str | os.PathLike | StateDict) -> StateDict:
    if isinstance(path_or_state_dict, dict):
        return path_or_state_dict
    state = _load_file(path_or_state_dict)
    if not isinstance(state, dict):
        raise ValueError(f"{path_or_state_dict}: a {type(state).__name__}, not a state dict")
    return state


def _generator_config(state: StateDict) -> dict:
    first, last = state["model_initial.0.weight"], state["model_final.8.weight"]
    blocks = len({int(m.group(1)) for k in state if (m := re.match(r"model_initial\.(\d+)\.conv_block", k))})
    return {"n_inputs": last.shape[2], "in_channels": first.shape[1], "out_channels": last.shape[0],
            "features": first.shape[0], "blocks": blocks}


def _strip(state: StateDict, prefix: str) -> StateDict:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def load_original_checkpoint(path_or_state_dict: str | os.PathLike | StateDict,
                             model: ResNet3D | None = None) -> ResNet3D:
    """Load an original generator (``*_net_G.pth``) or the pre-trained ``baseline_resnet.pth`` encoder.

    Parameters
    ----------
    path_or_state_dict : path or dict
        The file, or an already loaded state dict.
    model : ResNet3D, optional
        The model to load into; default: a new one sized from the generator's
        shapes (required for ``baseline_resnet.pth``, which holds only an encoder).

    Raises
    ------
    ValueError
        If the keys match neither format, or the shapes do not fit ``model``.
    """
    source = "the state dict" if isinstance(path_or_state_dict, dict) else str(path_or_state_dict)
    state = _strip(_read(path_or_state_dict), "module.")
    if "model_initial.0.weight" in state:
        model = model or ResNet3D(**_generator_config(state))
        _load_into(model, state, source)
        return model
    encoder_keys = [k for k in state if re.search(r"(^|\.)model\.\d+\.", k)]
    if not encoder_keys:
        raise ValueError(f"{source}: neither an original generator (model_initial.*, model_final.*) nor a "
                         "baseline_resnet (model.*) state dict")
    prefix = encoder_keys[0][: encoder_keys[0].index("model.")]
    encoder = {}
    for key, value in _strip(state, prefix).items():
        match = re.match(r"model\.(\d+)\.(.*)", key)
        if match and int(match.group(1)) < 18:
            encoder[f"{match.group(1)}.{match.group(2)}"] = value
    if model is None:
        raise ValueError(f"{source}: baseline_resnet.pth holds only the per-step encoder: pass the ResNet3D to "
                         "load it into")
    _load_into(model.model_initial, encoder, source)
    return model


def _load_into(module: torch.nn.Module, state: StateDict, source: str) -> None:
    """``module.load_state_dict(state)``; weights that do not fit are one line naming ``source``."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        reason = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise ValueError(f"{source}: its weights do not fit this model ({reason[:300]})") from None


def _uncrtaints_state(content: dict) -> StateDict:
    """The generator's weights of an original UnCRtainTS file, with today's names."""
    if "state_dict_G" in content:
        state = content["state_dict_G"]
    else:
        state = _strip(content.get("state_dict", content), "netG.")
    renamed = {}
    for key, value in _strip(state, "module.").items():
        match = re.match(r"(in|out)_block(\d+)\.(.*)", key)
        renamed[f"{match[1]}_block.{int(match[2]) - 1}.{match[3]}" if match else key] = value
    return renamed


def _uncrtaints_config(state: StateDict) -> dict:
    def blocks(part: str) -> int:
        return len({m[1] for k in state if (m := re.match(rf"{part}\.(\d+)\.", k))})

    def norm(part: str) -> str:
        return "batch" if f"{part}.0.conv.norm.running_mean" in state else "group"

    width, in_channels = state["in_conv.conv.conv.0.weight"].shape[:2]
    config = {"use_sar": in_channels == 15, "encoder_widths": [width] * blocks("in_block"),
              "decoder_widths": [width] * blocks("out_block"), "encoder_norm": norm("in_block"),
              "decoder_norm": norm("out_block"), "is_mono": "temporal_encoder.inconv.weight" not in state}
    if not config["is_mono"]:
        n_head, d_k = state["temporal_encoder.attention_heads.Q"].shape
        config |= {"n_head": n_head, "d_k": d_k, "d_model": state["temporal_encoder.inconv.weight"].shape[0]}
    return config


def load_original_uncrtaints(path_or_state_dict: str | os.PathLike | StateDict, model: UnCRtainTS | None = None,
                             scale_by: float = 1.0) -> UnCRtainTS:
    """Load a published UnCRtainTS checkpoint (``model*.pth.tar`` of the original's training script).

    Parameters
    ----------
    path_or_state_dict : path or dict
        The file, or its loaded content: a dict with ``state_dict_G`` or
        ``state_dict`` (keys ``netG.*``), or the generator's state dict itself.
    model : UnCRtainTS, optional
        The model to load into; default: a new one sized from the shapes
        (S1 input, widths, blocks, heads, norms, mono-temporal or not).
    scale_by : float
        The ``scale_by`` the checkpoint was trained with (its ``conf.json``; the
        published training command uses 10); it is not in the weights.

    Raises
    ------
    RuntimeError
        If names or shapes do not fit ``model``.
    """
    state = _uncrtaints_state(_read(path_or_state_dict))
    if "in_conv.conv.conv.0.weight" not in state:
        raise ValueError("not an UnCRtainTS state dict (no in_conv.conv.conv.0.weight)")
    model = model or UnCRtainTS(**_uncrtaints_config(state), scale_by=scale_by)
    model.load_state_dict(state, strict=True)
    return model


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, **extra: object) -> Path:
    """Our checkpoints: a plain state dict, the model's kind and JSON-serialisable config (plus ``extra``)."""
    path = Path(path)
    kind = next(name for name, cls in MODELS.items() if isinstance(model, cls))
    torch.save({"state_dict": model.state_dict(), "model": kind, "config": dict(model.config), **extra}, path)
    return path


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", *,
                    needs: tuple[str, ...] = (), config: dict | None = None) -> dict:
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
    content = _load_file(path, map_location)
    wanted = ("state_dict", "config", *needs)
    if not isinstance(content, dict):
        raise ValueError(f"{path}: not a checkpoint of crts train (it holds a {type(content).__name__}, not a dict)")
    if missing := [k for k in wanted if k not in content]:
        raise ValueError(f"{path}: not a checkpoint of crts train (it lacks {', '.join(map(repr, missing))})")
    kind = content.setdefault("model", "resnet3d")  # checkpoints written before UnCRtainTS hold a ResNet3D
    if kind not in MODELS:
        raise ValueError(f"{path}: a model of kind {kind!r}; known kinds: {', '.join(MODELS)}")
    _check_config(content["config"], kind, str(path))
    _check_state_dict(content["state_dict"], content["config"], kind, str(path))
    if config is not None and (key := _first_difference(content["config"], config)):
        raise ValueError(f"{path}: a model with {key}={content['config'].get(key)}, but this run builds "
                         f"{key}={config.get(key)}")
    return content


def _first_difference(a: dict, b: dict) -> str | None:
    return next((k for k in a if a[k] != b.get(k)), None)


def _check_config(config: object, kind: str, source: str) -> None:
    """A config must give every argument of its model class (ResNet3D's as integers of a buildable size)."""
    if not isinstance(config, dict):
        raise ValueError(f"{source}: config is a {type(config).__name__}, not a dict")
    keys = tuple(inspect.signature(MODELS[kind]).parameters)
    if unknown := [k for k in config if k not in keys]:
        raise ValueError(f"{source}: config has unknown key {unknown[0]!r}")
    if missing := [k for k in keys if k not in config]:
        raise ValueError(f"{source}: config lacks {missing[0]!r}")
    for key, value in config.items() if kind == "resnet3d" else ():
        least = 0 if key == "blocks" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{source}: config {key!r} holds {value!r}, not an integer of at least {least}")


ANCHORS = {"resnet3d": (("model_initial.0.weight", 4), ("model_final.8.weight", 5)),
           "uncrtaints": (("in_conv.conv.conv.0.weight", 4),)}
"""Per model kind, tensors (and their dimensions) that its size is read from."""


def _check_state_dict(state: object, config: dict, kind: str, source: str) -> None:
    """The tensors must be exactly those that ``config`` builds: names, shapes, floating point or not."""
    if not isinstance(state, dict):
        raise ValueError(f"{source}: state dict is a {type(state).__name__}, not a dict")
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{source}: {name!r} holds a {type(value).__name__}, not a tensor")
    for name, ndim in ANCHORS[kind]:
        if name not in state:
            raise ValueError(f"{source}: state dict lacks {name}")
        if state[name].ndim != ndim:
            raise ValueError(f"{source}: tensor {name} has {state[name].ndim} dimensions, not {ndim}")
    derived = (_generator_config if kind == "resnet3d" else _uncrtaints_config)(state)
    if key := _first_difference(derived, config):
        raise ValueError(f"{source}: config says {key}={config[key]}, but its tensors make {key}={derived[key]}")
    with torch.device("meta"):  # the config now matches real tensors: building it on no memory is cheap
        expected = dict(MODELS[kind](**config).state_dict())
    if missing := [name for name in expected if name not in state]:
        raise ValueError(f"{source}: state dict lacks {missing[0]}")
    if unexpected := [name for name in state if name not in expected]:
        raise ValueError(f"{source}: state dict has unexpected tensor {unexpected[0]}")
    for name, built in expected.items():
        if tuple(state[name].shape) != tuple(built.shape):
            raise ValueError(f"{source}: tensor {name} has shape {tuple(state[name].shape)}, but the config "
                             f"makes {tuple(built.shape)}")
        if state[name].is_floating_point() != built.is_floating_point():
            raise ValueError(f"{source}: tensor {name} holds {state[name].dtype}, not "
                             f"{'floating point' if built.is_floating_point() else 'integer'} numbers")


def load_checkpoint(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """A model rebuilt from its kind and config with the saved weights, and the whole checkpoint dict.

    Checkpoints without a kind (written before UnCRtainTS) hold a :class:`ResNet3D`.

    Raises
    ------
    ValueError
        If the file is not a sound checkpoint (see :func:`read_checkpoint`).
    """
    content = read_checkpoint(path)
    model = MODELS[content["model"]](**content["config"])
    model.load_state_dict(content["state_dict"])
    return model, content
