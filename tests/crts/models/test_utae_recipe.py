"""U-TAE's recipe: UnCRtainTS's baseline settings, sharing UnCRtainTS's options."""

from __future__ import annotations

from crts.models.uncrtaints_recipe import OPTIONS
from crts.models.utae_recipe import UTAE_RECIPE


def test_the_baseline_s_recipe() -> None:
    assert UTAE_RECIPE.name == "utae"
    assert UTAE_RECIPE.defaults == {
        "lr": 1e-3,
        "beta1": 0.9,
        "epochs": 20,
        "epochs_decay": 0,
        "loss": "l2",
        "sampler": "random",
        "width": 64,
        "scale_by": 1.0,
    }
    assert UTAE_RECIPE.options is OPTIONS  # declared once, read by both kinds
