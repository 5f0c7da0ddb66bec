"""The 3D ResNet: the shared model tests, shapes, and the original's state dicts (built here from the reference)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from crts.models import MODELS, ResNet3D, load_original_checkpoint

from .base import ModelContract


class TestResNet3D(ModelContract):
    kind = "resnet3d"
    settings: ClassVar[dict[str, object]] = {"features": 8, "blocks": 2}


def original_state_dict(features: int, blocks: int, n_inputs: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Names and shapes of the original generator's state dict, as the reference lists them."""
    g = torch.Generator().manual_seed(seed)

    def tensor(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.05

    f = features
    state = {"model_initial.0.weight": tensor(f, 15, 3, 3), "model_initial.0.bias": tensor(f)}
    for i in range(2, 2 + blocks):
        for j in (0, 2):
            state[f"model_initial.{i}.conv_block.{j}.weight"] = tensor(f, f, 3, 3)
            state[f"model_initial.{i}.conv_block.{j}.bias"] = tensor(f)
    state["model_final.0.weight"], state["model_final.0.bias"] = tensor(f, f, 3, 3, 3), tensor(f)
    for i in range(2, 7):
        for j in (1, 4):
            state[f"model_final.{i}.conv_block.{j}.weight"] = tensor(f, f, 3, 3, 3)
            state[f"model_final.{i}.conv_block.{j}.bias"] = tensor(f)
    state["model_final.8.weight"], state["model_final.8.bias"] = tensor(13, f, n_inputs, 3, 3), tensor(13)
    return state


def reference_forward(state: dict[str, torch.Tensor], x: torch.Tensor, blocks: int) -> torch.Tensor:
    """The reference's architecture written with torch.nn.functional, one sample at a time."""
    outputs = []
    for sample in x:
        steps = []
        for step in sample:
            h = F.relu(F.conv2d(step[None], state["model_initial.0.weight"], state["model_initial.0.bias"], padding=1))
            for i in range(2, 2 + blocks):
                p = f"model_initial.{i}.conv_block"
                r = F.relu(F.conv2d(h, state[f"{p}.0.weight"], state[f"{p}.0.bias"], padding=1))
                h = h + 0.1 * F.conv2d(r, state[f"{p}.2.weight"], state[f"{p}.2.bias"], padding=1)
            steps.append(h)
        z = torch.stack(steps, dim=2)
        z = F.relu(F.conv3d(z, state["model_final.0.weight"], state["model_final.0.bias"], padding=1))

        def pad(v: torch.Tensor) -> torch.Tensor:
            return F.pad(F.pad(v, (1, 1, 1, 1, 0, 0), mode="reflect"), (0, 0, 0, 0, 1, 1), mode="replicate")

        for i in range(2, 7):
            p = f"model_final.{i}.conv_block"
            r = F.relu(F.conv3d(pad(z), state[f"{p}.1.weight"], state[f"{p}.1.bias"]))
            z = F.relu(z + 0.1 * F.conv3d(pad(r), state[f"{p}.4.weight"], state[f"{p}.4.bias"]))
        z = F.conv3d(
            F.pad(z, (1, 1, 1, 1, 0, 0), mode="reflect"), state["model_final.8.weight"], state["model_final.8.bias"]
        )
        outputs.append(torch.tanh(z[:, :, 0]))
    return torch.cat(outputs)


@pytest.mark.parametrize("n_inputs", [2, 3, 4])
@pytest.mark.parametrize("batch", [1, 4])
def test_output_shapes(n_inputs: int, batch: int) -> None:
    model = ResNet3D(n_inputs=n_inputs, features=8, blocks=2)
    out = model(torch.randn(batch, n_inputs, 15, 24, 20))
    assert out.shape == (batch, 13, 24, 20)
    assert out.abs().max() <= 1


def test_full_size_original_state_dict_loads_without_missing_or_unexpected_keys() -> None:
    state = original_state_dict(256, 16, 3)
    assert len(state) == 90 and sum(v.numel() for v in state.values()) == 38_474_253
    model = ResNet3D()
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert load_original_checkpoint({f"module.{k}": v for k, v in state.items()}).config == model.config


def test_loaded_original_weights_reproduce_the_reference_forward_pass(tmp_path: Path) -> None:
    state = original_state_dict(8, 3, 4, seed=1)
    torch.save(state, tmp_path / "latest_net_G.pth")
    model = load_original_checkpoint(tmp_path / "latest_net_G.pth")
    assert model.config == {"n_inputs": 4, "in_channels": 15, "out_channels": 13, "features": 8, "blocks": 3}
    x = torch.randn(2, 4, 15, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_forward(state, x, blocks=3), atol=1e-5, rtol=1e-4)


def test_baseline_resnet_loads_into_the_encoder() -> None:
    generator = original_state_dict(8, 16, 3)
    pretrained = {f"netG.model.{k.split('.', 1)[1]}": v for k, v in generator.items() if k.startswith("model_initial")}
    pretrained["netG.model.18.weight"], pretrained["netG.model.18.bias"] = torch.randn(64, 8, 3, 3), torch.randn(64)
    pretrained["netG.model.20.weight"], pretrained["netG.model.20.bias"] = torch.randn(13, 64, 3, 3), torch.randn(13)
    model = load_original_checkpoint(pretrained, ResNet3D(features=8, blocks=16))
    torch.testing.assert_close(
        model.model_initial[2].conv_block[0].weight, generator["model_initial.2.conv_block.0.weight"]
    )
    with pytest.raises(ValueError, match="pass the ResNet3D"):
        load_original_checkpoint(pretrained)
    with pytest.raises(ValueError, match="neither"):
        load_original_checkpoint({"encoder.weight": torch.zeros(1)})


def test_wrong_number_of_steps_is_named() -> None:
    with pytest.raises(ValueError, match="takes 3 time steps, got 2"):
        ResNet3D(features=4, blocks=1)(torch.zeros(1, 2, 15, 8, 8))


def test_its_adapter_refuses_the_encoder_of_another_kind_naming_it() -> None:
    adapter = MODELS["resnet3d"]
    model = ResNet3D(features=4, blocks=1)
    assert adapter.encoder(model) is model.model_initial
    with pytest.raises(TypeError, match=r"^the 3D ResNet's adapter was given a Linear, not a ResNet3D$"):
        adapter.encoder(torch.nn.Linear(2, 2))
