"""Packages whose public names are imported on first use (PEP 562), so that their light modules import alone."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module


def lazy_exports(package: str, homes: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose public names are imported on first use.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    homes : dict of str to str
        Each public name and the module of the package that defines it.

    Examples
    --------
    >>> get, names = lazy_exports("crts.data", {"loader": "batches"})
    >>> get("loader").__module__, "loader" in names()
    ('crts.data.batches', True)
    """

    def module_getattr(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f".{homes[name]}", package), name)

    def module_dir() -> list[str]:
        return sorted([*vars(sys.modules[package]), *homes])

    return module_getattr, module_dir
