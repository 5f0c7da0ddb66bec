"""Cloud-coverage statistics and queries over a cube's ``coverage`` (patch, time, detector) table.

Grouped reductions are sums over one combined integer code per cell of the
table (``numpy.bincount``), so a query over the full data set (tens of
thousands of patches x 30 steps) answers in a fraction of a second.
Everything returns pandas objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
import xarray as xr

from ..clouds.compute import require_clouds
from ..clouds.detectors import DETECTORS
from ..store.views import finished_detectors

GROUP_KEYS: tuple[str, ...] = ("region", "split", "roi", "month", "time", "detector")
"""What coverage tables can be grouped by."""
CLEAR_MAX = 0.01
"""An image counts as clear when at most 1% of it is marked."""
CLOUDY_MIN = 0.5
"""An image counts as cloudy when at least half of it is marked."""


@dataclass(frozen=True)
class CoverageIndex:
    """Coverage of every (patch, time, detector) with the labels to group and filter by, as numpy arrays."""

    coverage: np.ndarray  # (patch, time, detector) float32, NaN where there is no valid image
    detectors: tuple[str, ...]
    labels: pd.DataFrame  # one row per patch: roi_group, roi, patch_id, region, split, roi_name
    dates: np.ndarray  # (patch, time) datetime64 of the S2 acquisitions

    def __repr__(self) -> str:
        patches, steps, _ = self.coverage.shape
        images = int((~np.isnan(self.coverage[:, :, 0])).sum())
        return (
            f"CoverageIndex({patches} patches x {steps} time steps, {images} valid images, "
            f"detectors {', '.join(self.detectors)})"
        )


def coverage_index(ds: xr.Dataset, detector: str | None = None) -> CoverageIndex:
    """Load the coverage table and labels of a cube (one detector, or all with a complete cloud pass).

    Raises
    ------
    ValueError
        If ``detector`` is not one of :data:`cube.clouds.detectors.DETECTORS`, or the cube has no
        complete cloud pass for the detector(s).
    """
    if detector is not None and detector not in DETECTORS:
        raise ValueError(f"invalid detector {detector!r}: choose from {', '.join(DETECTORS)}")
    detectors = (detector,) if detector else (finished_detectors(ds) or DETECTORS)
    for d in detectors:
        require_clouds(ds, d)
    coverage = ds.coverage.sel(detector=list(detectors)).values
    labels = pd.DataFrame({name: ds[name].values for name in ("roi_group", "roi", "patch_id", "region", "split")})
    labels["roi_name"] = labels.roi_group.astype(str) + "/" + labels.roi.astype(str)
    return CoverageIndex(coverage, detectors, labels, ds.S2_date.values)


def _codes(index: CoverageIndex, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of a grouping key broadcast to (patch, time, detector), and the label of each code."""
    shape = index.coverage.shape
    if key in ("region", "split", "roi"):
        codes, uniques = pd.factorize(index.labels["roi_name" if key == "roi" else key], sort=True)
        return np.broadcast_to(codes[:, None, None], shape), np.asarray(uniques)
    if key == "month":
        months = pd.DatetimeIndex(index.dates.ravel()).month.to_numpy().reshape(index.dates.shape)
        return np.broadcast_to(months[:, :, None] - 1, shape), np.arange(1, 13)
    if key == "time":
        return np.broadcast_to(np.arange(shape[1])[None, :, None], shape), np.arange(shape[1])
    if key == "detector":
        return np.broadcast_to(np.arange(shape[2])[None, None, :], shape), np.array(index.detectors)
    raise ValueError(f"invalid grouping {key!r}: choose from {', '.join(GROUP_KEYS)}")


def _group_sums(parts: np.ndarray, codes: tuple[np.ndarray, ...], sizes: tuple[int, ...]) -> np.ndarray:
    """Sums of each of ``parts`` (k, *shape) per combination of group codes (each broadcastable to shape).

    Returns an array (k, *sizes); combinations that never occur sum to 0.
    """
    flat = np.ravel_multi_index([np.broadcast_to(c, parts.shape[1:]).ravel() for c in codes], sizes)
    n = int(np.prod(sizes))
    return np.stack([np.bincount(flat, weights=part.ravel(), minlength=n) for part in parts]).reshape(-1, *sizes)


