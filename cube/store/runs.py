"""Evaluation runs inside a cube: written, published without renames, opened, listed and cleaned.

A run ``NAME`` lives in the cube's ``runs`` group::

    runs/NAME/zarr.json            the run's pointer: a group whose attribute ``version`` names
                                   its published version (null until the first one is published)
    runs/NAME/<version>/...        one complete write of the run (a Zarr group), e.g.
                                   v20261125T180102Z-3f9c2a1b (UTC start, then a random suffix)

A writer fills a fresh version nobody else knows, then publishes it by rewriting
the pointer in one write (an atomic replace on a local disk, one PUT on object
storage), and only then deletes the version it replaced. So a reader finds the
old run or the new one, never a half-written one; an interrupted writer leaves an
unpublished version that no listing shows; two runs of different names never
touch the same objects. :func:`prune_runs` removes unpublished and replaced
versions whose writer is gone. The same code runs on every store.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid

import pandas as pd
import xarray as xr
import zarr

from .lock import owner_gone, owner_record
from .outputs import writing
from .store import CubeStore, as_store, checked_state

RUNS = "runs"
RUN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
"""A run name: letters, digits, ``_``, ``-`` and ``.`` (not first), at most 100 characters."""
RESERVED = ("zarr.json",)
_VERSION = re.compile(r"v(\d{8}T\d{6}Z)-[0-9a-f]{8}")


def check_run_name(name: str) -> str:
    """Return ``name`` if it is a valid run name (see :data:`RUN_NAME`), else raise ValueError.

    Examples
    --------
    >>> check_run_name("resnet3d_a-1.2")
    'resnet3d_a-1.2'
    >>> check_run_name(".hidden")
    Traceback (most recent call last):
    ...
    ValueError: invalid run name '.hidden': use letters, digits, '_', '-' and '.' (not first), at most 100 characters
    """
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or name.lower() in RESERVED:
        shown = name if len(str(name)) <= 40 else f"{str(name)[:40]}... ({len(name)} characters)"
        raise ValueError(
            f"invalid run name {shown!r}: use letters, digits, '_', '-' and '.' (not first), "
            "at most 100 characters" + (f", not {name!r}" if str(name).lower() in RESERVED else "")
        )
    return name


def _pointer(store: CubeStore, name: str) -> dict | None:
    return store.group_attributes(f"{RUNS}/{name}")


class RunWriter:
    """Writes one new version of run ``name``; :meth:`publish` makes it the run everybody sees.

    Parameters
    ----------
    store : CubeStore
        The cube, opened for writing.
    name : str
        The run's name (:func:`check_run_name`).
    template : xarray.Dataset
        The run's variables, lazily allocated (written as metadata only), its
        labels and attributes; fill its arrays with :meth:`array`.

    Raises
    ------
    cube.store.outputs.OutputRefused
        Where the file system refuses the run's first writes (a read-only or immutable cube), naming the run.
    """

    def __init__(self, store: CubeStore, name: str, template: xr.Dataset) -> None:
        checked_state(store)
        self.store, self.name = store, check_run_name(name)
        self.version = f"v{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        self.path = f"{RUNS}/{name}/{self.version}"
        self.writer = owner_record(f"run {name}")
        template = template.assign_attrs(writer=json.dumps(self.writer))  # a string: netCDF-safe
        with writing(f"{store.location}/{RUNS}/{name}", "the run cannot be written"):  # (an immutable cube)
            store.write_group(RUNS, {}, only_if_absent=True)
            store.write_group(f"{RUNS}/{name}", {"run": name, "version": None}, only_if_absent=True)
            store.write_dataset(template, self.path, mode="w-", compute=False)

    def array(self, variable: str) -> zarr.Array:
        """A variable of this version, for writing."""
        return self.store.array(f"{self.path}/{variable}", mode="r+")

    def publish(self, rest: xr.Dataset) -> str:
        """Add ``rest`` (e.g. per-sample metrics and provenance), then publish; returns the run's location.

        Once everything is written, the pointer is rewritten to this version, the
        version is marked ``published`` (and its metadata consolidated), and every
        other published version of the run that the pointer no longer names is
        deleted (the one replaced, or that of a concurrent writer of the same name
        that published first).
        """
        self.store.write_dataset(rest.assign_attrs(writer=json.dumps(self.writer)), self.path, mode="a")
        now = f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"
        self.store.write_group(f"{RUNS}/{self.name}", {"run": self.name, "version": self.version, "published": now})
        self.store.group(self.path, mode="r+").update_attributes({"published": now})
        self.store.consolidate(self.path)
        for version in _replaced(self.store, self.name):
            self.store.delete(f"{RUNS}/{self.name}/{version}")
        return f"{self.store.location}/{self.path}"


def run_writer(attributes: dict) -> dict:
    """Who wrote a run version (:func:`cube.store.lock.owner_record`), from its attributes.

    The ``writer`` attribute is a JSON object in a string; runs written before it was
    one hold the object itself, which is accepted as well.

    Examples
    --------
    >>> run_writer({"writer": '{"pid": 7, "host": "a"}'}) == run_writer({"writer": {"pid": 7, "host": "a"}})
    True
    >>> run_writer({})
    {}
    """
    writer = attributes.get("writer") or {}
    return json.loads(writer) if isinstance(writer, str) else dict(writer)


def _versions(store: CubeStore, name: str) -> list[str]:
    return [v for v in store.children(f"{RUNS}/{name}") if v not in RESERVED]


def _replaced(store: CubeStore, name: str) -> list[str]:
    """Versions of a run that were published once and that its pointer no longer names.

    The published ones are listed before the pointer is read: a version whose
    writer is publishing it right now is either not yet marked, or already named.
    """
    published = [
        v for v in _versions(store, name) if "published" in (store.group_attributes(f"{RUNS}/{name}/{v}") or {})
    ]
    current = (_pointer(store, name) or {}).get("version")
    return [v for v in published if v != current]


def list_runs(cube: str | os.PathLike | CubeStore, storage_options: dict | None = None) -> list[str]:
    """Names of the published runs of a cube (a path, URL or :class:`CubeStore`)."""
    store = as_store(cube, storage_options=storage_options)
    names = [n for n in store.children(RUNS) if n not in RESERVED]
    return [n for n in names if (_pointer(store, n) or {}).get("version")]


def open_run(cube: str | os.PathLike | CubeStore, run: str, storage_options: dict | None = None) -> xr.Dataset:
    """A run's predictions and per-sample metrics as a Dataset (dims sample, S2_band, y, x, input).

    ``roi_group``, ``roi``, ``patch_id`` and ``target_time`` label each sample, so
    it lines up with the cube (:func:`side_by_side` does that for you).

    Raises
    ------
    FileNotFoundError
        If there is no cube, or no published run of that name (the runs are listed).
    """
    store = as_store(cube, storage_options=storage_options)
    checked_state(store, allow_incomplete=True)
    version = (_pointer(store, check_run_name(run)) or {}).get("version")
    if not version:
        raise FileNotFoundError(f"{store.location}: no run {run!r} (runs: {', '.join(list_runs(store)) or 'none'})")
    ds = store.dataset(group=f"{RUNS}/{run}/{version}")
    if isinstance(ds.attrs.get("writer"), dict):  # a run written before the attribute became a JSON string
        ds.attrs["writer"] = json.dumps(ds.attrs["writer"])
    return ds.set_coords([c for c in ("input_times", "input_coverage") if c in ds])


def prune_runs(
    cube: str | os.PathLike | CubeStore, older_than_hours: float | None = None, storage_options: dict | None = None
) -> list[str]:
    """Delete what interrupted or replaced runs left; returns the deleted versions.

    Deleted: versions published once that the pointer no longer names (replaced),
    and versions never published whose writer is gone (it ran on this host and its process
    has ended), or, for writers on other hosts, that are older than
    ``older_than_hours``. Versions being written by a live process stay. Nothing is deleted through a symbolic
    link (see :meth:`cube.store.store.CubeStore.delete`).

    Raises
    ------
    cube.store.outputs.OutputRefused
        At a link inside ``runs`` that leads to a version to delete (the ones deleted before it stay deleted).
    """
    store = as_store(cube, "r+", storage_options)
    checked_state(store, allow_incomplete=True)
    deleted = []
    for name in [n for n in store.children(RUNS) if n not in RESERVED]:
        current = (_pointer(store, name) or {}).get("version")
        for version in [v for v in _versions(store, name) if v != current]:
            attributes = store.group_attributes(f"{RUNS}/{name}/{version}") or {}
            if "published" in attributes or owner_gone(run_writer(attributes)) or _older(version, older_than_hours):
                store.delete(f"{RUNS}/{name}/{version}")
                deleted.append(f"{RUNS}/{name}/{version}")
    return deleted


def _older(version: str, hours: float | None) -> bool:
    """True if a version's name says it was started more than ``hours`` ago."""
    started = _VERSION.fullmatch(version)
    if hours is None or not started:
        return False
    start = dt.datetime.strptime(started.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC) - start > dt.timedelta(hours=hours)


