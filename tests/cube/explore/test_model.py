from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crts.data.sampling import choose_steps
from cube import open_cube
from cube.analysis.plots import CLOUD_COLOUR
from cube.explore.model import (
    MISSING_COLOUR,
    RAMP,
    Filters,
    MapModel,
    colouring,
    hover_text,
    map_model,
    outline,
    patch_strip,
    patch_values,
    picks,
    ramp_colours,
    rgb,
    selected,
    shrink,
)


@pytest.fixture(scope="module")
def tiny(tiny_cube: Path) -> tuple:
    ds = open_cube(tiny_cube, chunks=None)
    return ds, map_model(ds)


def crafted(coverage: list[list[float]], months: list[int]) -> MapModel:
    """Two or more patches with a hand-made coverage table (one detector) and S2 dates on the 1st of ``months``."""
    cov = np.array(coverage, np.float32)[:, :, None]
    n = len(cov)
    labels = pd.DataFrame(
        {"roi": ["ROIs1868/17"] * n, "patch_id": range(n), "split": ["train", "test"] * (n // 2), "region": "europa"}
    )
    dates = np.array([[np.datetime64(f"2018-{m:02d}-01") for m in months]] * n)
    return MapModel(labels, np.zeros((n, 4, 2)), cov, dates, ("s2cloudless_mask",))


def test_the_map_holds_every_patch_with_its_labels_footprint_and_coverage(tiny: tuple) -> None:
    ds, model = tiny
    assert len(model) == ds.sizes["patch"] == 6
    assert model.labels.roi.tolist() == ["ROIs1868/17"] * 3 + ["ROIs2017/32"] * 3
    assert model.labels.patch_id.tolist() == ds.patch_id.values.tolist()
    # footprints in lon/lat: 32 px of 10 m are about 0.0029 degrees of latitude
    heights = model.outlines[:, :, 1].max(axis=1) - model.outlines[:, :, 1].min(axis=1)
    assert np.allclose(heights, 320 / 111_200, rtol=0.02)
    assert np.array_equal(model.coverage, ds.coverage.values, equal_nan=True)


def test_values_are_means_shares_and_month_means_of_the_valid_images() -> None:
    model = crafted([[0.0, 0.5, np.nan, 1.0], [0.2, 0.2, 0.6, np.nan]], [1, 1, 2, 3])
    assert patch_values(model, "coverage") == pytest.approx([0.5, 1 / 3])
    assert patch_values(model, "clear") == pytest.approx([1 / 3, 0.0])
    assert patch_values(model, "month", month=1) == pytest.approx([0.25, 0.2])
    feb = patch_values(model, "month", month=2)
    assert np.isnan(feb[0]) and feb[1] == pytest.approx(0.6)
    assert patch_values(model, "split").tolist() == ["train", "test"]


def test_colours_follow_the_ramp_and_the_figures_palettes(tiny: tuple) -> None:
    model = crafted([[0.0, 0.0], [1.0, 1.0]], [1, 2])
    ramp = colouring(model, "coverage")
    assert ramp.rgb.tolist() == [list(rgb(RAMP[0])), list(rgb(RAMP[-1]))]
    assert [label for label, _ in ramp.legend] == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    assert "fraction of the pixels" in ramp.units and "s2cloudless_mask" in ramp.title
    month = colouring(model, "month", month=3)  # no image in March: every patch without a value
    assert month.legend[-1] == ("no value", MISSING_COLOUR) and (month.rgb == rgb(MISSING_COLOUR)).all()
    regions = colouring(tiny[1], "region")
    assert dict(regions.legend) == {"africa": "#ff7f0e", "europa": "#1f77b4"}  # tab:orange, tab:blue
    assert regions.rgb[0].tolist() == [31, 119, 180] and regions.rgb[5].tolist() == [255, 127, 14]


def test_the_ramp_interpolates_between_stops() -> None:
    half = ramp_colours(np.array([1 / 18]))[0]  # halfway between the first two of ten stops
    expected = (np.array(rgb(RAMP[0])) + np.array(rgb(RAMP[1]))) / 2
    assert np.abs(half - expected).max() <= 0.5


def test_filters_keep_splits_regions_and_a_coverage_range(tiny: tuple) -> None:
    model = crafted([[0.1, 0.1], [0.9, 0.9], [0.5, 0.5], [np.nan, np.nan]], [1, 2])
    assert selected(model, Filters()).all()
    assert selected(model, Filters(splits=("train",))).tolist() == [True, False, True, False]
    assert selected(model, Filters(coverage=(0.4, 1.0))).tolist() == [False, True, True, False]
    assert not selected(model, Filters(regions=("africa",))).any()
    assert selected(tiny[1], Filters(regions=("africa",), splits=("test",))).tolist() == [False] * 3 + [True] * 3


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda m: Filters(splits=("tarin",)), "invalid split 'tarin': choose from train, val, test"),
        (lambda m: Filters(regions=("mars",)), "invalid region 'mars'"),
        (lambda m: Filters(coverage=(0.8, 0.2)), "invalid coverage range 0.8..0.2"),
        (lambda m: Filters(coverage=(0.0, float("nan"))), "invalid coverage range"),
        (lambda m: colouring(m, "cloudiness"), "invalid colour key 'cloudiness'"),
        (lambda m: colouring(m, "month", month=13), "invalid month 13: a month is 1 .. 12"),
        (lambda m: colouring(m, "coverage", detector="fmask"), "invalid detector 'fmask'"),
        (lambda m: hover_text(m, 6), "invalid patch 6: the cube's patches are 0 .. 5"),
        (lambda m: hover_text(m, True), "invalid patch True"),
    ],
)
def test_bad_choices_are_refused_in_one_line(tiny: tuple, call: object, words: str) -> None:
    with pytest.raises(ValueError, match="^" + words.replace("(", r"\(").replace(".", r"\.")) as err:
        call(tiny[1])  # type: ignore[operator]
    assert "\n" not in str(err.value)


