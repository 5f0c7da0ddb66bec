"""Imported index files (.json and the published .npy format) are checked field by field before use."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from crts.cli import main
from crts.data import SEN12MSCRTS

pytestmark = pytest.mark.faults

STEPS = 4  # time steps of tiny_cube; its test split has 3 samples


@pytest.fixture(scope="module")
def exported(tiny_cube: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test split's index of tiny_cube, as idx.json and idx.npy."""
    folder = tmp_path_factory.mktemp("index")
    for name in ("idx.json", "idx.npy"):
        SEN12MSCRTS(tiny_cube, split="test", export_data_path=folder / name)
    return folder


_DROP = object()  # marks a field to remove


def _json_with(exported: Path, tmp_path: Path, change: dict, pdx: int = 1) -> Path:
    content = json.loads((exported / "idx.json").read_text())
    record = content["samples"][pdx]
    record.update(change)
    for key in [k for k, v in change.items() if v is _DROP]:
        del record[key]
    path = tmp_path / "idx.json"
    path.write_text(json.dumps(content))
    return path


def _refused(cube: Path, path: Path, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{path}: ") + ".*" + re.escape(message)) as err:
        SEN12MSCRTS(cube, split="test", import_data_path=path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input": [-1, 0, 2]}, "sample 1: 'input' holds -1, not a time step in [0, 4)"),
        ({"input": [0, 1, 4]}, "sample 1: 'input' holds 4, not a time step in [0, 4)"),
        ({"input": [0, 1.0, 2]}, "sample 1: 'input' holds 1.0, not a time step in [0, 4)"),
        ({"input": [True, 0, 2]}, "sample 1: 'input' holds True, not a time step in [0, 4)"),
        ({"input": [0, 2, 2]}, "sample 1: 'input' holds [0, 2, 2], not a list of 3 distinct time steps"),
        ({"input": [0, 2]}, "sample 1: 'input' holds [0, 2], not a list of 3 distinct time steps"),
        ({"input": 2}, "sample 1: 'input' holds 2, not a list of 3 distinct time steps"),
        ({"input": _DROP}, "sample 1: no 'input'"),
        ({"target": -2}, "sample 1: 'target' holds -2, not a time step in [0, 4)"),
        ({"target": 2.5}, "sample 1: 'target' holds 2.5, not a time step in [0, 4)"),
        ({"target": False}, "sample 1: 'target' holds False, not a time step in [0, 4)"),
        ({"target": [1]}, "sample 1: 'target' holds [1], not a time step in [0, 4)"),
        ({"target": _DROP}, "sample 1: no 'target'"),
        ({"coverage bin": 1}, "sample 1: 'coverage bin' holds 1, not true or false"),
        (
            {"roi": "ROIs2017/63"},
            "sample 1: labelled ROIs2017/63 patch 334, but this selection's sample 1 is ROIs2017/32 patch 334",
        ),
        (
            {"patch_id": 335},
            "sample 1: labelled ROIs2017/32 patch 335, but this selection's sample 1 is ROIs2017/32 patch 334",
        ),
        (
            {"patch_id": 334.0},
            "sample 1: labelled ROIs2017/32 patch 334.0, but this selection's sample 1 is ROIs2017/32 patch 334",
        ),
    ],
)
def test_a_bad_json_field_is_named(tiny_cube: Path, exported: Path, tmp_path: Path, change: dict, message: str) -> None:
    path = _json_with(exported, tmp_path, change)
    _refused(tiny_cube, path, message)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["samples"].pop(1),
            "this selection's samples are pdx 0..2; the file lacks pdx 1; use the split, "
            "region and cube it was made for",
        ),
        (lambda c: c["samples"].append({**c["samples"][0], "pdx": 7}), "the file has pdx 7 in excess; use the split"),
        (lambda c: c["samples"][2].update(pdx=1), "samples[2]: pdx 1 appears twice"),
        (lambda c: c["samples"][2].update(pdx="2"), "samples[2]: 'pdx' holds '2', not a sample number"),
        (lambda c: c["samples"][2].update(pdx=True), "samples[2]: 'pdx' holds True, not a sample number"),
        (lambda c: c["samples"].__setitem__(2, [2]), "samples[2]: not a record with 'pdx', 'roi' and 'patch_id'"),
        (lambda c: c["samples"][2].pop("roi"), "samples[2]: not a record with 'pdx', 'roi' and 'patch_id'"),
        (lambda c: c.update(samples={"0": {}}), "'samples' is not a list"),
        (lambda c: c.update(version=2), "version 2 of the sen12mscrts-sample-index format is not supported"),
    ],
)
def test_bad_json_sample_numbers_are_named(
    tiny_cube: Path, exported: Path, tmp_path: Path, edit: object, message: str
) -> None:
    content = json.loads((exported / "idx.json").read_text())
    edit(content)
    path = tmp_path / "idx.json"
    path.write_text(json.dumps(content))
    _refused(tiny_cube, path, message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2, 3]", "not a sen12mscrts-sample-index file"),
        ('{"format": "sen12mscrts-sample-index", "samples": [', "not a JSON file"),
        ("\x00\xff\xfe", "not a JSON file"),
    ],
)
def test_a_corrupt_json_file_is_named(tiny_cube: Path, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "idx.json"
    path.write_bytes(text.encode("latin-1"))
    _refused(tiny_cube, path, message)


def _npy_with(exported: Path, tmp_path: Path, edit: object) -> Path:
    content = np.load(exported / "idx.npy", allow_pickle=True).item()
    edit(content)
    path = tmp_path / "idx.npy"
    np.save(path, content, allow_pickle=True)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c[1].update(input=[-1, -2, -3]), "sample 1: 'input' holds -1, not a time step in [0, 4)"),
        (lambda c: c[2].update(target=np.float64(1.9)), "sample 2: 'target' holds 1.9, not a time step in [0, 4)"),
        (lambda c: c[0].update(target=np.int64(4)), "sample 0: 'target' holds 4, not a time step in [0, 4)"),
        (lambda c: c.update({"3": c[0]}), "the file has pdx '3' in excess"),
        (lambda c: c.update({3: c[0], 4: c[0]}) or c.pop(0), "the file lacks pdx 0 and has pdx 3, 4 in excess"),
        (lambda c: c.update({1: "x"}), "sample 1: a str, not a dict of 'input' and 'target'"),
        (lambda c: c.pop(0), "the file lacks pdx 0;"),
    ],
)
def test_a_bad_npy_field_is_named(tiny_cube: Path, exported: Path, tmp_path: Path, edit: object, message: str) -> None:
    path = _npy_with(exported, tmp_path, edit)
    _refused(tiny_cube, path, message)


