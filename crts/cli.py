"""The ``crts`` command: one sub-command per job, each with its own ``--help``."""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import time
import typing
import warnings
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from crts import __version__
from cube.dataset.rois import REGIONS, SPLITS
from cube.store.outputs import PATH_ERRNOS, REFUSING_ERRNOS

if typing.TYPE_CHECKING:
    from cube.ingest.options import ConversionOptions

os.environ["MPLBACKEND"] = "Agg"  # the command writes figures to files; read when pyplot is first imported


def _comma_list(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _add_storage_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage-option", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   dest="storage_options",
                   help="object-store option for a CUBE URL, repeatable (e.g. endpoint=http://host:9000, "
                        "region=eu-central-1, anon=true); credentials default to the standard environment "
                        "variables (AWS_*, GOOGLE_APPLICATION_CREDENTIALS)")


def _add_cube(p: argparse.ArgumentParser, help: str, *, also_as_option: bool = False) -> None:
    """CUBE as a positional argument (with ``--cube`` also accepted: the older spelling), and its storage options."""
    if also_as_option:
        p.add_argument("cube", metavar="CUBE", nargs="?", default=None, help=help)
        p.add_argument("--cube", dest="cube_option", metavar="CUBE", default=None,
                       help="the same as the positional CUBE (kept for compatibility)")
    else:
        p.add_argument("cube", metavar="CUBE", help=help)
    _add_storage_options(p)


def _cube(args: argparse.Namespace, required: bool = True) -> str | None:
    """The cube given as CUBE or ``--cube`` (and set ``args.cube`` to it).

    Raises
    ------
    ValueError
        If both are given, or ``required`` and neither is.
    """
    if args.cube and args.cube_option:
        raise ValueError(f"give the cube once: CUBE {args.cube!r} or --cube {args.cube_option!r}")
    args.cube = args.cube or args.cube_option
    if required and not args.cube:
        raise ValueError("give the cube as CUBE (or --cube CUBE)")
    return args.cube


def _synth_options(p: argparse.ArgumentParser) -> None:
    from cube.synth import DEFAULT_ROIS, LAYOUTS

    p.description = ("Write a realistic synthetic SEN12MS-CR-TS (or SEN12MS-CR) tree with the exact folder "
                     "and file names of the real data set, plus ground truth (cloud and shadow masks, "
                     "cloud-free images, land cover) in OUT/ground_truth.")
    p.epilog = "example: crts synth data/synthetic --rois ROIs1868/17,ROIs2017/63 --patches-per-roi 4"
    p.add_argument("out", metavar="OUT", nargs="?", default=None,
                   help="data set root to create (must be empty or absent); optional with --archives")
    p.add_argument("--archives", metavar="DIR", default=None,
                   help="also (or, without OUT, only) write the set as the published .tar.gz archives into DIR, "
                        "with its ground truth")
    p.add_argument("--shuffle-members", action="store_true",
                   help="with --archives: members in a random order instead of a walk of the tree")
    p.add_argument("--rois", type=_comma_list, default=list(DEFAULT_ROIS), metavar="ROIS",
                   help=f"comma-separated ROIs (default: {','.join(DEFAULT_ROIS)})")
    p.add_argument("--patches-per-roi", type=int, default=2, metavar="N", help="patches per ROI (default: 2)")
    p.add_argument("--size", type=int, default=256, help="patch width in pixels (default: 256)")
    p.add_argument("--times", type=int, default=30, help="time steps per patch, 1-30 (default: 30)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--layout", choices=LAYOUTS, default="sen12mscrts",
                   help="multi-temporal SEN12MS-CR-TS or mono-temporal SEN12MS-CR (default: sen12mscrts)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace a synthetic data set already at OUT")
    p.add_argument("--preview", metavar="PNG", default=None,
                   help="also draw the first patch's time series next to its ground truth into PNG")
    p.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> None:
    from cube.synth import make_dataset
    from cube.synth.preview import plot_patch

    from cube.synth.archives import make_archived_dataset, write_archives

    if args.preview and args.layout != "sen12mscrts":
        raise ValueError("--preview draws time series: it needs --layout sen12mscrts")
    if not (args.out or args.archives):
        raise ValueError("give OUT (a tree), --archives DIR, or both")
    if args.preview and not args.out:
        raise ValueError("--preview draws from the tree: give OUT too")
    start = time.perf_counter()
    options = {"patches_per_roi": args.patches_per_roi, "size": args.size, "times": args.times, "seed": args.seed,
               "layout": args.layout, "workers": args.workers}
    if args.out:
        root = make_dataset(args.out, args.rois, overwrite=args.overwrite, **options)
        print(f"wrote {args.layout} data set with {len(args.rois)} ROIs to {root} "
              f"in {time.perf_counter() - start:.1f} s (ground truth in {root / 'ground_truth'})")
    if args.archives and args.out:
        archives = write_archives(root, args.archives, shuffle=args.shuffle_members, seed=args.seed)
    elif args.archives:
        archives = make_archived_dataset(args.archives, args.rois, overwrite=args.overwrite,
                                         shuffle=args.shuffle_members, **options)
    if args.archives:
        size = sum(a.stat().st_size for a in archives)
        print(f"wrote {len(archives)} archives ({size / 1e6:.1f} MB) to {args.archives} "
              f"in {time.perf_counter() - start:.1f} s")
    if args.preview:
        print(f"preview of the first patch: {plot_patch(root, out=args.preview)}")


