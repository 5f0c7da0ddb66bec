"""UnCRtainTS's random sampler: its rule (checked against a direct transcription), reproducibility, gaps,
and the SEN12MSCRTS option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crts.data import SEN12MSCRTS
from crts.data.sampling import CLEAR_COVERAGE, choose_steps_random


def window_rule(target: int, n: int, steps: int) -> list[int]:
    """The loader's rule for a given target: sliding windows of n + 1 steps holding it, the middle one."""
    windows = [list(range(s, s + n + 1)) for s in range(steps - n) if s <= target <= s + n]
    return [t for t in windows[len(windows) // 2] if t != target]


@pytest.fixture
def coverage() -> np.ndarray:
    rng = np.random.default_rng(3)
    table = rng.random((400, 30))
    table[rng.random((400, 30)) < 0.3] = 0.0  # about 9 clear steps per sample
    table[:20] += CLEAR_COVERAGE  # none clear: the least cloudy step is the target
    return table


@pytest.mark.parametrize("n", [1, 3, 4])
def test_rule(coverage: np.ndarray, n: int) -> None:
    index = choose_steps_random(coverage, n, seed=(0, 0))
    for row, inputs, target in zip(coverage, index.inputs, index.target, strict=True):
        clear = np.flatnonzero(row < CLEAR_COVERAGE)
        assert target in clear if len(clear) else target == np.argmin(row)
        assert inputs.tolist() == window_rule(int(target), n, 30)
    assert index.coverage_bin.all()


def test_targets_are_uniform_over_the_clear_steps() -> None:
    coverage = np.full((1, 30), 0.5)
    coverage[0, [2, 9, 17, 29]] = 0.0
    targets = [int(choose_steps_random(coverage, 3, seed=(1, epoch)).target[0]) for epoch in range(2000)]
    counts = np.bincount(targets, minlength=30)
    assert set(np.flatnonzero(counts)) == {2, 9, 17, 29}
    assert counts[[2, 9, 17, 29]].min() > 420  # 500 expected each


def test_reproducible_per_seed_and_epoch(coverage: np.ndarray) -> None:
    first = choose_steps_random(coverage, 3, seed=(7, 2))
    again = choose_steps_random(coverage, 3, seed=(7, 2))
    other = choose_steps_random(coverage, 3, seed=(7, 3))
    assert np.array_equal(first.target, again.target) and np.array_equal(first.inputs, again.inputs)
    assert not np.array_equal(first.target, other.target)


def test_gaps_are_skipped() -> None:
    coverage = np.array([[0.5, np.nan, 0.0, np.nan, 0.4, 0.6, 0.7]])
    index = choose_steps_random(coverage, 2, seed=0)
    assert index.target.tolist() == [2]
    assert index.inputs.tolist() == [[4, 5]]  # windows over valid steps [0, 2, 4] and [2, 4, 5]: the second
    with pytest.raises(ValueError, match="fewer than 4 valid"):
        choose_steps_random(coverage[:, :4], 3, seed=0)


def test_dataset_option(sampling_cube: Path) -> None:
    fixed = SEN12MSCRTS(sampling_cube, split="train", n_input_samples=2)
    drawn = SEN12MSCRTS(sampling_cube, split="train", n_input_samples=2, sampler="random", seed=5)
    same = SEN12MSCRTS(sampling_cube, split="train", n_input_samples=2, sampler="random", seed=5)
    assert np.array_equal(drawn.index.inputs, same.index.inputs)
    expected = choose_steps_random(drawn.coverage, 2, seed=(5, 0))
    assert np.array_equal(drawn.index.target, expected.target)
    sample = drawn[0]
    steps = [int(t) for t in drawn.index.inputs[0]]
    assert sample["input"]["idx"] == steps and sample["target"]["idx"] == int(drawn.index.target[0])
    assert sample["input"]["S2 TD"] == drawn.s2_td[0, steps].tolist()  # the dates reach the model
    drawn.set_epoch(1)
    assert np.array_equal(drawn.index.target, choose_steps_random(drawn.coverage, 2, seed=(5, 1)).target)
    fixed.set_epoch(1)
    assert np.array_equal(fixed.index.target, SEN12MSCRTS(sampling_cube, split="train", n_input_samples=2).index.target)
    with pytest.raises(ValueError, match="invalid sampler"):
        SEN12MSCRTS(sampling_cube, split="train", sampler="fixedsubset")
    with pytest.raises(ValueError, match="imported index"):
        SEN12MSCRTS(sampling_cube, split="train", sampler="random", import_data_path="index.npy")
