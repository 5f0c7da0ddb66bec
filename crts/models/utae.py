"""U-TAE: a U-Net whose skip connections are aggregated over time by L-TAE attention; the baseline of UnCRtainTS.

Garnot and Landrieu, "Panoptic Segmentation of Satellite Image Time Series with
Convolutional Temporal Attention Networks", ICCV 2021 (github.com/VSainteuf/utae-paps),
as the UnCRtainTS repository's ``utae`` backbone (``model/src/backbones/utae.py``) and
training script use it for cloud removal (docs/reference.md §7.4 U-TAE).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypedDict, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..settings import resolved_setting
from .adapter import S1_CHANNELS, S2_CHANNELS, ModelAdapter, Prediction
from .ltae import TemporalAttention, aggregate_groups
from .state import StateDict, count_blocks, generator_state, load_into, read_state
from .uncrtaints import PAD_VALUE, network_inputs, predict_dated
from .utae_recipe import UTAE_RECIPE

if TYPE_CHECKING:
    from ..settings import TrainConfig

NORM_GROUPS = 4
"""Groups of the group norms in the convolution layers (the original's ``n_groups``)."""
MLP_DROPOUT = 0.2
"""Dropout after the L-TAE's MLP while training (the original's ``LTAE2d`` default)."""
ATTENTION_DROPOUT = 0.1
"""Dropout on the L-TAE's attention while training (the original's ``MultiHeadAttention``)."""


class Convolution(TypedDict):
    """Size, stride and padding of a convolution, as keyword arguments."""

    kernel_size: int
    stride: int
    padding: int


STRIDED: Convolution = {"kernel_size": 4, "stride": 2, "padding": 1}
"""The strided down and transposed up convolutions (the original's ``str_conv_k``, ``_s``, ``_p``)."""
NORMS = ("group", "batch")


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.GroupNorm(NORM_GROUPS, channels) if kind == "group" else nn.BatchNorm2d(channels)


class ConvLayer(nn.Module):
    """Convolutions ``widths[0] -> widths[1] -> ...`` (reflection padding), each followed by ``norm`` (unless
    None) and a ReLU (but the last without ``last_relu``): the original's ``ConvLayer``, layers at ``conv.N``."""

    def __init__(
        self,
        widths: Sequence[int],
        norm: str | None,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        last_relu: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(pairwise(widths)):
            layers.append(nn.Conv2d(d_in, d_out, kernel_size, stride, padding, padding_mode="reflect"))
            layers += [] if norm is None else [_norm(norm, d_out)]
            layers += [nn.ReLU()] if last_relu or i < len(widths) - 2 else []
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConvBlock(nn.Module):
    """A :class:`ConvLayer` at ``conv`` (the original's ``ConvBlock``: its names are ``conv.conv.N``)."""

    def __init__(self, widths: Sequence[int], norm: str | None, last_relu: bool = True) -> None:
        super().__init__()
        self.conv = ConvLayer(widths, norm, kernel_size=1, padding=0, last_relu=last_relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DownConvBlock(nn.Module):
    """Strided convolution (halves H and W), then conv ``d_in -> d_out`` and a residual conv."""

    def __init__(self, d_in: int, d_out: int, norm: str) -> None:
        super().__init__()
        self.down = ConvLayer([d_in, d_in], norm, **STRIDED)
        self.conv1 = ConvLayer([d_in, d_out], norm)
        self.conv2 = ConvLayer([d_out, d_out], norm, last_relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.down(x))
        return out + self.conv2(out)


class UpConvBlock(nn.Module):
    """Transposed strided convolution (doubles H and W), concatenated with the 1x1-convolved skip, then conv and a
    residual conv; batch norm after the skip's and the transposed convolution (``norm_skip``, ``norm_up``)."""

    def __init__(self, d_in: int, d_out: int, d_skip: int, norm: str) -> None:
        super().__init__()
        self.skip_conv = nn.Sequential(nn.Conv2d(d_skip, d_skip, 1), nn.BatchNorm2d(d_skip), nn.ReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(d_in, d_out, **STRIDED), nn.BatchNorm2d(d_out), nn.ReLU())
        self.conv1 = ConvLayer([d_out + d_skip, d_out], norm)
        self.conv2 = ConvLayer([d_out, d_out], norm, last_relu=False)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.cat([self.up(x), self.skip_conv(skip)], dim=1))
        return out + self.conv2(out)


class TemporalEncoder(TemporalAttention):
    """The full L-TAE (the original's ``LTAE2d``): its attention also weighs the values, the heads' outputs are
    concatenated and go through an MLP ``d_model -> C`` (linear, batch norm, ReLU), dropout and a group norm.

    Returns the aggregated features (N, C, h, w) and the attention masks (n_head, N, T, h, w).
    """

    def __init__(self, in_channels: int, n_head: int, d_k: int, d_model: int, positional_encoding: bool) -> None:
        super().__init__(in_channels, n_head=n_head, d_k=d_k, d_model=d_model, positional_encoding=positional_encoding)
        self.mlp = nn.Sequential(nn.Linear(d_model, in_channels), nn.BatchNorm1d(in_channels), nn.ReLU())
        self.dropout = nn.Dropout(MLP_DROPOUT)
        self.attention_dropout = nn.Dropout(ATTENTION_DROPOUT)
        self.out_norm = nn.GroupNorm(n_head, in_channels)

    def forward(
        self, x: torch.Tensor, dates: torch.Tensor | None = None, pad_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, _, h, w = x.shape
        seq, attention = self.attend(x, dates, pad_mask)
        attention = self.attention_dropout(attention)  # (n_head, P, T)
        values = torch.stack(seq.split(self.d_model // self.n_head, dim=-1))  # (n_head, P, T, d_model / n_head)
        out = torch.einsum("hpt,hptd->phd", attention, values).reshape(n * h * w, self.d_model)
        out = self.out_norm(self.dropout(self.mlp(out)))
        return out.view(n, h, w, -1).permute(0, 3, 1, 2), self.masks(attention, n, h, w)


def _per_step(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``block`` on every time step of (N, T, C, H, W); steps that are all padding stay padding (the original's
    ``smart_forward``)."""
    frames = x.flatten(0, 1)
    padded = (frames == PAD_VALUE).flatten(1).all(1)
    if not padded.any():
        return block(frames).unflatten(0, x.shape[:2])
    computed = block(frames[~padded])
    out = computed.new_full((len(frames), *computed.shape[1:]), PAD_VALUE)
    out[~padded] = computed
    return out.unflatten(0, x.shape[:2])


class UTAE(nn.Module):
    """Cloud removal from an image time series with a U-TAE: means and, with ``out_conv`` 26, variances.

    Inputs and outputs as :class:`crts.models.UnCRtainTS`'s: ``inputs`` (N, T, C, H, W),
    each step's 13 S2 bands then, with ``use_sar``, S1's VV, VH (moved first inside, as
    the original's input is), in [0, 1]; ``dates`` (N, T) in days; a step whose values
    are all 0 is padding. H and W must be multiples of 2 ** (stages - 1).

    Per step, a shared encoder: a 1x1 convolution to ``encoder_widths[0]`` (norm,
    ReLU), then per further width a strided 4/2/1 convolution with two 3x3
    convolutions (residual). On the lowest resolution a full L-TAE (``n_head``
    heads, ``d_model``) gives the decoder's first features and attention masks;
    every skip connection is the attention-weighted temporal sum of its channel
    groups (``att_group``, masks resized bilinearly). The decoder: per stage a
    transposed strided convolution, concatenation with the 1x1-convolved skip, two
    3x3 convolutions (residual); then the 1x1 convolutions ``out_conv``: 13 means
    through ``scale_by * sigmoid`` and, for 26, 13 variances through softplus. Inputs
    are multiplied by ``scale_by`` and the outputs divided back (variances by
    ``scale_by ** 2``), as UnCRtainTS's training wrapper does. Parameter names are the
    original's (:func:`load_original_utae`). Documented configuration (widths
    [64, 64, 64, 128] both ways, 16 heads, d_model 256, S1 input, ``out_conv`` [13]):
    142 state-dict entries, 1,261,069 parameters (1,261,914 with ``out_conv`` [26]).

    Examples
    --------
    >>> model = UTAE(encoder_widths=(8, 16), decoder_widths=(8, 16), n_head=4, d_model=16, out_conv=(26,))
    >>> mean, var = model(torch.rand(2, 3, 15, 32, 32), torch.tensor([[10, 40, 70], [5, 6, 7]]))
    >>> mean.shape, var.shape
    (torch.Size([2, 13, 32, 32]), torch.Size([2, 13, 32, 32]))
    """

    def __init__(
        self,
        use_sar: bool = True,
        encoder_widths: Sequence[int] = (64, 64, 64, 128),
        decoder_widths: Sequence[int] = (64, 64, 64, 128),
        out_conv: Sequence[int] = (S2_CHANNELS,),
        n_head: int = 16,
        d_model: int = 256,
        d_k: int = 4,
        encoder_norm: str = "group",
        decoder_norm: str = "batch",
        positional_encoding: bool = True,
        scale_by: float = 1.0,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {  # of several types, as our checkpoints store it
            "use_sar": use_sar,
            "encoder_widths": list(encoder_widths),
            "decoder_widths": list(decoder_widths),
            "out_conv": list(out_conv),
            "n_head": n_head,
            "d_model": d_model,
            "d_k": d_k,
            "encoder_norm": encoder_norm,
            "decoder_norm": decoder_norm,
            "positional_encoding": positional_encoding,
            "scale_by": scale_by,
        }
        _check(self.config)
        self.in_channels = S2_CHANNELS + S1_CHANNELS * use_sar
        self.in_conv = ConvBlock([self.in_channels, encoder_widths[0]], encoder_norm)
        self.down_blocks = nn.ModuleList(
            DownConvBlock(d_in, d_out, encoder_norm) for d_in, d_out in pairwise(encoder_widths)
        )
        self.up_blocks = nn.ModuleList(
            UpConvBlock(decoder_widths[i], decoder_widths[i - 1], encoder_widths[i - 1], decoder_norm)
            for i in range(len(encoder_widths) - 1, 0, -1)
        )
        self.temporal_encoder = TemporalEncoder(encoder_widths[-1], n_head, d_k, d_model, positional_encoding)
        self.out_conv = ConvBlock([decoder_widths[0], *out_conv], None, last_relu=False)

    def forward(
        self, inputs: torch.Tensor, dates: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Means (N, 13, H, W) and variances (or None) from ``inputs`` (N, T, C, H, W) and ``dates`` (N, T)."""
        c, size = inputs.shape[2], inputs.shape[-1]
        if c != self.in_channels:
            raise ValueError(f"this model takes {self.in_channels} channels per step, got {c}")
        if size % 2 ** len(self.down_blocks) or inputs.shape[-2] % 2 ** len(self.down_blocks):
            raise ValueError(f"this model takes images whose sides are multiples of {2 ** len(self.down_blocks)} px")
        x, pad_mask = network_inputs(inputs, self.config["scale_by"])
        maps = [_per_step(self.in_conv, x)]
        for block in self.down_blocks:
            maps.append(_per_step(block, maps[-1]))
        out, attention = self.temporal_encoder(maps[-1], dates, pad_mask)
        for block, skip in zip(self.up_blocks, maps[-2::-1], strict=True):
            out = block(out, aggregate_groups(skip, attention, pad_mask))
        out = self.out_conv(out)
        mean = torch.sigmoid(out[:, :S2_CHANNELS])  # = (scale_by * sigmoid) / scale_by
        if out.shape[1] == S2_CHANNELS:
            return mean, None
        return mean, F.softplus(out[:, S2_CHANNELS:], beta=1, threshold=20) / self.config["scale_by"] ** 2


def _check(config: dict) -> None:
    """Refuse, in one line, a configuration the original asserts against or could not run."""
    encoder, decoder, heads = config["encoder_widths"], config["decoder_widths"], config["n_head"]
    if len(encoder) < 2 or len(encoder) != len(decoder) or encoder[-1] != decoder[-1]:
        raise ValueError(
            f"U-TAE: encoder_widths {encoder} and decoder_widths {decoder} must be as long (at least 2) and end alike"
        )
    if {config["encoder_norm"], config["decoder_norm"]} - set(NORMS):
        raise ValueError(f"U-TAE: encoder_norm and decoder_norm must be one of {', '.join(NORMS)}")
    if config["out_conv"][-1] not in (S2_CHANNELS, 2 * S2_CHANNELS):
        raise ValueError(
            f"U-TAE: out_conv must end in {S2_CHANNELS} (means) or {2 * S2_CHANNELS} (means and variances)"
        )
    if any(w % heads or w % NORM_GROUPS for w in encoder) or config["d_model"] % heads:
        raise ValueError(
            f"U-TAE: every encoder width and d_model must be a multiple of n_head {heads} and of {NORM_GROUPS}"
        )
    if config["decoder_norm"] == "group" and any(w % NORM_GROUPS for w in decoder):
        raise ValueError(f"U-TAE: with group norm every decoder width must be a multiple of {NORM_GROUPS}")


def utae_config(state: StateDict) -> dict:
    """The config entries of a U-TAE state dict that its shapes determine (all but ``scale_by`` and
    ``positional_encoding``)."""

    def norm(layer: str) -> str:
        return "batch" if f"{layer}.running_mean" in state else "group"

    stages = count_blocks(state, "down_blocks") + 1
    first, in_channels = state["in_conv.conv.conv.0.weight"].shape[:2]
    encoder = [int(first)] + [int(state[f"down_blocks.{i}.conv1.conv.0.weight"].shape[0]) for i in range(stages - 1)]
    decoder = [int(state[f"up_blocks.{stages - 1 - i}.up.0.weight"].shape[1]) for i in range(1, stages)] + encoder[-1:]
    n_head, d_k = state["temporal_encoder.attention_heads.Q"].shape
    out_layers = sorted(
        int(k.split(".")[3]) for k in state if k.startswith("out_conv.conv.conv.") and k.endswith(".weight")
    )
    return {
        "use_sar": in_channels == S2_CHANNELS + S1_CHANNELS,
        "encoder_widths": encoder,
        "decoder_widths": decoder,
        "out_conv": [int(state[f"out_conv.conv.conv.{i}.weight"].shape[0]) for i in out_layers],
        "n_head": int(n_head),
        "d_model": int(state["temporal_encoder.inconv.weight"].shape[0]),
        "d_k": int(d_k),
        "encoder_norm": norm("in_conv.conv.conv.1"),
        "decoder_norm": norm("up_blocks.0.conv1.conv.1"),
    }


def load_original_utae(
    path_or_state_dict: str | os.PathLike | StateDict, model: UTAE | None = None, scale_by: float = 1.0
) -> UTAE:
    """Load a U-TAE of UnCRtainTS's training script (``model*.pth.tar``: ``state_dict_G``, or ``state_dict``
    behind ``netG.``), or a bare state dict.

    Parameters
    ----------
    path_or_state_dict : path or dict
        The file, or its loaded content.
    model : UTAE, optional
        The model to load into; default: a new one sized from the shapes.
    scale_by : float
        The ``scale_by`` it was trained with (its ``conf.json``; not in the weights).

    Raises
    ------
    ValueError
        One line: not a U-TAE state dict, or weights that do not fit ``model``.
    """
    source = "the state dict" if isinstance(path_or_state_dict, dict) else str(path_or_state_dict)
    state = generator_state(read_state(path_or_state_dict))
    if "temporal_encoder.mlp.0.weight" not in state or "down_blocks.0.down.conv.0.weight" not in state:
        raise ValueError(f"{source}: not a U-TAE state dict (no temporal_encoder.mlp.0.weight or down_blocks.0.*)")
    model = model or UTAE(**utae_config(state), scale_by=scale_by)
    load_into(model, state, source)
    return model


class UTAEAdapter(ModelAdapter):
    """U-TAE, fed as UnCRtainTS is (:func:`crts.models.uncrtaints.predict_dated`); variances with MGNLL."""

    recipe = UTAE_RECIPE
    model_class = UTAE
    anchors = (
        ("in_conv.conv.conv.0.weight", 4),
        ("temporal_encoder.attention_heads.Q", 2),
        ("temporal_encoder.inconv.weight", 3),
        ("out_conv.conv.conv.0.weight", 4),
    )

    def build(self, settings: TrainConfig) -> UTAE:
        """Widths [w, w, w, 2w] from ``settings.width`` (64: the documented [64, 64, 64, 128])."""
        width = resolved_setting(settings.width, "width")
        widths = (width,) * 3 + (2 * width,)
        return UTAE(
            encoder_widths=widths,
            decoder_widths=widths,
            n_head=settings.n_head,
            d_model=settings.d_model,
            out_conv=(2 * S2_CHANNELS if settings.loss == "MGNLL" else S2_CHANNELS,),
            scale_by=resolved_setting(settings.scale_by, "scale_by"),
        )

    def predict(self, net: nn.Module, config: dict, inputs: torch.Tensor, batch: dict) -> Prediction:
        return predict_dated(net, config, inputs, batch)

    def uncertain(self, config: dict) -> bool:
        return config["out_conv"][-1] == 2 * S2_CHANNELS

    def config_of(self, state: StateDict) -> dict:
        return utae_config(state)

    def load_original(self, path_or_state_dict: str | os.PathLike | StateDict, **options: object) -> UTAE:
        # the loader's own keywords, passed on as given
        return load_original_utae(path_or_state_dict, **cast(dict[str, Any], options))
