"""Helpers that several test modules share: one home, so that no test module imports from another."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
import zarr
from hypothesis import strategies as st
from isal import igzip
from numcodecs.checksum32 import CRC32C
from rasterio.transform import Affine, from_origin

from crts.cli import main
from cube import open_cube
from cube.analysis.stats import CoverageIndex
from cube.dataset.problems import FileProblem
from cube.ingest import geotiff
from cube.ingest.validate import Expected, read_checked, read_header
from cube.store import chunks
from cube.store.store import CubeStore
from cube.synth import make_dataset
from cube.synth.archives import write_archives


def europa_archives(base: Path, patches: int, times: int = 3) -> Path:
    """The folder of the two archives (``s1_europa.tar.gz``, ``s2_europa.tar.gz``) of a synthetic ROIs1868/17 of
    ``patches`` patches of ``times`` steps of 16 px, written below ``base`` (its tree beside them)."""
    tree = make_dataset(
        base / "tree", ["ROIs1868/17"], patches_per_roi=patches, size=16, times=times, workers=1, progress=False
    )
    write_archives(tree, base / "archives", progress=False)
    return base / "archives"


# Cubes compared
VARIABLES = (
    "S1",
    "S2",
    "valid",
    "S2_date",
    "roi",
    "patch_id",
    "transform",
    "s2cloudless_mask",
    "s2cloudless_map",
    "cloud_cloudshadow_mask",
    "coverage",
)
"""The variables two cubes written from the same tree must hold identically."""


def assert_same_variables(a: str | Path, b: str | Path) -> None:
    """Assert that two cubes (paths or URLs) hold identical :data:`VARIABLES`."""
    one, other = open_cube(a, chunks=None), open_cube(b, chunks=None)
    for name in VARIABLES:
        xr.testing.assert_identical(one[name].reset_coords(drop=True), other[name].reset_coords(drop=True))


def without_paths(ds: xr.Dataset) -> xr.Dataset:
    """The dataset without its ``*_path`` variables, coordinates made variables, attributes dropped."""
    ds = ds.drop_vars([name for name in ds.variables if str(name).endswith("_path")])
    return ds.reset_coords().drop_attrs()


def assert_same_cube(cube: Path, expected: Path) -> None:
    """Equal arrays, labels, dates, valid flags, georeference, and cloud pass where ``cube`` has one."""
    got, want = without_paths(open_cube(cube)), without_paths(open_cube(expected))
    xr.testing.assert_identical(got, want[list(got.data_vars)])


# Commands refused in one line
BESIDE_THE_ERROR = re.compile(
    r"^(?!crts [\w-]+: error: ).*(\d+%\||\[(\d+:)?\d+:\d\d[<,\]])|^crts [\w-]+: warning: |^\s*$"
)
"""Lines a refused command may write besides its error: progress bars (a share, or tqdm's elapsed time when the
total is not known yet), its own one-line warnings, blank lines. An error line is never one of them."""


def error_line(status: int | str | None, err: str, *words: str) -> str:
    """The line in which a ``crts`` command refused its input, from its exit status and its stderr ``err``.

    Asserts what a refusal must be: exit status 2, no traceback, and one line (besides progress bars and warnings,
    :data:`BESIDE_THE_ERROR`) that holds each of ``words``.
    """
    lines = [line for line in err.splitlines() if not BESIDE_THE_ERROR.search(line)]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err and err.endswith("\n"), err
    assert all(word in lines[0] for word in words), err
    return lines[0]


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], *words: str) -> str:
    """``crts ARGV`` run in this process, its refusal checked by :func:`error_line`: the line."""
    capsys.readouterr()  # what earlier commands wrote
    status = main(argv)
    return error_line(status, capsys.readouterr().err, *words)


def crts(*args: str, code: str | None = None, wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``python -m crts ARGS`` (or ``python -c CODE ARGS``) in a new process from this checkout, as a user runs it,
    behind ``wrapper`` (a command that takes a command line) if given."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [*wrapper, sys.executable, *(["-c", code] if code else ["-m", "crts"]), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


# Old cubes
def as_schema_2(cube: Path, dst: Path) -> Path:
    """A copy of ``cube`` laid out as schema version 2 wrote it."""
    shutil.copytree(cube, dst)
    store = CubeStore(dst, "r+")
    for name, rows in (("valid", 1), ("coverage", 256)):
        shape = store.array(name).shape
        store.copy_array(name, "scratch_copy", (rows, *shape[1:]))
        store.copy_array("scratch_copy", name, (rows, *shape[1:]))
        store.delete("scratch_copy")
    store.write_group("", {**store.group_attributes(""), "schema_version": 2})
    store.consolidate()
    return dst


# Conversions killed and compared
def checksums(
    path: Path,
    names: tuple[str, ...] = ("S1", "S2", "valid", "S1_date", "S2_date", "roi", "patch_id", "transform", "epsg"),
) -> dict[str, str]:
    """SHA-256 of the named variables of a store."""
    ds = xr.open_zarr(path, consolidated=False)
    return {name: hashlib.sha256(np.ascontiguousarray(ds[name].values).tobytes()).hexdigest() for name in names}


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120) -> None:
    """SIGKILL a process as soon as ``ready()`` holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "the conversion ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


