"""GeoTIFF tree -> one labelled, lossless, validated Zarr v3 cube: the tree driver of
:func:`cube.ingest.conversion.convert`.

It discovers the chosen patches and checks the whole tree (names, completeness,
pairing, and the headers each patch's georeference is agreed from: up to six
files per patch, see :func:`cube.ingest.building.agreed_headers`) before the
first write; every other file's header is checked as its pixels are read. It
then runs the steps of :mod:`cube.ingest.building` under the cube's writer
lock: place the new patches, one task per patch, commit, cloud pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..clouds.compute import compute_clouds
from ..dataset.problems import FileProblem, Problem
from ..dataset.rois import Roi, in_cr_split, select_rois
from ..parallel import RowBatches, run_tasks
from ..store.outputs import writing
from ..store.schema import SPECS, PatchMeta, Spec
from ..store.store import CubeState, CubeStore, as_store
from .building import (
    STOPPED,
    ConversionError,
    ConversionReport,
    Georef,
    agreed_headers,
    check_destination,
    commit_complete,
    convert_patch,
    existing_cube,
    expected_of,
    finished,
    place_patches,
    raise_if_any,
    run_cloud_pass,
)
from .options import ConversionOptions
from .validate import PatchFiles, check_complete, detect_layout, group_patches


def _select(
    patches: list[PatchFiles], src: Path, layout: str, rois: list[str] | None, split: str | None, region: str | None
) -> list[PatchFiles]:
    """The patches of the chosen ROIs (SEN12MS-CR: scenes), or of a split and region, in sample order."""
    present = {p.roi for p in patches}
    if rois:
        wanted = [Roi.parse(r, known=layout == "sen12mscrts") for r in rois]
        missing = [str(r) for r in wanted if r not in present]
        if missing:
            raise ValueError(f"{src}: no files of ROI(s) {', '.join(missing)}")
    elif layout == "sen12mscrts":
        wanted = select_rois(split or "all", region or "all")
    else:  # every scene found, unless a split or region is asked for
        wanted = sorted(r for r in present if in_cr_split(r, split or "all", region or "all"))
    chosen = [p for p in patches if p.roi in set(wanted)]
    if not chosen:
        raise ValueError(f"{src}: no patches of the chosen ROIs / split / region")
    order = {r: i for i, r in enumerate(wanted)}
    return sorted(chosen, key=lambda p: order[p.roi])  # stable: natural patch order inside each ROI


def _metas(patches: list[PatchFiles], georef: Georef, src: Path) -> list[PatchMeta]:
    """The labels of patches to place: their georeference and their files' paths relative to ``src``."""
    return [
        PatchMeta(
            p.roi,
            p.pid,
            *georef[p.key],
            dates=p.dates,
            paths={s: f.relative_to(src).as_posix() for s, f in p.files.items()},
        )
        for p in patches
    ]


def _prepare(
    store: CubeStore,
    owner: dict,
    spec: Spec,
    state: CubeState | None,
    new: list[PatchFiles],
    src: Path,
    times: int,
    options: ConversionOptions,
) -> tuple[CubeState, int, list[Problem]]:
    """Make room for the new patches (create or grow the store), committing the pending work first.

    Returns the state, the store position of the first new patch and the header problems found.
    """
    georef, dtypes, size, problems = agreed_headers(new, SPECS[spec.layout])
    if options.on_error == "fail":
        raise_if_any(problems, f"in {src}")
    keys = [list(p.key) for p in new if p.key in georef]
    state = state or CubeState()
    if state.pending and state.pending["patches"] != keys:
        raise ValueError(f"{store.location}: resume must use the same source and ROIs as the interrupted conversion")
    first = state.pending["start"] if state.pending else (store.array("valid").shape[0] if state.complete else 0)
    if not keys or (state.pending or {}).get("grown"):
        return state, first, problems
    place_patches(
        store,
        owner,
        spec,
        state,
        first,
        _metas([p for p in new if p.key in georef], georef, src),
        times,
        size,
        dtypes,
        options.tile,
        src,
    )
    return state, first, problems


def _convert_new(
    store: CubeStore, spec: Spec, new: list[PatchFiles], first: int, times: int, options: ConversionOptions
) -> tuple[list[Problem], int]:
    """Run one task per patch not yet done; the problems found and the number of tasks."""
    store.remove_torn_writes([*spec.modalities, "valid"])
    # one flag per patch: numpy types an axis reduction as a scalar or an array
    done = np.asarray(store.values("valid", first).reshape(len(new), -1).all(axis=1)) if new else np.array([], bool)
    expected = expected_of(store, spec)
    georef = {
        (str(g), int(r), int(p)): (int(e), tuple(t))
        for g, r, p, e, t in zip(
            *(store.values(name, first) for name in ("roi_group", "roi", "patch_id", "epsg", "transform")), strict=True
        )
    }
    tasks = [
        (
            store,
            first + i,
            spec.layout,
            times,
            {s: str(f) for s, f in p.files.items()},
            expected,
            *georef[p.key],
            options.on_error,
            (p.roi, p.pid),
        )
        for i, p in enumerate(new)
        if not done[i]
    ]
    problems: list[Problem] = []
    with writing(store.location, STOPPED):
        try:
            with RowBatches(store, "valid") as rows:
                for index, valid, found in run_tasks(
                    tasks,
                    convert_patch,
                    options.workers or os.cpu_count() or 1,
                    options.scheduler,
                    options.progress,
                    "converting",
                ):
                    rows.add(index, valid)
                    problems += found
        except FileProblem as err:
            raise ConversionError(
                f"{err}\n(the cube stays marked incomplete; fix the file and re-run with "
                "--resume, or use --on-error skip)"
            ) from None
    return problems, len(tasks)


