"""The 3D ResNet's recipe: the paper's training settings and its two size options."""

from __future__ import annotations

from crts.models.resnet3d_recipe import RESNET3D_RECIPE


def test_the_paper_s_recipe() -> None:
    assert RESNET3D_RECIPE.name == "resnet3d"
    assert RESNET3D_RECIPE.defaults == {
        "lr": 2e-4,
        "beta1": 0.5,
        "epochs": 100,
        "epochs_decay": 100,
        "loss": "l1",
        "sampler": "fixed",
    }
    assert [(o.name, o.type) for o in RESNET3D_RECIPE.options] == [("features", int), ("blocks", int)]