TINY_TRAINING = ["--features", "4", "--blocks", "1", "--crop", "16", "--batch-size", "2", "--n-input-samples", "2"]
"""``crts train`` options of a tiny 3D ResNet run (4 features, 1 block, 16 px crops, batch 2, 2 inputs), for
tests of what surrounds the training rather than of what it learns."""


# Damaged shards
def index_of(shard: bytes, entries: int) -> np.ndarray:
    """A shard's index (offset, length per inner chunk) as a writable (entries, 2) uint64 array."""
    return np.frombuffer(shard[-(16 * entries + 4) : -4], "<u8").reshape(-1, 2).copy()


def with_index(shard: bytes, index: np.ndarray) -> bytes:
    """The shard with another index, its crc32c recomputed (so the entries themselves are what is checked)."""
    return shard[: -(index.size * 8 + 4)] + bytes(CRC32C().encode(index.astype("<u8").tobytes()))


def damage_cases(entries: int, chunk_bytes: int) -> dict[str, tuple[object, str]]:
    """Edits of a shard's bytes, each with the end of the message that names it."""
    longest = chunk_bytes + chunks.BLOSC_HEADER

    def entry(change: object) -> object:
        def edit(shard: bytes) -> bytes:
            index = index_of(shard, entries)
            change(index, len(shard))
            return with_index(shard, index)

        return edit

    def bad_entry(chunk: int, length: str, start: str, data: str) -> str:
        return (
            f"damaged shard: its index gives chunk {chunk} {length} bytes at byte {start}; a chunk takes "
            f"{chunks.BLOSC_HEADER} to {longest} bytes within the {data} bytes before the index"
        )

    return {
        "past the end": (entry(lambda i, size: i.__setitem__((1, 0), size)), bad_entry(1, "{l1}", "{size}", "{data}")),
        "1 TiB long": (entry(lambda i, size: i.__setitem__((0, 1), 2**40)), bad_entry(0, str(2**40), "{o0}", "{data}")),
        "too short": (entry(lambda i, size: i.__setitem__((0, 1), 3)), bad_entry(0, "3", "{o0}", "{data}")),
        "one byte short": (
            entry(lambda i, size: i.__setitem__((0, 1), i[0, 1] - 1)),
            f"damaged shard: chunk 0 ({{short}} bytes) is no Blosc frame of an image of {chunk_bytes} bytes",
        ),
        "half missing": (
            entry(lambda i, size: i.__setitem__((0, 0), 2**64 - 1)),
            bad_entry(0, "{l0}", str(2**64 - 1), "{data}"),
        ),
        "bad crc": (
            lambda shard: shard[:-1] + bytes([shard[-1] ^ 0xFF]),
            "damaged shard: its index fails its crc32c checksum",
        ),
        "truncated index": (
            lambda shard: shard[-(16 * entries) :],
            f"damaged shard: {16 * entries} bytes, shorter than its index ({16 * entries + 4} bytes): truncated",
        ),
        "cut before its index": (
            lambda shard: shard[:100] + shard[-(16 * entries + 4) :],
            bad_entry(0, "{l0}", "{o0}", "100"),
        ),
    }


def damaged_copy(cube: Path, tmp_path: Path, key: str, edit: object) -> tuple[Path, dict[str, int]]:
    """A copy of the cube whose object ``key`` is edited; the numbers its messages name."""
    copy = tmp_path / "damaged.zarr"
    shutil.copytree(cube, copy)
    shard = (copy / key).read_bytes()
    entries = chunks_per_shard(cube, key.split("/")[0])
    index = index_of(shard, entries)
    (copy / key).write_bytes(edit(shard))
    return copy, {
        "size": len(shard),
        "data": len(shard) - 16 * entries - 4,
        "o0": int(index[0, 0]),
        "l0": int(index[0, 1]),
        "l1": int(index[1, 1]) if entries > 1 else 0,
        "short": int(index[0, 1]) - 1,
    }