def test_hover_names_roi_patch_split_region_and_coverage(tiny: tuple) -> None:
    ds, model = tiny
    mean = float(np.nanmean(ds.coverage.values[3, :, 0]))
    expected = f"ROIs2017/32 patch 333 | test | africa | mean coverage {100 * mean:.0f} % (s2cloudless_mask, 4 images)"
    assert hover_text(model, 3) == expected


def test_a_strip_has_every_step_with_dates_coverage_and_the_loader_s_pick(tiny: tuple) -> None:
    ds, model = tiny
    rule = functools.partial(choose_steps, n_input_samples=2)
    strip = patch_strip(ds, model, 4, detector="cloud_cloudshadow_mask", pick=rule)
    assert strip.s2_dates == [str(d)[:10] for d in ds.S2_date.values[4]]
    assert strip.s1_dates == [str(d)[:10] for d in ds.S1_date.values[4]]
    assert strip.detectors[0] == "cloud_cloudshadow_mask"
    assert np.array_equal(strip.coverage[:, 0], ds.coverage.values[4, :, 2], equal_nan=True)
    expected = choose_steps(ds.coverage.values[[4], :, 2], 2)
    assert strip.inputs == expected.inputs[0].tolist() and strip.target == expected.target[0]
    assert strip.caption(0) == f"{strip.s2_dates[0]} {ds.coverage.values[4, 0, 2]:.0%}"
    assert strip.s2.shape == (4, 32, 32, 3) and strip.s1.shape == (4, 32, 32)
    # the mask's border is drawn in the contour colour, nowhere else
    border = outline(ds.cloud_cloudshadow_mask.values[4] >= 1)
    assert (strip.s2[border] == rgb(CLOUD_COLOUR)).all()
    assert patch_strip(ds, model, 4).target is None


def test_thumbnails_shrink_by_block_means_and_outline_marks_borders() -> None:
    image = np.arange(16, dtype=float).reshape(4, 4)
    assert shrink(image, 2).tolist() == [[2.5, 4.5], [10.5, 12.5]]
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    ring = outline(mask)
    assert ring.sum() == 8 and not ring[2, 2]


def test_picks_leave_out_only_the_patches_the_rule_refuses() -> None:
    model = crafted([[0.5, 0.1, 0.3], [np.nan, np.nan, 0.2]], [1, 2, 3])
    inputs, target = picks(model, functools.partial(choose_steps, n_input_samples=2))
    # the target may be an input (min_cov 0, as in the original)
    assert target.tolist() == [1, -1] and inputs.tolist() == [[0, 1], [-1, -1]]
    assert picks(model, None)[1].tolist() == [-1, -1]


IMAGES = ("S1", "S2", "s2cloudless_mask", "s2cloudless_map", "s2cloudless_probability", "cloud_cloudshadow_mask")
"""The cube's image variables: a map reads none of them, a strip one patch's."""


def test_in_a_bucket_the_map_reads_no_image_and_a_strip_one_patch_s(s3: str, tiny_root: Path) -> None:
    from cube import convert
    from tests.servers import S3Proxy, create_bucket

    url = f"{create_bucket('explore')}/cube.zarr"
    convert(tiny_root, url, workers=1, progress=False)
    proxy = S3Proxy(s3)
    try:
        with proxy.counting() as opening:
            ds = open_cube(url, chunks=None, storage_options={"endpoint": proxy.url})
            model = map_model(ds)
        assert len(model) == 6
        opened = opening.keys()  # Traffic.keys: the requested keys, in order
        assert not [k for k in opened if k.split("/")[1] in IMAGES and "/c/" in k]
        with proxy.counting() as reads:
            strip = patch_strip(ds, model, 4)
        read = reads.keys()
        shards = {k for k in read if k.split("/")[1] in IMAGES and "/c/" in k}
        assert {k.split("/")[1] for k in shards} == {"S1", "S2", "s2cloudless_mask"}
        assert len({k.split("/c/")[1].split("/")[0] for k in shards}) == 1  # one patch's shards
        assert strip.s2_dates == [str(d)[:10] for d in ds.S2_date.values[4]]
    finally:
        proxy.close()
