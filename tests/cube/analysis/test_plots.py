"""The shared figure pieces: true colour, cloud outlines, the coverage figure, and writing a figure whole."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex

from cube import open_cube
from cube.analysis.plots import (
    REFLECTANCE_TOP,
    draw_clouds,
    finish,
    plot_coverage,
    true_colour,
)
from cube.analysis.stats import CoverageIndex, coverage_index
from cube.store.outputs import OutputRefused
from tests.figures import smallest_font
from tests.helpers import coverage_rows, random_coverage_index


@pytest.fixture(scope="module")
def index() -> CoverageIndex:
    return random_coverage_index()


def test_true_colour_is_b4_b3_b2_stretched_and_clipped() -> None:
    s2 = np.zeros((13, 1, 2))
    s2[3], s2[2], s2[1] = [[750, 9000]], [[1500, 0]], [[3000, 3000]]  # B4, B3, B2
    np.testing.assert_allclose(true_colour(s2), [[[0.25, 0.5, 1.0], [1.0, 0.0, 1.0]]])
    np.testing.assert_allclose(true_colour(s2 / 10000 * 5, per_reflectance=5), true_colour(s2))
    assert REFLECTANCE_TOP == 0.3


def _outline(mask: np.ndarray) -> np.ndarray:
    """The vertices of the cloud outline that draw_clouds puts on a fresh axis."""
    fig, ax = plt.subplots()
    draw_clouds(ax, mask)
    paths = [path.vertices for c in ax.collections for path in c.get_paths()]
    plt.close(fig)
    return np.concatenate(paths) if paths else np.empty((0, 2))


def test_cloud_outlines_surround_the_cloud_and_nan_counts_as_clear() -> None:
    mask = np.full((8, 8), np.nan)
    assert len(_outline(mask)) == 0
    mask[2:6, 2:6] = 1
    vertices = _outline(mask)
    assert vertices.min() >= 1 and vertices.max() <= 6  # around the square, not along the image's edge


def test_a_figure_is_written_whole_or_refused_inside_a_cube(tiny_cube: Path, tmp_path: Path) -> None:
    fig = plt.figure()
    assert finish(fig, None) is fig
    out = finish(fig, tmp_path / "f.svg")
    assert out == tmp_path / "f.svg" and out.read_text().lstrip().startswith("<?xml")
    assert not plt.fignum_exists(fig.number)
    with pytest.raises(OutputRefused, match="lies inside the cube"):
        finish(plt.figure(), tiny_cube / "f.png")
    assert not list(tiny_cube.glob("*f.png*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.svg"]  # no partial file left


def test_coverage_figure_names_months_counts_images_and_keeps_splits_apart_from_regions(index: CoverageIndex) -> None:
    fig = plot_coverage(index, "det_b")
    hist, month, clear = fig.axes
    assert [t.get_text() for t in month.get_xticklabels()] == [
        "Jan",
        "Feb",
        "Mar",
        "Apr",
        "May",
        "Jun",
        "Jul",
        "Aug",
        "Sep",
        "Oct",
        "Nov",
        "Dec",
    ]
    images = coverage_rows(index).query("detector == 'det_b'").groupby(["region", "split"]).size()
    by_region = [f"{region} (n={n})" for region, n in images.groupby("region").sum().items()]
    assert [t.get_text() for t in hist.get_legend().get_texts()] == by_region
    assert [t.get_text() for t in month.get_legend().get_texts()] == by_region
    assert sorted(t.get_text() for t in clear.texts if t.get_text()) == sorted(f"n={n}" for n in images)
    region_colours = {to_hex(line.get_color()) for line in month.lines}
    assert {to_hex(bar.get_facecolor()) for bar in hist.patches} == region_colours and len(region_colours) == 3
    split_colours = {to_hex(bar.get_facecolor()) for bar in clear.patches}
    assert len(split_colours) == 3 and not split_colours & region_colours
    assert smallest_font(fig) >= 10
    plt.close(fig)


def test_the_coverage_figure_of_a_cube_is_written(default_cube: Path, tmp_path: Path) -> None:
    idx = coverage_index(open_cube(default_cube), "s2cloudless_mask")
    assert plot_coverage(idx, out=tmp_path / "c.png").stat().st_size > 10_000
