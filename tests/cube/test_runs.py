"""Evaluation runs stored in a cube, as plain xarray sees them (cube.runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dask.array as da
import pytest
import xarray as xr

from cube.runs import RunWriter, open_run, prune_runs, run_writer
from cube.store import CubeStore


def test_a_run_exports_to_netcdf_with_its_writer_also_when_written_with_a_dict(
        tiny_cube: Path, tmp_path: Path) -> None:
    pytest.importorskip("netCDF4")
    cube = tmp_path / "cube.zarr"
    shutil.copytree(tiny_cube, cube)
    store = CubeStore(cube, mode="r+")
    writer = RunWriter(store, "a", xr.Dataset({"prediction": ("sample", da.zeros(3, dtype="uint16", chunks=3))}))
    writer.publish(xr.Dataset({"rmse": ("sample", [0.1, 0.2, 0.3])}))
    open_run(cube, "a").to_netcdf(tmp_path / "new.nc")
    with xr.open_dataset(tmp_path / "new.nc") as back:
        assert json.loads(back.attrs["writer"]) == writer.writer and back.rmse.values.tolist() == [0.1, 0.2, 0.3]

    store.group(writer.path, mode="r+").update_attributes({"writer": writer.writer})  # as runs were written before
    store.consolidate(writer.path)
    old = open_run(cube, "a")
    assert run_writer(old.attrs) == writer.writer
    old.to_netcdf(tmp_path / "old.nc")
    with xr.open_dataset(tmp_path / "old.nc") as back:
        assert json.loads(back.attrs["writer"]) == writer.writer

    for stored in (json.dumps, dict):  # an unpublished version whose writer is gone is pruned, in either form
        unpublished = RunWriter(store, "b", xr.Dataset({"rmse": ("sample", da.zeros(3, chunks=3))}))
        store.group(unpublished.path, mode="r+").update_attributes(
            {"writer": stored({**unpublished.writer, "pid_started": 0.0})})  # its process: ended
        assert prune_runs(cube) == [unpublished.path]
