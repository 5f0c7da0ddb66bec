"""Checking a cube's stored images shard by shard (``crts verify``).

Every shard of the image and mask arrays that :mod:`cube.store.chunks` reads (the selected
patches' shards) is read the way the loader reads it: its index checked against the
object's size and its crc32c (:func:`cube.store.chunks.checked_index`), then every stored
inner chunk read and decoded, its Blosc header checked first (:func:`cube.store.chunks.decode`).
The inner chunks carry no checksum of their own: a changed byte inside a chunk's
compressed stream is found where Blosc fails to decode it, not otherwise. A shard of
S1 or S2 that is absent while the ``valid`` flags say its patch has images is
damaged too (zarr would read it as the fill value).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from tqdm.auto import tqdm

from ..dataset.rois import PatchLabel, Roi
from . import chunks, reads
from .store import CubeStore, as_store, checked_state

MODALITIES = ("S1", "S2")
"""The image arrays, in the order of the ``valid`` flags' last axis."""
BATCH = 4
"""Shards read at once (their indexes in one concurrent round, then their chunks in another), so that a bucket's
round trips overlap; their stored bytes stay in memory until decoded, one shard at a time (an S2 shard: up to
51 MB each way). Measured on the default synthetic cube (36 MB S2 shards): peak memory 0.40 GB with 4,
0.56 GB with 16, 0.30 GB with 1 (0.20 GB after opening the cube)."""


@dataclass
class VerifyReport:
    """What :func:`verify` checked and found."""

    location: str
    shards: int = 0
    """Shards checked (absent ones included)."""
    damaged: list[chunks.DamagedShardError] = field(default_factory=list)
    """One error per damaged shard, naming its key and the patches it holds."""
    seconds: float = 0.0
    source_root: str | None = None
    """Where the cube was converted from (its ``source_root`` attribute)."""

    def damaged_rois(self) -> list[str]:
        """The ROIs of the damaged shards' patches, each once, in order."""
        return list(dict.fromkeys(str(label.roi) for err in self.damaged for label in err.labels))

    def repair_hint(self) -> str:
        """How to get the damaged patches back (empty if none is damaged)."""
        if not self.damaged:
            return ""
        rois = ",".join(self.damaged_rois()) or "ROIS"
        source = self.source_root or "SRC"
        return (
            f"repair: crts convert does not convert stored patches again (a resumed or repeated conversion "
            f"skips them); restore the shards from a copy, or convert their ROIs from the source into a new "
            f"cube: crts convert {source} NEW.zarr --rois {rois}"
        )


def verify(
    cube: str | os.PathLike | CubeStore,
    *,
    patches: list[str] | None = None,
    split: str | None = None,
    region: str | None = None,
    storage_options: dict | None = None,
    progress: bool = False,
) -> VerifyReport:
    """Check every shard of the cube's images and masks (or of a selection of patches).

    Parameters
    ----------
    cube : path, str or CubeStore
        The cube (a path or URL).
    patches : list of str, optional
        ROIs (``'ROIs1868/17'``) or patches (``'ROIs1868/17/352'``) to check (default: all).
    split, region : str, optional
        Check only the patches of this split / region.
    storage_options : dict, optional
        Object-store options.
    progress : bool
        Show a progress bar of the shards on stderr.

    Returns
    -------
    VerifyReport
        Its ``damaged`` list is empty for an intact cube.

    Raises
    ------
    ValueError
        For a selection naming no patch of the cube, or metadata that cannot be read (one line).
    """
    start, store = time.perf_counter(), as_store(cube, storage_options=storage_options)
    try:
        ds = store.dataset(chunks=None, load_coordinates=True)  # the store's order: the shards' positions
    except Exception:
        checked_state(store, allow_incomplete=True)  # says why in one line where it can: no cube, an old one
        raise
    checked_state(store, allow_incomplete=True, attributes=ds.attrs)
    labels = [
        PatchLabel(Roi(str(g), int(r)), int(p))
        for g, r, p in zip(ds.roi_group.values, ds.roi.values, ds.patch_id.values, strict=True)
    ]
    chosen = selected(labels, ds.split.values, ds.region.values, patches, split, region)
    valid = ds.valid.values if "valid" in ds.variables else None
    report = VerifyReport(store.location, source_root=ds.attrs.get("source_root"))
    work = list(_shards(store, chosen, [str(name) for name in ds.data_vars if ds[name].dims[:1] == ("patch",)]))
    with tqdm(total=len(work), unit="shard", disable=not progress, desc="verify") as bar:
        for first in range(0, len(work), BATCH):
            batch = work[first : first + BATCH]
            report.damaged += [reads.named(store, err, labels) for err in _checked(store, batch, valid)]
            report.shards += len(batch)
            bar.update(len(batch))
    report.seconds = time.perf_counter() - start
    return report


