"""The cube dataset gives the original loader's samples: checked against the rules run on the GeoTIFFs."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import rasterio

from crts.data import SEN12MSCRTS
from crts.data.index_files import UnsafeIndexFileError, load_npy_index
from cube.clouds.detectors import (
    cloud_cloudshadow_mask,
    s2cloudless_map,
    s2cloudless_mask,
    s2cloudless_probability,
)
from cube.dataset.layout import scan_ts
from cube.dataset.rois import Roi, select_rois
from cube.synth.hollow import make_hollow

SOURCE_CACHE: dict = {}


def _patches_in_order(root: Path, split: str, region: str) -> list[tuple]:
    """(roi, pid) of the selection in the original's order, from the file tree alone."""
    files = scan_ts(root)[0]
    present = {(f.roi, f.pid) for f in files}
    return [(roi, pid) for roi in select_rois(split, region) for pid in sorted({p for r, p in present if r == roi})]


def _coverage_from_geotiffs(root: Path, roi: Roi, pid: int, detector: str | None) -> np.ndarray:
    key = (roi, pid, detector)
    if key not in SOURCE_CACHE:
        files = sorted(
            (f for f in scan_ts(root)[0] if (f.roi, f.pid) == (roi, pid) and f.modality == "S2"), key=lambda f: f.t
        )
        values = []
        for f in files:
            s2 = rasterio.open(f.path).read()
            if detector == "s2cloudless_mask":
                values.append(s2cloudless_mask(s2).mean())
            elif detector == "s2cloudless_map":
                values.append(s2cloudless_map(s2cloudless_probability(s2)).mean())
            else:
                values.append(cloud_cloudshadow_mask(s2).mean())
        SOURCE_CACHE[key] = np.array(values)
    return SOURCE_CACHE[key]


def _rules(coverage: np.ndarray, n: int, min_cov: float, max_cov: float) -> tuple[list[int], int, bool]:
    """The sampling rules written out plainly (docs/reference.md §5 Sampling)."""
    target = int(np.argsort(coverage, kind="stable")[0])
    inside = [t for t in range(len(coverage)) if min_cov <= coverage[t] <= max_cov]
    if len(inside) >= n:
        return inside[:n], target, True
    return [t for t in range(len(coverage)) if t != target][:n], target, False


@pytest.mark.parametrize(
    ("cloud_masks", "n", "min_cov", "max_cov", "split", "region"),
    [
        ("s2cloudless_mask", 3, 0.0, 1.0, "all", "all"),
        ("s2cloudless_mask", 2, 0.1, 0.5, "train", "all"),
        ("s2cloudless_map", 4, 0.0, 0.05, "test", "europa"),
        ("cloud_cloudshadow_mask", 3, 0.2, 0.6, "val", "all"),
        ("cloud_cloudshadow_mask", 2, 0.95, 1.0, "all", "africa"),
        ("s2cloudless_mask", 4, 0.0, 0.3, "train", "europa"),
    ],
)
def test_indices_follow_the_rules_on_the_geotiffs(
    sampling_cube: Path, cloud_masks: str, n: int, min_cov: float, max_cov: float, split: str, region: str
) -> None:
    root = sampling_cube.parent / "SEN12MSCRTS"
    data = SEN12MSCRTS(
        sampling_cube,
        split=split,
        region=region,
        cloud_masks=cloud_masks,
        n_input_samples=n,
        min_cov=min_cov,
        max_cov=max_cov,
    )
    expected = _patches_in_order(root, split, region)
    assert [(lab.roi, lab.patch_id) for lab in data.labels] == list(expected)
    for pdx, (roi, pid) in enumerate(expected):
        inputs, target, in_bin = _rules(_coverage_from_geotiffs(root, roi, pid, cloud_masks), n, min_cov, max_cov)
        assert data.index.inputs[pdx].tolist() == inputs
        assert data.index.target[pdx] == target
        assert data.index.coverage_bin[pdx] == in_bin


def test_fallback_happens_in_these_cases(sampling_cube: Path) -> None:
    strict = SEN12MSCRTS(sampling_cube, cloud_masks="s2cloudless_mask", n_input_samples=4, min_cov=0.0, max_cov=0.01)
    assert not strict.index.coverage_bin.all() and strict.index.coverage_bin.any()


