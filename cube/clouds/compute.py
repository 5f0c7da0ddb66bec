"""The cloud pass: cloud and shadow masks and coverage of every S2 image, computed once, stored in the cube.

Variables added (for the SEN12MS-CR-TS layout; dims patch, time, y, x):

- ``s2cloudless_probability`` (uint8, CF-scaled by 1/250; decodes to float32 in [0, 1], NaN for gaps);
- ``s2cloudless_mask`` (uint8: 0 clear, 1 cloud; 255 for gaps);
- ``s2cloudless_map`` (float32 in [0, 1]; NaN for gaps);
- ``cloud_cloudshadow_mask`` (uint8: 0 clear, 1 cloud, 2 shadow; 255 for gaps);
- ``coverage`` (patch, time, detector; float32): mean of each detector's mask (of
  the map for ``s2cloudless_map``; cloud or shadow for the heuristic); NaN for gaps.

Each patch is one task (read its S2 shard, detect, write its mask shards) and
returns its coverage row; this process alone writes the rows into the compact
``coverage`` array (:data:`cube.store.schema.TABLE_CHUNK` patches per chunk), in
batches, so the whole table reads in a few chunks and no two writers ever share a chunk. A patch is done
when its row is written, so the pass is resumable and parallel like the conversion. When the pass finishes it
writes the cube's patch index (:mod:`cube.store.index`), then commits.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import xarray as xr
import zarr

from ..dataset.problems import FileProblem
from ..parallel import RowBatches, check_workers, run_tasks
from ..store.index import store_index
from ..store.schema import TABLE_CHUNK, compressor
from ..store.store import CubeState, CubeStore, as_store, checked_state
from ..store.views import finished_detectors, open_cube
from .detectors import DETECTORS, NO_DATA, REGISTRY, S2CLOUDLESS_ATTRS, detector

PROBABILITY_SCALE = 250
"""Stored probability = round(p * 250): steps of 0.004."""
PROBABILITY = "s2cloudless_probability"
"""The stored s2cloudless probability, shared by the detectors that use it."""

_MASKS: dict[str, dict] = {
    PROBABILITY: {
        "dtype": np.uint8,
        "attrs": {"long_name": "s2cloudless cloud probability", "units": "1", **S2CLOUDLESS_ATTRS},
        "encoding": {"scale_factor": np.float32(1 / PROBABILITY_SCALE), "_FillValue": NO_DATA, "dtype": "uint8"},
    },
    **{d.name: {"dtype": d.dtype, "attrs": d.attrs} for d in REGISTRY.values()},
}
"""Every stored cloud variable: the probability and each detector's mask (:data:`cube.clouds.detectors.REGISTRY`)."""


def _uses_probability(detectors: tuple[str, ...]) -> bool:
    return any(REGISTRY[d].uses_probability for d in detectors)


def cloud_variables(detectors: tuple[str, ...]) -> list[str]:
    """Stored variables that the chosen detectors need (the probability for those that use it)."""
    return [PROBABILITY] * _uses_probability(detectors) + [d for d in DETECTORS if d in detectors]


def _check_detectors(detectors: tuple[str, ...]) -> None:
    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown or not detectors:
        raise ValueError(f"invalid detector(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(DETECTORS)}")


