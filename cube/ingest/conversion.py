"""GeoTIFF tree -> one labelled, lossless, validated Zarr v3 cube; resumable, incremental, dask-parallel.

The conversion is a sequence of idempotent steps, so that a run killed at any
moment and started again with ``resume=True`` finishes with the same cube:

1. discover and check the files (names, completeness, pairing, headers);
2. commit the state ``complete: false`` with the ``pending`` patches, then
   create the store from a template (after removing what an interrupted
   creation left) or, for new ROIs, grow an existing one;
3. one task per patch reads and checks its files and writes its shards; this
   process writes its ``valid`` row, in batches (a patch whose row is all true is done);
4. the state says ``complete: true`` (one write).

Steps 2-4 run under the cube's writer lock, and each commits the cube's state
(``cube.store.store.CubeState``) in one write before the work it announces.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..clouds.compute import cloud_pass, compute_clouds
from ..clouds.detectors import DETECTORS, detector
from ..dataset.bands import DTYPES, bands_of
from ..dataset.problems import FileProblem, Problem
from ..dataset.rois import Roi, in_cr_split, select_rois
from ..parallel import RowBatches, check_count, check_workers, run_tasks
from ..store.outputs import check_not_in_cube, check_outside, check_writable, writing
from ..store.schema import (SCHEMA_VERSION, SPECS, TILE_PX, PatchMeta, Spec, encoding, patch_variables,
                            table_encoding, template)
from ..store.store import CubeState, CubeStore, as_store, checked_state, plain_files_ignored
from .validate import (
    Expected,
    PatchFiles,
    check_complete,
    detect_layout,
    group_patches,
    read_checked,
    read_header,
)

ON_ERROR = ("fail", "skip")
STOPPED = ("the conversion stopped (the patches written so far are kept: run the same command with --resume to "
           "finish)")
"""How an OS error that refuses the cube's writes mid-run (a full disk, a failing one) is reported: as one line
naming the cube (:func:`cube.store.outputs.writing`), with the way to finish."""


class ConversionError(ValueError):
    """Bad input found with ``on_error='fail'``; the message lists the files and problems."""


@dataclass
class ConversionReport:
    """What a conversion did and every gap it left (``on_error='skip'``)."""

    source: str
    cube: str
    layout: str
    on_error: str
    patches_in_cube: int = 0
    patches_added: int = 0
    patches_converted: int = 0
    problems: list[dict] = field(default_factory=list)
    gaps: int = 0
    cloud_pass_patches: int = 0
    seconds: float = 0.0
    archives_read: list[str] = field(default_factory=list)
    """Archives read to their end (a conversion from archives; see :mod:`cube.ingest.archive_conversion`)."""
    scratch_peak_bytes: int = 0
    """Most bytes spooled into the scratch folder at once (a conversion from archives)."""

    def write(self, path: str | os.PathLike) -> None:
        try:
            Path(path).write_text(json.dumps(asdict(self), indent=2))
        except OSError as err:  # a failed write() names no file: name it
            raise OSError(err.errno, err.strerror, str(path)) from None


def _raise_if_any(problems: list[Problem], what: str) -> None:
    if problems:
        listed = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ConversionError(f"{len(problems)} problem(s) {what}:\n{listed}{more}\n"
                              "(on_error='skip' / --on-error skip converts the rest and records the gaps)")


def _select(patches: list[PatchFiles], src: Path, layout: str, rois: list[str] | None, split: str | None,
            region: str | None) -> list[PatchFiles]:
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


def _headers(patches: list[PatchFiles], spec: Spec) -> tuple[dict, dict[str, np.dtype], int, list[Problem]]:
    """Georeference of each patch, and dtype per modality and patch size, by agreement of file headers.

    Per patch, headers are read (S2 and S1 alternately, from the first time step
    on) until two agree on CRS and transform, so one odd file cannot impose its
    georeference on the others; dtype and size are the most common ones seen.
    """
    georef: dict[tuple, tuple[int, tuple[float, ...]]] = {}
    dtypes: dict[str, Counter] = {m: Counter() for m in spec.modalities}
    sizes: Counter = Counter()
    problems: list[Problem] = []
    for patch in patches:
        seen: list[tuple[int, tuple[float, ...]]] = []
        for slot in sorted(patch.files, key=lambda s: (s[1], s[0] != "S2"))[:6]:
            try:
                epsg, transform, dtype, _, width = read_header(patch.files[slot])
            except FileProblem as err:
                problems.append(err.located(patch.roi, patch.pid, slot[1], slot[0]))
                continue
            dtypes[slot[0]][dtype] += 1
            sizes[width] += 1
            if (epsg, transform) in seen:
                georef[patch.key] = (epsg, transform)
                break
            seen.append((epsg, transform))
        if patch.key not in georef and seen:
            georef[patch.key] = seen[0]
    chosen = {m: counts.most_common(1)[0][0] if counts else DTYPES["S1" if m == "S1" else "S2"]
              for m, counts in dtypes.items()}
    return georef, chosen, (sizes.most_common(1)[0][0] if sizes else 256), problems


READ_THREADS = 4
"""Files of a patch read at once (GDAL releases the GIL): overlaps file I/O with decoding."""


def _read_slot(path: str, modality: str, expected: Expected, epsg: int,
               transform: tuple[float, ...]) -> np.ndarray | FileProblem:
    try:
        return read_checked(Path(path), modality, expected, epsg, transform)
    except FileProblem as err:
        return err


def convert_patch(store: CubeStore, index: int, spec_name: str, times: int, files: dict[tuple[str, int], str],
                  expected: dict[str, Expected], epsg: int, transform: tuple[float, ...], on_error: str,
                  label: tuple[Roi, int]) -> tuple[int, np.ndarray, list[Problem]]:
    """Read, check and write one patch's shards; returns its position, ``valid`` row and problems (the calling
    process writes the row, see :class:`cube.parallel.RowBatches`). Runs on a dask worker."""
    spec = SPECS[spec_name]
    group = store.group(mode="r+")
    slots = sorted(files)
    with ThreadPoolExecutor(READ_THREADS) as pool:
        images = dict(zip(slots, pool.map(lambda s: _read_slot(files[s], s[0], expected[s[0]], epsg, transform),
                                          slots), strict=True))
    valid = np.zeros((times, len(spec.modalities)), dtype=bool)
    problems: list[Problem] = []
    for mi, m in enumerate(spec.modalities):
        array = group[m]
        data = np.empty((times, *array.shape[-3:]), dtype=array.dtype)
        for t in range(times):
            image = images.get((m, t))
            if isinstance(image, FileProblem):
                if on_error == "fail":
                    raise image
                problems.append(image.located(*label, t, m))
            if isinstance(image, np.ndarray):
                data[t], valid[t, mi] = image, True
            else:
                data[t] = array.fill_value
        array[index] = data if spec.temporal else data[0]
    return index, valid if spec.temporal else valid[0], problems


def _metas(patches: list[PatchFiles], georef: dict, src: Path) -> list[PatchMeta]:
    return [PatchMeta(p.roi, p.pid, *georef[p.key], dates=p.dates,
                      paths={s: f.relative_to(src).as_posix() for s, f in p.files.items()}) for p in patches]


def _create(store: CubeStore, ds_template, enc: dict) -> None:
    """Write the template into an empty store (what an interrupted creation left of it is removed first)."""
    ours = {*ds_template.variables, "zarr.json"}
    for name in store.children():
        if name in ours:
            store.delete(name)
    store.write_dataset(ds_template, compute=False, encoding={**table_encoding(ds_template), **enc}, mode="a")
    store.mark_incomplete()  # unconverted patches read as zeros: plain xr.open_zarr must not take it for a cube


def _grow(store: CubeStore, spec: Spec, start: int, metas: list[PatchMeta], times: int) -> None:
    """Make room for new patches after ``start`` and write their labels (idempotent)."""
    _resize(store, start + len(metas))
    _write_labels(store, spec, start, metas, times)
    store.mark_incomplete()


def _resize(store: CubeStore, total: int) -> None:
    """Give every per-patch array ``total`` patches."""
    with plain_files_ignored():  # a grown cube may hold its patch index
        for _, array in store.group(mode="r+").arrays():
            if array.metadata.dimension_names and array.metadata.dimension_names[0] == "patch":
                if array.shape[0] != total:
                    array.resize((total, *array.shape[1:]))


def _write_labels(store: CubeStore, spec: Spec, start: int, metas: list[PatchMeta], times: int) -> None:
    """Write the labels, dates, georeference and paths of patches at ``start`` onwards."""
    with plain_files_ignored():
        labels = patch_variables(spec, metas, times)
        store.write_dataset(labels, region={"patch": slice(start, start + len(metas))}, mode="r+")


def _stored_keys(store: CubeStore, state: CubeState) -> set[tuple[str, int, int]]:
    """Keys of the patches converted before (those of an unfinished conversion excluded)."""
    upto = state.pending["start"] if state.pending else store.array("valid").shape[0]
    labels = [store.array(name)[:upto].tolist() for name in ("roi_group", "roi", "patch_id")]
    return set(zip(*labels, strict=True))


def _existing(store: CubeStore, spec: Spec, src: Path, times: int,
              resume: bool) -> tuple[CubeState | None, set[tuple[str, int, int]]]:
    """The state of the cube at ``store`` (None if there is none yet) and its patches' keys; checks the fit."""
    state = store.state()
    attributes = store.group_attributes("")
    if state is None or (attributes is None and not state.pending):
        if attributes is not None:
            checked_state(store)  # a cube without a committed state: of another schema version
        return None, set()
    if not state.complete and not resume:
        raise ValueError(f"{store.location}: an unfinished conversion; re-run with resume=True (--resume)")
    if state.pending and state.pending["start"] == 0 and not state.pending.get("grown"):
        return state, set()  # its creation was interrupted: nothing in it counts
    if attributes.get("schema_version") != SCHEMA_VERSION and state.complete:
        checked_state(store)  # an older cube: says how to upgrade it
    if attributes.get("schema_version") != SCHEMA_VERSION or attributes.get("layout") != spec.layout:
        raise ValueError(f"{store.location}: exists and is not a {spec.title} cube of schema version "
                         f"{SCHEMA_VERSION}")
    if (root := attributes.get("source_root")) != str(src):
        raise ValueError(f"{store.location}: was converted from {root}, not {src}; a cube appends from its own source "
                         f"root only (it records file paths relative to it): put the new ROI folders or archives in "
                         f"{root} and run `crts convert {root} {store.location}` (it adds only the patches not in the "
                         f"cube), or convert {src} into a new cube")
    if spec.temporal and store.array("time").shape[0] != times:
        raise ValueError(f"{store.location}: has {store.array('time').shape[0]} time steps, {src} has {times}")
    return state, _stored_keys(store, state)


