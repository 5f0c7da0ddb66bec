"""The cube's schema (cube.store.schema): chunks and shards, dimensions, per-patch labels and the lazy template."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest

from cube.dataset.bands import S1_BANDS, S2_BANDS
from cube.dataset.rois import Roi
from cube.store.schema import (
    DESCRIPTIONS,
    SPECS,
    TABLE_CHUNK,
    PatchMeta,
    encoding,
    image_chunk,
    image_dims,
    patch_variables,
    pixel_offsets,
    template,
)

DTYPES = {"S1": np.dtype("float32"), "S2": np.dtype("uint16"), "S2_cloudy": np.dtype("uint16")}
TS, CR = SPECS["sen12mscrts"], SPECS["sen12mscr"]


def _patch(roi: str, pid: int, times: int = 3, missing: tuple = ()) -> PatchMeta:
    """A patch with dates and paths at every step but the (modality, step) pairs in ``missing``."""
    keys = [(m, t) for m in ("S1", "S2", "S2_cloudy") for t in range(times) if (m, t) not in missing]
    return PatchMeta(
        Roi.parse(roi),
        pid,
        32633,
        (10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0),
        {k: dt.date(2018, 1, 1 + 10 * k[1]) for k in keys},
        {k: f"{k[0]}/{k[1]}/p{pid}.tif" for k in keys},
    )


@pytest.mark.parametrize(
    ("size", "tile", "message"),
    [
        (256, 100, "invalid tile 100 px: it must divide the patch size (256 px)"),
        (64, 0, "invalid tile 0 px: it must divide the patch size (64 px)"),
    ],
)
def test_a_tile_that_does_not_divide_the_patch_is_one_line(size: int, tile: int, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        image_chunk(size, tile)
    assert "\n" not in str(err.value)


def test_a_temporal_shard_is_all_steps_of_one_patch_and_a_chunk_one_tile_of_one_step() -> None:
    enc = encoding(TS, times=30, size=256, dtypes=DTYPES, tile=128)
    assert enc["S2"]["chunks"] == (1, 1, 13, 128, 128) and enc["S2"]["shards"] == (1, 30, 13, 256, 256)
    assert enc["S1"]["chunks"] == (1, 1, 2, 128, 128) and enc["S1"]["shards"] == (1, 30, 2, 256, 256)
    assert enc["valid"] == {"chunks": (TABLE_CHUNK, 30, 2)}
    assert enc["S1"]["compressors"][0].typesize == 4 and enc["S2"]["compressors"][0].typesize == 2


def test_a_mono_temporal_image_is_one_chunk_and_its_cloudy_s2_has_s2_s_bands() -> None:
    enc = encoding(CR, times=1, size=256, dtypes=DTYPES)
    assert enc["S2_cloudy"] == {"chunks": (1, 13, 256, 256), "compressors": enc["S2_cloudy"]["compressors"]}
    assert "shards" not in enc["S2"] and enc["S1"]["chunks"] == (1, 2, 256, 256)
    assert enc["valid"] == {"chunks": (TABLE_CHUNK, 3)}
    assert image_dims(CR, "S2_cloudy") == ("patch", "S2_band", "y", "x")
    assert image_dims(TS, "S1") == ("patch", "time", "S1_band", "y", "x")


def test_pixel_offsets_are_centres_in_metres_north_up() -> None:
    coords = pixel_offsets(4)
    assert coords["x"][1].tolist() == [5.0, 15.0, 25.0, 35.0]
    assert coords["y"][1].tolist() == [35.0, 25.0, 15.0, 5.0]  # rows run south
    assert coords["y"][2]["units"] == coords["x"][2]["units"] == "m"


def test_patch_labels_come_from_the_roi_tables_and_gaps_are_nat_and_empty() -> None:
    patches = [_patch("ROIs1868/17", 5), _patch("ROIs2017/32", 2, missing=(("S1", 1),))]
    ds = patch_variables(TS, patches, times=3)
    assert ds.roi_group.values.tolist() == ["ROIs1868", "ROIs2017"] and ds.roi.values.tolist() == [17, 32]
    assert ds.split.values.tolist() == ["val", "test"] and ds.region.values.tolist() == ["europa", "africa"]
    assert ds.patch_id.values.tolist() == [5, 2] and ds.epsg.values.tolist() == [32633, 32633]
    assert np.isnat(ds.S1_date.values[1, 1]) and ds.S1_date.values[1, 2] == np.datetime64("2018-01-21")
    assert ds.S1_path.values[1].tolist() == ["S1/0/p2.tif", "", "S1/2/p2.tif"]
    assert ds.transform.values[0].tolist() == [10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0]


def test_the_template_allocates_nothing_and_describes_its_images() -> None:
    ds = template(
        TS, [_patch("ROIs1868/17", 1), _patch("ROIs1868/17", 2)], times=3, size=8, dtypes=DTYPES, attrs={"title": "t"}
    )
    assert ds.S2.shape == (2, 3, 13, 8, 8) and ds.S2.dtype == np.uint16 and ds.S1.dtype == np.float32
    assert ds.S2.chunks is not None and ds.valid.dims == ("patch", "time", "modality")  # dask: never computed
    assert ds.S2_band.values.tolist() == list(S2_BANDS) and ds.S1_band.values.tolist() == list(S1_BANDS)
    assert ds.S2.attrs == DESCRIPTIONS["S2"] and ds.S2.attrs["reflectance_scale"] == 10000.0
    assert ds.S2_wavelength.values[0] == pytest.approx(442.7) and ds.attrs == {"title": "t"}


def test_the_mono_temporal_template_has_no_time() -> None:
    ds = template(CR, [_patch("ROIs1158/106", 407, times=1)], times=1, size=8, dtypes=DTYPES, attrs={})
    assert "time" not in ds.dims and ds.S2_cloudy.shape == (1, 13, 8, 8)
    assert ds.S2_cloudy_path.values.tolist() == ["S2_cloudy/0/p407.tif"] and "S2_date" not in ds
