"""Loading the original toolbox's checkpoints, and our own checkpoint format.

Mapping of original names (after removing a ``module.`` prefix from DataParallel):

- generator ``*_net_G.pth``: ``model_initial.*`` and ``model_final.*`` map one to one
  onto :class:`ResNet3D`; its size (F, B, T, channels) is read off the shapes;
- mono-temporal ``baseline_resnet.pth``: ``model.{0, 2..B+1}.*`` (possibly behind one
  more leading prefix) become ``model_initial.{0, 2..B+1}.*``, the encoder; its
  layers 18 (conv 256 -> 64) and 20 (conv 64 -> 13) have no counterpart and are dropped.

Files are read with ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from .resnet3d import ResNet3D

StateDict = dict[str, torch.Tensor]


def _read(path_or_state_dict: str | os.PathLike | StateDict) -> StateDict:
    if isinstance(path_or_state_dict, dict):
        return path_or_state_dict
    return torch.load(path_or_state_dict, map_location="cpu", weights_only=True)


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
    state = _strip(_read(path_or_state_dict), "module.")
    if "model_initial.0.weight" in state:
        model = model or ResNet3D(**_generator_config(state))
        model.load_state_dict(state, strict=True)
        return model
    encoder_keys = [k for k in state if re.search(r"(^|\.)model\.\d+\.", k)]
    if not encoder_keys:
        raise ValueError("neither an original generator (model_initial.*, model_final.*) nor a "
                         "baseline_resnet (model.*) state dict")
    prefix = encoder_keys[0][: encoder_keys[0].index("model.")]
    encoder = {}
    for key, value in _strip(state, prefix).items():
        match = re.match(r"model\.(\d+)\.(.*)", key)
        if match and int(match.group(1)) < 18:
            encoder[f"{match.group(1)}.{match.group(2)}"] = value
    if model is None:
        raise ValueError("baseline_resnet.pth holds only the per-step encoder: pass the ResNet3D to load it into")
    model.model_initial.load_state_dict(encoder, strict=True)
    return model


def save_checkpoint(path: str | os.PathLike, model: ResNet3D, **extra: object) -> Path:
    """Our checkpoints: a plain state dict and the model's JSON-serialisable config (plus ``extra``)."""
    path = Path(path)
    torch.save({"state_dict": model.state_dict(), "config": dict(model.config), **extra}, path)
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[ResNet3D, dict]:
    """A model rebuilt from its config with the saved weights, and the whole checkpoint dict."""
    content = torch.load(path, map_location="cpu", weights_only=True)
    model = ResNet3D(**content["config"])
    model.load_state_dict(content["state_dict"])
    return model, content
