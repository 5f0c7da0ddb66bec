"""The commands that make or bring in data: ``crts synth``, ``crts download``, ``crts convert`` and
``crts clouds``."""

from __future__ import annotations

import argparse
import time
import typing

from .options import (
    add_cube,
    add_detectors,
    add_force_unlock,
    add_split_and_region,
    add_storage_options,
    add_workers,
    add_workers_or_scheduler,
    comma_list,
    detectors_of,
)

if typing.TYPE_CHECKING:
    from cube.ingest.options import ConversionOptions


def synth_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts synth``."""
    from cube.synth import DEFAULT_ROIS, LAYOUTS

    p.description = (
        "Write a realistic synthetic SEN12MS-CR-TS (or SEN12MS-CR) tree with the exact folder "
        "and file names of the real data set, plus ground truth (cloud and shadow masks, "
        "cloud-free images, land cover) in OUT/ground_truth."
    )
    p.epilog = "example: crts synth data/synthetic --rois ROIs1868/17,ROIs2017/63 --patches-per-roi 4"
    p.add_argument(
        "out",
        metavar="OUT",
        nargs="?",
        default=None,
        help="data set root to create (must be empty or absent); optional with --archives",
    )
    p.add_argument(
        "--archives",
        metavar="DIR",
        default=None,
        help="also (or, without OUT, only) write the set as the published .tar.gz archives into DIR, "
        "with its ground truth",
    )
    p.add_argument(
        "--shuffle-members",
        action="store_true",
        help="with --archives: members in a random order instead of a walk of the tree",
    )
    p.add_argument(
        "--rois",
        type=comma_list,
        default=list(DEFAULT_ROIS),
        metavar="ROIS",
        help=f"comma-separated ROIs (default: {','.join(DEFAULT_ROIS)})",
    )
    p.add_argument("--patches-per-roi", type=int, default=2, metavar="N", help="patches per ROI (default: 2)")
    p.add_argument("--size", type=int, default=256, help="patch width in pixels (default: 256)")
    p.add_argument("--times", type=int, default=30, help="time steps per patch, 1-30 (default: 30)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="sen12mscrts",
        help="multi-temporal SEN12MS-CR-TS or mono-temporal SEN12MS-CR (default: sen12mscrts)",
    )
    add_workers(p, "processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace a synthetic data set already at OUT")
    p.add_argument(
        "--preview",
        metavar="PNG",
        default=None,
        help="also draw the first patch's time series next to its ground truth into PNG",
    )
    p.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> None:
    from cube.synth import make_dataset
    from cube.synth.archives import make_archived_dataset, write_archives
    from cube.synth.preview import plot_patch

    if args.preview and args.layout != "sen12mscrts":
        raise ValueError("--preview draws time series: it needs --layout sen12mscrts")
    if not (args.out or args.archives):
        raise ValueError("give OUT (a tree), --archives DIR, or both")
    if args.preview and not args.out:
        raise ValueError("--preview draws from the tree: give OUT too")
    start = time.perf_counter()
    options = {
        "patches_per_roi": args.patches_per_roi,
        "size": args.size,
        "times": args.times,
        "seed": args.seed,
        "layout": args.layout,
        "workers": args.workers,
    }
    if args.out:
        root = make_dataset(args.out, args.rois, overwrite=args.overwrite, **options)
        print(
            f"wrote {args.layout} data set with {len(args.rois)} ROIs to {root} "
            f"in {time.perf_counter() - start:.1f} s (ground truth in {root / 'ground_truth'})"
        )
    if args.archives and args.out:
        archives = write_archives(root, args.archives, shuffle=args.shuffle_members, seed=args.seed)
    elif args.archives:
        archives = make_archived_dataset(
            args.archives, args.rois, overwrite=args.overwrite, shuffle=args.shuffle_members, **options
        )
    if args.archives:
        size = sum(a.stat().st_size for a in archives)
        print(
            f"wrote {len(archives)} archives ({size / 1e6:.1f} MB) to {args.archives} "
            f"in {time.perf_counter() - start:.1f} s"
        )
    if args.preview:
        print(f"preview of the first patch: {plot_patch(root, out=args.preview)}")


def convert_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts convert``."""
    from cube.clouds.detectors import DETECTORS
    from cube.ingest.options import ON_ERROR
    from cube.store.schema import TILE_PX, WINDOW_TILE_PX

    p.description = (
        "Convert a SEN12MS-CR-TS (or SEN12MS-CR) GeoTIFF tree, or its published .tar.gz archives "
        "without extracting them, into one labelled, lossless Zarr v3 cube. Every file is checked; an "
        "existing complete cube gets new ROIs appended."
    )
    p.epilog = (
        "examples: crts convert /data/SEN12MSCRTS cube.zarr --split test --workers 8 --report report.json; "
        "crts convert /data/archives cube.zarr --scratch /fast/scratch"
    )
    p.add_argument(
        "src",
        metavar="SRC",
        nargs="+",
        help="data set root (holding ROIs1158/ ... ROIs2017/); or a folder of the published archives, "
        "archives, http(s):// URLs of archives, or several of these and trees",
    )
    add_cube(p, "the Zarr cube to create or extend: a path or an s3:// / gs:// URL")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--rois", type=comma_list, default=None, help="comma-separated ROIs, e.g. ROIs1868/17")
    add_split_and_region(p, which)
    add_workers_or_scheduler(p, "address of a running dask.distributed scheduler (e.g. tcp://host:8786)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted conversion into CUBE")
    p.add_argument(
        "--on-error",
        choices=ON_ERROR,
        default="fail",
        help="fail: stop at the first bad file (default); skip: convert the rest, record the gaps",
    )
    p.add_argument("--report", metavar="FILE", default=None, help="write a JSON report of the conversion")
    add_detectors(p, f"cloud pass after the conversion (default: {','.join(DETECTORS)}); 'none' skips it")
    p.add_argument(
        "--tile",
        type=int,
        default=TILE_PX,
        metavar="PX",
        help=f"edge of the images' inner chunks in a new cube, in px (default: {TILE_PX}, one chunk per "
        f"image; {WINDOW_TILE_PX} for a cube read mostly as {WINDOW_TILE_PX} px training crops: "
        "4.6x faster windows, but plain xr.open_zarr gets 16x the dask chunks; it must divide the "
        "patch size; an existing cube keeps its chunking)",
    )
    p.add_argument(
        "--scratch",
        metavar="DIR",
        default=None,
        help="archives: folder for members waiting for the rest of their patch (default: CUBE.scratch "
        "beside a local cube); about one ROI of S1 and S2 per group read at once for archives written "
        "by walking the tree",
    )
    p.add_argument(
        "--times",
        type=int,
        default=None,
        metavar="N",
        help="archives: time steps of every patch (default: the cube's, or 30 for a new cube)",
    )
    p.add_argument(
        "--groups-at-once",
        type=int,
        default=None,
        metavar="N",
        help="archives: groups of archives (S1 and S2 of one region) read at once (default: one per 6 "
        "workers, or with --scheduler per 6 cores of this machine, which decompresses them); each adds "
        "its own scratch",
    )
    add_force_unlock(p)
    p.set_defaults(handler=_run_convert)


