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

import errno
import hashlib
import itertools
import os
import shutil
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..clouds.compute import cloud_pass
from ..dataset.bands import bands_of
from ..dataset.layout import CrFile, TsFile, parse_cr_path, parse_ts_path, scan_cr, scan_ts
from ..dataset.problems import FileProblem, Problem
from ..dataset.rois import ALL_ROIS, Roi, in_cr_split, select_rois
from ..parallel import RowBatches, task_pool
from ..store.outputs import check_not_in_cube, check_outside, writing
from ..store.schema import SPECS, PatchMeta, Spec, encoding, template
from ..store.store import CubeState, CubeStore, as_store
from .archives import (
    Archive,
    ArchiveError,
    MemberStream,
    archive_group,
    archive_name,
    archive_of,
    is_archive,
    is_url,
    tree_path,
)
from .conversion import (
    STOPPED,
    ConversionError,
    ConversionReport,
    _create,
    _existing,
    _grow,
    _headers,
    _raise_if_any,
    _resize,
    _root_attributes,
    _check_destination,
    _write_labels,
    commit_complete,
    convert_patch,
    finished,
)
from .validate import CR_MODALITIES, Expected, PatchFiles, check_complete, detect_layout

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


@dataclass
class Sources:
    """What a conversion reads besides a single tree: archives and trees, and the root names are relative to."""

    root: str
    layout: str
    archives: list[Archive] = field(default_factory=list)
    trees: list[Path] = field(default_factory=list)

    def groups(self) -> dict[str, list[Archive]]:
        out: dict[str, list[Archive]] = defaultdict(list)
        for archive in self.archives:
            out[archive.group].append(archive)
        return dict(sorted(out.items()))


def _layout_of_archive(name: str) -> str:
    return "sen12mscr" if archive_name(name).startswith("ROIs") else "sen12mscrts"


def resolve_sources(src: str | os.PathLike | list) -> Sources | None:
    """The archives and trees ``src`` names; None for a single extracted tree (converted as ever).

    ``src``: a tree, a folder of archives, an archive, an ``http(s)://`` URL of one,
    or a list of those.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the source that is missing, or neither a tree nor archives, or of another layout.
    """
    items = [str(s) for s in src] if isinstance(src, list | tuple) else [str(src)]
    archives: list[str] = []
    trees: list[Path] = []
    for item in items:
        if is_url(item) or (is_archive(item) and Path(item).is_file()):
            archives.append(item if is_url(item) else str(Path(item).resolve()))
        elif not Path(item).exists():
            raise FileNotFoundError(f"{item}: no such file, folder or URL")
        elif any(Path(item).glob("ROIs*")) or not Path(item).is_dir():
            detect_layout(Path(item))  # a tree (or a clear message of what it is not)
            trees.append(Path(item).resolve())
        else:
            found = sorted(str(p.resolve()) for p in Path(item).iterdir() if is_archive(p) and p.is_file())
            if not found:
                raise FileNotFoundError(f"{item}: holds neither ROIsXXXX/ folders nor .tar.gz archives")
            archives += found
    if not archives and len(trees) == 1:
        return None
    layouts = {_layout_of_archive(a) for a in archives} | {detect_layout(t) for t in trees}
    if len(layouts) > 1:
        raise ValueError(f"{', '.join(items)}: mixes SEN12MS-CR-TS and SEN12MS-CR sources; convert them into "
                         "separate cubes")
    local = [str(Path(a).parent) for a in archives if not is_url(a)] + [str(t.parent) for t in trees]
    root = os.path.commonpath(local) if local else archives[0].rsplit("/", 1)[0]
    named = [Archive(a, a if is_url(a) else os.path.relpath(a, root)) for a in archives]
    return Sources(root, layouts.pop(), named, trees)


@dataclass
class _Member:
    """A file of a patch: where it can be read now, its name as recorded, and whether it is a scratch copy."""

    path: Path
    name: str
    spooled: bool


