"""Every kind of bad input gets a named error (on_error='fail') or a validity flag and report entry ('skip')."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.crs import CRS

from cube import ConversionError, IncompleteCubeError, convert, open_cube, patch_index
from cube.dataset.layout import scan_ts
from cube.dataset.rois import Roi
from cube.ingest import geotiff

ROI = Roi("ROIs1868", 17)


def _rewrite(path: Path, data: np.ndarray | None = None, **profile: object) -> None:
    with rasterio.open(path) as src:
        meta, pixels = src.profile, src.read()
    pixels = pixels if data is None else data
    meta.update(count=pixels.shape[0], height=pixels.shape[1], width=pixels.shape[2], dtype=pixels.dtype, **profile)
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(pixels)


def _file(root: Path, modality: str, t: int, index: int = 1) -> Path:
    mine = [f for f in scan_ts(root)[0] if f.roi == ROI and f.modality == modality and f.t == t]
    return mine[index].path


def missing_step(root: Path) -> tuple[Path, str, tuple[str, int]]:
    path = _file(root, "S2", 2)
    path.unlink()
    return path.parent, "no S2 file for patch", ("S2", 2)


def unpaired(root: Path) -> tuple[Path, str, tuple[str, int]]:
    for t in range(4):
        _file(root, "S1", t).unlink()
    return root / "ROIs1868/17/S1", "no S1 file (unpaired)", ("S1", -1)


def band_count(root: Path) -> tuple[Path, str, tuple[str, int]]:
    path = _file(root, "S2", 1)
    _rewrite(path, rasterio.open(path).read()[:12])
    return path, "has 12 bands, expected 13", ("S2", 1)


def size(root: Path) -> tuple[Path, str, tuple[str, int]]:
    path = _file(root, "S1", 3)
    _rewrite(path, rasterio.open(path).read()[:, :31])
    return path, "is 31 x 32 px", ("S1", 3)


def dtype(root: Path) -> tuple[Path, str, tuple[str, int]]:
    path = _file(root, "S2", 0)
    _rewrite(path, rasterio.open(path).read().astype(np.int32))
    return path, "has dtype int32, expected uint16", ("S2", 0)


def crs(root: Path) -> tuple[Path, str, tuple[str, int]]:
    path = _file(root, "S1", 2)
    epsg = rasterio.open(path).crs.to_epsg()
    _rewrite(path, crs=CRS.from_epsg(epsg + 1))
    return path, f"CRS EPSG:{epsg + 1} differs from EPSG:{epsg}", ("S1", 2)


def truncated(root: Path) -> tuple[Path, str, tuple[str, int]]:
    path = _file(root, "S2", 3)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path, "cannot be read as a GeoTIFF", ("S2", 3)


def bad_name(root: Path) -> tuple[Path, str, tuple[str, int]]:
    path = _file(root, "S1", 1)
    renamed = path.with_name(path.name.replace("_patch_", "_ptch_"))
    path.rename(renamed)
    return renamed, "file name does not follow", ("S1", 1)


KINDS: dict[str, Callable[[Path], tuple[Path, str, tuple[str, int]]]] = {
    f.__name__: f for f in (missing_step, unpaired, band_count, size, dtype, crs, truncated, bad_name)
}


@pytest.fixture
def broken_root(tiny_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "src"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("ground_truth"))
    return root


@pytest.mark.parametrize("kind", list(KINDS))
def test_fail_names_the_file_and_the_problem(broken_root: Path, tmp_path: Path, kind: str) -> None:
    where, problem, _ = KINDS[kind](broken_root)
    dst = tmp_path / "cube.zarr"
    with pytest.raises(ConversionError) as err:
        convert(broken_root, dst, workers=1, progress=False)
    assert str(where) in str(err.value) and problem in str(err.value)
    if dst.exists():  # found while reading pixels: the cube exists but is not marked complete
        with pytest.raises(IncompleteCubeError):
            open_cube(dst)


def test_skip_converts_the_rest_and_flags_every_gap(broken_root: Path, tiny_cube: Path, tmp_path: Path) -> None:
    clean = open_cube(tiny_cube)
    pids = sorted({f.pid for f in scan_ts(broken_root)[0] if f.roi == ROI})
    expected_gaps = {}
    for kind in ("missing_step", "band_count", "size", "dtype", "crs", "truncated", "bad_name"):
        where, problem, slot = KINDS[kind](broken_root)
        expected_gaps[slot] = (where, problem)
    report_path = tmp_path / "report.json"
    report = convert(
        broken_root, tmp_path / "cube.zarr", on_error="skip", report=report_path, workers=1, progress=False
    )
    ds = open_cube(tmp_path / "cube.zarr")
    p = patch_index(ds, ROI, pids[1])
    valid = ds.valid.values
    gaps = {(str(ds.modality.values[m]), int(t)) for t, m in zip(*np.nonzero(~valid[p]), strict=True)}
    assert gaps == set(expected_gaps)
    assert valid.sum() == valid.size - len(expected_gaps) and report.gaps == len(expected_gaps)
    saved = json.loads(report_path.read_text())
    for where, problem in expected_gaps.values():
        assert any(e["path"] == str(where) and problem in e["message"] for e in saved["problems"])
    located = {
        (e["modality"], e["time"]) for e in saved["problems"] if (e["roi"], e["patch_id"]) == (str(ROI), pids[1])
    }
    assert located == set(expected_gaps)  # every gap's problem names its patch slot by fields
    # the gaps hold the fill value, everything else is exactly the clean conversion
    for modality, t in expected_gaps:
        image = ds[modality].isel(patch=p, time=t).values
        assert np.isnan(image).all() if modality == "S1" else (image == 0).all()
    ok = ds.valid.sel(modality="S2")
    np.testing.assert_array_equal(ds.S2.where(ok, 0).values, clean.S2.where(ok, 0).values)


def test_skip_records_an_unpaired_patch(broken_root: Path, tmp_path: Path) -> None:
    unpaired(broken_root)
    convert(broken_root, tmp_path / "cube.zarr", on_error="skip", workers=1, progress=False)
    ds = open_cube(tmp_path / "cube.zarr")
    p = patch_index(ds, ROI, sorted({f.pid for f in scan_ts(broken_root)[0] if f.roi == ROI})[1])
    assert not ds.valid.sel(modality="S1").values[p].any()
    assert ds.valid.sel(modality="S2").values[p].all()


def test_non_finite_s2_is_refused(tmp_path: Path, tiny_root: Path) -> None:
    root = tmp_path / "src"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("ground_truth"))
    s2 = [f.path for f in scan_ts(root)[0] if f.modality == "S2"]
    for path in s2:  # a tree whose S2 files are float32, which the cube keeps as float32
        _rewrite(path, rasterio.open(path).read().astype(np.float32))
    data = rasterio.open(s2[5]).read()
    data[3, 4, 5] = np.inf
    _rewrite(s2[5], data)
    with pytest.raises(ConversionError, match=f"{s2[5]}: 1 NaN/inf values in S2"):
        convert(root, tmp_path / "cube.zarr", workers=1, progress=False)


def test_an_odd_first_file_does_not_impose_its_crs_or_dtype(broken_root: Path, tmp_path: Path) -> None:
    first = _file(broken_root, "S2", 0, index=0)  # the file headers are read from first
    epsg = rasterio.open(first).crs.to_epsg()
    _rewrite(first, rasterio.open(first).read().astype(np.int32), crs=CRS.from_epsg(epsg + 1))
    convert(broken_root, tmp_path / "cube.zarr", on_error="skip", workers=1, progress=False)
    ds = open_cube(tmp_path / "cube.zarr")
    assert ds.S2.dtype == np.uint16
    p = patch_index(ds, ROI, sorted({f.pid for f in scan_ts(broken_root)[0] if f.roi == ROI})[0])
    assert int(ds.epsg[p]) == epsg
    assert int((~ds.valid).sum()) == 1 and not bool(ds.valid.sel(modality="S2")[p, 0])


def test_the_tifffile_reader_converts_exactly_as_rasterio_alone(
    broken_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for kind in ("band_count", "crs", "truncated", "dtype", "size"):
        KINDS[kind](broken_root)
    cubes, reports = [], []
    for fast in (True, False):
        monkeypatch.setattr(geotiff, "FAST_READER", fast)
        dst = tmp_path / f"cube_{fast}.zarr"
        reports.append(convert(broken_root, dst, on_error="skip", workers=1, progress=False).problems)
        cubes.append(open_cube(dst))
    assert reports[0] == reports[1] and len(reports[0]) == 5
    assert int((~cubes[0].valid).sum()) == 5
    xr.testing.assert_identical(cubes[0].drop_attrs(deep=False), cubes[1].drop_attrs(deep=False))
    assert {k: v for k, v in cubes[0].attrs.items() if k != "history"} == {
        k: v for k, v in cubes[1].attrs.items() if k != "history"
    }
