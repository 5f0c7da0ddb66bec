"""The 3D ResNet's recipe and options (torch-free; the model: :mod:`crts.models.resnet3d`)."""

from __future__ import annotations

from .recipe import ModelOption, Recipe

RESNET3D_RECIPE = Recipe(
    "resnet3d",
    "the paper's 3D ResNet",
    {"lr": 2e-4, "beta1": 0.5, "epochs": 100, "epochs_decay": 100, "loss": "l1", "sampler": "fixed"},
    (ModelOption("features", int, "ResNet width F"), ModelOption("blocks", int, "residual blocks B of the encoder")),
)
"""The original's training recipe: Adam at 2e-4 (beta1 0.5) for 100 epochs and 100 of linear decay, L1, the
paper's fixed choice of inputs."""