def selected(
    labels: list[PatchLabel],
    splits: np.ndarray,
    regions: np.ndarray,
    patches: list[str] | None,
    split: str | None,
    region: str | None,
) -> np.ndarray:
    """Store positions of the patches chosen by ROI/patch labels, split and region.

    Raises
    ------
    ValueError
        For a label that is not ``ROIsXXXX/NN`` or ``ROIsXXXX/NN/PATCH``, or one that names nothing in the cube.
    """
    keep = np.ones(len(labels), bool)
    if split:
        keep &= splits == split
    if region:
        keep &= regions == region
    if patches:
        wanted = np.zeros(len(labels), bool)
        for text in patches:
            hits = np.array([_matches(label, text) for label in labels], bool)
            if not hits.any():
                raise ValueError(
                    f"--patches {text!r}: no such ROI or patch in the cube (give ROIsXXXX/NN or "
                    "ROIsXXXX/NN/PATCH, e.g. ROIs1868/17/352)"
                )
            wanted |= hits
        keep &= wanted
    return np.flatnonzero(keep)


def _matches(label: PatchLabel, text: str) -> bool:
    parts = text.strip("/").split("/")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[1:]):
        raise ValueError(f"--patches {text!r}: give ROIsXXXX/NN or ROIsXXXX/NN/PATCH, e.g. ROIs1868/17/352")
    roi = Roi.parse("/".join(parts[:2]), known=False)
    return label.roi == roi and (len(parts) == 2 or label.patch_id == int(parts[2]))


@dataclass(frozen=True)
class Shard:
    """One shard to check: the array's layout, its key, its coordinates in the shard grid."""

    layout: chunks.Layout
    key: str
    coords: tuple[int, ...]


def _shards(store: CubeStore, positions: np.ndarray, names: list[str]) -> Iterator[Shard]:
    """The shards holding the patches at ``positions``, of every array that :mod:`cube.store.chunks` reads."""
    for name in names:
        where = chunks.layout(store.array(name).async_array)
        if where is None:
            continue
        grid = [range(-(-n // s)) for n, s in zip(where.array.shape[1:], where.shard[1:], strict=True)]
        for first in dict.fromkeys(int(p) // where.shard[0] for p in positions):
            for rest in itertools.product(*grid):
                coords = (first, *rest)
                yield Shard(where, f"{name}/{where.array.metadata.encode_chunk_key(coords)}", coords)


def _checked(store: CubeStore, batch: list[Shard], valid: np.ndarray | None) -> list[chunks.DamagedShardError]:
    """The errors of the damaged shards of a batch: all read at once, each alone again if one fails."""
    try:
        return _read(store, batch, valid)
    except chunks.DamagedShardError:
        if len(batch) == 1:
            raise
    found = []
    for shard in batch:
        try:
            found += _read(store, [shard], valid)
        except chunks.DamagedShardError as err:
            found.append(err)
    return found


def _whole(shard: Shard) -> chunks.Plan:
    """The plan that reads every chunk of a shard."""
    plan = chunks.plan(
        shard.layout,
        tuple(
            slice(c * n, min((c + 1) * n, size))
            for c, n, size in zip(shard.coords, shard.layout.shard, shard.layout.array.shape, strict=True)
        ),
    )
    assert plan is not None, "a shard's own extent is a basic selection inside that one shard"
    return plan


def _read(store: CubeStore, batch: list[Shard], valid: np.ndarray | None) -> list[chunks.DamagedShardError]:
    """Read and decode every chunk of a batch of shards (their indexes read once: ``read_chunks`` is given
    them); the absent shards of images that exist."""
    tails = reads.get_tails(store, {s.key: s.layout.index_bytes for s in batch})
    present = [s for s in batch if tails[s.key] is not None]
    plans = [_whole(s) for s in present]
    for p, data in zip(
        plans, chunks.read_chunks(lambda _: tails, partial(reads.get_ranges, store), plans), strict=True
    ):
        chunks.assemble(p, data)
    name_of = {s.key: s.key.split("/", 1)[0] for s in batch}
    return [
        s.layout.damaged(s.key, "absent, but the valid flags say its patch has images")
        for s in batch
        if tails[s.key] is None
        and valid is not None
        and name_of[s.key] in MODALITIES
        and valid[s.layout.patches(s.coords), :, MODALITIES.index(name_of[s.key])].any()
    ]
