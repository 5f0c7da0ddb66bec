"""Samples and batches from the cube for learning.

The public names are imported on first use (PEP 562): a light module such as
:mod:`crts.data.sampling` imports without torch.
"""

from ..lazy import lazy_exports

_HOMES = {"SampleWindows": "batches", "loader": "batches", "SEN12MSCR": "sen12mscr", "SEN12MSCRTS": "sen12mscrts"}
"""Each public name and the module that defines it."""

__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
