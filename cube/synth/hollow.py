"""Hollow cubes: everything a conversion and a cloud pass write except the image shards, at any size.

A hollow cube of the real data set's size (about 15,600 patches of 53 ROIs, 30
steps of 256 px) holds its metadata, labels, dates, paths, georeference, the
``valid`` flags, the ``coverage`` table, the patch index and the state, written
through the converter's and the cloud pass's own code (:func:`cube.ingest.building.place_patches`,
:func:`cube.ingest.building.commit_complete`, :func:`cube.clouds.compute.commit_pass`), so it
measures what full size costs every operation that does not read pixels (and one
image read costs the same, its shard being absent reads as the fill value).
``benchmarks/bench_scale.py`` uses it; see docs/scale-out.md.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np

from ..clouds.compute import add_cloud_variables, cloud_variables, commit_pass
from ..clouds.detectors import DETECTORS
from ..dataset.bands import DTYPES
from ..dataset.layout import ts_relpath
from ..dataset.rois import ALL_ROIS, Roi, select_rois
from ..ingest.building import commit_complete, place_patches
from ..store.schema import SPECS, TILE_PX, PatchMeta
from ..store.store import CubeState, CubeStore, as_store
from .dataset import plan_roi

PARTS = {1: ("all",), 3: ("test", "val", "train")}
"""The orders of conversion: in one go, or in three parts as docs/convert-real-data.md suggests."""
SOURCE = "/data/SEN12MSCRTS"
"""The ``source_root`` a hollow cube names (nothing is read there)."""


def _patches_per_roi(n_patches: int) -> dict[Roi, int]:
    """``n_patches`` spread over the 53 ROIs as evenly as possible (ROIs of the real set hold 50-700)."""
    base, extra = divmod(n_patches, len(ALL_ROIS))
    return {roi: base + (i < extra) for i, roi in enumerate(ALL_ROIS)}


def _metas(rois: list[Roi], counts: dict[Roi, int], times: int, size: int, seed: int) -> list[PatchMeta]:
    metas = []
    for roi in rois:
        if not counts[roi]:
            continue
        plan = plan_roi(roi, counts[roi], size, times, seed)
        dates = {("S1", t): d for t, d in enumerate(plan.s1_dates)} | {
            ("S2", t): d for t, d in enumerate(plan.s2_dates)
        }
        for i, pid in enumerate(plan.pids):
            paths = {(m, t): ts_relpath(m, roi, t, dates[(m, t)], pid).as_posix() for m, t in dates}
            metas.append(PatchMeta(roi, pid, plan.epsg, tuple(plan.transform(i))[:6], dates, paths))
    return metas


def _flags(rng: np.random.Generator, n: int, times: int, gaps: float) -> tuple[np.ndarray, np.ndarray]:
    """``valid`` (a share ``gaps`` of images missing) and a coverage table with the real set's spread:
    about a third of the images clear, a third overcast, the rest in between."""
    valid = rng.random((n, times, 2)) >= gaps
    cover = np.clip(rng.beta(0.45, 0.45, (n, times, 1)) + rng.normal(0, 0.02, (n, times, len(DETECTORS))), 0, 1)
    coverage = np.where(valid[:, :, 1:], cover, np.nan).astype(np.float32)
    return valid, coverage


def make_hollow(
    location: str | os.PathLike | CubeStore,
    n_patches: int = 15_600,
    *,
    parts: int = 1,
    times: int = 30,
    size: int = 256,
    gaps: float = 0.01,
    seed: int = 0,
) -> CubeStore:
    """Write a hollow SEN12MS-CR-TS cube (see the module docstring) of ``n_patches`` patches.

    Parameters
    ----------
    location : path, str or CubeStore
        A new or empty folder or bucket prefix.
    n_patches : int
        Patches in all, spread evenly over the 53 ROIs.
    parts : {1, 3}
        Converted in one go, or in three parts (test, then val, then train ROIs), so
        that the store's patch order differs from the sample order.
    times, size : int
        Time steps and patch edge in px.
    gaps : float
        Share of the images marked missing in ``valid``.
    seed : int
        Seed of the labels, dates, gaps and coverage.

    Returns
    -------
    CubeStore
        The cube, complete, with a finished cloud pass of every detector.

    Examples
    --------
    >>> import tempfile, cube
    >>> store = make_hollow(tempfile.mkdtemp() + "/hollow.zarr", 106, parts=3, times=4, size=32)
    >>> ds = cube.open_cube(store)
    >>> ds.sizes["patch"], ds.sizes["time"], sorted(set(ds.split.values)), ds.attrs["cloud_detectors"]
    (106, 4, ['test', 'train', 'val'], 's2cloudless_mask s2cloudless_map cloud_cloudshadow_mask')
    """
    store, spec, rng = as_store(location, "r+"), SPECS["sen12mscrts"], np.random.default_rng(seed)
    store.check_cube_or_empty()
    counts, state, coverages = _patches_per_roi(n_patches), CubeState(), []
    with store.writer("hollow cube") as owner:
        for split in PARTS[parts]:
            metas = _metas(select_rois(split, "all"), counts, times, size, seed)
            first = 0 if not state.complete else store.array("valid").shape[0]
            place_patches(store, owner, spec, state, first, metas, times, size, DTYPES, TILE_PX, Path(SOURCE))
            valid, coverage = _flags(rng, len(metas), times, gaps)
            store.array("valid", mode="r+")[first:] = valid
            commit_complete(
                store,
                owner,
                state,
                np.asarray(store.array("valid")[:]),
                f"hollow: {len(metas)} patch(es) of split {split} ({dt.date.today()})",
            )
            coverages.append(coverage)
        state.clouds = {"detectors": list(DETECTORS), "complete": False}
        store.commit(state, owner)
        add_cloud_variables(store, cloud_variables(DETECTORS))
        store.array("coverage", mode="r+")[:] = np.concatenate(coverages)
        commit_pass(store, owner, state)
    return store
