"""Run every ``benchmarks/bench_*.py`` (or those named on the command line) and print their ratios."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
from pathlib import Path

import benchmarks

RESULTS = Path(__file__).with_name("results")


def main() -> None:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("only", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(names)})")
    chosen = parser.parse_args().only or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(names)}")
    RESULTS.mkdir(exist_ok=True)
    for name in chosen:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}: {module.__doc__.strip().splitlines()[0]}")
        result = module.run()
        result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
        for key, value in result.items():
            if key != "machine":
                print(f"   {key}: {value}")
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(f"results written to {RESULTS}")


if __name__ == "__main__":
    main()
