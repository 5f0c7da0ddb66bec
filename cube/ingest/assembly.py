"""Patches put together from the files that arrive for them (archive members, files of extracted trees), from
several threads at once: the assembly of the archive driver (:mod:`cube.ingest.archive_conversion`)."""

from __future__ import annotations

import errno
import itertools
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass
from pathlib import Path

from ..dataset.layout import CrFile, TsFile, parse_cr_path, parse_ts_path, scan_cr, scan_ts
from ..dataset.problems import FileProblem, Problem
from ..dataset.rois import Roi
from ..store.schema import Spec
from .validate import CR_MODALITIES, HeaderFields, PatchFiles, check_complete, header_in_memory


@dataclass
class Member:
    """A file of a patch: where it can be read now, its name as recorded, whether it is a scratch copy, and its
    header if it was read from the member's bytes before they were spooled."""

    path: Path
    name: str
    spooled: bool
    header: HeaderFields | None = None


class Assembly:
    """Patches being put together from members, as they arrive (from several threads).

    The assembly owns its lock: every method takes it where it reads or changes what the threads share, and
    wakes the threads that wait on it (readers of archives keeping their pace, :meth:`count_read`; the conversion
    waiting for complete patches, :meth:`wait_ready`). Nothing outside the class holds it.
    """

    def __init__(self, spec: Spec, times: int, wanted: Callable[[Roi], bool], skip: set, scratch: Path) -> None:
        self.spec, self.times, self.wanted, self.skip, self.scratch = spec, times, wanted, skip, scratch
        self._cond = threading.Condition()
        self._patches: dict[tuple, PatchFiles] = {}
        self._members: dict[tuple, dict[tuple[str, int], Member]] = defaultdict(dict)
        self._ready: list[tuple] = []
        self._problems: list[Problem] = []
        self.seen: set[Roi] = set()
        self._taken: set[tuple] = set()
        self._origin: dict[tuple, set[str]] = {}
        """The groups whose archives gave a patch its spooled members."""
        self.spooled = itertools.count()
        self.scratch_bytes = self.scratch_peak = 0

    def _parse(self, relative: str, name: str) -> TsFile | CrFile | None:
        root = Path("/")
        try:
            return (parse_ts_path if self.spec.temporal else parse_cr_path)(root / relative, root)
        except FileProblem as err:
            with self._cond:
                self._problems.append(Problem(name, err.message))
            return None

    def add(
        self, relative: str, name: str, content: bytes | None = None, path: Path | None = None, group: str | None = None
    ) -> None:
        """One member: its tree path, recorded name, and its bytes (spooled, from ``group``'s archive) or its file
        (read in place)."""
        f = self._parse(relative, name)
        if f is None or not self.wanted(f.roi):
            return
        key = (f.roi.group, f.roi.number, f.pid)
        slot = (f.modality, f.t) if isinstance(f, TsFile) else (CR_MODALITIES[f.kind], 0)
        with self._cond:
            self.seen.add(f.roi)
            if key in self.skip or self._refused(f, key, slot, name):
                return
        header = None
        if content is not None:
            path = self._spool(relative, content)
            if slot[1] == 0:  # the headers the patch's georeference is agreed from, read from the bytes in memory
                header = header_in_memory(path, content)
        if path is None:
            raise ValueError(f"{name}: a member comes with its bytes or its file")
        with self._cond:
            if self._refused(f, key, slot, name):  # filled or converted while this member was spooled
                self.release({slot: Member(path, name, content is not None)})
                return
            if group is not None:
                self._origin.setdefault(key, set()).add(group)
            self._members[key][slot] = Member(path, name, content is not None, header)
            patch = self._patches.setdefault(key, PatchFiles(f.roi, f.pid))
            patch.files[slot] = path
            if isinstance(f, TsFile):
                patch.dates[slot] = f.date
            if len(patch.files) == len(self.spec.modalities) * self.times:
                self._ready.append(key)
            self._cond.notify_all()

    def _refused(self, f: TsFile | CrFile, key: tuple, slot: tuple[str, int], name: str) -> bool:
        """Whether a member cannot join its patch (a second file for its slot, a patch converted already, a time
        step beyond the cube's), the problem recorded; under the lock."""
        first = self._members.get(key, {}).get(slot)
        if not (first or key in self._taken or slot[1] >= self.times):
            return False
        message = (
            f"time step {slot[1]} is beyond the cube's {self.times} steps"
            if slot[1] >= self.times
            else f"a second file for {slot[0]} time step {slot[1]} of this patch (first: "
            f"{first.name if first else 'converted already'})"
        )
        self._problems.append(Problem(name, message, f.roi, f.pid, *slot[::-1]))
        return True

    def _spool(self, relative: str, content: bytes) -> Path:
        """The member written into the scratch folder, under a name no other member has (archives may repeat one)."""
        inside = Path(relative)
        path = self.scratch / inside.parent / f"{next(self.spooled)}-{inside.name}"
        part = path.with_name(path.name + ".part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            part.write_bytes(content)
            part.rename(path)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OSError(
                    err.errno,
                    f"the scratch folder is full ({self.scratch_bytes} B spooled): give "
                    "--scratch a folder with more room, then run the same command with --resume",
                    str(self.scratch),
                ) from None
            raise
        with self._cond:
            self.scratch_bytes += len(content)
            self.scratch_peak = max(self.scratch_peak, self.scratch_bytes)
        return path

    def take(self, keys: list[tuple]) -> list[tuple[PatchFiles, dict[tuple[str, int], Member]]]:
        """Remove patches from the assembly, with their members."""
        with self._cond:
            out = [(self._patches.pop(k), self._members.pop(k)) for k in keys if k in self._patches]
            self._taken.update(keys)
            self._ready = [k for k in self._ready if k not in set(keys)]
            return out

    def release(self, members: dict[tuple[str, int], Member]) -> None:
        """Delete the scratch files of members done with (a written patch's, or one refused after spooling)."""
        for member in members.values():
            if member.spooled:
                size = member.path.stat().st_size if member.path.exists() else 0
                member.path.unlink(missing_ok=True)
                with self._cond:
                    self.scratch_bytes -= size
                    self._cond.notify_all()

    def note_problems(self, problems: list[Problem]) -> None:
        """Record problems found outside :meth:`add` (the names of a tree's files)."""
        with self._cond:
            self._problems += problems

    def wait_ready(self, timeout: float) -> tuple[list[tuple], list[Problem]]:
        """Wait up to ``timeout`` s for a complete patch; the keys of the complete patches, and the problems
        recorded since the last call (handed over: the assembly forgets them)."""
        with self._cond:
            self._cond.wait_for(lambda: self._ready, timeout=timeout)
            found, self._problems = self._problems, []
            return list(self._ready), found

    def ready_count(self) -> int:
        """How many patches are complete and not yet taken."""
        with self._cond:
            return len(self._ready)

    def patches_of(self, keys: list[tuple]) -> list[PatchFiles]:
        """The patches (still in the assembly) of ``keys``."""
        with self._cond:
            return [self._patches[k] for k in keys]

    def holds_members_of(self, group: str, keys: Iterable[tuple]) -> bool:
        """Whether a patch still being assembled, or one of ``keys`` (taken, not yet written), has scratch files
        from the archives of ``group``."""
        with self._cond:
            return any(group in self._origin.get(key, ()) for key in [*self._patches, *keys])

    def incomplete(
        self, root: str, ended: str | None, reading: Set[str] = frozenset()
    ) -> tuple[list[tuple], list[Problem]]:
        """Patches still missing files and the problems naming what is missing: with ``ended`` None all of them,
        else those with scratch files from the archives of group ``ended`` and of no group still ``reading``."""
        with self._cond:
            keys = [
                k
                for k in self._members
                if k in self._patches
                and k not in self._ready
                and (ended is None or (ended in self._origin.get(k, ()) and not self._origin[k] & reading))
            ]
            patches = [self._patches[k] for k in keys]
        problems = check_complete(
            patches, Path(root), "sen12mscrts" if self.spec.temporal else "sen12mscr", self.spec.modalities, self.times
        )
        return keys, problems

    def count_read(self, pace: dict, reader: object, may_go_on: Callable[[], bool], timeout: float) -> None:
        """Count one member read by ``reader`` in ``pace`` (the members each reader of a group has read), wake the
        waiting threads, and wait until ``may_go_on()`` (called under the lock) or ``timeout`` s."""
        with self._cond:
            pace[reader] += 1
            self._cond.notify_all()
            self._cond.wait_for(may_go_on, timeout=timeout)

    def stop_counting(self, pace: dict, reader: object) -> None:
        """Take ``reader`` (it ended) out of ``pace`` and wake the waiting threads."""
        with self._cond:
            pace.pop(reader, None)
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake every thread waiting on the assembly (to see a stop)."""
        with self._cond:
            self._cond.notify_all()


def add_trees(trees: list[Path], root: str, assembly: Assembly) -> None:
    """The files of extracted trees, read in place (nothing is spooled)."""
    for tree in trees:
        files, problems = scan_ts(tree) if assembly.spec.temporal else scan_cr(tree)
        assembly.note_problems(problems)
        for f in files:
            assembly.add(f.path.relative_to(tree).as_posix(), os.path.relpath(f.path, root), path=f.path)


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
