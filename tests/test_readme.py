"""The README's Python examples run as written: every ```python block, in order, in one namespace.

The blocks run with a temporary folder as the working directory, so the relative paths they name
(``data/synthetic``, ``sen12mscrts.zarr``, ``cube.zarr``) land there. Two kinds of stand-in, and
nothing else, make them run:

- one rewrite: ``/data/SEN12MSCRTS`` (your copy of the data set) becomes ``data/synthetic``, the
  synthetic set the first example writes;
- files that the examples read but that the README's shell commands (or the data set's authors)
  make are made just before the first block that names them (:data:`STAND_INS`).

A block right after a line ``<!-- skip-test: reason -->`` does not run; the reason is required.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # the examples plot; no display here

import matplotlib.pyplot as plt  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
DATA_SET = ("/data/SEN12MSCRTS", "data/synthetic")
"""The one rewrite: where the README's data set lies, and its stand-in (the first example writes it)."""
SKIP = re.compile(r"<!-- skip-test: (.*\S) -->")


@dataclass(frozen=True)
class Block:
    """One ```python block of the README."""

    line: int  # of its first line of code, 1-based
    code: str
    skip: str | None  # the reason given by a skip-test marker right before it


def readme_blocks(text: str) -> list[Block]:
    """The README's ```python blocks with their line numbers and skip reasons.

    Raises
    ------
    ValueError
        If a skip-test marker has no reason or is not followed directly by a ```python block.
    """
    lines = text.splitlines()
    blocks, reason, k = [], None, 0
    while k < len(lines):
        if lines[k].startswith("<!-- skip-test"):
            if not SKIP.fullmatch(lines[k]) or lines[k + 1:k + 2] != ["```python"]:
                raise ValueError(f"README.md:{k + 1}: write '<!-- skip-test: reason -->' right before a ```python")
            reason = SKIP.fullmatch(lines[k]).group(1)
        elif lines[k] == "```python":
            end = lines.index("```", k + 1)
            blocks.append(Block(k + 2, "\n".join(lines[k + 1:end]) + "\n", reason))
            reason, k = None, end
        k += 1
    return blocks


def _cube_with_runs() -> None:
    """``cube.zarr``: the converted test split with the runs ``resnet_a`` and ``uncrtaints_a`` that the
    README's ``crts evaluate`` commands write, here from tiny untrained models."""
    from crts.evaluate import evaluate
    from crts.models import ResNet3D, UnCRtainTS, save_checkpoint

    shutil.copytree("sen12mscrts.zarr", "cube.zarr")
    torch.manual_seed(0)
    for run, model, config in (
            ("resnet_a", ResNet3D(features=8, blocks=1), {}),
            ("uncrtaints_a", UnCRtainTS(encoder_widths=(16,), decoder_widths=(16, 16), n_head=4, d_model=32),
             {"n_input_samples": 3})):
        Path("runs").mkdir(exist_ok=True)
        checkpoint = save_checkpoint(Path("runs") / f"{run}.pt", model, train_config=json.dumps(config))
        evaluate("cube.zarr", run, checkpoint=str(checkpoint), split="test", progress=False)


def _index_file() -> None:
    """``3_test_s2cloudless_mask.npy``: for the published index file, one exported from ``sen12mscrts.zarr``."""
    from crts.data import SEN12MSCRTS

    SEN12MSCRTS("sen12mscrts.zarr", split="test", cloud_masks="s2cloudless_mask", n_input_samples=3,
                export_data_path=".")


STAND_INS = {"cube.zarr": _cube_with_runs, "3_test_s2cloudless_mask.npy": _index_file}
"""Files the examples read but do not write, by name (as a string literal in a block), and how to make them."""
PROMISES = """\
assert sample["input"]["S2"][0].shape == (13, 256, 256)
assert batch["inputs"].shape[1:] == (3, 15, 128, 128)
assert sum(p.numel() for p in model.parameters()) == 38_474_253
assert prediction.shape == (len(batch["inputs"]), 13, 128, 128)
"""
"""What the examples' comments say they give, checked after the last block."""


def make_stand_ins(code: str) -> None:
    """Make the files that a block reads but does not write (:data:`STAND_INS`) where they are missing."""
    for name, make in STAND_INS.items():
        if f'"{name}"' in code and not Path(name).exists():
            make()


@pytest.mark.slow  # about 45 s on 2 cores: synthesis, conversion with the cloud pass, 4 DataLoader workers
def test_the_examples_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "readme"}
    for block in readme_blocks(README.read_text()):
        if block.skip:
            continue
        make_stand_ins(block.code)
        code = "\n" * (block.line - 1) + block.code.replace(*DATA_SET)  # tracebacks name README.md's lines
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - the README's own examples
        plt.close("all")
    exec(PROMISES, namespace)  # noqa: S102


@pytest.mark.slow  # about 60 s on 2 cores: as above, in a new process
def test_the_examples_run_as_a_plain_script(tmp_path: Path) -> None:
    """Saved as one file and run with ``python examples.py``, as a newcomer would: no ``__main__`` guard, so
    nothing may start worker processes that re-run the script (the conversion runs in-process and says so)."""
    lines = ["import matplotlib", "matplotlib.use('Agg')", "from tests.test_readme import make_stand_ins"]
    for block in readme_blocks(README.read_text()):
        if not block.skip:
            lines += [f"make_stand_ins({block.code!r})", block.code.replace(*DATA_SET)]
    (tmp_path / "examples.py").write_text("\n".join([*lines, PROMISES, "print('examples done')"]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(README.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "examples.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "examples done"
    assert done.stderr.count("worker processes would each re-run this script") == 1


def test_skip_markers_need_a_reason_and_a_block() -> None:
    blocks = readme_blocks(README.read_text())
    skipped = [block for block in blocks if block.skip]
    assert len(skipped) <= 2 < len(blocks)  # few examples may be skipped
    for bad in ("<!-- skip-test -->\n```python\n1\n```\n", "<!-- skip-test: why -->\n\n```python\n1\n```\n"):
        with pytest.raises(ValueError, match="README.md:1: write '<!-- skip-test: reason -->'"):
            readme_blocks(bad)
    assert readme_blocks("<!-- skip-test: why -->\n```python\n1\n```\n```python\n2\n```\n") == [
        Block(3, "1\n", "why"), Block(6, "2\n", None)]
