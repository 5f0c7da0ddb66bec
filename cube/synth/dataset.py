"""Write a synthetic SEN12MS-CR-TS (or SEN12MS-CR) tree in the real on-disk layout, plus ground truth."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import transform as warp_transform
from tqdm.auto import tqdm

from .. import __version__
from ..dataset.bands import PIXEL_SIZE_M, S2_BANDS, S2_SCALE
from ..dataset.layout import cr_relpath, ts_relpath
from ..dataset.rois import ALL_ROIS, Roi, region_of, split_of
from ..parallel import check_workers
from ..store.outputs import check_not_in_cube
from .clouds import CIRRUS_OPACITY_MIN, CLOUD_OPACITY_MIN, SHADOW_MIN, apply_sky, draw_coverage, draw_sky
from .scene import CLASSES, make_landscape, render_s1, render_s2

LAYOUTS: tuple[str, ...] = ("sen12mscrts", "sen12mscr")
"""The on-disk layouts :func:`make_dataset` writes: SEN12MS-CR-TS's time series, or SEN12MS-CR's triplets."""
DEFAULT_ROIS: tuple[str, ...] = ("ROIs1868/17", "ROIs1868/56", "ROIs1970/21", "ROIs2017/63")
"""Europe val, train and test, and an African train ROI: every split, two regions."""
MANIFEST = "synthetic.json"
TRUTH_DIR = "ground_truth"
GRID_COLUMNS = 16
"""Patches of an ROI lie on a grid this many patches wide; ``pid = row * 16 + col``."""
YEAR = 2018

# Rough latitude/longitude boxes of the regions, for a plausible UTM zone and seasons.
_REGION_BOX: dict[str, tuple[float, float, float, float]] = {
    "africa": (-5, 15, 10, 35),
    "america": (-30, 45, -110, -50),
    "asiaEast": (20, 45, 100, 140),
    "asiaWest": (20, 45, 40, 75),
    "europa": (40, 60, -5, 30),
    "unassigned": (20, 45, 40, 75),
}


@dataclass(frozen=True)
class RoiPlan:
    """Everything about one ROI that every task for it must agree on."""

    roi: Roi
    region: str
    latitude: float
    epsg: int
    origin: tuple[float, float]  # (x, y) of the mosaic's upper-left corner in the UTM CRS
    pids: tuple[int, ...]
    rows: tuple[int, ...]  # mosaic row of each patch (in patches)
    cols: tuple[int, ...]
    s1_dates: tuple[dt.date, ...]
    s2_dates: tuple[dt.date, ...]
    size: int

    @property
    def mosaic_shape(self) -> tuple[int, int]:
        return (max(self.rows) + 1) * self.size, (max(self.cols) + 1) * self.size

    def transform(self, i: int) -> Affine:
        """Geotransform of the i-th patch: 10 m pixels, patches edge to edge."""
        x = self.origin[0] + self.cols[i] * self.size * PIXEL_SIZE_M
        y = self.origin[1] - self.rows[i] * self.size * PIXEL_SIZE_M
        return Affine(PIXEL_SIZE_M, 0.0, x, 0.0, -PIXEL_SIZE_M, y)

    def window(self, i: int) -> tuple[slice, slice]:
        r, c = self.rows[i] * self.size, self.cols[i] * self.size
        return slice(r, r + self.size), slice(c, c + self.size)


def _rng(seed: int, roi: Roi, *stream: int) -> np.random.Generator:
    """Independent random stream per (seed, ROI, purpose): results do not depend on workers or order."""
    return np.random.default_rng([seed, int(roi.group[4:]), roi.number, *stream])


def _acquisition_dates(rng: np.random.Generator, times: int) -> tuple[list[dt.date], list[dt.date]]:
    """One S2 date per step in its share of 2018, and an S1 date a few days off it."""
    start = dt.date(YEAR, 1, 1)
    step = 365 / times
    s2, s1 = [], []
    for t in range(times):
        day = int(t * step + rng.integers(0, max(int(step), 1)))
        offset = int(rng.choice([-1, 1]) * rng.integers(1, 6))
        s2.append(start + dt.timedelta(days=day))
        s1.append(start + dt.timedelta(days=int(np.clip(day + offset, 0, 364))))
    return s1, s2


def plan_roi(roi: Roi, n_patches: int, size: int, times: int, seed: int) -> RoiPlan:
    """Place an ROI on the globe and its patches on a grid, and draw its acquisition dates."""
    rng = _rng(seed, roi, 0)
    region = region_of(roi)
    lat0, lat1, lon0, lon1 = _REGION_BOX[region]
    lat, lon = float(rng.uniform(lat0, lat1)), float(rng.uniform(lon0, lon1))
    zone = int((lon + 180) // 6) + 1
    epsg = (32600 if lat >= 0 else 32700) + zone
    xs, ys = warp_transform(CRS.from_epsg(4326), CRS.from_epsg(epsg), [lon], [lat])
    origin = (round(xs[0] / 10) * 10.0, round(ys[0] / 10) * 10.0)
    if n_patches <= GRID_COLUMNS:  # a run of neighbours within one grid row
        first = int(rng.integers(0, 40)) * GRID_COLUMNS + int(rng.integers(0, GRID_COLUMNS - n_patches + 1))
    else:
        first = int(rng.integers(0, 40)) * GRID_COLUMNS
    pids = tuple(range(first, first + n_patches))
    row0, col0 = divmod(first, GRID_COLUMNS)
    col_min = col0 if n_patches <= GRID_COLUMNS else 0
    s1_dates, s2_dates = _acquisition_dates(rng, times)
    return RoiPlan(
        roi=roi,
        region=region,
        latitude=lat,
        epsg=epsg,
        origin=origin,
        pids=pids,
        rows=tuple(p // GRID_COLUMNS - row0 for p in pids),
        cols=tuple(p % GRID_COLUMNS - col_min for p in pids),
        s1_dates=tuple(s1_dates),
        s2_dates=tuple(s2_dates),
        size=size,
    )


def _write_tif(path: Path, data: np.ndarray, epsg: int, transform: Affine) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype,
        crs=CRS.from_epsg(epsg),
        transform=transform,
    ) as dst:
        dst.write(data)


def _to_dn(reflectance: np.ndarray) -> np.ndarray:
    return np.clip(np.round(reflectance * S2_SCALE), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def _render_step(
    plan: RoiPlan, t: int, seed: int, coverage: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """S1 (dB), cloudy S2 (DN), clear S2 (DN), cloud and shadow masks and land cover on the mosaic."""
    land = make_landscape(_rng(seed, plan.roi, 1), plan.mosaic_shape, plan.region, plan.latitude)
    rng = _rng(seed, plan.roi, 2, t)
    doy2 = plan.s2_dates[t].timetuple().tm_yday
    doy1 = plan.s1_dates[t].timetuple().tm_yday
    clear = render_s2(land, doy2, float(rng.gamma(2.0, 0.05)), rng)
    if coverage is None:
        coverage = draw_coverage(rng, plan.region, doy2)
    cloudy, cloud, shadow = apply_sky(clear, draw_sky(rng, plan.mosaic_shape, coverage, plan.latitude))
    s1 = render_s1(land, doy1, float(rng.beta(1.5, 3.0)), rng)
    if rng.random() < 0.04:  # swath edge: no radar data in a strip at one side
        width = int(rng.integers(5, plan.size // 4))
        edge = slice(None, width) if rng.random() < 0.5 else slice(-width, None)
        s1[:, :, edge] = np.nan
    return s1, _to_dn(cloudy), _to_dn(clear), cloud, shadow, land.cover


def _truth_template(plan: RoiPlan, times: int) -> xr.Dataset:
    """Empty, lazily allocated ground-truth dataset of one ROI (filled time step by time step)."""
    import dask.array as da  # here: `crts synth --help` reads this module's constants only

    n, s = len(plan.pids), plan.size
    mask_chunks, image_chunks = (1, 1, s, s), (1, 1, len(S2_BANDS), s, s)
    mask = ("patch", "time", "y", "x")
    ds = xr.Dataset(
        {
            "cloud": (
                mask,
                da.zeros((n, times, s, s), dtype=bool, chunks=mask_chunks),
                {
                    "long_name": "true cloud mask",
                    "opacity_min": CLOUD_OPACITY_MIN,
                    "cirrus_opacity_min": CIRRUS_OPACITY_MIN,
                },
            ),
            "shadow": (
                mask,
                da.zeros((n, times, s, s), dtype=bool, chunks=mask_chunks),
                {"long_name": "true cloud-shadow mask (cloud-free pixels only)", "strength_min": SHADOW_MIN},
            ),
            "s2_clear": (
                ("patch", "time", "band", "y", "x"),
                da.zeros((n, times, len(S2_BANDS), s, s), dtype=np.uint16, chunks=image_chunks),
                {"long_name": "cloud- and shadow-free S2 L1C reflectance x 10000"},
            ),
            "land_cover": (
                ("patch", "y", "x"),
                da.zeros((n, s, s), dtype=np.uint8, chunks=(1, s, s)),
                {
                    "flag_values": list(range(len(CLASSES))),
                    "flag_meanings": " ".join(c.replace(" ", "_") for c in CLASSES),
                },
            ),
        },
        coords={
            "patch_id": ("patch", np.array(plan.pids)),
            "time": np.arange(times),
            "band": np.array(S2_BANDS, dtype=object),
            "s2_date": ("time", np.array(plan.s2_dates[:times], dtype="datetime64[ns]")),
        },
        attrs={
            "roi_group": plan.roi.group,
            "roi": plan.roi.number,
            "region": plan.region,
            "split": split_of(plan.roi),
            "epsg": plan.epsg,
        },
    )
    return ds


def _truth_path(out: Path, roi: Roi) -> Path:
    return out / TRUTH_DIR / f"{roi.group}_{roi.number}.zarr"


def _ts_task(out: Path, plan: RoiPlan, t: int, seed: int) -> None:
    """Write time step t of every patch of an ROI (S1, S2 GeoTIFFs and ground truth)."""
    s1, s2, clear, cloud, shadow, cover = _render_step(plan, t, seed, None)
    for i, pid in enumerate(plan.pids):
        win = plan.window(i)
        _write_tif(
            out / ts_relpath("S1", plan.roi, t, plan.s1_dates[t], pid),
            s1[(slice(None), *win)],
            plan.epsg,
            plan.transform(i),
        )
        _write_tif(
            out / ts_relpath("S2", plan.roi, t, plan.s2_dates[t], pid),
            s2[(slice(None), *win)],
            plan.epsg,
            plan.transform(i),
        )
    _write_truth(out, plan, t, clear, cloud, shadow, cover)


def _cr_task(out: Path, plan: RoiPlan, seed: int) -> None:
    """Write the (S1, cloud-free S2, cloudy S2) triplets of every patch of an ROI, and ground truth."""
    _, clear_s2, _, _, _, _ = _render_step(plan, 0, seed, 0.0)
    coverage = float(np.clip(_rng(seed, plan.roi, 3).beta(1.2, 1.5), 0.05, 1.0))
    s1, cloudy, clear, cloud, shadow, cover = _render_step(plan, 1, seed, coverage)
    for i, pid in enumerate(plan.pids):
        win = (slice(None), *plan.window(i))
        for kind, data in (("s1", s1), ("s2", clear_s2), ("s2_cloudy", cloudy)):
            _write_tif(out / cr_relpath(kind, plan.roi, pid), data[win], plan.epsg, plan.transform(i))
    _write_truth(out, plan, 0, clear, cloud, shadow, cover)


def _write_truth(
    out: Path, plan: RoiPlan, t: int, clear: np.ndarray, cloud: np.ndarray, shadow: np.ndarray, cover: np.ndarray
) -> None:
    """Fill time step t of an ROI's ground truth (a chunk-aligned region: safe beside other tasks)."""
    wins = [plan.window(i) for i in range(len(plan.pids))]
    step = xr.Dataset(
        {
            "cloud": (("patch", "time", "y", "x"), np.stack([cloud[w] for w in wins])[:, None]),
            "shadow": (("patch", "time", "y", "x"), np.stack([shadow[w] for w in wins])[:, None]),
            "s2_clear": (
                ("patch", "time", "band", "y", "x"),
                np.stack([clear[(slice(None), *w)] for w in wins])[:, None],
            ),
        }
    )
    store = _truth_path(out, plan.roi)
    step.to_zarr(
        store,
        region={"patch": slice(None), "time": slice(t, t + 1), "y": slice(None), "x": slice(None), "band": slice(None)},
        mode="r+",
        zarr_format=3,
        consolidated=False,
    )
    if t == 0:
        xr.Dataset({"land_cover": (("patch", "y", "x"), np.stack([cover[w] for w in wins]))}).to_zarr(
            store,
            region={"patch": slice(None), "y": slice(None), "x": slice(None)},
            mode="r+",
            zarr_format=3,
            consolidated=False,
        )


def prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse a folder inside a cube (or a cube), a non-empty folder unless asked to, and then only one that holds
    synthetic data."""
    check_not_in_cube(out, "the synthetic data set")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; pass overwrite=True (--overwrite) to replace it")
        if not (out / MANIFEST).exists():
            raise FileExistsError(
                f"{out} holds no {MANIFEST}: it was not made by this generator, "
                "so it is not deleted, even with --overwrite"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _check_arguments(rois: list[Roi], patches_per_roi: int, size: int, times: int, layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"invalid layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    if not 16 <= size <= 2048:
        raise ValueError(f"invalid size {size}: patches are 16 to 2048 pixels wide (the data set uses 256)")
    if not 1 <= times <= 30:
        raise ValueError(f"invalid times {times}: the data set has 1 to 30 time steps per year")
    if not 1 <= patches_per_roi <= 1024:
        raise ValueError(f"invalid patches per ROI {patches_per_roi}: choose 1 to 1024")
    if len(set(rois)) != len(rois):
        raise ValueError(f"invalid ROI list: {', '.join(map(str, rois))} names an ROI twice")


def make_dataset(
    out: str | os.PathLike,
    rois: list[str | Roi] | None = None,
    *,
    patches_per_roi: int = 2,
    size: int = 256,
    times: int = 30,
    seed: int = 0,
    layout: str = "sen12mscrts",
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a synthetic data set in the exact on-disk layout of SEN12MS-CR-TS (or SEN12MS-CR).

    Land cover with seasonal vegetation, thick and thin clouds, cirrus and
    displaced cloud shadows are simulated per ROI over a mosaic of adjacent
    patches; S1 backscatter follows land cover and carries speckle. The true
    cloud and shadow masks, the cloud-free S2 image and the land cover go to
    ``out/ground_truth`` (read them with :func:`open_truth`), outside the
    data set's own folders; ``out/synthetic.json`` records the parameters.

    Parameters
    ----------
    out : path
        Data set root to create; must be empty or absent unless ``overwrite``, and not inside a cube
        (:class:`cube.store.outputs.OutputRefused`).
    rois : list of str or Roi, optional
        ROIs such as ``"ROIs1868/17"``; default :data:`DEFAULT_ROIS`.
    patches_per_roi, size, times : int
        Patches per ROI (neighbours on a grid), patch width in pixels, time steps.
    seed : int
        Same seed and arguments give identical files.
    layout : {"sen12mscrts", "sen12mscr"}
        Multi-temporal layout, or mono-temporal (S1, cloud-free S2, cloudy S2) triplets.
    workers : int, optional
        Processes; default all cores.
    overwrite : bool
        Replace an existing synthetic data set at ``out``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pathlib.Path
        The data set root.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = make_dataset(Path(tmp) / "synthetic", ["ROIs1868/17"], patches_per_roi=1, size=32, times=2,
    ...                         workers=1, progress=False)
    ...     sorted(str(p.relative_to(root)) for p in root.rglob("S2/*/*.tif"))  # doctest: +NORMALIZE_WHITESPACE
    ['ROIs1868/17/S2/0/s2_ROIs1868_17_ImgNo_0_2018-05-11_patch_352.tif',
     'ROIs1868/17/S2/1/s2_ROIs1868_17_ImgNo_1_2018-07-06_patch_352.tif']
    """
    parsed = [r if isinstance(r, Roi) else Roi.parse(r) for r in (rois or DEFAULT_ROIS)]
    _check_arguments(parsed, patches_per_roi, size, times, layout)
    check_workers(workers)
    out = Path(out)
    prepare_output(out, overwrite)
    steps = times if layout == "sen12mscrts" else 1  # SEN12MS-CR's truth: the cloudy image
    manifest = {
        "generator": "cube.synth",
        "version": __version__,
        "layout": layout,
        "rois": [str(r) for r in parsed],
        "patches_per_roi": patches_per_roi,
        "size": size,
        "times": steps,
        "seed": seed,
        "complete": False,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))

    plans = [plan_roi(r, patches_per_roi, size, times if layout == "sen12mscrts" else 2, seed) for r in parsed]
    for plan in plans:
        _truth_template(plan, steps).to_zarr(
            _truth_path(out, plan.roi), compute=False, zarr_format=3, consolidated=False
        )
    tasks: list[Callable[[], None]]
    if layout == "sen12mscrts":
        tasks = [partial(_ts_task, out, plan, t, seed) for plan in plans for t in range(times)]
    else:
        tasks = [partial(_cr_task, out, plan, seed) for plan in plans]
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(tasks), desc="synthesising", unit="step", disable=not progress)
    if workers == 1:
        for task in tasks:
            task()
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            for future in as_completed([pool.submit(task) for task in tasks]):
                future.result()
                bar.update()
    bar.close()
    manifest["complete"] = True
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