def _convert_options(p: argparse.ArgumentParser) -> None:
    from cube.clouds.detectors import DETECTORS
    from cube.ingest.options import ON_ERROR
    from cube.store.schema import TILE_PX, WINDOW_TILE_PX

    p.description = ("Convert a SEN12MS-CR-TS (or SEN12MS-CR) GeoTIFF tree, or its published .tar.gz archives "
                     "without extracting them, into one labelled, lossless Zarr v3 cube. Every file is checked; an "
                     "existing complete cube gets new ROIs appended.")
    p.epilog = ("examples: crts convert /data/SEN12MSCRTS cube.zarr --split test --workers 8 --report report.json; "
                "crts convert /data/archives cube.zarr --scratch /fast/scratch")
    p.add_argument("src", metavar="SRC", nargs="+",
                   help="data set root (holding ROIs1158/ ... ROIs2017/); or a folder of the published archives, "
                        "archives, http(s):// URLs of archives, or several of these and trees")
    _add_cube(p, "the Zarr cube to create or extend: a path or an s3:// / gs:// URL")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--rois", type=_comma_list, default=None, help="comma-separated ROIs, e.g. ROIs1868/17")
    which.add_argument("--split", choices=SPLITS, default=None, help="official split (default: all)")
    p.add_argument("--region", choices=REGIONS, default=None, help="region (default: all)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local worker processes (default: all cores; 1 = no dask cluster)")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="address of a running dask.distributed scheduler (e.g. tcp://host:8786)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted conversion into CUBE")
    p.add_argument("--on-error", choices=ON_ERROR, default="fail",
                   help="fail: stop at the first bad file (default); skip: convert the rest, record the gaps")
    p.add_argument("--report", metavar="FILE", default=None, help="write a JSON report of the conversion")
    p.add_argument("--detectors", type=_comma_list, default=list(DETECTORS), metavar="LIST",
                   help=f"cloud pass after the conversion (default: {','.join(DETECTORS)}); 'none' skips it")
    p.add_argument("--tile", type=int, default=TILE_PX, metavar="PX",
                   help=f"edge of the images' inner chunks in a new cube, in px (default: {TILE_PX}, one chunk per "
                        f"image; {WINDOW_TILE_PX} for a cube read mostly as {WINDOW_TILE_PX} px training crops: "
                        "4.6x faster windows, but plain xr.open_zarr gets 16x the dask chunks; it must divide the "
                        "patch size; an existing cube keeps its chunking)")
    p.add_argument("--scratch", metavar="DIR", default=None,
                   help="archives: folder for members waiting for the rest of their patch (default: CUBE.scratch "
                        "beside a local cube); about one ROI of S1 and S2 per group read at once for archives written "
                        "by walking the tree")
    p.add_argument("--times", type=int, default=None, metavar="N",
                   help="archives: time steps of every patch (default: the cube's, or 30 for a new cube)")
    p.add_argument("--groups-at-once", type=int, default=None, metavar="N",
                   help="archives: groups of archives (S1 and S2 of one region) read at once (default: one per 6 "
                        "workers, or with --scheduler per 6 cores of this machine, which decompresses them); each adds "
                        "its own scratch")
    _add_force_unlock(p)
    p.set_defaults(handler=_run_convert)


def _add_force_unlock(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force-unlock", action="store_true",
                   help="break the cube's writer lock left by a process that died on another machine (one that "
                        "died on this machine is detected and its lock broken without this option)")


def _run_convert(args: argparse.Namespace) -> None:
    from cube.ingest.conversion import convert_with
    from cube.ingest.options import ConversionOptions

    if args.region and args.rois:
        raise ValueError("--region selects with --split, not with --rois")
    options = ConversionOptions(rois=args.rois, split=args.split, region=args.region, workers=args.workers,
                                scheduler=args.scheduler, resume=args.resume, on_error=args.on_error,
                                report=args.report, clouds=_detectors(args.detectors), force_unlock=args.force_unlock,
                                storage_options=dict(args.storage_options), tile=args.tile, scratch=args.scratch,
                                times=args.times, groups_at_once=args.groups_at_once)
    report = convert_with(args.src, args.cube, options)
    print(f"{args.cube}: {report.patches_in_cube} patches ({report.patches_added} added, "
          f"{report.patches_converted} converted, {report.cloud_pass_patches} through the cloud pass) "
          f"in {report.seconds:.1f} s; {report.gaps} gap(s)")
    for problem in report.problems[:10]:
        print(f"  skipped {problem['path']}: {problem['message']}")
    if len(report.problems) > 10:
        print(f"  ... and {len(report.problems) - 10} more problems")
    if report.archives_read:
        print(f"read {len(report.archives_read)} archive(s) without extracting them; scratch peak "
              f"{report.scratch_peak_bytes / 1e6:.1f} MB")
    if args.report:
        print(f"report: {args.report}")


