"""Samples and batches from the cube for learning.

The public names are imported on first use (PEP 562): a light module such as
:mod:`crts.data.sampling` imports without torch.
"""

from importlib import import_module

_HOMES = {"SampleWindows": "batches", "loader": "batches", "SEN12MSCR": "sen12mscr", "SEN12MSCRTS": "sen12mscrts"}
"""Each public name and the module that defines it."""

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'crts.data' has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
