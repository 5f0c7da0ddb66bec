"""The cube in a bucket (an S3-compatible server on 127.0.0.1) and over HTTP: the same results as on disk."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from crts.cli import main
from crts.data import SEN12MSCRTS, SampleWindows, loader
from cube import convert
from cube.store.runs import list_runs, open_run
from cube.store.store import CubeStore
from tests.helpers import assert_same_variables
from tests.servers import create_bucket, http_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_cube(bucket_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("objects") / "local.zarr"
    convert(bucket_root, dst, workers=1, progress=False)
    return dst


def bucket() -> str:
    return create_bucket(f"b-{uuid.uuid4().hex[:12]}")


def test_a_cube_converted_into_a_bucket_equals_the_local_one(s3_cube: str, local_cube: Path) -> None:
    assert_same_variables(s3_cube, local_cube)
    assert not (Path.cwd() / "s3:").exists()  # the URL was not taken for a folder


def test_kill_9_then_resume_into_a_bucket(s3: str, bucket_root: Path, local_cube: Path) -> None:
    url = f"{bucket()}/cube.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "crts", "convert", str(bucket_root), url, "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store, deadline = CubeStore(url), time.monotonic() + 120
    while (store.state() or None) is None or not (store.state().pending or {}).get("grown"):
        assert proc.poll() is None and time.monotonic() < deadline, "the conversion ended before it was killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert main(["convert", str(bucket_root), url, "--workers", "1", "--resume"]) == 0
    assert_same_variables(url, local_cube)


def test_samples_from_a_bucket_equal_those_from_disk(s3_cube: str, local_cube: Path) -> None:
    remote, local = SEN12MSCRTS(s3_cube, split="all"), SEN12MSCRTS(local_cube, split="all")
    assert len(remote) == len(local) == 6
    for pdx in range(len(local)):
        a, b = remote[pdx], local[pdx]
        np.testing.assert_array_equal(np.stack(a["input"]["S2"]), np.stack(b["input"]["S2"]))
        np.testing.assert_array_equal(np.stack(a["input"]["masks"]), np.stack(b["input"]["masks"]))
        np.testing.assert_array_equal(a["target"]["S1"][0], b["target"]["S1"][0])


def test_loader_workers_read_a_bucket_after_the_parent_did(s3_cube: str) -> None:
    windows = SampleWindows(SEN12MSCRTS(s3_cube, split="all"))
    windows[0]  # obstore's runtime now runs in this process: workers forked from it hung
    data = loader(windows, batch_size=2, num_workers=2, timeout=60)
    assert sorted(int(p) for batch in data for p in batch["pdx"]) == list(range(len(windows)))


def test_train_evaluate_report_and_runs_in_a_bucket(
    s3_cube: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "train",
                "--cube",
                s3_cube,
                "--out",
                str(tmp_path / "run"),
                "--features",
                "4",
                "--blocks",
                "1",
                "--crop",
                "16",
                "--max-steps",
                "2",
                "--batch-size",
                "2",
                "--n-input-samples",
                "2",
                "--checkpoint-every",
                "2",
            ]
        )
        == 0
    )
    threads = [
        threading.Thread(
            target=main,
            args=(["evaluate", "--cube", s3_cube, "--split", "all", "--run", name, "--baseline", baseline],),
        )
        for name, baseline in (("least", "least_cloudy"), ("mosaic", "mosaic"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (
        main(
            [
                "evaluate",
                "--cube",
                s3_cube,
                "--split",
                "all",
                "--run",
                "resnet",
                "--checkpoint",
                str(tmp_path / "run" / "last.pt"),
            ]
        )
        == 0
    )
    assert list_runs(s3_cube) == ["least", "mosaic", "resnet"]
    assert open_run(s3_cube, "mosaic").attrs["baseline"] == "mosaic"
    assert main(["report", s3_cube, "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "examples.png").stat().st_size > 0
    assert main(["stats", s3_cube, "--by", "split"]) == 0
    assert main(["runs", s3_cube]) == 0 and "resnet" in capsys.readouterr().out


def test_an_interrupted_run_in_a_bucket_stays_invisible_and_is_pruned(s3_cube: str) -> None:
    code = f"""
import os
import dask.array as da, xarray as xr
from cube.store.runs import RunWriter
from cube.store.store import CubeStore
template = xr.Dataset({{"prediction": ("sample", da.zeros(3, dtype="uint16", chunks=3))}})
RunWriter(CubeStore({s3_cube!r}, mode="r+"), "killed", template).array("prediction")[:] = 1
os._exit(0)
"""
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    assert "killed" not in list_runs(s3_cube)
    assert main(["runs", s3_cube, "--prune"]) == 0
    assert not CubeStore(s3_cube).children("runs/killed")[1:]  # only its pointer's zarr.json is left


def test_a_cube_over_http_reads_like_the_local_one(local_cube: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with http_server(local_cube.parent) as url:
        remote = f"{url}/{local_cube.name}"
        assert_same_variables(remote, local_cube)
        a, b = SEN12MSCRTS(remote, split="all")[1], SEN12MSCRTS(local_cube, split="all")[1]
        np.testing.assert_array_equal(np.stack(a["input"]["S2"]), np.stack(b["input"]["S2"]))
        assert main(["stats", remote, "--by", "split"]) == 0
        assert main(["evaluate", "--cube", remote, "--baseline", "mosaic", "--run", "x"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "read-only" in err[0]


@pytest.mark.parametrize(
    "where, expected",
    [
        ("s3://no-such-bucket-here/cube.zarr", "no-such-bucket-here"),
        ("s3://{bucket}/not-a-cube", "no cube here"),
        ("ftp://host/cube.zarr", "unknown URL scheme"),
    ],
)
def test_bad_locations_are_one_line_errors(
    s3: str, where: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    where = where.format(bucket=bucket().removeprefix("s3://"))
    assert main(["stats", where]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and "Traceback" not in err[0]


def test_converting_into_a_missing_bucket_is_one_line(
    s3: str, bucket_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["convert", str(bucket_root), "s3://no-such-bucket-here/cube.zarr", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-bucket-here" in err[0]


def test_wrong_credentials_are_one_line(s3: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A second S3 server that checks signatures (moto's IAM enforcement): the test keys are unknown to it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        options = ["--storage-option", f"endpoint=http://127.0.0.1:{port}", "--storage-option", "allow_http=true"]
        assert main(["stats", "s3://lab-cubes/cube.zarr", *options]) == 2
    finally:
        server.kill()
        server.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "s3://lab-cubes/cube.zarr: access denied (check the credentials)" in err[0], err