def side_by_side(cube_ds: xr.Dataset, run_ds: xr.Dataset) -> xr.Dataset:
    """A run's predictions beside their targets and inputs from the cube, all on the ``sample`` dimension.

    Parameters
    ----------
    cube_ds : xarray.Dataset
        The cube (:func:`cube.open_cube`).
    run_ds : xarray.Dataset
        One of its runs (:func:`open_run`), or a selection of its samples.

    Returns
    -------
    xarray.Dataset
        The run (``prediction``, per-sample metrics, labels) with ``target``
        (sample, S2_band, y, x) and ``inputs`` (sample, input, S2_band, y, x) from
        the cube as S2 reflectance x 10000, ``patch`` (position in ``cube_ds``)
        and the S2 dates of target and inputs. Lazy where the cube is (dask).

    Examples
    --------
    >>> both = side_by_side(open_cube("cube.zarr"), open_run("cube.zarr", "resnet_a"))  # doctest: +SKIP
    >>> (both.prediction.astype(float) - both.target).sel(S2_band="B4").isel(sample=0).plot()  # doctest: +SKIP
    """

    def keys(ds: xr.Dataset) -> pd.MultiIndex:
        return pd.MultiIndex.from_arrays(
            [ds.roi_group.values.astype(object), ds.roi.values.astype(int), ds.patch_id.values.astype(int)]
        )

    patch = keys(cube_ds).get_indexer(keys(run_ds))
    if (patch < 0).any():
        missing = keys(run_ds)[patch < 0][0]
        raise KeyError(f"patch {missing[2]} of {missing[0]}/{missing[1]} of the run is not in the cube")
    where = xr.DataArray(patch, dims="sample")
    target = xr.DataArray(run_ds.target_time.values, dims="sample")
    inputs = xr.DataArray(run_ds.input_times.values, dims=("sample", "input"))
    s2 = cube_ds.S2.reset_coords(drop=True).drop_vars("time")
    dates = cube_ds.S2_date.reset_coords(drop=True).drop_vars("time")
    both = run_ds.assign(target=s2.isel(patch=where, time=target), inputs=s2.isel(patch=where, time=inputs))
    return both.assign_coords(
        patch=where, target_date=dates.isel(patch=where, time=target), input_dates=dates.isel(patch=where, time=inputs)
    )
