"""Concurrent, interrupted and stale writers never lose, mislabel or brick a cube (single-writer lock, state)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from crts.cli import main
from cube import convert, open_cube
from cube.store.lock import LOCK, owner_record
from cube.store.store import CubeState, CubeStore, IncompleteCubeError
from cube.synth import make_dataset

pytestmark = pytest.mark.faults
ROIS = ["ROIs1868/17", "ROIs2017/32", "ROIs1868/56"]


@pytest.fixture(scope="module")
def three_rois(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 ROIs x 2 patches x 4 steps of 32 px."""
    return make_dataset(
        tmp_path_factory.mktemp("three") / "src",
        ROIS,
        patches_per_roi=2,
        size=32,
        times=4,
        seed=3,
        workers=1,
        progress=False,
    )


@pytest.fixture(scope="module")
def one_roi_cube(three_rois: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first ROI of ``three_rois`` converted, with the heuristic cloud pass only (fast)."""
    dst = tmp_path_factory.mktemp("one") / "cube.zarr"
    convert(three_rois, dst, rois=ROIS[:1], clouds=("cloud_cloudshadow_mask",), workers=1, progress=False)
    return dst


@pytest.fixture
def cube(one_roi_cube: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "cube.zarr"
    shutil.copytree(one_roi_cube, dst)
    return dst


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    """Every file of a store with its size and modification time."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file()}


def start_python(code: str, flag: Path | None = None) -> subprocess.Popen:
    """Run ``code`` in a new interpreter.

    With ``flag``, the code's ``#WAIT`` line makes it create ``<flag>.ready.<pid>`` and then wait for ``flag``
    (see :func:`release`): a synchronised start of several processes.
    """
    wait = (
        (
            f"import os, time, pathlib\npathlib.Path(f'{flag}.ready.{{os.getpid()}}').touch()\n"
            f"while not pathlib.Path({str(flag)!r}).exists(): time.sleep(0.0005)\n"
        )
        if flag
        else ""
    )
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code).replace("#WAIT\n", wait)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )


def release(flag: Path, procs: list[subprocess.Popen]) -> None:
    """Start the waiting processes at once, when all are ready."""
    deadline = time.monotonic() + 120
    while len(list(flag.parent.glob(f"{flag.name}.ready.*"))) < len(procs):
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
        time.sleep(0.01)
    flag.touch()


def convert_cli(src: Path, dst: Path, roi: str, flag: Path) -> subprocess.Popen:
    return start_python(
        f"""
        import sys
        import cube.ingest.conversion  # loaded before the release (the command imports it lazily), so that both
        from crts.cli import main  # writers reach the lock at the same moment
        #WAIT
        sys.exit(main(["convert", {str(src)!r}, {str(dst)!r}, "--rois", {roi!r}, "--workers", "1",
                       "--detectors", "cloud_cloudshadow_mask"]))
        """,
        flag,
    )


def assert_every_patch_holds_its_own_pixels(dst: Path, src: Path) -> None:
    ds = open_cube(dst)
    for p in range(ds.sizes["patch"]):
        for modality in ("S1", "S2"):
            for t in (0, ds.sizes["time"] - 1):
                path = src / str(ds[f"{modality}_path"].values[p, t])
                assert f"_{ds.roi_group.values[p]}_{ds.roi.values[p]}_" in path.name
                assert path.name.endswith(f"_patch_{ds.patch_id.values[p]}.tif")
                with rasterio.open(path) as f:
                    np.testing.assert_array_equal(ds[modality].values[p, t], f.read())