def _root_attributes(spec: Spec, src: Path) -> dict:
    return {"title": f"{spec.title} data cube", "dataset": spec.title, "layout": spec.layout,
            "schema_version": SCHEMA_VERSION, "Conventions": "CF-1.10", "source_root": str(src),
            "created_by": f"cube {__version__}",
            "description": f"{spec.title} images ({', '.join(spec.modalities)}) exactly as in the source GeoTIFFs, "
                           "labelled by ROI, patch, time step and band, with acquisition dates, georeference and a "
                           "'valid' flag per file; see docs/schema.md"}


def _prepare(store: CubeStore, owner: dict, spec: Spec, state: CubeState | None, new: list[PatchFiles],
             src: Path, times: int, on_error: str, tile: int) -> tuple[CubeState, int, list[Problem]]:
    """Make room for the new patches (create or grow the store), committing the pending work first.

    Returns the state, the store position of the first new patch and the header problems found.
    """
    georef, dtypes, size, problems = _headers(new, SPECS[spec.layout])
    if on_error == "fail":
        _raise_if_any(problems, f"in {src}")
    keys = [list(p.key) for p in new if p.key in georef]
    state = state or CubeState()
    if state.pending and state.pending["patches"] != keys:
        raise ValueError(f"{store.location}: resume must use the same source and ROIs as the interrupted "
                         "conversion")
    first = state.pending["start"] if state.pending else (store.array("valid").shape[0] if state.complete else 0)
    if not keys or (state.pending or {}).get("grown"):
        return state, first, problems
    place_patches(store, owner, spec, state, first, _metas([p for p in new if p.key in georef], georef, src),
                  times, size, dtypes, tile, src)
    return state, first, problems


