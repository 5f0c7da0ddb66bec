"""What every registered model must do, tested once: a model's test file subclasses :class:`ModelContract`
with a tiny model and adds only what is its own (as segmentation_models.pytorch's shared model tests)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from crts.models import MODELS, kind_of, load_checkpoint, read_checkpoint, save_checkpoint
from crts.train import TrainConfig

SIZE, STEPS = 32, 3
"""Side (px) and time steps of the test batches."""


def crts_batch(n: int, steps: int = STEPS, size: int = SIZE, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch as crts.data.loader gives it: inputs in [0, 1] (13 S2 bands then 2 S1), masks, dates in days."""
    g = torch.Generator().manual_seed(seed)
    return {
        "inputs": torch.rand(n, steps, 15, size, size, generator=g),
        "input_masks": (torch.rand(n, steps, size, size, generator=g) > 0.5).float(),
        "input_s1_td": torch.randint(0, 300, (n, steps), generator=g),
        "input_s2_td": torch.randint(0, 300, (n, steps), generator=g),
    }


class ModelContract:
    """The shared tests; a subclass sets :attr:`kind` and :attr:`settings` (tiny training settings)."""

    kind: ClassVar[str]
    """The registered name."""
    settings: ClassVar[dict[str, object]]
    """TrainConfig settings that build a tiny model of this kind (n_input_samples = STEPS)."""

    def build(self, **changes: object) -> nn.Module:
        torch.manual_seed(0)
        config = TrainConfig(cube="unused", model=self.kind, n_input_samples=STEPS, **self.settings, **changes)
        return MODELS[self.kind].build(config.resolved())

    def predict(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        with torch.no_grad():
            return MODELS[self.kind].predict(model, model.config, batch["inputs"], batch)

    def test_the_registry_knows_the_built_model(self) -> None:
        model = self.build()
        assert type(model) is MODELS[self.kind].model_class and kind_of(model).name == self.kind

    def test_predictions_are_images_in_the_unit_range(self) -> None:
        model = self.build().eval()
        mean, variance = self.predict(model, crts_batch(2))
        assert mean.shape == (2, 13, SIZE, SIZE) and mean.min() >= 0 and mean.max() <= 1
        assert (variance is not None) == MODELS[self.kind].uncertain(model.config)
        if variance is not None:
            assert variance.shape == mean.shape and variance.min() >= 0

    def test_a_batch_of_four_equals_four_batches_of_one(self) -> None:
        model, batch = self.build().eval(), crts_batch(4)
        together = self.predict(model, batch)
        apart = [self.predict(model, {k: v[i : i + 1] for k, v in batch.items()}) for i in range(4)]
        for j, output in enumerate(together):
            if output is not None:
                torch.testing.assert_close(output, torch.cat([a[j] for a in apart]), atol=1e-6, rtol=1e-5)

    def test_the_training_loss_reaches_every_parameter(self) -> None:
        model, batch = self.build(), crts_batch(2)
        loss_name = TrainConfig(cube="unused", model=self.kind, **self.settings).resolved().loss
        loss = MODELS[self.kind].training_loss(
            model, model.config, loss_name, batch["inputs"], batch["inputs"][:, 0, :13], batch
        )
        loss.backward()
        assert torch.isfinite(loss)
        assert [name for name, p in model.named_parameters() if p.grad is None or not p.grad.any()] == []

    def test_our_checkpoint_round_trips_and_its_tensors_give_its_config(self, tmp_path: Path) -> None:
        model, batch = self.build().eval(), crts_batch(1)
        save_checkpoint(tmp_path / "last.pt", model, step=5)
        again, content = load_checkpoint(tmp_path / "last.pt")
        assert content["model"] == self.kind and content["step"] == 5 and again.config == model.config
        for a, b in zip(self.predict(again.eval(), batch), self.predict(model, batch), strict=True):
            assert (a is None and b is None) or torch.equal(a, b)
        derived = MODELS[self.kind].config_of(model.state_dict())
        assert derived == {k: model.config[k] for k in derived}
        assert read_checkpoint(tmp_path / "last.pt", config=dict(model.config))["model"] == self.kind

    def test_the_kind_s_defaults_are_training_settings(self) -> None:
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        assert set(MODELS[self.kind].defaults) <= names and {"lr", "loss", "epochs"} <= set(MODELS[self.kind].defaults)


def random_state(table: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of random values for a table of names and shapes (variances positive, batch counts 3)."""
    g = torch.Generator().manual_seed(seed)
    return {
        k: (
            torch.tensor(3)
            if k.endswith("num_batches_tracked")
            else torch.rand(shape, generator=g) + 0.5
            if "running_var" in k
            else torch.randn(shape, generator=g) * 0.1
        )
        for k, shape in table.items()
    }