def _run_convert(args: argparse.Namespace) -> None:
    from cube.ingest.conversion import convert_with
    from cube.ingest.options import ConversionOptions

    if args.region and args.rois:
        raise ValueError("--region selects with --split, not with --rois")
    options = ConversionOptions(
        rois=args.rois,
        split=args.split,
        region=args.region,
        workers=args.workers,
        scheduler=args.scheduler,
        resume=args.resume,
        on_error=args.on_error,
        report=args.report,
        clouds=detectors_of(args.detectors),
        force_unlock=args.force_unlock,
        storage_options=dict(args.storage_options),
        tile=args.tile,
        scratch=args.scratch,
        times=args.times,
        groups_at_once=args.groups_at_once,
    )
    report = convert_with(args.src, args.cube, options)
    print(
        f"{args.cube}: {report.patches_in_cube} patches ({report.patches_added} added, "
        f"{report.patches_converted} converted, {report.cloud_pass_patches} through the cloud pass) "
        f"in {report.seconds:.1f} s; {report.gaps} gap(s)"
    )
    for problem in report.problems[:10]:
        print(f"  skipped {problem['path']}: {problem['message']}")
    if len(report.problems) > 10:
        print(f"  ... and {len(report.problems) - 10} more problems")
    if report.archives_read:
        print(
            f"read {len(report.archives_read)} archive(s) without extracting them; scratch peak "
            f"{report.scratch_peak_bytes / 1e6:.1f} MB"
        )
    if args.report:
        print(f"report: {args.report}")