def place_patches(store: CubeStore, owner: dict, spec: Spec, state: CubeState, first: int, metas: list[PatchMeta],
                  times: int, size: int, dtypes: dict[str, np.dtype], tile: int, src: Path) -> None:
    """Commit the patches ``metas`` as pending from store position ``first`` on, then create the store (``first``
    0) or grow it and write their labels, and commit that they have room (``pending.grown``)."""
    chunking = encoding(spec, times, size, dtypes, tile)  # a bad tile fails here, before anything is written
    keys = [[m.roi.group, m.roi.number, m.pid] for m in metas]
    state.complete, state.pending = False, {"start": first, "patches": keys, "grown": False}
    store.commit(state, owner)
    if first == 0:
        _create(store, template(spec, metas, times, size, dtypes, _root_attributes(spec, src)), chunking)
    else:
        _grow(store, spec, first, metas, times)
    state.pending["grown"] = True
    store.commit(state, owner)


def _convert_new(store: CubeStore, spec: Spec, new: list[PatchFiles], first: int, times: int, on_error: str,
                 workers: int | None, scheduler: str | None, progress: bool) -> tuple[list[Problem], int]:
    """Run one task per patch not yet done; the problems found and the number of tasks."""
    store.remove_torn_writes([*spec.modalities, "valid"])
    group = store.group()
    done = group["valid"][first:].reshape(len(new), -1).all(axis=1) if new else np.array([], bool)
    size = group[spec.modalities[0]].shape[-1]
    expected = {m: Expected(len(bands_of(m)), np.dtype(group[m].dtype), size)
                for m in spec.modalities}
    georef = {(str(g), int(r), int(p)): (int(e), tuple(t)) for g, r, p, e, t in zip(
        *(group[name][first:] for name in ("roi_group", "roi", "patch_id", "epsg", "transform")), strict=True)}
    tasks = [(store, first + i, spec.layout, times, {s: str(f) for s, f in p.files.items()}, expected,
              *georef[p.key], on_error, (p.roi, p.pid)) for i, p in enumerate(new) if not done[i]]
    problems: list[Problem] = []
    with writing(store.location, STOPPED):
        try:
            with RowBatches(store, "valid") as rows:
                for index, valid, found in run_tasks(tasks, convert_patch, workers or os.cpu_count() or 1,
                                                     scheduler, progress, "converting"):
                    rows.add(index, valid)
                    problems += found
        except FileProblem as err:
            raise ConversionError(f"{err}\n(the cube stays marked incomplete; fix the file and re-run with "
                                  "--resume, or use --on-error skip)") from None
    return problems, len(tasks)