def _download_options(p: argparse.ArgumentParser) -> None:
    from cube.clouds.detectors import DETECTORS
    from cube.ingest.download import DOWNLOAD_SPLITS, TS_REGIONS

    p.description = ("Download the published archives, with the choices of the toolbox's util/dl_data.sh as flags: "
                     "resumable (a .part file is continued with a Range request), each archive checked against the "
                     "server's size, a progress bar in bytes. With --convert, each group of archives (S1 and S2 of "
                     "a region and split; a SEN12MS-CR season) is converted into CUBE as soon as it is complete.")
    p.epilog = ("examples: crts download /data/archives --regions africa,europa --dry-run; "
                "crts download /data/archives --convert /data/sen12mscrts.zarr --delete-archives --workers 16")
    p.add_argument("dest", metavar="DEST", help="folder for the archives (created if absent)")
    p.add_argument("--regions", type=_comma_list, default=["all"], metavar="LIST",
                   help=f"SEN12MS-CR-TS regions, comma-separated from {','.join(TS_REGIONS)} (default: all); "
                        "none: no SEN12MS-CR-TS")
    p.add_argument("--split", choices=DOWNLOAD_SPLITS, default="all",
                   help="SEN12MS-CR-TS collection: train (holds val too) or test (default: all)")
    p.add_argument("--sen12mscr", action="store_true",
                   help="also the mono-temporal SEN12MS-CR archives (all four seasons)")
    p.add_argument("--no-s1", dest="s1", action="store_false", help="leave out the Sentinel-1 archives")
    p.add_argument("--dry-run", action="store_true",
                   help="list the archives, their approximate sizes, what DEST has of them and their URLs; "
                        "download nothing")
    p.add_argument("--base-url", metavar="URL", default=None,
                   help="a server holding the archives under their names (URL/s1_africa.tar.gz ...), instead of "
                        "mediaTUM")
    p.add_argument("--convert", metavar="CUBE", dest="cube", default=None,
                   help="convert each group of archives into CUBE once its archives are complete (a path or URL); "
                        "the options 'with --convert' below apply")
    p.add_argument("--delete-archives", action="store_true",
                   help="with --convert: delete each group's archives once converted (peak disk: the cube plus "
                        "one group's archives)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="with --convert: local worker processes (default: all cores)")
    p.add_argument("--times", type=int, default=None, metavar="N",
                   help="with --convert: time steps of every patch (default: the cube's, or 30 for a new cube)")
    p.add_argument("--scratch", metavar="DIR", default=None,
                   help="with --convert: the conversion's scratch folder (default: CUBE.scratch)")
    p.add_argument("--detectors", type=_comma_list, default=list(DETECTORS), metavar="LIST",
                   help="with --convert: the cloud pass after each group (default: all); 'none' skips it")
    _add_storage_options(p)
    p.set_defaults(handler=_run_download)


def _run_download(args: argparse.Namespace) -> None:
    from cube.ingest.download import check_convertible, download, plan_lines, select

    archives = select(args.regions, args.split, args.s1, args.sen12mscr, args.base_url)
    if args.delete_archives and not args.cube:
        raise ValueError("--delete-archives deletes what --convert CUBE converted: give --convert CUBE")
    if args.cube:
        check_convertible(archives)
    if args.dry_run:
        print("\n".join(plan_lines(archives, args.dest)))
        return
    start = time.perf_counter()
    report = download(archives, args.dest, cube=args.cube, delete_archives=args.delete_archives,
                      convert_options=_download_conversion(args))
    print(f"{args.dest}: {len(report.downloaded)} archive(s) downloaded ({report.bytes_fetched / 1e6:.1f} MB), "
          f"{len(report.present)} there already, in {time.perf_counter() - start:.1f} s"
          + (f"; {len(report.converted)} group(s) converted into {args.cube}, {len(report.in_cube)} in it already, "
             f"{len(report.deleted)} archive(s) deleted" if args.cube else ""))


def _download_conversion(args: argparse.Namespace) -> ConversionOptions | None:
    """The options of ``crts download --convert``'s conversions; None without ``--convert``."""
    if not args.cube:
        return None
    from cube.ingest.options import ConversionOptions

    return ConversionOptions(workers=args.workers, times=args.times, scratch=args.scratch,
                             clouds=_detectors(args.detectors), storage_options=dict(args.storage_options))


def _detectors(names: list[str]) -> tuple[str, ...]:
    return () if names == ["none"] else tuple(names)


def _clouds_options(p: argparse.ArgumentParser) -> None:
    from cube.clouds.detectors import DETECTORS

    p.description = ("The cloud pass (also run by `crts convert`): s2cloudless probability, mask and map and the "
                     "toolbox's cloud/shadow heuristic for every S2 image, with the toolbox's parameters, stored "
                     "once in the cube with a coverage table per (patch, time, detector). Re-running is a no-op.")
    p.epilog = "example: crts clouds cube.zarr --detectors s2cloudless_mask --workers 8"
    _add_cube(p, "a converted SEN12MS-CR-TS cube (a path or URL)")
    p.add_argument("--detectors", type=_comma_list, default=list(DETECTORS), metavar="LIST",
                   help=f"comma-separated, from {','.join(DETECTORS)} (default: all)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local worker processes (default: all cores; 1 = no dask cluster)")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None, help="a running dask.distributed scheduler")
    p.add_argument("--resume", action="store_true", help="finish an interrupted cloud pass")
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="cpu (default: the compiled forest) or a torch device such as cuda for s2cloudless")
    _add_force_unlock(p)
    p.set_defaults(handler=_run_clouds)


