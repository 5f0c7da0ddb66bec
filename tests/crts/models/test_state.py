"""Weight files and state dicts: safe loading, prefixes, fitting weights, one-line refusals."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from crts.models.state import (
    count_blocks,
    generator_state,
    load_file,
    load_into,
    read_state,
    strip,
)


def test_a_state_dict_round_trips_through_a_file(tmp_path: Path) -> None:
    state = {"w": torch.arange(3.0)}
    torch.save(state, tmp_path / "w.pt")
    assert torch.equal(read_state(tmp_path / "w.pt")["w"], state["w"])
    assert read_state(state) is state


def test_a_file_that_is_not_tensors_is_one_line_and_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(_Opens(str(marker))))
    with pytest.raises(ValueError, match=r"evil.pt: not a PyTorch file of tensors and plain data \(\w+ in torch"):
        load_file(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"list\.pt: a list, not a state dict"):
        read_state(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "absent.pt")


class _Opens:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return open, (self.path, "w")


def test_the_generator_s_weights_without_their_prefixes() -> None:
    w = torch.zeros(1)
    assert generator_state({"state_dict_G": {"module.a": w}}) == {"a": w}
    assert generator_state({"state_dict": {"netG.module.a": w, "netD.b": w}}) == {"a": w, "netD.b": w}
    assert generator_state({"module.c": w}) == {"c": w}
    assert strip({"x.a": 1}, "y.") == {"x.a": 1}
    assert count_blocks({"b.0.w": w, "b.2.w": w, "b.2.b": w, "bb.7.w": w}, "b") == 2


def test_weights_that_do_not_fit_are_one_line_naming_the_source() -> None:
    model = torch.nn.Linear(2, 1)
    load_into(model, {"weight": torch.ones(1, 2), "bias": torch.zeros(1)}, "mine.pt")
    assert model.weight.sum() == 2
    with pytest.raises(ValueError) as raised:
        load_into(model, {"weight": torch.ones(1, 3), "bias": torch.zeros(1)}, "other.pt")
    assert str(raised.value).startswith("other.pt: its weights do not fit this model (") and "\n" not in str(
        raised.value
    )
