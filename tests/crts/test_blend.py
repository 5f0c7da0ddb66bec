"""Overlapping windows blended into whole patches (crts.blend): the taper, weighted means, pasting, completion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from crts.blend import PatchBlender, taper
from crts.data import SEN12MSCRTS, SampleWindows


class Grid:
    """What :class:`PatchBlender` reads of a :class:`SampleWindows`: windows of ``window`` px along x (whole rows),
    overlapping by ``overlap`` px, over ``patches`` patches of ``size`` px."""

    def __init__(
        self, size: int, window: int, overlap: int, windows_per_patch: int, patches: int = 1, placement: str = "grid"
    ) -> None:
        self.placement = placement
        self.input_dims, self.input_overlap = {"y": size, "x": window}, {"y": 0, "x": overlap}
        self.samples = type("Samples", (), {"image_size": size, "__len__": lambda _: patches})()
        self.count = windows_per_patch * patches

    def __len__(self) -> int:
        return self.count


def test_the_taper_rises_linearly_over_the_overlap_and_is_symmetric() -> None:
    expected = torch.tensor([1, 2, 3, 4, 4, 3, 2, 1], dtype=torch.float64) / 4
    torch.testing.assert_close(taper(8, 3), expected, rtol=0, atol=0)
    assert taper(5, 0).tolist() == [1.0] * 5 and taper(5, 1).tolist() == [0.5, 1.0, 1.0, 1.0, 0.5]


def test_random_windows_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^blending needs grid windows that cover the patch$"):
        PatchBlender(Grid(8, 6, 4, 2, placement="random"), torch.device("cpu"))


def test_overlaps_are_taper_weighted_means_and_pasted_values_keep_their_dtype() -> None:
    blender = PatchBlender(Grid(8, 6, 4, windows_per_patch=2), torch.device("cpu"))
    left, right = torch.full((13, 8, 6), 1.0), torch.full((13, 8, 6), 3.0)
    target = torch.arange(8 * 8, dtype=torch.int16).reshape(1, 8, 8)
    assert blender.add(0, 0, 0, {"prediction": left}, {"target": target[..., 0:6]}) is None
    whole = blender.add(0, 0, 2, {"prediction": right}, {"target": target[..., 2:8]})

    w = taper(6, 4).numpy()
    w_left, w_right = np.pad(w, (0, 2)), np.pad(w, (2, 0))
    expected = ((1.0 * w_left + 3.0 * w_right) / (w_left + w_right)).astype(np.float32)
    assert whole["prediction"].dtype == torch.float32 and whole["prediction"].shape == (13, 8, 8)
    np.testing.assert_array_equal(whole["prediction"].numpy(), np.broadcast_to(expected, (13, 8, 8)))
    assert whole["prediction"][0, 0, 0] == 1.0 and whole["prediction"][0, 0, 7] == 3.0  # one window only
    assert whole["target"].dtype == torch.int16 and torch.equal(whole["target"], target)


def test_patches_complete_independently_when_their_windows_interleave() -> None:
    blender = PatchBlender(Grid(4, 4, 0, windows_per_patch=1, patches=2), torch.device("cpu"))
    first = blender.add(1, 0, 0, {"p": torch.full((1, 4, 4), 0.25)}, {})
    second = blender.add(0, 0, 0, {"p": torch.full((1, 4, 4), 0.5)}, {})
    assert first["p"].unique().tolist() == [0.25] and second["p"].unique().tolist() == [0.5]


def test_blending_an_identity_model_s_windows_gives_back_the_whole_image(sampling_cube: Path) -> None:
    samples = SEN12MSCRTS(sampling_cube, split="test")
    windows = SampleWindows(samples, {"y": 12, "x": 12}, {"y": 4, "x": 4})  # 4 overlapping windows per axis
    blender, wholes = PatchBlender(windows, torch.device("cpu")), {}
    for i in range(len(windows)):
        item = windows[i]
        identity = item["inputs"][-1, :13]  # the model's output: its last input step's S2 bands
        whole = blender.add(item["pdx"], item["y0"], item["x0"], {"prediction": identity}, {"target": item["target"]})
        if whole is not None:
            wholes[item["pdx"]] = whole
    assert sorted(wholes) == list(range(len(samples)))
    for pdx, whole in wholes.items():
        image = SampleWindows(samples)[pdx]
        torch.testing.assert_close(whole["prediction"], image["inputs"][-1, :13], rtol=0, atol=0)
        torch.testing.assert_close(whole["target"], image["target"], rtol=0, atol=0)
