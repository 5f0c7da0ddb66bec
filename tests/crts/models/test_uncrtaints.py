"""UnCRtainTS: the shared model tests, shapes, value ranges, dates, and the original's checkpoints (table built
here)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch

from crts.models import UnCRtainTS, load_original_uncrtaints
from crts.models.uncrtaints import input_dates

from .base import ModelContract, random_state

TINY = {"encoder_widths": (16,), "decoder_widths": (16, 16), "n_head": 4, "d_model": 32}


class TestUnCRtainTS(ModelContract):
    kind = "uncrtaints"
    settings: ClassVar[dict[str, object]] = {"width": 16, "n_head": 4, "d_model": 32}


def mbconv_entries(prefix: str, width: int, batch_norm: bool) -> dict[str, tuple[int, ...]]:
    """An MBConv block of the original (expansion 2): PreNorm at conv.norm, layers at conv.fn.{0..8}."""
    hidden, table = 2 * width, {}

    def norm(name: str, channels: int) -> None:
        table[f"{name}.weight"] = table[f"{name}.bias"] = (channels,)
        if batch_norm:
            table[f"{name}.running_mean"] = table[f"{name}.running_var"] = (channels,)
            table[f"{name}.num_batches_tracked"] = ()

    norm(f"{prefix}.conv.norm", width)
    table[f"{prefix}.conv.fn.0.weight"] = (hidden, width, 1, 1)
    norm(f"{prefix}.conv.fn.1", hidden)
    table[f"{prefix}.conv.fn.3.weight"] = (hidden, 1, 3, 3)
    norm(f"{prefix}.conv.fn.4", hidden)
    table[f"{prefix}.conv.fn.6.fc.0.weight"] = (width // 4, hidden)
    table[f"{prefix}.conv.fn.6.fc.2.weight"] = (hidden, width // 4)
    table[f"{prefix}.conv.fn.7.weight"] = (width, hidden, 1, 1)
    norm(f"{prefix}.conv.fn.8", width)
    return table


def published_table(mono: bool = False) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the published generator (use_sar, widths [128] and [128] * 5, 16 heads, d_model 256,
    d_k 4, group norm in the encoder, batch norm in the decoder, out_conv [13 + 13]), read off the original code."""
    table = {
        "in_conv.conv.conv.0.weight": (128, 15, 1, 1),
        "in_conv.conv.conv.0.bias": (128,),
        "in_conv.conv.conv.1.weight": (128,),
        "in_conv.conv.conv.1.bias": (128,),
    }
    table |= mbconv_entries("in_block.0", 128, batch_norm=False)
    if not mono:
        table |= {
            "temporal_encoder.inconv.weight": (256, 128, 1),
            "temporal_encoder.inconv.bias": (256,),
            "temporal_encoder.attention_heads.Q": (16, 4),
            "temporal_encoder.attention_heads.fc1_k.weight": (64, 256),
            "temporal_encoder.attention_heads.fc1_k.bias": (64,),
            "temporal_encoder.in_norm.weight": (128,),
            "temporal_encoder.in_norm.bias": (128,),
        }
    for i in range(5):
        table |= mbconv_entries(f"out_block.{i}", 128, batch_norm=True)
    return table | {"out_conv.conv.conv.0.weight": (26, 128, 1, 1), "out_conv.conv.conv.0.bias": (26,)}


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
@pytest.mark.parametrize("batch", [1, 3])
def test_output_shapes_and_ranges(steps: int, batch: int) -> None:
    torch.manual_seed(0)
    model = UnCRtainTS(**TINY)
    mean, var = model(torch.rand(batch, steps, 15, 32, 32), torch.arange(batch * steps).view(batch, steps) * 10.0)
    assert mean.shape == var.shape == (batch, 13, 32, 32)
    assert mean.min() >= 0 and mean.max() <= 1
    assert var.min() > 0


def test_without_sar_and_at_other_sizes() -> None:
    model = UnCRtainTS(use_sar=False, **TINY)
    for size in (16, 48):
        mean, var = model(torch.rand(2, 3, 13, size, size), torch.zeros(2, 3))
        assert mean.shape == var.shape == (2, 13, size, size)
    with pytest.raises(ValueError, match="13 channels"):
        model(torch.rand(1, 3, 15, 32, 32), torch.zeros(1, 3))


def test_mono_temporal_variant_takes_one_step_without_dates() -> None:
    model = UnCRtainTS(is_mono=True, **TINY)
    assert not hasattr(model, "temporal_encoder")
    mean, _ = model(torch.rand(2, 1, 15, 32, 32))
    assert mean.shape == (2, 13, 32, 32)
    with pytest.raises(ValueError, match="1 time step"):
        model(torch.rand(2, 3, 15, 32, 32))


