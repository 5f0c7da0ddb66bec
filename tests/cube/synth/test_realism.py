"""The synthetic scenes behave like Sentinel data where detectors and models look."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from cube import open_cube, patch_index
from cube.dataset.layout import scan_ts
from cube.synth import open_truth
from cube.synth.scene import BARE, CROP, FOREST, URBAN, WATER


def _ndvi(s2: np.ndarray) -> np.ndarray:
    nir, red = s2[..., 7, :, :].astype(float), s2[..., 3, :, :].astype(float)
    return (nir - red) / (nir + red)


def test_land_cover_spectra(synthetic_root: Path) -> None:
    truth = open_truth(synthetic_root)
    cover = truth.land_cover.values
    clear = truth.s2_clear.isel(time=15).values  # summer
    per_pixel_ndvi = _ndvi(clear)
    assert per_pixel_ndvi[cover == WATER].mean() < 0
    assert per_pixel_ndvi[cover == FOREST].mean() > 0.5
    assert 0 < per_pixel_ndvi[cover == URBAN].mean() < 0.3
    swir = clear[:, 11]
    assert swir[cover == BARE].mean() > swir[cover == FOREST].mean()


def test_crops_green_up_and_down_over_the_year(synthetic_root: Path) -> None:
    truth = open_truth(synthetic_root)
    ndvi = _ndvi(truth.s2_clear.values)  # (patch, time, y, x)
    crop = truth.land_cover.values == CROP
    series = np.array([ndvi[:, t][crop].mean() for t in range(30)])
    assert series.max() - series.min() > 0.15
    per_pixel_range = (ndvi.max(axis=1) - ndvi.min(axis=1))[crop]
    assert np.median(per_pixel_range) > 0.3


def test_cloud_coverage_ranges_from_clear_to_overcast(synthetic_root: Path) -> None:
    coverage = open_truth(synthetic_root).cloud.mean(dim=("y", "x")).values.ravel()
    assert 0.15 < (coverage < 0.01).mean() < 0.6  # a realistic share of clear images
    assert (coverage > 0.95).mean() > 0.05
    assert ((coverage > 0.1) & (coverage < 0.9)).mean() > 0.2
    assert 0.2 < coverage.mean() < 0.6


def test_shadows_are_dark_and_displaced_from_their_clouds(synthetic_root: Path) -> None:
    truth = open_truth(synthetic_root)
    files, _ = scan_ts(synthetic_root)
    cloud, shadow = truth.cloud.values, truth.shadow.values
    assert 0.005 < shadow.mean() < 0.1
    assert not (cloud & shadow).any()
    # Shadowed ground is darker in the NIR than the same ground without shadow.
    p, t = np.unravel_index(np.argmax(shadow.mean(axis=(2, 3))), shadow.shape[:2])
    f = next(
        f
        for f in files
        if f.modality == "S2" and f.t == t and f.roi.number == int(truth.roi[p]) and f.pid == int(truth.patch_id[p])
    )
    written = rasterio.open(f.path).read()[7].astype(float)
    clear = truth.s2_clear.values[p, t, 7].astype(float)
    assert np.median(written[shadow[p, t]] / clear[shadow[p, t]]) < 0.7


def test_radar_follows_land_cover_not_clouds(synthetic_root: Path) -> None:
    truth = open_truth(synthetic_root)
    files, _ = scan_ts(synthetic_root)
    by_patch = {(f.roi.number, f.pid): f for f in files if f.modality == "S1" and f.t == 10}
    cover = truth.land_cover.values
    vv = np.stack(
        [
            rasterio.open(by_patch[(int(r), int(p))].path).read(1)
            for r, p in zip(truth.roi.values, truth.patch_id.values, strict=True)
        ]
    )
    assert np.nanmedian(vv[cover == URBAN]) - np.nanmedian(vv[cover == WATER]) > 10
    assert np.nanmedian(vv[cover == FOREST]) > np.nanmedian(vv[cover == BARE])


def test_s2cloudless_with_toolbox_parameters_finds_the_clouds(synthetic_root: Path, default_cube: Path) -> None:
    # The cube's s2cloudless masks are the detector's output (tests/cube/clouds/test_compute.py checks that).
    truth = open_truth(synthetic_root)
    ds = open_cube(default_cube)
    order = [
        patch_index(ds, f"{g}/{r}", int(p))
        for g, r, p in zip(truth.roi_group.values, truth.roi.values, truth.patch_id.values, strict=True)
    ]
    detected = ds.s2cloudless_mask.values[order] == 1
    true = truth.cloud.values
    assert (detected & true).sum() / (detected | true).sum() >= 0.6