def test_arrays_equal_the_scaled_geotiffs(sampling_cube: Path) -> None:
    for method, s2_div in (("default", 10000), ("resnet", 2000)):
        data = SEN12MSCRTS(sampling_cube, split="test", cloud_masks="cloud_cloudshadow_mask", rescale_method=method)
        sample = data[1]
        for part in ("input", "target"):
            for k, path in enumerate(sample[part]["S2 path"]):
                s2 = rasterio.open(path).read()
                np.testing.assert_allclose(sample[part]["S2"][k], np.clip(s2, 0, 10000) / s2_div, rtol=1e-6)
                np.testing.assert_array_equal(sample[part]["masks"][k], cloud_cloudshadow_mask(s2))
                assert sample[part]["coverage"][k] == pytest.approx(cloud_cloudshadow_mask(s2).mean(), abs=1e-6)
                with rasterio.open(sample[part]["S1 path"][k]) as src:
                    s1 = src.read()
                    assert sample[part]["coord"][k] == pytest.approx(list(rasterio.open(path).bounds))
                if method == "default":
                    expected = np.nan_to_num((np.clip(s1, -25, 0) + 25) / 25)
                else:
                    expected = np.nan_to_num(
                        np.stack([(np.clip(s1[0], -25, 0) + 25) / 25 * 2, (np.clip(s1[1], -32.5, 0) + 32.5) / 32.5 * 2])
                    )
                np.testing.assert_allclose(sample[part]["S1"][k], expected, rtol=1e-5, atol=1e-6)
    assert set(sample) == {"input", "target", "coverage bin"}
    assert len(sample["input"]["S2"]) == 3 and len(sample["target"]["S2"]) == 1
    assert sample["input"]["S2"][0].dtype == np.float32 and sample["input"]["masks"][0].shape == (32, 32)


def test_dates_are_days_since_the_s1_launch(sampling_cube: Path) -> None:
    sample = SEN12MSCRTS(sampling_cube, split="val")[0]
    for td, path in zip(sample["input"]["S2 TD"], sample["input"]["S2 path"], strict=True):
        date = np.datetime64(Path(path).name.split("_")[5])
        assert td == (date - np.datetime64("2014-04-03")).astype(int)


def test_generic_and_no_detector_give_the_whole_series(sampling_cube: Path) -> None:
    series = SEN12MSCRTS(sampling_cube, split="val", cloud_masks=None)[0]
    assert len(series["S2"]) == 10 and series["idx"] == list(range(10))
    assert all((m == 1).all() for m in series["masks"])
    generic = SEN12MSCRTS(sampling_cube, split="val", sample_type="generic")[0]
    assert generic["coverage"] == pytest.approx([float(m.mean()) for m in generic["masks"]], abs=1e-6)


@pytest.mark.parametrize("suffix", [".npy", ".json"])
def test_index_export_then_import_round_trips(sampling_cube: Path, tmp_path: Path, suffix: str) -> None:
    exported = SEN12MSCRTS(
        sampling_cube,
        split="train",
        n_input_samples=2,
        min_cov=0.1,
        max_cov=0.5,
        export_data_path=tmp_path / f"index{suffix}",
    )
    imported = SEN12MSCRTS(
        sampling_cube, split="train", n_input_samples=2, import_data_path=tmp_path / f"index{suffix}"
    )
    np.testing.assert_array_equal(imported.index.inputs, exported.index.inputs)
    np.testing.assert_array_equal(imported.index.target, exported.index.target)
    for a, b in zip(imported[2]["input"]["S2"], exported[2]["input"]["S2"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_original_file_names_and_format(sampling_cube: Path, tmp_path: Path) -> None:
    data = SEN12MSCRTS(sampling_cube, split="test", export_data_path=tmp_path)
    written = tmp_path / "3_test_s2cloudless_mask.npy"
    content = np.load(written, allow_pickle=True).item()  # what the original toolbox reads
    assert sorted(content) == list(range(len(data)))
    assert isinstance(content[0]["input"], list) and isinstance(content[0]["target"], np.int64)
    assert load_npy_index(written)[1]["target"] == int(data.index.target[1])
    again = SEN12MSCRTS(sampling_cube, split="test", import_data_path=tmp_path)
    np.testing.assert_array_equal(again.index.inputs, data.index.inputs)


def test_an_index_of_other_patches_is_refused(sampling_cube: Path, tmp_path: Path) -> None:
    SEN12MSCRTS(sampling_cube, split="train", export_data_path=tmp_path / "train.npy")
    with pytest.raises(ValueError, match=r"samples are pdx 0..2; the file has pdx 3, 4, 5 in excess"):
        SEN12MSCRTS(sampling_cube, split="val", import_data_path=tmp_path / "train.npy")
    with pytest.raises(ValueError, match="sample 0 refers to ROIs1868/56 patch"):
        SEN12MSCRTS(sampling_cube, split="test", import_data_path=tmp_path / "train.npy")
    content = np.load(tmp_path / "train.npy", allow_pickle=True).item()
    content[0], content[1] = content[1], content[0]
    np.save(tmp_path / "swapped.npy", content, allow_pickle=True)
    with pytest.raises(ValueError, match="sample 0 refers to"):
        SEN12MSCRTS(sampling_cube, split="train", import_data_path=tmp_path / "swapped.npy")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))  # would create the marker file when unpickled


