"""The commands that look after a cube: ``crts info``, ``crts stats``, ``crts index``, ``crts verify``,
``crts runs``, ``crts upgrade`` and ``crts map``."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import AbstractContextManager

from .options import add_cube, add_force_unlock, add_split_and_region, add_workers, comma_list


def info_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts info``."""
    p.description = (
        "A summary of CUBE: patches by split and region, time steps, the range of S2 dates, missing "
        "images (gaps), the detectors of the cloud pass with their mean coverage, the evaluation runs "
        "and the size on disk (of a local cube; n/a for a URL)."
    )
    p.epilog = "example: crts info cube.zarr"
    add_cube(p, "the cube (a path or URL)")
    p.set_defaults(handler=_run_info)


def _run_info(args: argparse.Namespace) -> None:
    from cube.analysis.overview import format_summary, summary
    from cube.store.store import CubeStore
    from cube.store.views import open_cube

    options = dict(args.storage_options)
    with threaded_dask():
        overview = summary(open_cube(args.cube, storage_options=options), CubeStore(args.cube, storage_options=options))
    print(format_summary(overview, args.cube))


def threaded_dask() -> AbstractContextManager:
    """dask's threaded scheduler for the block, given as its function where no other is configured.

    It is the scheduler a cube read without a cluster gets anyway; given as a
    function (a name would not do), dask no longer imports ``distributed``
    (0.15 CPU s) to look for a client first.

    Returns
    -------
    contextlib.AbstractContextManager
        ``dask.config.set``'s context: the configuration is restored on leaving it.
    """
    import dask
    import dask.threaded

    return dask.config.set(scheduler=dask.config.get("scheduler", None) or dask.threaded.get)


PERCENT_COLUMNS = {
    "mean_coverage": "mean coverage (% of pixels)",
    "clear_share": "clear (% of images)",
    "cloudy_share": "cloudy (% of images)",
}
"""The fractions of :func:`cube.analysis.stats.coverage_table` as ``crts stats`` shows them in its table, in
percent."""


def stats_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts stats``."""
    from cube.analysis.stats import GROUP_KEYS
    from cube.clouds.detectors import DETECTORS

    p.description = (
        "Coverage statistics from the cube's stored cloud masks: images, mean coverage and the "
        "shares of clear (coverage <= 1%) and cloudy (>= 50%) images per group."
    )
    p.epilog = "example: crts stats cube.zarr --by region,month --detector s2cloudless_mask --plot coverage.png"
    add_cube(p, "a cube with a cloud pass (a path or URL)")
    p.add_argument(
        "--by",
        type=comma_list,
        default=["region", "split"],
        metavar="KEYS",
        help=f"comma-separated groups from {','.join(GROUP_KEYS)} (default: region,split)",
    )
    p.add_argument(
        "--detector",
        choices=DETECTORS,
        default=None,
        help="one detector (default: every detector of the cloud pass, as a group)",
    )
    p.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="output: a table in percent, or csv/json with the coverage and shares as fractions 0-1 (default: table)",
    )
    p.add_argument(
        "--plot",
        metavar="PNG",
        default=None,
        help="also write coverage histogram, coverage by month and region, clear share by split",
    )
    p.add_argument(
        "--truth",
        action="store_true",
        help="for a cube of synthetic data: precision, recall and IoU of each detector vs the truth",
    )
    p.set_defaults(handler=_run_stats)


def _run_stats(args: argparse.Namespace) -> None:
    from cube.analysis.stats import coverage_index, coverage_table
    from cube.store.views import open_cube

    ds = open_cube(args.cube, storage_options=dict(args.storage_options))
    with threaded_dask():
        index = coverage_index(ds, args.detector)
    table = coverage_table(index, args.by)
    if args.format == "csv":
        print(table.to_csv(), end="")
    elif args.format == "json":
        print(table.reset_index().to_json(orient="records", indent=2))
    else:
        percent = table.assign(**{name: table[name] * 100 for name in PERCENT_COLUMNS}).rename(columns=PERCENT_COLUMNS)
        print(percent.to_string(float_format=lambda v: f"{v:.1f}"))
    if args.plot:
        from cube.analysis.plots import plot_coverage  # matplotlib: only for --plot

        print(f"plot: {plot_coverage(index, args.detector, out=args.plot)}", file=sys.stderr)
    if args.truth:
        from cube.synth.scores import score_detectors  # the synthetic set's module imports dask.array and rasterio

        scores = score_detectors(ds)
        print("\nagainst the synthetic ground truth:")
        print(scores.to_string(float_format=lambda v: f"{v:.3f}"))


def index_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts index``."""
    p.description = (
        "Write the GeoParquet index of CUBE's patches (one row each: footprint in WGS84 as the geometry "
        "and in its UTM zone, ROI, patch, split, region, S2 dates, mean coverage per detector) into the "
        "cube (where the cloud pass writes it too) or to FILE, for geopandas or QGIS."
    )
    p.epilog = "example: crts index cube.zarr --out patches.parquet"
    add_cube(p, "a cube with a cloud pass (a path or URL)")
    p.add_argument("--out", metavar="FILE", default=None, help="a local file to write (default: into the cube)")
    add_force_unlock(p)
    p.set_defaults(handler=_run_index)


