"""Sphinx configuration: the Markdown pages of docs/ (myst-parser) and the API reference from the docstrings.

Build with ``make docs`` (``sphinx-build -W --keep-going -b html docs docs/_build/html``); ``make test`` builds
it too (tests/test_docs.py). Nothing is fetched from the network: no intersphinx, no linkcheck.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # cube, crts and benchmarks from this checkout

project = "SEN12MS-CR-TS data cube"
author = "the sen12mscrts-cube developers"
copyright = "2026, " + author  # Sphinx's name for it

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]

myst_heading_anchors = 3
"""Headings down to ### get anchors, so that ``page.md#anchor`` links are checked like page links."""
myst_enable_extensions = ["colon_fence"]

autosummary_generate = True
autosummary_mock_imports = ["crts.__main__"]
"""``python -m crts`` runs the command when imported; the API pages list it nowhere."""
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
"""A package documents what it defines; what it re-exports is documented once, where it is defined."""
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True

html_theme = "pydata_sphinx_theme"
html_title = project
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}


def defining_module(package: types.ModuleType, name: str) -> str:
    """The module of ``package`` that assigns ``name`` at its top level (for a constant, which names no module).

    Raises
    ------
    LookupError
        If no module of the package assigns it.
    """
    for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        origin = importlib.util.find_spec(module.name).origin
        tree = ast.parse(Path(origin).read_text()) if origin and origin.endswith(".py") else ast.Module([], [])
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            if any(isinstance(target, ast.Name) and target.id == name for target in targets):
                return module.name
    raise LookupError(f"{package.__name__}.{name}: no module of the package assigns it")


def exported(package: types.ModuleType) -> list[str]:
    """Where each public name that a package offers but does not define is defined, relative to the package.

    Those are the names of its ``__all__`` and those it imports on first use (PEP 562: its ``__dir__`` lists them,
    its namespace does not hold them yet). autodoc documents a name once, where it is defined, so the package's
    page lists these and links there.
    """
    names = {*getattr(package, "__all__", ()), *(set(dir(package)) - set(vars(package)))}
    found = []
    for name in sorted(name for name in names if not name.startswith("_")):
        value = getattr(package, name)
        if inspect.ismodule(value):
            found.append(value.__name__)
        elif inspect.isclass(value) or inspect.isfunction(value):
            found.append(f"{value.__module__}.{value.__qualname__}")
        else:
            found.append(f"{defining_module(package, name)}.{name}")
    inside = f"{package.__name__}."
    return [full.removeprefix(inside) for full in found if full.rsplit(".", 1)[0] != package.__name__]


def exports(*roots: str) -> dict[str, list[str]]:
    """:func:`exported` for every package under ``roots`` that offers a name it does not define."""
    packages = []
    for root in roots:
        package = importlib.import_module(root)
        packages.append(package)
        packages += [
            importlib.import_module(found.name)
            for found in pkgutil.walk_packages(package.__path__, f"{root}.")
            if found.ispkg
        ]
    return {package.__name__: names for package in packages if (names := exported(package))}


autosummary_context = {"exports": exports("cube", "crts")}
"""What docs/_templates/autosummary/module.rst lists on a package's page, under "Public names"."""
