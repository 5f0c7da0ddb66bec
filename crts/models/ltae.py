"""Temporal attention of UnCRtainTS: the lightweight temporal attention encoder (L-TAE, attention only)
and the attention-weighted temporal aggregation of channel groups (``att_group``).

L-TAE: Garnot and Landrieu, "Lightweight Temporal Self-Attention for Classifying
Satellite Images Time Series", AALTD 2020; U-TAE: Garnot and Landrieu, ICCV 2021.
Attribute names follow the original (``temporal_encoder.in_norm``, ``.inconv``,
``.attention_heads.Q``, ``.attention_heads.fc1_k``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PERIOD = 1000.0
"""Period T of the sinusoidal positional encoding (days)."""
MASKED_SCORE = -1e3
"""Attention score given to padded time steps before the softmax (the original's value)."""


def positional_encoding(days: torch.Tensor, d: int, n_repeat: int, period: float = PERIOD) -> torch.Tensor:
    """Sinusoidal encoding of acquisition dates, (...,) days -> (..., d * n_repeat).

    Channel i of the d-wide table is ``sin`` (i even) or ``cos`` (i odd) of
    ``days / period ** (2 * (i // 2) / d)``; the table is repeated ``n_repeat``
    times (once per attention head).
    """
    i = torch.arange(d, device=days.device, dtype=torch.float32)
    angles = days.float()[..., None] / torch.pow(period, 2 * (i // 2) / d)
    table = torch.where(i.long() % 2 == 0, torch.sin(angles), torch.cos(angles))
    return table.repeat(*([1] * (table.dim() - 1)), n_repeat)


class AttentionHeads(nn.Module):
    """Scores of ``n_head`` learnt master queries Q (n_head, d_k) against keys ``fc1_k(x)``; softmax over time."""

    def __init__(self, n_head: int, d_k: int, d_in: int) -> None:
        super().__init__()
        self.n_head, self.d_k = n_head, d_k
        self.Q = nn.Parameter(torch.randn(n_head, d_k) * math.sqrt(2.0 / d_k))
        self.fc1_k = nn.Linear(d_in, n_head * d_k)
        nn.init.normal_(self.fc1_k.weight, mean=0.0, std=math.sqrt(2.0 / d_k))

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(P, T, d_in) sequences and (P, T) pad mask -> attention (n_head, P, T), rows summing to 1."""
        p, t, _ = x.shape
        keys = self.fc1_k(x).view(p, t, self.n_head, self.d_k)
        scores = torch.einsum("hk,pthk->hpt", self.Q, keys) / math.sqrt(self.d_k)
        if pad_mask is not None:
            scores = scores.masked_fill(pad_mask[None], MASKED_SCORE)
        return scores.softmax(dim=-1)


class TemporalAttention(nn.Module):
    """The attention of the L-TAE encoders, :class:`LTAE` and U-TAE's full one: per pixel, group norm
    (``n_head`` groups, statistics over each channel group and all T steps), 1x1 projection C -> ``d_model``,
    plus the positional encoding of the dates, then :class:`AttentionHeads`. Each encoder's ``forward`` returns
    its own outputs."""

    def __init__(
        self,
        in_channels: int = 128,
        n_head: int = 16,
        d_k: int = 4,
        d_model: int = 256,
        positional_encoding: bool = True,
    ) -> None:
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model {d_model} must be a multiple of n_head {n_head}")
        self.n_head, self.d_model, self.use_dates = n_head, d_model, positional_encoding
        self.inconv = nn.Conv1d(in_channels, d_model, 1)
        self.attention_heads = AttentionHeads(n_head, d_k, d_model)
        self.in_norm = nn.GroupNorm(n_head, in_channels)

    def attend(
        self, x: torch.Tensor, dates: torch.Tensor | None, pad_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per pixel sequences (P, T, d_model) after norm, projection and date encoding, and their attention
        (n_head, P, T); P = N * h * w pixels in (n, y, x) order."""
        n, t, c, h, w = x.shape
        seq = x.permute(0, 3, 4, 2, 1).reshape(n * h * w, c, t)  # one (C, T) sequence per pixel
        seq = self.inconv(self.in_norm(seq)).transpose(1, 2)  # (P, T, d_model)
        if self.use_dates:
            if dates is None:
                raise ValueError("this model encodes acquisition dates: pass dates (N, T) in days")
            code = positional_encoding(dates, self.d_model // self.n_head, self.n_head)  # (N, T, d_model)
            seq = seq + code[:, None, None].expand(n, h, w, t, self.d_model).reshape(n * h * w, t, self.d_model)
        pixel_pad = None if pad_mask is None else pad_mask[:, None, None].expand(n, h, w, t).reshape(n * h * w, t)
        return seq, self.attention_heads(seq, pixel_pad)

    def masks(self, attention: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
        """Attention (n_head, P, T) as masks (n_head, N, T, h, w)."""
        return attention.view(self.n_head, n, h, w, -1).permute(0, 1, 4, 2, 3)


class LTAE(TemporalAttention):
    """Per-pixel temporal attention masks from a sequence of feature maps (the original's ``LTAE2dtiny``).

    Input (N, T, C, h, w) features and (N, T) dates in days; output attention
    (n_head, N, T, h, w), from :class:`TemporalAttention`.
    """

    def forward(
        self, x: torch.Tensor, dates: torch.Tensor | None = None, pad_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        n, _, _, h, w = x.shape
        return self.masks(self.attend(x, dates, pad_mask)[1], n, h, w)


def aggregate_groups(
    x: torch.Tensor, attention: torch.Tensor, pad_mask: torch.Tensor | None = None, dropout: nn.Module | None = None
) -> torch.Tensor:
    """Attention-weighted sum over time per channel group (``att_group``): (N, T, C, H, W) -> (N, C, H, W).

    ``attention`` (G, N, T, h, w) is resized to (H, W): bilinearly (then passed
    through ``dropout``) when H > h, by average pooling when H < h. Channel group
    g of C/G consecutive channels is weighted by head g; padded steps get weight 0.
    """
    g, n, t, h, w = attention.shape
    size = x.shape[-2:]
    flat = attention.reshape(g * n, t, h, w)
    if size[0] > h:
        flat = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
        flat = dropout(flat) if dropout is not None else flat
    elif size[0] < h:
        flat = F.adaptive_avg_pool2d(flat, (size[0], size[1]))
    weights = flat.view(g, n, t, 1, *size)
    if pad_mask is not None:
        weights = weights * (~pad_mask).to(weights.dtype)[None, :, :, None, None, None]
    groups = torch.stack(x.chunk(g, dim=2))  # (G, N, T, C/G, H, W)
    return torch.cat(list((weights * groups).sum(dim=2)), dim=1)