def _run_index(args: argparse.Namespace) -> None:
    from cube.store.index import write_index

    start = time.perf_counter()
    where = write_index(args.cube, args.out, storage_options=dict(args.storage_options), force_unlock=args.force_unlock)
    print(f"patch index: {where} ({time.perf_counter() - start:.1f} s)")


def verify_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts verify``."""
    p.description = (
        "Check every shard of CUBE's images and masks as the loader reads it: each shard's index against "
        "the object's size and its checksum, then every chunk read and decoded. Lists each damaged shard "
        "with the patches it holds (one line each) and how to get them back, exit status 2; an intact "
        "cube passes silently (a progress bar on a terminal)."
    )
    p.epilog = "example: crts verify cube.zarr --split test --region europa"
    add_cube(p, "the cube (a path or URL)")
    p.add_argument(
        "--patches",
        type=comma_list,
        default=None,
        metavar="LIST",
        help="comma-separated ROIs or patches, e.g. ROIs1868/17,ROIs2017/63/12 (default: all)",
    )
    add_split_and_region(p, p)
    p.set_defaults(handler=_run_verify)


def _run_verify(args: argparse.Namespace) -> None:
    from cube.dataset.problems import FileProblem
    from cube.store.integrity import verify

    report = verify(
        args.cube,
        patches=args.patches,
        split=args.split,
        region=args.region,
        storage_options=dict(args.storage_options),
        progress=sys.stderr.isatty(),
    )
    for damaged in report.damaged:
        print(damaged)
    if report.damaged:
        raise FileProblem(
            args.cube, f"{len(report.damaged)} of {report.shards} shard(s) damaged; {report.repair_hint()}"
        )


def runs_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts runs``."""
    p.description = (
        "List the published evaluation runs of CUBE (name, samples, mean RMSE, when published). "
        "With --prune, delete run versions that were never published or were replaced, whose writer "
        "process has ended on this machine (or, with --older-than, that are older than that)."
    )
    p.epilog = "example: crts runs cube.zarr --prune"
    add_cube(p, "the cube holding the runs (a path or URL)")
    p.add_argument("--prune", action="store_true", help="delete leftovers of interrupted or replaced runs")
    p.add_argument(
        "--older-than",
        type=float,
        default=None,
        metavar="HOURS",
        help="with --prune: also delete leftovers written on other machines older than HOURS h",
    )
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
        rows.append(
            {
                "run": name,
                "samples": run.sizes["sample"],
                "RMSE (mean)": float(run.rmse.mean()),
                "split": run.attrs.get("split"),
                "model": run.attrs.get("baseline") or "checkpoint",
                "created (UTC)": run.attrs.get("created"),
            }
        )
    print(tabulate(rows, headers="keys", floatfmt=".4f") if rows else f"{args.cube}: no runs")