def _discover(src: Path, spec: Spec, rois: list[str] | None, split: str | None,
              region: str | None) -> tuple[list[PatchFiles], list[Problem], int]:
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


def convert(src: str | os.PathLike, dst: str | os.PathLike | CubeStore, *, rois: list[str] | None = None,
            split: str | None = None, region: str | None = None, workers: int | None = None,
            scheduler: str | None = None, resume: bool = False, on_error: str = "fail",
            report: str | os.PathLike | None = None, clouds: tuple[str, ...] = DETECTORS,
            force_unlock: bool = False, storage_options: dict | None = None, tile: int = TILE_PX,
            progress: bool = True, scratch: str | os.PathLike | None = None,
            times: int | None = None, groups_at_once: int | None = None) -> ConversionReport:
    """Convert a SEN12MS-CR-TS (or SEN12MS-CR) GeoTIFF tree, or its published archives, into a Zarr v3 cube.

    One process at a time writes a cube: the conversion holds the cube's writer
    lock (see :class:`cube.store.store.CubeStore`) and is refused at once while another
    process holds it. A conversion with nothing to do writes nothing.

    Parameters
    ----------
    src : path, URL or list of them
        Data set root (``ROIsXXXX/<roi>/S1|S2/<t>/...``, or the SEN12MS-CR layout);
        or, read without extracting them (see :mod:`cube.ingest.archive_conversion`), a
        folder of the published ``.tar.gz`` archives, archives, ``http(s)://`` URLs
        of archives, or a list of these and trees.
    dst : path, str or CubeStore
        The cube: a path, or a ``s3://``, ``gs://``, ``file://`` or ``memory://`` URL
        (each shard is written once, whole). If it exists and is complete,
        patches not yet in it are appended.
    rois : list of str, optional
        ROIs to convert (``"ROIs1868/17"``); default: those of ``split`` and ``region``.
    split, region : str, optional
        Official split and region (default 'all' and 'all': every ROI found).
    workers : int, optional
        Local worker processes (default: all cores); 1 runs in this process.
    scheduler : str, optional
        Address of a running dask.distributed scheduler; its workers must see
        ``src`` and ``dst`` at the same paths.
    resume : bool
        Finish an interrupted conversion into ``dst``.
    on_error : {"fail", "skip"}
        "fail": stop at the first bad file with a message naming it (the cube
        stays marked incomplete). "skip": convert the rest; gaps are False in
        the ``valid`` variable and listed in the report.
    report : path, optional
        Write the :class:`ConversionReport` as JSON here.
    clouds : tuple of str
        Detectors of the cloud pass run after the conversion (SEN12MS-CR-TS
        only; see :func:`cube.clouds.compute.compute_clouds`); ``()`` skips it.
    force_unlock : bool
        Break the writer lock of a process that died on another machine (one that
        died on this machine is detected and its lock broken automatically).
    storage_options : dict, optional
        Object-store options (see :func:`cube.open_cube`).
    tile : int
        Edge in px of the images' inner chunks in a new cube (default
        :data:`cube.store.schema.TILE_PX`; must divide the patch size); a cube that
        exists keeps its chunking.
    progress : bool
        Show a progress bar.
    scratch : path, optional
        Archives only: folder for the members waiting for the rest of their
        patch (default: ``<cube>.scratch`` beside a local cube, else in the
        system's temporary folder); emptied at the start, deleted at the end.
    times : int, optional
        Archives only: time steps of every patch (default: the cube's, or 30 for
        a new SEN12MS-CR-TS cube); a tree's are counted.
    groups_at_once : int, optional
        Archives only: groups of archives (the S1 and S2 archives of one region
        and collection; a SEN12MS-CR season's three) read at once (default: one
        per 6 workers; with ``scheduler``, per 6 cores of this machine, which
        decompresses them). Each group decompresses on its own threads of this
        process and spools its own patches: the scratch bound grows with it.

    Returns
    -------
    ConversionReport

    Raises
    ------
    cube.store.store.WriterLockedError
        If another process is writing the cube.

    Examples
    --------
    >>> convert("SEN12MSCRTS", "cube.zarr", split="test", region="europa")  # doctest: +SKIP
    """
    start_time = time.perf_counter()
    if on_error not in ON_ERROR:
        raise ValueError(f"invalid on_error {on_error!r}: choose one of {', '.join(ON_ERROR)}")
    check_workers(workers)
    for name in clouds:
        detector(name)  # an unknown detector is refused before anything is written
    check_count("groups_at_once", groups_at_once, "read at least 1 group of archives at once, or leave it out for "
                "one per 6 workers")
    from .archive_conversion import convert_sources, resolve_sources  # it builds on this module

    sources = resolve_sources(src)
    if sources is not None:
        return convert_sources(sources, dst, rois=rois, split=split, region=region, workers=workers,
                               scheduler=scheduler, resume=resume, on_error=on_error, report=report, clouds=clouds,
                               force_unlock=force_unlock, storage_options=storage_options, tile=tile,
                               progress=progress, scratch=scratch, times=times, groups_at_once=groups_at_once,
                               start_time=start_time)
    if times is not None:
        raise ValueError(f"invalid times {times}: a tree's time steps are counted (times applies to archives)")
    if groups_at_once is not None:
        raise ValueError(f"invalid groups_at_once {groups_at_once}: a tree is read by the workers (it applies to "
                         "archives)")
    src = Path(src[0] if isinstance(src, list | tuple) else src).resolve()
    store = as_store(dst, storage_options=storage_options)
    _check_destination(store, [src], report, resume)
    spec = SPECS[detect_layout(src)]
    patches, problems, times = _discover(src, spec, rois, split, region)
    out = ConversionReport(str(src), store.location, spec.layout, on_error)
    state, stored = _existing(store, spec, src, times, resume=True)  # a look, before any write
    if on_error == "fail":
        _raise_if_any(_only_new(problems, [p for p in patches if p.key not in stored]), f"in {src}")
    if state is None or not state.complete or any(p.key not in stored for p in patches):
        with store.reopened("r+").writer("conversion", force_unlock=force_unlock) as owner:
            _convert_locked(store.reopened("r+"), owner, spec, patches, problems, times, out,
                            resume=resume, workers=workers, scheduler=scheduler, clouds=clouds, tile=tile,
                            progress=progress)
    elif clouds and spec.temporal:
        out.cloud_pass_patches = compute_clouds(store, clouds, workers=workers, scheduler=scheduler, resume=True,
                                                force_unlock=force_unlock, progress=progress)
    return finished(out, store, report, start_time)


