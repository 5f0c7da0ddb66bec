"""U-TAE: the shared model tests, the original's names and shapes (table built here from the original's
structure), and its forward pass written here with torch.nn.functional from the original's description."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from crts.models import UTAE, load_original_utae

from .base import ModelContract, random_state

TINY = {"encoder_widths": (8, 16), "decoder_widths": (8, 16), "n_head": 4, "d_model": 16}


class TestUTAE(ModelContract):
    kind = "utae"
    settings: ClassVar[dict[str, object]] = {"width": 8, "n_head": 4, "d_model": 16}


class TestUTAEWithVariances(ModelContract):
    kind = "utae"
    settings: ClassVar[dict[str, object]] = {"width": 8, "n_head": 4, "d_model": 16, "loss": "MGNLL"}


def _conv(table: dict, prefix: str, d_out: int, d_in: int, k: int, transposed: bool = False) -> None:
    table[f"{prefix}.weight"] = (d_in, d_out, k, k) if transposed else (d_out, d_in, k, k)
    table[f"{prefix}.bias"] = (d_out,)


def _norm(table: dict, prefix: str, channels: int, batch: bool) -> None:
    table[f"{prefix}.weight"] = table[f"{prefix}.bias"] = (channels,)
    if batch:
        table[f"{prefix}.running_mean"] = table[f"{prefix}.running_var"] = (channels,)
        table[f"{prefix}.num_batches_tracked"] = ()


def documented_table(out: int = 13) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the original U-TAE (UnCRtainTS's ``utae`` backbone) in the documented configuration:
    S1 + S2 input, widths [64, 64, 64, 128] both ways, strided 4/2/1, 16 heads, d_model 256, d_k 4, group norm in
    the encoder, batch norm in the decoder, skip and up convolutions, out_conv [out]."""
    enc = dec = (64, 64, 64, 128)
    table: dict[str, tuple[int, ...]] = {}
    _conv(table, "in_conv.conv.conv.0", 64, 15, 1)
    _norm(table, "in_conv.conv.conv.1", 64, batch=False)
    for i in range(3):
        p, d_in, d_out = f"down_blocks.{i}", enc[i], enc[i + 1]
        for part, (a, b, k) in {"down": (d_in, d_in, 4), "conv1": (d_in, d_out, 3), "conv2": (d_out, d_out, 3)}.items():
            _conv(table, f"{p}.{part}.conv.0", b, a, k)
            _norm(table, f"{p}.{part}.conv.1", b, batch=False)
    for j, i in enumerate((3, 2, 1)):
        p, d_in, d_out, d = f"up_blocks.{j}", dec[i], dec[i - 1], enc[i - 1]
        _conv(table, f"{p}.skip_conv.0", d, d, 1)
        _norm(table, f"{p}.skip_conv.1", d, batch=True)
        _conv(table, f"{p}.up.0", d_out, d_in, 4, transposed=True)
        _norm(table, f"{p}.up.1", d_out, batch=True)
        _conv(table, f"{p}.conv1.conv.0", d_out, d_out + d, 3)
        _norm(table, f"{p}.conv1.conv.1", d_out, batch=True)
        _conv(table, f"{p}.conv2.conv.0", d_out, d_out, 3)
        _norm(table, f"{p}.conv2.conv.1", d_out, batch=True)
    t = "temporal_encoder"
    table |= {
        f"{t}.inconv.weight": (256, 128, 1),
        f"{t}.inconv.bias": (256,),
        f"{t}.attention_heads.Q": (16, 4),
        f"{t}.attention_heads.fc1_k.weight": (64, 256),
        f"{t}.attention_heads.fc1_k.bias": (64,),
        f"{t}.mlp.0.weight": (128, 256),
        f"{t}.mlp.0.bias": (128,),
    }
    _norm(table, f"{t}.in_norm", 128, batch=False)
    _norm(table, f"{t}.out_norm", 128, batch=False)
    _norm(table, f"{t}.mlp.1", 128, batch=True)
    _conv(table, "out_conv.conv.conv.0", out, 64, 1)
    return table


