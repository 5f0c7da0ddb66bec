"""UnCRtainTS: attention-based multi-temporal cloud removal with per-pixel, per-band variances; its adapter and
its published checkpoints (``model*.pth.tar``: the generator's state dict, ``state_dict_G`` or ``state_dict``
behind a ``netG.`` prefix, maps one to one onto :class:`UnCRtainTS`; older files name the blocks
``in_block1``, ``out_block1`` ... instead of ``in_block.0``, ``out_block.0`` ..., renamed on loading as the
original does)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..settings import resolved_setting
from .adapter import S1_CHANNELS, S2_CHANNELS, ModelAdapter, Prediction
from .ltae import LTAE, aggregate_groups
from .mbconv import MBConv, PointwiseBlock
from .state import StateDict, count_blocks, generator_state, read_state
from .uncrtaints_recipe import UNCRTAINTS_RECIPE

if TYPE_CHECKING:
    from ..settings import TrainConfig

ATTENTION_SIZE = 32
"""Side of the max-pooled feature maps the temporal attention runs on (the original's ``att_down``)."""
ATTENTION_DROPOUT = 0.1
"""Dropout on the upsampled attention masks while training."""
PAD_VALUE = 0.0
"""An input time step whose values all equal this is padding (the original's ``pad_value``)."""
VARIANCE_FLOOR = {True: 1e-9, False: 1e-3}
"""Added to the softplus of the variances, keyed by ``scale_by == 1`` (model scale)."""


def network_inputs(inputs: torch.Tensor, scale_by: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps (N, T, C, H, W) of crts batches as the original networks take them, and which are padding (N, T).

    S1's bands, where present, move before S2's (crts batches hold S2 first), and all values are
    multiplied by ``scale_by``; a step whose values all equal :data:`PAD_VALUE` is padding.

    Examples
    --------
    >>> x, pad = network_inputs(torch.arange(15.0).reshape(1, 1, 15, 1, 1), 2)
    >>> x.flatten()[:3].tolist(), pad.tolist()
    ([26.0, 28.0, 0.0], [[False]])
    """
    c = inputs.shape[2]
    x = inputs if c == S2_CHANNELS else torch.cat([inputs[:, :, S2_CHANNELS:], inputs[:, :, :S2_CHANNELS]], dim=2)
    x = x * scale_by
    return x, (x == PAD_VALUE).flatten(2).all(dim=2)


class UnCRtainTS(nn.Module):
    """Cloud removal from a short image time series, predicting a mean and a variance per pixel and band.

    Ebel, Garnot, Schmitt, Wegner and Zhu, "UnCRtainTS: Uncertainty Quantification
    for Cloud Removal in Optical Satellite Time Series", CVPR EarthVision workshop
    2023 (github.com/PatrickTUM/UnCRtainTS).

    Inputs: ``inputs`` (N, T, C, H, W), each step's 13 S2 bands B1 ... B12 then, with
    ``use_sar``, the 2 S1 bands VV, VH (C = 15, else 13), in [0, 1] as the cube's
    default scaling gives them (the order of crts batches; the model moves S1 first,
    as the original's input is, so its weights apply); ``dates`` (N, T): acquisition
    dates in days (the original: days since 2014-04-03, the mean of the S1 and S2
    dates with ``use_sar``, see :func:`input_dates`). A step whose values are all 0 is
    treated as padding. Outputs: means (N, 13, H, W) in [0, 1] and variances
    (N, 13, H, W) in that scale squared (a diagonal covariance, ``covmode='diag'``).

    Per step, a shared encoder: a 1x1 convolution to ``encoder_widths[0]`` with group
    norm and ReLU, then one MBConv block per entry of ``encoder_widths``. Over time
    (skipped with ``is_mono``, the mono-temporal variant that takes T = 1): the L-TAE
    computes ``n_head`` attention masks per pixel on the features max-pooled to
    32 x 32, and each of ``n_head`` channel groups is averaged over time with its
    head's weights (``att_group``). Then one MBConv block per ``decoder_widths``
    entry (batch norm) and a 1x1 convolution to 26 channels: 13 means (through
    ``scale_by * sigmoid``) and 13 variances (softplus plus a floor). Inside, inputs
    are multiplied by ``scale_by`` and the outputs divided back (variances by
    ``scale_by**2``), as the original's training wrapper does. Parameter names are
    the original generator's: :func:`crts.models.load_original_uncrtaints` loads
    the published checkpoints. Published configuration (``use_sar``, widths 128,
    16 heads, d_model 256, five decoder blocks): 151 state-dict entries (91
    parameter tensors), 570,010 parameters; mono-temporal: 520,218.

    Examples
    --------
    >>> model = UnCRtainTS(encoder_widths=(16,), decoder_widths=(16, 16), n_head=4, d_model=32)
    >>> mean, var = model(torch.rand(2, 3, 15, 32, 32), torch.tensor([[10, 40, 70], [5, 6, 7]]))
    >>> mean.shape, var.shape
    (torch.Size([2, 13, 32, 32]), torch.Size([2, 13, 32, 32]))
    """

    def __init__(
        self,
        use_sar: bool = True,
        encoder_widths: Sequence[int] = (128,),
        decoder_widths: Sequence[int] = (128, 128, 128, 128, 128),
        n_head: int = 16,
        d_model: int = 256,
        d_k: int = 4,
        encoder_norm: str = "group",
        decoder_norm: str = "batch",
        positional_encoding: bool = True,
        scale_by: float = 1.0,
        is_mono: bool = False,
    ) -> None:
        super().__init__()
        if len(set(encoder_widths) | set(decoder_widths)) != 1:
            raise ValueError("UnCRtainTS keeps one width: encoder_widths and decoder_widths must all be equal")
        width = encoder_widths[0]
        self.config: dict[str, Any] = {  # of several types, as our checkpoints store it
            "use_sar": use_sar,
            "encoder_widths": list(encoder_widths),
            "decoder_widths": list(decoder_widths),
            "n_head": n_head,
            "d_model": d_model,
            "d_k": d_k,
            "encoder_norm": encoder_norm,
            "decoder_norm": decoder_norm,
            "positional_encoding": positional_encoding,
            "scale_by": scale_by,
            "is_mono": is_mono,
        }
        self.in_channels = S2_CHANNELS + S1_CHANNELS * use_sar
        self.in_conv = PointwiseBlock(self.in_channels, width, norm=encoder_norm, relu=True)
        self.in_block = nn.ModuleList(MBConv(w, expansion=2, norm=encoder_norm) for w in encoder_widths)
        if not is_mono:
            self.temporal_encoder = LTAE(
                width, n_head=n_head, d_k=d_k, d_model=d_model, positional_encoding=positional_encoding
            )
            self.attention_dropout = nn.Dropout(ATTENTION_DROPOUT)
        self.out_block = nn.ModuleList(MBConv(w, expansion=2, norm=decoder_norm) for w in decoder_widths)
        self.out_conv = PointwiseBlock(width, 2 * S2_CHANNELS)
        self.variance_floor = VARIANCE_FLOOR[scale_by == 1.0]

    def forward(self, inputs: torch.Tensor, dates: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and variances (N, 13, H, W) from ``inputs`` (N, T, C, H, W) in [0, 1] and ``dates`` (N, T)."""
        n, t, c, h, w = inputs.shape
        if c != self.in_channels:
            raise ValueError(f"this model takes {self.in_channels} channels per step, got {c}")
        if self.config["is_mono"] and t != 1:
            raise ValueError(f"the mono-temporal model takes 1 time step, got {t}")
        x, pad_mask = network_inputs(inputs, self.config["scale_by"])
        steps = x.reshape(n * t, c, h, w)
        if steps.is_cuda:
            steps = steps.contiguous(memory_format=torch.channels_last)  # cuDNN's fastest layout for the convs
        features = self.in_conv(steps)
        for block in self.in_block:
            features = block(features)
        features = features.reshape(n, t, -1, h, w)
        if self.config["is_mono"]:
            out = features[:, 0]
        else:
            pooled = F.adaptive_max_pool2d(features.flatten(0, 1), ATTENTION_SIZE).unflatten(0, (n, t))
            attention = self.temporal_encoder(pooled, dates, pad_mask)
            out = aggregate_groups(features, attention, pad_mask, self.attention_dropout)
        for block in self.out_block:
            out = block(out)
        out = self.out_conv(out)
        scale = self.config["scale_by"]
        mean = torch.sigmoid(out[:, :S2_CHANNELS])  # = (scale * sigmoid) / scale
        variance = (F.softplus(out[:, S2_CHANNELS:], beta=1, threshold=20) + self.variance_floor) / scale**2
        return mean, variance


def input_dates(s1_days: torch.Tensor, s2_days: torch.Tensor, use_sar: bool) -> torch.Tensor:
    """The dates UnCRtainTS encodes, (N, T) float days: the mean of the S1 and S2 dates with SAR, else S2's."""
    return (s1_days.float() + s2_days.float()) / 2 if use_sar else s2_days.float()


def predict_dated(net: nn.Module, config: dict, inputs: torch.Tensor, batch: dict) -> Prediction:
    """``net(inputs, dates)`` as UnCRtainTS's training script feeds its models: S2 alone unless
    ``config["use_sar"]``, with :func:`input_dates` of the batch's S1 and S2 days (moved to the inputs' device)."""
    use_sar = config["use_sar"]
    s1, s2 = (batch[k].to(inputs.device, non_blocking=True) for k in ("input_s1_td", "input_s2_td"))
    return net(inputs if use_sar else inputs[:, :, :S2_CHANNELS], input_dates(s1, s2, use_sar))


def _uncrtaints_state(content: dict) -> StateDict:
    """The generator's weights of an original UnCRtainTS file, with today's names."""
    renamed = {}
    for key, value in generator_state(content).items():
        match = re.match(r"(in|out)_block(\d+)\.(.*)", key)
        renamed[f"{match[1]}_block.{int(match[2]) - 1}.{match[3]}" if match else key] = value
    return renamed


def uncrtaints_config(state: StateDict) -> dict:
    """The config entries of an UnCRtainTS state dict that its shapes determine (all but ``scale_by`` and
    ``positional_encoding``)."""

    def norm(part: str) -> str:
        return "batch" if f"{part}.0.conv.norm.running_mean" in state else "group"

    width, in_channels = state["in_conv.conv.conv.0.weight"].shape[:2]
    config = {
        "use_sar": in_channels == S2_CHANNELS + S1_CHANNELS,
        "encoder_widths": [width] * count_blocks(state, "in_block"),
        "decoder_widths": [width] * count_blocks(state, "out_block"),
        "encoder_norm": norm("in_block"),
        "decoder_norm": norm("out_block"),
        "is_mono": "temporal_encoder.inconv.weight" not in state,
    }
    if not config["is_mono"]:
        n_head, d_k = state["temporal_encoder.attention_heads.Q"].shape
        config |= {"n_head": n_head, "d_k": d_k, "d_model": state["temporal_encoder.inconv.weight"].shape[0]}
    return config


def load_original_uncrtaints(
    path_or_state_dict: str | os.PathLike | StateDict, model: UnCRtainTS | None = None, scale_by: float = 1.0
) -> UnCRtainTS:
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
    state = _uncrtaints_state(read_state(path_or_state_dict))
    if "in_conv.conv.conv.0.weight" not in state:
        raise ValueError("not an UnCRtainTS state dict (no in_conv.conv.conv.0.weight)")
    model = model or UnCRtainTS(**uncrtaints_config(state), scale_by=scale_by)
    model.load_state_dict(state, strict=True)
    return model


class UnCRtainTSAdapter(ModelAdapter):
    """UnCRtainTS: inputs in [0, 1] with their dates (S2 alone without SAR), means and variances in [0, 1]."""

    recipe = UNCRTAINTS_RECIPE
    model_class = UnCRtainTS
    anchors = (("in_conv.conv.conv.0.weight", 4),)

    def build(self, settings: TrainConfig) -> UnCRtainTS:
        width = resolved_setting(settings.width, "width")
        return UnCRtainTS(
            encoder_widths=(width,),
            decoder_widths=(width,) * 5,
            n_head=settings.n_head,
            d_model=settings.d_model,
            scale_by=resolved_setting(settings.scale_by, "scale_by"),
        )

    def predict(self, net: nn.Module, config: dict, inputs: torch.Tensor, batch: dict) -> Prediction:
        return predict_dated(net, config, inputs, batch)

    def uncertain(self, config: dict) -> bool:
        return True

    def trained_inputs(self, config: dict, train_config: dict) -> int:
        return 1 if config["is_mono"] else super().trained_inputs(config, train_config)

    def config_of(self, state: StateDict) -> dict:
        return uncrtaints_config(state)

    def load_original(self, path_or_state_dict: str | os.PathLike | StateDict, **options: object) -> UnCRtainTS:
        # the loader's own keywords, passed on as given
        return load_original_uncrtaints(path_or_state_dict, **cast(dict[str, Any], options))