def download_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts download``."""
    from cube.ingest.download import DOWNLOAD_SPLITS, TS_REGIONS

    p.description = (
        "Download the published archives, with the choices of the toolbox's util/dl_data.sh as flags: "
        "resumable (a .part file is continued with a Range request), each archive checked against the "
        "server's size, a progress bar in bytes. With --convert, each group of archives (S1 and S2 of "
        "a region and split; a SEN12MS-CR season) is converted into CUBE as soon as it is complete."
    )
    p.epilog = (
        "examples: crts download /data/archives --regions africa,europa --dry-run; "
        "crts download /data/archives --convert /data/sen12mscrts.zarr --delete-archives --workers 16"
    )
    p.add_argument("dest", metavar="DEST", help="folder for the archives (created if absent)")
    p.add_argument(
        "--regions",
        type=comma_list,
        default=["all"],
        metavar="LIST",
        help=f"SEN12MS-CR-TS regions, comma-separated from {','.join(TS_REGIONS)} (default: all); "
        "none: no SEN12MS-CR-TS",
    )
    p.add_argument(
        "--split",
        choices=DOWNLOAD_SPLITS,
        default="all",
        help="SEN12MS-CR-TS collection: train (holds val too) or test (default: all)",
    )
    p.add_argument(
        "--sen12mscr", action="store_true", help="also the mono-temporal SEN12MS-CR archives (all four seasons)"
    )
    p.add_argument("--no-s1", dest="s1", action="store_false", help="leave out the Sentinel-1 archives")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the archives, their approximate sizes, what DEST has of them and their URLs; download nothing",
    )
    p.add_argument(
        "--base-url",
        metavar="URL",
        default=None,
        help="a server holding the archives under their names (URL/s1_africa.tar.gz ...), instead of mediaTUM",
    )
    p.add_argument(
        "--convert",
        metavar="CUBE",
        dest="cube",
        default=None,
        help="convert each group of archives into CUBE once its archives are complete (a path or URL); "
        "the options 'with --convert' below apply",
    )
    p.add_argument(
        "--delete-archives",
        action="store_true",
        help="with --convert: delete each group's archives once converted (peak disk: the cube plus "
        "one group's archives)",
    )
    add_workers(p, "with --convert: local worker processes (default: all cores)")
    p.add_argument(
        "--times",
        type=int,
        default=None,
        metavar="N",
        help="with --convert: time steps of every patch (default: the cube's, or 30 for a new cube)",
    )
    p.add_argument(
        "--scratch",
        metavar="DIR",
        default=None,
        help="with --convert: the conversion's scratch folder (default: CUBE.scratch)",
    )
    add_detectors(p, "with --convert: the cloud pass after each group (default: all); 'none' skips it")
    add_storage_options(p)
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
    report = download(
        archives,
        args.dest,
        cube=args.cube,
        delete_archives=args.delete_archives,
        convert_options=_download_conversion(args),
    )
    print(
        f"{args.dest}: {len(report.downloaded)} archive(s) downloaded ({report.bytes_fetched / 1e6:.1f} MB), "
        f"{len(report.present)} there already, in {time.perf_counter() - start:.1f} s"
        + (
            f"; {len(report.converted)} group(s) converted into {args.cube}, {len(report.in_cube)} in it already, "
            f"{len(report.deleted)} archive(s) deleted"
            if args.cube
            else ""
        )
    )


def _download_conversion(args: argparse.Namespace) -> ConversionOptions | None:
    """The options of ``crts download --convert``'s conversions; None without ``--convert``."""
    if not args.cube:
        return None
    from cube.ingest.options import ConversionOptions

    return ConversionOptions(
        workers=args.workers,
        times=args.times,
        scratch=args.scratch,
        clouds=detectors_of(args.detectors),
        storage_options=dict(args.storage_options),
    )


def clouds_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts clouds``."""
    from cube.clouds.detectors import DETECTORS

    p.description = (
        "The cloud pass (also run by `crts convert`): s2cloudless probability, mask and map and the "
        "toolbox's cloud/shadow heuristic for every S2 image, with the toolbox's parameters, stored "
        "once in the cube with a coverage table per (patch, time, detector). Re-running is a no-op."
    )
    p.epilog = "example: crts clouds cube.zarr --detectors s2cloudless_mask --workers 8"
    add_cube(p, "a converted SEN12MS-CR-TS cube (a path or URL)")
    add_detectors(p, f"comma-separated, from {','.join(DETECTORS)} (default: all)")
    add_workers_or_scheduler(p, "a running dask.distributed scheduler")
    p.add_argument("--resume", action="store_true", help="finish an interrupted cloud pass")
    p.add_argument(
        "--device",
        default="cpu",
        metavar="DEVICE",
        help="cpu (default: the compiled forest, the kernel built at install or else at first use, else "
        "s2cloudless itself) or a torch device such as cuda for s2cloudless",
    )
    add_force_unlock(p)
    p.set_defaults(handler=_run_clouds)


def _run_clouds(args: argparse.Namespace) -> None:
    from cube.clouds.compute import compute_clouds

    start = time.perf_counter()
    predictor = None
    if args.device != "cpu":
        from crts.clouds_gpu import TorchForestPredictor

        predictor = TorchForestPredictor(args.device)
    n = compute_clouds(
        args.cube,
        tuple(args.detectors),
        workers=args.workers,
        scheduler=args.scheduler,
        resume=args.resume,
        force_unlock=args.force_unlock,
        storage_options=dict(args.storage_options),
        predictor=predictor,
    )
    print(
        f"{args.cube}: cloud pass over {n} patch(es) in {time.perf_counter() - start:.1f} s "
        f"({', '.join(args.detectors)})"
    )
