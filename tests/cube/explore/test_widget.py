from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lonboard", reason="the explore extra (lonboard) is not installed")

from crts.data.sampling import choose_steps
from cube import open_cube
from cube.explore.model import colouring, map_model
from cube.explore.widget import MapView, explore, footprint_table, step_figure


def column(value: object, width: int = 1) -> list:
    """A lonboard accessor's values (an Arrow array) as rows of ``width`` numbers."""
    import pyarrow as pa

    flat = pa.chunked_array(value).combine_chunks()
    flat = flat.flatten() if width > 1 else flat
    return flat.to_numpy(zero_copy_only=False).reshape(-1, width).tolist()


@pytest.fixture(scope="module")
def view(tiny_cube: Path) -> MapView:
    ds = open_cube(tiny_cube, chunks=None)
    return MapView(ds, map_model(ds), functools.partial(choose_steps, n_input_samples=2), None)


def test_the_map_starts_with_every_patch_coloured_by_mean_coverage(view: MapView) -> None:
    assert view.count.value == "6 of 6 patches shown"
    assert column(view.layer.get_fill_color, 3) == colouring(view.model, "coverage").rgb.tolist()
    assert "mean cloud coverage (s2cloudless_mask)" in view.legend.value
    table = footprint_table(view.model)
    row = table.iloc[3]
    assert (row.roi, row.patch_id, row.split, row.region) == ("ROIs2017/32", 333, "test", "africa")
    assert row.coverage == pytest.approx(np.nanmean(view.ds.coverage.values[3, :, 0]))
    assert np.allclose(table.geometry.bounds.minx, view.model.outlines[:, :, 0].min(axis=1))


def test_controls_recolour_and_filter_the_layer(view: MapView) -> None:
    view.by.value = "region"
    assert column(view.layer.get_fill_color, 3) == colouring(view.model, "region").rgb.tolist()
    assert "europa" in view.legend.value and "africa" in view.legend.value
    view.regions.value = ("europa",)
    assert view.count.value == "3 of 6 patches shown"
    assert column(view.layer.get_filter_value) == [[1], [1], [1], [0], [0], [0]]
    view.regions.value = ()
    view.coverage.value = (0.9, 1.0)
    assert view.count.value.startswith(f"{(colouring(view.model, 'coverage').values >= 0.9).sum()} of 6")
    view.coverage.value = (0.0, 1.0)
    view.by.value, view.month.value = "month", 2
    assert "cloud coverage in Feb" in view.legend.value


def test_a_click_shows_the_patch_s_strip_with_the_loader_s_target_framed(view: MapView) -> None:
    view.layer.selected_index = 4
    ds = view.ds
    assert view.strip is not None and view.strip.patch == 4 and not view.step.disabled
    for date in (str(d)[:10] for d in ds.S2_date.values[4]):
        assert date in view.panel.value
    target = choose_steps(ds.coverage.values[[4], :, 0], 2).target[0]
    frames = view.panel.value.split("border:3px solid ")[1:]
    assert [f.startswith("#d62728") for f in frames].index(True) == target
    figure = step_figure(ds, view.strip, 1)
    assert len(figure.axes) == 3 + 13  # true colour, S1 VV, curve, then the 13 bands


def test_explore_returns_the_widget_and_refuses_a_cube_without_a_cloud_pass(tiny_cube: Path) -> None:
    ds = open_cube(tiny_cube, chunks=None)
    assert type(explore(ds)).__name__ == "VBox"
    with pytest.raises(ValueError, match="SEN12MS-CR-TS cubes"):
        explore(ds.assign_attrs(layout="sen12mscr"))
