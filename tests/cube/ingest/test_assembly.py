"""The assembly of patches from members arriving on several threads; it owns its lock and offers methods."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

from cube.dataset.layout import ts_relpath
from cube.dataset.rois import Roi
from cube.ingest.assembly import Assembly
from cube.store.schema import SPECS

ROI = Roi("ROIs1868", 17)
TIMES = 2


def _assembly(tmp_path: Path, skip: frozenset = frozenset()) -> Assembly:
    return Assembly(SPECS["sen12mscrts"], TIMES, {ROI}.__contains__, set(skip), tmp_path / "scratch")


def _member(modality: str, t: int, pid: int = 0) -> str:
    return ts_relpath(modality, ROI, t, dt.date(2018, 1, 1 + t), pid).as_posix()


def test_a_patch_is_ready_once_every_step_of_every_modality_arrived(tmp_path: Path) -> None:
    assembly = _assembly(tmp_path)
    slots = [(m, t) for m in ("S1", "S2") for t in range(TIMES)]
    for m, t in slots[:-1]:
        assembly.add(_member(m, t), f"a.tar.gz!{m}{t}", b"x" * 10, group="europa")
    assert assembly.wait_ready(0) == ([], [])
    assert assembly.holds_members_of("europa", []) and not assembly.holds_members_of("africa", [])
    keys, missing = assembly.incomplete(str(tmp_path), "europa")
    assert keys == [("ROIs1868", 17, 0)] and len(missing) == 1 and "S2" in str(missing[0])
    assembly.add(_member(*slots[-1]), "a.tar.gz!last", b"x" * 10, group="europa")
    assert assembly.wait_ready(0) == ([("ROIs1868", 17, 0)], [])
    assert assembly.scratch_peak == 40 and assembly.ready_count() == 1
    [(patch, members)] = assembly.take([("ROIs1868", 17, 0)])
    assert set(patch.files) == set(slots) and assembly.ready_count() == 0
    assembly.release(members)
    assert assembly.scratch_bytes == 0 and not [p for p in (tmp_path / "scratch").rglob("*") if p.is_file()]


def test_a_second_file_for_a_slot_and_a_skipped_patch_are_problems_or_ignored(tmp_path: Path) -> None:
    assembly = _assembly(tmp_path, skip=frozenset({("ROIs1868", 17, 1)}))
    assembly.add(_member("S1", 0), "first", path=Path("/nowhere/first"))
    assembly.add(_member("S1", 0), "again", path=Path("/nowhere/again"))
    assembly.add(_member("S1", 0, pid=1), "converted before", path=Path("/nowhere/skip"))
    assembly.add(_member("S1", TIMES), "late", path=Path("/nowhere/late"))
    assembly.add("not/a/tree/path.tif", "odd")
    ready, problems = assembly.wait_ready(0)
    assert ready == [] and [p.path for p in problems] == ["again", "late", "odd"]
    assert assembly.wait_ready(0) == ([], [])  # handed over once
    assert ROI in assembly.seen


def test_a_reader_waits_for_its_pace_and_is_woken(tmp_path: Path) -> None:
    assembly, pace, stop = _assembly(tmp_path), {"fast": 0, "slow": 0}, threading.Event()
    waited: list[float] = []

    def reader() -> None:
        start = time.monotonic()
        assembly.count_read(pace, "fast", lambda: stop.is_set() or pace["fast"] <= pace["slow"], timeout=5)
        waited.append(time.monotonic() - start)

    thread = threading.Thread(target=reader)
    thread.start()
    deadline = time.monotonic() + 30
    while pace["fast"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert thread.is_alive() and pace["fast"] == 1  # ahead of the slow reader: it waits
    stop.set()
    assembly.wake()
    thread.join(4)
    assert not thread.is_alive() and waited[0] < 5  # woken, not timed out
    assembly.stop_counting(pace, "fast")
    assert pace == {"slow": 0}


def test_nothing_outside_the_assembly_reaches_its_lock(tmp_path: Path) -> None:
    assembly = _assembly(tmp_path)
    assert not any(
        isinstance(value, threading.Condition) for name, value in vars(assembly).items() if not name.startswith("_")
    )