def _array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of a cube's root ``group`` (zarr types a member as an array or a group); a group there
    is a :class:`cube.dataset.problems.FileProblem` naming it."""
    member = group[name]
    if not isinstance(member, zarr.Array):
        raise FileProblem(f"{group.store_path}/{name}", "a group where the cube has an array")
    return member


def _values(group: zarr.Group, name: str, selection: int | slice = slice(None)) -> np.ndarray:
    """``selection`` of the array ``name`` of ``group``, as the numpy array zarr reads (typed by zarr as any
    array-like or scalar)."""
    return np.asarray(_array(group, name)[selection])


def _s2_column(group: zarr.Group) -> int:
    """Where S2 lies along the ``modality`` axis of the ``valid`` flags."""
    return list(_values(group, "modality")).index("S2")


def coverage_columns(group: zarr.Group, detectors: tuple[str, ...]) -> list[int]:
    """The ``coverage`` columns of ``detectors``, found by the stored ``detector`` labels."""
    labels = [str(label) for label in _values(group, "detector")]
    if missing := [d for d in detectors if d not in labels]:
        raise ValueError(
            f"the cube's coverage table has no column for {', '.join(missing)} (it holds {', '.join(labels)})"
        )
    return [labels.index(d) for d in detectors]


def add_cloud_variables(store: CubeStore, names: list[str]) -> None:
    """Create the missing cloud variables (metadata only) and the coverage array.

    The stores' fill value is the gap value (255 for the masks and the stored
    probability, NaN for the map), so an image the pass never writes, such as
    every image of a patch without S2, reads as a gap rather than clear sky.
    """
    import dask.array as da  # here: only the cloud pass adds variables; `crts stats` reads its constants only

    ds = store.dataset(chunks=None)
    patches, times, size = ds.sizes["patch"], ds.sizes["time"], ds.sizes["y"]
    tile = ds["S2"].encoding["chunks"][-2:]  # masks are read with the S2 window: the same tiles
    dims = ("patch", "time", "y", "x")
    new: dict[str, tuple[tuple[str, ...], da.Array, dict]] = {}
    encoding = {}
    for name in names:
        if name in ds:
            continue
        spec = _MASKS[name]
        dtype = np.float32 if "scale_factor" in spec.get("encoding", {}) else spec["dtype"]
        new[name] = (dims, da.zeros((patches, times, size, size), dtype=dtype, chunks=-1), spec["attrs"])
        gap = NO_DATA if spec["dtype"] == np.uint8 else np.nan  # what an image never written reads as
        encoding[name] = {
            "chunks": (1, 1, *tile),
            "shards": (1, times, size, size),
            "fill_value": gap,
            "compressors": (compressor(np.dtype(spec["dtype"])),),
            **spec.get("encoding", {}),
        }
        if spec["dtype"] == np.float32:
            encoding[name]["_FillValue"] = np.nan
    coords = {}
    if "coverage" not in ds:
        new["coverage"] = (
            ("patch", "time", "detector"),
            da.full((patches, times, len(DETECTORS)), np.nan, dtype=np.float32, chunks=-1),
            {"long_name": "share of the image each detector marks (mean of its mask or map)", "units": "1"},
        )
        encoding["coverage"] = {"chunks": (TABLE_CHUNK, times, len(DETECTORS)), "_FillValue": np.nan}
        coords["detector"] = ("detector", np.array(DETECTORS, dtype=object))
    if new:
        store.write_dataset(
            xr.Dataset(new, coords=coords, attrs=ds.attrs),  # mode "a" rewrites the root attributes
            mode="a",
            compute=False,
            encoding=encoding,
        )


Predictor = Callable[[np.ndarray], np.ndarray]
"""s2cloudless probabilities (N, H, W) float32 of S2 digital numbers (N, 13, H, W), exactly s2cloudless's."""


def clouds_patch(
    store: CubeStore, index: int, detectors: tuple[str, ...], predictor: Predictor | None
) -> tuple[int, np.ndarray]:
    """Detect clouds in every valid S2 image of one patch, write its masks, return its coverage row.

    All the patch's images go to ``predictor`` in one call.
    """
    group = store.group(mode="r+")
    s2 = _values(group, "S2", index)
    valid = _values(group, "valid", index)[:, _s2_column(group)]
    coverage = _values(group, "coverage", index)
    times, size = s2.shape[0], s2.shape[-1]
    images = s2[valid]
    prob = None
    if _uses_probability(detectors):
        if not len(images):
            prob = np.zeros((0, size, size), np.float32)
        elif predictor is not None:
            prob = predictor(images)
        else:
            raise ValueError(
                f"{', '.join(detectors)}: the detectors that use s2cloudless probabilities need a predictor"
            )
        stored = np.full((times, size, size), NO_DATA, np.uint8)
        stored[valid] = np.round(prob * PROBABILITY_SCALE).astype(np.uint8)
        _array(group, PROBABILITY)[index] = stored
    for name, column in zip(detectors, coverage_columns(group, detectors), strict=True):
        d = detector(name)
        mask = np.full((times, size, size), d.gap, d.dtype)
        if len(images):
            mask[valid] = d.detect(images, prob)
        _array(group, name)[index] = mask
        coverage[valid, column] = d.to_float(mask[valid]).mean(axis=(1, 2))
    return index, coverage


def _done(group: zarr.Group, detectors: tuple[str, ...]) -> np.ndarray:
    """Patches whose coverage is known for every valid image and chosen detector."""
    coverage = _values(group, "coverage")[:, :, coverage_columns(group, detectors)]
    valid = _values(group, "valid")[:, :, _s2_column(group)]
    return (~np.isnan(coverage) | ~valid[:, :, None]).all(axis=(1, 2))


