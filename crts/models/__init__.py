"""Cloud-removal models: the paper's 3D ResNet, UnCRtainTS, U-TAE, the baselines, the registry of model kinds
(:mod:`crts.models.registry`), and checkpoint loading."""

from .baselines import LeastCloudy, Mosaic
from .checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from .registry import MODELS, kind_of, model_kind
from .resnet3d import ResNet3D, load_original_checkpoint
from .uncrtaints import UnCRtainTS, load_original_uncrtaints
from .utae import UTAE, load_original_utae

__all__ = ["MODELS", "UTAE", "LeastCloudy", "Mosaic", "ResNet3D", "UnCRtainTS", "kind_of", "load_checkpoint",
           "load_original_checkpoint", "load_original_uncrtaints", "load_original_utae", "model_kind",
           "read_checkpoint", "save_checkpoint"]
