"""Training measurements that several benchmarks share: one model's training steps/s, one run's data-wait share.

:func:`samples_per_s` times forward+backward+Adam steps of a model on random tensors (bench_model, bench_device);
:func:`data_wait` runs ``crts train`` and reads its log (bench_windows, bench_device).
"""

from __future__ import annotations

import csv
import time
from itertools import pairwise
from pathlib import Path

import torch

from crts.losses import gaussian_nll
from crts.models import UnCRtainTS
from crts.train import TrainConfig, train


def samples_per_s(model: torch.nn.Module, batch: int, size: int, device: torch.device, amp: bool, steps: int) -> float:
    """Training samples/s of ``model`` (3 inputs of 15 channels, ``size`` px) after one warm-up step.

    Parameters
    ----------
    model
        A 3D ResNet (L1 loss) or UnCRtainTS (its Gaussian NLL, with dates), on ``device``.
    batch, size
        Samples per step and their height and width.
    device
        Where the tensors are made; on CUDA the timing waits for the GPU.
    amp
        bfloat16 autocast, as training uses it on CUDA.
    steps
        Timed steps.

    Returns
    -------
    float
        ``batch * steps`` over the seconds of the timed steps.
    """
    x = torch.rand(batch, 3, 15, size, size, device=device)
    target = torch.rand(batch, 13, size, size, device=device)
    dates = torch.tensor([[30.0, 60.0, 90.0]] * batch, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def loss_of_step() -> torch.Tensor:
        if isinstance(model, UnCRtainTS):
            mean, variance = model(x, dates)
            return gaussian_nll(mean.float(), target, variance.float())
        return torch.nn.functional.l1_loss(model(x).float(), target)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = loss_of_step()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def data_wait(cube: Path, out: Path, device: str, batch_size: int, **settings: object) -> float:
    """Share of a ``crts train`` run's time spent waiting for data, from its log lines (each weighted by its time).

    Parameters
    ----------
    cube, out
        The cube to train from and the run's folder.
    device, batch_size
        As ``crts train`` takes them.
    **settings
        Further :class:`crts.settings.TrainConfig` fields (``max_steps``, ``crop``, ``num_workers``...).

    Returns
    -------
    float
        Seconds waited for batches over the seconds of the logged steps (validation excluded).
    """
    config = TrainConfig(
        cube=str(cube),
        out=str(out),
        device=device,
        batch_size=batch_size,
        epochs=100,
        epochs_decay=0,
        log_every=3,
        checkpoint_every=10**6,
        **settings,
    )
    run = train(config, progress=False)
    with (run / "log.csv").open(newline="") as log:
        rows = [row for row in csv.DictReader(log) if row["loss"]]
    steps = [int(row["step"]) - int(before["step"]) for before, row in pairwise([{"step": 0}, *rows])]
    seconds = [n * batch_size / float(row["samples_per_s"]) for n, row in zip(steps, rows, strict=True)]
    waiting = sum(s * float(row["data_share"]) for s, row in zip(seconds, rows, strict=True))
    return waiting / sum(seconds)
