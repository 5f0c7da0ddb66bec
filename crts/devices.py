"""The torch device a command runs on, from what the user wrote (``auto``, ``cpu``, ``cuda``, ``cuda:1`` ...)."""

from __future__ import annotations

import torch


def resolve_device(choice: str | torch.device, local_rank: int = 0) -> torch.device:
    """The device ``choice`` names; ``auto`` is CUDA where available, else the CPU, and a bare ``cuda`` (or
    ``auto``) means this process's GPU under torchrun (``local_rank``).

    Raises
    ------
    ValueError
        One line, for a name torch does not know or a device this machine lacks.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: invalid device 'gpu': choose auto, cpu, cuda, cuda:N, mps, ...
    """
    if isinstance(choice, torch.device):
        return choice
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(f"cuda:{local_rank}") if choice == "cuda" else torch.device(choice)
    except RuntimeError:
        raise ValueError(f"invalid device {choice!r}: choose auto, cpu, cuda, cuda:N, mps, ...") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"invalid device {choice!r}: torch sees no CUDA GPU on this machine (use cpu or auto)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"invalid device {choice!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device
