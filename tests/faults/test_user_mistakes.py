"""A newcomer's ordinary mistakes: every number checked up front, typos answered with the closest choice, Ctrl-C
and resumes said in one line; nothing written where the input was bad."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from crts.cli import main
from crts.models import ResNet3D
from crts.train import warn_if_slow
from cube import convert, open_cube
from cube.store.runs import list_runs, open_run
from cube.synth import make_dataset
from tests.helpers import TINY_TRAINING, crts, error_line, refused

pytestmark = pytest.mark.faults

SMALL = [*TINY_TRAINING, "--max-steps", "2", "--checkpoint-every", "1"]
UNCRTAINTS = [
    "--model",
    "uncrtaints",
    "--width",
    "8",
    "--n-head",
    "2",
    "--d-model",
    "8",
    "--crop",
    "16",
    "--batch-size",
    "2",
    "--n-input-samples",
    "2",
    "--max-steps",
    "2",
    "--checkpoint-every",
    "1",
]


@pytest.fixture
def cube_copy(sampling_cube: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sampling_cube, tmp_path / "cube.zarr"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "-1"], "invalid lr -1.0: must be a number in (0, inf)"),
        (["--max-steps", "0"], "invalid max_steps 0"),
        (["--min-cov", "0.9", "--max-cov", "0.1"], "min_cov 0.9 is above max_cov 0.1"),
        (["--min-cov", "-0.5"], "invalid min_cov -0.5"),
        (["--max-cov", "2"], "invalid max_cov 2.0"),
        (["--n-input-samples", "0"], "invalid n_input_samples 0"),
        (["--beta1", "1"], "invalid beta1 1.0"),
        (["--batch-size", "0"], "invalid batch_size 0"),
        (["--device", "gpu"], "invalid device 'gpu'"),
    ],
)
def test_train_checks_every_number_before_writing(
    sampling_cube: Path, tmp_path: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    refused(["train", str(sampling_cube), "--out", str(out), *SMALL, *flags], capsys, message)
    assert not out.exists()


def test_train_into_a_folder_of_other_files_is_refused(
    sampling_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    refused(
        ["train", str(sampling_cube), "--out", str(tmp_path), *SMALL],
        capsys,
        "holds files that are not a training run",
        "notes.txt",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_resume_takes_the_run_s_own_model_and_settings(
    sampling_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "unc"
    assert main(["train", str(sampling_cube), "--out", str(out), *UNCRTAINTS]) == 0
    assert main(["train", "--out", str(out), "--resume", "--max-steps", "3"]) == 0  # no --model, no cube
    content = torch.load(out / "last.pt", weights_only=True)
    assert content["model"] == "uncrtaints" and content["step"] == 3
    refused(
        ["train", str(sampling_cube), "--out", str(out), "--resume", "--model", "resnet3d", "--max-steps", "4"],
        capsys,
        f"{out} was trained as uncrtaints, not resnet3d: leave out --model (or give --model uncrtaints)",
    )
    done = crts("train", "--out", str(out), "--resume", "--model", "utae", "--max-steps", "4")  # as a user does
    assert error_line(done.returncode, done.stderr) == (
        f"crts train: error: {out} was trained as uncrtaints, not utae: leave out --model (or give --model "
        "uncrtaints) to resume it"
    )
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3


def test_a_full_size_model_on_the_cpu_is_announced(monkeypatch: pytest.MonkeyPatch) -> None:
    model = ResNet3D(n_inputs=2, features=8, blocks=1)
    monkeypatch.setattr("crts.train.CPU_PARAMETERS", 100)
    with pytest.warns(UserWarning, match="on the CPU takes minutes per step.*--features 16"):
        warn_if_slow(model, torch.device("cpu"))


def test_init_encoder_errors_name_the_file(
    sampling_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "baseline_resnet.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, wrong)
    refused(
        ["train", str(sampling_cube), "--out", str(tmp_path / "run"), *SMALL, "--init-encoder", str(wrong)],
        capsys,
        str(wrong),
        "neither an original generator",
    )
    small = ResNet3D(n_inputs=2, features=4, blocks=1).state_dict()
    torch.save(
        {f"module.model.{k.split('.', 1)[1]}": v for k, v in small.items() if k.startswith("model_initial")}, wrong
    )
    refused(
        [
            "train",
            str(sampling_cube),
            "--out",
            str(tmp_path / "run"),
            *SMALL,
            "--features",
            "8",
            "--init-encoder",
            str(wrong),
        ],
        capsys,
        str(wrong),
        "do not fit this model",
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--min-cov", "0.9", "--max-cov", "0.1"], "min_cov 0.9 is above max_cov 0.1"),
        (["--min-cov", "-0.5", "--max-cov", "2"], "invalid min_cov -0.5"),
        (["--n-input-samples", "0"], "invalid n_input_samples 0"),
        (["--batch-size", "0"], "invalid batch size 0"),
        (["--device", "tpu9"], "invalid device 'tpu9'"),
    ],
)
def test_evaluate_checks_every_number_before_writing(
    cube_copy: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(
        ["evaluate", str(cube_copy), "--baseline", "mosaic", "--split", "test", "--run", "r", *flags], capsys, message
    )
    assert list_runs(cube_copy) == [] and not (cube_copy / "runs").exists()


def test_evaluate_says_when_targets_are_among_the_inputs(cube_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(cube_copy), "--baseline", "least_cloudy", "--split", "test", "--run", "lc"]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("crts evaluate: warning:")]
    run = open_run(cube_copy, "lc")
    trivial = int(run.target_in_inputs.sum())
    assert trivial > 0 and run.attrs["samples_target_in_inputs"] == trivial
    assert len(warning) == 1 and f"{trivial} of {run.sizes['sample']} samples" in warning[0]
    assert "--min-cov 0.05" in warning[0]
    assert f"{run.sizes['sample']}/{run.sizes['sample']}" in err and "sample/s" in err  # the bar counts samples
    assert float(run.rmse.where(run.target_in_inputs).max()) < 1e-6  # the scores the warning is about
    assert (
        main(
            [
                "evaluate",
                str(cube_copy),
                "--baseline",
                "least_cloudy",
                "--split",
                "test",
                "--run",
                "lc5",
                "--min-cov",
                "0.05",
            ]
        )
        == 0
    )
    assert "warning" not in capsys.readouterr().err
    run = open_run(cube_copy, "lc5")
    assert not run.target_in_inputs.any() and float(run.rmse.min()) > 0


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["conver", "a", "b"], "did you mean 'convert'?"),
        (["convert", "a", "b", "--split", "tset"], "did you mean 'test'?"),
        (["evaluate", "c", "--baseline", "least_cloudi", "--run", "r"], "did you mean 'least_cloudy'?"),
        (["convert", "a", "b", "--on-eror", "skip"], "did you mean '--on-error'?"),
    ],
)
def test_typos_get_one_line_with_the_closest_choice(
    argv: list[str], suggestion: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert "usage:" not in error_line(exit_.value.code, capsys.readouterr().err, suggestion)


def test_a_geotiff_tree_given_as_the_cube_gets_the_remedy(tiny_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused(["info", str(tiny_root)], capsys, "GeoTIFF tree", "crts convert SRC CUBE")


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_convert_needs_at_least_one_worker(
    tiny_root: Path, tmp_path: Path, workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    refused(
        ["convert", str(tiny_root), str(tmp_path / "c.zarr"), "--workers", workers],
        capsys,
        f"invalid workers {workers}",
    )
    assert not (tmp_path / "c.zarr").exists()


def test_commands_that_need_neither_torch_nor_the_converter_import_neither() -> None:
    code = (
        "import sys; from crts.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'xarray', 'zarr', 'cube.ingest.conversion') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    code = (
        "import sys; from crts.cli import main; main(['info', sys.argv[1]])\n"
        "print(sorted(m for m in ('torch', 'cube.ingest.conversion') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code, "/nonexistent"], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.slow
def stderr_until(proc: subprocess.Popen, pattern: re.Pattern[bytes], timeout: float = 120) -> bytes:
    """What ``proc`` wrote to stderr until ``pattern`` matched it: the moment to interrupt it, taken
    from its own progress rather than from files that may appear only near its end."""
    seen, deadline = b"", time.monotonic() + timeout
    while not pattern.search(seen):
        assert time.monotonic() < deadline and proc.poll() is None, seen.decode(errors="replace")
        seen += os.read(proc.stderr.fileno(), 4096)
    return seen


def test_ctrl_c_during_convert_is_one_line_and_resumes(tmp_path: Path) -> None:
    root = make_dataset(
        tmp_path / "src",
        ["ROIs1868/17", "ROIs2017/63"],
        patches_per_roi=4,
        size=128,
        times=30,
        workers=2,
        progress=False,
    )
    cube = tmp_path / "cube.zarr"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "crts", "convert", str(root), str(cube), "--workers", "2", "--detectors", "none"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, env=env, start_new_session=True)
    err = stderr_until(proc, re.compile(rb"converting: .*\b[1-3]/8\b"))  # the workers run (and hear Ctrl-C)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: to every process of the group, dask workers too
    err += proc.communicate(timeout=120)[1]
    err = err.decode()
    assert proc.returncode == 130, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line and "converting" not in line]
    assert lines == [
        "crts convert: interrupted: the patches converted so far are kept: run the same command with --resume to finish"
    ], err
    assert main(["convert", str(root), str(cube), "--workers", "1", "--detectors", "none", "--resume"]) == 0
    fresh = tmp_path / "fresh.zarr"
    assert main(["convert", str(root), str(fresh), "--workers", "1", "--detectors", "none"]) == 0
    a, b = open_cube(cube), open_cube(fresh)
    for name in ("S1", "S2", "valid"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_ctrl_c_before_the_first_checkpoint_says_so_and_the_same_command_runs_again(
    sampling_cube: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "crts",
        "train",
        str(sampling_cube),
        "--out",
        str(out),
        *TINY_TRAINING,
        "--max-steps",
        "400",
        "--checkpoint-every",
        "1000",
        "--log-every",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out / "log.csv").is_file() or len((out / "log.csv").read_text().splitlines()) < 3:  # header, 2 steps
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be interrupted"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line and not line.startswith("training")]
    assert lines == [
        "crts train: interrupted: no checkpoint was written yet, nothing to resume: run the same command "
        "again (without --resume) to start the run over"
    ], err
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "log.csv", "tensorboard"]  # no last.pt
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 400
    with (out / "log.csv").open(newline="") as log:
        steps = [int(row["step"]) for row in csv.DictReader(log) if row["loss"]]
    assert steps == list(range(1, 401))  # the new run's log alone (the stopped run's lines are gone)
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_a_plain_open_zarr_of_an_unfinished_conversion_fails_naming_it(tiny_root: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_root, tmp_path / "SEN12MSCRTS"))
    damaged = sorted(root.glob("ROIs2017/32/S2/2/*.tif"))[-1]
    intact = damaged.read_bytes()
    damaged.write_bytes(intact[:500])  # found while reading pixels: the conversion stops with the cube written
    cube = tmp_path / "cube.zarr"
    done = crts("convert", str(root), str(cube), "--workers", "1", "--detectors", "none")
    assert done.returncode == 2 and str(damaged) in done.stderr and "Traceback" not in done.stderr
    plain = (
        "import sys, xarray as xr\n"
        "try:\n    xr.open_zarr(sys.argv[1])\nexcept ValueError as err:\n    print(err)\n"
        "print(xr.open_zarr(sys.argv[1], consolidated=False).attrs.get('conversion_state'))"
    )
    seen = crts(str(cube), code=plain)
    assert seen.returncode == 0, seen.stderr
    failed, attribute = seen.stdout.splitlines()
    assert "incomplete: the conversion writing this cube has not finished" in failed and "--resume" in failed
    assert attribute.startswith("incomplete: ") and "allow_incomplete=True" in attribute
    partial = open_cube(cube, allow_incomplete=True)
    assert not partial.valid.values.all() and "conversion_state" in partial.attrs
    damaged.write_bytes(intact)
    assert crts("convert", str(root), str(cube), "--workers", "1", "--detectors", "none", "--resume").returncode == 0
    convert(root, tmp_path / "fresh.zarr", workers=1, clouds=(), progress=False)
    finished, fresh = (json.loads((c / "zarr.json").read_text()) for c in (cube, tmp_path / "fresh.zarr"))
    assert finished == fresh and "conversion_state" not in finished["attributes"]  # a complete cube is as before
    assert open_cube(cube).valid.values.all()


def test_another_synthetic_set_appended_says_how_to_go_on(tmp_path: Path) -> None:
    tiny = {"patches_per_roi": 2, "size": 32, "times": 4, "workers": 1, "progress": False}
    first, other = (
        make_dataset(tmp_path / name, [roi], seed=seed, **tiny)
        for name, roi, seed in (("a", "ROIs1868/17", 1), ("b", "ROIs2017/32", 2))
    )
    cube = tmp_path / "cube.zarr"
    convert(first, cube, workers=1, clouds=("cloud_cloudshadow_mask",), progress=False)
    done = crts("convert", str(other), str(cube), "--workers", "1")
    assert error_line(done.returncode, done.stderr) == (
        f"crts convert: error: {cube}: was converted from {first}, not {other}; a cube appends from its own source "
        f"root only (it records file paths relative to it): put the new ROI folders or archives in {first} and run "
        f"`crts convert {first} {cube}` (it adds only the patches not in the cube), or convert {other} into a new "
        "cube"
    )
    make_dataset(first, ["ROIs2017/32"], seed=2, overwrite=True, **tiny)  # another set where the first was
    convert(first, cube, workers=1, clouds=("cloud_cloudshadow_mask",), progress=False)
    done = crts("stats", str(cube), "--truth")
    assert error_line(done.returncode, done.stderr) == (
        f"crts stats: error: {first}: its synthetic truth lacks 2 of the cube's 4 patches (e.g. ROIs1868/17 patch "
        f"{open_cube(cube).patch_id.values[0]}: converted from a synthetic set that is no longer there); --truth "
        f"scores a cube converted from one synthetic set: convert {first} into a new cube to score that set"
    )


def test_a_missing_index_file_names_where_the_published_ones_come_from(cube_copy: Path, tmp_path: Path) -> None:
    from crts.data import SEN12MSCRTS

    missing = tmp_path / "3_test_s2cloudless_mask.npy"
    where = (
        "no such index file; the original authors' published index files (e.g. 3_test_s2cloudless_mask.npy) "
        "are downloaded from the link in https://github.com/PatrickTUM/SEN12MS-CR-TS (README, Usage)"
    )
    with pytest.raises(FileNotFoundError, match=re.escape(f"{missing}: {where}")):
        SEN12MSCRTS(cube_copy, split="test", import_data_path=missing)
    with pytest.raises(FileNotFoundError, match=re.escape(f"{missing}: {where}")):  # a folder without the file
        SEN12MSCRTS(cube_copy, split="test", n_input_samples=3, import_data_path=tmp_path)
    done = crts("evaluate", str(cube_copy), "--baseline", "mosaic", "--import-index", str(missing), "--run", "m")
    assert error_line(done.returncode, done.stderr).startswith(f"crts evaluate: error: {missing}: {where}")
    assert list_runs(cube_copy) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--lr-typo", "1", "CUBE"], "unrecognized arguments: --lr-typo CUBE; did you mean '--lr'?"),
        (["train", "CUBE", "--model", "uncrtaint"], "invalid choice: 'uncrtaint'"),
        (["train", "CUBE", "--loss", "l3"], "invalid choice: 'l3'"),
        (["train", "CUBE", "--lr", "fast"], "argument --lr: invalid float value: 'fast'"),
        (["train", "CUBE", "--lr", "-1"], "invalid lr -1.0: must be a number in (0, inf)"),
        (["train", "CUBE", "--min-cov", "0.9", "--max-cov", "0.1"], "min_cov 0.9 is above max_cov 0.1"),
        (["evaluate", "CUBE", "--baseline", "least_cloudi", "--run", "r"], "did you mean 'least_cloudy'?"),
        (["evaluate", "CUBE", "--baseline", "mosaic", "--run", "r", "--widnow", "64"], "did you mean '--window'?"),
    ],
)
def test_train_and_evaluate_check_their_arguments_before_importing_torch(argv: list[str], message: str) -> None:
    code = (
        "import sys\nfrom crts.cli import main\n"
        "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as stop:\n    code = stop.code\n"
        "print(code, sorted(m for m in ('torch', 'xarray', 'zarr', 'crts.train', 'crts.evaluate') "
        "if m in sys.modules))"
    )
    done = crts(*argv, code=code)
    assert done.stdout.splitlines() == ["2 []"], done.stderr
    error_line(2, done.stderr, message)  # the status printed above


@pytest.mark.parametrize(
    ("status", "err"),
    [
        (1, "crts info: error: x: no cube\n"),  # the wrong exit status
        (2, "crts info: error: x: no cube\ncrts info: error: and another\n"),  # two lines
        (2, 'Traceback (most recent call last):\n  File "x"\nValueError: x\ncrts info: error: x: no cube\n'),
        (2, "crts info: error: x: no cube"),  # no end of line
        (2, "crts info: error: x: a cube\n"),  # not the words asked for
        (2, " 40%|####      | 2/5 [00:01<00:02, 1.2patch/s]\r\n"),  # no error at all
    ],
)
def test_a_refusal_is_one_line_with_exit_status_2(status: int, err: str) -> None:
    """What the tests of this folder hold every refused command to; progress bars and warnings may come first."""
    bar, warning = " 40%|####      | 2/5 [00:01<00:02, 1.2patch/s]\r", "crts info: warning: slow disk\n"
    assert error_line(2, f"{bar}{warning}crts info: error: x: no cube\n", "no cube") == "crts info: error: x: no cube"
    with pytest.raises(AssertionError):
        error_line(status, err, "no cube")
