"""Samples and batches from the cube for learning."""

from .batches import SampleWindows, loader
from .sen12mscr import SEN12MSCR
from .sen12mscrts import SEN12MSCRTS

__all__ = ["SEN12MSCR", "SEN12MSCRTS", "SampleWindows", "loader"]
