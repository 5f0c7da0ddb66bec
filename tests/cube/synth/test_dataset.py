"""The synthetic tree is indistinguishable in layout from the real data set."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cube.dataset.layout import scan_cr, scan_ts
from cube.dataset.rois import Roi, select_rois
from cube.synth import DEFAULT_ROIS, make_dataset, open_truth


def test_every_file_name_parses_and_the_tree_is_complete(synthetic_root: Path) -> None:
    files, problems = scan_ts(synthetic_root)
    assert problems == []
    assert len(files) == len(DEFAULT_ROIS) * 2 * 30 * 2
    per_patch = Counter((f.roi, f.pid, f.modality) for f in files)
    assert set(per_patch.values()) == {30}
    assert {f.roi for f in files} == {Roi.parse(r) for r in DEFAULT_ROIS}
    assert {f.t for f in files} == set(range(30))


def test_every_geotiff_has_the_real_band_count_dtype_size_and_crs(synthetic_root: Path) -> None:
    files, _ = scan_ts(synthetic_root)
    epsg_per_roi: dict[Roi, set[int]] = {}
    for f in files:
        with rasterio.open(f.path) as src:
            assert (src.count, src.dtypes[0]) == ((2, "float32") if f.modality == "S1" else (13, "uint16"))
            assert (src.width, src.height) == (256, 256)
            assert src.res == (10.0, 10.0)
            assert src.transform.b == src.transform.d == 0
            epsg = src.crs.to_epsg()
            assert 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760
            epsg_per_roi.setdefault(f.roi, set()).add(epsg)
    assert all(len(codes) == 1 for codes in epsg_per_roi.values())


def test_patches_of_an_roi_are_neighbours_sharing_s1_and_s2_georeference(synthetic_root: Path) -> None:
    files, _ = scan_ts(synthetic_root)
    for roi in {f.roi for f in files}:
        bounds = {}
        for f in files:
            if f.roi == roi and f.t == 0:
                with rasterio.open(f.path) as src:
                    bounds.setdefault(f.pid, set()).add(tuple(src.bounds))
        assert all(len(b) == 1 for b in bounds.values())  # S1 and S2 cover the same ground
        (a, b) = sorted(bounds)
        left, right = bounds[a].pop(), bounds[b].pop()
        assert b == a + 1
        assert right[0] == left[2] and right[1] == left[1]  # edge to edge, 2.56 km wide
        assert left[2] - left[0] == 2560


def test_dates_spread_over_2018_and_differ_between_s1_and_s2(synthetic_root: Path) -> None:
    files, _ = scan_ts(synthetic_root)
    dates = {(f.roi, f.modality, f.t): f.date for f in files}
    roi = Roi("ROIs1868", 17)
    s2 = [dates[(roi, "S2", t)] for t in range(30)]
    s1 = [dates[(roi, "S1", t)] for t in range(30)]
    assert s2 == sorted(s2)
    assert all(d.year == 2018 for d in s1 + s2)
    assert s2[0] < dt.date(2018, 1, 20) and s2[-1] > dt.date(2018, 12, 1)
    gaps = [abs((a - b).days) for a, b in zip(s1, s2, strict=True)]
    assert all(1 <= g <= 5 for g in gaps)


def test_values_are_in_the_real_ranges(synthetic_root: Path) -> None:
    files, _ = scan_ts(synthetic_root)
    s2 = np.stack([rasterio.open(f.path).read() for f in files if f.modality == "S2" and f.t % 3 == 0])
    s1 = np.stack([rasterio.open(f.path).read() for f in files if f.modality == "S1" and f.t % 3 == 0])
    assert np.median(s2) > 500 and np.percentile(s2, 1) > 0
    assert (s2 > 10000).any()  # bright cloud tops exceed the nominal range, as in the real data
    vv, vh = s1[:, 0], s1[:, 1]
    assert -25 < np.nanmedian(vv) < 0 and -32.5 < np.nanmedian(vh) < np.nanmedian(vv)
    assert np.isfinite(s1).mean() > 0.9


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    def digest(root: Path) -> str:
        h = hashlib.sha256()
        for f in scan_ts(root)[0]:
            with rasterio.open(f.path) as src:
                h.update(f.path.relative_to(root).as_posix().encode())
                h.update(src.read().tobytes())
        return h.hexdigest()

    kwargs = {"rois": ["ROIs1970/21"], "patches_per_roi": 2, "size": 32, "times": 3, "progress": False}
    a = make_dataset(tmp_path / "a", seed=1, workers=1, **kwargs)
    b = make_dataset(tmp_path / "b", seed=1, workers=2, **kwargs)
    c = make_dataset(tmp_path / "c", seed=2, workers=1, **kwargs)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_official_splits_select_the_expected_rois(synthetic_root: Path) -> None:
    present = {f.roi for f in scan_ts(synthetic_root)[0]}

    def chosen(split: str, region: str = "all") -> list[str]:
        return [str(r) for r in select_rois(split, region) if r in present]

    assert chosen("train") == ["ROIs1868/56", "ROIs1970/21"]
    assert chosen("val") == ["ROIs1868/17"]
    assert chosen("test") == ["ROIs2017/63"]
    assert chosen("all", "europa") == ["ROIs1868/17", "ROIs1868/56", "ROIs2017/63"]
    assert chosen("train", "africa") == ["ROIs1970/21"]
    assert chosen("test", "africa") == []


def test_truth_is_aligned_with_the_tree(tiny_root: Path) -> None:
    truth = open_truth(tiny_root)
    files, _ = scan_ts(tiny_root)
    assert truth.sizes == {"patch": 6, "time": 4, "band": 13, "y": 32, "x": 32}
    assert list(truth.roi.values) == [17, 17, 17, 32, 32, 32]
    assert truth.cloud.dtype == bool and truth.s2_clear.dtype == np.uint16
    assert not (truth.cloud & truth.shadow).any()
    s2_dates = {(f.roi.number, f.pid, f.t): f.date for f in files if f.modality == "S2"}
    for p in range(6):
        key = (int(truth.roi[p]), int(truth.patch_id[p]))
        for t in range(4):
            assert truth.s2_date[p, t].values.astype("datetime64[D]").item() == s2_dates[(*key, t)]
    # The written image is the cloud-free truth where no cloud or shadow is, and much brighter under clouds.
    written = np.stack(
        [
            np.stack(
                [
                    rasterio.open(f.path).read()
                    for f in files
                    if f.modality == "S2" and (f.roi.number, f.pid) == (int(truth.roi[p]), int(truth.patch_id[p]))
                ]
            )
            for p in range(6)
        ]
    ).astype(int)
    clear = truth.s2_clear.values.astype(int)
    cloud, shadow = truth.cloud.values, truth.shadow.values
    free = ~(cloud | shadow)
    blue = (written - clear)[:, :, 1]
    assert np.median(np.abs(blue[free])) <= 100
    assert np.median(blue[cloud]) > 1500


def test_manifest_records_the_parameters(tiny_root: Path) -> None:
    manifest = json.loads((tiny_root / "synthetic.json").read_text())
    assert manifest["complete"] is True
    assert manifest["rois"] == ["ROIs1868/17", "ROIs2017/32"]
    assert (manifest["size"], manifest["times"], manifest["seed"]) == (32, 4, 7)


def test_mono_temporal_layout(tmp_path: Path) -> None:
    root = make_dataset(
        tmp_path / "cr",
        ["ROIs1158/106", "ROIs2017/63"],
        patches_per_roi=2,
        size=32,
        layout="sen12mscr",
        workers=1,
        progress=False,
    )
    files, problems = scan_cr(root)
    assert problems == []
    assert Counter(f.kind for f in files) == {"s1": 4, "s2": 4, "s2_cloudy": 4}
    assert (root / "ROIs1158_spring_s2_cloudy" / "s2_cloudy_106").is_dir()
    assert (root / "ROIs2017_winter_s1" / "s1_63").is_dir()
    truth = open_truth(root)
    assert truth.sizes["time"] == 1 and truth.cloud.mean() > 0.02
    for f in files:
        with rasterio.open(f.path) as src:
            assert src.count == (2 if f.kind == "s1" else 13)


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match=r"not empty.*--overwrite"):
        make_dataset(tmp_path, ["ROIs1970/21"], size=16, times=1, progress=False)
    with pytest.raises(FileExistsError, match="not made by this generator"):
        make_dataset(tmp_path, ["ROIs1970/21"], size=16, times=1, overwrite=True, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_overwrite_replaces_a_synthetic_set(tmp_path: Path) -> None:
    kwargs = {"size": 16, "times": 2, "workers": 1, "progress": False}
    make_dataset(tmp_path, ["ROIs1970/21"], **kwargs)
    make_dataset(tmp_path, ["ROIs2017/63"], overwrite=True, **kwargs)
    assert {f.roi for f in scan_ts(tmp_path)[0]} == {Roi("ROIs2017", 63)}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rois": ["ROIs1868/18"]}, "invalid ROI 'ROIs1868/18'"),
        ({"size": 8}, "invalid size 8"),
        ({"times": 31}, "invalid times 31"),
        ({"layout": "sen12ms"}, "invalid layout 'sen12ms'"),
        ({"rois": ["ROIs1868/17", "1868/17"]}, "names an ROI twice"),
    ],
)
def test_invalid_arguments_name_the_bad_value(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_dataset(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()
