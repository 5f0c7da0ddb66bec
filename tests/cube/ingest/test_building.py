"""The building blocks both conversion drivers use: destination checks, the store's creation and growth, the
commit, the one-line refusal of problems."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from cube import convert, open_cube, parallel
from cube.dataset.bands import DTYPES
from cube.dataset.layout import ts_relpath
from cube.dataset.problems import Problem
from cube.dataset.rois import Roi
from cube.ingest.building import (
    ConversionError,
    check_destination,
    commit_complete,
    existing_cube,
    patch_buffer,
    place_patches,
    raise_if_any,
    root_attributes,
)
from cube.store.schema import SPECS, PatchMeta
from cube.store.store import STATE, CubeState, CubeStore, as_store
from cube.synth import make_dataset

SPEC = SPECS["sen12mscrts"]


def _metas(roi: Roi, pids: range, times: int) -> list[PatchMeta]:
    dates = {(m, t): dt.date(2018, 1, 1 + t) for m in ("S1", "S2") for t in range(times)}
    return [
        PatchMeta(
            roi,
            pid,
            32632,
            (10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0),
            dates,
            {s: ts_relpath(s[0], roi, s[1], d, pid).as_posix() for s, d in dates.items()},
        )
        for pid in pids
    ]


def test_problems_are_refused_in_one_error_listing_twenty() -> None:
    raise_if_any([], "in nothing")
    problems = [Problem(f"f{i}.tif", "unreadable") for i in range(25)]
    with pytest.raises(ConversionError) as err:
        raise_if_any(problems, "in SRC")
    lines = str(err.value).splitlines()
    assert lines[0] == "25 problem(s) in SRC:" and len(lines) == 23 and lines[-2] == "  ... and 5 more"
    assert "--on-error skip" in lines[-1]


def test_a_destination_is_checked_before_any_write(tiny_root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no conversion to resume"):
        check_destination(as_store(tmp_path / "new.zarr"), [tiny_root], None, resume=True)
    with pytest.raises(ValueError, match="the cube"):
        check_destination(as_store(tiny_root / "inside.zarr"), [tiny_root], None, resume=False)
    with pytest.raises(ValueError, match="the report"):
        check_destination(as_store(tmp_path / "new.zarr"), [tiny_root], tiny_root / "report.json", resume=False)
    assert not (tmp_path / "new.zarr").exists() and not (tiny_root / "inside.zarr").exists()


def test_an_existing_cube_must_fit_the_source(tiny_cube: Path, tiny_root: Path, tmp_path: Path) -> None:
    store = CubeStore(tiny_cube)
    state, stored = existing_cube(store, SPEC, tiny_root, 4, resume=False)
    assert state.complete and len(stored) == 6
    with pytest.raises(ValueError, match=f"was converted from {tiny_root}, not {tmp_path}"):
        existing_cube(store, SPEC, tmp_path, 4, resume=False)
    with pytest.raises(ValueError, match=f"has 4 time steps, {tiny_root} has 5"):
        existing_cube(store, SPEC, tiny_root, 5, resume=False)
    assert existing_cube(as_store(tmp_path / "none.zarr"), SPEC, tiny_root, 4, resume=False) == (None, set())


def test_placing_creates_then_grows_the_store_and_the_commit_completes_it(tmp_path: Path) -> None:
    store, state, times = as_store(tmp_path / "cube.zarr", "r+"), CubeState(), 2
    with store.writer("test") as owner:
        place_patches(
            store,
            owner,
            SPEC,
            state,
            0,
            _metas(Roi("ROIs1868", 17), range(2), times),
            times,
            16,
            DTYPES,
            16,
            "/src",
            archives_done=[],
        )
        assert store.state().pending == {
            "start": 0,
            "patches": [["ROIs1868", 17, 0], ["ROIs1868", 17, 1]],
            "grown": True,
            "archives_done": [],
        }
        assert store.group_attributes("")["source_root"] == root_attributes(SPEC, "/src")["source_root"] == "/src"
        place_patches(
            store, owner, SPEC, state, 2, _metas(Roi("ROIs2017", 32), range(1), times), times, 16, DTYPES, 16, "/src"
        )
        assert store.array("valid").shape[0] == 3 and store.array("roi")[2] == 32
        valid = np.ones((3, times, 2), bool)
        valid[0, 0, 0] = False
        commit_complete(store, owner, state, valid, "test conversion")
    final = store.state()
    assert final.complete and final.pending is None and final.gaps == 1
    assert final.history[-1].endswith(" test conversion")


def test_placed_patches_without_a_root_group_are_no_cube_to_resume(tmp_path: Path, tiny_root: Path) -> None:
    """A pending conversion whose root zarr.json is gone: one line (it was an AttributeError on None)."""
    store = CubeStore(tmp_path / "cube.zarr", "r+")
    store.write_group(STATE, asdict(CubeState(pending={"start": 2, "patches": [], "grown": True})))
    with pytest.raises(ValueError, match=r"cube\.zarr: exists and is not a .* cube of schema version"):
        existing_cube(store, SPEC, tiny_root, 4, resume=True)


def test_one_thread_reuses_its_patch_buffer_and_fills_a_later_gap_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every patch converted on one thread, in one buffer: a step missing from a later patch is its fill value, not
    the pixels the previous patch left there."""
    assert patch_buffer("S2", (2, 13, 8, 8), np.dtype("uint16")) is patch_buffer(
        "S2", (2, 13, 8, 8), np.dtype("uint16")
    )
    monkeypatch.setattr(parallel, "PATCHES_IN_FLIGHT", 1)
    root = make_dataset(
        tmp_path / "src", ["ROIs1868/17"], patches_per_roi=3, size=32, times=3, seed=2, workers=1, progress=False
    )
    max((root / "ROIs1868/17/S2/1").glob("*.tif")).unlink()  # the last patch's
    convert(root, tmp_path / "cube.zarr", workers=1, clouds=(), on_error="skip", progress=False)
    ds = open_cube(tmp_path / "cube.zarr").load()
    s2 = list(ds.modality.values).index("S2")
    assert ds.valid.values[:, 1, s2].tolist() == [True, True, False]
    assert (ds.S2.values[2, 1] == 0).all() and (ds.S2.values[1, 1] != 0).any()  # 0: S2's fill value
