"""The commands that learn from a cube: ``crts train``, ``crts evaluate`` and ``crts report``."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path

from cube.dataset.rois import REGIONS, SPLITS

from .options import add_cube, comma_list, given_cube

_TRAIN_HELP = {
    "out": "run folder for checkpoints and logs",
    "model": "the model kind",
    "region": "region of the train/val splits",
    "cloud_masks": "detector whose coverage chooses inputs and target",
    "n_input_samples": "input time steps",
    "min_cov": "lowest input coverage",
    "max_cov": "highest input coverage",
    "crop": "random crop size in px",
    "batch_size": "samples per batch (per process under torchrun; a step takes --accumulate batches)",
    "lr": "Adam learning rate",
    "beta1": "Adam beta1",
    "epochs": "epochs at the initial rate",
    "epochs_decay": "epochs of linear decay to 0",
    "loss": "l1, l2 or MGNLL (Gaussian NLL with the predicted variances)",
    "sampler": "fixed (the paper's rule) or random (UnCRtainTS's, redrawn every epoch) for the train split",
    "max_steps": "stop after this many steps",
    "checkpoint_every": "steps between checkpoints",
    "seed": "random seed",
    "device": "auto (CUDA when available), cpu, cuda, cuda:1, ...",
    "amp": "bfloat16 autocast on CUDA",
    "num_workers": "DataLoader worker processes; unset: 0 on a CPU, min(6, cores - 1) on CUDA",
    "compile": "compile the model with torch.compile",
    "accumulate": "batches per optimizer step (gradient accumulation, for small GPUs)",
    "log_every": "steps between log lines (the loss is read from the device only then)",
    "init_encoder": "initialise the encoder from the original's baseline_resnet.pth",
    "freeze_encoder_steps": "keep the encoder frozen for this many steps (the original: 100000)",
}
"""What each setting of TrainConfig sets, for ``crts train --help``; a model kind's own settings say it in its
recipe's options (:func:`crts.models.kinds.model_options`)."""


def _value_type(hint: object) -> type:
    """The type of an option's values from a setting's type hint (``int | None`` -> ``int``)."""
    if isinstance(hint, type):
        return hint
    return next(t for t in typing.get_args(hint) if t is not type(None))


