"""The seq2point 3D ResNet of the SEN12MS-CR-TS paper, its adapter, and the original toolbox's checkpoints.

Mapping of original names (after removing a ``module.`` prefix from DataParallel):

- generator ``*_net_G.pth``: ``model_initial.*`` and ``model_final.*`` map one to one
  onto :class:`ResNet3D`; its size (F, B, T, channels) is read off the shapes;
- mono-temporal ``baseline_resnet.pth``: ``model.{0, 2..B+1}.*`` (possibly behind one
  more leading prefix) become ``model_initial.{0, 2..B+1}.*``, the encoder; its
  layers 18 (conv 256 -> 64) and 20 (conv 64 -> 13) have no counterpart and are dropped.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from ..losses import reconstruction_loss
from .adapter import ModelAdapter, Prediction, from_model_scale, to_model_scale
from .blocks import PadHWReflect, ResBlock2d, ResBlock3d
from .resnet3d_recipe import RESNET3D_RECIPE
from .state import StateDict, load_into, read_state, strip

if TYPE_CHECKING:
    from ..settings import TrainConfig

FUSION_BLOCKS = 5


class ResNet3D(nn.Module):
    """Cloud removal from a short time series: a shared 2D encoder per step, a 3D fusion head, tanh.

    Input (N, T, C_in, H, W): T = ``n_inputs`` time steps, each with 13 S2 bands
    then 2 S1 bands (``in_channels`` = 15), in [-1, 1] under the default scaling.
    Output (N, C_out, H, W): the cloud-free S2 image (``out_channels`` = 13) in [-1, 1].

    Encoder ``model_initial``: conv3x3 (C_in -> F) + ReLU, then ``blocks`` residual
    blocks. Fusion ``model_final``: the encodings stacked along time (N, F, T, H, W),
    conv3d 3x3x3 + ReLU, 5 residual 3D blocks, reflection padding of H and W, a
    conv3d with kernel (T, 3, 3) that collapses time, tanh. Parameter names equal
    the original generator's, so its checkpoints load (see
    :func:`crts.models.load_original_checkpoint`); unlike the original, any batch
    size works. With F = 256, B = 16 and T = 3: 90 tensors, 38,474,253 parameters.

    Examples
    --------
    >>> model = ResNet3D(n_inputs=3, features=16, blocks=2)
    >>> model(torch.zeros(2, 3, 15, 32, 32)).shape
    torch.Size([2, 13, 32, 32])
    """

    def __init__(
        self, n_inputs: int = 3, in_channels: int = 15, out_channels: int = 13, features: int = 256, blocks: int = 16
    ) -> None:
        super().__init__()
        self.config = {
            "n_inputs": n_inputs,
            "in_channels": in_channels,
            "out_channels": out_channels,
            "features": features,
            "blocks": blocks,
        }
        self.model_initial = nn.Sequential(
            nn.Conv2d(in_channels, features, 3, padding=1),
            nn.ReLU(inplace=True),
            *(ResBlock2d(features) for _ in range(blocks)),
        )
        self.model_final = nn.Sequential(
            nn.Conv3d(features, features, 3, padding=1),
            nn.ReLU(inplace=True),
            *(ResBlock3d(features) for _ in range(FUSION_BLOCKS)),
            PadHWReflect(),
            nn.Conv3d(features, out_channels, (n_inputs, 3, 3)),
            nn.Tanh(),
        )

    def forward(self, inputs: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Predict (N, C_out, H, W) from (N, T, C_in, H, W); ``masks`` is accepted for a common signature."""
        n, t, c, h, w = inputs.shape
        if t != self.config["n_inputs"]:
            raise ValueError(f"this model takes {self.config['n_inputs']} time steps, got {t}")
        steps = inputs.reshape(n * t, c, h, w)
        if steps.is_cuda:
            steps = steps.contiguous(memory_format=torch.channels_last)
        encoded = self.model_initial(steps)
        stacked = encoded.reshape(n, t, -1, h, w).transpose(1, 2)  # (N, F, T, H, W)
        if stacked.is_cuda:
            stacked = stacked.contiguous(memory_format=torch.channels_last_3d)
        return self.model_final(stacked).squeeze(2)