def _run_clouds(args: argparse.Namespace) -> None:
    from cube.clouds.compute import compute_clouds

    start = time.perf_counter()
    predictor = None
    if args.device != "cpu":
        from crts.clouds_gpu import TorchForestPredictor

        predictor = TorchForestPredictor(args.device)
    n = compute_clouds(args.cube, tuple(args.detectors), workers=args.workers, scheduler=args.scheduler,
                       resume=args.resume, force_unlock=args.force_unlock,
                       storage_options=dict(args.storage_options), predictor=predictor)
    print(f"{args.cube}: cloud pass over {n} patch(es) in {time.perf_counter() - start:.1f} s "
          f"({', '.join(args.detectors)})")


def _stats_options(p: argparse.ArgumentParser) -> None:
    from cube.analysis.stats import GROUP_KEYS
    from cube.clouds.detectors import DETECTORS

    p.description = ("Coverage statistics from the cube's stored cloud masks: images, mean coverage and the "
                     "shares of clear (coverage <= 1%) and cloudy (>= 50%) images per group.")
    p.epilog = "example: crts stats cube.zarr --by region,month --detector s2cloudless_mask --plot coverage.png"
    _add_cube(p, "a cube with a cloud pass (a path or URL)")
    p.add_argument("--by", type=_comma_list, default=["region", "split"], metavar="KEYS",
                   help=f"comma-separated groups from {','.join(GROUP_KEYS)} (default: region,split)")
    p.add_argument("--detector", choices=DETECTORS, default=None,
                   help="one detector (default: every detector of the cloud pass, as a group)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output (default: table)")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="also write coverage histogram, coverage by month and region, clear share by split")
    p.add_argument("--truth", action="store_true",
                   help="for a cube of synthetic data: precision, recall and IoU of each detector vs the truth")
    p.set_defaults(handler=_run_stats)


def _run_stats(args: argparse.Namespace) -> None:
    from cube.analysis.plots import plot_coverage
    from cube.analysis.stats import coverage_index, coverage_table
    from cube.store.store import open_cube
    from cube.synth.scores import score_detectors

    ds = open_cube(args.cube, storage_options=dict(args.storage_options))
    index = coverage_index(ds, args.detector)
    table = coverage_table(index, args.by)
    if args.format == "csv":
        print(table.to_csv(), end="")
    elif args.format == "json":
        print(table.reset_index().to_json(orient="records", indent=2))
    else:
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    if args.plot:
        print(f"plot: {plot_coverage(index, args.detector, out=args.plot)}", file=sys.stderr)
    if args.truth:
        scores = score_detectors(ds)
        print("\nagainst the synthetic ground truth:")
        print(scores.to_string(float_format=lambda v: f"{v:.3f}"))


_TRAIN_HELP = {
    "out": "run folder for checkpoints and logs", "model": "the model kind",
    "region": "region of the train/val splits",
    "cloud_masks": "detector whose coverage chooses inputs and target", "n_input_samples": "input time steps",
    "min_cov": "lowest input coverage", "max_cov": "highest input coverage", "crop": "random crop size in px",
    "batch_size": "samples per batch (per process under torchrun; a step takes --accumulate batches)",
    "lr": "Adam learning rate",
    "beta1": "Adam beta1", "epochs": "epochs at the initial rate", "epochs_decay": "epochs of linear decay to 0",
    "loss": "l1, l2 or MGNLL (Gaussian NLL with the predicted variances)",
    "sampler": "fixed (the paper's rule) or random (UnCRtainTS's, redrawn every epoch) for the train split",
    "max_steps": "stop after this many steps", "checkpoint_every": "steps between checkpoints",
    "features": "ResNet width F", "blocks": "residual blocks B of the encoder", "seed": "random seed",
    "width": "channel width (UnCRtainTS's)", "n_head": "L-TAE attention heads", "d_model": "L-TAE width",
    "scale_by": "internal value scale (the published UnCRtainTS runs: 10)",
    "device": "auto (CUDA when available), cpu, cuda, cuda:1, ...", "amp": "bfloat16 autocast on CUDA",
    "num_workers": "DataLoader worker processes; unset: 0 on a CPU, min(6, cores - 1) on CUDA",
    "compile": "compile the model with torch.compile",
    "accumulate": "batches per optimizer step (gradient accumulation, for small GPUs)",
    "log_every": "steps between log lines (the loss is read from the device only then)",
    "init_encoder": "initialise the encoder from the original's baseline_resnet.pth",
    "freeze_encoder_steps": "keep the encoder frozen for this many steps (the original: 100000)",
}


def _value_type(hint: object) -> type:
    """The type of an option's values from a setting's type hint (``int | None`` -> ``int``)."""
    return next((t for t in typing.get_args(hint) if t is not type(None)), hint)


