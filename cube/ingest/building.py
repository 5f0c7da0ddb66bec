"""The building blocks of a conversion, shared by the tree driver (:mod:`cube.ingest.tree`) and the archive driver
(:mod:`cube.ingest.archive_conversion`).

A conversion is a sequence of idempotent steps, so that a run killed at any
moment and started again with ``resume=True`` finishes with the same cube:

1. check the destination (:func:`check_destination`) and the cube there
   (:func:`existing_cube`);
2. commit the state ``complete: false`` with the ``pending`` patches, then
   create the store from a template (after removing what an interrupted
   creation left) or, for new ROIs, grow an existing one (:func:`place_patches`);
3. one task per patch reads and checks its files and writes its shards
   (:func:`convert_patch`); the driver's process writes its ``valid`` row, in
   batches (a patch whose row is all true is done);
4. the state says ``complete: true`` (:func:`commit_complete`, one write).

Steps 2-4 run under the cube's writer lock, and each commits the cube's state
(``cube.store.store.CubeState``) in one write before the work it announces.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from .. import __version__
from ..clouds.compute import cloud_pass
from ..dataset.bands import DTYPES, bands_of
from ..dataset.problems import FileProblem, Problem
from ..dataset.rois import Roi
from ..store.outputs import check_not_in_cube, check_outside, check_writable
from ..store.schema import SCHEMA_VERSION, SPECS, PatchMeta, Spec, encoding, patch_variables, table_encoding, template
from ..store.store import CubeState, CubeStore, checked_state, member_array, plain_files_ignored
from .options import ConversionOptions
from .validate import Expected, HeaderFields, PatchFiles, read_checked, read_header

STOPPED = "the conversion stopped (the patches written so far are kept: run the same command with --resume to finish)"
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


def raise_if_any(problems: list[Problem], what: str) -> None:
    """Refuse ``problems`` (found ``what``, e.g. "in SRC"), if any, in one :class:`ConversionError` listing 20."""
    if problems:
        listed = "\n".join(f"  {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ConversionError(
            f"{len(problems)} problem(s) {what}:\n{listed}{more}\n"
            "(on_error='skip' / --on-error skip converts the rest and records the gaps)"
        )


Georef = dict[tuple[str, int, int], tuple[int, tuple[float, ...]]]
"""The georeference of patches (EPSG code, affine transform) by key (ROI group, ROI number, patch id)."""


def agreed_headers(
    patches: list[PatchFiles], spec: Spec, known: Mapping[Path, HeaderFields] | None = None
) -> tuple[Georef, dict[str, np.dtype], int, list[Problem]]:
    """Georeference of each patch, and dtype per modality and patch size, by agreement of file headers.

    Per patch, headers are read (S2 and S1 alternately, from the first time step
    on) until two agree on CRS and transform, so one odd file cannot impose its
    georeference on the others; dtype and size are the most common ones seen.
    ``known``: headers read already (from archive members' bytes), by file; only
    the others are read.
    """
    georef: Georef = {}
    dtypes: dict[str, Counter] = {m: Counter() for m in spec.modalities}
    sizes: Counter = Counter()
    problems: list[Problem] = []
    for patch in patches:
        seen: list[tuple[int, tuple[float, ...]]] = []
        for slot in sorted(patch.files, key=lambda s: (s[1], s[0] != "S2"))[:6]:
            try:
                path = patch.files[slot]
                epsg, transform, dtype, _, width = (known or {}).get(path) or read_header(path)
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
    chosen = {
        m: counts.most_common(1)[0][0] if counts else DTYPES["S1" if m == "S1" else "S2"]
        for m, counts in dtypes.items()
    }
    return georef, chosen, (sizes.most_common(1)[0][0] if sizes else 256), problems


READ_THREADS = 4
"""Files of a patch read at once (a file's read, by tifffile's path or GDAL, releases the GIL): overlaps file I/O
with checking and decoding. One pool of this process serves every patch (:func:`read_pool`)."""


@functools.cache
def read_pool() -> ThreadPoolExecutor:
    """The threads that read patches' files, started once per process (not once per patch)."""
    return ThreadPoolExecutor(READ_THREADS, thread_name_prefix="cube-read")


PATCH_BUFFERS = threading.local()
"""Per thread, one patch's images per modality (:func:`patch_buffer`), kept from patch to patch."""


def patch_buffer(modality: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """This thread's buffer for one patch's images of ``modality``: the one of its previous patch where shape and
    dtype match. A fresh 51 MB S2 patch per patch is above glibc's largest mmap threshold (32 MB), so each was
    mapped, page-faulted in and unmapped again: 0.17 s of system time per 8 patches."""
    buffers = PATCH_BUFFERS.__dict__.setdefault("by_modality", {})
    buffer = buffers.get(modality)
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
        buffer = buffers[modality] = np.empty(shape, dtype)
    return buffer


def _read_into(
    out: np.ndarray, path: str, modality: str, expected: Expected, epsg: int, transform: tuple[float, ...]
) -> FileProblem | None:
    """Read and check one file into ``out`` (one copy of its pixels); its problem, if any."""
    try:
        out[...] = read_checked(Path(path), modality, expected, epsg, transform)
    except FileProblem as err:
        return err
    return None


def convert_patch(
    store: CubeStore,
    index: int,
    spec_name: str,
    times: int,
    files: dict[tuple[str, int], str],
    expected: dict[str, Expected],
    epsg: int,
    transform: tuple[float, ...],
    on_error: str,
    label: tuple[Roi, int],
) -> tuple[int, np.ndarray, list[Problem]]:
    """Read, check and write one patch's shards; returns its position, ``valid`` row and problems (the calling
    process writes the row, see :class:`cube.parallel.RowBatches`). Runs on a dask worker.

    Each file's pixels are copied once, straight into this thread's patch buffer (:func:`patch_buffer`), which is
    written out before the next patch of this thread reuses it."""
    spec = SPECS[spec_name]
    group = store.group(mode="r+")
    arrays = {m: member_array(group, m) for m in spec.modalities}
    data = {m: patch_buffer(m, (times, *a.shape[-3:]), a.dtype) for m, a in arrays.items()}
    slots = sorted(s for s in files if s[0] in data and s[1] < times)  # others were never written
    reads = [read_pool().submit(_read_into, data[m][t], files[m, t], m, expected[m], epsg, transform) for m, t in slots]
    futures_wait(reads)  # every read done, even where one raised: none writes into the buffer after this patch
    read = {slot: future.result() for slot, future in zip(slots, reads, strict=True)}
    valid = np.zeros((times, len(spec.modalities)), dtype=bool)
    problems: list[Problem] = []
    for mi, m in enumerate(spec.modalities):
        for t in range(times):
            problem = read.get((m, t))
            if problem is not None:
                if on_error == "fail":
                    raise problem
                problems.append(problem.located(*label, t, m))
            if (m, t) in read and problem is None:
                valid[t, mi] = True
            else:
                data[m][t] = arrays[m].fill_value
        store.write_shard(arrays[m], index, data[m] if spec.temporal else data[m][0])
    return index, valid if spec.temporal else valid[0], problems


def expected_of(store: CubeStore, spec: Spec) -> dict[str, Expected]:
    """What each modality's files must hold to fit the cube: band count, the cube's dtype and patch size."""
    group = store.group()
    size = member_array(group, spec.modalities[0]).shape[-1]
    return {m: Expected(len(bands_of(m)), np.dtype(member_array(group, m).dtype), size) for m in spec.modalities}


def create_store(store: CubeStore, ds_template: xr.Dataset, enc: dict) -> None:
    """Write the template into an empty store (what an interrupted creation left of it is removed first)."""
    ours = {*ds_template.variables, "zarr.json"}
    for name in store.children():
        if name in ours:
            store.delete(name)
    store.write_dataset(ds_template, compute=False, encoding={**table_encoding(ds_template), **enc}, mode="a")
    store.mark_incomplete()  # unconverted patches read as zeros: plain xr.open_zarr must not take it for a cube


def grow_store(store: CubeStore, spec: Spec, start: int, metas: list[PatchMeta], times: int) -> None:
    """Make room for new patches after ``start`` and write their labels (idempotent)."""
    resize_store(store, start + len(metas))
    write_labels(store, spec, start, metas, times)
    store.mark_incomplete()


def resize_store(store: CubeStore, total: int) -> None:
    """Give every per-patch array ``total`` patches."""
    with plain_files_ignored():  # a grown cube may hold its patch index
        for _, array in store.group(mode="r+").arrays():
            names = array.metadata.dimension_names if array.metadata.zarr_format == 3 else None
            if names and names[0] == "patch" and array.shape[0] != total:
                array.resize((total, *array.shape[1:]))


def write_labels(store: CubeStore, spec: Spec, start: int, metas: list[PatchMeta], times: int) -> None:
    """Write the labels, dates, georeference and paths of patches at ``start`` onwards."""
    with plain_files_ignored():
        labels = patch_variables(spec, metas, times)
        store.write_dataset(labels, region={"patch": slice(start, start + len(metas))}, mode="r+")


def _stored_keys(store: CubeStore, state: CubeState) -> set[tuple[str, int, int]]:
    """Keys of the patches converted before (those of an unfinished conversion excluded)."""
    upto = state.pending["start"] if state.pending else store.array("valid").shape[0]
    labels = [store.values(name, stop=upto).tolist() for name in ("roi_group", "roi", "patch_id")]
    return set(zip(*labels, strict=True))


def existing_cube(
    store: CubeStore, spec: Spec, src: Path | str, times: int, resume: bool
) -> tuple[CubeState | None, set[tuple[str, int, int]]]:
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
    if attributes is not None and attributes.get("schema_version") != SCHEMA_VERSION and state.complete:
        checked_state(store)  # an older cube: says how to upgrade it
    if (  # no root group (removed after patches were placed) is no such cube either
        attributes is None
        or attributes.get("schema_version") != SCHEMA_VERSION
        or attributes.get("layout") != spec.layout
    ):
        raise ValueError(f"{store.location}: exists and is not a {spec.title} cube of schema version {SCHEMA_VERSION}")
    if (root := attributes.get("source_root")) != str(src):
        raise ValueError(
            f"{store.location}: was converted from {root}, not {src}; a cube appends from its own source "
            f"root only (it records file paths relative to it): put the new ROI folders or archives in "
            f"{root} and run `crts convert {root} {store.location}` (it adds only the patches not in the "
            f"cube), or convert {src} into a new cube"
        )
    if spec.temporal and store.array("time").shape[0] != times:
        raise ValueError(f"{store.location}: has {store.array('time').shape[0]} time steps, {src} has {times}")
    return state, _stored_keys(store, state)


def root_attributes(spec: Spec, src: Path | str) -> dict:
    """The root attributes of a new cube converted from ``src``."""
    return {
        "title": f"{spec.title} data cube",
        "dataset": spec.title,
        "layout": spec.layout,
        "schema_version": SCHEMA_VERSION,
        "Conventions": "CF-1.10",
        "source_root": str(src),
        "created_by": f"cube {__version__}",
        "description": f"{spec.title} images ({', '.join(spec.modalities)}) exactly as in the source GeoTIFFs, "
        "labelled by ROI, patch, time step and band, with acquisition dates, georeference and a "
        "'valid' flag per file; see docs/schema.md",
    }


def place_patches(
    store: CubeStore,
    owner: dict,
    spec: Spec,
    state: CubeState,
    first: int,
    metas: list[PatchMeta],
    times: int,
    size: int,
    dtypes: dict[str, np.dtype],
    tile: int,
    src: Path | str,
    **pending: object,
) -> None:
    """Commit the patches ``metas`` as pending from store position ``first`` on, then create the store (``first``
    0) or grow it and write their labels, and commit that they have room (``pending.grown``). ``pending``: further
    entries of the pending record (the archive driver's ``archives_done``)."""
    chunking = encoding(spec, times, size, dtypes, tile)  # a bad tile fails here, before anything is written
    keys = [[m.roi.group, m.roi.number, m.pid] for m in metas]
    state.complete, state.pending = False, {"start": first, "patches": keys, "grown": False, **pending}
    store.commit(state, owner)
    if first == 0:
        create_store(store, template(spec, metas, times, size, dtypes, root_attributes(spec, src)), chunking)
    else:
        grow_store(store, spec, first, metas, times)
    state.pending["grown"] = True
    store.commit(state, owner)


def commit_complete(store: CubeStore, owner: dict, state: CubeState, valid: np.ndarray, done: str) -> None:
    """Commit a finished conversion (``done`` goes into the history), its consolidated metadata written first, so
    that a reader of a complete cube finds fresh metadata."""
    state.complete, state.pending, state.gaps = True, None, int((~valid).sum())
    state.history.append(f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} {done}")
    store.consolidate()
    store.commit(state, owner)


def run_cloud_pass(
    store: CubeStore, owner: dict, spec: Spec, out: ConversionReport, options: ConversionOptions
) -> None:
    """The cloud pass after a conversion, under its writer lock (SEN12MS-CR-TS only; none without detectors)."""
    if options.clouds and spec.temporal:
        out.cloud_pass_patches = cloud_pass(
            store,
            owner,
            options.clouds,
            workers=options.workers,
            scheduler=options.scheduler,
            progress=options.progress,
        )


def finished(
    out: ConversionReport, store: CubeStore, report: str | os.PathLike | None, start_time: float
) -> ConversionReport:
    """The report completed (patches in the cube, seconds) and written where asked."""
    if not out.patches_in_cube:
        out.patches_in_cube = store.array("valid").shape[0]
    out.seconds = round(time.perf_counter() - start_time, 2)
    if report:
        out.write(report)
    return out


def check_destination(store: CubeStore, sources: list[Path], report: str | os.PathLike | None, resume: bool) -> None:
    """Refuse, before any write, a cube or report inside a source or inside another cube, a place that holds
    something other than a cube or where the file system refuses new files, and ``resume`` without a conversion
    to resume."""
    for src in sources:
        if store.local:
            check_outside(store.folder(), src, "the cube")
        if report:
            check_outside(report, src, "the report")
    if store.local:
        check_not_in_cube(store.folder(), "the cube", itself=False)
    if report:
        check_not_in_cube(report, "the report", itself=False)
    store.check_cube_or_empty()
    if store.local and store.state() is None and store.group_attributes("") is None:  # a new cube (an existing
        check_writable(store.folder(), "the cube")  # one with nothing to add is not written: it may be read-only)
    if report:
        check_writable(report, "the report")
    if resume and store.state() is None:
        raise FileNotFoundError(
            f"{store.location}: no conversion to resume (no cube here): leave out --resume to start one"
        )
