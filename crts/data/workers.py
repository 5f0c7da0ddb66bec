"""How DataLoader workers start: fork where it is safe, else a fork server; a missing main guard fails fast.

The choice is measured (``python -m benchmarks bench_loader``): see :func:`default_start_method`.
"""

from __future__ import annotations

import inspect
import multiprocessing
import multiprocessing.context
import sys

import dask

START_METHODS = ("fork", "forkserver", "spawn")
"""How :func:`crts.data.loader` can start its worker processes."""


def default_start_method() -> str:
    """``fork`` where forked workers are safe, else ``forkserver``: what :func:`crts.data.loader` uses by default.

    Forked workers start at once and need no ``if __name__ == "__main__":`` guard.
    With ``forkserver`` and ``spawn`` each worker re-runs the main script and
    unpickles the dataset; spawned workers also import torch, xarray and zarr
    (a fork server imports them once, when it starts). bench_loader, 2 workers,
    128 px windows, 2 cores: first batch after 0.42 s with fork, 5.4 s with
    forkserver (0.78 s once its server runs), 4.5 s with spawn, and the same
    steady 38-44 windows/s (24 without workers); on the machine under load
    0.72, 10.5 (2.6) and 15.9 s.

    Fork is safe on Linux for a cube on a disk: zarr restarts its event loop in a
    forked child, and the workers compute any dask graph (say, of a dataset of
    your own) with dask's synchronous scheduler (:func:`start_worker`), since
    dask's thread pool does not survive a fork: forked workers hung once the
    parent had used it. It
    is not safe once obstore (a cube in an object store) has run in this process:
    its Tokio runtime does not survive a fork, and forked workers hung even with a
    store of their own. macOS and Windows have no safe fork.
    """
    return "fork" if sys.platform == "linux" and "obstore" not in sys.modules else "forkserver"


def refuse_when_worker_starts() -> None:
    """Raise if called by the main script while a worker re-runs it to start (``__name__ == "__mp_main__"``).

    Without the guard, a worker started with ``forkserver`` or ``spawn`` reaches the
    loader again while it re-runs the script; it stops there, naming the remedy.
    """
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__mp_main__":
            raise RuntimeError(
                "crts.data.loader() ran while a DataLoader worker re-ran the main script to start: "
                'put the script\'s code under `if __name__ == "__main__":`'
            )
        frame = frame.f_back


def start_worker(_worker_id: int) -> None:
    """Each worker computes dask graphs in its own thread: dask's thread pool does not survive a fork."""
    dask.config.set(scheduler="synchronous")


def worker_context(method: str, preload: str) -> multiprocessing.context.BaseContext:
    """The start method's context; a fork server imports ``preload`` once, so its workers start without it."""
    if method not in START_METHODS:
        raise ValueError(f"invalid start_method {method!r}: choose from {', '.join(START_METHODS)}")
    chosen = multiprocessing.get_context(method)
    if method == "forkserver":
        chosen.set_forkserver_preload([preload])
    return chosen
