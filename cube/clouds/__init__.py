"""Cloud detection: the detectors, s2cloudless's forest and its C kernel, and the cloud pass over a cube.

The cloud pass lives in :mod:`cube.clouds.compute`; its public names are also
reached here (``cube.clouds.compute_clouds``), imported on first use (PEP 562)
so that importing :mod:`cube.clouds.detectors` does not import xarray, zarr and dask.
"""

from importlib import import_module

PASS_NAMES = (
    "PROBABILITY",
    "PROBABILITY_SCALE",
    "Predictor",
    "cloud_pass",
    "clouds_patch",
    "commit_pass",
    "compute_clouds",
    "require_clouds",
)
"""The public names of :mod:`cube.clouds.compute`, reached as ``cube.clouds.<name>`` as before the package."""


def __getattr__(name: str) -> object:
    if name not in PASS_NAMES:
        raise AttributeError(f"module 'cube.clouds' has no attribute {name!r}")
    return getattr(import_module(".compute", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *PASS_NAMES])