def test_a_malicious_index_file_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    crafted = tmp_path / "3_test_s2cloudless_mask.npy"
    header = {"descr": "|O", "fortran_order": False, "shape": ()}
    with crafted.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        pickle.dump({0: {"input": [0, 1, 2], "target": _Payload(marker)}}, f, protocol=3)
    with pytest.raises(UnsafeIndexFileError, match=r"refused: refers to io.open"):
        load_npy_index(crafted)
    assert not marker.exists()


def test_index_export_creates_missing_folders(sampling_cube: Path, tmp_path: Path) -> None:
    SEN12MSCRTS(sampling_cube, split="test", export_data_path=tmp_path / "new" / "indices")
    SEN12MSCRTS(sampling_cube, split="test", export_data_path=tmp_path / "other" / "idx.json")
    assert (tmp_path / "new" / "indices" / "3_test_s2cloudless_mask.npy").is_file()
    assert (tmp_path / "other" / "idx.json").is_file()


def test_a_worker_receives_the_selection_compressed_and_reads_the_same_samples(
    sampling_cube: Path, tmp_path: Path
) -> None:
    samples = SEN12MSCRTS(sampling_cube, split="all", cloud_masks="s2cloudless_mask", n_input_samples=3)
    samples[0]  # reads the paths, which stay behind
    back = pickle.loads(pickle.dumps(samples))
    assert back._paths is None and back.labels == samples.labels
    for name in ("positions", "s1_td", "s2_td", "coords", "valid", "coverage"):
        np.testing.assert_array_equal(getattr(back, name), getattr(samples, name))
        assert getattr(back, name).dtype == getattr(samples, name).dtype
    for i in (0, len(samples) - 1):
        got, want = back[i], samples[i]
        assert got["input"]["idx"] == want["input"]["idx"] and got["input"]["S1 path"] == want["input"]["S1 path"]
        np.testing.assert_array_equal(np.stack(got["input"]["S2"]), np.stack(want["input"]["S2"]))
    hollow = SEN12MSCRTS(
        make_hollow(tmp_path / "hollow.zarr", 1060, times=30, size=32), split="train", cloud_masks="s2cloudless_mask"
    )
    plain = pickle.dumps({**hollow.__dict__, "_paths": None}, protocol=5)
    assert len(pickle.dumps(hollow)) < len(plain) / 4


def test_a_generic_selection_refuses_to_export_an_index_in_one_line(sampling_cube: Path, tmp_path: Path) -> None:
    # it has no inputs and targets: the export was an AttributeError on None
    generic = SEN12MSCRTS(sampling_cube, split="test", sample_type="generic")
    for name in ("index.npy", "index.json"):
        with pytest.raises(ValueError, match=r"sample type 'generic' has no inputs and targets: choose sample_type="):
            generic.export_index(tmp_path / "out" / name)
    assert not (tmp_path / "out").exists()
