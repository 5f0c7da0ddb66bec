"""Options that several ``crts`` commands take, each declared once: the cube and its storage options, the writer
lock, the detectors of the cloud pass, worker processes, the split and region, and comma-separated lists."""

from __future__ import annotations

import argparse

from cube.dataset.rois import REGIONS, SPLITS

Target = argparse.ArgumentParser | argparse._ArgumentGroup
"""Where an option goes: a command's parser or one of its (mutually exclusive) groups."""


def comma_list(text: str) -> list[str]:
    """The items of a comma-separated option value, empty ones left out.

    Examples
    --------
    >>> comma_list("europa,,africa")
    ['europa', 'africa']
    """
    return [item for item in text.split(",") if item]


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as a pair; anything else is argparse's one-line error."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def add_storage_options(p: argparse.ArgumentParser) -> None:
    """``--storage-option KEY=VALUE`` (repeatable), for a cube in an object store."""
    p.add_argument(
        "--storage-option",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="storage_options",
        help="object-store option for a CUBE URL, repeatable (e.g. endpoint=http://host:9000, "
        "region=eu-central-1, anon=true); credentials default to the standard environment "
        "variables (AWS_*, GOOGLE_APPLICATION_CREDENTIALS)",
    )


def add_cube(p: argparse.ArgumentParser, help: str, *, also_as_option: bool = False) -> None:
    """CUBE as a positional argument (with ``--cube`` also accepted: the older spelling), and its storage options."""
    if also_as_option:
        p.add_argument("cube", metavar="CUBE", nargs="?", default=None, help=help)
        p.add_argument(
            "--cube",
            dest="cube_option",
            metavar="CUBE",
            default=None,
            help="the same as the positional CUBE (kept for compatibility)",
        )
    else:
        p.add_argument("cube", metavar="CUBE", help=help)
    add_storage_options(p)


def given_cube(args: argparse.Namespace, required: bool = True) -> str | None:
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


def add_force_unlock(p: argparse.ArgumentParser) -> None:
    """``--force-unlock``, for the commands that take the cube's writer lock."""
    p.add_argument(
        "--force-unlock",
        action="store_true",
        help="break the cube's writer lock left by a process that died on another machine (one that "
        "died on this machine is detected and its lock broken without this option)",
    )


def add_detectors(p: argparse.ArgumentParser, help: str) -> None:
    """``--detectors LIST``: the detectors of a cloud pass (default: all); read it with :func:`detectors_of`."""
    from cube.clouds.detectors import DETECTORS

    p.add_argument("--detectors", type=comma_list, default=list(DETECTORS), metavar="LIST", help=help)


def detectors_of(names: list[str]) -> tuple[str, ...]:
    """The detectors of ``--detectors``; ``none`` is no cloud pass.

    Examples
    --------
    >>> detectors_of(["none"]), detectors_of(["s2cloudless_mask"])
    ((), ('s2cloudless_mask',))
    """
    return () if names == ["none"] else tuple(names)


def add_workers(target: Target, help: str) -> None:
    """``--workers N``: local worker processes (default None: all cores)."""
    target.add_argument("--workers", type=int, default=None, metavar="N", help=help)


def add_workers_or_scheduler(p: argparse.ArgumentParser, scheduler_help: str) -> None:
    """``--workers N`` or ``--scheduler ADDRESS`` (of a running dask.distributed cluster), not both."""
    where = p.add_mutually_exclusive_group()
    add_workers(where, "local worker processes (default: all cores; 1 = no dask cluster)")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None, help=scheduler_help)


def add_split_and_region(p: argparse.ArgumentParser, split_target: Target) -> None:
    """``--split`` (into ``split_target``: ``p`` or a group it excludes others from) and ``--region``, both
    default None: all."""
    split_target.add_argument("--split", choices=SPLITS, default=None, help="official split (default: all)")
    p.add_argument("--region", choices=REGIONS, default=None, help="region (default: all)")