class Assembly:
    """Patches being put together from members, as they arrive (from several threads)."""

    def __init__(self, spec: Spec, times: int, wanted: Callable[[Roi], bool], skip: set, scratch: Path) -> None:
        self.spec, self.times, self.wanted, self.skip, self.scratch = spec, times, wanted, skip, scratch
        self.cond = threading.Condition()
        self.patches: dict[tuple, PatchFiles] = {}
        self.members: dict[tuple, dict[tuple[str, int], _Member]] = defaultdict(dict)
        self.ready: list[tuple] = []
        self.problems: list[Problem] = []
        self.seen: set[Roi] = set()
        self.taken: set[tuple] = set()
        self.origin: dict[tuple, set[str]] = {}
        """The groups whose archives gave a patch its spooled members."""
        self.spooled = itertools.count()
        self.scratch_bytes = self.scratch_peak = 0

    def _parse(self, relative: str, name: str) -> TsFile | CrFile | None:
        root = Path("/")
        try:
            return (parse_ts_path if self.spec.temporal else parse_cr_path)(root / relative, root)
        except FileProblem as err:
            with self.cond:
                self.problems.append(Problem(name, err.message))
            return None

    def add(self, relative: str, name: str, content: bytes | None = None, path: Path | None = None,
            group: str | None = None) -> None:
        """One member: its tree path, recorded name, and its bytes (spooled, from ``group``'s archive) or its file
        (read in place)."""
        f = self._parse(relative, name)
        if f is None or not self.wanted(f.roi):
            return
        key = (f.roi.group, f.roi.number, f.pid)
        slot = (f.modality, f.t) if isinstance(f, TsFile) else (CR_MODALITIES[f.kind], 0)
        with self.cond:
            self.seen.add(f.roi)
            if key in self.skip or self._refused(f, key, slot, name):
                return
        if content is not None:
            path = self._spool(relative, content)
        with self.cond:
            if self._refused(f, key, slot, name):  # filled or converted while this member was spooled
                self.release({slot: _Member(path, name, content is not None)})
                return
            if group is not None:
                self.origin.setdefault(key, set()).add(group)
            self.members[key][slot] = _Member(path, name, content is not None)
            patch = self.patches.setdefault(key, PatchFiles(f.roi, f.pid))
            patch.files[slot] = path
            if isinstance(f, TsFile):
                patch.dates[slot] = f.date
            if len(patch.files) == len(self.spec.modalities) * self.times:
                self.ready.append(key)
            self.cond.notify_all()

    def _refused(self, f: TsFile | CrFile, key: tuple, slot: tuple[str, int], name: str) -> bool:
        """Whether a member cannot join its patch (a second file for its slot, a patch converted already, a time
        step beyond the cube's), the problem recorded; under :attr:`cond`."""
        first = self.members.get(key, {}).get(slot)
        if not (first or key in self.taken or slot[1] >= self.times):
            return False
        message = (f"time step {slot[1]} is beyond the cube's {self.times} steps" if slot[1] >= self.times
                   else f"a second file for {slot[0]} time step {slot[1]} of this patch (first: "
                        f"{first.name if first else 'converted already'})")
        self.problems.append(Problem(name, message, f.roi, f.pid, *slot[::-1]))
        return True

    def _spool(self, relative: str, content: bytes) -> Path:
        """The member written into the scratch folder, under a name no other member has (archives may repeat one)."""
        relative = Path(relative)
        path = self.scratch / relative.parent / f"{next(self.spooled)}-{relative.name}"
        part = path.with_name(path.name + ".part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            part.write_bytes(content)
            part.rename(path)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OSError(err.errno, f"the scratch folder is full ({self.scratch_bytes} B spooled): give "
                              "--scratch a folder with more room, then run the same command with --resume",
                              str(self.scratch)) from None
            raise
        with self.cond:
            self.scratch_bytes += len(content)
            self.scratch_peak = max(self.scratch_peak, self.scratch_bytes)
        return path

    def take(self, keys: list[tuple]) -> list[tuple[PatchFiles, dict[tuple[str, int], _Member]]]:
        """Remove patches from the assembly, with their members."""
        with self.cond:
            out = [(self.patches.pop(k), self.members.pop(k)) for k in keys if k in self.patches]
            self.taken.update(keys)
            self.ready = [k for k in self.ready if k not in set(keys)]
            return out

    def release(self, members: dict[tuple[str, int], _Member]) -> None:
        """Delete the scratch files of members done with (a written patch's, or one refused after spooling)."""
        for member in members.values():
            if member.spooled:
                size = member.path.stat().st_size if member.path.exists() else 0
                member.path.unlink(missing_ok=True)
                with self.cond:
                    self.scratch_bytes -= size
                    self.cond.notify_all()


def prepare_scratch(scratch: str | os.PathLike) -> Path:
    """An empty scratch folder: created, or a previous conversion's emptied; any other non-empty folder refused."""
    scratch = Path(scratch)
    if scratch.exists() and any(scratch.iterdir()):
        if not (scratch / SCRATCH_MARKER).exists():
            raise FileExistsError(f"{scratch}: the scratch folder holds files that are not a conversion's scratch; "
                                  "give an empty or new folder")
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


def _stream(stream: MemberStream, assembly: Assembly, pace: dict, stop: threading.Event,
            errors: list, backlog: Callable[[], bool]) -> None:
    """Read one archive to its end into the assembly, kept near the others of its group (thread body); its refused
    members and its error if it breaks go to ``errors``."""
    try:
        for member, content in stream:
            relative = tree_path(member)
            if isinstance(content, ArchiveError):  # refused unread: a gap, the archive read on
                errors.append(content)
            elif relative is not None:
                assembly.add(relative, f"{stream.archive.name}!{member}", content, group=stream.archive.group)
            with assembly.cond:
                pace[stream] += 1
                assembly.cond.notify_all()
                assembly.cond.wait_for(lambda: stop.is_set() or (
                    pace[stream] <= min(pace.values()) + PACING and not backlog()), timeout=5)
            if stop.is_set():
                return
    except Exception as err:  # noqa: BLE001 (handed to the main thread, which raises all but a broken archive)
        errors.append(err)
    finally:
        with assembly.cond:
            pace.pop(stream, None)
            assembly.cond.notify_all()


def read_group(archives: list[Archive], assembly: Assembly, stop: threading.Event,
               backlog: Callable[[], bool]) -> tuple[list[threading.Thread], list]:
    """Start reading a group's archives at once; the threads, and a list that collects their errors."""
    errors: list = []
    pace: dict = {}
    streams = []
    for archive in archives:
        try:
            streams.append(MemberStream(archive))
        except ArchiveError as err:
            errors.append(err)
    pace.update({s: 0 for s in streams})
    threads = [threading.Thread(target=_stream, args=(s, assembly, pace, stop, errors, backlog), daemon=True,
                                name=f"archive {s.archive.name}") for s in streams]
    for thread in threads:
        thread.start()
    return threads, errors


def add_trees(trees: list[Path], root: str, assembly: Assembly) -> None:
    """The files of extracted trees, read in place (nothing is spooled)."""
    for tree in trees:
        files, problems = scan_ts(tree) if assembly.spec.temporal else scan_cr(tree)
        with assembly.cond:
            assembly.problems += problems
        for f in files:
            assembly.add(f.path.relative_to(tree).as_posix(), os.path.relpath(f.path, root), path=f.path)


def incomplete(assembly: Assembly, root: str, ended: str | None,
               reading: set[str] = frozenset()) -> tuple[list[tuple], list[Problem]]:
    """Patches still missing files and the problems naming what is missing: with ``ended`` None all of them, else
    those with scratch files from the archives of group ``ended`` and of no group still ``reading``."""
    with assembly.cond:
        keys = [k for k in assembly.members if k in assembly.patches and k not in assembly.ready
                and (ended is None or (ended in assembly.origin.get(k, ()) and not assembly.origin[k] & reading))]
        patches = [assembly.patches[k] for k in keys]
    problems = check_complete(patches, Path(root), "sen12mscrts" if assembly.spec.temporal else "sen12mscr",
                              assembly.spec.modalities, assembly.times)
    return keys, problems


def held_steps(patches: list[PatchFiles], modalities: tuple[str, ...]) -> int | None:
    """The time steps every one of ``patches`` holds, if they agree: all of 0 to n - 1 of every modality, none
    after; None if they do not.

    Examples
    --------
    >>> from cube.dataset.rois import Roi
    >>> patch = PatchFiles(Roi("ROIs1868", 17), 0, {(m, t): Path() for m in ("S1", "S2") for t in range(12)})
    >>> held_steps([patch], ("S1", "S2")), held_steps([patch], ("S1", "S2", "S2_cloudy"))
    (12, None)
    """
    counts = {len({t for _, t in p.files}) for p in patches}
    if len(counts) != 1:
        return None
    steps = counts.pop()
    full = {(m, t) for m in modalities for t in range(steps)}
    return steps if all(set(p.files) == full for p in patches) else None


def expected_of(store: CubeStore, spec: Spec) -> dict[str, Expected]:
    group = store.group()
    size = group[spec.modalities[0]].shape[-1]
    return {m: Expected(len(bands_of(m)), np.dtype(group[m].dtype), size)
            for m in spec.modalities}


def renamed(problem: Problem, names: dict[str, str]) -> Problem:
    """A problem found in a file, naming the member it came from (not its scratch copy)."""
    return replace(problem, path=names.get(problem.path, problem.path))


def _failed(err: FileProblem, names: dict[str, str]) -> ConversionError:
    return ConversionError(f"{names.get(err.path, err.path)}: {err.message}; the cube stays marked incomplete: fix "
                           "the archive and run the same command with --resume, or use --on-error skip")


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
        with assembly.cond:
            assembly.cond.notify_all()
        for thread in self.threads:
            thread.join()


class ArchiveConversion:
    """One conversion from :class:`Sources` into a cube, under its writer lock."""

    def __init__(self, store: CubeStore, owner: dict, spec: Spec, sources: Sources, out: ConversionReport,
                 state: CubeState | None, assembly: Assembly, *, on_error: str, tile: int) -> None:
        self.store, self.owner, self.spec, self.sources, self.out = store, owner, spec, sources, out
        self.state, self.assembly, self.on_error, self.tile = state or CubeState(), assembly, on_error, tile
        self.times = assembly.times
        pending = self.state.pending or {}
        if pending and not pending.get("grown"):  # its creation was interrupted: nothing placed counts
            pending = {}
        self.start = pending.get("start", self.store.array("valid").shape[0] if self.state.complete else 0)
        self.positions = {tuple(k): self.start + i for i, k in enumerate(pending.get("patches", []))}
        self.created = bool(pending.get("grown")) or self.state.complete
        self.expected = expected_of(store, spec) if self.created else None
        self.names: dict[str, str] = {}
        self.running: dict[tuple, dict] = {}
        self.problems: list[Problem] = []
        self.pool = None
        self.rows: RowBatches | None = None
        """The ``valid`` rows of finished patches, written by this process (once the store exists)."""
        self.limit = BACKLOG_PER_WORKER
        self.at_once = 1
        """Groups of archives read at once."""

    def resumed(self) -> set[tuple]:
        """Patches placed by the interrupted conversion that were written (skipped now); makes room for all placed."""
        if not self.positions:
            return set()
        total = self.start + len(self.positions)
        _resize(self.store, total)  # killed between the commit of a batch and its growth, or during the growth
        # (arrays are resized one by one): every per-patch array is checked, not one of them
        valid = self.store.array("valid")[self.start:total].reshape(len(self.positions), -1).any(axis=1)
        return {k for k, p in self.positions.items() if valid[p - self.start]}

    def backlog(self) -> bool:
        return len(self.assembly.ready) + len(self.running) >= self.limit

    def _commit(self) -> None:
        self.store.commit(self.state, self.owner)

    def _make_room(self, metas: list[PatchMeta], dtypes: dict, size: int) -> None:
        """Create the store from the first batch, or grow it by a batch of patches not placed before."""
        keys = [[m.roi.group, m.roi.number, m.pid] for m in metas]
        if not self.created:
            chunking = encoding(self.spec, self.times, size, dtypes, self.tile)
            self.state.complete = False
            self.state.pending = {"start": 0, "patches": keys, "grown": False, "archives_done": []}
            self._commit()
            _create(self.store, template(self.spec, metas, self.times, size, dtypes,
                                         _root_attributes(self.spec, self.sources.root)), chunking)
            self.state.pending["grown"], self.created = True, True
            self.expected = expected_of(self.store, self.spec)
            self._commit()
        else:
            self.state.complete = False
            self.state.pending = self.state.pending or {"start": self.start, "patches": [], "grown": True,
                                                        "archives_done": []}
            total = self.start + len(self.state.pending["patches"])
            self.state.pending["patches"] += keys
            self._commit()
            _grow(self.store, self.spec, total, metas, self.times)
        for key in keys:
            self.positions[tuple(key)] = self.start + len(self.positions)

    def place(self, keys: list[tuple]) -> None:
        """Put patches that are complete (or final with gaps) into the cube and start their tasks."""
        taken = self.assembly.take(keys)
        if not taken:
            return
        for _, members in taken:
            self.names.update({str(m.path): m.name for m in members.values()})
        georef, dtypes, size, problems = _headers([p for p, _ in taken], self.spec)
        self._problems([renamed(p, self.names) for p in problems], "in the headers")
        for patch, members in taken:
            if patch.key not in georef:  # no readable header: it cannot be placed (as from a tree)
                self.assembly.release(members)
        taken = [(p, m) for p, m in taken if p.key in georef]
        metas = [PatchMeta(p.roi, p.pid, *georef[p.key], dates=p.dates,
                           paths={s: m.name for s, m in members.items()}) for p, members in taken]
        fresh = [meta for meta in metas if (meta.roi.group, meta.roi.number, meta.pid) not in self.positions]
        if fresh:
            self._make_room(fresh, dtypes, size)
        for meta in metas:
            if meta not in fresh:  # placed by the interrupted conversion: its labels again, in case they were lost
                _write_labels(self.store, self.spec, self.positions[(meta.roi.group, meta.roi.number, meta.pid)],
                              [meta], self.times)
        for (patch, members), meta in zip(taken, metas, strict=True):
            self.running[patch.key] = members
            self.pool.submit(patch.key, self.store, self.positions[patch.key], self.spec.layout, self.times,
                             {s: str(m.path) for s, m in members.items()}, self.expected, meta.epsg,
                             meta.transform, self.on_error, (patch.roi, patch.pid))
        self.out.patches_converted += len(taken)

    def _problems(self, problems: list[Problem], what: str) -> None:
        if self.on_error == "fail":
            _raise_if_any(problems, f"{what} of {self.sources.root}")
        self.problems += problems

    def harvest(self, timeout: float) -> None:
        """Collect the tasks that ended: their problems, and their scratch files deleted."""
        try:
            finished = self.pool.finished(timeout)
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
        with self.assembly.cond:
            self.assembly.cond.wait_for(lambda: self.assembly.ready, timeout=timeout)
            ready = list(self.assembly.ready)
            found, self.assembly.problems = self.assembly.problems, []
        self._problems(found, "in the names")
        with writing(self.store.location, STOPPED):
            if ready:
                self.place(ready)
            self.harvest(timeout if self.running and not ready else 0)

    def _broken(self, errors: list) -> None:
        """Errors of the archive readers: a full scratch disk always stops; a broken archive under ``fail``."""
        while errors:
            err = errors.pop(0)
            if not isinstance(err, ArchiveError) or self.on_error == "fail":
                if isinstance(err, ArchiveError):
                    raise ConversionError(f"{err}; the cube stays marked incomplete: replace the archive and run "
                                          "the same command with --resume, or use --on-error skip") from None
                raise err
            self.problems.append(err.located())

    def _flush(self, ended: str | None, reading: set[str] = frozenset()) -> None:
        """Patches that can get no more files (see :func:`incomplete`): their gaps are problems, the rest of them
        is converted."""
        keys, missing = incomplete(self.assembly, self.sources.root, ended, reading)
        self._check_times(keys)
        self._problems(missing, "in the archives")
        if keys:
            self.place(keys)

    def _check_times(self, keys: list[tuple]) -> None:
        """Before any patch was complete, patches that all end at the same time step (archives written with fewer
        steps than the cube's): one line saying ``--times``, rather than the missing steps of every patch."""
        if self.created or not keys or not self.spec.temporal:
            return
        with self.assembly.cond:
            patches = [self.assembly.patches[k] for k in keys]
        steps = held_steps(patches, self.spec.modalities)
        if steps is not None and steps < self.times:
            raise ValueError(f"{self.sources.root}: the archives hold {steps} time step(s) per patch, not "
                             f"{self.times}: convert with --times {steps} (times={steps})")

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
        with self.assembly.cond:
            waiting = [*self.assembly.patches, *self.running]
        if any(reading.name in self.assembly.origin.get(key, ()) for key in waiting):
            return False
        if self.rows:
            self.rows.flush()  # before the group counts as done: a resume reads it no more
        if self.state.pending is not None:
            self.state.pending["archives_done"].append(reading.name)
            self._commit()
        self.out.archives_read += [a.name for a in reading.archives]
        return True

    def read_groups(self, groups: list[tuple[str, list[Archive]]]) -> None:
        """Read the groups' archives, :attr:`at_once` groups at a time, converting patches as they complete."""
        reading: list[_Reading] = []
        try:
            while groups or reading:
                while groups and len(reading) < self.at_once:
                    name, archives = groups.pop(0)
                    stop = threading.Event()
                    reading.append(_Reading(name, archives, *read_group(archives, self.assembly, stop, self.backlog),
                                            stop))
                self._step(0.1)
                reading = [r for r in reading if not self._advance(r, [other for other in reading if other is not r])]
        finally:
            for r in reading:
                r.close(self.assembly)

    def run(self, pool: object, groups: dict[str, list[Archive]]) -> None:
        """Trees first (their patches may wait for archive members), then the groups not done before."""
        self.pool = pool
        try:
            add_trees(self.sources.trees, self.sources.root, self.assembly)
            self._step(0)
            done = set((self.state.pending or {}).get("archives_done", []))
            self.read_groups([(name, archives) for name, archives in groups.items() if name not in done])
            self._flush(None)
            while self.assembly.ready or self.running:
                self._step(0.5)
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
        labels = conversion.store.array("roi_group")[conversion.start:]
        if (labels == "").any():
            raise ValueError(f"{conversion.store.location}: patches placed by the interrupted conversion were not "
                             "found again: resume with the same sources")


def convert_archives(sources: Sources, store: CubeStore, owner: dict, spec: Spec, out: ConversionReport, *,
                     rois: list[str] | None, split: str | None, region: str | None, times: int, resume: bool,
                     workers: int, scheduler: str | None, scratch: str | os.PathLike, tile: int,
                     progress: bool, groups_at_once: int) -> CubeState:
    """The conversion's writes from archives, under the writer lock; returns the state as committed at the end."""
    state, stored = _existing(store, spec, sources.root, times, resume)
    if state is not None and state.pending and "archives_done" not in state.pending:
        raise ValueError(f"{store.location}: resume must use the same source and ROIs as the interrupted "
                         "conversion (it converted a tree)")
    scratch = prepare_scratch(scratch)
    try:  # a refused or failed conversion leaves no scratch either (a resume starts from an empty one)
        wanted = wanted_rois(spec, rois, split, region)
        assembly = Assembly(spec, times, wanted, set(stored), scratch)
        conversion = ArchiveConversion(store, owner, spec, sources, out, state, assembly, on_error=out.on_error,
                                       tile=tile)
        assembly.skip |= conversion.resumed()
        conversion.limit, conversion.at_once = BACKLOG_PER_WORKER * workers, groups_at_once
        with task_pool(convert_patch, workers, scheduler, progress, "converting") as pool:
            conversion.run(pool, _selected_groups(sources, wanted))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _check_end(conversion, rois, stored)
    out.scratch_peak_bytes, out.problems = assembly.scratch_peak, [p.record() for p in conversion.problems]
    out.archives_read.sort()
    state = conversion.state
    if state.pending is not None:
        out.patches_added = len(conversion.positions)
        commit_complete(store, owner, state, store.array("valid")[:],
                        f"converted {out.patches_added} patch(es) from the archives in {sources.root}")
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
        root = Path(store.store.root)
        return root.with_name(root.name + ".scratch")
    digest = hashlib.sha256(store.location.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"crts-scratch-{digest}"


def convert_sources(sources: Sources, dst: str | os.PathLike | CubeStore, *, rois: list[str] | None,
                    split: str | None, region: str | None, workers: int | None, scheduler: str | None, resume: bool,
                    on_error: str, report: str | os.PathLike | None, clouds: tuple[str, ...], force_unlock: bool,
                    storage_options: dict | None, tile: int, progress: bool, scratch: str | os.PathLike | None,
                    times: int | None, groups_at_once: int | None, start_time: float) -> ConversionReport:
    """:func:`cube.convert` from archives (and trees): its checks, the writes under the lock, the cloud pass."""
    store = as_store(dst, storage_options=storage_options)
    local = [Path(a.location) for a in sources.archives if not is_url(a.location)] + sources.trees
    _check_destination(store, local, report, resume)
    scratch = Path(scratch) if scratch else default_scratch(store)
    check_not_in_cube(scratch, "the scratch folder")
    for source in local:
        check_outside(scratch, source, "the scratch folder")
    spec = SPECS[sources.layout]
    times = _times(store, spec, times)
    out = ConversionReport(sources.root, store.location, spec.layout, on_error)
    workers = workers or os.cpu_count() or 1
    groups_at_once = groups_at_once or max(1, workers // WORKERS_PER_GROUP)
    with store.reopened("r+").writer("conversion", force_unlock=force_unlock) as owner:
        writable = store.reopened("r+")
        state = convert_archives(sources, writable, owner, spec, out, rois=rois, split=split, region=region,
                                 times=times, resume=resume, workers=workers, scheduler=scheduler, scratch=scratch,
                                 tile=tile, progress=progress, groups_at_once=groups_at_once)
        out.patches_in_cube, out.gaps = writable.array("valid").shape[0], state.gaps
        if clouds and spec.temporal:
            out.cloud_pass_patches = cloud_pass(writable, owner, clouds, workers=workers, scheduler=scheduler,
                                                progress=progress)
    return finished(out, store, report, start_time)
