"""Conversion straight from the published archives (and extracted trees), never extracting a tree.

Each archive is decompressed once. Its members stream in the order they lie in
the archive; a member's file is spooled into the scratch folder until its
patch has every time step of every modality (S1 and S2 come from different
archives), then the patch is placed in the cube (the store grows by the
patches completed so far, their labels written by this process) and a task
converts it exactly as a patch of a tree; its scratch files are deleted once it
is written. The archives whose members make up the same patches (``s1_X`` and
``s2_X``; the three SEN12MS-CR archives of a season) form a group and are read
at once, each kept within :data:`PACING` members of the others (they hold one
member per image each), so that archives written by walking the tree spool about one ROI
(see docs/convert-real-data.md). Several groups are read at once (``groups_at_once``),
each on its own threads; a group is done when its archives are read and all its
patches are written. A patch with members from several groups (archives under
other names form a group each) is completed by any of them and waits for those
still reading.

State, in the cube's ``pending`` record: the patches placed (as for a tree) and
the groups converted completely (``archives_done``). ``resume`` skips those
groups, and the members of patches written before; a patch is written when its
``valid`` row holds a True. Until every group is done the cube says
``complete: false``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Set
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..dataset.problems import FileProblem, Problem
from ..dataset.rois import ALL_ROIS, Roi, in_cr_split, select_rois
from ..parallel import RowBatches, TaskPool, task_pool
from ..store.outputs import check_not_in_cube, check_outside, writing
from ..store.schema import SPECS, PatchMeta, Spec
from ..store.store import CubeState, CubeStore, as_store
from .archives import Archive, ArchiveError, MemberStream, archive_group, archive_of, is_url, tree_path
from .assembly import Assembly, add_trees, held_steps
from .building import (
    STOPPED,
    ConversionError,
    ConversionReport,
    agreed_headers,
    check_destination,
    commit_complete,
    convert_patch,
    existing_cube,
    expected_of,
    finished,
    grow_store,
    place_patches,
    raise_if_any,
    resize_store,
    run_cloud_pass,
    write_labels,
)
from .options import ConversionOptions
from .sources import Sources

PACING = 16
"""How many members an archive may read ahead of the others of its group (which hold as many members each)."""
BACKLOG_PER_WORKER = 4
"""Patches complete but not yet written, per worker, before the archives pause."""
SCRATCH_MARKER = ".crts-scratch"
"""File that marks a scratch folder as this converter's (only such a folder's contents are deleted)."""
DEFAULT_TIMES = 30
"""Time steps of a SEN12MS-CR-TS patch: what a new cube from archives gets unless told otherwise."""
WORKERS_PER_GROUP = 6
"""Default groups read at once: one per this many workers. Measured on the synthetic archives: one group's reader
of its S2 archive (igzip, one core) decompresses about 350 MB/s; a worker converts about 60 MB/s of GeoTIFFs per
core."""


def resolved(value: int | None, name: str) -> int:
    """A count that :func:`convert_sources` resolves (``workers``, ``times``, ``groups_at_once``).

    Raises
    ------
    ValueError
        If it is None: the options did not come through :func:`convert_sources`.
    """
    if value is None:
        raise ValueError(f"invalid {name} None: an archive conversion takes the options that convert_sources resolves")
    return value


def prepare_scratch(scratch: str | os.PathLike) -> Path:
    """An empty scratch folder: created, or a previous conversion's emptied; any other non-empty folder refused."""
    scratch = Path(scratch)
    if scratch.exists() and any(scratch.iterdir()):
        if not (scratch / SCRATCH_MARKER).exists():
            raise FileExistsError(
                f"{scratch}: the scratch folder holds files that are not a conversion's scratch; "
                "give an empty or new folder"
            )
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / SCRATCH_MARKER).write_text("scratch of crts convert; deleted when it finishes\n")
    return scratch


