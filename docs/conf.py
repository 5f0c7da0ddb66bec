"""Sphinx configuration: the Markdown pages of docs/ (myst-parser) and the API reference from the docstrings.

Build with ``make docs`` (``sphinx-build -W --keep-going -b html docs docs/_build/html``); ``make test`` builds
it too (tests/test_docs.py). Nothing is fetched from the network: no intersphinx, no linkcheck.
"""

from __future__ import annotations

import sys
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
