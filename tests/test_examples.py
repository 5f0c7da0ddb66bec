"""The Python examples of the README and of every documentation page run as written.

Per page, every ```python block runs in order in one namespace, with a temporary folder as the working
directory, so the relative paths they name (``data/synthetic``, ``sen12mscrts.zarr``, ``cube.zarr``) land
there. The only help they get is a declared stand-in (:data:`STAND_INS`) for each file a page reads but does
not write (your copy of the data set, a cube that shell commands would have converted and evaluated, a
published index file), made just before the first block that names it. The stand-ins are built once per
test session and copied into each page's folder.

A block right after a line ``<!-- skip-test: reason -->`` does not run; the reason is required.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # the examples plot; no display here

import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted(page for page in (ROOT / "docs").glob("*.md") if "\n```python\n" in page.read_text())]
"""Every page with Python examples: the README and the documentation pages that have any."""
SKIP = re.compile(r"<!-- skip-test: (.*\S) -->")
DATA_SET = ("/data/SEN12MSCRTS", "data/synthetic")
"""The one rewrite: where the pages' data set lies, and its stand-in."""


@dataclass(frozen=True)
class Block:
    """One ```python block of a page."""

    line: int  # of its first line of code, 1-based
    code: str
    skip: str | None  # the reason given by a skip-test marker right before it


def page_blocks(text: str, name: str = "README.md") -> list[Block]:
    """The ```python blocks of a page's text with their line numbers and skip reasons.

    Raises
    ------
    ValueError
        If a skip-test marker has no reason or is not followed directly by a ```python block (the message
        names the page ``name`` and the line).
    """
    lines = text.splitlines()
    blocks, reason, k = [], None, 0
    while k < len(lines):
        if lines[k].startswith("<!-- skip-test"):
            if not SKIP.fullmatch(lines[k]) or lines[k + 1 : k + 2] != ["```python"]:
                raise ValueError(f"{name}:{k + 1}: write '<!-- skip-test: reason -->' right before a ```python")
            reason = SKIP.fullmatch(lines[k]).group(1)
        elif lines[k] == "```python":
            end = lines.index("```", k + 1)
            blocks.append(Block(k + 2, "\n".join(lines[k + 1 : end]) + "\n", reason))
            reason, k = None, end
        k += 1
    return blocks


def make_synthetic(base: Path) -> None:
    """``data/synthetic``: a small synthetic set (Europe's train and test ROIs, 2 patches x 12 steps each)."""
    from cube.synth import make_dataset

    make_dataset(base / "data" / "synthetic", ["ROIs1868/17", "ROIs2017/63"], times=12, workers=1, progress=False)


def make_cube(base: Path) -> None:
    """``cube.zarr``: the test split of ``data/synthetic`` converted with its cloud pass, and the runs
    ``resnet_a`` and ``uncrtaints_a`` that the pages' ``crts evaluate`` commands write, here from tiny
    untrained models."""
    import cube
    from crts.evaluate import evaluate
    from crts.models import ResNet3D, UnCRtainTS, save_checkpoint

    ensure(base, DATA_SET[0])
    cube.convert(base / "data" / "synthetic", base / "cube.zarr", split="test", workers=1, progress=False)
    torch.manual_seed(0)
    for run, model, config in (
        ("resnet_a", ResNet3D(features=8, blocks=1), {}),
        (
            "uncrtaints_a",
            UnCRtainTS(encoder_widths=(16,), decoder_widths=(16, 16), n_head=4, d_model=32),
            {"n_input_samples": 3},
        ),
    ):
        (base / "runs").mkdir(exist_ok=True)
        checkpoint = save_checkpoint(base / "runs" / f"{run}.pt", model, train_config=json.dumps(config))
        evaluate(str(base / "cube.zarr"), run, checkpoint=str(checkpoint), split="test", progress=False)


def make_index_file(base: Path, name: str) -> None:
    """An index file in the published format (``3_test_s2cloudless_mask.npy``), exported from ``cube.zarr``."""
    from crts.data import SEN12MSCRTS

    ensure(base, "cube.zarr")
    (base / name).parent.mkdir(parents=True, exist_ok=True)
    SEN12MSCRTS(
        base / "cube.zarr",
        split="test",
        cloud_masks="s2cloudless_mask",
        n_input_samples=3,
        export_data_path=(base / name).parent,
    )


