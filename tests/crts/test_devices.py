"""The device a command runs on, from the name a user wrote."""

from __future__ import annotations

import pytest
import torch

from crts.devices import resolve_device


def test_cpu_and_a_device_object_pass_through() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    mine = torch.device("cpu", 0)
    assert resolve_device(mine) is mine


def test_auto_is_cuda_only_where_torch_sees_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)  # this torchrun process's GPU
    assert resolve_device("cuda:0", local_rank=1) == torch.device("cuda", 0)  # a named GPU stays named


@pytest.mark.parametrize(
    ("choice", "gpus", "message"),
    [
        ("gpu", 2, "invalid device 'gpu': choose auto, cpu, cuda, cuda:N, mps, ..."),
        ("cuda", 0, "invalid device 'cuda': torch sees no CUDA GPU on this machine (use cpu or auto)"),
        ("cuda:2", 2, "invalid device 'cuda:2': this machine has 2 CUDA GPU(s)"),
    ],
)
def test_a_device_this_machine_lacks_is_one_line(
    monkeypatch: pytest.MonkeyPatch, choice: str, gpus: int, message: str
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    with pytest.raises(ValueError) as raised:
        resolve_device(choice)
    assert str(raised.value) == message
