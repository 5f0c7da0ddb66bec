"""Evaluation runs stored in a cube, as plain xarray sees them (cube.store.runs)."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path

import dask.array as da
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cube.store.outputs import OutputRefused
from cube.store.runs import RunWriter, open_run, prune_runs, run_writer
from cube.store.store import CubeStore
from tests.servers import create_bucket


def test_a_run_exports_to_netcdf_with_its_writer_also_when_written_with_a_dict(tiny_cube: Path, tmp_path: Path) -> None:
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
            {"writer": stored({**unpublished.writer, "pid_started": 0.0})}
        )  # its process: ended
        assert prune_runs(cube) == [unpublished.path]


OLD_VERSION = "v20200101T000000Z-0123abcd"
"""A version name started long ago: ``prune_runs(..., older_than_hours=1)`` deletes such a leftover."""


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _outside(tmp_path: Path) -> Path:
    """A folder outside the cube laid out like a run's leftovers: ``a/<old version>/`` and ``<old version>/``."""
    outside = tmp_path / "elsewhere"
    for folder in (outside / "a" / OLD_VERSION, outside / OLD_VERSION):
        folder.mkdir(parents=True)
        (folder / "thesis.tex").write_text("years of work")
    return outside


@pytest.mark.parametrize("link", ["runs", "runs/linked", f"runs/a/{OLD_VERSION}"])
def test_prune_deletes_nothing_through_a_link(tiny_cube: Path, tmp_path: Path, link: str) -> None:
    cube = Path(shutil.copytree(tiny_cube, tmp_path / "cube.zarr"))
    outside = _outside(tmp_path)
    if link != "runs":
        (cube / "runs" / "a").mkdir(parents=True)
    target = {"runs": outside, "runs/linked": outside / "a"}.get(link, outside / OLD_VERSION)
    (cube / link).symlink_to(target, target_is_directory=True)
    before = _snapshot(outside)
    with pytest.raises(
        OutputRefused, match=f"^{re.escape(str(cube / link))}: is a symbolic link .*nothing is deleted through a link"
    ):
        prune_runs(cube, older_than_hours=1)
    assert _snapshot(outside) == before and len(before) == 2
    assert (cube / link).is_symlink()


def test_prune_in_a_bucket_deletes_only_its_prefix_under_the_cube(s3: str, tiny_cube: Path) -> None:
    import boto3

    bucket = create_bucket("prune-prefixes")
    client = boto3.client("s3")
    name = bucket.removeprefix("s3://")
    for path in sorted(tiny_cube.rglob("*")):
        if path.is_file() and not path.relative_to(tiny_cube).as_posix().startswith("runs/"):
            client.put_object(
                Bucket=name, Key=f"cube.zarr/{path.relative_to(tiny_cube).as_posix()}", Body=path.read_bytes()
            )
    leftover = f"cube.zarr/runs/a/{OLD_VERSION}"
    kept = [
        f"{leftover}0/zarr.json",  # another version whose name starts with the leftover's
        f"cube.zarr.old/runs/a/{OLD_VERSION}/zarr.json",  # another cube whose prefix starts with the cube's
        f"other/cube.zarr/runs/a/{OLD_VERSION}/zarr.json",
    ]
    for key in [f"{leftover}/zarr.json", f"{leftover}/prediction/c/0", *kept]:
        client.put_object(Bucket=name, Key=key, Body=b"{}")
    assert prune_runs(f"{bucket}/cube.zarr", older_than_hours=1) == [f"runs/a/{OLD_VERSION}"]
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=name)["Contents"]}
    assert not any(k.startswith(f"{leftover}/") for k in keys) and set(kept) <= keys


KINDS = ("folder", "link to a folder outside", "link to a file outside", "dangling link")
"""What each level of ``runs/<run>/<version>`` is in :func:`test_prune_never_reaches_outside_the_cube`."""


@given(
    levels=st.tuples(*[st.sampled_from(KINDS)] * 3),
    version=st.sampled_from([OLD_VERSION, "x", "v1"]),
    published=st.booleans(),
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_prune_never_reaches_outside_the_cube(
    tiny_cube: Path,
    tmp_path_factory: pytest.TempPathFactory,
    levels: tuple[str, str, str],
    version: str,
    published: bool,
) -> None:
    base = tmp_path_factory.mktemp("links")
    cube = base / "cube.zarr"
    for name in ("zarr.json", "cube_state/zarr.json"):  # what prune reads of a cube besides its runs
        (cube / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny_cube / name, cube / name)
    outside = _outside(base)
    for folder in (outside, outside / "a", outside / OLD_VERSION):
        (folder / "zarr.json").write_text(
            json.dumps(
                {"zarr_format": 3, "node_type": "group", "attributes": {"published": "2020"} if published else {}}
            )
        )
    path = cube
    for kind, name in zip(levels, ("runs", "a", version), strict=True):
        path = path / name
        if kind == "folder":
            path.mkdir()
        else:
            path.symlink_to(
                {
                    "link to a folder outside": outside / ("a" if name == "a" else OLD_VERSION),
                    "link to a file outside": outside / "a" / OLD_VERSION / "thesis.tex",
                    "dangling link": base / "gone",
                }[kind]
            )
        if kind != "folder":
            break
    else:  # a real version folder: pruned, as a leftover, if its name is an old version's
        (path / "zarr.json").write_text(
            json.dumps(
                {"zarr_format": 3, "node_type": "group", "attributes": {"published": "2020"} if published else {}}
            )
        )
    before = _snapshot(outside)
    try:
        prune_runs(cube, older_than_hours=1)
    except OutputRefused as err:
        assert "is a symbolic link" in str(err) and "\n" not in str(err)
    assert _snapshot(outside) == before


def test_a_version_the_file_system_will_not_delete_is_one_error(
    tiny_cube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cube = Path(shutil.copytree(tiny_cube, tmp_path / "cube.zarr"))
    (cube / "runs" / "a" / OLD_VERSION).mkdir(parents=True)

    def immutable(path: object, *args: object, **kwargs: object) -> None:  # what rmtree meets in a chattr +i folder
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), "zarr.json")

    monkeypatch.setattr(shutil, "rmtree", immutable)
    with pytest.raises(OutputRefused) as err:
        prune_runs(cube, older_than_hours=1)
    assert str(err.value) == (
        f"{cube / 'runs' / 'a' / OLD_VERSION}: cannot be deleted: Operation not permitted (zarr.json)"
    )
