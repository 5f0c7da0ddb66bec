"""The torch forest gives exactly s2cloudless's probabilities, on the CPU and on CUDA."""

from __future__ import annotations

import lightgbm
import numpy as np
import pytest

from crts.clouds_gpu import TorchForestPredictor
from cube.clouds.detectors import s2cloudless_probability
from cube.clouds.forest import MODEL_PATH, feature_bins, load_forest, sigmoid32, threshold_probe


def _check(device: str) -> None:
    forest = load_forest()
    torch_forest = TorchForestPredictor(device)
    probe = threshold_probe(forest, n=1000, seed=8)
    expected = lightgbm.Booster(model_file=str(MODEL_PATH)).predict(probe, num_threads=1).astype(np.float32)
    np.testing.assert_array_equal(sigmoid32(torch_forest.margin(feature_bins(forest, probe))), expected)
    s2 = np.random.default_rng(9).integers(0, 11_000, (2, 13, 16, 16)).astype(np.uint16)
    np.testing.assert_array_equal(torch_forest(s2), s2cloudless_probability(s2))


def test_torch_forest_on_the_cpu_is_exact() -> None:
    _check("cpu")


@pytest.mark.requires_cuda
def test_torch_forest_on_cuda_is_exact() -> None:
    _check("cuda")
