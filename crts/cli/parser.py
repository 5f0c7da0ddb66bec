"""The parser of ``crts``: its sub-commands, one-line errors with a suggestion, and the Markdown reference of
every ``--help`` (docs/cli.md)."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable, Collection, Sequence
from typing import NoReturn

from crts import __version__

from .cube_commands import (
    index_options,
    info_options,
    map_options,
    runs_options,
    stats_options,
    upgrade_options,
    verify_options,
)
from .data import clouds_options, convert_options, download_options, synth_options
from .learn import evaluate_options, report_options, train_options

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "synth": ("write a synthetic data set in the real on-disk layout", synth_options),
    "download": (
        "download the published archives (resumable, checked), converting them as they complete",
        download_options,
    ),
    "convert": (
        "convert a GeoTIFF tree or its archives into a Zarr cube (resumable, incremental, parallel)",
        convert_options,
    ),
    "clouds": ("compute cloud/shadow masks and coverage of every S2 image into a cube", clouds_options),
    "info": ("what a cube holds: patches, dates, cloud pass, runs, size", info_options),
    "stats": ("cloud-coverage statistics of a cube: tables and plots", stats_options),
    "train": ("train a cloud-removal model on cube batches (resumable; DDP under torchrun)", train_options),
    "evaluate": (
        "predict a split with a model or baseline and write predictions and metrics into the cube",
        evaluate_options,
    ),
    "report": ("metric tables and figures of evaluation runs", report_options),
    "index": ("write the GeoParquet index of a cube's patches (footprints, labels, dates, coverage)", index_options),
    "map": ("write a page of a map of a cube's patches and each patch's year, to open from disk", map_options),
    "runs": ("list the evaluation runs of a cube, or clean up what interrupted runs left", runs_options),
    "upgrade": ("bring a cube written by an older version up to the current schema, in place", upgrade_options),
    "verify": ("check every shard of a cube's images: name the damaged ones and the patches they hold", verify_options),
}
"""Every sub-command: its one-line help (``crts --help`` lists them) and what adds its options."""


class _MarkdownHelpAction(argparse.Action):
    """``--help-markdown`` (hidden): print :func:`reference_markdown` and exit, like ``--help``."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str = argparse.SUPPRESS,
        default: str = argparse.SUPPRESS,
        help: str | None = None,
    ) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(reference_markdown(), end="")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, with the closest valid choice or option suggested."""

    def error(self, message: str) -> NoReturn:
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
        prog="crts", description="SEN12MS-CR-TS as a Zarr data cube: synthesise, convert, train, evaluate."
    )
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
    lines = [
        "# `crts` command reference",
        "",
        "<!-- Generated from the argparse parsers of the crts.cli package by `crts --help-markdown > docs/cli.md`;",
        "     do not edit by hand (tests/crts/cli/test_parser.py fails when this file is stale). -->",
        "",
        "The output of `crts --help` and of `--help` for every sub-command: "
        + ", ".join(f"[`{name}`](#crts-{name})" for name in commands)
        + ".",
        "",
    ]
    for title, command in [("crts", parser), *((f"crts {name}", p) for name, p in commands.items())]:
        command.formatter_class = _FixedWidthFormatter
        lines += [f"## `{title}`", "", "```text", f"$ {title} --help", command.format_help().rstrip(), "```", ""]
    return "\n".join(lines)
