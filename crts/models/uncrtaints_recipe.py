"""UnCRtainTS's recipe and options (torch-free; the model: :mod:`crts.models.uncrtaints`). U-TAE reads the same
options (:mod:`crts.models.utae_recipe`)."""

from __future__ import annotations

from .recipe import ModelOption, Recipe

OPTIONS = (
    ModelOption("width", int, "channel width (UnCRtainTS's)"),
    ModelOption("n_head", int, "L-TAE attention heads"),
    ModelOption("d_model", int, "L-TAE width"),
    ModelOption("scale_by", float, "internal value scale (the published UnCRtainTS runs: 10)"),
)
"""The settings of an L-TAE model on dated inputs: UnCRtainTS's, which U-TAE shares."""

UNCRTAINTS_RECIPE = Recipe(
    "uncrtaints",
    "UnCRtainTS (MGNLL, Adam at a constant rate, random sampler)",
    {
        "lr": 1e-3,
        "beta1": 0.9,
        "epochs": 20,
        "epochs_decay": 0,
        "loss": "MGNLL",
        "sampler": "random",
        "width": 128,
        "scale_by": 10.0,
    },
    OPTIONS,
)
"""The published training command's recipe: Adam at a constant 1e-3 for 20 epochs, MGNLL, redrawn inputs."""
