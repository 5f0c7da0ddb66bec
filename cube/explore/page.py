"""A page to share: the map of a cube's patches and each patch's strip, as static files that open from disk.

``write_page(cube, out)`` writes into ``out``: ``index.html`` and ``explore.js`` (the viewer, no library, no
CDN, no font or tile from elsewhere), ``land.js`` (the coastline, Natural Earth 110 m), ``data.js`` (every
patch's footprint, labels and values: what the map draws, colours and filters by) and per patch
``strips/<patch>.js`` (dates, coverage per detector, the loader's pick) with ``thumbs/<patch>.webp``, one image
holding the patch's 30 S2 thumbnails above its 30 S1 thumbnails. Files are ``.js`` loaded by ``<script>`` tags,
because a browser refuses ``fetch`` of a file opened from disk.
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.colors import to_hex
from PIL import Image

from ..analysis.plots import MONTHS
from ..parallel import check_workers, run_tasks
from ..store.outputs import check_output_folder
from ..store.store import CubeStore, as_store
from ..store.views import open_cube
from .model import (
    CATEGORY_COLOURS,
    COLOUR_KEYS,
    MISSING_COLOUR,
    RAMP,
    THUMB_PX,
    MapModel,
    Pick,
    map_model,
    patch_strip,
    patch_values,
    picks,
    units_of,
)

VIEWER = ("index.html", "explore.js")
"""The viewer's files, copied from this package (``page.html`` is written as ``index.html``)."""
WEBP_QUALITY = 75
"""Lossy WebP quality of the thumbnails: a 30-step strip of 64 px (1,920 x 128 px) is about 60-120 KB of a real
patch (measured on the synthetic set: see docs/exploring.md), so one click loads one small file."""
DATA_DIGITS = 3
"""Decimals of the values in ``data.js`` (coverage and shares 0 .. 1): finer than a colour step of the ramp."""
PATCHES_PER_TASK = 64
"""Patches whose strips one task of a worker process writes (a task of several seconds: the cluster's overhead per
task stays small)."""
OUTLINE_DIGITS = 4
"""Decimals of the footprints' degrees in ``data.js``: 1e-4 degrees is at most 11 m, a pixel of the patch."""


def rounded(values: np.ndarray, digits: int = DATA_DIGITS) -> list[float | None]:
    """``values`` rounded for JSON, NaN as null."""
    return [None if np.isnan(v) else round(float(v), digits) for v in np.asarray(values, float).ravel()]


def page_data(model: MapModel, thumbnails: bool) -> dict:
    """What ``data.js`` holds: every patch's footprint, labels and values, with the colours and words the legend
    uses (the same as :func:`cube.explore.model.colouring`)."""
    values: dict[str, dict[str, list]] = {
        key: {d: rounded(patch_values(model, key, d)) for d in model.detectors} for key in ("coverage", "clear")
    }
    values["month"] = {
        d: [rounded(patch_values(model, "month", d, m), 2) for m in range(1, 13)] for d in model.detectors
    }
    units = {f"{key}/{d}": units_of(key, d) for key in ("coverage", "clear") for d in model.detectors}
    units |= {f"month/{d}/{m}": units_of("month", d, m) for d in model.detectors for m in range(1, 13)}
    units |= {key: units_of(key, "") for key in CATEGORY_COLOURS}
    return {
        "detectors": list(model.detectors),
        "keys": list(COLOUR_KEYS),
        "months": list(MONTHS),
        "ramp": list(RAMP),
        "missing": MISSING_COLOUR,
        "categories": {key: {k: to_hex(v) for k, v in palette.items()} for key, palette in CATEGORY_COLOURS.items()},
        "units": units,
        "thumbnails": thumbnails,
        "thumb_px": THUMB_PX,
        "patches": {
            "roi": model.labels.roi.tolist(),
            "patch_id": model.labels.patch_id.tolist(),
            "split": model.labels.split.tolist(),
            "region": model.labels.region.tolist(),
            "outline": [round(float(v), OUTLINE_DIGITS) for v in model.outlines.ravel()],
            **values,
        },
    }


def strip_image(s2: np.ndarray, s1: np.ndarray) -> bytes:
    """One WebP of a patch's strip: its S2 thumbnails side by side above its S1 VV thumbnails (grey)."""
    top = np.concatenate(list(s2), axis=1)
    bottom = np.repeat(np.concatenate(list(s1), axis=1)[:, :, None], 3, axis=2)
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate([top, bottom], axis=0)).save(buffer, "WEBP", quality=WEBP_QUALITY)
    return buffer.getvalue()


def write_strip(
    ds: xr.Dataset, model: MapModel, patch: int, out: Path, pick: Pick | None, detector: str | None, thumbs: bool
) -> int:
    """Write ``strips/<patch>.js`` (and ``thumbs/<patch>.webp`` with ``thumbs``); returns the bytes written."""
    strip = patch_strip(ds, model, patch, detector, pick)
    record = {
        "patch": patch,
        "title": strip.title,
        "s2_dates": strip.s2_dates,
        "s1_dates": strip.s1_dates,
        "detectors": list(strip.detectors),
        "coverage": [rounded(strip.coverage[:, k]) for k in range(len(strip.detectors))],
        "captions": [strip.caption(t) for t in range(len(strip.s2_dates))],
        "inputs": strip.inputs,
        "target": strip.target,
    }
    text = f"crtsStrip({json.dumps(record, separators=(',', ':'))});\n"
    (out / "strips" / f"{patch}.js").write_text(text)
    written = len(text)
    if thumbs:
        image = strip_image(strip.s2, strip.s1)
        (out / "thumbs" / f"{patch}.webp").write_bytes(image)
        written += len(image)
    return written


