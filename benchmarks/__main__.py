"""Run every ``benchmarks/bench_*.py`` (or those named on the command line) and print their ratios.

``--page FILE`` writes the benchmarks page from the result files instead (:func:`benchmarks.page.render`).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path

import benchmarks
from benchmarks.page import RESULTS, render, write_result


def main() -> None:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "only", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {', '.join(names)})"
    )
    parser.add_argument(
        "--page",
        type=Path,
        metavar="FILE",
        help="write the Markdown page of the result files to FILE (runs no benchmark)",
    )
    args = parser.parse_args()
    if args.page:
        args.page.write_text(render())
        print(f"page written to {args.page}")
        return
    chosen = args.only or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(names)}")
    for name in chosen:
        module = importlib.import_module(f"benchmarks.{name}")
        purpose = module.__doc__.strip().splitlines()[0]
        print(f"== {name}: {purpose}")
        result = module.run()
        for key, value in result.items():
            print(f"   {key}: {value}")
        write_result(name, purpose, result)
    print(f"results written to {RESULTS}")


if __name__ == "__main__":
    main()
