"""Cloud-removal models: the paper's 3D ResNet, its baselines, and checkpoint loading."""

from .baselines import LeastCloudy, Mosaic
from .checkpoints import load_checkpoint, load_original_checkpoint, read_checkpoint, save_checkpoint
from .resnet3d import ResNet3D

__all__ = ["LeastCloudy", "Mosaic", "ResNet3D", "load_checkpoint", "load_original_checkpoint", "read_checkpoint",
           "save_checkpoint"]