@pytest.mark.parametrize(
    ("cut", "message"),
    [(0, "not a NumPy .npy file"), (100, "not a NumPy .npy file"), (-30, "unreadable pickle payload")],
)
def test_a_truncated_npy_file_is_named(tiny_cube: Path, exported: Path, tmp_path: Path, cut: int, message: str) -> None:
    data = (exported / "idx.npy").read_bytes()
    path = tmp_path / "idx.npy"
    path.write_bytes(data[:cut])
    _refused(tiny_cube, path, message)


def test_written_files_still_load(tiny_cube: Path, exported: Path) -> None:
    reference = SEN12MSCRTS(tiny_cube, split="test").index
    for name in ("idx.json", "idx.npy"):
        index = SEN12MSCRTS(tiny_cube, split="test", import_data_path=exported / name).index
        np.testing.assert_array_equal(index.inputs, reference.inputs)
        np.testing.assert_array_equal(index.target, reference.target)


def test_evaluate_refuses_negative_steps_without_writing_a_run(
    tiny_cube: Path, exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cube = tmp_path / "cube.zarr"
    shutil.copytree(tiny_cube, cube)
    path = _npy_with(exported, tmp_path, lambda c: c[0].update(input=[-1, -2, -3]))
    code = main(
        [
            "evaluate",
            "--cube",
            str(cube),
            "--baseline",
            "least_cloudy",
            "--import-index",
            str(path),
            "--run",
            "negative",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"crts evaluate: error: {path}: sample 0: 'input' holds -1, not a time step in [0, 4)\n"
    assert not (cube / "runs" / "negative").exists()
