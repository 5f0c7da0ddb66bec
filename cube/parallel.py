"""Running one task per patch on dask.distributed (local processes or a cluster), or in-process."""

from __future__ import annotations

import ast
import inspect
import logging
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import as_completed as futures_completed
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

if TYPE_CHECKING:  # imported where a cluster is used (dask.distributed is slow to import)
    from distributed import Client

    from .store.store import CubeStore

PATCHES_IN_FLIGHT = 2
"""Tasks run at once in this process when no dask cluster is used."""
FLUSH_EVERY, FLUSH_SECONDS = 16, 10.0
"""Finished rows are written every 16 patches or 10 s: all a kill can lose."""


class RowBatches:
    """Per-patch rows of a table chunked by many patches (``valid``, ``coverage``), written in batches.

    Tasks return their patch's row; the process that runs them is the table's only
    writer, so no two writers ever share a chunk (unaligned parallel writes to a
    chunk can lose data silently). Use it as a context manager: what is left is
    written when the block ends, also on an error.

    Parameters
    ----------
    store : cube.store.store.CubeStore
        The cube, open for writing.
    name : str
        The table, patches along its first dimension (opened at each write, so a
        store grown meanwhile is seen at its new size).
    """

    def __init__(self, store: CubeStore, name: str) -> None:
        self.store, self.name, self.flushed = store, name, time.monotonic()
        self.rows: dict[int, np.ndarray] = {}

    def add(self, index: int, row: np.ndarray) -> None:
        """Keep a patch's row; write the batch when it is full or old."""
        self.rows[index] = row
        if len(self.rows) >= FLUSH_EVERY or time.monotonic() - self.flushed > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the rows kept so far."""
        if self.rows:
            order = sorted(self.rows)
            self.store.array(self.name, mode="r+").set_orthogonal_selection(
                (np.array(order),), np.stack([self.rows[i] for i in order])
            )
            self.rows.clear()
        self.flushed = time.monotonic()

    def __enter__(self) -> RowBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


def check_count(name: str, value: int | None, hint: str) -> None:
    """Refuse a count (of processes, groups ...) below 1; None stands for its default.

    Examples
    --------
    >>> check_count("groups_at_once", 0, "read at least 1 group at once")
    Traceback (most recent call last):
    ...
    ValueError: invalid groups_at_once 0: read at least 1 group at once
    """
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"invalid {name} {value!r}: {hint}")


def check_workers(workers: int | None) -> None:
    """Refuse a number of worker processes below 1 (None: all cores).

    Examples
    --------
    >>> check_workers(0)
    Traceback (most recent call last):
    ...
    ValueError: invalid workers 0: give at least 1 process (1: no dask cluster), or leave it out for all cores
    """
    check_count("workers", workers, "give at least 1 process (1: no dask cluster), or leave it out for all cores")


def unguarded_script_call() -> tuple[str, int] | None:
    """The main script and line whose call reached us unguarded, which local worker processes would re-run.

    dask starts its local workers by spawning: each first runs the main
    module's top level as ``__mp_main__``. That is harmless in Jupyter, an
    interactive session, ``python -c``, ``python -m package`` and behind ``if
    __name__ == "__main__":``, but a plain script that calls us from its top
    level would be run again by every worker: each would start a conversion of
    its own. This finds the outermost frame of the main script's top level in
    the call chain and whether its line lies under such a guard.

    Examples
    --------
    Under pytest (``python -m pytest``) the main module is guarded:

    >>> unguarded_script_call() is None
    True
    """
    main = sys.modules.get("__main__")
    path, spec = getattr(main, "__file__", None), getattr(main, "__spec__", None)
    if path is None or (spec is not None and spec.name.endswith(".__main__")):
        return None
    frame, line = inspect.currentframe(), None
    while frame is not None:
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>" and frame.f_code.co_filename == path:
            line = frame.f_lineno
        frame = frame.f_back
    if line is None:
        return None
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return path, line
    guarded = any(
        node.lineno <= line <= (node.body[-1].end_lineno or node.body[-1].lineno)  # ast.parse gives end_lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_main_guard(node.test)
    )
    return None if guarded else (path, line)


def _is_main_guard(test: ast.expr) -> bool:
    """Whether an ``if`` test reads ``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = {ast.dump(test.left), ast.dump(test.comparators[0])}
    return sides == {ast.dump(ast.Name("__name__", ast.Load())), ast.dump(ast.Constant("__main__"))}


QUIET_SCHEDULER = {"dashboard": False, "dashboard_address": ":0"}
"""The local scheduler's HTTP server (health routes; no dashboard) on a free port: on its default, 8787, a port in
use (your own cluster, another conversion) made it print three lines of warning into the command's output."""
_WARNED: set[tuple[str, int]] = set()
"""The script lines already warned about by :func:`_client` (once each: dask resets ``warnings``' own registry)."""


