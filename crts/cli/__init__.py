"""The ``crts`` command: one sub-command per job, each with its own ``--help``.

The parser and its reference: :mod:`crts.cli.parser`; the commands by group: :mod:`crts.cli.data`,
:mod:`crts.cli.cube_commands`, :mod:`crts.cli.learn`, with the options they share in :mod:`crts.cli.options`;
how a command ends on an error: :mod:`crts.cli.errors`.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence

from .errors import error_line, interrupted, one_line_warning
from .parser import COMMANDS, build_parser, reference_markdown, sub_parsers

os.environ["MPLBACKEND"] = "Agg"  # the command writes figures to files; read when pyplot is first imported

__all__ = ["build_parser", "main", "reference_markdown", "sub_parsers"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crts``; bad input, and file systems that refuse a path (see :data:`crts.cli.errors.USER_ERRNOS`), end
    with a one-line error and exit status 2; Ctrl-C with one line saying what was kept, exit status 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    named = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser([named] if named in COMMANDS else ())
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named by the sub-command's parser, which can suggest one of its options
        sub_parsers(parser)[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    with warnings.catch_warnings():
        warnings.showwarning = one_line_warning(args.command)
        try:
            args.handler(args)
        except KeyboardInterrupt:
            print(f"crts {args.command}: interrupted: {interrupted(args)}", file=sys.stderr)
            return 130
        except Exception as err:
            message = error_line(err, args)
            if message is None:
                raise
            print(f"crts {args.command}: error: {message}", file=sys.stderr)
            return 2
    return 0
