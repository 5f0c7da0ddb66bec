"""The notebooks in notebooks/ run top to bottom on a small synthetic cube, and are stored without outputs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
RUNS = ("resnet3d_demo", "uncrtaints_demo", "least_cloudy", "mosaic")  # the runs `make demo` writes
CELL_TIMEOUT_S = 300


def test_there_are_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "01_explore_time_series.ipynb",
        "02_cloud_coverage.ipynb",
        "03_train_from_cube.ipynb",
        "04_evaluate_predictions.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_clean(path: Path) -> None:
    """No outputs or execution counts are committed; the first code cell holds the parameters."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip the outputs"
    assert "parameters" in code[0].metadata.get("tags", [])
    assert 'os.environ.get("CRTS_CUBE", "../data/cube.zarr")' in code[0].source


@pytest.fixture(scope="module")
def notebook_cube(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small synthetic cube with its cloud pass, tiny trained checkpoints of the three models and the demo's runs.

    Train, val and test ROIs of Europe and train and test ROIs of Africa, 2 patches x 12 steps of 64 px.
    """
    import torch

    from crts.data import SEN12MSCRTS, SampleWindows, loader
    from crts.evaluate import evaluate
    from crts.losses import reconstruction_loss
    from crts.models import MODELS, UTAE, ResNet3D, UnCRtainTS, save_checkpoint
    from crts.models.uncrtaints import input_dates
    from cube import convert
    from cube.synth import make_dataset

    base = tmp_path_factory.mktemp("notebooks")
    root = make_dataset(
        base / "SEN12MSCRTS",
        ["ROIs1868/17", "ROIs1868/56", "ROIs1970/21", "ROIs2017/63", "ROIs2017/32"],
        patches_per_roi=2,
        size=64,
        times=12,
        seed=5,
        workers=1,
        progress=False,
    )
    cube = base / "cube.zarr"
    convert(root, cube, workers=1, progress=False)

    # A few steps on one batch, so that the "model" predicts plausible colours (no crts.train: it validates
    # every epoch, which is every step on this cube).
    torch.manual_seed(0)
    windows = SampleWindows(SEN12MSCRTS(cube, split="train", min_cov=0.05), input_dims={"y": 32, "x": 32})
    batch = next(iter(loader(windows, batch_size=4)))
    model = ResNet3D(n_inputs=3, features=8, blocks=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.5, 0.999))
    for _ in range(12):
        loss = torch.nn.functional.l1_loss(model(batch["inputs"] * 2 - 1), batch["target"] * 2 - 1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    checkpoint = save_checkpoint(base / "last.pt", model, step=12, train_config=json.dumps({"fixture": True}))

    uncrtaints = UnCRtainTS(encoder_widths=(16,), decoder_widths=(16, 16), n_head=4, d_model=32, scale_by=10.0)
    optimizer = torch.optim.Adam(uncrtaints.parameters(), lr=1e-2)
    dates = input_dates(batch["input_s1_td"], batch["input_s2_td"], use_sar=True)
    for _ in range(12):
        mean, variance = uncrtaints(batch["inputs"], dates)
        loss = reconstruction_loss("MGNLL", mean, batch["target"], variance)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    uncertain = save_checkpoint(
        base / "uncrtaints.pt", uncrtaints, step=12, train_config=json.dumps({"n_input_samples": 3})
    )

    utae = UTAE(encoder_widths=(8, 8, 16), decoder_widths=(8, 8, 16), n_head=4, d_model=16, out_conv=(26,))
    optimizer = torch.optim.Adam(utae.parameters(), lr=1e-2)
    for _ in range(12):
        loss = MODELS["utae"].training_loss(utae, utae.config, "MGNLL", batch["inputs"], batch["target"], batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    utae_checkpoint = save_checkpoint(base / "utae.pt", utae, step=12, train_config=json.dumps({"n_input_samples": 3}))

    evaluate(cube, "resnet3d_demo", checkpoint=str(checkpoint), split="test", min_cov=0.05, progress=False)
    evaluate(cube, "uncrtaints_demo", checkpoint=str(uncertain), split="test", min_cov=0.05, progress=False)
    evaluate(cube, "utae_demo", checkpoint=str(utae_checkpoint), split="test", min_cov=0.05, progress=False)
    for baseline in ("least_cloudy", "mosaic"):
        evaluate(cube, baseline, baseline=baseline, split="test", min_cov=0.05, progress=False)
    return {"cube": cube, "checkpoint": checkpoint}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, notebook_cube: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cell runs without error (the notebooks assert on what they show) and figures are displayed."""
    from nbclient import NotebookClient

    monkeypatch.setenv("CRTS_CUBE", str(notebook_cube["cube"]))
    monkeypatch.setenv("CRTS_CHECKPOINT", str(notebook_cube["checkpoint"]))
    monkeypatch.setenv("CRTS_NOTEBOOK_STEPS", "30")
    nb = nbformat.read(path, as_version=4)
    # The kernel inherits this process's environment; cells run with notebooks/ as the working directory.
    NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}
    ).execute()
    figures = [
        o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if "image/png" in o.get("data", {})
    ]
    assert figures, f"{path.name} displayed no figure (was the inline backend switched off?)"