@pytest.mark.slow
def test_concurrent_appends_one_writer_at_a_time(three_rois: Path, one_roi_cube: Path, tmp_path: Path) -> None:
    refusals = 0
    for trial in range(3):
        dst, flag = tmp_path / f"cube{trial}.zarr", tmp_path / f"go{trial}"
        shutil.copytree(one_roi_cube, dst)
        procs = {roi: convert_cli(three_rois, dst, roi, flag) for roi in ROIS[1:]}
        release(flag, list(procs.values()))
        results = {roi: (p.wait(timeout=120), p.stderr.read()) for roi, p in procs.items()}
        landed = {roi for roi, (code, _) in results.items() if code == 0}
        for code, err in results.values():
            if code != 0:
                refusals += 1
                assert code == 2 and len(err.strip().splitlines()) == 1, err
                assert "another process is writing this cube" in err and "--force-unlock" in err
        assert landed, results
        ds = open_cube(dst)
        assert {f"{g}/{r}" for g, r in zip(ds.roi_group.values, ds.roi.values, strict=True)} == {ROIS[0], *landed}
        assert ds.sizes["patch"] == 2 * (1 + len(landed))
        assert_every_patch_holds_its_own_pixels(dst, three_rois)
        assert not (dst / LOCK).exists()
    assert refusals >= 1, "the writers never overlapped: the test did not exercise the lock"


def test_a_stale_lock_of_a_killed_writer_on_this_host_is_broken(three_rois: Path, cube: Path) -> None:
    proc = start_python(f"""
        import os, signal
        from cube.store.store import CubeStore
        with CubeStore({str(cube)!r}, mode="r+").writer("conversion"):
            os.kill(os.getpid(), signal.SIGKILL)
        """)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert (cube / LOCK / "zarr.json").exists()
    report = convert(three_rois, cube, rois=ROIS[1:2], clouds=(), workers=1, progress=False)
    assert report.patches_added == 2 and not (cube / LOCK).exists()


