"""Checkpoints are untrusted files: a config that disagrees with its tensors, or a file that is no checkpoint at
all, is one line naming the file, before any model is built."""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path

import pytest
import torch

from crts.cli import main
from crts.models import ResNet3D, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.faults


def _saved(tmp_path: Path, config: dict | None = None, state: dict | None = None, name: str = "c.pt") -> Path:
    """A checkpoint of a tiny model (F=4, B=1, T=3) whose config or state dict entries are replaced."""
    model = ResNet3D(features=4, blocks=1)
    content = {"state_dict": {**model.state_dict(), **(state or {})}, "config": {**model.config, **(config or {})}}
    content["state_dict"] = {k: v for k, v in content["state_dict"].items() if v is not None}
    content["config"] = {k: v for k, v in content["config"].items() if v is not None}
    torch.save(content, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    ("config", "state", "message"),
    [
        ({"features": 200000}, None, "config says features=200000, but its tensors make features=4"),
        ({"n_inputs": 5}, None, "config says n_inputs=5, but its tensors make n_inputs=3"),
        ({"blocks": 2}, None, "config says blocks=2, but its tensors make blocks=1"),
        ({"features": "4"}, None, "config 'features' holds '4', not an integer of at least 1"),
        ({"features": 4.0}, None, "config 'features' holds 4.0, not an integer of at least 1"),
        ({"n_inputs": True}, None, "config 'n_inputs' holds True, not an integer of at least 1"),
        ({"out_channels": 0}, None, "config 'out_channels' holds 0, not an integer of at least 1"),
        ({"blocks": -1}, None, "config 'blocks' holds -1, not an integer of at least 0"),
        ({"dropout": 0.5}, None, "config has unknown key 'dropout'"),
        ({"blocks": None}, None, "config lacks 'blocks'"),
        (None, {"model_final.2.conv_block.1.bias": None}, "state dict lacks model_final.2.conv_block.1.bias"),
        (None, {"model_final.10.weight": torch.zeros(1)}, "state dict has unexpected tensor model_final.10.weight"),
        (
            None,
            {"model_final.0.bias": torch.zeros(5)},
            "tensor model_final.0.bias has shape (5,), but the config makes (4,)",
        ),
        (
            None,
            {"model_final.0.bias": torch.zeros(4, dtype=torch.int64)},
            "tensor model_final.0.bias holds torch.int64, not floating point numbers",
        ),
        (None, {"model_final.0.bias": [0.0] * 4}, "'model_final.0.bias' holds a list, not a tensor"),
        (None, {"model_initial.0.weight": None}, "state dict lacks model_initial.0.weight"),
        (None, {"model_final.8.weight": torch.zeros(13, 4)}, "tensor model_final.8.weight has 2 dimensions, not 5"),
    ],
)
def test_a_config_that_disagrees_with_the_tensors_is_named(
    tmp_path: Path, config: dict | None, state: dict | None, message: str
) -> None:
    path = _saved(tmp_path, config, state)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")) as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


def test_a_sound_checkpoint_loads(tmp_path: Path) -> None:
    model = ResNet3D(n_inputs=2, features=4, blocks=0)
    save_checkpoint(tmp_path / "c.pt", model, step=3)
    again, content = load_checkpoint(tmp_path / "c.pt")
    assert again.config == model.config and content["step"] == 3
    for name, tensor in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))  # would create the marker file when unpickled


def _foreign_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Files that are not our checkpoints, with the problem the error must name."""
    noise = random.Random(0).randbytes
    files = {
        "text": b"hello\n",
        "random": noise(3000),
        "empty": b"",
        "zip": b"PK\x03\x04" + noise(300),
        "code": pickle.dumps({"state_dict": _Payload(tmp_path / "pwned"), "config": {}}),
    }
    paths = {}
    for kind, data in files.items():
        (tmp_path / f"{kind}.pt").write_bytes(data)
        paths[kind] = (tmp_path / f"{kind}.pt", "not a PyTorch file of tensors and plain data")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save(ResNet3D(features=4, blocks=1).state_dict(), tmp_path / "state.pt")
    paths["tensor"] = (tmp_path / "tensor.pt", "not a checkpoint of crts train (it holds a Tensor, not a dict)")
    paths["state"] = (tmp_path / "state.pt", "not a checkpoint of crts train (it lacks 'state_dict', 'config')")
    paths["missing"] = (tmp_path / "absent.pt", "No such file or directory")
    paths["folder"] = (tmp_path, "Is a directory")
    return paths


@pytest.mark.parametrize("kind", ["text", "random", "empty", "zip", "code", "tensor", "state", "missing", "folder"])
def test_evaluate_names_a_checkpoint_that_is_not_one(
    tiny_cube: Path, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, problem = _foreign_files(tmp_path)[kind]
    code = main(["evaluate", "--cube", str(tiny_cube), "--checkpoint", str(path), "--run", "r"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"crts evaluate: error: {path}: {problem}") and err.count("\n") == 1
    assert not (tmp_path / "pwned").exists()
    assert not (tiny_cube / "runs" / "r").exists()


def _resume(cube: Path, out: Path) -> int:
    return main(
        [
            "train",
            "--cube",
            str(cube),
            "--out",
            str(out),
            "--resume",
            "--features",
            "4",
            "--blocks",
            "1",
            "--n-input-samples",
            "2",
            "--crop",
            "16",
            "--max-steps",
            "1",
            "--num-workers",
            "0",
            "--device",
            "cpu",
        ]
    )


def test_resume_names_a_corrupt_last_checkpoint(
    sampling_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "last.pt").write_bytes(random.Random(1).randbytes(2000))
    assert _resume(sampling_cube, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"crts train: error: {tmp_path / 'last.pt'}: not a PyTorch file of tensors and plain data")
    assert err.count("\n") == 1


def test_resume_names_a_checkpoint_of_another_model(
    sampling_cube: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_checkpoint(
        tmp_path / "last.pt",
        ResNet3D(n_inputs=2, features=8, blocks=1),
        optimizer={},
        scheduler={},
        step=1,
        epoch=0,
        position=1,
    )
    assert _resume(sampling_cube, tmp_path) == 2
    err = capsys.readouterr().err
    assert err == (
        f"crts train: error: {tmp_path / 'last.pt'}: a model with features=8, but this run builds features=4\n"
    )