def _train_options(p: argparse.ArgumentParser) -> None:
    from dataclasses import fields

    from crts.data.sampling import SAMPLERS
    from crts.settings import LOSSES, RECIPES, TrainConfig
    from cube.clouds.detectors import DETECTORS

    kinds = "; ".join(f"{name}: {r.summary}" for name, r in RECIPES.items())
    p.description = (f"Train a model ({kinds}; each with its original's recipe unless told otherwise) on the "
                     "cube's train split, validating on the val split every epoch. Logs: RUN_DIR/log.csv and "
                     "RUN_DIR/tensorboard; checkpoints: RUN_DIR/last.pt. Multi-GPU / multi-node: run it under "
                     "torchrun.")
    p.epilog = "example: torchrun --nproc_per_node 4 -m crts train cube.zarr --out runs/a --batch-size 8"
    choices = {"region": REGIONS, "cloud_masks": DETECTORS, "model": tuple(RECIPES), "loss": LOSSES,
               "sampler": SAMPLERS}
    _add_cube(p, "the cube, a path or URL (required unless --config gives it or a run to resume)",
              also_as_option=True)
    p.add_argument("--config", metavar="FILE", help="JSON file of settings; options given here override it")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        if f.name == "cube":
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = _value_type(hints[f.name])
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=_TRAIN_HELP[f.name])
        else:
            by_model = {name: r.defaults[f.name] for name, r in RECIPES.items() if f.name in r.defaults}
            default = ", ".join(f"{name} {value}" for name, value in by_model.items()) if by_model else f.default
            p.add_argument(flag, type=kind, default=None, choices=choices.get(f.name),
                           help=f"{_TRAIN_HELP[f.name]} (default: {default})")
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> None:
    from dataclasses import fields

    from crts.settings import TrainConfig

    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != "cube"}
    run_config = Path(args.out or TrainConfig.out) / "config.json"
    base = args.config or (run_config if args.resume and run_config.is_file() else None)  # resume: the run's own
    cube = _cube(args, required=not base)
    if base:
        config = TrainConfig.from_json(base, cube=cube, **overrides)
    else:
        config = TrainConfig(cube=cube, **{k: v for k, v in overrides.items() if v is not None})
    config.resolved()  # every number checked before torch is imported
    args.run_folder = Path(config.out)  # what an interrupt reports on (INTERRUPTED)
    from crts.train import last_validation, train

    run = train(config, resume=args.resume, storage_options=dict(args.storage_options))
    print(f"run: {run} (checkpoint {run / 'last.pt'}, log {run / 'log.csv'})")
    scores = last_validation(run)
    print("validation: none yet (the run stopped before its first epoch ended)" if scores is None else
          f"validation at step {scores['step']}: L1 {scores['val_l1']:.4f} (model scale), least-cloudy baseline "
          f"{scores['val_l1_least_cloudy']:.4f} on the same windows")


def _evaluate_options(p: argparse.ArgumentParser) -> None:
    from crts.settings import BASELINE_NAMES
    from cube.clouds.detectors import DETECTORS

    p.description = ("Predict every sample of a split with a checkpoint of `crts train` or a baseline, score it with "
                     "the paper's metrics and write predictions and per-sample metrics into CUBE/runs/NAME (the "
                     "cube's own variables are never modified; a run appears only when complete).")
    p.epilog = "example: crts evaluate cube.zarr --checkpoint runs/a/last.pt --split test --run resnet_a"
    _add_cube(p, "the cube (a path or URL)", also_as_option=True)
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="a checkpoint written by crts train")
    model.add_argument("--baseline", choices=sorted(BASELINE_NAMES), help="a baseline instead of a model")
    p.add_argument("--split", choices=SPLITS, default="test", help="split to predict (default: test)")
    p.add_argument("--region", choices=REGIONS, default="all", help="region (default: all)")
    p.add_argument("--cloud-masks", choices=DETECTORS, default="s2cloudless_mask",
                   help="detector for choosing inputs/target and for the cloudy/clear metrics "
                        "(default: s2cloudless_mask)")
    p.add_argument("--n-input-samples", type=int, default=None, help="default: the checkpoint's, or 3")
    p.add_argument("--min-cov", type=float, default=0.0,
                   help="lowest input coverage (default: 0.0, as the original: the target may be an input)")
    p.add_argument("--max-cov", type=float, default=1.0, help="highest input coverage (default: 1.0)")
    p.add_argument("--import-index", metavar="FILE", help="index file (.npy as published, or .json) to use")
    p.add_argument("--batch-size", type=int, default=4, help="windows per batch (default: 4)")
    p.add_argument("--window", type=int, metavar="PX",
                   help="predict windows of PX x PX pixels and blend them into whole patches (default: whole patches)")
    p.add_argument("--overlap", type=int, default=0, metavar="PX",
                   help="overlap of neighbouring windows in pixels, blended without seams (default: 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, ... (default: auto)")
    p.add_argument("--run", required=True, help="name of the run in the cube")
    p.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> None:
    from crts.evaluate import evaluate
    from cube.store.runs import open_run

    _cube(args)
    path = evaluate(args.cube, args.run, checkpoint=args.checkpoint, baseline=args.baseline, split=args.split,
                    region=args.region, cloud_masks=args.cloud_masks, n_input_samples=args.n_input_samples,
                    min_cov=args.min_cov, max_cov=args.max_cov, import_index=args.import_index,
                    batch_size=args.batch_size, window=args.window, overlap=args.overlap, device=args.device,
                    storage_options=dict(args.storage_options))
    ds = open_run(args.cube, args.run, storage_options=dict(args.storage_options))
    means = ", ".join(f"{m} {float(ds[m].mean()):.4f}" for m in ("rmse", "mae", "psnr", "sam", "ssim"))
    if "uce" in ds:  # a model that predicts variances
        means += f", UCE {float(ds.uce):.4f}, AUCE {float(ds.auce):.4f}"
    print(f"run {args.run}: {ds.sizes['sample']} samples -> {path}; {means}")


