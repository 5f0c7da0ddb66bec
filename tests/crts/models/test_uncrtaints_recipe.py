"""UnCRtainTS's recipe: the published command's settings and the L-TAE options."""

from __future__ import annotations

from crts.models.uncrtaints_recipe import OPTIONS, UNCRTAINTS_RECIPE


def test_the_published_recipe() -> None:
    assert UNCRTAINTS_RECIPE.name == "uncrtaints"
    assert UNCRTAINTS_RECIPE.defaults == {
        "lr": 1e-3,
        "beta1": 0.9,
        "epochs": 20,
        "epochs_decay": 0,
        "loss": "MGNLL",
        "sampler": "random",
        "width": 128,
        "scale_by": 10.0,
    }
    assert [(o.name, o.type) for o in OPTIONS] == [
        ("width", int),
        ("n_head", int),
        ("d_model", int),
        ("scale_by", float),
    ]
    assert UNCRTAINTS_RECIPE.options is OPTIONS