ENCODER_LAYERS = 18
"""Layers ``model.0`` ... ``model.17`` of ``baseline_resnet.pth`` are the encoder; 18 and 20 map to 13 bands."""


def generator_config(state: StateDict) -> dict:
    """The config of an original generator's (or our) state dict, read off its shapes."""
    first, last = state["model_initial.0.weight"], state["model_final.8.weight"]
    blocks = len({int(m.group(1)) for k in state if (m := re.match(r"model_initial\.(\d+)\.conv_block", k))})
    return {
        "n_inputs": last.shape[2],
        "in_channels": first.shape[1],
        "out_channels": last.shape[0],
        "features": first.shape[0],
        "blocks": blocks,
    }


def load_original_checkpoint(
    path_or_state_dict: str | os.PathLike | StateDict, model: ResNet3D | None = None
) -> ResNet3D:
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
    state = strip(read_state(path_or_state_dict), "module.")
    if "model_initial.0.weight" in state:
        model = model or ResNet3D(**generator_config(state))
        load_into(model, state, source)
        return model
    encoder_keys = [k for k in state if re.search(r"(^|\.)model\.\d+\.", k)]
    if not encoder_keys:
        raise ValueError(
            f"{source}: neither an original generator (model_initial.*, model_final.*) nor a "
            "baseline_resnet (model.*) state dict"
        )
    if model is None:
        raise ValueError(
            f"{source}: baseline_resnet.pth holds only the per-step encoder: pass the ResNet3D to load it into"
        )
    prefix = encoder_keys[0][: encoder_keys[0].index("model.")]
    encoder = {
        f"{m[1]}.{m[2]}": value
        for key, value in strip(state, prefix).items()
        if (m := re.match(r"model\.(\d+)\.(.*)", key)) and int(m[1]) < ENCODER_LAYERS
    }
    load_into(model.model_initial, encoder, source)
    return model


class ResNet3DAdapter(ModelAdapter):
    """The 3D ResNet: inputs and outputs on the [-1, 1] scale, trained with L1 there (the original's recipe)."""

    recipe = RESNET3D_RECIPE
    model_class = ResNet3D
    anchors = (("model_initial.0.weight", 4), ("model_final.8.weight", 5))

    def build(self, settings: TrainConfig) -> ResNet3D:
        return ResNet3D(n_inputs=settings.n_input_samples, features=settings.features, blocks=settings.blocks)

    def predict(self, net: nn.Module, config: dict, inputs: torch.Tensor, batch: dict) -> Prediction:
        masks = batch["input_masks"].to(inputs.device, non_blocking=True)
        return from_model_scale(net(to_model_scale(inputs), masks)), None

    def training_loss(
        self, net: nn.Module, config: dict, loss: str, inputs: torch.Tensor, target: torch.Tensor, batch: dict
    ) -> torch.Tensor:
        return reconstruction_loss(loss, net(to_model_scale(inputs)).float(), to_model_scale(target))

    def trained_inputs(self, config: dict, train_config: dict) -> int:
        return config["n_inputs"]

    def config_of(self, state: StateDict) -> dict:
        return generator_config(state)

    def check_config(self, config: dict, source: str) -> None:
        for key, value in config.items():
            least = 0 if key == "blocks" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{source}: config {key!r} holds {value!r}, not an integer of at least {least}")

    def encoder(self, model: nn.Module) -> nn.Module:
        return _resnet(model).model_initial

    def load_encoder(self, model: nn.Module, path: str | os.PathLike) -> None:
        load_original_checkpoint(path, _resnet(model))

    def load_original(self, path_or_state_dict: str | os.PathLike | StateDict, **options: object) -> ResNet3D:
        # the loader's own keywords, passed on as given
        return load_original_checkpoint(path_or_state_dict, **cast(dict[str, Any], options))


def _resnet(model: nn.Module) -> ResNet3D:
    """``model``, which the 3D ResNet's adapter is given only of its own kind."""
    if not isinstance(model, ResNet3D):
        raise TypeError(f"the 3D ResNet's adapter was given a {type(model).__name__}, not a ResNet3D")
    return model
