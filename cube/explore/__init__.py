"""Exploring a cube by looking: a map of every patch and each patch's year, in Jupyter and as a static page.

:mod:`cube.explore.model` computes what is shown (no browser, no widget library); :mod:`cube.explore.page`
writes the page to share; :func:`explore` (in :mod:`cube.explore.widget`, imported on first use, so that
``import cube`` never needs the widget library) shows the map in a notebook.
"""

from importlib import import_module


def __getattr__(name: str) -> object:
    if name == "explore":
        return import_module(".widget", __name__).explore
    raise AttributeError(f"module 'cube.explore' has no attribute {name!r}")
