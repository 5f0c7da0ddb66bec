"""Scoring the stored detectors against a synthetic set's true masks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cube import open_cube
from cube.synth.dataset import MANIFEST, make_dataset
from cube.synth.scores import MAP_THRESHOLD, score_detectors


def test_s2cloudless_finds_the_synthetic_clouds(default_cube: Path) -> None:
    scores = score_detectors(open_cube(default_cube))
    assert scores.loc["s2cloudless_mask", "iou"] >= 0.6
    assert set(scores.truth) == {"cloud", "shadow", "cloud or shadow"}
    assert f"s2cloudless_map >= {MAP_THRESHOLD}" in scores.index
    rates = scores[["precision", "recall", "iou"]].to_numpy()
    assert ((rates >= 0) & (rates <= 1)).all()
    assert (scores.iou <= scores[["precision", "recall"]].min(axis=1) + 1e-12).all()  # IoU never beats either


def test_a_cube_without_a_synthetic_source_has_no_truth(tiny_cube: Path, tmp_path: Path) -> None:
    ds = open_cube(tiny_cube)
    ds.attrs["source_root"] = str(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path}: not a synthetic data set \\(no {MANIFEST}\\)"):
        score_detectors(ds)


def test_a_synthetic_set_that_lacks_the_cube_s_patches_is_one_line(tiny_cube: Path, tmp_path: Path) -> None:
    ds = open_cube(tiny_cube)
    other = make_dataset(
        tmp_path / "other", ["ROIs1868/17"], patches_per_roi=1, size=32, times=2, workers=1, progress=False
    )
    ds.attrs["source_root"] = str(other)
    with pytest.raises(ValueError, match=r"its synthetic truth lacks .* of the cube's .* patches"):
        score_detectors(ds)
