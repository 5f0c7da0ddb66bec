"""U-TAE's recipe (torch-free; the model: :mod:`crts.models.utae`); its options are UnCRtainTS's."""

from __future__ import annotations

from .recipe import Recipe
from .uncrtaints_recipe import OPTIONS

UTAE_RECIPE = Recipe(
    "utae",
    "U-TAE (Garnot & Landrieu 2021), UnCRtainTS's baseline (L2, or MGNLL with variances)",
    {
        "lr": 1e-3,
        "beta1": 0.9,
        "epochs": 20,
        "epochs_decay": 0,
        "loss": "l2",
        "sampler": "random",
        "width": 64,
        "scale_by": 1.0,
    },
    OPTIONS,
)
"""UnCRtainTS's recipe for its U-TAE baseline: L2 (no variances), width 64 and no internal scaling."""
