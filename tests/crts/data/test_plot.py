"""``plot(sample)`` of the datasets: one axis per image, dated titles, cloud contours, the right colours."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import rasterio
import torch

from crts.data import SEN12MSCR, SEN12MSCRTS
from crts.data.plot import plot_sample

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@pytest.fixture(autouse=True)
def _close_figures() -> None:
    yield
    plt.close("all")


def _contoured(ax: plt.Axes) -> bool:
    """True if a cloud contour with lines is drawn on ``ax``."""
    return any(len(path.vertices) for contour in ax.collections for path in contour.get_paths())


def _file_date(path: str) -> str:
    return Path(path).name.split("_")[5]


def test_inputs_and_target_are_dated_with_their_coverage_and_clouds_contoured(sampling_cube: Path) -> None:
    data = SEN12MSCRTS(sampling_cube, split="all", n_input_samples=3)
    contours = 0
    for pdx in range(len(data)):
        sample = data[pdx]
        fig = data.plot(sample)
        assert len(fig.axes) == 4
        parts = [("input", k) for k in range(3)] + [("target", 0)]
        for ax, (part, k) in zip(fig.axes, parts, strict=True):
            title = ax.get_title()
            assert title.startswith(f"{part} (t = ") and _file_date(sample[part]["S2 path"][k]) in title
            assert f"clouds {100 * sample[part]['coverage'][k]:.0f} %" in title
            mask = sample[part]["masks"][k]
            cloudy_and_clear = bool(mask.min() == 0 and mask.max() == 1)
            assert _contoured(ax) == (part == "input" and cloudy_and_clear)
            contours += _contoured(ax)
            assert ax.title.get_fontsize() >= 10
        plt.close(fig)
    assert contours > 0  # the synthetic clouds give partly cloudy inputs


@pytest.mark.parametrize("method", ["default", "resnet"])
def test_true_colour_is_b4_b3_b2_stretched_to_0_3_reflectance_for_either_scaling(
    sampling_cube: Path, method: str
) -> None:
    data = SEN12MSCRTS(sampling_cube, split="val", rescale_method=method)
    sample = data[0]
    fig = data.plot(sample)
    raw = rasterio.open(sample["input"]["S2 path"][1]).read().astype(np.float64)
    expected = np.clip(np.clip(raw[[3, 2, 1]], 0, 10000) / 10000 / 0.3, 0, 1).transpose(1, 2, 0)
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), expected, atol=1e-5)


def test_a_prediction_gets_its_own_axis_also_as_a_tensor(sampling_cube: Path) -> None:
    data = SEN12MSCRTS(sampling_cube, split="val", n_input_samples=2)
    sample = data[0]
    sample["prediction"] = torch.tensor(sample["target"]["S2"][0], requires_grad=True)
    fig = data.plot(sample, suptitle="val sample 0")
    assert [ax.get_title().split("\n")[0].split(" (")[0] for ax in fig.axes] == [
        "input",
        "input",
        "target",
        "prediction",
    ]
    np.testing.assert_allclose(fig.axes[3].images[0].get_array(), fig.axes[2].images[0].get_array())
    assert fig.get_suptitle() == "val sample 0"


def test_generic_series_and_no_titles(sampling_cube: Path) -> None:
    data = SEN12MSCRTS(sampling_cube, split="val", sample_type="generic")
    sample = data[0]
    fig = data.plot(sample)
    assert len(fig.axes) == 10  # 10 steps in rows of 6: the two spare axes are removed
    assert [ax.get_title().split("\n")[:2] for ax in fig.axes] == [
        [f"t = {t}", _file_date(path)] for t, path in enumerate(sample["S2 path"])
    ]
    assert not any(ax.get_title() for ax in data.plot(sample, show_titles=False).axes)


def test_a_series_without_time_steps_is_drawn_with_dates_alone() -> None:
    # no role and no step: the title's first line was None, and joining the title a TypeError
    series = {"S2": [np.full((13, 4, 4), 0.2, np.float32)], "S2 TD": [1540]}
    fig = plot_sample(series)
    assert [ax.get_title() for ax in fig.axes] == ["2018-06-21"]


def test_without_a_detector_no_masks_are_drawn(sampling_cube: Path) -> None:
    data = SEN12MSCRTS(sampling_cube, split="val", cloud_masks=None)
    fig = data.plot(data[0])
    assert not any(_contoured(ax) for ax in fig.axes)
    assert not any("clouds" in ax.get_title() for ax in fig.axes)
    assert "contours" not in fig.get_supxlabel()


@pytest.fixture(scope="module")
def cr_cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cube import convert
    from cube.synth import make_dataset

    base = tmp_path_factory.mktemp("cr_plot")
    root = make_dataset(
        base / "cr",
        ["ROIs1158/106", "ROIs1868/17"],
        patches_per_roi=2,
        size=32,
        layout="sen12mscr",
        workers=1,
        progress=False,
    )
    convert(root, base / "cr.zarr", workers=1, progress=False)
    return base / "cr.zarr"


def test_mono_temporal_sample(cr_cube: Path) -> None:
    data = SEN12MSCR(cr_cube, cloud_masks="cloud_cloudshadow_mask")
    sample = data[0]
    fig = data.plot(sample)
    assert [ax.get_title() for ax in fig.axes] == [
        f"input (cloudy)\nclouds {100 * sample['input']['coverage']:.0f} %",
        "target (cloud-free)",
    ]
    mask = sample["input"]["masks"]
    assert _contoured(fig.axes[0]) == bool(mask.min() == 0 and mask.max() == 1)
    assert "cyan contours: clouds by cloud_cloudshadow_mask" in fig.get_supxlabel()


def test_samples_carry_the_crs_of_their_bounds(sampling_cube: Path, cr_cube: Path) -> None:
    data = SEN12MSCRTS(sampling_cube, split="test")
    sample = data[0]
    with rasterio.open(sample["target"]["S2 path"][0]) as src:
        assert sample["input"]["crs"] == sample["target"]["crs"] == src.crs.to_string()
        assert sample["target"]["coord"][0] == pytest.approx(list(src.bounds))
    batch = torch.utils.data.default_collate([data[0], data[1]])
    assert batch["input"]["crs"] == [data[0]["input"]["crs"], data[1]["input"]["crs"]]
    generic = SEN12MSCRTS(sampling_cube, split="test", sample_type="generic")[0]
    assert generic["crs"] == sample["input"]["crs"] and len(generic["coord"]) == 10
    mono = SEN12MSCR(cr_cube)[0]
    with rasterio.open(mono["input"]["S2 path"]) as src:
        assert mono["input"]["crs"] == mono["target"]["crs"] == src.crs.to_string()