def coverage_table(
    index: CoverageIndex,
    by: str | tuple[str, ...] | list[str] = ("region",),
    *,
    clear_max: float = CLEAR_MAX,
    cloudy_min: float = CLOUDY_MIN,
) -> pd.DataFrame:
    """Coverage statistics per group.

    Columns: ``images`` (valid S2 images), ``mean_coverage``, ``clear_share``
    (share of images with coverage <= ``clear_max``) and ``cloudy_share``
    (coverage >= ``cloudy_min``). Empty groups are dropped. With several
    detectors in the index, ``detector`` is always one of the groups. ``by``
    is one key (a string) or a sequence of keys from :data:`GROUP_KEYS`.

    Examples
    --------
    >>> coverage_table(coverage_index(ds, "s2cloudless_mask"), by=["region", "month"])  # doctest: +SKIP
    """
    by = [by] if isinstance(by, str) else list(by)
    if len(index.detectors) > 1 and "detector" not in by:  # never pool different detectors
        by = ["detector", *by]
    cov = index.coverage
    valid = ~np.isnan(cov)
    parts = np.stack([valid, np.where(valid, cov, 0), valid & (cov <= clear_max), valid & (cov >= cloudy_min)])
    codes, labels = zip(*(_codes(index, key) for key in by), strict=True)
    sums = _group_sums(parts, codes, tuple(len(lab) for lab in labels))
    groups = pd.MultiIndex.from_product(labels, names=by)
    table = pd.DataFrame(
        sums.reshape(4, -1).T,
        columns=["images", "coverage", "clear", "cloudy"],
        index=groups if len(by) > 1 else groups.get_level_values(0),
    )
    table = table[table.images > 0]
    return pd.DataFrame(
        {
            "images": table.images.astype(int),
            "mean_coverage": table.coverage / table.images,
            "clear_share": table.clear / table.images,
            "cloudy_share": table.cloudy / table.images,
        }
    )


def _detector_column(index: CoverageIndex, detector: str | None) -> np.ndarray:
    name = detector or index.detectors[0]
    if name not in index.detectors:
        raise ValueError(f"detector {name!r} is not in this index ({', '.join(index.detectors)})")
    return index.coverage[:, :, index.detectors.index(name)]


def patches_with_clear_steps(
    index: CoverageIndex, k: int, max_coverage: float, detector: str | None = None
) -> pd.DataFrame:
    """Patches with at least ``k`` time steps whose coverage is below ``max_coverage``.

    Returns their labels and ``n_steps`` (how many such steps), with the
    patch's position in the cube as the index.
    """
    cov = _detector_column(index, detector)
    n_steps = (cov < max_coverage).sum(axis=1)  # NaN (gaps) compare False
    keep = np.flatnonzero(n_steps >= k)
    out = index.labels.iloc[keep][["roi_group", "roi", "patch_id", "region", "split"]].copy()
    out["n_steps"] = n_steps[keep]
    return out


def time_steps_in_range(index: CoverageIndex, low: float, high: float, detector: str | None = None) -> pd.DataFrame:
    """Every (patch, time) whose coverage lies in [``low``, ``high``], with labels, date and coverage."""
    cov = _detector_column(index, detector)
    patch, t = np.nonzero((cov >= low) & (cov <= high))
    out = index.labels.iloc[patch][["roi_group", "roi", "patch_id", "region", "split"]].reset_index(drop=True)
    out.insert(0, "patch", patch)
    out["time"] = t
    out["date"] = index.dates[patch, t]
    out["coverage"] = cov[patch, t]
    return out


def clear_share(
    index: CoverageIndex, by: str = "region", clear_max: float = CLEAR_MAX, detector: str | None = None
) -> pd.Series:
    """Share of clear images (coverage <= ``clear_max``) per group, for one detector."""
    one = CoverageIndex(
        _detector_column(index, detector)[:, :, None], (detector or index.detectors[0],), index.labels, index.dates
    )
    return coverage_table(one, [by], clear_max=clear_max)["clear_share"]


def histogram(index: CoverageIndex, bins: int = 10, by: str | None = None, detector: str | None = None) -> pd.DataFrame:
    """Number of images per coverage bin (rows: bins ``lo-hi``, the last one closed; columns: groups, or 'all')."""
    cov = _detector_column(index, detector)
    edges = np.linspace(0, 1, bins + 1)
    bin_codes = np.clip(np.digitize(cov, edges[1:-1]), 0, bins - 1)
    valid = ~np.isnan(cov)
    if by is None:
        counts = np.bincount(bin_codes[valid], minlength=bins)[:, None]
        columns = np.array(["all"])
    else:
        one = CoverageIndex(cov[:, :, None], ("_",), index.labels, index.dates)
        group_codes, columns = _codes(one, by)
        counts = _group_sums(valid[None], (bin_codes, group_codes[:, :, 0]), (bins, len(columns)))[0].astype(int)
    labels = pd.Index([f"{lo:.2f}-{hi:.2f}" for lo, hi in pairwise(edges)], name="coverage")
    return pd.DataFrame(counts, index=labels, columns=pd.Index(columns, name=by or ""))