def wanted_rois(spec: Spec, rois: list[str] | None, split: str | None, region: str | None) -> Callable[[Roi], bool]:
    """Whether an ROI is to be converted (as :func:`cube.ingest.conversion.convert` selects from a tree)."""
    if rois:
        chosen = {Roi.parse(r, known=spec.temporal) for r in rois}
        return chosen.__contains__
    if spec.temporal:
        return set(select_rois(split or "all", region or "all")).__contains__
    return lambda roi: in_cr_split(roi, split or "all", region or "all")


def _stream(
    stream: MemberStream,
    assembly: Assembly,
    pace: dict,
    stop: threading.Event,
    errors: list,
    backlog: Callable[[], bool],
) -> None:
    """Read one archive to its end into the assembly, kept near the others of its group (thread body); its refused
    members and its error if it breaks go to ``errors``."""
    try:
        for member, content in stream:
            relative = tree_path(member)
            if isinstance(content, ArchiveError):  # refused unread: a gap, the archive read on
                errors.append(content)
            elif relative is not None:
                assembly.add(relative, f"{stream.archive.name}!{member}", content, group=stream.archive.group)
            assembly.count_read(
                pace,
                stream,
                lambda: stop.is_set() or (pace[stream] <= min(pace.values()) + PACING and not backlog()),
                timeout=5,
            )
            if stop.is_set():
                return
    except Exception as err:  # handed to the main thread, which raises all but a broken archive
        errors.append(err)
    finally:
        assembly.stop_counting(pace, stream)


def read_group(
    archives: list[Archive], assembly: Assembly, stop: threading.Event, backlog: Callable[[], bool]
) -> tuple[list[threading.Thread], list]:
    """Start reading a group's archives at once; the threads, and a list that collects their errors."""
    errors: list = []
    pace: dict = {}
    streams = []
    for archive in archives:
        try:
            streams.append(MemberStream(archive))
        except ArchiveError as err:
            errors.append(err)
    pace.update(dict.fromkeys(streams, 0))
    threads = [
        threading.Thread(
            target=_stream,
            args=(s, assembly, pace, stop, errors, backlog),
            daemon=True,
            name=f"archive {s.archive.name}",
        )
        for s in streams
    ]
    for thread in threads:
        thread.start()
    return threads, errors


def renamed(problem: Problem, names: dict[str, str]) -> Problem:
    """A problem found in a file, naming the member it came from (not its scratch copy)."""
    return replace(problem, path=names.get(problem.path, problem.path))


def _failed(err: FileProblem, names: dict[str, str]) -> ConversionError:
    return ConversionError(
        f"{names.get(err.path, err.path)}: {err.message}; the cube stays marked incomplete: fix "
        "the archive and run the same command with --resume, or use --on-error skip"
    )


@dataclass
class _Reading:
    """A group of archives being read: its reader threads and the errors they hand over."""

    name: str
    archives: list[Archive]
    threads: list[threading.Thread]
    errors: list
    stop: threading.Event
    flushed: bool = False
    """Its readers ended and its patches still missing files were placed."""

    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def close(self, assembly: Assembly) -> None:
        """Stop its readers (after an error) and wait for them."""
        self.stop.set()
        assembly.wake()
        for thread in self.threads:
            thread.join()


