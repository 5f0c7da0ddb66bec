"""Shared fixtures: synthetic data sets made once per test session."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from crts.cli.errors import TORCH_EXTRA
from cube.synth import make_dataset

# Fuzz targets (tests/fuzz/) run a bounded, reproducible count of inputs in `make test` and many more, fresh
# ones, under `make fuzz` (HYPOTHESIS_PROFILE=fuzz, FUZZ_EXAMPLES to change the count).
settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class SkipWithoutTorch:
    """An import hook for installs without the ``torch`` extra: importing one of its modules skips the test (or
    the test module, or the doctests of a package module) that needed it, so the torch-free suite runs alone."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        """Skip where ``name`` is a missing module of the extra; None (the other finders look) otherwise."""
        if name.split(".")[0] in MISSING_EXTRA:
            pytest.skip(f"needs {name} (pip install '.[torch]')", allow_module_level=True)


def missing(name: str) -> bool:
    """Whether module ``name`` cannot be imported here (absent, or refused by an import hook)."""
    try:
        return importlib.util.find_spec(name) is None
    except ImportError:
        return True


MISSING_EXTRA = {name for name in TORCH_EXTRA if missing(name)}
"""The modules of the ``torch`` extra that this Python lacks (none in `make test`'s venv)."""
if MISSING_EXTRA:
    sys.meta_path.insert(0, SkipWithoutTorch())


# A non-interactive shell starts its background jobs with SIGINT ignored (`make test` runs the Python 3.13 part so,
# beside the 3.11 suite), and every child inherits that: the tests that interrupt a command as a terminal's Ctrl-C
# does would see it ignored. The suite takes SIGINT back, so its children start with the default again.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default synthetic SEN12MS-CR-TS set (4 ROIs x 2 patches x 30 steps, 256 px)."""
    return make_dataset(tmp_path_factory.mktemp("default") / "SEN12MSCRTS", workers=2, progress=False)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny set for fast checks: 2 ROIs x 3 patches x 4 steps of 32 px."""
    return make_dataset(
        tmp_path_factory.mktemp("tiny") / "SEN12MSCRTS",
        ["ROIs1868/17", "ROIs2017/32"],
        patches_per_roi=3,
        size=32,
        times=4,
        seed=7,
        workers=1,
        progress=False,
    )


@pytest.fixture(scope="session")
def tiny_cube(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_root`` converted in-process."""
    from cube import convert

    dst = tmp_path_factory.mktemp("tiny_cube") / "cube.zarr"
    convert(tiny_root, dst, workers=1, progress=False)
    return dst


@pytest.fixture(scope="session")
def default_cube(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default synthetic set converted by a local dask cluster of 2 worker processes."""
    from cube import convert

    dst = tmp_path_factory.mktemp("default_cube") / "cube.zarr"
    convert(synthetic_root, dst, workers=2, progress=False)
    return dst


@pytest.fixture(scope="session")
def sampling_cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train, val and test ROIs of two regions, 3 patches x 10 steps of 32 px, converted with its cloud pass."""
    from cube import convert

    base = tmp_path_factory.mktemp("sampling")
    root = make_dataset(
        base / "SEN12MSCRTS",
        ["ROIs1868/17", "ROIs1868/56", "ROIs2017/63", "ROIs1970/21", "ROIs2017/32"],
        patches_per_roi=3,
        size=32,
        times=10,
        seed=11,
        workers=1,
        progress=False,
    )
    convert(root, base / "cube.zarr", workers=1, progress=False)
    return base / "cube.zarr"


@pytest.fixture(scope="module")
def s3() -> str:
    """moto's S3 server on 127.0.0.1 for a test module (:func:`tests.servers.s3_server`); its URL."""
    from tests.servers import s3_server

    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def bucket_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The set the object-storage tests put in a bucket: 3 ROIs (train, val, test) x 2 patches x 4 steps of 32 px."""
    return make_dataset(
        tmp_path_factory.mktemp("objects") / "src",
        ["ROIs1868/17", "ROIs1868/56", "ROIs2017/63"],
        patches_per_roi=2,
        size=32,
        times=4,
        seed=5,
        workers=1,
        progress=False,
    )


@pytest.fixture(scope="module")
def s3_cube(request: pytest.FixtureRequest, s3: str, bucket_root: Path) -> str:
    """``bucket_root`` converted by ``crts convert`` into a new bucket of the module's S3 server; its URL.

    One per test module, like :func:`s3`: tests of a module that write into it (runs) or damage it see each
    other's changes. The bucket is named after the module: moto keeps its buckets in the process, not in its
    server, so a module's server still holds the buckets of the modules before it (one that damaged its cube).
    """
    from crts.cli import main
    from tests.servers import create_bucket

    bucket = "cubes-" + request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    url = f"{create_bucket(bucket)}/cube.zarr"
    assert main(["convert", str(bucket_root), url, "--workers", "1"]) == 0
    return url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``requires_cuda`` tests where torch sees no CUDA device (CI has none)."""
    if not any("requires_cuda" in item.keywords for item in items):
        return
    if "torch" not in MISSING_EXTRA:
        import torch

        if torch.cuda.is_available():
            return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "requires_cuda" in item.keywords:
            item.add_marker(skip)