def upgrade_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts upgrade``."""
    p.description = (
        "Bring CUBE, written by an older version of this package, up to the current schema in place: "
        "only small arrays and metadata are rewritten (seconds, also for a terabyte cube), never an "
        "image. Safe to interrupt (kill -9 included): run it again to finish. A current cube is left "
        "alone."
    )
    p.epilog = "example: crts upgrade cube.zarr"
    add_cube(p, "the cube (a path or URL)")
    add_force_unlock(p)
    p.set_defaults(handler=_run_upgrade)


def _run_upgrade(args: argparse.Namespace) -> None:
    from cube.store.schema import SCHEMA_VERSION
    from cube.store.upgrade import upgrade

    start = time.perf_counter()
    rewritten = upgrade(args.cube, storage_options=dict(args.storage_options), force_unlock=args.force_unlock)
    print(
        f"{args.cube}: "
        + (
            f"upgraded to schema version {SCHEMA_VERSION}, rewrote {', '.join(rewritten)} "
            f"({time.perf_counter() - start:.1f} s)"
            if rewritten
            else f"schema version {SCHEMA_VERSION}, up to date: nothing to do"
        )
    )


def map_options(p: argparse.ArgumentParser) -> None:
    """The description, example and options of ``crts map``."""
    from cube.clouds.detectors import DETECTORS

    p.description = (
        "Write a page to share into DIR: a map of CUBE's patches (coloured by mean cloud coverage, clear-image "
        "share, coverage in a month, split or region, with filters) and per patch its year as a strip of "
        "thumbnails with dates, cloud %, the coverage curve and the original loader's inputs and target. It "
        "opens from disk in a browser (DIR/index.html): no server, nothing from the internet."
    )
    p.epilog = "example: crts map cube.zarr --out map"
    add_cube(p, "a cube with a cloud pass (a path or URL)")
    p.add_argument("--out", metavar="DIR", required=True, help="a new or empty folder (or a map page, rewritten)")
    p.add_argument(
        "--cloud-masks",
        choices=DETECTORS,
        default="s2cloudless_mask",
        help="detector whose masks the thumbnails contour and whose coverage picks the sample (default: %(default)s)",
    )
    p.add_argument("--n-input-samples", type=int, default=3, help="inputs of the marked sample (default: 3)")
    p.add_argument("--min-cov", type=float, default=0.0, help="lowest input coverage of the sample (default: 0.0)")
    p.add_argument("--max-cov", type=float, default=1.0, help="highest input coverage of the sample (default: 1.0)")
    p.add_argument("--no-thumbnails", action="store_true", help="strips of dates and coverage only, no images")
    add_workers(p, "local processes writing the strips (default: all cores; 1: in this process)")
    p.set_defaults(handler=_run_map)


def _run_map(args: argparse.Namespace) -> None:
    import functools

    from crts.data.sampling import check_selection, choose_steps
    from cube.explore.page import write_page

    check_selection(args.n_input_samples, args.min_cov, args.max_cov)
    start = time.perf_counter()
    pick = functools.partial(
        choose_steps, n_input_samples=args.n_input_samples, min_cov=args.min_cov, max_cov=args.max_cov
    )
    written = write_page(
        args.cube,
        args.out,
        pick=pick,
        detector=args.cloud_masks,
        thumbnails=not args.no_thumbnails,
        workers=args.workers,
        progress=sys.stderr.isatty(),
        storage_options=dict(args.storage_options),
    )
    print(
        f"map page: {args.out}/index.html ({written['patches']} patches, the sample marked on {written['marked']}; "
        f"{written['bytes'] / 2**20:.1f} MiB, {written['data_bytes'] / 2**20:.1f} MiB loaded on opening; "
        f"{time.perf_counter() - start:.1f} s)"
    )