def test_a_live_writer_refuses_others_and_force_unlock_breaks_a_dead_remote_one(
    three_rois: Path, cube: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = CubeStore(cube, mode="r+")
    with store.writer("conversion"):  # this live process holds the lock
        before = snapshot(cube)
        assert main(["convert", str(three_rois), str(cube), "--rois", ROIS[1], "--workers", "1"]) == 2
        assert main(["clouds", str(cube), "--detectors", "s2cloudless_mask", "--workers", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and all(
            f"pid {os.getpid()}" in line and "another process is writing" in line for line in err
        )
        assert snapshot(cube) == before  # the refused writers left nothing behind
    remote = {**owner_record("conversion"), "host": "gpu-node-7", "pid": 1}
    store.write_group(LOCK, remote)  # a lock left by a process on another machine: not provably dead
    assert main(["convert", str(three_rois), str(cube), "--rois", ROIS[1], "--workers", "1"]) == 2
    assert "gpu-node-7" in capsys.readouterr().err
    assert (
        main(
            [
                "convert",
                str(three_rois),
                str(cube),
                "--rois",
                ROIS[1],
                "--workers",
                "1",
                "--detectors",
                "none",
                "--force-unlock",
            ]
        )
        == 0
    )
    assert open_cube(cube).sizes["patch"] == 4 and not (cube / LOCK).exists()


def test_the_state_is_replaced_in_one_write(cube: Path) -> None:
    """A reader never sees half of a commit (old code wrote 'complete' and 'pending' one after the other)."""
    store = CubeStore(cube, mode="r+")
    states = [
        CubeState(complete=False, pending={"start": 2, "patches": [["ROIs2017", 32, 0]], "grown": True}),
        CubeState(complete=True, gaps=0),
    ]
    seen: list[CubeState] = []
    allowed = [store.state(), *states]
    with store.writer("conversion") as owner:
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                seen.append(CubeStore(cube).state())

        reader = threading.Thread(target=read)
        reader.start()
        for i in range(200):
            store.commit(states[i % 2], owner)
        stop.set()
        reader.join()
    assert len(seen) > 10
    assert all(s in allowed for s in seen)


def test_an_interrupted_evaluate_does_not_block_conversions(three_rois: Path, cube: Path) -> None:
    proc = start_python(f"""
        import os
        import dask.array as da, xarray as xr
        from cube.store.runs import RunWriter
        from cube.store.store import CubeStore
        template = xr.Dataset({{"prediction": (("sample", "y"), da.zeros((4, 8), dtype="uint16", chunks=(1, 8)))}})
        writer = RunWriter(CubeStore({str(cube)!r}, mode="r+"), "a", template)
        writer.array("prediction")[0] = 7
        os._exit(0)  # gone before publishing
        """)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    torn = sorted((cube / "runs" / "a").glob("v*"))[0] / "prediction" / f"zarr.{'0' * 32}.partial"
    torn.write_bytes(b"half a write")
    assert convert(three_rois, cube, rois=ROIS[1:2], clouds=(), workers=1, progress=False).patches_added == 2
    assert torn.exists()  # the conversion cleans only what it owns
    assert main(["runs", str(cube)]) == 0
    assert main(["runs", str(cube), "--prune"]) == 0
    assert not list((cube / "runs" / "a").glob("v*"))


@pytest.mark.parametrize("name", ["zarr.json", ".hidden", "a/b", "x" * 300, "", "ok name"])
def test_run_names_follow_the_documented_rule(cube: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "evaluate",
            "--cube",
            str(cube),
            "--baseline",
            "mosaic",
            "--split",
            "all",
            "--cloud-masks",
            "cloud_cloudshadow_mask",
            "--run",
            name,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "invalid run name" in err[0] and len(err[0]) < 300
    assert not (cube / "runs").exists() or not list((cube / "runs").iterdir())


def test_republishing_a_run_never_leaves_a_moment_without_it(cube: Path) -> None:
    code = f"""
        import dask.array as da, xarray as xr
        from cube.store.runs import RunWriter
        from cube.store.store import CubeStore
        for value in range(8):
            template = xr.Dataset({{"prediction": ("sample", da.zeros(3, dtype="uint16", chunks=3))}})
            writer = RunWriter(CubeStore({str(cube)!r}, mode="r+"), "a", template)
            writer.array("prediction")[:] = value
            writer.publish(xr.Dataset({{"rmse": ("sample", [0.1, 0.2, 0.3])}}))
        """
    assert start_python(code).wait(timeout=120) == 0
    from cube.store.runs import list_runs, open_run

    proc, seen = start_python(code), []
    while proc.poll() is None:
        seen.append((list_runs(cube), int(open_run(cube, "a").prediction.values[0])))
    assert proc.returncode == 0 and len(seen) > 5
    assert all(names == ["a"] for names, _ in seen)
    assert len(list((cube / "runs" / "a").glob("v*"))) == 1  # every replaced version was deleted


def test_a_no_op_needs_no_write_access_and_starts_no_cluster(three_rois: Path, cube: Path) -> None:
    before = snapshot(cube)
    start = time.perf_counter()
    report = convert(three_rois, cube, rois=ROIS[:1], clouds=("cloud_cloudshadow_mask",), workers=2, progress=False)
    seconds = time.perf_counter() - start
    assert (report.patches_added, report.patches_converted, report.cloud_pass_patches) == (0, 0, 0)
    assert snapshot(cube) == before and seconds < 3  # a dask cluster alone takes longer to start


def test_readers_are_told_the_truth_while_a_writer_works(cube: Path) -> None:
    store = CubeStore(cube, mode="r+")
    with store.writer("conversion") as owner:
        state = store.state()
        store.commit(
            dataclasses.replace(state, complete=False, pending={"start": 2, "patches": [], "grown": False}), owner
        )
        with pytest.raises(IncompleteCubeError, match=f"is being written .*pid {os.getpid()}"):
            open_cube(cube)
    with pytest.raises(IncompleteCubeError, match="--resume"):  # its writer is gone now
        open_cube(cube)


def test_the_advice_for_an_unfinished_cloud_pass_works(cube: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = CubeStore(cube, mode="r+")
    with store.writer("cloud pass") as owner:  # as a killed pass leaves it
        state = store.state()
        store.commit(dataclasses.replace(state, clouds={"detectors": ["s2cloudless_mask"], "complete": False}), owner)
    assert main(["stats", str(cube), "--detector", "s2cloudless_mask"]) == 2
    advice = capsys.readouterr().err.split("run `")[1].split("`")[0]
    assert advice.startswith("crts clouds CUBE")
    assert main([word if word != "CUBE" else str(cube) for word in advice.split()[1:]] + ["--workers", "1"]) == 0
    assert main(["stats", str(cube), "--detector", "s2cloudless_mask"]) == 0