def train_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts train``."""
    from dataclasses import fields

    from crts.data.sampling import SAMPLERS
    from crts.models.kinds import RECIPES, model_options
    from crts.settings import LOSSES, TrainConfig
    from cube.clouds.detectors import DETECTORS

    kinds = "; ".join(f"{name}: {r.summary}" for name, r in RECIPES.items())
    p.description = (
        f"Train a model ({kinds}; each with its original's recipe unless told otherwise) on the "
        "cube's train split, validating on the val split every epoch. Logs: RUN_DIR/log.csv and "
        "RUN_DIR/tensorboard; checkpoints: RUN_DIR/last.pt. Multi-GPU / multi-node: run it under "
        "torchrun."
    )
    p.epilog = "example: torchrun --nproc_per_node 4 -m crts train cube.zarr --out runs/a --batch-size 8"
    choices = {
        "region": REGIONS,
        "cloud_masks": DETECTORS,
        "model": tuple(RECIPES),
        "loss": LOSSES,
        "sampler": SAMPLERS,
    }
    add_cube(p, "the cube, a path or URL (required unless --config gives it or a run to resume)", also_as_option=True)
    p.add_argument("--config", metavar="FILE", help="JSON file of settings; options given here override it")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    hints, own = typing.get_type_hints(TrainConfig), model_options()
    for f in fields(TrainConfig):
        if f.name == "cube":
            continue
        flag = "--" + f.name.replace("_", "-")
        option = own.get(f.name)  # a model kind's own setting
        kind = option.type if option else _value_type(hints[f.name])
        help = option.help if option else _TRAIN_HELP[f.name]
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help)
        else:
            by_model = {name: r.defaults[f.name] for name, r in RECIPES.items() if f.name in r.defaults}
            default = ", ".join(f"{name} {value}" for name, value in by_model.items()) if by_model else f.default
            p.add_argument(
                flag, type=kind, default=None, choices=choices.get(f.name), help=f"{help} (default: {default})"
            )
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> None:
    from dataclasses import fields

    from crts.settings import TrainConfig

    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "cube"}
    run_config = Path(args.out or TrainConfig.out) / "config.json"
    base = args.config or (run_config if args.resume and run_config.is_file() else None)  # resume: the run's own
    cube = given_cube(args, required=not base)
    if base:
        config = TrainConfig.from_json(base, cube=cube, **overrides)
    else:
        assert cube is not None  # required without a file of settings: given_cube refused its absence
        config = TrainConfig(cube=cube, **{k: v for k, v in overrides.items() if v is not None})
    config.resolved()  # every number checked before torch is imported
    args.run_folder = Path(config.out)  # what an interrupt reports on (INTERRUPTED)
    from crts.train import last_validation, train

    run = train(config, resume=args.resume, storage_options=dict(args.storage_options))
    print(f"run: {run} (checkpoint {run / 'last.pt'}, log {run / 'log.csv'})")
    scores = last_validation(run)
    print(
        "validation: none yet (the run stopped before its first epoch ended)"
        if scores is None
        else f"validation at step {scores['step']}: L1 {scores['val_l1']:.4f} (model scale), least-cloudy baseline "
        f"{scores['val_l1_least_cloudy']:.4f} on the same windows"
    )


def evaluate_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts evaluate``."""
    from crts.models.kinds import BASELINE_NAMES
    from cube.clouds.detectors import DETECTORS

    p.description = (
        "Predict every sample of a split with a checkpoint of `crts train` or a baseline, score it with "
        "the paper's metrics and write predictions and per-sample metrics into CUBE/runs/NAME (the "
        "cube's own variables are never modified; a run appears only when complete)."
    )
    p.epilog = "example: crts evaluate cube.zarr --checkpoint runs/a/last.pt --split test --run resnet_a"
    add_cube(p, "the cube (a path or URL)", also_as_option=True)
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="a checkpoint written by crts train")
    model.add_argument("--baseline", choices=sorted(BASELINE_NAMES), help="a baseline instead of a model")
    p.add_argument("--split", choices=SPLITS, default="test", help="split to predict (default: test)")
    p.add_argument("--region", choices=REGIONS, default="all", help="region (default: all)")
    p.add_argument(
        "--cloud-masks",
        choices=DETECTORS,
        default="s2cloudless_mask",
        help="detector for choosing inputs/target and for the cloudy/clear metrics (default: s2cloudless_mask)",
    )
    p.add_argument("--n-input-samples", type=int, default=None, help="default: the checkpoint's, or 3")
    p.add_argument(
        "--min-cov",
        type=float,
        default=0.0,
        help="lowest input coverage (default: 0.0, as the original: the target may be an input)",
    )
    p.add_argument("--max-cov", type=float, default=1.0, help="highest input coverage (default: 1.0)")
    p.add_argument("--import-index", metavar="FILE", help="index file (.npy as published, or .json) to use")
    p.add_argument("--batch-size", type=int, default=4, help="windows per batch (default: 4)")
    p.add_argument(
        "--window",
        type=int,
        metavar="PX",
        help="predict windows of PX x PX pixels and blend them into whole patches (default: whole patches)",
    )
    p.add_argument(
        "--overlap",
        type=int,
        default=0,
        metavar="PX",
        help="overlap of neighbouring windows in pixels, blended without seams (default: 0)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, ... (default: auto)")
    p.add_argument("--run", required=True, help="name of the run in the cube")
    p.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> None:
    from crts.evaluate import evaluate
    from cube.store.runs import open_run

    given_cube(args)
    path = evaluate(
        args.cube,
        args.run,
        checkpoint=args.checkpoint,
        baseline=args.baseline,
        split=args.split,
        region=args.region,
        cloud_masks=args.cloud_masks,
        n_input_samples=args.n_input_samples,
        min_cov=args.min_cov,
        max_cov=args.max_cov,
        import_index=args.import_index,
        batch_size=args.batch_size,
        window=args.window,
        overlap=args.overlap,
        device=args.device,
        storage_options=dict(args.storage_options),
    )
    ds = open_run(args.cube, args.run, storage_options=dict(args.storage_options))
    means = ", ".join(f"{m} {float(ds[m].mean()):.4f}" for m in ("rmse", "mae", "psnr", "sam", "ssim"))
    if "uce" in ds:  # a model that predicts variances
        means += f", UCE {float(ds.uce):.4f}, AUCE {float(ds.auce):.4f}"
    print(f"run {args.run}: {ds.sizes['sample']} samples -> {path}; {means}")


def report_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts report``."""
    p.description = (
        "Tables of every metric by run, overall, by region and by input-coverage bin (report.md and "
        "CSV), and figures: true-colour inputs, target and predictions with error maps, and RMSE "
        "against input coverage."
    )
    p.epilog = "example: crts report cube.zarr --runs resnet_a,least_cloudy,mosaic --out report/"
    add_cube(p, "the cube holding the runs (a path or URL)")
    p.add_argument("--runs", type=comma_list, default=None, help="comma-separated runs (default: all)")
    p.add_argument("--out", default="report", help="output folder (default: report)")
    p.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> None:
    import pandas as pd

    from crts.report import markdown_table, write_report

    path = write_report(args.cube, args.out, args.runs, storage_options=dict(args.storage_options))
    print(f"overall, mean per run:\n{markdown_table(pd.read_csv(path.parent / 'overall.csv', index_col='run'))}")
    print(f"\nreport: {path} (tables as CSV and figures beside it)")