def _discover(
    src: Path, spec: Spec, rois: list[str] | None, split: str | None, region: str | None
) -> tuple[list[PatchFiles], list[Problem], int]:
    """The chosen patches in sample order, the problems of their files and names, and the number of steps."""
    found, problems = group_patches(src, spec.layout)
    patches = _select(found, src, spec.layout, rois, split, region)
    chosen = {(p.roi, p.pid) for p in patches}
    problems = [p for p in problems if p.roi is None or (p.roi, p.patch_id) in chosen]
    times = max(t for p in patches for (_, t) in p.files) + 1 if spec.temporal else 1
    return patches, problems + check_complete(patches, src, spec.layout, spec.modalities, times), times


def _only_new(problems: list[Problem], new: list[PatchFiles]) -> list[Problem]:
    """Problems that concern the patches still to convert (or no patch in particular)."""
    keys = {(p.roi, p.pid) for p in new}
    return [p for p in problems if p.roi is None or (p.roi, p.patch_id) in keys]


def convert_tree(
    src: str | os.PathLike | list, dst: str | os.PathLike | CubeStore, options: ConversionOptions, start_time: float
) -> ConversionReport:
    """:func:`cube.ingest.conversion.convert` from one extracted tree: the whole tree checked before the first
    write, then the writes under the writer lock (or, with nothing to add, only the cloud pass still to do)."""
    if options.times is not None:
        raise ValueError(f"invalid times {options.times}: a tree's time steps are counted (times applies to archives)")
    if options.groups_at_once is not None:
        raise ValueError(
            f"invalid groups_at_once {options.groups_at_once}: a tree is read by the workers (it applies to archives)"
        )
    src = Path(src[0] if isinstance(src, list | tuple) else src).resolve()
    store = as_store(dst, storage_options=options.storage_options)
    check_destination(store, [src], options.report, options.resume)
    spec = SPECS[detect_layout(src)]
    patches, problems, times = _discover(src, spec, options.rois, options.split, options.region)
    out = ConversionReport(str(src), store.location, spec.layout, options.on_error)
    state, stored = existing_cube(store, spec, src, times, resume=True)  # a look, before any write
    if options.on_error == "fail":
        raise_if_any(_only_new(problems, [p for p in patches if p.key not in stored]), f"in {src}")
    if state is None or not state.complete or any(p.key not in stored for p in patches):
        with store.reopened("r+").writer("conversion", force_unlock=options.force_unlock) as owner:
            _convert_locked(store.reopened("r+"), owner, spec, patches, problems, times, out, options)
    elif options.clouds and spec.temporal:
        out.cloud_pass_patches = compute_clouds(
            store,
            options.clouds,
            workers=options.workers,
            scheduler=options.scheduler,
            resume=True,
            force_unlock=options.force_unlock,
            progress=options.progress,
        )
    return finished(out, store, options.report, start_time)


def _convert_locked(
    store: CubeStore,
    owner: dict,
    spec: Spec,
    patches: list[PatchFiles],
    problems: list[Problem],
    times: int,
    out: ConversionReport,
    options: ConversionOptions,
) -> None:
    """The conversion's writes, under the writer lock: prepare, convert each patch, commit, cloud pass."""
    state, stored = existing_cube(store, spec, Path(out.source), times, options.resume)  # again: nobody else writes
    new = [p for p in patches if p.key not in stored]
    problems = _only_new(problems, new)
    if out.on_error == "fail":
        raise_if_any(problems, f"in {out.source}")
    state, first, header_problems = _prepare(store, owner, spec, state, new, Path(out.source), times, options)
    placed = {tuple(key) for key in state.pending["patches"]} if state.pending else set()
    new = [p for p in new if p.key in placed]
    task_problems, out.patches_converted = _convert_new(store, spec, new, first, times, options)
    valid = store.values("valid")
    if placed:  # (nothing is left to do if another writer finished the same work before this one got the lock)
        commit_complete(store, owner, state, valid, f"converted {len(placed)} patch(es) from {out.source}")
    out.patches_in_cube, out.patches_added, out.gaps = valid.shape[0], len(placed), state.gaps
    out.problems = [p.record() for p in problems + header_problems + task_problems]
    run_cloud_pass(store, owner, spec, out, options)