def compute_clouds(
    cube: str | os.PathLike | CubeStore,
    detectors: tuple[str, ...] = DETECTORS,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    force_unlock: bool = False,
    storage_options: dict | None = None,
    progress: bool = True,
    predictor: Predictor | None = None,
) -> int:
    """Run the cloud pass on a converted SEN12MS-CR-TS cube; returns the number of patches processed.

    Parameters are exactly the toolbox's (``cube.clouds.detectors``). Patches already
    done for the chosen detectors are skipped, so re-running is a no-op, which
    reads the cube's state only (no write access needed). The pass holds the
    cube's writer lock, like a conversion.

    Parameters
    ----------
    cube : path, str or CubeStore
        A complete cube (``crts convert``): a path or URL (see :func:`cube.open_cube`).
    detectors : tuple of str
        Any of ``s2cloudless_mask``, ``s2cloudless_map``, ``cloud_cloudshadow_mask``.
    workers, scheduler, force_unlock, storage_options, progress
        As for :func:`cube.convert`.
    resume : bool
        Finish an interrupted pass (otherwise an interrupted pass is an error).
    predictor : callable, optional
        s2cloudless probabilities of a stack of images (see ``Predictor``), e.g.
        ``crts.clouds_gpu.TorchForestPredictor("cuda")``; default: the compiled
        forest (:func:`cube.clouds.forest.fast_probability`), or s2cloudless itself
        with a warning where it cannot be built. It must give exactly
        s2cloudless's probabilities and pickle for worker processes.

    Raises
    ------
    cube.store.lock.WriterLockedError
        If another process is writing the cube.

    Examples
    --------
    >>> compute_clouds("cube.zarr", ("s2cloudless_mask",), workers=8)  # doctest: +SKIP
    """
    detectors = tuple(dict.fromkeys(detectors))
    _check_detectors(detectors)
    check_workers(workers)
    store = as_store(cube, storage_options=storage_options)
    state = checked_state(store)
    if set(detectors) <= set(state.cloud_detectors()):
        return 0
    if state.clouds.get("detectors") and not state.clouds.get("complete") and not resume:
        raise ValueError(f"{cube}: an interrupted cloud pass; re-run with resume=True (--resume)")
    store = store.reopened("r+")
    with store.writer("cloud pass", force_unlock=force_unlock) as owner:
        return cloud_pass(
            store, owner, detectors, workers=workers, scheduler=scheduler, progress=progress, predictor=predictor
        )


def cloud_pass(
    store: CubeStore,
    owner: dict,
    detectors: tuple[str, ...],
    *,
    workers: int | None,
    scheduler: str | None,
    progress: bool,
    predictor: Predictor | None = None,
) -> int:
    """The cloud pass's writes, by the holder of the writer lock (``owner``); see :func:`compute_clouds`."""
    state = checked_state(store)
    attributes = store.group_attributes("") or {}  # checked_state: a complete cube has its root
    if attributes.get("layout") != "sen12mscrts":
        raise ValueError(f"{store.location}: the cloud pass runs on SEN12MS-CR-TS cubes")
    todo_detectors = tuple(d for d in DETECTORS if d in set(detectors) | set(state.clouds.get("detectors", ())))
    state.clouds = {"detectors": list(todo_detectors), "complete": False}
    store.commit(state, owner)
    add_cloud_variables(store, cloud_variables(todo_detectors))
    group = store.group(mode="r+")
    done = _done(group, detectors)
    if predictor is None and _uses_probability(detectors):
        from .forest import fast_probability  # here: s2cloudless and lightgbm, which readers of masks never need

        predictor = fast_probability()
    todo = np.flatnonzero(~done)
    tasks = [(store, int(i), detectors, predictor) for i in todo]
    images = _values(group, "valid")[todo, :, _s2_column(group)].sum(axis=1)
    with RowBatches(store, "coverage") as rows:  # this process is the only writer of the table
        for index, row in run_tasks(
            tasks,
            clouds_patch,
            workers or os.cpu_count() or 1,
            scheduler,
            progress,
            "cloud pass",
            sizes=[int(n) for n in images],
            unit="image",
        ):
            rows.add(index, row)
    commit_pass(store, owner, state)
    return len(tasks)


def commit_pass(store: CubeStore, owner: dict, state: CubeState) -> None:
    """Commit a finished cloud pass, after its consolidated metadata and the patch index (a finished pass has one)."""
    state.clouds["complete"] = True
    store.consolidate()
    store_index(store, open_cube(store, chunks=None), tuple(state.clouds["detectors"]))
    store.commit(state, owner)


def require_clouds(ds: xr.Dataset, detector: str) -> None:
    """Raise a clear error unless the cube (:func:`cube.open_cube`) holds a finished cloud pass for ``detector``."""
    if detector not in finished_detectors(ds):
        raise ValueError(
            f"the cube has no finished cloud pass for {detector!r}: run `crts clouds CUBE "
            f"--detectors {detector} --resume` (--resume finishes an interrupted pass)"
        )