@functools.lru_cache(maxsize=1)
def opened(location: str, options: str) -> tuple[xr.Dataset, MapModel]:
    """The cube at ``location`` (storage options as JSON) and its map, made once per worker process."""
    ds = open_cube(location, chunks=None, storage_options=json.loads(options) or None)
    return ds, map_model(ds)


def write_strips(
    location: str, options: str, patches: list[int], out: Path, pick: Pick | None, detector: str | None, thumbs: bool
) -> int:
    """:func:`write_strip` of each of ``patches`` of the cube at ``location``, in a worker process."""
    ds, model = opened(location, options)
    return sum(write_strip(ds, model, p, out, pick, detector, thumbs) for p in patches)


def strip_tasks(
    cube: str | os.PathLike | CubeStore | xr.Dataset, workers: int, storage_options: dict | None, todo: tuple
) -> tuple[list[tuple], Callable[..., int], list[int] | None]:
    """The tasks of :func:`write_page` (``todo``: ds, model, out, pick, detector, thumbs): one patch each in this
    process, :data:`PATCHES_PER_TASK` each for worker processes (which open the cube themselves); with the
    function and the patches per task."""
    ds, model, *rest = todo
    if workers <= 1:
        return [(ds, model, p, *rest) for p in range(len(model))], write_strip, None
    if isinstance(cube, xr.Dataset):
        raise ValueError("worker processes open the cube themselves: give its path or URL, not an opened Dataset")
    location, options = as_store(cube, storage_options=storage_options).location, json.dumps(storage_options or {})
    batches = [list(range(i, min(i + PATCHES_PER_TASK, len(model)))) for i in range(0, len(model), PATCHES_PER_TASK)]
    return [(location, options, batch, *rest) for batch in batches], write_strips, [len(b) for b in batches]


def is_page(folder: Path) -> bool:
    """True for a folder that :func:`write_page` wrote, whole or interrupted (it may be written again)."""
    return all((folder / name).is_file() for name in VIEWER)


def write_viewer(out: Path) -> None:
    """Write the viewer (:data:`VIEWER`) and ``land.js`` into ``out``: first, so that a page interrupted before
    its ``data.js`` is still known as one and written again."""
    package = resources.files(__package__)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data.js").unlink(missing_ok=True)  # an old page's data: the page is whole again with the new one
    (out / "index.html").write_text(package.joinpath("page.html").read_text())
    (out / "explore.js").write_text(package.joinpath("page.js").read_text())
    (out / "land.js").write_text(f"var CRTS_LAND = {package.joinpath('land.json').read_text()};\n")


def write_page(
    cube: str | os.PathLike | CubeStore | xr.Dataset,
    out: str | os.PathLike,
    *,
    pick: Pick | None = None,
    detector: str | None = None,
    thumbnails: bool = True,
    workers: int | None = 1,
    progress: bool = False,
    storage_options: dict | None = None,
) -> dict[str, int]:
    """Write the static page of a cube into the folder ``out`` (see the module docstring).

    Parameters
    ----------
    cube : path, str, CubeStore or xarray.Dataset
        The cube (local or in a bucket), or the cube opened.
    out : path
        A new or empty folder, or one this function wrote before (rewritten).
    pick : callable, optional
        The original loader's rule (:data:`cube.explore.model.Pick`) whose inputs and target the strips mark.
    detector : str, optional
        Whose masks the thumbnails contour and whose coverage the pick uses (default: the cloud pass's first).
    thumbnails : bool
        Write each patch's thumbnails (False: strips of dates and coverage only).
    workers : int or None
        Local worker processes writing the strips (None: all cores); 1: this process, two patches at a time.
    progress : bool
        Show a progress bar of the patches written.

    Returns
    -------
    dict
        ``patches``, ``marked`` (patches whose sample ``pick`` marks: those it does not refuse), ``bytes`` (all
        files written) and ``data_bytes`` (``data.js``, what the page loads at first).

    Raises
    ------
    ValueError
        If ``out`` is a file or holds other files, or the cube has no finished cloud pass.

    Examples
    --------
    >>> write_page("cube.zarr", "map", progress=True)  # doctest: +SKIP
    {'patches': 6, 'marked': 0, 'bytes': 61234, 'data_bytes': 9876}
    """
    out = Path(out)
    check_workers(workers)
    workers = workers or os.cpu_count() or 1
    check_output_folder(out, is_page, "a map page")
    ds = cube if isinstance(cube, xr.Dataset) else open_cube(cube, chunks=None, storage_options=storage_options)
    model = map_model(ds)
    model.detector(detector)  # refuse a detector the cloud pass lacks before writing anything
    tasks, fn, sizes = strip_tasks(cube, workers, storage_options, (ds, model, out, pick, detector, thumbnails))
    write_viewer(out)
    for sub in ("strips", "thumbs"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir()
    written = sum(run_tasks(tasks, fn, workers, None, progress, "map page", sizes))
    (out / "data.js").write_text(f"var CRTS_MAP = {json.dumps(page_data(model, thumbnails), separators=(',', ':'))};\n")
    data_bytes = (out / "data.js").stat().st_size
    viewer = sum((out / name).stat().st_size for name in (*VIEWER, "land.js"))
    return {
        "patches": len(model),
        "marked": int((picks(model, pick, detector)[1] >= 0).sum()),
        "bytes": written + data_bytes + viewer,
        "data_bytes": data_bytes,
    }