def _report_options(p: argparse.ArgumentParser) -> None:
    p.description = ("Tables of every metric by run, overall, by region and by input-coverage bin (report.md and "
                     "CSV), and figures: true-colour inputs, target and predictions with error maps, and RMSE "
                     "against input coverage.")
    p.epilog = "example: crts report cube.zarr --runs resnet_a,least_cloudy,mosaic --out report/"
    _add_cube(p, "the cube holding the runs (a path or URL)")
    p.add_argument("--runs", type=_comma_list, default=None, help="comma-separated runs (default: all)")
    p.add_argument("--out", default="report", help="output folder (default: report)")
    p.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> None:
    import pandas as pd

    from crts.report import markdown_table, write_report

    path = write_report(args.cube, args.out, args.runs, storage_options=dict(args.storage_options))
    print(f"overall, mean per run:\n{markdown_table(pd.read_csv(path.parent / 'overall.csv', index_col='run'))}")
    print(f"\nreport: {path} (tables as CSV and figures beside it)")


def _runs_options(p: argparse.ArgumentParser) -> None:
    p.description = ("List the published evaluation runs of CUBE (name, samples, mean RMSE, when published). "
                     "With --prune, delete run versions that were never published or were replaced, whose writer "
                     "process has ended on this machine (or, with --older-than, that are older than that).")
    p.epilog = "example: crts runs cube.zarr --prune"
    _add_cube(p, "the cube holding the runs (a path or URL)")
    p.add_argument("--prune", action="store_true", help="delete leftovers of interrupted or replaced runs")
    p.add_argument("--older-than", type=float, default=None, metavar="HOURS",
                   help="with --prune: also delete leftovers written on other machines older than HOURS h")
    p.set_defaults(handler=_run_runs)


def _run_runs(args: argparse.Namespace) -> None:
    from tabulate import tabulate

    from cube.store.runs import list_runs, open_run, prune_runs
    from cube.store.store import CubeStore

    if args.older_than is not None and not args.prune:
        raise ValueError("--older-than applies to --prune")
    store = CubeStore(args.cube, storage_options=dict(args.storage_options))
    if args.prune:
        for path in prune_runs(store, args.older_than):
            print(f"deleted {path}")
    rows = []
    for name in list_runs(store):
        run = open_run(store, name)
        rows.append({"run": name, "samples": run.sizes["sample"], "RMSE (mean)": float(run.rmse.mean()),
                     "split": run.attrs.get("split"), "model": run.attrs.get("baseline") or "checkpoint",
                     "created (UTC)": run.attrs.get("created")})
    print(tabulate(rows, headers="keys", floatfmt=".4f") if rows else f"{args.cube}: no runs")


def _index_options(p: argparse.ArgumentParser) -> None:
    p.description = ("Write the GeoParquet index of CUBE's patches (one row each: footprint in WGS84 as the geometry "
                     "and in its UTM zone, ROI, patch, split, region, S2 dates, mean coverage per detector) into the "
                     "cube (where the cloud pass writes it too) or to FILE, for geopandas or QGIS.")
    p.epilog = "example: crts index cube.zarr --out patches.parquet"
    _add_cube(p, "a cube with a cloud pass (a path or URL)")
    p.add_argument("--out", metavar="FILE", default=None, help="a local file to write (default: into the cube)")
    _add_force_unlock(p)
    p.set_defaults(handler=_run_index)


def _run_index(args: argparse.Namespace) -> None:
    from cube.store.index import write_index

    start = time.perf_counter()
    where = write_index(args.cube, args.out, storage_options=dict(args.storage_options),
                        force_unlock=args.force_unlock)
    print(f"patch index: {where} ({time.perf_counter() - start:.1f} s)")


def _upgrade_options(p: argparse.ArgumentParser) -> None:
    p.description = ("Bring CUBE, written by an older version of this package, up to the current schema in place: "
                     "only small arrays and metadata are rewritten (seconds, also for a terabyte cube), never an image. "
                     "Safe to interrupt (kill -9 included): run it again to finish. A current cube is left alone.")
    p.epilog = "example: crts upgrade cube.zarr"
    _add_cube(p, "the cube (a path or URL)")
    _add_force_unlock(p)
    p.set_defaults(handler=_run_upgrade)


def _run_upgrade(args: argparse.Namespace) -> None:
    from cube.store.schema import SCHEMA_VERSION
    from cube.store.upgrade import upgrade

    start = time.perf_counter()
    rewritten = upgrade(args.cube, storage_options=dict(args.storage_options), force_unlock=args.force_unlock)
    print(f"{args.cube}: " + (f"upgraded to schema version {SCHEMA_VERSION}, rewrote {', '.join(rewritten)} "
                              f"({time.perf_counter() - start:.1f} s)" if rewritten else
                              f"schema version {SCHEMA_VERSION}, up to date: nothing to do"))


def _info_options(p: argparse.ArgumentParser) -> None:
    p.description = ("A summary of CUBE: patches by split and region, time steps, the range of S2 dates, missing "
                     "images (gaps), the detectors of the cloud pass with their mean coverage, the evaluation runs "
                     "and the size on disk (of a local cube; n/a for a URL).")
    p.epilog = "example: crts info cube.zarr"
    _add_cube(p, "the cube (a path or URL)")
    p.set_defaults(handler=_run_info)


def _run_info(args: argparse.Namespace) -> None:
    from cube.analysis.overview import format_summary, summary
    from cube.store.store import CubeStore, open_cube

    options = dict(args.storage_options)
    print(format_summary(summary(open_cube(args.cube, storage_options=options),
                                 CubeStore(args.cube, storage_options=options)), args.cube))


