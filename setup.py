"""The cloud kernel ``cube/clouds/_forest.c``, built at install time where a C compiler exists.

An optional extension: where the compiler is missing or fails, setuptools
prints a warning and the install goes on without it; ``cube.clouds.forest``
then builds the kernel at first use (or uses s2cloudless itself). The kernel
is loaded with ctypes; the ``FOREST_RECIPE`` define also gives it what it
reports to that loader and an empty ``PyInit__forest``, so that importing the
module's name (as ``pkgutil.walk_packages`` over ``cube`` does) is no error.
Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import ast
import hashlib
import platform
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "cube/clouds/_forest.c"
"""The kernel (paths relative: setuptools runs this file from the project root)."""
FOREST = "cube/clouds/forest.py"
"""The module that loads the kernel and holds the compiler flags of both builds."""


def kernel_flags(module: str = FOREST) -> list[str]:
    """The run-time build's compiler flags, ``FLAGS`` read from the module's source.

    The build environment has neither numpy nor s2cloudless, so the module is
    parsed, not imported: its ``FLAGS`` stays the one definition of the flags.
    """
    for node in ast.parse(Path(module).read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "FLAGS" for target in node.targets):
            return list(ast.literal_eval(node.value))
    raise ValueError(f"{module}: no FLAGS assignment")


def kernel_recipe(source: str = SOURCE) -> str:
    """``"<sha256 of the source> <machine>"``, compiled into the kernel (``forest_recipe``) and checked at run time."""
    return f"{hashlib.sha256(Path(source).read_bytes()).hexdigest()} {platform.machine()}"


setup(
    ext_modules=[
        Extension(
            "cube.clouds._forest",
            [SOURCE],
            define_macros=[("FOREST_RECIPE", f'"{kernel_recipe()}"')],
            extra_compile_args=kernel_flags(),
            libraries=["m"],
            optional=True,
        )
    ]
)
