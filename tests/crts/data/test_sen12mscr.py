"""Mono-temporal SEN12MS-CR samples from a cube of that layout, checked against its GeoTIFFs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from crts.data import SEN12MSCR, SEN12MSCRTS
from cube import convert
from cube.clouds.detectors import cloud_cloudshadow_mask
from cube.synth import make_dataset


def test_mono_temporal_samples(tmp_path: Path, sampling_cube: Path) -> None:
    root = make_dataset(
        tmp_path / "cr",
        ["ROIs1158/106", "ROIs1868/17"],
        patches_per_roi=2,
        size=32,
        layout="sen12mscr",
        workers=1,
        progress=False,
    )
    convert(root, tmp_path / "cr.zarr", workers=1, progress=False)
    data = SEN12MSCR(tmp_path / "cr.zarr", split="test", cloud_masks="cloud_cloudshadow_mask")
    assert len(data) == 2
    sample = data[1]
    cloudy = rasterio.open(sample["input"]["S2 path"]).read()
    assert "s2_cloudy" in sample["input"]["S2 path"] and "_s2_cloudy" not in sample["target"]["S2 path"]
    np.testing.assert_allclose(sample["input"]["S2"], np.clip(cloudy, 0, 10000) / 10000, rtol=1e-6)
    np.testing.assert_array_equal(sample["input"]["masks"], cloud_cloudshadow_mask(cloudy))
    clear = rasterio.open(sample["target"]["S2 path"]).read()
    np.testing.assert_allclose(sample["target"]["S2"], np.clip(clear, 0, 10000) / 10000, rtol=1e-6)
    assert sample["input"]["coord"] == pytest.approx(list(rasterio.open(sample["input"]["S1 path"]).bounds))
    # the original's rule: listed scene s1_1 of ROIs1158 takes s1_106 into 'train' as well
    assert len(SEN12MSCR(tmp_path / "cr.zarr", split="train", cloud_masks=None)) == 2
    assert len(SEN12MSCR(tmp_path / "cr.zarr", split="train", exact_scenes=True)) == 0
    assert len(SEN12MSCR(tmp_path / "cr.zarr", split="val", region="europa")) == 2
    with pytest.raises(ValueError, match="use SEN12MSCRTS"):
        SEN12MSCR(sampling_cube)
    with pytest.raises(ValueError, match="use SEN12MSCR for it"):
        SEN12MSCRTS(tmp_path / "cr.zarr")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("cloud_masks", "clouds", "invalid cloud_masks 'clouds': choose from"),
        ("rescale_method", "none", "invalid rescale_method 'none': choose from"),
    ],
)
def test_a_bad_option_is_one_line(sampling_cube: Path, option: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}[^\n]*$"):
        SEN12MSCR(sampling_cube, **{option: value})
