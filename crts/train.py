"""Training any registered model (:mod:`crts.models.registry`) from cube batches; resumable, DDP-ready.

Each model trains with its original's recipe unless told otherwise (its adapter's
``defaults``): the 3D ResNet with L1, Adam (lr 2e-4, beta1 0.5) and a linear
decay; UnCRtainTS with MGNLL, Adam (lr 1e-3, default betas) at a constant rate
(the original's gamma 1.0) for 20 epochs on the ``random`` sampler's samples,
redrawn every epoch. The model is asked only through its adapter: how to build,
feed and train it.

Determinism: the order of samples in an epoch depends only on (seed, epoch) and
the random crop of a sample only on (seed, epoch, sample), so a run resumed from a
checkpoint (model, optimizer, scheduler, position in the epoch) continues to
the same weights as an uninterrupted one on the CPU.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from cube.store.outputs import check_output_folder

from .data.batches import SampleWindows, loader
from .data.sen12mscrts import SEN12MSCRTS
from .devices import resolve_device
from .models.adapter import ModelAdapter, to_model_scale
from .models.baselines import LeastCloudy
from .models.checkpoints import model_config, read_checkpoint, save_checkpoint
from .models.registry import model_kind
from .settings import RESUME_SAME, TrainConfig, resolved_setting

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


def _validate(
    model: torch.nn.Module,
    kind: ModelAdapter,
    windows: SampleWindows,
    device: torch.device,
    batch_size: int,
    rank: int = 0,
    world: int = 1,
) -> dict:
    """Mean L1 (model scale) of the model and of the least-cloudy baseline over the validation windows.

    Under DDP every process scores its share of the windows and the sums are
    added up across processes (so no process waits idle for another's validation).
    """
    sums, count = torch.zeros(2, dtype=torch.float64, device=device), 0  # summed on the device: one sync at the end
    model.eval()
    with torch.no_grad():
        for batch in loader(
            windows, batch_size, sampler=list(range(rank, len(windows), world)), pin_memory=device.type == "cuda"
        ):
            inputs = batch["inputs"].to(device, non_blocking=True)
            target = to_model_scale(batch["target"].to(device, non_blocking=True))
            prediction = to_model_scale(kind.predict(model, model_config(model), inputs, batch)[0])
            baseline = LeastCloudy()(to_model_scale(inputs), batch["input_masks"].to(device, non_blocking=True))
            sums += torch.stack(
                [torch.nn.functional.l1_loss(x.float(), target, reduction="sum") for x in (prediction, baseline)]
            )
            count += target.numel()
    totals = torch.cat([sums, torch.tensor([float(count)], dtype=torch.float64, device=device)])
    if world > 1:
        dist.all_reduce(totals)
    model.train()
    model_l1, baseline_l1, count = totals.tolist()
    return {"val_l1": model_l1 / count, "val_l1_least_cloudy": baseline_l1 / count}


def steps_per_epoch(windows: int, world: int, config: TrainConfig) -> int:
    """Optimizer steps of an epoch: each process's share of ``windows`` in batches, ``config.accumulate``
    batches per step (the last step of an epoch may take fewer)."""
    batches = -(-(windows // world) // config.batch_size)
    return -(-batches // config.accumulate)


def total_steps(windows: int, world: int, config: TrainConfig) -> int:
    """Optimizer steps of a whole run: :func:`steps_per_epoch` x epochs, or ``config.max_steps`` when that
    comes first."""
    steps = steps_per_epoch(windows, world, config) * config.all_epochs
    return steps if config.max_steps is None else min(steps, config.max_steps)


def last_validation(run: str | os.PathLike) -> dict | None:
    """The latest validation in ``RUN/log.csv``: ``step``, ``val_l1`` and ``val_l1_least_cloudy`` (the
    least-cloudy baseline on the same validation windows), or None before the first epoch ended."""
    with (Path(run) / "log.csv").open(newline="") as log:
        rows = [row for row in csv.DictReader(log) if row["val_l1"]]
    if not rows:
        return None
    return {
        "step": int(rows[-1]["step"]),
        "val_l1": float(rows[-1]["val_l1"]),
        "val_l1_least_cloudy": float(rows[-1]["val_l1_least_cloudy"]),
    }


def train(
    config: TrainConfig, *, resume: bool = False, storage_options: dict | None = None, progress: bool = True
) -> Path:
    """Train, logging to ``RUN_DIR/log.csv`` and TensorBoard, checkpointing to ``RUN_DIR/last.pt``.

    ``config.cube`` is a path or URL; ``storage_options`` (object-store options, see
    :func:`cube.open_cube`; never written into the run's files) reach its store.

    Every ``config.log_every`` steps the log gets the mean loss, the samples/s
    including data loading and the share of the time spent waiting for data;
    between log lines the step does not wait for the GPU. Under ``torchrun`` (WORLD_SIZE >
    1) it trains with DDP (gloo on CPU, nccl on CUDA); only rank 0 writes.
    Returns the run folder.
    """
    trainer = _Trainer(config.resolved(), resume, storage_options, progress)
    try:
        trainer.fit()
    finally:
        trainer.close()
    return trainer.run


RUN_FILES = ("config.json", "last.pt")
"""A folder holding either was written by :func:`train` (one killed before its first checkpoint has only
``config.json``)."""


def _start_run(config: TrainConfig, resume: bool) -> Path:
    """The run folder, checked against ``resume``: a folder that holds files of anything but a training run
    is refused (rank 0 creates the folder once the run's settings are known to fit)."""
    run = Path(config.out)
    if resume and not (run / "last.pt").exists():
        raise FileNotFoundError(f"{run}: no run to resume (no last.pt): leave out --resume to start a new run")
    if resume and (trained := _trained_model(run)) not in (None, config.model):
        raise ValueError(
            f"{run} was trained as {trained}, not {config.model}: leave out --model (or give --model "
            f"{trained}) to resume it"
        )
    if not resume and (run / "last.pt").exists():
        raise FileExistsError(f"{run} holds a run already: pass --resume to continue it, or another --out")
    check_output_folder(run, lambda folder: any((folder / name).is_file() for name in RUN_FILES), "a training run")
    return run


def _trained_model(run: Path) -> str | None:
    """The model kind of the run in ``run`` as its ``config.json`` names it (None where it names none readably:
    the checkpoint is checked anyway)."""
    try:
        saved = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return saved.get("model") if isinstance(saved, dict) else None


def _windows(config: TrainConfig, split: str, storage_options: dict | None) -> SampleWindows:
    """Random ``crop`` windows of the train split (redrawn every epoch), whole patches of the others."""
    samples = SEN12MSCRTS(
        config.cube,
        split=split,
        region=config.region,
        cloud_masks=config.cloud_masks,
        n_input_samples=config.n_input_samples,
        min_cov=config.min_cov,
        max_cov=config.max_cov,
        sampler=resolved_setting(config.sampler, "sampler") if split == "train" else "fixed",
        seed=config.seed,
        storage_options=storage_options,
    )
    if split != "train":
        return SampleWindows(samples)
    return SampleWindows(samples, {"y": config.crop, "x": config.crop}, placement="random", seed=config.seed)


CPU_PARAMETERS = 5_000_000
"""Parameters above which a model on the CPU takes minutes per step (the full-size 3D ResNet has 38 M)."""


def warn_if_slow(model: torch.nn.Module, device: torch.device) -> None:
    """Say at once when a full-size model was started on the CPU, before its first step takes minutes."""
    parameters = sum(p.numel() for p in model.parameters())
    if device.type == "cpu" and parameters > CPU_PARAMETERS:
        warnings.warn(
            f"a model of {parameters / 1e6:.1f} M parameters on the CPU takes minutes per step; to try "
            "the pipeline, make it small (e.g. --features 16 --blocks 2 --crop 64 for the 3D ResNet, "
            "--width 16 --d-model 32 --n-head 4 for UnCRtainTS) or train on a GPU",
            stacklevel=2,
        )


def default_workers(chosen: int | None, device: torch.device) -> int:
    """DataLoader workers: as chosen, else none on a CPU (the model needs the cores) and up to 6 on CUDA, which
    prefetch batches into pinned memory while the GPU computes (bench_windows measures the GPU's busy share)."""
    if chosen is not None:
        return chosen
    return 0 if device.type != "cuda" else max(1, min(6, (os.cpu_count() or 2) - 1))


class _Meter:
    """Loss, samples and data-waiting time since the last log line; the loss stays on the device until read."""

    loss: float | torch.Tensor

    def __init__(self) -> None:
        self.reset()

    def reset(self, start: float | None = None) -> None:
        self.start, self.data_s, self.samples, self.steps, self.loss = start or time.perf_counter(), 0.0, 0, 0, 0.0

    def read(self, world: int) -> dict[str, float]:
        """Mean loss of the steps, samples/s and data-waiting share; the next interval starts.

        Reading the loss is the one host synchronisation: the interval ends once
        the device has done its work.
        """
        loss = float(self.loss / self.steps)
        now = time.perf_counter()
        wall = now - self.start
        values = {"loss": loss, "samples_per_s": self.samples * world / wall, "data_share": self.data_s / wall}
        self.reset(now)
        return values


class _Log:
    """``log.csv``, TensorBoard and the progress bar of rank 0 (other ranks write nothing)."""

    COLUMNS = ("step", "epoch", "loss", "lr", "samples_per_s", "data_share", "val_l1", "val_l1_least_cloudy")

    def __init__(
        self, run: Path, loss: str, total: int, initial: int, enabled: bool, progress: bool, resume: bool
    ) -> None:
        self.loss_name, self.enabled = loss, enabled
        self.bar = tqdm(total=total, initial=initial, desc="training", unit="step", disable=not (progress and enabled))
        if not enabled:
            return
        path = run / "log.csv"
        old = path.read_text().splitlines()[:1] if resume and path.exists() else []
        columns = old[0].split(",") if old else self.COLUMNS  # a resumed run keeps its log's columns
        if not resume:  # a new run in a folder that a run stopped before its first checkpoint left: its own logs
            for stale in (run / "tensorboard").glob("events.out.tfevents.*"):
                stale.unlink()
        self.file = path.open("a" if resume else "w", newline="")
        self.csv = csv.DictWriter(self.file, columns, extrasaction="ignore")
        if not old:
            self.csv.writeheader()
        self.tensorboard = _writer(run)

    def write(self, step: int, epoch: int, lr: float, values: dict[str, float]) -> None:
        if "loss" in values:
            self.bar.set_postfix(
                loss=f"{values['loss']:.4f}",
                samples_per_s=f"{values['samples_per_s']:.1f}",
                data=f"{values['data_share']:.0%}",
            )
        if not self.enabled:
            return
        self.csv.writerow({"step": step, "epoch": epoch, "lr": lr, **values})
        self.file.flush()
        for name, value in values.items():
            tag = (
                f"train/{self.loss_name}"
                if name == "loss"
                else (f"val/{name}" if name.startswith("val") else f"train/{name}")
            )
            self.tensorboard.add_scalar(tag, value, step)

    def close(self) -> None:
        self.bar.close()
        if self.enabled:
            self.file.close()
            self.tensorboard.close()


class _Trainer:
    """One process's part of a training run: its model, optimizer, position in the run, and log."""

    def __init__(self, config: TrainConfig, resume: bool, storage_options: dict | None, progress: bool) -> None:
        self.config, self.world = config, int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = resolve_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
        if self.world > 1:
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.run = _start_run(config, resume)
        torch.manual_seed(config.seed)
        self.train_windows, self.val_windows = (_windows(config, split, storage_options) for split in ("train", "val"))
        if len(self.train_windows) < self.world:
            raise ValueError(f"{config.cube}: {len(self.train_windows)} training sample(s) for {self.world} processes")
        self.kind = model_kind(config.model)
        self.model = self.kind.build(config)
        self.encoder = self.kind.encoder(self.model)
        if (config.init_encoder or config.freeze_encoder_steps) and self.encoder is None:
            raise ValueError(
                f"init_encoder and freeze_encoder_steps: the {config.model} model has no pre-trained "
                "encoder (the 3D ResNet has)"
            )
        if config.init_encoder:  # the mono-temporal pre-trained network (baseline_resnet.pth), as the original offers
            self.kind.load_encoder(self.model, config.init_encoder)
        self.model.to(self.device)
        warn_if_slow(self.model, self.device)
        lr, beta1 = resolved_setting(config.lr, "lr"), resolved_setting(config.beta1, "beta1")
        self.loss = resolved_setting(config.loss, "loss")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, betas=(beta1, 0.999))
        epochs, decay = resolved_setting(config.epochs, "epochs"), resolved_setting(config.epochs_decay, "epochs_decay")
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda epoch: 1.0 - max(0, epoch + 1 - epochs) / float(decay + 1)
        )
        self.step = self.epoch = self.position = 0
        if resume:
            self._restore()
        if self.rank == 0:  # once the settings are known to fit the run
            self.run.mkdir(parents=True, exist_ok=True)
            (self.run / "config.json").write_text(json.dumps(asdict(config), indent=2))
        self.ddp = DistributedDataParallel(self.model) if self.world > 1 else None
        self.net = self.ddp or self.model
        if config.compile:
            self.net = cast(torch.nn.Module, torch.compile(self.net))  # of a module: a module (OptimizedModule)
        self.amp = config.amp and self.device.type == "cuda"
        self.workers = default_workers(config.num_workers, self.device)
        self.meter = _Meter()
        self.log = _Log(
            self.run,
            self.loss,
            total_steps(len(self.train_windows), self.world, config),
            self.step,
            self.rank == 0,
            progress,
            resume,
        )

    def _restore(self) -> None:
        """Continue from the run's checkpoint, which must have been trained with the same steps."""
        saved = read_checkpoint(
            self.run / "last.pt",
            self.device,
            config=model_config(self.model),
            needs=("optimizer", "scheduler", "step", "epoch", "position"),
        )
        before = json.loads(saved.get("train_config", "{}"))
        if changed := [k for k in RESUME_SAME if k in before and before[k] != getattr(self.config, k)]:
            raise ValueError(
                f"{self.run}: the run was trained with "
                + ", ".join(f"{k}={before[k]}" for k in changed)
                + ": resume it with the same settings (its position in the "
                "epoch counts batches of those)"
            )
        self.model.load_state_dict(saved["state_dict"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.step, self.epoch, self.position = saved["step"], saved["epoch"], saved["position"]

    def save(self) -> None:
        if self.rank == 0:
            save_checkpoint(
                self.run / "last.pt",
                self.model,
                optimizer=self.optimizer.state_dict(),
                scheduler=self.scheduler.state_dict(),
                step=self.step,
                epoch=self.epoch,
                position=self.position,
                train_config=json.dumps(asdict(self.config)),
            )

    @property
    def done(self) -> bool:
        return self.config.max_steps is not None and self.step >= self.config.max_steps

    def fit(self) -> None:
        """Epochs until the last one or ``max_steps``; after each whole epoch the rate's next step and validation."""
        while self.epoch < self.config.all_epochs and not self.done:
            finished = self._epoch()
            self._write_train()
            if finished:
                self.epoch, self.position = self.epoch + 1, 0
                self.scheduler.step()
                scores = _validate(
                    self.model, self.kind, self.val_windows, self.device, self.config.batch_size, self.rank, self.world
                )
                self.log.write(self.step, self.epoch, self._lr(), scores)
        self.save()

    def _epoch(self) -> bool:
        """The rest of the current epoch (from ``position``, in batches), up to ``max_steps``; True if it ended."""
        config = self.config
        self.train_windows.set_epoch(self.epoch)
        order = torch.randperm(
            len(self.train_windows), generator=torch.Generator().manual_seed(config.seed * 1000 + self.epoch)
        )
        mine = order[self.rank :: self.world][
            : len(order) // self.world
        ].tolist()  # equal shares: DDP ranks step together
        batches = -(-len(mine) // config.batch_size)
        self.meter.reset()
        clock = time.perf_counter()
        for batch in loader(
            self.train_windows,
            config.batch_size,
            sampler=mine[self.position * config.batch_size :],
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        ):
            self.meter.data_s += time.perf_counter() - clock
            cycle = self.position - self.position % config.accumulate  # first batch of this optimizer step
            last = self.position + 1 == min(cycle + config.accumulate, batches)
            step_samples = min(config.accumulate * config.batch_size, len(mine) - cycle * config.batch_size)
            self._backward(batch, len(batch["target"]) / step_samples, last)
            self.position += 1
            if last:
                self._optimizer_step()
                if self.done:
                    break
            clock = time.perf_counter()
        return self.position == batches

    def _backward(self, batch: dict, share: float, last: bool) -> None:
        """Gradients of one batch, weighted by its ``share`` of the optimizer step's samples; DDP syncs them on
        the step's ``last`` batch."""
        inputs = batch["inputs"].to(self.device, non_blocking=True)
        target = batch["target"].to(self.device, non_blocking=True)
        if self.encoder is not None:
            self.encoder.requires_grad_(self.step >= self.config.freeze_encoder_steps)
        with self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext():
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                loss = (
                    self.kind.training_loss(self.net, model_config(self.model), self.loss, inputs, target, batch)
                    * share
                )
            loss.backward()
        self.meter.loss = self.meter.loss + loss.detach()
        self.meter.samples += len(target)

    def _optimizer_step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.meter.steps += 1
        self.log.bar.update()
        if self.step % self.config.log_every == 0:
            self._write_train()
        if self.step % self.config.checkpoint_every == 0:
            self.save()

    def _write_train(self) -> None:
        """A log line for the steps since the last one (none if there were none)."""
        if self.meter.steps:
            self.log.write(self.step, self.epoch, self._lr(), self.meter.read(self.world))

    def _lr(self) -> float:
        """The rate of the current epoch (a float: Adam was given one)."""
        return float(self.scheduler.get_last_lr()[0])

    def close(self) -> None:
        self.log.close()
        if self.world > 1:
            dist.destroy_process_group()


def _writer(run: Path) -> SummaryWriter:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(run / "tensorboard")
