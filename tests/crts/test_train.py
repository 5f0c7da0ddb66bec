"""Training from cube batches: it learns, it resumes exactly (also with gradient accumulation), it logs without
reading the loss every step, it runs under torchrun."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from crts.cli import main
from crts.data import SEN12MSCRTS, SampleWindows, loader
from crts.losses import reconstruction_loss
from crts.models import ResNet3D, UnCRtainTS, load_checkpoint
from crts.models.uncrtaints import input_dates
from crts.train import TrainConfig, total_steps, train


def _config(cube: Path, out: Path, **changes: object) -> TrainConfig:
    base = TrainConfig(
        cube=str(cube),
        out=str(out),
        crop=16,
        batch_size=2,
        features=8,
        blocks=1,
        n_input_samples=2,
        epochs=2,
        epochs_decay=2,
        checkpoint_every=2,
        seed=5,
    )
    return dataclasses.replace(base, **changes)


def test_a_tiny_model_overfits_one_batch(sampling_cube: Path) -> None:
    torch.manual_seed(0)
    batch = next(
        iter(
            loader(
                SampleWindows(SEN12MSCRTS(sampling_cube, split="train", n_input_samples=2), {"y": 16, "x": 16}),
                batch_size=4,
            )
        )
    )
    inputs, target = batch["inputs"] * 2 - 1, batch["target"] * 2 - 1
    model = ResNet3D(n_inputs=2, features=16, blocks=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(300):
        loss = torch.nn.functional.l1_loss(model(inputs), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-10:]) < losses[0] / 10


def test_resume_continues_to_the_same_weights(sampling_cube: Path, tmp_path: Path) -> None:
    whole = train(_config(sampling_cube, tmp_path / "whole", max_steps=7), progress=False)
    part = _config(sampling_cube, tmp_path / "part", max_steps=4)
    train(part, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(part, progress=False)
    resumed = train(dataclasses.replace(part, max_steps=7), resume=True, progress=False)
    a, saved_a = load_checkpoint(whole / "last.pt")
    b, saved_b = load_checkpoint(resumed / "last.pt")
    assert saved_a["step"] == saved_b["step"] == 7
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    with (resumed / "log.csv").open(newline="") as log:
        rows = [row for row in csv.DictReader(log) if row["loss"]]
    assert [int(row["step"]) for row in rows][-1] == 7
    assert (resumed / "tensorboard").is_dir()


@pytest.mark.slow
def test_torchrun_with_two_processes_on_cpu(sampling_cube: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp"
    result = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "crts",
            "train",
            "--cube",
            str(sampling_cube),
            "--out",
            str(out),
            "--crop",
            "16",
            "--batch-size",
            "1",
            "--features",
            "8",
            "--blocks",
            "1",
            "--n-input-samples",
            "2",
            "--region",
            "europa",
            "--epochs",
            "2",
            "--epochs-decay",
            "0",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    model, saved = load_checkpoint(out / "last.pt")  # 3 train patches: one per rank and epoch, one left out
    assert saved["step"] == 2 and model.config["features"] == 8


@pytest.mark.slow
def test_a_short_run_beats_the_least_cloudy_baseline_on_val(sampling_cube: Path, tmp_path: Path) -> None:
    config = _config(
        sampling_cube,
        tmp_path / "run",
        crop=32,
        batch_size=4,
        features=16,
        blocks=2,
        n_input_samples=3,
        min_cov=0.05,
        epochs=40,
        epochs_decay=0,
        lr=1e-3,
        checkpoint_every=1000,
    )
    run = train(config, progress=False)
    rows = [row for row in csv.DictReader((run / "log.csv").open()) if row["val_l1"]]
    first, last = rows[0], rows[-1]
    assert float(last["val_l1"]) < float(last["val_l1_least_cloudy"]) < float(first["val_l1"])


def test_encoder_from_baseline_resnet_stays_frozen_then_learns(sampling_cube: Path, tmp_path: Path) -> None:
    encoder = ResNet3D(n_inputs=2, features=8, blocks=1).model_initial.state_dict()
    torch.save({f"model.{k}": v for k, v in encoder.items()}, tmp_path / "baseline_resnet.pth")
    pretrained = str(tmp_path / "baseline_resnet.pth")
    frozen = train(
        _config(sampling_cube, tmp_path / "frozen", max_steps=3, init_encoder=pretrained, freeze_encoder_steps=3),
        progress=False,
    )
    model, _ = load_checkpoint(frozen / "last.pt")
    for name, value in model.model_initial.state_dict().items():
        assert torch.equal(value, encoder[name]), name
    thawed = train(
        _config(sampling_cube, tmp_path / "thawed", max_steps=3, init_encoder=pretrained, freeze_encoder_steps=1),
        progress=False,
    )
    model, _ = load_checkpoint(thawed / "last.pt")
    assert not torch.equal(model.model_initial[0].weight, encoder["0.weight"])


def test_uncrtaints_overfits_one_batch_with_mgnll(sampling_cube: Path) -> None:
    torch.manual_seed(0)
    windows = SampleWindows(SEN12MSCRTS(sampling_cube, split="train", n_input_samples=2, sampler="random"))
    batch = next(iter(loader(windows, batch_size=2)))
    model = UnCRtainTS(encoder_widths=(16,), decoder_widths=(16, 16), n_head=4, d_model=32, scale_by=10.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    dates = input_dates(batch["input_s1_td"], batch["input_s2_td"], use_sar=True)
    losses = []
    for _ in range(60):
        mean, variance = model(batch["inputs"], dates)
        loss = reconstruction_loss("MGNLL", mean, batch["target"], variance)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < losses[0] - 20  # nats per pixel: the variances shrink as the means fit


def test_train_uncrtaints_with_its_defaults(sampling_cube: Path, tmp_path: Path) -> None:
    config = TrainConfig(
        cube=str(sampling_cube),
        out=str(tmp_path / "unc"),
        model="uncrtaints",
        crop=32,
        n_input_samples=2,
        width=16,
        n_head=4,
        d_model=32,
        max_steps=12,
        checkpoint_every=100,
        seed=1,
    )
    run = train(config, progress=False)
    saved = json.loads((run / "config.json").read_text())
    assert (saved["lr"], saved["loss"], saved["sampler"], saved["epochs"]) == (1e-3, "MGNLL", "random", 20)
    model, content = load_checkpoint(run / "last.pt")
    assert isinstance(model, UnCRtainTS) and content["model"] == "uncrtaints" and content["step"] == 12
    losses = [float(row["loss"]) for row in csv.DictReader((run / "log.csv").open()) if row["loss"]]
    assert sum(losses[-3:]) < sum(losses[:3])
    with pytest.raises(ValueError, match="init_encoder"):
        train(dataclasses.replace(config, out=str(tmp_path / "bad"), init_encoder="baseline_resnet.pth"))


def test_resume_without_a_run_is_refused_before_anything_is_written(
    sampling_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(sampling_cube), "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert capsys.readouterr().err == (
        f"crts train: error: {tmp_path / 'none'}: no run to resume (no last.pt): "
        "leave out --resume to start a new run\n"
    )
    assert not (tmp_path / "none").exists()


def test_progress_has_a_total_and_the_end_compares_with_least_cloudy(
    sampling_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    windows = len(SEN12MSCRTS(sampling_cube, split="train", n_input_samples=2))
    steps = -(-windows // 2) * 3  # batches of 2, 2 + 1 epochs
    assert (
        main(
            [
                "train",
                str(sampling_cube),
                "--out",
                str(tmp_path / "run"),
                "--crop",
                "16",
                "--batch-size",
                "2",
                "--features",
                "4",
                "--blocks",
                "1",
                "--n-input-samples",
                "2",
                "--epochs",
                "2",
                "--epochs-decay",
                "1",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert f" {steps}/{steps} " in err
    with (tmp_path / "run" / "log.csv").open(newline="") as log:
        last = [row for row in csv.DictReader(log) if row["val_l1"]][-1]
    assert out.splitlines()[-1] == (
        f"validation at step {steps}: L1 {float(last['val_l1']):.4f} (model scale), "
        f"least-cloudy baseline {float(last['val_l1_least_cloudy']):.4f} on the same "
        "windows"
    )


def test_a_run_stopped_within_its_first_epoch_has_no_validation_yet(
    sampling_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "train",
                str(sampling_cube),
                "--out",
                str(tmp_path / "run"),
                "--crop",
                "16",
                "--features",
                "4",
                "--blocks",
                "1",
                "--n-input-samples",
                "2",
                "--max-steps",
                "1",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines()[-1] == (
        "validation: none yet (the run stopped before its first epoch ended)"
    )
    assert total_steps(10, 1, TrainConfig(cube="c", batch_size=4, epochs=2, epochs_decay=1)) == 9
    assert total_steps(10, 2, TrainConfig(cube="c", batch_size=4, epochs=1, epochs_decay=0, max_steps=1)) == 1


def test_accumulating_two_batches_of_one_equals_batches_of_two_and_resumes(sampling_cube: Path, tmp_path: Path) -> None:
    pairs = train(_config(sampling_cube, tmp_path / "pairs", max_steps=5), progress=False)
    part = _config(sampling_cube, tmp_path / "part", batch_size=1, accumulate=2, max_steps=2)  # mid-epoch
    train(part, progress=False)
    accumulated = train(dataclasses.replace(part, max_steps=5), resume=True, progress=False)
    a, saved_a = load_checkpoint(pairs / "last.pt")
    b, saved_b = load_checkpoint(accumulated / "last.pt")
    assert saved_a["step"] == saved_b["step"] == 5 and saved_b["position"] == 2 * saved_a["position"]
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=name)


def test_the_loss_is_read_from_the_device_only_when_a_line_is_logged(
    sampling_cube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []  # values our code reads out of tensors (a host synchronisation on CUDA); torch's own are not counted

    def counting(name: str) -> Callable[..., object]:
        original = getattr(torch.Tensor, name)

        def read(self: torch.Tensor, *args: object) -> object:
            if sys._getframe(1).f_globals["__name__"].startswith("crts.") and self.dtype.is_floating_point:
                reads.append(name)
            return original(self, *args)

        return read

    for name in ("item", "__float__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    run = train(
        _config(sampling_cube, tmp_path / "run", batch_size=1, epochs=1, epochs_decay=0, max_steps=5, log_every=3),
        progress=False,
    )  # 6 training samples: the epoch does not end, no validation
    monkeypatch.undo()
    with (run / "log.csv").open(newline="") as log:
        rows = list(csv.DictReader(log))
    assert [int(row["step"]) for row in rows] == [3, 5] and len(reads) == 2
    for row in rows:
        assert float(row["samples_per_s"]) > 0 and 0 <= float(row["data_share"]) < 1


def test_invalid_step_settings_are_refused(sampling_cube: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"invalid accumulate 0: must be a whole number in \[1, inf\)"):
        train(_config(sampling_cube, tmp_path / "run", accumulate=0), progress=False)
    assert total_steps(10, 1, TrainConfig(cube="c", batch_size=2, accumulate=2, epochs=1, epochs_decay=1)) == 6


def test_compile_trains_the_compiled_model_and_saves_plain_weights(
    sampling_cube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = []
    original = torch.compile

    def eager_compile(model: torch.nn.Module, **kwargs: object) -> torch.nn.Module:  # inductor takes ~1 min here
        compiled.append(model)
        return original(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    plain = train(_config(sampling_cube, tmp_path / "plain", max_steps=3), progress=False)
    fast = train(_config(sampling_cube, tmp_path / "compiled", max_steps=3, compile=True), progress=False)
    assert len(compiled) == 1 and isinstance(compiled[0], ResNet3D)
    a, _ = load_checkpoint(plain / "last.pt")
    b, _ = load_checkpoint(fast / "last.pt")  # no torch.compile prefixes: it loads into the plain model
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6, msg=name)


def test_resume_refuses_other_batches_and_keeps_an_old_log_s_columns(sampling_cube: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(_config(sampling_cube, run, max_steps=1), progress=False)
    with pytest.raises(ValueError, match=r"trained with batch_size=2, crop=16: resume it with the same settings"):
        train(_config(sampling_cube, run, max_steps=2, batch_size=1, crop=8), resume=True, progress=False)
    assert json.loads((run / "config.json").read_text())["batch_size"] == 2  # the refused settings left no trace
    old_header = "step,epoch,loss,lr,samples_per_s,val_l1,val_l1_least_cloudy"  # a log written before data_share
    (run / "log.csv").write_text(old_header + "\n")
    train(_config(sampling_cube, run, max_steps=4, log_every=1), resume=True, progress=False)
    with (run / "log.csv").open(newline="") as log:
        rows = list(csv.DictReader(log))
    assert list(rows[0]) == old_header.split(",") and [row["step"] for row in rows if row["loss"]] == ["2", "3", "4"]


def test_workers_default_to_none_on_a_cpu_and_some_on_cuda() -> None:
    from crts.train import default_workers

    assert default_workers(None, torch.device("cpu")) == 0 and default_workers(3, torch.device("cpu")) == 3
    assert 1 <= default_workers(None, torch.device("cuda")) <= 6