class ArchiveConversion:
    """One conversion from :class:`cube.ingest.sources.Sources` into a cube, under its writer lock.

    Everything it needs comes at construction: the cube (``store``, the lock's ``owner``, its ``state`` and the
    keys of the patches ``stored`` before), what to read (``spec``, ``sources``), the report to fill (``out``), an
    empty ``scratch`` folder and the ``options`` with their defaults resolved (``workers``, ``times``,
    ``groups_at_once``). It makes room in the store for the patches an interrupted conversion placed.
    """

    def __init__(
        self,
        store: CubeStore,
        owner: dict,
        spec: Spec,
        sources: Sources,
        out: ConversionReport,
        state: CubeState | None,
        stored: set,
        scratch: Path,
        options: ConversionOptions,
    ) -> None:
        self.store, self.owner, self.spec, self.sources, self.out = store, owner, spec, sources, out
        self.state, self.options = state or CubeState(), options
        pending = self.state.pending or {}
        if pending and not pending.get("grown"):  # its creation was interrupted: nothing placed counts
            pending = {}
        self.times, self.workers = resolved(options.times, "times"), resolved(options.workers, "workers")
        self.groups_at_once = resolved(options.groups_at_once, "groups_at_once")
        self.start = pending.get("start", self.store.array("valid").shape[0] if self.state.complete else 0)
        self.positions = {tuple(k): self.start + i for i, k in enumerate(pending.get("patches", []))}
        self.created = bool(pending.get("grown")) or self.state.complete
        self.expected = expected_of(store, spec) if self.created else None
        self.names: dict[str, str] = {}
        self.running: dict[tuple, dict] = {}
        self.problems: list[Problem] = []
        self.pool: TaskPool | None = None
        """The pool that runs the patches' tasks, while :meth:`run` runs."""
        self.rows: RowBatches | None = None
        """The ``valid`` rows of finished patches, written by this process (once the store exists)."""
        wanted = wanted_rois(spec, options.rois, options.split, options.region)
        self.assembly = Assembly(spec, self.times, wanted, set(stored) | self._resumed(), scratch)

    def _resumed(self) -> set[tuple]:
        """Patches placed by the interrupted conversion that were written (skipped now); makes room for all placed."""
        if not self.positions:
            return set()
        total = self.start + len(self.positions)
        resize_store(self.store, total)  # killed between the commit of a batch and its growth, or during the growth
        # (arrays are resized one by one): every per-patch array is checked, not one of them
        rows = self.store.values("valid", self.start, total).reshape(len(self.positions), -1)
        valid = np.asarray(rows.any(axis=1))  # a flag per patch (numpy types the reduction as a scalar or an array)
        return {k for k, p in self.positions.items() if valid[p - self.start]}

    def backlog(self) -> bool:
        """Whether the archives pause: as many patches complete or being written as
        :data:`BACKLOG_PER_WORKER` per worker."""
        return self.assembly.ready_count() + len(self.running) >= BACKLOG_PER_WORKER * self.workers

    def _commit(self) -> None:
        self.store.commit(self.state, self.owner)

    def _make_room(self, metas: list[PatchMeta], dtypes: dict, size: int) -> None:
        """Create the store from the first batch, or grow it by a batch of patches not placed before."""
        keys = [[m.roi.group, m.roi.number, m.pid] for m in metas]
        if not self.created:
            place_patches(
                self.store,
                self.owner,
                self.spec,
                self.state,
                0,
                metas,
                self.times,
                size,
                dtypes,
                self.options.tile,
                self.sources.root,
                archives_done=[],
            )
            self.created, self.expected = True, expected_of(self.store, self.spec)
        else:
            self.state.complete = False
            self.state.pending = self.state.pending or {
                "start": self.start,
                "patches": [],
                "grown": True,
                "archives_done": [],
            }
            total = self.start + len(self.state.pending["patches"])
            self.state.pending["patches"] += keys
            self._commit()
            grow_store(self.store, self.spec, total, metas, self.times)
        for key in keys:
            self.positions[tuple(key)] = self.start + len(self.positions)

    def place(self, keys: list[tuple]) -> None:
        """Put patches that are complete (or final with gaps) into the cube and start their tasks."""
        taken = self.assembly.take(keys)
        if not taken:
            return
        for _, members in taken:
            self.names.update({str(m.path): m.name for m in members.values()})
        known = {m.path: m.header for _, members in taken for m in members.values() if m.header}
        georef, dtypes, size, problems = agreed_headers([p for p, _ in taken], self.spec, known)
        self._problems([renamed(p, self.names) for p in problems], "in the headers")
        for patch, members in taken:
            if patch.key not in georef:  # no readable header: it cannot be placed (as from a tree)
                self.assembly.release(members)
        taken = [(p, m) for p, m in taken if p.key in georef]
        metas = [
            PatchMeta(p.roi, p.pid, *georef[p.key], p.dates, {s: m.name for s, m in members.items()})
            for p, members in taken
        ]
        fresh = [meta for meta in metas if (meta.roi.group, meta.roi.number, meta.pid) not in self.positions]
        if fresh:
            self._make_room(fresh, dtypes, size)
        for meta in metas:
            if meta not in fresh:  # placed by the interrupted conversion: its labels again, in case they were lost
                write_labels(
                    self.store,
                    self.spec,
                    self.positions[(meta.roi.group, meta.roi.number, meta.pid)],
                    [meta],
                    self.times,
                )
        for (patch, members), meta in zip(taken, metas, strict=True):
            self.running[patch.key] = members
            self.tasks().submit(
                patch.key,
                self.store,
                self.positions[patch.key],
                self.spec.layout,
                self.times,
                {s: str(m.path) for s, m in members.items()},
                self.expected,
                meta.epsg,
                meta.transform,
                self.options.on_error,
                (patch.roi, patch.pid),
            )
        self.out.patches_converted += len(taken)

    def tasks(self) -> TaskPool:
        """The pool of :meth:`run`.

        Raises
        ------
        RuntimeError
            Outside :meth:`run`.
        """
        if self.pool is None:
            raise RuntimeError("an archive conversion places patches only while it runs (ArchiveConversion.run)")
        return self.pool

    def _problems(self, problems: list[Problem], what: str) -> None:
        """Problems found ``what`` (e.g. "in the names"): refused under ``on_error='fail'``, else recorded."""
        if self.options.on_error == "fail":
            raise_if_any(problems, f"{what} of {self.sources.root}")
        self.problems += problems

    def harvest(self, timeout: float) -> None:
        """Collect the tasks that ended: their problems, and their scratch files deleted."""
        try:
            finished = self.tasks().finished(timeout)
        except FileProblem as err:
            raise _failed(err, self.names) from None
        for key, (index, valid, problems) in finished:
            self.rows = self.rows or RowBatches(self.store, "valid")
            self.rows.add(index, valid)
            self.problems += [renamed(p, self.names) for p in problems]
            members = self.running.pop(key)
            self.assembly.release(members)
            for member in members.values():
                self.names.pop(str(member.path), None)

    def _step(self, timeout: float) -> None:
        """Place what is ready, collect what has ended, and stop at problems under ``on_error='fail'``."""
        ready, found = self.assembly.wait_ready(timeout)
        self._problems(found, "in the names")
        with writing(self.store.location, STOPPED):
            if ready:
                self.place(ready)
            self.harvest(timeout if self.running and not ready else 0)

    def _broken(self, errors: list) -> None:
        """Errors of the archive readers: a full scratch disk always stops; a broken archive under ``fail``."""
        while errors:
            err = errors.pop(0)
            if not isinstance(err, ArchiveError) or self.options.on_error == "fail":
                if isinstance(err, ArchiveError):
                    raise ConversionError(
                        f"{err}; the cube stays marked incomplete: replace the archive and run "
                        "the same command with --resume, or use --on-error skip"
                    ) from None
                raise err
            self.problems.append(err.located())

    def _flush(self, ended: str | None, reading: Set[str] = frozenset()) -> None:
        """Patches that can get no more files (see :meth:`Assembly.incomplete`): their gaps are problems, the rest
        of them is converted."""
        keys, missing = self.assembly.incomplete(self.sources.root, ended, reading)
        self._check_times(keys)
        self._problems(missing, "in the archives")
        if keys:
            self.place(keys)

    def _check_times(self, keys: list[tuple]) -> None:
        """Before any patch was complete, patches that all end at the same time step (archives written with fewer
        steps than the cube's): one line saying ``--times``, rather than the missing steps of every patch."""
        if self.created or not keys or not self.spec.temporal:
            return
        steps = held_steps(self.assembly.patches_of(keys), self.spec.modalities)
        if steps is not None and steps < self.times:
            raise ValueError(
                f"{self.sources.root}: the archives hold {steps} time step(s) per patch, not "
                f"{self.times}: convert with --times {steps} (times={steps})"
            )

    def _advance(self, reading: _Reading, others: list[_Reading]) -> bool:
        """Errors of a group's readers; once they ended, its incomplete patches placed (but those that also wait
        for one of the ``others`` still reading, which places them when it ends); once all its patches are written,
        the group marked done (True)."""
        alive = reading.alive()
        self._broken(reading.errors)
        if alive:
            return False
        if not reading.flushed:  # the others' state now, after this one's end: of two ending at once, one sees both
            self._flush(reading.name, {other.name for other in others if other.alive()})
            reading.flushed = True
        if self.assembly.holds_members_of(reading.name, self.running):
            return False
        if self.rows:
            self.rows.flush()  # before the group counts as done: a resume reads it no more
        if self.state.pending is not None:
            self.state.pending["archives_done"].append(reading.name)
            self._commit()
        self.out.archives_read += [a.name for a in reading.archives]
        return True

    def read_groups(self, groups: list[tuple[str, list[Archive]]]) -> None:
        """Read the groups' archives, ``groups_at_once`` at a time, converting patches as they complete."""
        reading: list[_Reading] = []
        try:
            while groups or reading:
                while groups and len(reading) < self.groups_at_once:
                    name, archives = groups.pop(0)
                    stop = threading.Event()
                    reading.append(
                        _Reading(name, archives, *read_group(archives, self.assembly, stop, self.backlog), stop)
                    )
                self._step(0.1)
                reading = [r for r in reading if not self._advance(r, [other for other in reading if other is not r])]
        finally:
            for r in reading:
                r.close(self.assembly)

    def run(self, pool: TaskPool, groups: dict[str, list[Archive]]) -> None:
        """Trees first (their patches may wait for archive members), then the groups not done before."""
        self.pool = pool
        try:
            add_trees(self.sources.trees, self.sources.root, self.assembly)
            self._step(0)
            done = set((self.state.pending or {}).get("archives_done", []))
            self.read_groups([(name, archives) for name, archives in groups.items() if name not in done])
            self._flush(None)
            while self.assembly.ready_count() or self.running:
                self._step(0.5)
            self._step(0)  # what the readers recorded after the last step (a second file for a slot, say)
        finally:  # also on an error: the patches written so far are done
            if self.rows:
                self.rows.flush()


