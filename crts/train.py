"""Training the 3D ResNet or UnCRtainTS from cube batches; resumable, DDP-ready.

Each model trains with its original's recipe unless told otherwise
(:data:`MODEL_DEFAULTS`): the 3D ResNet with L1, Adam (lr 2e-4, beta1 0.5) and a
linear decay; UnCRtainTS with MGNLL, Adam (lr 1e-3, default betas) at a constant
rate (the original's gamma 1.0) for 20 epochs on the ``random`` sampler's
samples, redrawn every epoch.

Determinism: the order of samples in an epoch depends only on (seed, epoch) and
the random crops of a step only on (seed, step), so a run resumed from a
checkpoint (model, optimizer, scheduler, position in the epoch) continues to
the same weights as an uninterrupted one on the CPU.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .data import SEN12MSCRTS, SampleWindows, loader
from .losses import reconstruction_loss
from .models import LeastCloudy, ResNet3D, UnCRtainTS
from .models.checkpoints import load_original_checkpoint, read_checkpoint, save_checkpoint
from .models.uncrtaints import input_dates

MODEL_DEFAULTS: dict[str, dict[str, object]] = {
    "resnet3d": {"lr": 2e-4, "beta1": 0.5, "epochs": 100, "epochs_decay": 100, "loss": "l1", "sampler": "fixed"},
    "uncrtaints": {"lr": 1e-3, "beta1": 0.9, "epochs": 20, "epochs_decay": 0, "loss": "MGNLL", "sampler": "random"},
}
"""Settings left unset (None) take these values of the chosen model (the originals' training defaults)."""


@dataclass
class TrainConfig:
    """Everything a training run depends on (JSON in ``RUN_DIR/config.json``)."""

    cube: str
    out: str = "runs/train"
    model: str = "resnet3d"
    region: str = "all"
    cloud_masks: str = "s2cloudless_mask"
    n_input_samples: int = 3
    min_cov: float = 0.0
    max_cov: float = 1.0
    crop: int = 128
    batch_size: int = 4
    lr: float | None = None
    beta1: float | None = None
    epochs: int | None = None
    epochs_decay: int | None = None
    loss: str | None = None
    sampler: str | None = None
    max_steps: int | None = None
    checkpoint_every: int = 500
    features: int = 256
    blocks: int = 16
    width: int = 128
    n_head: int = 16
    d_model: int = 256
    scale_by: float = 10.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    init_encoder: str | None = None
    freeze_encoder_steps: int = 0

    @classmethod
    def from_json(cls, path: str | os.PathLike, **overrides: object) -> TrainConfig:
        """A config from a JSON file, with non-None ``overrides`` on top."""
        values = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        return cls(**{**values, **{k: v for k, v in overrides.items() if v is not None}})

    def resolved(self) -> TrainConfig:
        """This config with unset settings taken from :data:`MODEL_DEFAULTS` of its model."""
        if self.model not in MODEL_DEFAULTS:
            raise ValueError(f"invalid model {self.model!r}: choose from {', '.join(MODEL_DEFAULTS)}")
        if self.init_encoder and self.model != "resnet3d":
            raise ValueError("init_encoder (baseline_resnet.pth) initialises the 3D ResNet only")
        unset = {k: v for k, v in MODEL_DEFAULTS[self.model].items() if getattr(self, k) is None}
        return replace(self, **unset)


def _device(choice: str, local_rank: int) -> torch.device:
    """The chosen device; ``auto`` and a bare ``cuda`` mean this process's GPU under torchrun."""
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(f"cuda:{local_rank}") if choice == "cuda" else torch.device(choice)


def _crops(batch: dict, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``size`` crop per sample of inputs and target, drawn from ``generator``."""
    h, w = batch["target"].shape[-2:]
    ys = torch.randint(0, h - size + 1, (len(batch["target"]),), generator=generator)
    xs = torch.randint(0, w - size + 1, (len(batch["target"]),), generator=generator)
    inputs = torch.stack([x[..., y:y + size, z:z + size] for x, y, z in zip(batch["inputs"], ys, xs, strict=True)])
    target = torch.stack([x[..., y:y + size, z:z + size] for x, y, z in zip(batch["target"], ys, xs, strict=True)])
    return inputs, target


def _to_model_scale(x: torch.Tensor) -> torch.Tensor:
    return x * 2 - 1


def _build_model(config: TrainConfig) -> torch.nn.Module:
    if config.model == "uncrtaints":
        return UnCRtainTS(encoder_widths=(config.width,), decoder_widths=(config.width,) * 5, n_head=config.n_head,
                          d_model=config.d_model, scale_by=config.scale_by)
    return ResNet3D(n_inputs=config.n_input_samples, features=config.features, blocks=config.blocks)


def _dates(batch: dict, device: torch.device) -> torch.Tensor:
    return input_dates(batch["input_s1_td"], batch["input_s2_td"], use_sar=True).to(device)


def _loss(net: torch.nn.Module, config: TrainConfig, inputs: torch.Tensor, target: torch.Tensor,
          batch: dict) -> torch.Tensor:
    """The training loss of a step: the 3D ResNet's on the [-1, 1] scale, UnCRtainTS's on [0, 1]."""
    if config.model == "resnet3d":
        return reconstruction_loss(config.loss, net(_to_model_scale(inputs)).float(), _to_model_scale(target))
    mean, variance = net(inputs, _dates(batch, inputs.device))
    return reconstruction_loss(config.loss, mean.float(), target, variance.float())


def _predict(model: torch.nn.Module, inputs: torch.Tensor, batch: dict) -> torch.Tensor:
    """A prediction on the [-1, 1] model scale from inputs in [0, 1]."""
    if isinstance(model, UnCRtainTS):
        return _to_model_scale(model(inputs, _dates(batch, inputs.device))[0])
    return model(_to_model_scale(inputs))


def _validate(model: torch.nn.Module, windows: SampleWindows, device: torch.device, batch_size: int) -> dict:
    """Mean L1 (model scale) of the model and of the least-cloudy baseline over the validation windows."""
    loader = torch.utils.data.DataLoader(windows, batch_size=batch_size)
    totals = {"val_l1": 0.0, "val_l1_least_cloudy": 0.0}
    count = 0
    model.eval()
    with torch.no_grad():
        for batch in loader:
            inputs, target = _to_model_scale(batch["inputs"].to(device)), _to_model_scale(batch["target"].to(device))
            prediction = _predict(model, batch["inputs"].to(device), batch)
            totals["val_l1"] += torch.nn.functional.l1_loss(prediction, target, reduction="sum").item()
            baseline = LeastCloudy()(inputs, batch["input_masks"].to(device))
            totals["val_l1_least_cloudy"] += torch.nn.functional.l1_loss(baseline, target, reduction="sum").item()
            count += target.numel()
    model.train()
    return {k: v / count for k, v in totals.items()}


def total_steps(windows: int, world: int, config: TrainConfig) -> int:
    """Optimizer steps of a whole run: steps per epoch (each process's share of ``windows`` in batches) x
    epochs, or ``config.max_steps`` when that comes first."""
    per_epoch = -(-(windows // world) // config.batch_size)
    steps = per_epoch * (config.epochs + config.epochs_decay)
    return steps if config.max_steps is None else min(steps, config.max_steps)


def last_validation(run: str | os.PathLike) -> dict | None:
    """The latest validation in ``RUN/log.csv``: ``step``, ``val_l1`` and ``val_l1_least_cloudy`` (the
    least-cloudy baseline on the same validation windows), or None before the first epoch ended."""
    with (Path(run) / "log.csv").open(newline="") as log:
        rows = [row for row in csv.DictReader(log) if row["val_l1"]]
    if not rows:
        return None
    return {"step": int(rows[-1]["step"]), "val_l1": float(rows[-1]["val_l1"]),
            "val_l1_least_cloudy": float(rows[-1]["val_l1_least_cloudy"])}


def train(config: TrainConfig, *, resume: bool = False, storage_options: dict | None = None,
          progress: bool = True) -> Path:
    """Train, logging to ``RUN_DIR/log.csv`` and TensorBoard, checkpointing to ``RUN_DIR/last.pt``.

    ``config.cube`` is a path or URL; ``storage_options`` (object-store options, see
    :func:`cube.open_cube`; never written into the run's files) reach its store.

    Under ``torchrun`` (WORLD_SIZE > 1) it trains with DDP (gloo on CPU, nccl on
    CUDA); only rank 0 writes. Returns the run folder.
    """
    config = config.resolved()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(config.device, local_rank)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    run = Path(config.out)
    checkpoint = run / "last.pt"
    if resume and not checkpoint.exists():
        raise FileNotFoundError(f"{run}: no run to resume (no last.pt): leave out --resume to start a new run")
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        if not resume and checkpoint.exists():
            raise FileExistsError(f"{run} holds a run already: pass --resume to continue it, or another --out")
        (run / "config.json").write_text(json.dumps(asdict(config), indent=2))
    torch.manual_seed(config.seed)

    def selection(split: str, sampler: str = "fixed") -> SampleWindows:
        return SampleWindows(SEN12MSCRTS(config.cube, split=split, region=config.region,
                                         cloud_masks=config.cloud_masks, n_input_samples=config.n_input_samples,
                                         min_cov=config.min_cov, max_cov=config.max_cov, sampler=sampler,
                                         seed=config.seed, storage_options=storage_options))

    train_windows, val_windows = selection("train", config.sampler), selection("val")
    if len(train_windows) < world:
        raise ValueError(f"{config.cube}: {len(train_windows)} training sample(s) for {world} processes")
    model = _build_model(config)
    if config.init_encoder:  # the mono-temporal pre-trained network (baseline_resnet.pth), as the original offers
        load_original_checkpoint(config.init_encoder, model)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: 1.0 - max(0, epoch + 1 - config.epochs) / float(config.epochs_decay + 1))
    step = epoch = position = 0
    if resume:
        saved = read_checkpoint(checkpoint, device, needs=("optimizer", "scheduler", "step", "epoch", "position"),
                                config=model.config)
        model.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        step, epoch, position = saved["step"], saved["epoch"], saved["position"]
    net = DistributedDataParallel(model) if world > 1 else model
    amp = config.amp and device.type == "cuda"
    writer = _writer(run) if rank == 0 else None
    log = (run / "log.csv").open("a", newline="") if rank == 0 else None
    columns = ["step", "epoch", "loss", "lr", "samples_per_s", "val_l1", "val_l1_least_cloudy"]
    if log is not None and log.tell() == 0:
        csv.writer(log).writerow(columns)

    def save() -> None:
        if rank == 0:
            save_checkpoint(checkpoint, model, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                            step=step, epoch=epoch, position=position, train_config=json.dumps(asdict(config)))

    total_epochs = config.epochs + config.epochs_decay
    bar = tqdm(total=total_steps(len(train_windows), world, config), initial=step, desc="training", unit="step", disable=not progress or rank)
    done = config.max_steps is not None and step >= config.max_steps
    while epoch < total_epochs and not done:
        train_windows.samples.set_epoch(epoch)
        order = torch.randperm(len(train_windows), generator=torch.Generator().manual_seed(config.seed * 1000 + epoch))
        mine = order[rank::world][:len(order) // world].tolist()  # equal shares: DDP ranks step together
        batches = loader(train_windows, config.batch_size, sampler=mine[position * config.batch_size:],
                         num_workers=config.num_workers, pin_memory=device.type == "cuda")
        for batch in batches:
            start = time.perf_counter()
            if isinstance(model, ResNet3D):
                model.model_initial.requires_grad_(step >= config.freeze_encoder_steps)
            inputs, target = _crops(batch, config.crop, torch.Generator().manual_seed(config.seed * 7919 + step))
            inputs, target = inputs.to(device, non_blocking=True), target.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = _loss(net, config, inputs, target, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step, position = step + 1, position + 1
            rate = len(target) * world / (time.perf_counter() - start)
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.4f}", samples_per_s=f"{rate:.1f}")
            if log is not None:
                csv.writer(log).writerow([step, epoch, loss.item(), scheduler.get_last_lr()[0], rate, "", ""])
                writer.add_scalar(f"train/{config.loss}", loss.item(), step)
            if step % config.checkpoint_every == 0:
                save()
            if config.max_steps is not None and step >= config.max_steps:
                done = True
                break
        if not done:
            epoch, position = epoch + 1, 0
            scheduler.step()
            if rank == 0:
                scores = _validate(model, val_windows, device, config.batch_size)
                csv.writer(log).writerow([step, epoch, "", scheduler.get_last_lr()[0], "", scores["val_l1"],
                                          scores["val_l1_least_cloudy"]])
                for name, value in scores.items():
                    writer.add_scalar(f"val/{name}", value, step)
    save()
    bar.close()
    if rank == 0:
        log.close()
        writer.close()
    if world > 1:
        dist.destroy_process_group()
    return run


def _writer(run: Path) -> object:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(run / "tensorboard")