@contextmanager
def _client(workers: int, scheduler: str | None) -> Iterator[Client | None]:
    """A dask.distributed client: the given scheduler, or local processes; None runs tasks in-process.

    Local processes are not started where each would re-run the calling script
    (:func:`unguarded_script_call`): the tasks then run in this process, with a
    warning at the script's line naming the remedy (once per line).
    """
    if scheduler is None and workers > 1 and (call := unguarded_script_call()):
        if call not in _WARNED:
            _WARNED.add(call)
            warnings.warn_explicit(
                f"running in this process, {PATCHES_IN_FLIGHT} tasks at a time: {workers} worker "
                "processes would each re-run this script from its start; put its top-level code "
                'under `if __name__ == "__main__":` to use them',
                RuntimeWarning,
                *call,
            )
        workers = 1
    if scheduler is None and workers <= 1:
        yield None
        return
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
    else:
        # The workers inherit the ignored SIGINT: Ctrl-C stops this process, which then closes them; their logs
        # stay silent while it does (task errors still reach this process).
        with _sigint_ignored():
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,
                scheduler_kwargs=QUIET_SCHEDULER,
            )
        with cluster, Client(cluster) as client:
            yield client


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in this block (in the main thread; elsewhere signals cannot be changed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def run_tasks(
    tasks: list[tuple],
    fn: Callable,
    workers: int,
    scheduler: str | None,
    progress: bool,
    desc: str,
    sizes: list[int] | None = None,
    unit: str = "patch",
) -> Iterator:
    """Run ``fn(*task)`` for every task with a progress bar, yielding results as tasks finish.

    The first exception stops everything. The bar counts ``unit``s: one per
    task, or ``sizes[i]`` for task i (e.g. its images).

    ``workers`` local dask worker processes, or the cluster at ``scheduler``; with
    ``workers <= 1`` and no scheduler, tasks run in this process, two at a time in
    threads (file reads, compression and writes release the GIL, so one task's
    reads overlap another's writes).
    """
    if not tasks:
        return
    weight = dict(enumerate(sizes or [1] * len(tasks)))
    with (
        _client(workers, scheduler) as client,
        tqdm(total=sum(weight.values()), desc=desc, unit=unit, disable=not progress) as bar,
    ):
        if client is None:
            with ThreadPoolExecutor(PATCHES_IN_FLIGHT) as pool:
                futures = {pool.submit(fn, *task): i for i, task in enumerate(tasks)}
                try:
                    for future in futures_completed(futures):
                        yield future.result()
                        bar.update(weight[futures[future]])
                except BaseException:
                    pool.shutdown(cancel_futures=True)
                    raise
            return
        from distributed import as_completed

        remote = {client.submit(fn, *task, pure=False): i for i, task in enumerate(tasks)}
        try:
            for done in as_completed(remote):
                yield done.result()
                bar.update(weight[remote[done]])
        except BaseException:
            client.cancel(list(remote))
            raise


class TaskPool:
    """Tasks submitted one by one while earlier ones run, for work whose tasks are known only as it goes.

    Runs ``fn(*task)`` like :func:`run_tasks` (local worker processes, a cluster,
    or two threads of this process); :meth:`finished` collects what has ended.
    Use it as a context manager (:func:`task_pool`).
    """

    def __init__(self, fn: Callable, client: Client | None, bar: tqdm) -> None:
        self.fn, self.bar = fn, bar
        self.pool: ThreadPoolExecutor | Client = ThreadPoolExecutor(PATCHES_IN_FLIGHT) if client is None else client
        """Two threads of this process (no client), or the cluster's client."""
        self.running: dict[Any, object] = {}
        """The futures (of concurrent.futures or of dask.distributed) of the tasks not yet collected: their keys."""

    def submit(self, key: object, *task: object) -> None:
        """Start ``fn(*task)``; :meth:`finished` returns its result under ``key``."""
        if isinstance(self.pool, ThreadPoolExecutor):
            self.running[self.pool.submit(self.fn, *task)] = key
        else:
            self.running[self.pool.submit(self.fn, *task, pure=False)] = key
        self.bar.total = (self.bar.total or 0) + 1
        self.bar.refresh()

    def finished(self, timeout: float = 0.0) -> list[tuple[Any, Any]]:
        """``(key, result)`` of the tasks that ended (waiting up to ``timeout`` s for one); the first failure raises."""
        if not self.running:
            return []
        done: set[Any] = set()
        if isinstance(self.pool, ThreadPoolExecutor):
            done = futures_wait(list(self.running), timeout=timeout, return_when="FIRST_COMPLETED").done
        else:
            from distributed import wait

            with suppress(TimeoutError):  # distributed's wait raises where none ended in time
                done = wait(list(self.running), timeout=timeout, return_when="FIRST_COMPLETED").done
        out = [(self.running.pop(future), future.result()) for future in list(done)]
        self.bar.update(len(out))
        return out

    def cancel(self) -> None:
        if isinstance(self.pool, ThreadPoolExecutor):
            self.pool.shutdown(cancel_futures=True)
        else:
            self.pool.cancel(list(self.running))


@contextmanager
def task_pool(
    fn: Callable, workers: int, scheduler: str | None, progress: bool, desc: str, unit: str = "patch"
) -> Iterator[TaskPool]:
    """A :class:`TaskPool` on ``workers`` local processes or the cluster at ``scheduler``, with a progress bar
    counting the tasks that ended (its total grows as tasks are submitted)."""
    with _client(workers, scheduler) as client, tqdm(desc=desc, unit=unit, disable=not progress) as bar:
        pool = TaskPool(fn, client, bar)
        try:
            yield pool
        except BaseException:
            pool.cancel()
            raise
        if isinstance(pool.pool, ThreadPoolExecutor):
            pool.pool.shutdown()