def _selected_groups(sources: Sources, wanted: Callable[[Roi], bool]) -> dict[str, list[Archive]]:
    """The groups to read: a published SEN12MS-CR-TS group (``africa``, ``africa_test`` ...) only if it can hold a
    chosen ROI (so ``--split test`` reads no train archive); every other group."""
    groups = sources.groups()
    if sources.layout != "sen12mscrts":
        return groups
    published = {archive_group(archive_of("S1", roi)[0]) for roi in ALL_ROIS}
    needed = {archive_group(archive_of("S1", roi)[0]) for roi in ALL_ROIS if wanted(roi)}
    return {name: archives for name, archives in groups.items() if name not in published or name in needed}


def _check_end(conversion: ArchiveConversion, rois: list[str] | None, stored: set) -> None:
    """After the last archive: every ROI asked for was found, something was converted, every placed patch labelled."""
    seen = conversion.assembly.seen
    missing = [r for r in rois or [] if Roi.parse(r, known=conversion.spec.temporal) not in seen]
    if missing:
        raise ValueError(f"{conversion.sources.root}: no files of ROI(s) {', '.join(missing)}")
    if not conversion.positions and not stored:
        raise ValueError(f"{conversion.sources.root}: no patches of the chosen ROIs / split / region")
    if conversion.positions:
        labels = conversion.store.values("roi_group", conversion.start)
        if (labels == "").any():
            raise ValueError(
                f"{conversion.store.location}: patches placed by the interrupted conversion were not "
                "found again: resume with the same sources"
            )


