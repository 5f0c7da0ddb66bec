"""Cloud-removal models: the paper's 3D ResNet, UnCRtainTS, U-TAE, the baselines, the registries of model kinds
and baselines (:mod:`crts.models.registry`; their names without torch: :mod:`crts.models.kinds`), and checkpoint
loading.

The public names are imported on first use (PEP 562): the torch-free modules (the kinds and their recipes, which
``crts train`` checks its options with) import without torch.
"""

from ..lazy import lazy_exports

_HOMES = {
    "BASELINES": "registry",
    "MODELS": "registry",
    "new_baseline": "registry",
    "kind_of": "registry",
    "model_kind": "registry",
    "LeastCloudy": "baselines",
    "Mosaic": "baselines",
    "load_checkpoint": "checkpoints",
    "read_checkpoint": "checkpoints",
    "save_checkpoint": "checkpoints",
    "ResNet3D": "resnet3d",
    "load_original_checkpoint": "resnet3d",
    "UnCRtainTS": "uncrtaints",
    "load_original_uncrtaints": "uncrtaints",
    "UTAE": "utae",
    "load_original_utae": "utae",
}
"""Each public name and the module that defines it."""

__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