def finished(out: ConversionReport, store: CubeStore, report: str | os.PathLike | None,
             start_time: float) -> ConversionReport:
    """The report completed (patches in the cube, seconds) and written where asked."""
    if not out.patches_in_cube:
        out.patches_in_cube = store.array("valid").shape[0]
    out.seconds = round(time.perf_counter() - start_time, 2)
    if report:
        out.write(report)
    return out


def _check_destination(store: CubeStore, sources: list[Path], report: str | os.PathLike | None,
                       resume: bool) -> None:
    """Refuse, before any write, a cube or report inside a source or inside another cube, a place that holds
    something other than a cube or where the file system refuses new files, and ``resume`` without a conversion
    to resume."""
    for src in sources:
        if store.local:
            check_outside(store.store.root, src, "the cube")
        if report:
            check_outside(report, src, "the report")
    if store.local:
        check_not_in_cube(store.store.root, "the cube", itself=False)
    if report:
        check_not_in_cube(report, "the report", itself=False)
    store.check_cube_or_empty()
    if store.local and store.state() is None and store.group_attributes("") is None:  # a new cube (an existing
        check_writable(store.store.root, "the cube")  # one with nothing to add is not written: it may be read-only)
    if report:
        check_writable(report, "the report")
    if resume and store.state() is None:
        raise FileNotFoundError(f"{store.location}: no conversion to resume (no cube here): leave out --resume to "
                                "start one")