def test_dates_are_encoded() -> None:
    torch.manual_seed(0)
    model = UnCRtainTS(**TINY).eval()
    x = torch.rand(1, 3, 15, 32, 32)
    with torch.no_grad():
        early, _ = model(x, torch.tensor([[0.0, 10, 20]]))
        late, _ = model(x, torch.tensor([[0.0, 150, 300]]))
        with pytest.raises(ValueError, match="dates"):
            model(x)
    assert (early - late).abs().max() > 1e-5
    blind = UnCRtainTS(positional_encoding=False, **TINY).eval()
    assert blind(x)[0].shape == (1, 13, 32, 32)


def test_s1_reaches_the_original_s1_weights() -> None:
    """crts batches put S2 first; the original's first input channels (its S1 VV, VH) must see our 13 and 14."""
    model = UnCRtainTS(**TINY).eval()
    with torch.no_grad():
        model.in_conv.conv.conv[0].weight[:, 1:] = 0  # only the original's channel 0 (S1 VV) remains
        x = torch.rand(1, 2, 15, 32, 32)
        base = model(x, torch.zeros(1, 2))[0]
        b1, vv = x.clone(), x.clone()
        b1[:, :, 0] += 0.5
        vv[:, :, 13] += 0.5
        assert torch.equal(model(b1, torch.zeros(1, 2))[0], base)
        assert not torch.equal(model(vv, torch.zeros(1, 2))[0], base)


def test_scale_by_rescales_outputs_to_unit_scale() -> None:
    torch.manual_seed(0)
    model = UnCRtainTS(scale_by=10.0, **TINY).eval()
    mean, var = model(torch.rand(1, 2, 15, 32, 32), torch.zeros(1, 2))
    assert mean.min() >= 0 and mean.max() <= 1
    assert var.min() >= 1e-3 / 100  # the floor 1e-3 at model scale, divided by scale_by ** 2


def test_input_dates() -> None:
    s1, s2 = torch.tensor([[10, 20]]), torch.tensor([[12, 25]])
    assert input_dates(s1, s2, use_sar=True).tolist() == [[11.0, 22.5]]
    assert input_dates(s1, s2, use_sar=False).tolist() == [[12.0, 25.0]]


@pytest.mark.parametrize("mono", [False, True])
def test_published_configuration_has_the_original_names_and_shapes(mono: bool) -> None:
    state = UnCRtainTS(is_mono=mono).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == published_table(mono)
    parameters = sum(p.numel() for p in UnCRtainTS(is_mono=mono).parameters())
    assert parameters == (520_218 if mono else 570_010)


@pytest.mark.parametrize("layout", ["training_script", "generator_only", "data_parallel", "old_block_names"])
def test_original_checkpoints_load_by_name(layout: str, tmp_path: Path) -> None:
    state = random_state(published_table())
    if layout == "training_script":  # what model_utils.save_model writes
        content = {"epoch": 3, "state_dict": {f"netG.{k}": v for k, v in state.items()}, "state_dict_G": state}
    elif layout == "generator_only":
        content = {"epoch": 3, "state_dict": {f"netG.{k}": v for k, v in state.items()}}
    elif layout == "data_parallel":
        content = {f"module.{k}": v for k, v in state.items()}
    else:
        content = {"state_dict": {"netG." + _old_name(k): v for k, v in state.items()}}
    torch.save(content, tmp_path / "model.pth.tar")
    model = load_original_uncrtaints(tmp_path / "model.pth.tar", scale_by=10.0)
    assert model.config["scale_by"] == 10.0 and model.config["use_sar"] and not model.config["is_mono"]
    assert model.config["decoder_norm"] == "batch" and model.config["encoder_norm"] == "group"
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def _old_name(key: str) -> str:
    """Older files: ``in_block1``, ``out_block1`` ... ``out_block5`` instead of ``in_block.0`` ... ``out_block.4``."""
    for part in ("in_block", "out_block"):
        if key.startswith(f"{part}."):
            index, rest = key[len(part) + 1 :].split(".", 1)
            return f"{part}{int(index) + 1}.{rest}"
    return key


def test_mono_checkpoint_and_wrong_files() -> None:
    model = load_original_uncrtaints(random_state(published_table(mono=True)))
    assert model.config["is_mono"]
    with pytest.raises(ValueError, match="not an UnCRtainTS"):
        load_original_uncrtaints({"model_initial.0.weight": torch.zeros(1)})
    bad = random_state(published_table())
    bad["out_conv.conv.conv.0.weight"] = torch.zeros(13, 128, 1, 1)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_original_uncrtaints(bad)