def convert_archives(
    sources: Sources, store: CubeStore, owner: dict, spec: Spec, out: ConversionReport, options: ConversionOptions
) -> CubeState:
    """The conversion's writes from archives, under the writer lock; returns the state as committed at the end.
    ``options`` come with their defaults resolved (``workers``, ``times``, ``scratch``, ``groups_at_once``)."""
    state, stored = existing_cube(store, spec, sources.root, resolved(options.times, "times"), options.resume)
    if state is not None and state.pending and "archives_done" not in state.pending:
        raise ValueError(
            f"{store.location}: resume must use the same source and ROIs as the interrupted "
            "conversion (it converted a tree)"
        )
    scratch = prepare_scratch(options.scratch or default_scratch(store))  # convert_sources gives one
    try:  # a refused or failed conversion leaves no scratch either (a resume starts from an empty one)
        conversion = ArchiveConversion(store, owner, spec, sources, out, state, stored, scratch, options)
        with task_pool(convert_patch, conversion.workers, options.scheduler, options.progress, "converting") as pool:
            conversion.run(pool, _selected_groups(sources, conversion.assembly.wanted))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _check_end(conversion, options.rois, stored)
    out.scratch_peak_bytes = conversion.assembly.scratch_peak
    out.problems = [p.record() for p in conversion.problems]
    out.archives_read.sort()
    state = conversion.state
    if state.pending is not None:
        out.patches_added = len(conversion.positions)
        commit_complete(
            store,
            owner,
            state,
            store.values("valid"),
            f"converted {out.patches_added} patch(es) from the archives in {sources.root}",
        )
    return state


