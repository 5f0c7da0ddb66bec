"""What the map of a cube's patches shows, without a browser: footprints, values, colours, filters, hover text,
and one patch's year as a strip of thumbnails.

Everything here is plain numpy/pandas, shared by the Jupyter widget (:mod:`cube.explore.widget`) and the static
page (:mod:`cube.explore.page`), so both show the same values in the same colours. The map reads only the cube's
small arrays (labels, georeference, dates, coverage table); a strip reads one patch's images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import shapely
import xarray as xr
from matplotlib.colors import to_hex

from ..analysis.plots import CLOUD_COLOUR, MONTHS, REGION_COLOURS, SPLIT_COLOURS, true_colour
from ..analysis.stats import CLEAR_MAX, coverage_index
from ..store.index import footprints

COLOUR_KEYS = ("coverage", "clear", "month", "split", "region")
"""What the map can colour the patches by: mean cloud coverage, clear-image share or coverage in one month (of a
detector), the split or the region."""
RAMP = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725")
"""Colours of values 0 .. 1 (matplotlib's viridis at ten even stops), interpolated linearly between stops; the
page's script interpolates the same stops, so both draw a value in the same colour."""
MISSING_COLOUR = "#9e9e9e"
"""Colour of a patch without a value (no valid S2 image in the month, or none at all)."""
THUMB_PX = 64
"""Edge of a thumbnail in px: a 256 px patch averaged over 4 x 4 px blocks (40 m pixels), enough to tell clear
from cloudy and small enough that one patch's 30 steps make a strip of 1,920 x 64 px."""
S1_DB_RANGE = (-25.0, 0.0)
"""VV backscatter in dB drawn black .. white (the original loader's clip range of S1, docs/reference.md)."""


class StepChoice(Protocol):
    """Time steps chosen per patch (e.g. :class:`crts.data.sampling.SampleIndex`): ``inputs`` (patches, n) and
    ``target`` (patches,)."""

    @property
    def inputs(self) -> np.ndarray: ...

    @property
    def target(self) -> np.ndarray: ...


Pick = Callable[[np.ndarray], StepChoice]
"""The original loader's sampling rule applied to a (patches, time) coverage table (NaN: no image), e.g.
``functools.partial(crts.data.sampling.choose_steps, n_input_samples=3)``."""


@dataclass(frozen=True)
class MapModel:
    """Every patch of a cube as the map shows it (row i: the cube's patch i)."""

    labels: pd.DataFrame  # roi ('ROIs1868/17'), patch_id, split, region
    outlines: np.ndarray  # (patch, 4, 2) lon/lat corners of the footprint
    coverage: np.ndarray  # (patch, time, detector) float32, NaN where there is no valid S2 image
    dates: np.ndarray  # (patch, time) datetime64[D] of the S2 acquisitions
    detectors: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def detector(self, name: str | None) -> int:
        """Position of detector ``name`` (default the first one) in :attr:`coverage`."""
        name = name or self.detectors[0]
        if name not in self.detectors:
            raise ValueError(f"invalid detector {name!r}: this cube's cloud pass has {', '.join(self.detectors)}")
        return self.detectors.index(name)

    def check_patch(self, patch: int) -> int:
        """``patch`` as an int, refused in one line where it is not a patch of the cube."""
        if isinstance(patch, bool) or not isinstance(patch, int | np.integer) or not 0 <= patch < len(self):
            raise ValueError(f"invalid patch {patch!r}: the cube's patches are 0 .. {len(self) - 1}")
        return int(patch)


def map_model(ds: xr.Dataset) -> MapModel:
    """The map of a cube (:func:`cube.open_cube`; ``chunks=None`` is fastest), from its small arrays only.

    Raises
    ------
    ValueError
        If the cube has no finished cloud pass (nothing to colour by), or is a SEN12MS-CR cube.

    Examples
    --------
    >>> model = map_model(cube.open_cube("cube.zarr", chunks=None))  # doctest: +SKIP
    """
    if ds.attrs.get("layout") != "sen12mscrts":
        raise ValueError("the map shows SEN12MS-CR-TS cubes (time series of S2 images with cloud coverage)")
    index = coverage_index(ds)
    _, wgs84 = footprints(ds)
    corners = shapely.get_coordinates(wgs84).reshape(len(wgs84), 5, 2)[:, :4]
    labels = pd.DataFrame(
        {
            "roi": index.labels.roi_name.to_numpy(str),
            "patch_id": index.labels.patch_id.to_numpy(np.int64),
            "split": index.labels.split.to_numpy(str),
            "region": index.labels.region.to_numpy(str),
        }
    )
    return MapModel(labels, corners, index.coverage, index.dates.astype("datetime64[D]"), index.detectors)


def patch_values(model: MapModel, by: str, detector: str | None = None, month: int | None = None) -> np.ndarray:
    """One value per patch: floats 0 .. 1 (NaN: none) for coverage, clear and month; labels for split, region.

    ``coverage``: mean cloud coverage of the patch's valid S2 images; ``clear``: their share with coverage at
    most :data:`cube.analysis.stats.CLEAR_MAX`; ``month``: mean coverage of its images in ``month`` (1 .. 12).
    """
    if by not in COLOUR_KEYS:
        raise ValueError(f"invalid colour key {by!r}: choose from {', '.join(COLOUR_KEYS)}")
    if by in ("split", "region"):
        return model.labels[by].to_numpy()
    cov = model.coverage[:, :, model.detector(detector)]
    if by == "month":
        if isinstance(month, bool) or not isinstance(month, int | np.integer) or not 1 <= month <= 12:
            raise ValueError(f"invalid month {month!r}: a month is 1 .. 12")
        in_month = (model.dates.astype("datetime64[M]").astype(int) % 12 + 1) == month
        cov = np.where(in_month, cov, np.nan)
    known = ~np.isnan(cov)
    count = known.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if by == "clear":
            return np.where(count > 0, (known & (cov <= CLEAR_MAX)).sum(axis=1) / count, np.nan)
        return np.where(count > 0, np.where(known, cov, 0).sum(axis=1) / count, np.nan)


def ramp_colours(values: np.ndarray) -> np.ndarray:
    """RGB (n, 3) uint8 of values 0 .. 1 on :data:`RAMP` (clipped; NaN: :data:`MISSING_COLOUR`).

    Examples
    --------
    >>> ramp_colours(np.array([0.0, 1.0, np.nan])).tolist()
    [[68, 1, 84], [253, 231, 37], [158, 158, 158]]
    """
    stops = np.array([rgb(c) for c in RAMP], float)
    x = np.clip(np.nan_to_num(np.asarray(values, float)), 0, 1) * (len(RAMP) - 1)
    low = np.minimum(np.floor(x).astype(int), len(RAMP) - 2)
    mixed = stops[low] + (stops[low + 1] - stops[low]) * (x - low)[:, None]
    out = np.rint(mixed).astype(np.uint8)
    out[np.isnan(np.asarray(values, float))] = rgb(MISSING_COLOUR)
    return out


def rgb(colour: str) -> tuple[int, int, int]:
    """A matplotlib colour (name, grey level or hex) as 8-bit RGB."""
    hexed = to_hex(colour)
    return int(hexed[1:3], 16), int(hexed[3:5], 16), int(hexed[5:7], 16)


CATEGORY_COLOURS = {"split": SPLIT_COLOURS, "region": REGION_COLOURS}
"""The colours of splits and regions: those of the coverage figures (:mod:`cube.analysis.plots`)."""


@dataclass(frozen=True)
class Colouring:
    """The map's colours for one choice: per patch RGB, the legend (label, hex colour) and what the values mean."""

    values: np.ndarray
    rgb: np.ndarray  # (patch, 3) uint8
    legend: list[tuple[str, str]]
    title: str
    units: str


def units_of(by: str, detector: str, month: int | None = None) -> tuple[str, str]:
    """The legend's title and units of a colour key (the page shows the same words)."""
    if by == "coverage":
        return f"mean cloud coverage ({detector})", "fraction of the pixels of the patch's valid S2 images, 0 .. 1"
    if by == "clear":
        return f"clear-image share ({detector})", f"share of the patch's S2 images with coverage <= {CLEAR_MAX:.0%}"
    if by == "month":
        name = MONTHS[month - 1] if month else "a month"
        return f"cloud coverage in {name} ({detector})", f"mean fraction of the pixels of the S2 images of {name}"
    return by, "the data set's " + ("split (train, val, test)" if by == "split" else "region of the ROI")


def colouring(
    model: MapModel, by: str = "coverage", detector: str | None = None, month: int | None = None
) -> Colouring:
    """Colours, legend and units of the patches for ``by`` (:data:`COLOUR_KEYS`).

    Values 0 .. 1 go through :data:`RAMP` (legend: five steps 0, 0.25 .. 1, and 'no value' where some patch has
    none); splits and regions take :data:`CATEGORY_COLOURS` (legend: those present).
    """
    values = patch_values(model, by, detector, month)
    title, units = units_of(by, detector or model.detectors[0], month)
    if by in CATEGORY_COLOURS:
        palette = CATEGORY_COLOURS[by]
        colours = np.array([rgb(palette[v]) for v in values], np.uint8).reshape(-1, 3)
        legend = [(name, to_hex(palette[name])) for name in palette if name in set(values)]
        return Colouring(values, colours, legend, title, units)
    steps = np.linspace(0, 1, 5)
    legend = [(f"{v:.2f}", "#{:02x}{:02x}{:02x}".format(*c)) for v, c in zip(steps, ramp_colours(steps), strict=True)]
    if np.isnan(values).any():
        legend.append(("no value", MISSING_COLOUR))
    return Colouring(values, ramp_colours(values), legend, title, units)


@dataclass(frozen=True)
class Filters:
    """Which patches the map shows: splits and regions (None: all) and a range of mean coverage of a detector."""

    splits: tuple[str, ...] | None = None
    regions: tuple[str, ...] | None = None
    coverage: tuple[float, float] = (0.0, 1.0)
    detector: str | None = None

    def __post_init__(self) -> None:
        for name, given in (("split", self.splits), ("region", self.regions)):
            known = tuple(CATEGORY_COLOURS[name])
            wrong = sorted(set(given or ()) - set(known))
            if wrong:
                raise ValueError(f"invalid {name} {wrong[0]!r}: choose from {', '.join(known)}")
        low, high = self.coverage
        if not 0.0 <= low <= high <= 1.0:  # NaN fails too
            raise ValueError(f"invalid coverage range {low}..{high}: a range within 0 .. 1, low first")


def selected(model: MapModel, filters: Filters) -> np.ndarray:
    """(patch,) bool: the patches that pass ``filters`` (a patch without a coverage value passes only 0 .. 1)."""
    keep = np.ones(len(model), bool)
    for column, allowed in (("split", filters.splits), ("region", filters.regions)):
        if allowed is not None:
            keep &= model.labels[column].isin(allowed).to_numpy()
    if filters.coverage != (0.0, 1.0):
        mean = patch_values(model, "coverage", filters.detector)
        keep &= (mean >= filters.coverage[0]) & (mean <= filters.coverage[1])
    return keep


def hover_text(model: MapModel, patch: int, detector: str | None = None) -> str:
    """What hovering over a patch says: ROI, patch, split, region and mean coverage.

    Examples
    --------
    >>> hover_text(model, 0)  # doctest: +SKIP
    'ROIs1868/17 patch 489 | val | europa | mean coverage 42 % (s2cloudless_mask, 4 images)'
    """
    row = model.labels.iloc[model.check_patch(patch)]
    cov = model.coverage[patch, :, model.detector(detector)]
    images = int((~np.isnan(cov)).sum())
    mean = f"{100 * np.nanmean(cov):.0f} %" if images else "n/a"
    return (
        f"{row.roi} patch {row.patch_id} | {row.split} | {row.region} | mean coverage {mean} "
        f"({detector or model.detectors[0]}, {images} images)"
    )


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """Means of ``factor`` x ``factor`` px blocks over the last two axes (edges that do not fill a block dropped)."""
    h, w = (image.shape[-2] // factor) * factor, (image.shape[-1] // factor) * factor
    blocks = image[..., :h, :w].reshape(*image.shape[:-2], h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(-3, -1))


def outline(mask: np.ndarray) -> np.ndarray:
    """The border pixels of the True areas of a (..., H, W) mask: those with a False 4-neighbour inside it."""
    inner = np.pad(mask, [(0, 0)] * (mask.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    neighbours = inner[..., :-2, 1:-1] & inner[..., 2:, 1:-1] & inner[..., 1:-1, :-2] & inner[..., 1:-1, 2:]
    return mask & ~neighbours


@dataclass(frozen=True)
class PatchStrip:
    """One patch's year: per time step its thumbnails, dates, coverage per detector and the loader's pick."""

    patch: int
    title: str  # hover_text of the patch
    s2_dates: list[str]  # ISO dates ('' where the step has no S2 image)
    s1_dates: list[str]
    valid: np.ndarray  # (time,) bool: the S2 image exists
    coverage: np.ndarray  # (time, detector)
    detectors: tuple[str, ...]
    s2: np.ndarray  # (time, h, w, 3) uint8 true colour, the mask contoured in CLOUD_COLOUR
    s1: np.ndarray  # (time, h, w) uint8 VV backscatter, S1_DB_RANGE black .. white
    inputs: list[int]  # the loader's input steps (empty without a pick)
    target: int | None  # its target step

    def caption(self, step: int) -> str:
        """The words under a thumbnail: date and cloud % of the strip's first detector."""
        cov = self.coverage[step, 0]
        return f"{self.s2_dates[step] or 'no image'} {'' if np.isnan(cov) else f'{cov:.0%}'}".strip()


def iso_dates(days: np.ndarray, valid: np.ndarray) -> list[str]:
    """ISO dates of ``days`` ('' where not ``valid``)."""
    return [str(day) if ok else "" for day, ok in zip(days.astype("datetime64[D]"), valid, strict=True)]


def thumbnails(ds: xr.Dataset, patch: int, detector: str) -> tuple[np.ndarray, np.ndarray]:
    """Thumbnails of :data:`THUMB_PX` of every step of a patch: S2 true colour with ``detector``'s mask
    contoured (time, h, w, 3) and S1 VV (time, h, w), both uint8.

    Reads the patch's S2, S1 and mask one step at a time (basic reads, the fast path of a sharded cube).
    """
    factor = max(1, ds.sizes["x"] // THUMB_PX)
    s2, s1 = [], []
    for t in range(ds.sizes["time"]):
        colour = true_colour(ds.S2.isel(patch=patch, time=t).values).astype(np.float32)  # only B4, B3, B2 scaled
        s2.append(shrink(colour.transpose(2, 0, 1), factor).transpose(1, 2, 0))
        s1.append(shrink(ds.S1.isel(patch=patch, time=t).values[0], factor))
    masks = shrink(np.nan_to_num(ds[detector].isel(patch=patch).values.astype(np.float32)), factor) >= 0.5
    rgb_steps = np.rint(np.stack(s2) * 255).astype(np.uint8)
    rgb_steps[outline(masks)] = rgb(CLOUD_COLOUR)
    low, high = S1_DB_RANGE
    grey = np.clip((np.nan_to_num(np.stack(s1), nan=low) - low) / (high - low), 0, 1)
    return rgb_steps, np.rint(grey * 255).astype(np.uint8)


def picks(
    model: MapModel, pick: Pick | None, detector: str | None = None, rows: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The loader's inputs (patch, n) and target (patch,) of every patch, or of ``rows`` (-1 where the rule
    refuses a patch, e.g. too few valid steps); no columns and all -1 without a rule."""
    cov = model.coverage[:, :, model.detector(detector)]
    cov = cov if rows is None else cov[rows]
    if pick is None:
        return np.zeros((len(cov), 0), np.int64), np.full(len(cov), -1, np.int64)
    try:
        chosen = pick(cov)
        return np.asarray(chosen.inputs, np.int64), np.asarray(chosen.target, np.int64)
    except ValueError:  # some patch refused: choose row by row
        each: list[tuple[np.ndarray | None, int]] = []
        for row in cov:
            try:
                one = pick(row[None])
                each.append((np.asarray(one.inputs[0], np.int64), int(one.target[0])))
            except ValueError:
                each.append((None, -1))
        n = max((len(i) for i, _ in each if i is not None), default=0)
        inputs = np.array([i if i is not None else np.full(n, -1) for i, _ in each], np.int64).reshape(len(cov), n)
        return inputs, np.array([t for _, t in each], np.int64)


def patch_strip(
    ds: xr.Dataset, model: MapModel, patch: int, detector: str | None = None, pick: Pick | None = None
) -> PatchStrip:
    """One patch's year at a glance (:class:`PatchStrip`), reading only that patch's images.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube the map was made of.
    model : MapModel
        Its map (:func:`map_model`).
    patch : int
        The patch's position in the cube.
    detector : str, optional
        Whose mask is contoured and whose coverage the pick uses (default: the first of the cloud pass).
    pick : callable, optional
        The original loader's rule (:data:`Pick`), to mark its inputs and target.

    Examples
    --------
    >>> strip = patch_strip(ds, map_model(ds), 0)  # doctest: +SKIP
    >>> strip.caption(0)  # doctest: +SKIP
    '2018-01-03 42%'
    """
    patch, d = model.check_patch(patch), model.detector(detector)
    name = model.detectors[d]
    order = (d, *(k for k in range(len(model.detectors)) if k != d))  # the chosen detector first
    valid = {m: ds.valid.isel(patch=patch).sel(modality=m).values for m in ("S1", "S2")}
    s2, s1 = thumbnails(ds, patch, name)
    inputs, target = picks(model, pick, name, rows=[patch])
    return PatchStrip(
        patch=patch,
        title=hover_text(model, patch, name),
        s2_dates=iso_dates(ds.S2_date.isel(patch=patch).values, valid["S2"]),
        s1_dates=iso_dates(ds.S1_date.isel(patch=patch).values, valid["S1"]),
        valid=valid["S2"],
        coverage=model.coverage[patch][:, list(order)],
        detectors=tuple(model.detectors[k] for k in order),
        s2=s2,
        s1=s1,
        inputs=[int(i) for i in inputs[0] if i >= 0],
        target=int(target[0]) if target[0] >= 0 else None,
    )