def _convert_locked(store: CubeStore, owner: dict, spec: Spec, patches: list[PatchFiles], problems: list[Problem],
                    times: int, out: ConversionReport, *, resume: bool, workers: int | None,
                    scheduler: str | None, clouds: tuple[str, ...], tile: int, progress: bool) -> None:
    """The conversion's writes, under the writer lock: prepare, convert each patch, commit, cloud pass."""
    state, stored = _existing(store, spec, Path(out.source), times, resume)  # again: now nobody else writes
    new = [p for p in patches if p.key not in stored]
    problems = _only_new(problems, new)
    if out.on_error == "fail":
        _raise_if_any(problems, f"in {out.source}")
    state, first, header_problems = _prepare(store, owner, spec, state, new, Path(out.source), times, out.on_error,
                                             tile)
    placed = {tuple(key) for key in state.pending["patches"]} if state.pending else set()
    new = [p for p in new if p.key in placed]
    task_problems, out.patches_converted = _convert_new(store, spec, new, first, times, out.on_error, workers,
                                                        scheduler, progress)
    valid = store.array("valid")[:]
    if placed:  # (nothing is left to do if another writer finished the same work before this one got the lock)
        commit_complete(store, owner, state, valid, f"converted {len(placed)} patch(es) from {out.source}")
    out.patches_in_cube, out.patches_added, out.gaps = valid.shape[0], len(placed), state.gaps
    out.problems = [p.record() for p in problems + header_problems + task_problems]
    if clouds and spec.temporal:
        out.cloud_pass_patches = cloud_pass(store, owner, clouds, workers=workers, scheduler=scheduler,
                                            progress=progress)


def commit_complete(store: CubeStore, owner: dict, state: CubeState, valid: np.ndarray, done: str) -> None:
    """Commit a finished conversion (``done`` goes into the history), its consolidated metadata written first, so
    that a reader of a complete cube finds fresh metadata."""
    state.complete, state.pending, state.gaps = True, None, int((~valid).sum())
    state.history.append(f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} {done}")
    store.consolidate()
    store.commit(state, owner)
