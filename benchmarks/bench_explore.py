"""The map of the patches at full size: opening it, one patch's strip, the static page, and the widget library.

Map, strip and page: the 15,600 patches x 30 steps of a hollow cube (:mod:`cube.synth.hollow`: the real
set's size, its index and coverage, no image bytes, so a strip's images read as the fill value). Thumbnails of
real pixels: a synthetic ROI of 2 patches x 30 steps of 256 px. Widget library: the footprint layer of the
15,600 patches built with lonboard (the choice) and with ipyleaflet (a GeoJSON layer, the baseline), timed and
sized as the bytes of the widget's state sent to the browser.
Goals (issue 36): the map opens in <= 3 s, a patch's strip in <= 1 s.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cube import convert, open_cube
from cube.explore.model import map_model, patch_strip
from cube.explore.page import page_data, strip_image, write_page, write_strip
from cube.synth import make_dataset
from cube.synth.hollow import make_hollow

N_PATCHES = 15_600
STRIP_SAMPLE = 60
"""Patches of the hollow cube whose strips are written, to extrapolate the page's writing time."""
STRIP_PATCH = 7_777
"""The hollow cube's patch whose strip is timed (the last patch where a tiny cube has fewer)."""


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def state_bytes(widget: object) -> int:
    """Bytes of a widget's state as sent to the browser: binary buffers as they are, the rest as JSON."""
    total = 0
    todo = [widget.get_state()]  # type: ignore[attr-defined]
    while todo:
        value = todo.pop()
        if isinstance(value, bytes | bytearray | memoryview):
            total += len(value)
        elif isinstance(value, dict):
            todo += list(value.values())
        elif isinstance(value, list | tuple):
            todo += list(value)
        else:
            total += len(value) if isinstance(value, str) else len(json.dumps(value))
    return total


def widget_libraries(model: object, out: dict) -> None:
    """The footprint layer with lonboard and with ipyleaflet (where installed): build time and state bytes."""
    from cube.explore.widget import footprint_layer, footprint_table

    build, layer = timed(lambda: footprint_layer(model))  # type: ignore[arg-type]
    out["lonboard layer of 15,600 footprints, build_s"] = round(build, 2)
    out["lonboard layer state_MB"] = round(state_bytes(layer) / 1e6, 2)
    try:
        import ipyleaflet
    except ImportError:
        out["ipyleaflet layer"] = "not measured (ipyleaflet not installed)"
        return
    table = footprint_table(model)  # type: ignore[arg-type]
    build, layer = timed(lambda: ipyleaflet.GeoJSON(data=json.loads(table.to_json())))
    out["ipyleaflet GeoJSON layer of 15,600 footprints, build_s"] = round(build, 2)
    out["ipyleaflet layer state_MB"] = round(state_bytes(layer) / 1e6, 2)
    out["ratio ipyleaflet / lonboard (state bytes)"] = round(
        out["ipyleaflet layer state_MB"] / out["lonboard layer state_MB"], 1
    )


def full_size(
    tmp: Path, out: dict, n_patches: int = N_PATCHES, strip_sample: int = STRIP_SAMPLE, repeat: int = 3
) -> None:
    """Map, strip and page of the hollow cube of ``n_patches`` patches (15,600)."""
    store = make_hollow(tmp / "hollow.zarr", n_patches)
    opened, ds = timed(lambda: open_cube(store, chunks=None))
    modelled, model = timed(lambda: map_model(ds))
    out["open the cube + map model (15,600 patches)_s"] = round(opened + modelled, 2)
    widget_libraries(model, out)
    out["map opens (cube, model, lonboard layer)_s"] = round(
        opened + modelled + out["lonboard layer of 15,600 footprints, build_s"], 2
    )
    out["one patch's strip (30 steps, hollow)_s"] = round(
        min(timed(lambda: patch_strip(ds, model, min(STRIP_PATCH, n_patches - 1)))[0] for _ in range(repeat)), 3
    )
    built, text = timed(lambda: json.dumps(page_data(model, True)))
    out["page: data.js of 15,600 patches_MB"] = round(len(text) / 1e6, 2)  # type: ignore[arg-type]
    out["page: data.js build_s"] = round(built, 2)
    page = tmp / "page"
    (page / "strips").mkdir(parents=True)
    (page / "thumbs").mkdir()
    per_patch, _ = timed(lambda: [write_strip(ds, model, p, page, None, None, True) for p in range(strip_sample)])
    out["page: strips of 15,600 patches, one thread (extrapolated)_min"] = round(
        per_patch / strip_sample * n_patches / 60, 1
    )


def real_thumbnails(tmp: Path, out: dict, size: int = 256, times: int = 30) -> None:
    """Thumbnails of real pixels: sprite size and strip time of 2 patches of ``size`` px (256), ``times`` steps (30)."""
    root = make_dataset(
        tmp / "src", ["ROIs1868/17"], patches_per_roi=2, size=size, times=times, workers=1, progress=False
    )
    convert(root, tmp / "cube.zarr", workers=1, progress=False)
    written, result = timed(lambda: write_page(tmp / "cube.zarr", tmp / "real"))
    sprites = sorted((tmp / "real" / "thumbs").iterdir())
    out["thumbnail sprite of a 256 px patch, 30 steps (S2 + S1, 1,920 x 128 px WebP)_KB"] = round(
        float(np.mean([p.stat().st_size for p in sprites])) / 1e3, 1
    )
    out["page of 2 real patches, strips and thumbnails_s"] = round(written, 2)
    ds = open_cube(tmp / "cube.zarr", chunks=None)
    model = map_model(ds)
    strip_s, strip = timed(lambda: patch_strip(ds, model, 1))
    out["one real patch's strip (30 steps of 256 px)_s"] = round(strip_s, 3)
    out["one real strip's WebP_KB"] = round(len(strip_image(strip.s2, strip.s1)) / 1e3, 1)  # type: ignore[attr-defined]
    out["page of 2 real patches_MB"] = round(result["bytes"] / 1e6, 2)  # type: ignore[index]


def run(
    n_patches: int = N_PATCHES, strip_sample: int = STRIP_SAMPLE, size: int = 256, times: int = 30, repeat: int = 3
) -> dict:
    """Every row; smaller ``n_patches`` and ``strip_sample`` (hollow cube), ``size`` and ``times`` (real patches)
    and ``repeat`` for a quick check (the rows keep their names)."""
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        full_size(Path(tmp), out, n_patches, strip_sample, repeat)
        real_thumbnails(Path(tmp), out, size, times)
    out["goal"] = "map opens in <= 3 s, a patch's strip in <= 1 s (15,600 patches)"
    return out
