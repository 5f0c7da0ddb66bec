"""Full size: whole-cube operations on hollow cubes of 1,000 and 15,600 patches, converted in one go and in parts.

A hollow cube (:mod:`cube.synth.hollow`) holds everything a conversion and cloud
pass write except the image shards. Every operation runs in a fresh process (so
its wall time includes nothing cached), which reports its own time and peak
memory; ``crts`` commands are timed from the start of their process. Goals at
15,600 patches (issue 22, docs/scale-out.md): open <= 2 s and <= 1 GB, one image
<= 20 ms, info and stats <= 5 s, SEN12MSCRTS construction <= 2 s and what a
worker receives <= 2 MB. Set ``BENCH_SCALE_SIZES`` (e.g. ``1000``) to measure less.

The same operations (but plain ``xr.open_zarr``, which would need s3fs) also run on
a hollow cube in a bucket of moto's S3 server on 127.0.0.1, behind a proxy that
counts their requests (:class:`tests.servers.S3Proxy`): the ``requests`` column.
Goals (issue 22): opening 1-2 metadata GETs, ``crts info`` and ``crts stats`` at
most 20 more than opening, none per patch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = tuple(int(n) for n in os.environ.get("BENCH_SCALE_SIZES", "1000,15600").split(","))
PARTS = (1, 3)

_PEAK = r"""
def peak_gb():  # this process image's own high-water mark (ru_maxrss would include the parent's, kept across exec)
    with open("/proc/self/status") as status:
        return round(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1e6, 2)
"""

_OPERATION = (
    _PEAK
    + r"""
import json, pickle, sys, time
path, op = sys.argv[1], sys.argv[2]
import cube, xarray as xr
extra = {}
start = time.perf_counter()
if op == "open_cube":
    ds = cube.open_cube(path)
elif op in ("image via open_cube", "image via xr.open_zarr"):
    ds = cube.open_cube(path) if op == "image via open_cube" else xr.open_zarr(path)
    ds.S2.isel(patch=1, time=3).values  # the first computation loads dask's machinery
    start = time.perf_counter()
    ds.S2.isel(patch=ds.sizes["patch"] // 2, time=7).values
elif op == "valid S2 sum":
    ds = cube.open_cube(path)
    start = time.perf_counter()
    int(ds.valid.sel(modality="S2").sum())
elif op == "SEN12MSCRTS train":
    from crts.data import SEN12MSCRTS
    start = time.perf_counter()
    samples = SEN12MSCRTS(path, split="train")
    extra["pickled MB"] = round(len(pickle.dumps(samples)) / 1e6, 2)
seconds = time.perf_counter() - start
print(json.dumps({"s": round(seconds, 3), "peak GB": peak_gb(), **extra}))
"""
)

_COMMAND = (
    _PEAK
    + r"""
import json, sys
from crts.cli import main
code = main(sys.argv[1:])
print(json.dumps({"peak GB": peak_gb()}), file=sys.stderr)
sys.exit(code)
"""
)

COMMANDS = {"crts info": ["info"], "crts stats": ["stats", "--by", "region,split"]}


def _operation(path: Path | str, op: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _OPERATION, str(path), op], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _command(path: Path | str, args: list[str]) -> dict:
    """Wall time of a ``crts`` command from the start of its process, and its peak memory."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _COMMAND, args[0], str(path), *args[1:]], capture_output=True, text=True, check=True
    )
    return {"s": round(time.perf_counter() - start, 2), **json.loads(done.stderr.strip().splitlines()[-1])}


def _measure(path: Path) -> dict:
    rows = {op: _operation(path, op) for op in OPERATIONS}
    rows.update({name: _command(path, args) for name, args in COMMANDS.items()})
    return rows


OPERATIONS = ("open_cube", "image via open_cube", "image via xr.open_zarr", "valid S2 sum", "SEN12MSCRTS train")


def _requests(n: int, parts: int) -> dict[str, int]:
    """The requests of each operation on a hollow cube in a bucket (moto on 127.0.0.1, counted by a proxy)."""
    from cube.synth.hollow import make_hollow
    from tests.servers import S3Proxy, create_bucket, s3_server

    counts = {}
    with s3_server() as endpoint:
        url = f"{create_bucket(f'scale-{n}-{parts}')}/cube.zarr"
        make_hollow(url, n, parts=parts)
        proxy = S3Proxy(endpoint)
        os.environ["AWS_ENDPOINT_URL"] = proxy.url  # the operations' processes find it so (restored at the end)
        for name in (*OPERATIONS, *COMMANDS):
            with proxy.counting() as requests:
                if name in COMMANDS:
                    _command(url, COMMANDS[name])
                elif name != "image via xr.open_zarr":
                    _operation(url, name)
            counts[name] = len(requests)
        proxy.close()
    counts.pop("image via xr.open_zarr")
    return counts


def run() -> dict:
    from cube.synth.hollow import make_hollow

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            for parts in PARTS:
                path = Path(tmp) / f"hollow-{n}-{parts}.zarr"
                start = time.perf_counter()
                make_hollow(path, n, parts=parts)
                label = f"{n} patches, {'one go' if parts == 1 else 'in 3 parts'}"
                results[label] = {"hollow cube written (s)": round(time.perf_counter() - start, 1), **_measure(path)}
                for name, count in _requests(n, parts).items():
                    results[label][name]["requests"] = count
    return results
