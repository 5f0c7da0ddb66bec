"""Which time steps are a sample's inputs and which its target: the original loader's rules, vectorised.

docs/reference.md §5 Sampling: the target is the step of lowest coverage (earliest on
ties); the inputs are the first ``n`` steps, in time order, whose coverage lies
in [min_cov, max_cov] (the target is not excluded). If fewer qualify, the inputs
are the first ``n`` steps other than the target and the sample's 'coverage bin'
flag is False. Steps without a valid image (gaps of a skip-mode conversion) are
never chosen.

UnCRtainTS trains with a ``random`` sampler instead (its loader's
``random_sampler``): the target is a random step with coverage below 1e-3 (the
least cloudy step if none is that clear), the inputs the other steps of the
window of ``n + 1`` consecutive steps around it (of the windows holding the
target, the middle one), redrawn every epoch; the flag is always True.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAMPLERS = ("fixed", "random")
CLEAR_COVERAGE = 1e-3
"""The random sampler's targets have coverage below this (UnCRtainTS's ``clear_tresh``)."""


@dataclass(frozen=True)
class SampleIndex:
    """The chosen time steps of every sample of a selection, in sample (pdx) order."""

    inputs: np.ndarray  # (samples, n) int, time steps in time order
    target: np.ndarray  # (samples,) int
    coverage_bin: np.ndarray  # (samples,) bool: enough inputs met the coverage window

    def __len__(self) -> int:
        return len(self.target)

    @property
    def target_in_inputs(self) -> np.ndarray:
        """(samples,) bool: the target step is also one of the inputs (possible with ``min_cov`` 0, as in the
        original), so a model that copies that input scores perfectly."""
        return (self.inputs == self.target[:, None]).any(axis=1)


def check_selection(n_input_samples: int, min_cov: float, max_cov: float) -> None:
    """Refuse a number of inputs below 1 or a coverage window outside [0, 1] or empty, in one line.

    Examples
    --------
    >>> check_selection(3, 0.0, 1.0)
    >>> check_selection(3, 0.9, 0.1)
    Traceback (most recent call last):
    ...
    ValueError: invalid coverage window: min_cov 0.9 is above max_cov 0.1
    """
    if isinstance(n_input_samples, bool) or not isinstance(n_input_samples, int | np.integer) or n_input_samples < 1:
        raise ValueError(f"invalid n_input_samples {n_input_samples!r}: must be a whole number of at least 1")
    for name, value in (("min_cov", min_cov), ("max_cov", max_cov)):
        if not 0.0 <= value <= 1.0:  # NaN fails too
            raise ValueError(f"invalid {name} {value}: a coverage is a share of the image, from 0 to 1")
    if min_cov > max_cov:
        raise ValueError(f"invalid coverage window: min_cov {min_cov} is above max_cov {max_cov}")


def _first_true(mask: np.ndarray, n: int) -> np.ndarray:
    """Per row, the positions of the first ``n`` True values (rows must have at least n)."""
    return np.sort(np.argsort(~mask, axis=1, kind="stable")[:, :n], axis=1)


def _valid_steps(coverage: np.ndarray, n_input_samples: int, labels: Sequence[object] | None) -> np.ndarray:
    """Where ``coverage`` is known; every sample needs ``n_input_samples + 1`` such steps."""
    valid = ~np.isnan(coverage)
    too_few = np.flatnonzero(valid.sum(axis=1) < n_input_samples + 1)
    if len(too_few):
        names = [str(labels[i]) if labels else str(i) for i in too_few[:5]]
        raise ValueError(
            f"{len(too_few)} sample(s) have fewer than {n_input_samples + 1} valid time steps (e.g. {', '.join(names)})"
        )
    return valid


def choose_steps(
    coverage: np.ndarray,
    n_input_samples: int,
    min_cov: float = 0.0,
    max_cov: float = 1.0,
    labels: Sequence[object] | None = None,
) -> SampleIndex:
    """Apply the sampling rules to a (samples, time) coverage table (NaN: no valid image).

    Parameters
    ----------
    coverage : numpy.ndarray
        Coverage of the chosen detector per sample and time step.
    n_input_samples : int
        Number of input time steps.
    min_cov, max_cov : float
        Coverage window the inputs should lie in.
    labels : sequence, optional
        Sample labels (e.g. :class:`cube.dataset.rois.PatchLabel`), named in the error about samples with too few
        valid steps.

    Examples
    --------
    >>> idx = choose_steps(np.array([[0.5, 0.0, 0.9, 0.2, 0.0]]), 2, 0.1, 0.6)
    >>> idx.target.tolist(), idx.inputs.tolist(), idx.coverage_bin.tolist()
    ([1], [[0, 3]], [True])
    """
    valid = _valid_steps(coverage, n_input_samples, labels)
    target = np.argmin(np.where(valid, coverage, np.inf), axis=1)
    in_window = valid & (coverage >= min_cov) & (coverage <= max_cov)
    enough = in_window.sum(axis=1) >= n_input_samples
    steps = np.arange(coverage.shape[1])
    fallback = valid & (steps[None, :] != target[:, None])
    inputs = np.where(
        enough[:, None],
        _first_true(np.where(enough[:, None], in_window, fallback), n_input_samples),
        _first_true(fallback, n_input_samples),
    )
    return SampleIndex(inputs=inputs.astype(np.int64), target=target.astype(np.int64), coverage_bin=enough)


def choose_steps_random(
    coverage: np.ndarray, n_input_samples: int, seed: int | tuple[int, ...], labels: Sequence[object] | None = None
) -> SampleIndex:
    """UnCRtainTS's ``random`` rule on a (samples, time) coverage table (NaN: no valid image), one draw per seed.

    Per sample, the target is drawn uniformly from the steps with coverage below
    :data:`CLEAR_COVERAGE` (the lowest-coverage step, earliest on ties, if there is
    none). Of the windows of ``n_input_samples + 1`` consecutive valid steps that
    hold the target, the middle one (``windows[len(windows) // 2]`` in order of
    start) gives the inputs: its steps other than the target, in time order.

    Parameters
    ----------
    coverage : numpy.ndarray
        Coverage of the chosen detector per sample and time step.
    n_input_samples : int
        Number of input time steps.
    seed : int or tuple of int
        Seeds numpy's generator, e.g. ``(seed, epoch)``: the same seed gives the same draw.
    labels : sequence, optional
        Sample labels (e.g. :class:`cube.dataset.rois.PatchLabel`), named in the error about samples with too few
        valid steps.

    Examples
    --------
    >>> idx = choose_steps_random(np.array([[0.5, 0.0, 0.9, 0.2, 0.3]]), 2, seed=0)
    >>> idx.target.tolist(), idx.inputs.tolist()
    ([1], [[2, 3]])
    """
    valid = _valid_steps(coverage, n_input_samples, labels)
    clear = valid & (coverage < CLEAR_COVERAGE)
    draw = np.random.default_rng(seed).random(coverage.shape)
    target = np.where(
        clear.any(axis=1),
        np.argmin(np.where(clear, draw, np.inf), axis=1),
        np.argmin(np.where(valid, coverage, np.inf), axis=1),
    )
    rows = np.arange(len(coverage))
    rank = np.cumsum(valid, axis=1)[rows, target] - 1  # the target's position among the valid steps
    length = n_input_samples + 1
    first = np.maximum(0, rank - n_input_samples)
    last = np.minimum(rank, valid.sum(axis=1) - length)
    start = first + (last - first + 1) // 2
    valid_steps = np.argsort(~valid, axis=1, kind="stable")  # valid steps first, in time order
    window = np.take_along_axis(valid_steps, start[:, None] + np.arange(length), axis=1)
    inputs = window[window != target[:, None]].reshape(len(coverage), n_input_samples)
    return SampleIndex(
        inputs=inputs.astype(np.int64), target=target.astype(np.int64), coverage_bin=np.ones(len(coverage), bool)
    )