def chunks_per_shard(cube: Path, name: str) -> int:
    """Inner chunks per shard of an array of the cube."""
    array = zarr.open_array(CubeStore(cube).store, path=name, mode="r")
    return int(np.prod(np.array(array.metadata.chunk_grid.chunk_shape) // array.metadata.codecs[0].chunk_shape))


def label_of(cube: Path | str, position: int) -> str:
    """The label of the patch at a store position."""
    store = CubeStore(cube)
    group, roi, patch = (store.array(name)[position] for name in ("roi_group", "roi", "patch_id"))
    return f"{group}/{roi} patch {patch}"


# Crafted archives
GIB = 1 << 30


def header(name: str, size: int, kind: bytes = tarfile.REGTYPE, fields: dict[int, bytes] | None = None) -> bytes:
    """One GNU tar header block (``fields``: bytes put at those offsets, the checksum made again)."""
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mtime = size, kind, 0
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT if kind != tarfile.XHDTYPE else tarfile.USTAR_FORMAT))
    for offset, value in (fields or {}).items():
        block[offset : offset + len(value)] = value
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block[:512])
    return bytes(block)


def sparse_header(name: str, claimed: int, stored: int) -> bytes:
    """An old GNU sparse member claiming ``claimed`` bytes, of which the last ``stored`` are in the archive."""
    entry = b"%011o\0%011o\0" % (claimed - stored, stored)
    return header(name, stored, tarfile.GNUTYPE_SPARSE, {386: entry, 483: b"%011o\0" % claimed})


def zeros(size: int) -> Iterator[bytes]:
    """``size`` zero bytes in chunks of at most 1 MiB (never held whole)."""
    while size:
        yield bytes(min(size, 1 << 20))
        size -= min(size, 1 << 20)


def member(name: str, data: bytes) -> Iterator[bytes]:
    """A regular member: its header block, then its data padded to whole 512-byte blocks."""
    yield header(name, len(data))
    yield data + bytes(-len(data) % 512)


def write_tar_gz(path: Path, parts: Iterable[bytes]) -> Path:
    """A ``.tar.gz`` of raw tar bytes (headers, data, padding: the caller's), streamed."""
    with igzip.open(path, "wb", compresslevel=1) as out:
        for part in parts:
            out.write(part)
    return path


def members_of(archive: Path) -> list[tuple[str, bytes]]:
    """The regular members of a small archive, in order."""
    with tarfile.open(archive) as tar:
        return [(info.name, tar.extractfile(info).read()) for info in tar if info.isfile()]


def crafted(good: Path, out: Path, case: str) -> tuple[Path, str]:
    """A copy of the archive ``good`` with one crafted part (see :data:`CASES`); its path and the member named in
    the error (the crafted one, or for a stream that stops, the last one read whole)."""
    files = members_of(good)
    target, last = files[0][0], files[-1][0]

    def parts() -> Iterator[bytes]:
        for name, data in files:
            if case == "zeros" and name == target:  # 1 GiB of zeros in place of an image
                yield header(name, GIB)
                yield from zeros(GIB)
            elif case == "sparse" and name == target:  # claims 1 GiB, holds 512 B
                yield sparse_header(name, GIB, 512)
                yield bytes(512)
            else:
                if case == "pax" and name == last:  # 512 MiB of PAX records before the last member
                    yield header("././@PaxHeader", 512 << 20, tarfile.XHDTYPE)
                    yield from zeros(512 << 20)
                yield from member(name, data)
            if case == "other" and name == target:
                yield header(f"{target.rsplit('/', 1)[0]}/notes.bin", GIB)
                yield from zeros(GIB)
        yield bytes(1024)
        yield from zeros((64 << 20) if case == "trailing" else 0)

    named = {
        "zeros": target,
        "sparse": target,
        "pax": files[-2][0],
        "other": f"{target.rsplit('/', 1)[0]}/notes.bin",
        "trailing": last,
    }[case]
    return write_tar_gz(out / good.name, parts()), named


CASES = {
    "zeros": r"!{member}: holds 1073741824 B, more than the 4194304 B \(MEMBER_LIMIT\)",
    "sparse": r"!{member}: a sparse file claiming 1073741824 B, not a regular file: refused",
    "pax": r": truncated or corrupt archive, broke after member {member} \(\d read whole\): the PAX header "
    r"././@PaxHeader brings a member's extended headers to 536870912 B, more than 65536 B",
    "other": r"!{member}: holds 1073741824 B, more than the 4194304 B \(MEMBER_LIMIT\)",
    "trailing": r": truncated or corrupt archive, broke after member {member} \(\d read whole\): more than 1048576 B "
    r"follow the end of the tar archive",
}
"""What an archive crafted by :func:`crafted` gives: the error after the archive's name."""