def _times(store: CubeStore, spec: Spec, times: int | None) -> int:
    """Time steps of the patches: the cube's if it has them (a different ``times`` is refused later), else given."""
    if not spec.temporal:
        return 1
    if store.group_attributes("") is not None and "time" in store.children():
        return times or store.array("time").shape[0]
    if times is not None and not 1 <= times <= DEFAULT_TIMES:
        raise ValueError(f"invalid times {times}: SEN12MS-CR-TS patches have 1 to {DEFAULT_TIMES} time steps")
    return times or DEFAULT_TIMES


def default_scratch(store: CubeStore) -> Path:
    """``<cube>.scratch`` beside a local cube; for a cube in a bucket, a folder in the system's temporary folder."""
    if store.local:
        root = store.folder()
        return root.with_name(root.name + ".scratch")
    digest = hashlib.sha256(store.location.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"crts-scratch-{digest}"


def convert_sources(
    sources: Sources, dst: str | os.PathLike | CubeStore, options: ConversionOptions, start_time: float
) -> ConversionReport:
    """:func:`cube.ingest.conversion.convert` from archives (and trees): its checks, the writes under the lock, the
    cloud pass."""
    store = as_store(dst, storage_options=options.storage_options)
    local = [Path(a.location) for a in sources.archives if not is_url(a.location)] + sources.trees
    check_destination(store, local, options.report, options.resume)
    scratch = Path(options.scratch) if options.scratch else default_scratch(store)
    check_not_in_cube(scratch, "the scratch folder")
    for source in local:
        check_outside(scratch, source, "the scratch folder")
    spec = SPECS[sources.layout]
    times = _times(store, spec, options.times)
    out = ConversionReport(sources.root, store.location, spec.layout, options.on_error)
    workers = options.workers or os.cpu_count() or 1
    options = replace(
        options,
        workers=workers,
        times=times,
        scratch=scratch,
        groups_at_once=options.groups_at_once or max(1, workers // WORKERS_PER_GROUP),
    )
    with store.reopened("r+").writer("conversion", force_unlock=options.force_unlock) as owner:
        writable = store.reopened("r+")
        state = convert_archives(sources, writable, owner, spec, out, options)
        out.patches_in_cube, out.gaps = writable.array("valid").shape[0], state.gaps
        run_cloud_pass(writable, owner, spec, out, options)
    return finished(out, store, options.report, start_time)
