"""bench_device's CPU part: its tiny size runs every row (or says why not) and writes and prints its result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks import bench_device
from benchmarks.bench_device import DEVICE_SIZE, ROWS, TINY_SIZE, run, run_row, training_steps

ROOT = Path(__file__).resolve().parents[2]


def test_the_tiny_size_runs_every_row_and_writes_and_prints_its_result(tmp_path: Path) -> None:
    scratch, results = tmp_path / "tmp", tmp_path / "results"
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(scratch)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_device", "--tiny", "--results", str(results)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((results / "bench_device.json").read_text())
    machine = result["machine"]
    assert machine["cpus"] == os.cpu_count() and "cpu_model" in machine and "gpu" in machine
    for row in ROWS:
        measures = {key: value for key, value in result.items() if key == row or key.startswith(f"{row}: ")}
        assert f"{row}: seconds (budget 60 s)" in measures, row
        assert len(measures) > 1, f"{row} has neither measures nor a reason: {measures}"
        assert "failed" not in str(measures.get(row, "")), measures
        assert row in done.stdout, done.stdout
    assert done.stdout.splitlines()[0].split() == ["|", "measure", "|", "value", "|"], done.stdout[:300]
    assert result["cloud pass: probabilities equal"] is True
    assert not list(scratch.glob("bench-device-*")), "scratch left behind"


def test_a_row_past_its_budget_is_stopped_and_says_so(tmp_path: Path) -> None:
    start = time.perf_counter()
    measures = run_row("archive groups at once", TINY_SIZE, tmp_path, budget_s=1)
    assert measures == {"skipped": "over its 1 s budget, stopped"}
    assert time.perf_counter() - start < 10


def test_rows_past_the_total_budget_are_skipped_and_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_device, "TOTAL_BUDGET_S", 0)
    result = run(tiny=True)
    assert {row: result[row] for row in ROWS} == dict.fromkeys(ROWS, "skipped: the 0 s of all rows are spent")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_cuda_the_full_size_training_steps_are_skipped(tmp_path: Path) -> None:
    assert training_steps(DEVICE_SIZE, tmp_path) == {"skipped": "no CUDA device"}