def _norm_fn(x: torch.Tensor, s: dict, p: str, batch: bool) -> torch.Tensor:
    if batch:
        return F.batch_norm(x, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"])
    return F.group_norm(x, 4, s[f"{p}.weight"], s[f"{p}.bias"])


def _layer(x: torch.Tensor, s: dict, p: str, batch: bool, stride: int = 1, relu: bool = True) -> torch.Tensor:
    """Conv (reflection padding 1, or none for 1x1), norm, ReLU: one ConvLayer of the original."""
    k = s[f"{p}.conv.0.weight"].shape[-1]
    padded = x if k == 1 else F.pad(x, (1, 1, 1, 1), mode="reflect")
    y = _norm_fn(
        F.conv2d(padded, s[f"{p}.conv.0.weight"], s[f"{p}.conv.0.bias"], stride=stride), s, f"{p}.conv.1", batch
    )
    return F.relu(y) if relu else y


def _ltae(s: dict, x: torch.Tensor, days: torch.Tensor, pad: torch.Tensor, heads: int) -> tuple:
    """The original's LTAE2d for one sample: x (T, C, h, w) -> features (C, h, w), attention (heads, T, h, w)."""
    t, c, h, w = x.shape
    p = "temporal_encoder"
    seq = F.group_norm(
        x.permute(2, 3, 1, 0).reshape(h * w, c, t), heads, s[f"{p}.in_norm.weight"], s[f"{p}.in_norm.bias"]
    ).transpose(1, 2)  # (pixels, T, C)
    seq = seq @ s[f"{p}.inconv.weight"][:, :, 0].T + s[f"{p}.inconv.bias"]
    d = seq.shape[-1] // heads
    denom = torch.tensor([1000 ** (2 * (i // 2) / d) for i in range(d)])
    angles = days[:, None] / denom
    code = torch.stack([torch.sin(angles[:, i]) if i % 2 == 0 else torch.cos(angles[:, i]) for i in range(d)], 1)
    seq = seq + code.repeat(1, heads)
    q, d_k = s[f"{p}.attention_heads.Q"], s[f"{p}.attention_heads.Q"].shape[1]
    keys = seq @ s[f"{p}.attention_heads.fc1_k.weight"].T + s[f"{p}.attention_heads.fc1_k.bias"]
    scores = (keys.view(h * w, t, heads, d_k) * q).sum(-1) / math.sqrt(d_k)  # (pixels, T, heads)
    attention = scores.masked_fill(pad[None, :, None], -1e3).softmax(dim=1)
    values = (attention[..., None] * seq.view(h * w, t, heads, d)).sum(1).reshape(h * w, heads * d)
    out = F.relu(
        F.batch_norm(
            values @ s[f"{p}.mlp.0.weight"].T + s[f"{p}.mlp.0.bias"],
            s[f"{p}.mlp.1.running_mean"],
            s[f"{p}.mlp.1.running_var"],
            s[f"{p}.mlp.1.weight"],
            s[f"{p}.mlp.1.bias"],
        )
    )
    out = F.group_norm(out, heads, s[f"{p}.out_norm.weight"], s[f"{p}.out_norm.bias"])
    return out.T.reshape(-1, h, w), attention.permute(2, 1, 0).reshape(heads, t, h, w)


def _reference(s: dict, x: torch.Tensor, days: torch.Tensor, heads: int, scale: float) -> list[torch.Tensor]:
    """The original U-TAE's forward pass for one sample x (T, 15, H, W) with S2 first, as crts batches give it."""
    x = torch.cat([x[:, 13:], x[:, :13]], 1) * scale  # the original takes S1 first
    pad = (x == 0).flatten(1).all(1)
    stages = 1 + len({k.split(".")[1] for k in s if k.startswith("down_blocks.")})
    maps = []
    for step in x:
        if (step == 0).all():  # padded steps stay 0 through the encoder
            maps.append(None)
            continue
        per_step = [
            F.relu(
                _norm_fn(
                    F.conv2d(step[None], s["in_conv.conv.conv.0.weight"], s["in_conv.conv.conv.0.bias"]),
                    s,
                    "in_conv.conv.conv.1",
                    False,
                )
            )
        ]
        for i in range(stages - 1):
            y = _layer(
                _layer(per_step[-1], s, f"down_blocks.{i}.down", False, stride=2), s, f"down_blocks.{i}.conv1", False
            )
            per_step.append(y + _layer(y, s, f"down_blocks.{i}.conv2", False, relu=False))
        maps.append([m[0] for m in per_step])
    like = next(m for m in maps if m is not None)
    maps = [torch.stack([torch.zeros_like(like[i]) if m is None else m[i] for m in maps]) for i in range(stages)]
    out, attention = _ltae(s, maps[-1], days, pad, heads)
    out = out[None]
    for j in range(stages - 1):
        skip = maps[-(j + 2)]
        weights = F.interpolate(attention, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        weights = weights * (~pad).float()[None, :, None, None]
        groups = skip.view(skip.shape[0], heads, -1, *skip.shape[-2:])  # (T, heads, C / heads, H, W)
        skip = (weights.transpose(0, 1)[:, :, None] * groups).sum(0).reshape(1, -1, *skip.shape[-2:])
        p = f"up_blocks.{j}"
        up = F.conv_transpose2d(out, s[f"{p}.up.0.weight"], s[f"{p}.up.0.bias"], stride=2, padding=1)
        up = F.relu(_norm_fn(up, s, f"{p}.up.1", True))
        skip = F.relu(
            _norm_fn(
                F.conv2d(skip, s[f"{p}.skip_conv.0.weight"], s[f"{p}.skip_conv.0.bias"]), s, f"{p}.skip_conv.1", True
            )
        )
        y = _layer(torch.cat([up, skip], 1), s, f"{p}.conv1", True)
        out = y + _layer(y, s, f"{p}.conv2", True, relu=False)
    out = F.conv2d(out, s["out_conv.conv.conv.0.weight"], s["out_conv.conv.conv.0.bias"])[0]
    return [torch.sigmoid(out[:13]), F.softplus(out[13:]) / scale**2]


def trained_like_state(out: int) -> dict[str, torch.Tensor]:
    """Weights of the documented configuration that keep the signal alive through all stages (the default
    initialisation; batch-norm statistics drawn): a wrong layer changes the output by far more than 1e-5."""
    torch.manual_seed(3)
    state = UTAE(out_conv=(out,)).state_dict()
    g = torch.Generator().manual_seed(1)
    for name, value in state.items():
        if name.endswith(("running_mean", "running_var")):
            state[name] = (
                torch.rand(value.shape, generator=g) + 0.5
                if name.endswith("var")
                else torch.randn(value.shape, generator=g) * 0.1
            )
    return state


@pytest.mark.parametrize("out", [13, 26])
def test_documented_configuration_has_the_original_names_and_shapes(out: int) -> None:
    model = UTAE(out_conv=(out,))
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == documented_table(out)
    assert sum(p.numel() for p in model.parameters()) == (1_261_069 if out == 13 else 1_261_914)


@pytest.mark.parametrize("out, scale", [(13, 1.0), (26, 10.0)])
def test_loaded_original_weights_reproduce_the_original_forward_pass(out: int, scale: float) -> None:
    state = trained_like_state(out)
    model = load_original_utae({"epoch": 2, "state_dict_G": state}, scale_by=scale).eval()
    assert model.config["out_conv"] == [out] and model.config["encoder_widths"] == [64, 64, 64, 128]
    g = torch.Generator().manual_seed(0)
    x, days = torch.rand(2, 3, 15, 32, 32, generator=g), torch.rand(2, 3, generator=g) * 300
    x[1, 2] = 0  # a padded step
    with torch.no_grad():
        mean, variance = model(x, days)
    for i in range(2):
        expected = _reference(state, x[i], days[i], heads=16, scale=scale)
        torch.testing.assert_close(mean[i], expected[0], atol=1e-5, rtol=0)
        if out == 26:  # compared at the softplus, before the division by scale ** 2
            torch.testing.assert_close(variance[i] * scale**2, expected[1] * scale**2, atol=1e-5, rtol=0)
    assert (variance is None) == (out == 13)


def test_original_files_and_wrong_ones() -> None:
    state = random_state(documented_table())
    for content in (
        {"state_dict": {f"netG.{k}": v for k, v in state.items()}},
        {f"module.{k}": v for k, v in state.items()},
    ):
        assert all(torch.equal(load_original_utae(content).state_dict()[k], v) for k, v in state.items())
    with pytest.raises(ValueError, match="not a U-TAE"):
        load_original_utae(random_state({"in_conv.conv.conv.0.weight": (128, 15, 1, 1)}))
    state["out_conv.conv.conv.0.weight"] = torch.zeros(13, 32, 1, 1)
    with pytest.raises(ValueError, match="do not fit"):
        load_original_utae(state, model=UTAE())


def test_bad_configurations_and_inputs_are_one_line() -> None:
    with pytest.raises(ValueError, match="end alike"):
        UTAE(encoder_widths=(8, 16), decoder_widths=(8, 32))
    with pytest.raises(ValueError, match="multiple of n_head"):
        UTAE(encoder_widths=(8, 16), decoder_widths=(8, 16), n_head=16, d_model=32)
    model = UTAE(**TINY)
    with pytest.raises(ValueError, match="multiples of 2 px"):
        model(torch.rand(1, 2, 15, 33, 33), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="15 channels"):
        model(torch.rand(1, 2, 13, 32, 32), torch.zeros(1, 2))
