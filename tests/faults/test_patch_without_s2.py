"""A patch that keeps no S2 image at all reads as a gap in every cloud variable, never as clear sky."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cube import convert, open_cube, patch_index
from cube.dataset.layout import scan_ts
from cube.dataset.rois import Roi

pytestmark = pytest.mark.faults

ROI = Roi("ROIs2017", 32)


@pytest.mark.parametrize("how", ["broken", "missing"])
def test_masks_of_a_patch_without_s2_are_gaps(tiny_root: Path, tmp_path: Path, how: str) -> None:
    src = tmp_path / "src"
    shutil.copytree(tiny_root, src, ignore=shutil.ignore_patterns("ground_truth"))
    pid = sorted({f.pid for f in scan_ts(src)[0] if f.roi == ROI})[1]
    for f in scan_ts(src)[0]:
        if f.roi == ROI and f.pid == pid and f.modality == "S2":
            f.path.write_bytes(b"broken") if how == "broken" else f.path.unlink()
    convert(src, tmp_path / "c.zarr", on_error="skip", workers=1, progress=False)
    ds = open_cube(tmp_path / "c.zarr")
    p = patch_index(ds, ROI, pid)
    assert not ds.valid.sel(modality="S2").values[p].any()
    assert ds.valid.sel(modality="S2").values.sum() == ds.valid.sel(modality="S2").size - ds.sizes["time"]
    one = ds.isel(patch=p).load()
    assert (one.s2cloudless_mask.values == 255).all() and (one.cloud_cloudshadow_mask.values == 255).all()
    assert np.isnan(one.s2cloudless_probability.values).all() and np.isnan(one.s2cloudless_map.values).all()
    assert np.isnan(one.coverage.values).all()
    others = ds.drop_isel(patch=[p])
    assert not (others.cloud_cloudshadow_mask == 255).any() and not others.s2cloudless_probability.isnull().any()
