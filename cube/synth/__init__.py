"""Synthetic SEN12MS-CR-TS: realistic stand-in data in the real on-disk layout, with ground truth."""

from .dataset import DEFAULT_ROIS, LAYOUTS, make_dataset, open_truth

__all__ = ["DEFAULT_ROIS", "LAYOUTS", "make_dataset", "open_truth"]