def _verify_options(p: argparse.ArgumentParser) -> None:
    p.description = ("Check every shard of CUBE's images and masks as the loader reads it: each shard's index against "
                     "the object's size and its checksum, then every chunk read and decoded. Lists each damaged shard "
                     "with the patches it holds (one line each) and how to get them back, exit status 2; an intact "
                     "cube passes silently (a progress bar on a terminal).")
    p.epilog = "example: crts verify cube.zarr --split test --region europa"
    _add_cube(p, "the cube (a path or URL)")
    p.add_argument("--patches", type=_comma_list, default=None, metavar="LIST",
                   help="comma-separated ROIs or patches, e.g. ROIs1868/17,ROIs2017/63/12 (default: all)")
    p.add_argument("--split", choices=SPLITS, default=None, help="official split (default: all)")
    p.add_argument("--region", choices=REGIONS, default=None, help="region (default: all)")
    p.set_defaults(handler=_run_verify)


def _run_verify(args: argparse.Namespace) -> None:
    from cube.dataset.problems import FileProblem
    from cube.store.integrity import verify

    report = verify(args.cube, patches=args.patches, split=args.split, region=args.region,
                    storage_options=dict(args.storage_options), progress=sys.stderr.isatty())
    for damaged in report.damaged:
        print(damaged)
    if report.damaged:
        raise FileProblem(args.cube, f"{len(report.damaged)} of {report.shards} shard(s) damaged; "
                                     f"{report.repair_hint()}")


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "synth": ("write a synthetic data set in the real on-disk layout",
             _synth_options),
    "download": ("download the published archives (resumable, checked), converting them as they complete",
                _download_options),
    "convert": ("convert a GeoTIFF tree or its archives into a Zarr cube (resumable, incremental, parallel)",
               _convert_options),
    "clouds": ("compute cloud/shadow masks and coverage of every S2 image into a cube",
              _clouds_options),
    "info": ("what a cube holds: patches, dates, cloud pass, runs, size",
            _info_options),
    "stats": ("cloud-coverage statistics of a cube: tables and plots",
             _stats_options),
    "train": ("train a cloud-removal model on cube batches (resumable; DDP under torchrun)",
             _train_options),
    "evaluate": ("predict a split with a model or baseline and write predictions and metrics into the cube",
                _evaluate_options),
    "report": ("metric tables and figures of evaluation runs",
              _report_options),
    "index": ("write the GeoParquet index of a cube's patches (footprints, labels, dates, coverage)",
             _index_options),
    "runs": ("list the evaluation runs of a cube, or clean up what interrupted runs left",
            _runs_options),
    "upgrade": ("bring a cube written by an older version up to the current schema, in place",
                _upgrade_options),
    "verify": ("check every shard of a cube's images: name the damaged ones and the patches they hold",
               _verify_options),
}
"""Every sub-command: its one-line help (``crts --help`` lists them) and what adds its options."""


class _MarkdownHelpAction(argparse.Action):
    """``--help-markdown`` (hidden): print :func:`reference_markdown` and exit, like ``--help``."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        print(reference_markdown(), end="")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, with the closest valid choice or option suggested."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}{_suggestion(self, message)} (see {self.prog} --help)\n")


def _suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    """``; did you mean 'X'?`` for a mistyped choice or option of ``parser``'s error ``message`` ('' if none)."""
    if choice := re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message):
        candidates = re.findall(r"'([^']*)'", choice.group(2))
        typed = choice.group(1)
    elif unknown := re.search(r"unrecognized arguments: (\S+)", message):
        candidates = [o for a in parser._actions for o in a.option_strings]
        typed = unknown.group(1).split("=")[0]
    else:
        return ""
    close = difflib.get_close_matches(typed, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``crts``.

    Parameters
    ----------
    commands : collection of str, optional
        Sub-commands to give their options (default: all). The others are only
        listed, so that ``crts --help`` and ``crts info`` do not import what the
        options of ``crts train`` need (torch).
    """
    parser = _Parser(
        prog="crts", description="SEN12MS-CR-TS as a Zarr data cube: synthesise, convert, train, evaluate.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--help-markdown", action=_MarkdownHelpAction, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (summary, add_options) in COMMANDS.items():
        command = sub.add_parser(name, help=summary)
        if commands is None or name in commands:
            add_options(command)
    return parser


HELP_WIDTH = 100
"""Terminal width the reference is laid out for, whatever the real terminal's width."""


class _FixedWidthFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=HELP_WIDTH)