INDEX = "3_test_s2cloudless_mask.npy"
STAND_INS: dict[str, tuple[str, Callable[[Path], None]]] = {
    DATA_SET[0]: (DATA_SET[1], make_synthetic),
    "cube.zarr": ("cube.zarr", make_cube),
    INDEX: (INDEX, lambda base: make_index_file(base, INDEX)),
    f"indices/{INDEX}": (f"indices/{INDEX}", lambda base: make_index_file(base, f"indices/{INDEX}")),
}
"""Names that pages read but do not write (as a string literal in a block): what stands for them, and how to
make it under a base folder."""
PROMISES = {
    "README.md": 'assert batch["inputs"].shape == (4, 3, 15, 128, 128)\n',
    "training.md": """\
assert sample["input"]["S2"][0].shape == (13, 256, 256)
assert batch["inputs"].shape[1:] == (3, 15, 128, 128)
assert sum(p.numel() for p in model.parameters()) == 38_474_253
assert prediction.shape == (len(batch["inputs"]), 13, 128, 128)
""",
}
"""What a page's comments say its examples give, checked after its last block."""


def ensure(base: Path, name: str) -> Path:
    """The stand-in for ``name`` under ``base``, made there if missing; its path."""
    product, make = STAND_INS[name]
    if not (base / product).exists():
        make(base)
    return base / product


def make_stand_ins(code: str, cache: Path) -> None:
    """Copy into the working folder the stand-ins for the names a block reads but that are missing there,
    making them in ``cache`` first where they are not there yet."""
    for name, (product, _) in STAND_INS.items():
        if f'"{name}"' in code and not Path(product).exists():
            made = ensure(cache, name)
            Path(product).parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if made.is_dir() else shutil.copy)(made, product)


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder in which the stand-ins are made once for all pages."""
    return tmp_path_factory.mktemp("stand-ins")


@pytest.mark.slow  # 10-60 s per page on 2 cores: synthesis, conversion with the cloud pass, DataLoader workers
@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_the_examples_run_as_written(
    page: Path, stand_ins: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "examples"}
    for block in page_blocks(page.read_text(), page.name):
        if block.skip:
            continue
        make_stand_ins(block.code, stand_ins)
        code = "\n" * (block.line - 1) + block.code.replace(*DATA_SET)
        exec(compile(code, str(page), "exec"), namespace)  # the page's own examples
        plt.close("all")
    exec(PROMISES.get(page.name, ""), namespace)


@pytest.mark.slow  # about 60 s on 2 cores: the README's examples in a new process
def test_the_readme_runs_as_a_plain_script(tmp_path: Path) -> None:
    """Saved as one file and run with ``python examples.py``, as a newcomer would: no ``__main__`` guard, so
    nothing may start worker processes that re-run the script (the conversion runs in-process and says so)."""
    lines = [
        "import matplotlib",
        "matplotlib.use('Agg')",
        "from pathlib import Path",
        "from tests.test_examples import make_stand_ins",
    ]
    for block in page_blocks(README.read_text()):
        if not block.skip:
            lines += [f"make_stand_ins({block.code!r}, Path('stand-ins'))", block.code.replace(*DATA_SET)]
    (tmp_path / "examples.py").write_text("\n".join([*lines, PROMISES["README.md"], "print('examples done')"]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "examples.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "examples done"
    assert done.stderr.count("worker processes would each re-run this script") == 1


def test_every_guide_with_examples_is_collected() -> None:
    names = {page.name for page in PAGES}
    assert {
        "README.md",
        "synthetic-data.md",
        "exploring.md",
        "cloud-statistics.md",
        "training.md",
        "evaluating.md",
        "convert-real-data.md",
        "schema.md",
        "object-storage.md",
        "trust.md",
    } <= names


def test_skip_markers_need_a_reason_and_a_block() -> None:
    blocks = [block for page in PAGES for block in page_blocks(page.read_text(), page.name)]
    skipped = [block for block in blocks if block.skip]
    assert len(skipped) <= 3 < len(blocks)  # few examples may be skipped
    for bad in ("<!-- skip-test -->\n```python\n1\n```\n", "<!-- skip-test: why -->\n\n```python\n1\n```\n"):
        with pytest.raises(ValueError, match=r"guide.md:1: write '<!-- skip-test: reason -->'"):
            page_blocks(bad, "guide.md")
    assert page_blocks("<!-- skip-test: why -->\n```python\n1\n```\n```python\n2\n```\n") == [
        Block(3, "1\n", "why"),
        Block(6, "2\n", None),
    ]
