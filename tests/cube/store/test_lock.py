"""cube.store.lock: one writer at a time holds a cube's lock; it is released without hiding the writer's error,
a commit by an owner that lost it is refused, and an owner is gone only when its process ended on this host.
(Concurrent, killed and stale writers are fault trials: tests/faults/test_writers.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cube.store.lock import LOCK, WriterLockedError, owner_gone, owner_record
from cube.store.store import CubeState, CubeStore


def test_a_writer_in_a_cube_folder_that_is_a_link_keeps_its_own_error(tmp_path: Path) -> None:
    """The lock's release removed the empty cube folder with rmdir, which on a link raised NotADirectoryError
    instead of the writer's error."""
    (tmp_path / "target").mkdir()
    (tmp_path / "cube.zarr").symlink_to(tmp_path / "target")
    store = CubeStore(tmp_path / "cube.zarr", "r+")
    with pytest.raises(ValueError, match=r"^the writer's own error$"), store.writer("test"):
        raise ValueError("the writer's own error")
    assert (tmp_path / "cube.zarr").is_symlink() and list((tmp_path / "target").iterdir()) == []


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    store = CubeStore(tmp_path / "cube.zarr", "r+")
    with store.writer("conversion") as owner:
        with (
            pytest.raises(
                WriterLockedError,
                match=f"another process is writing this cube \\(conversion by pid "
                f"{owner['pid']} on host {owner['host']} since",
            ),
            store.writer("cloud pass"),
        ):
            pass
        assert store.group_attributes(LOCK)["token"] == owner["token"]  # the refused writer left the lock alone
    assert not (tmp_path / "cube.zarr").exists()  # released: nothing was written, no folder is left


def test_a_commit_by_an_owner_that_lost_the_lock_is_refused(tmp_path: Path) -> None:
    store = CubeStore(tmp_path / "cube.zarr", "r+")
    with store.writer("conversion") as owner:
        store.write_group(LOCK, {**owner_record("cloud pass"), "host": "gpu-node-7"})  # broken and taken by another
        with pytest.raises(
            WriterLockedError,
            match=r"this process lost the writer lock \(now held by cloud pass "
            r"by pid .* on host gpu-node-7 .*\); nothing was committed$",
        ):
            store.commit(CubeState(complete=True), owner)
        assert store.state() is None
    assert store.group_attributes(LOCK)["host"] == "gpu-node-7"  # not this owner's lock: it stays


def test_an_owner_is_gone_only_when_its_process_ended_on_this_host() -> None:
    mine = owner_record("conversion")
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    assert not owner_gone(mine)
    assert not owner_gone({**mine, "host": "gpu-node-7", "pid": int(ended.stdout)})  # not provably dead
    assert owner_gone({**mine, "pid": int(ended.stdout)})
    assert owner_gone({**mine, "pid_started": mine["pid_started"] - 60})  # a reused pid: another process
