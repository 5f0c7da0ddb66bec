"""A bucket that fails 5% of the requests (a proxy on 127.0.0.1 in front of moto resets the connection or answers
500 or 503): conversion, training reads and evaluation give exactly what a fault-free bucket gives, by retrying
with backoff; where retries run out, a command stops with one line."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from crts.cli import main
from crts.data import SEN12MSCRTS
from cube.store.runs import open_run
from tests.helpers import assert_same_variables
from tests.servers import S3Proxy, create_bucket

pytestmark = [pytest.mark.faults, pytest.mark.slow]
FAULT_RATE, SEED = 0.05, 1
"""Share of the requests the proxy breaks, and its seed; ``s3_cube`` (tests/conftest.py) is the fault-free cube."""


@pytest.fixture(scope="module")
def faulty(s3: str) -> S3Proxy:
    proxy = S3Proxy(s3, fault_rate=FAULT_RATE, seed=SEED)
    yield proxy
    proxy.close()


def _through(proxy: S3Proxy) -> list[str]:
    return ["--storage-option", f"endpoint={proxy.url}"]


def test_a_conversion_through_faults_equals_the_fault_free_one(
    faulty: S3Proxy, bucket_root: Path, s3_cube: str
) -> None:
    url = f"{create_bucket('converted-through-faults')}/cube.zarr"
    with faulty.counting() as requests:
        assert main(["convert", str(bucket_root), url, "--workers", "1", *_through(faulty)]) == 0
    assert sum(r.fault is not None for r in requests) >= 0.02 * len(requests) > 5  # it was tried
    assert {r.fault for r in requests} == {None, "reset", "500", "503"}
    assert_same_variables(url, s3_cube)


def test_training_reads_through_faults_equal_fault_free_ones(faulty: S3Proxy, s3_cube: str) -> None:
    direct, through = (
        SEN12MSCRTS(s3_cube, split="all"),
        SEN12MSCRTS(s3_cube, split="all", storage_options={"endpoint": faulty.url}),
    )
    with faulty.counting() as requests:
        read = [through[pdx] for pdx in range(len(through))]
    assert any(r.fault for r in requests)
    for pdx, sample in enumerate(read):
        expected = direct[pdx]
        for part in ("input", "target"):
            for key in ("S1", "S2", "masks"):
                np.testing.assert_array_equal(np.stack(sample[part][key]), np.stack(expected[part][key]))


def test_evaluation_into_a_bucket_through_faults_gives_the_same_run(faulty: S3Proxy, s3_cube: str) -> None:
    common = ["evaluate", "--cube", s3_cube, "--split", "all", "--baseline", "mosaic"]
    assert main([*common, "--run", "direct"]) == 0
    with faulty.counting() as requests:
        assert main([*common, "--run", "through-faults", *_through(faulty)]) == 0
    assert any(r.fault for r in requests)
    xr.testing.assert_identical(
        open_run(s3_cube, "through-faults").drop_attrs(), open_run(s3_cube, "direct").drop_attrs()
    )


def test_a_bucket_that_keeps_failing_is_one_line(s3: str, s3_cube: str, capsys: pytest.CaptureFixture[str]) -> None:
    broken = S3Proxy(s3, fault_rate=1.0)
    try:
        assert main(["stats", s3_cube, *_through(broken), "--storage-option", "max_retries=1"]) == 2
    finally:
        broken.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and s3_cube in err[0] and "Traceback" not in err[0], err
    tries = Counter(r.key for r in broken.requests)  # the root's zarr.json, read twice, each a try and a retry
    assert list(tries) == ["cube.zarr/zarr.json"] and tries["cube.zarr/zarr.json"] == 4


def test_a_wrong_number_of_retries_is_one_line(s3_cube: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", s3_cube, "--storage-option", "max_retries=many"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "max_retries='many'" in err[0], err