def sub_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-command parsers of ``parser`` by name, in the order of ``--help``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def reference_markdown() -> str:
    """The command reference ``docs/cli.md``: ``crts --help`` and every ``crts <cmd> --help`` as Markdown.

    Help is laid out for a terminal of :data:`HELP_WIDTH` columns, so the text
    does not depend on where it is generated. Regenerate the file with
    ``crts --help-markdown > docs/cli.md``.

    Returns
    -------
    str
        Markdown: a heading and a code block per command.
    """
    parser = build_parser()
    commands = sub_parsers(parser)
    lines = ["# `crts` command reference", "",
             "<!-- Generated from the argparse parsers in crts/cli.py by `crts --help-markdown > docs/cli.md`;",
             "     do not edit by hand (tests/crts/test_cli.py fails when this file is stale). -->", "",
             "The output of `crts --help` and of `--help` for every sub-command: "
             + ", ".join(f"[`{name}`](#crts-{name})" for name in commands) + ".", ""]
    for title, command in [("crts", parser), *((f"crts {name}", p) for name, p in commands.items())]:
        command.formatter_class = _FixedWidthFormatter
        lines += [f"## `{title}`", "", "```text", f"$ {title} --help", command.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


USER_ERRNOS = REFUSING_ERRNOS | PATH_ERRNOS
"""OS errors that a command's paths or the file system cause, not the program: reported like bad input (EPERM of
an immutable folder, EACCES, EROFS, ENOSPC, EDQUOT, ENAMETOOLONG, EIO, ENOTDIR, EISDIR)."""
OUTPUTS = ("out", "dest", "archives", "cube")
"""Options naming what a command writes, in the order :func:`main` names one for an OS error that names no file."""


INTERRUPTED = {
    "synth": "the data set is unfinished: write it again with --overwrite",
    "download": "the complete archives and the .part of the one being downloaded are kept (and the cube as "
                "converted so far): run the same command to resume",
    "convert": "the patches converted so far are kept: run the same command with --resume to finish",
    "clouds": "the masks computed so far are kept: run the same command with --resume to finish",
    "train": "the run's last checkpoint is kept: run the same command with --resume to continue",
    "train without a checkpoint": "no checkpoint was written yet, nothing to resume: run the same command again "
                                  "(without --resume) to start the run over",
    "evaluate": "no run was published; the cube is as it was",
    "report": "the report is unfinished: write it again",
    "upgrade": "the upgrade is unfinished and the cube unreadable until it is done: run the same command again",
}
"""What a sub-command stopped by Ctrl-C leaves, and how to go on (the others change nothing); ``crts train``
stopped before its run has a checkpoint (its first ``--checkpoint-every`` steps) says the second train entry."""


def _interrupted(args: argparse.Namespace) -> str:
    """What the sub-command of ``args`` left when Ctrl-C stopped it (:data:`INTERRUPTED`)."""
    run = getattr(args, "run_folder", None)  # set by _run_train once the run's folder is known
    if args.command == "train" and not (run and (run / "last.pt").is_file()):
        return INTERRUPTED["train without a checkpoint"]
    return INTERRUPTED.get(args.command, "nothing was changed")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crts``; bad input, and file systems that refuse a path (see :data:`USER_ERRNOS`), end with a
    one-line error and exit status 2; Ctrl-C with one line saying what was kept, exit status 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    named = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser([named] if named in COMMANDS else ())
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the sub-command's parser, which can suggest one of its options
        sub_parsers(parser)[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning(args.command)
        try:
            args.handler(args)
        except KeyboardInterrupt:
            print(f"crts {args.command}: interrupted: {_interrupted(args)}", file=sys.stderr)
            return 130
        except Exception as err:
            output = next((getattr(args, name) for name in OUTPUTS if getattr(args, name, None)), "the output")
            message = _user_error(err, getattr(args, "cube", None) or "the cube", output)
            if message is None and (os.environ.get(DEBUG_VARIABLE) or not isinstance(err, UNCHECKED)):
                raise
            message = message or _unchecked(err)
            print(f"crts {args.command}: error: {message}", file=sys.stderr)
            return 2
    return 0


def _one_line_warning(command: str) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints ``crts COMMAND: warning: <message>`` (no source line)."""
    def show(message: Warning | str, *args: object, **kwargs: object) -> None:
        print(f"crts {command}: warning: {message}", file=sys.stderr)
    return show


UNCHECKED = (TypeError, LookupError, AttributeError)
"""Errors that an input of an unexpected type or content raises where no check named it first: one line too."""
DEBUG_VARIABLE = "CRTS_DEBUG"
"""Set (to anything) in the environment, faults other than bad input end with their traceback."""


def _unchecked(err: Exception) -> str:
    """One line for an unchecked error, e.g. ``KeyError 'x'`` from a file of unexpected content.

    Examples
    --------
    >>> _unchecked(KeyError("band"))
    "an input of unexpected content or type (KeyError: 'band'); set CRTS_DEBUG=1 for the traceback"
    """
    detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return f"an input of unexpected content or type ({detail.splitlines()[0][:300]}); set {DEBUG_VARIABLE}=1 for " \
           "the traceback"


def _user_error(err: Exception, location: str, output: str = "the output") -> str | None:
    """The one-line message of an error that bad input, a refusing file system or the object store caused;
    None for a fault of the program (it propagates as a traceback). ``location``: the cube, for the object store's
    errors; ``output``: what the command writes, named for an OS error that names no file (a full disk's write)."""
    if isinstance(err, OSError) and err.errno in USER_ERRNOS:
        return _message(err) if err.filename is not None else f"{output}: {err.strerror or os.strerror(err.errno)}"
    if isinstance(err, ValueError | FileExistsError | FileNotFoundError):
        return _message(err)  # (before cube.store.store is imported: an argument refused before the work began)
    from cube.store.store import IncompleteCubeError, StorageError, WriterLockedError, storage_error

    if isinstance(err, IncompleteCubeError | WriterLockedError | StorageError):
        return _message(err)
    translated = storage_error(err, location)  # an object store's failure deep inside zarr or xarray
    return None if translated is None else str(translated)


def _message(err: Exception) -> str:
    """The message; an OS error's as ``<file>: <reason>`` (``<reason>`` alone where it names no file)."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename is not None else err.strerror
    return str(err)


if __name__ == "__main__":
    sys.exit(main())
