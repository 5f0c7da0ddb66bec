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

Files are read with ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from .resnet3d import ResNet3D
from .uncrtaints import UnCRtainTS

StateDict = dict[str, torch.Tensor]
MODELS: dict[str, type[torch.nn.Module]] = {"resnet3d": ResNet3D, "uncrtaints": UnCRtainTS}
"""Model kinds of our checkpoints (``crts train --model``)."""


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


def load_checkpoint(path: str | os.PathLike) -> tuple[torch.nn.Module, dict]:
    """A model rebuilt from its kind and config with the saved weights, and the whole checkpoint dict.

    Checkpoints without a kind (written before UnCRtainTS) hold a :class:`ResNet3D`.
    """
    content = torch.load(path, map_location="cpu", weights_only=True)
    model = MODELS[content.get("model", "resnet3d")](**content["config"])
    model.load_state_dict(content["state_dict"])
    return model, content
