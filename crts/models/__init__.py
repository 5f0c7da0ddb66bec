"""Cloud-removal models: the paper's 3D ResNet, UnCRtainTS, the baselines, and checkpoint loading."""

from .baselines import LeastCloudy, Mosaic
from .checkpoints import (
    load_checkpoint,
    load_original_checkpoint,
    load_original_uncrtaints,
    read_checkpoint,
    save_checkpoint,
)
from .resnet3d import ResNet3D
from .uncrtaints import UnCRtainTS

__all__ = ["LeastCloudy", "Mosaic", "ResNet3D", "UnCRtainTS", "load_checkpoint", "load_original_checkpoint",
           "load_original_uncrtaints", "read_checkpoint", "save_checkpoint"]