# Fuzzing
def mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with a few bytes replaced (often in its first 512, where formats keep their headers), a span deleted
    or repeated, and maybe cut short."""
    size = len(data)
    positions = st.integers(0, min(size, 512) - 1) | st.integers(0, size - 1)
    edits = st.lists(st.tuples(positions, st.integers(0, 255)), max_size=6)
    span = st.tuples(st.integers(0, size), st.integers(0, 64), st.sampled_from(["keep", "delete", "repeat"]))

    def apply(changes: list[tuple[int, int]], cut: tuple[int, int, str], end: int) -> bytes:
        out = bytearray(data)
        for position, value in changes:
            out[position] = value
        start, length, how = cut
        piece = bytes(out[start : start + length])
        out[start : start + length] = b"" if how == "delete" else piece * (3 if how == "repeat" else 1)
        return bytes(out[:end])

    return st.builds(apply, edits, span, st.integers(0, size + 200))


def random_coverage_index() -> CoverageIndex:
    """A random index with gaps: 40 patches x 6 steps x 2 detectors."""
    rng = np.random.default_rng(3)
    coverage = rng.choice([0.0, 0.005, 0.3, 0.7, 1.0], size=(40, 6, 2)).astype(np.float32)
    coverage[rng.random(coverage.shape[:2]) < 0.1] = np.nan
    labels = pd.DataFrame(
        {
            "roi_group": rng.choice(["ROIs1868", "ROIs2017"], 40),
            "roi": rng.integers(1, 4, 40),
            "patch_id": np.arange(40),
            "region": rng.choice(["africa", "europa", "america"], 40),
            "split": rng.choice(["train", "val", "test"], 40),
        }
    )
    labels["roi_name"] = labels.roi_group + "/" + labels.roi.astype(str)
    dates = np.datetime64("2018-01-05") + rng.integers(0, 365, (40, 6)).astype("timedelta64[D]")
    return CoverageIndex(coverage, ("det_a", "det_b"), labels, dates.astype("datetime64[ns]"))


def coverage_rows(index: CoverageIndex) -> pd.DataFrame:
    """One row per (patch, time, detector), by pandas alone."""
    p, t, d = np.meshgrid(*(np.arange(n) for n in index.coverage.shape), indexing="ij")
    frame = pd.DataFrame(
        {
            "patch": p.ravel(),
            "time": t.ravel(),
            "detector": np.array(index.detectors)[d.ravel()],
            "coverage": index.coverage.ravel(),
        }
    )
    frame = frame.join(index.labels, on="patch")
    frame["roi"] = frame.roi_name
    frame["month"] = pd.DatetimeIndex(index.dates[frame.patch, frame.time]).month
    return frame.dropna(subset=["coverage"])


# GeoTIFFs read by both readers (cube.ingest.geotiff: tifffile's path and rasterio's)
TRANSFORM = from_origin(600000.0, 5000000.0, 10.0, 10.0)


def write_geotiff(
    path: Path, data: np.ndarray, crs: str = "EPSG:32631", transform: Affine = TRANSFORM, **options: object
) -> Path:
    """``data`` (bands, rows, columns) as a GeoTIFF written by rasterio with creation ``options``."""
    count, height, width = data.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": count, "dtype": data.dtype, "crs": crs}
    with rasterio.open(path, "w", transform=transform, **profile, **options) as dst:
        dst.write(data)
    return path


def outcome(check: Callable[[], object], path: Path) -> tuple:
    """What a check of the file ``path`` gives: ("read", its result) or ("problem", its message: one line, a
    FileProblem that names ``path``)."""
    try:
        return "read", check()
    except FileProblem as err:
        assert err.path == str(path) and "\n" not in str(err)
        return "problem", str(err)


def outcomes(path: Path, expected: Expected, modality: str, fast: bool) -> list[tuple]:
    """The outcomes of read_header and read_checked (against EPSG:32631 and :data:`TRANSFORM`), with the tifffile
    path on or off."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(geotiff, "FAST_READER", fast)
        return [
            outcome(lambda: read_header(path), path),
            outcome(lambda: read_checked(path, modality, expected, 32631, tuple(TRANSFORM)[:6]), path),
        ]


def assert_read_alike(path: Path, expected: Expected, modality: str) -> list[tuple]:
    """Both readers give the same outcomes (equal pixels, or the same message); they are returned."""
    fast, slow = outcomes(path, expected, modality, True), outcomes(path, expected, modality, False)
    assert fast[0] == slow[0] and fast[1][0] == slow[1][0]
    if fast[1][0] == "read":
        np.testing.assert_array_equal(fast[1][1], slow[1][1])
    else:
        assert fast[1][1] == slow[1][1]
    return fast
