"""How DataLoader workers start: the default start method, the contexts, the main-guard check."""

from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path

import dask
import pytest

from crts.data.workers import (
    START_METHODS,
    default_start_method,
    refuse_when_worker_starts,
    start_worker,
    worker_context,
)


def test_fork_is_the_default_only_where_it_is_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delitem(sys.modules, "obstore", raising=False)
    assert default_start_method() == "fork"
    monkeypatch.setitem(sys.modules, "obstore", types.ModuleType("obstore"))  # a cube in an object store was opened
    assert default_start_method() == "forkserver"
    monkeypatch.delitem(sys.modules, "obstore")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert default_start_method() == "forkserver"


@pytest.mark.parametrize("method", START_METHODS)
def test_each_start_method_gives_its_context(method: str) -> None:
    assert worker_context(method, "numpy").get_start_method() == method


def test_an_unknown_start_method_is_one_line() -> None:
    with pytest.raises(ValueError, match=r"^invalid start_method 'thread': choose from fork, forkserver, spawn$"):
        worker_context("thread", "numpy")


def test_the_main_script_is_refused_only_while_a_worker_re_runs_it(tmp_path: Path) -> None:
    refuse_when_worker_starts()  # called from a test function: no script is being re-run
    script = tmp_path / "train.py"
    script.write_text("from crts.data.workers import refuse_when_worker_starts\nrefuse_when_worker_starts()\n")
    runpy.run_path(str(script), run_name="__main__")
    with pytest.raises(RuntimeError, match="re-ran the main script to start"):
        runpy.run_path(str(script), run_name="__mp_main__")


def test_a_worker_computes_dask_graphs_synchronously() -> None:
    with dask.config.set(scheduler="threads"):
        start_worker(0)
        assert dask.config.get("scheduler") == "synchronous"