def open_truth(root: str | os.PathLike) -> xr.Dataset:
    """Ground truth of a synthetic data set as one lazily loaded Dataset.

    Variables, over dims ``patch`` (every patch of every ROI, in the data set's
    sample order), ``time``, ``band``, ``y``, ``x``:

    - ``cloud`` (bool): true cloud mask (opacity >= 0.2 or cirrus >= 0.12);
    - ``shadow`` (bool): true shadow mask, on cloud-free pixels only;
    - ``s2_clear`` (uint16): the S2 image without clouds and shadows, x 10000;
    - ``land_cover`` (uint8, patch, y, x): class codes, see its ``flag_meanings``.

    Coordinates ``roi_group``, ``roi``, ``patch_id`` label patches; ``s2_date``
    (patch, time) holds acquisition dates. For the mono-temporal layout ``time``
    has length 1 and describes the cloudy image.

    Raises
    ------
    FileNotFoundError
        If ``root`` holds no complete synthetic data set.
    """
    root = Path(root)
    manifest_path = root / MANIFEST
    if not manifest_path.exists() or not json.loads(manifest_path.read_text()).get("complete"):
        raise FileNotFoundError(f"{root}: no complete synthetic data set ({MANIFEST} missing or incomplete)")
    manifest = json.loads(manifest_path.read_text())
    parts = []
    for roi in sorted((Roi.parse(r) for r in manifest["rois"]), key=ALL_ROIS.index):
        ds = xr.open_zarr(_truth_path(root, roi), consolidated=False)
        n = ds.sizes["patch"]
        ds = ds.assign_coords(
            roi_group=("patch", [roi.group] * n),
            roi=("patch", [roi.number] * n),
            region=("patch", [ds.attrs["region"]] * n),
            split=("patch", [ds.attrs["split"]] * n),
            s2_date=ds.s2_date.expand_dims(patch=n),
        )
        parts.append(ds.drop_attrs())
    return xr.concat(parts, dim="patch", data_vars="all", coords="different", compat="equals", join="outer")
