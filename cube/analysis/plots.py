"""Figures of cloud coverage for people who would rather look than read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from ..dataset.bands import S2_SCALE
from ..store.outputs import replacing
from .stats import CoverageIndex, coverage_table, histogram

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

READABLE: dict[RcKeyType, float] = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "figure.titlesize": 13,
}
"""Font sizes (points) of this project's figures: at least 10 pt, so they read at the saved size."""
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
REGION_COLOURS = {
    "africa": "tab:orange",
    "america": "tab:green",
    "asiaEast": "tab:red",
    "asiaWest": "tab:purple",
    "europa": "tab:blue",
    "unassigned": "tab:brown",
}
"""One colour per region, the same in every panel and figure."""
SPLIT_COLOURS = {"train": "0.2", "val": "0.5", "test": "0.8"}
"""Greys for the splits, so that a split is never mistaken for a region."""
CLOUD_COLOUR = "cyan"
"""Colour of cloud-mask contours drawn on true-colour images."""
REFLECTANCE_TOP = 0.3
"""True-colour images stretch reflectance 0 .. 0.3 linearly to black .. white (brighter clips)."""


def true_colour(s2: np.ndarray, per_reflectance: float = S2_SCALE) -> np.ndarray:
    """RGB (H, W, 3) in [0, 1] of a 13-band S2 image (13, H, W): B4, B3, B2, reflectance 0 .. 0.3 stretched.

    ``per_reflectance`` is the image's value at reflectance 1 (10000 for stored digital numbers).

    Examples
    --------
    >>> true_colour(np.full((13, 1, 1), 1500.0))[0, 0]
    array([0.5, 0.5, 0.5])
    """
    return np.clip(np.asarray(s2)[[3, 2, 1]].transpose(1, 2, 0) / (per_reflectance * REFLECTANCE_TOP), 0, 1)


def draw_clouds(ax: plt.Axes, mask: np.ndarray) -> None:
    """Contour a cloud mask (0/1, or a map in [0, 1]; NaN counts as clear) at 0.5 on ``ax``.

    A clear mask gets an empty contour, so every masked image has one.
    """
    ax.contour(np.nan_to_num(np.asarray(mask, np.float32)), levels=[0.5], colors=CLOUD_COLOUR, linewidths=1.2)


def _counted(name: str, images: int) -> str:
    return f"{name} (n={images})"


def _histogram_panel(ax: plt.Axes, one: CoverageIndex) -> None:
    """Share of each region's images per coverage bin, grouped bars, image counts in the legend."""
    counts = histogram(one, bins=10, by="region")
    width = 0.8 / len(counts.columns)
    for i, region in enumerate(counts.columns):
        ax.bar(
            np.arange(len(counts)) + i * width,
            counts[region] / counts[region].sum(),
            width,
            color=REGION_COLOURS[region],
            label=_counted(region, counts[region].sum()),
        )
    ax.set_xticks(np.arange(len(counts)) + 0.4 - width / 2, counts.index, rotation=45, ha="right")
    ax.set(
        xlabel="cloud coverage of an image (fraction of its pixels)",
        ylabel="share of the region's images",
        title="Coverage histogram",
    )
    ax.legend(title="region, S2 images")


def _month_panel(ax: plt.Axes, one: CoverageIndex) -> None:
    """Mean coverage by month, one line per region, image counts in the legend."""
    table = coverage_table(one, ["region", "month"])
    by_month, images = table.mean_coverage.unstack("region"), table.images.groupby("region").sum()
    for region in by_month.columns:
        ax.plot(
            by_month.index,
            by_month[region],
            marker="o",
            color=REGION_COLOURS[region],
            label=_counted(region, images[region]),
        )
    ax.set_xticks(range(1, 13), MONTHS)
    ax.set(
        xlabel="month of the S2 acquisition",
        ylabel="mean coverage (fraction of pixels)",
        ylim=(0, 1),
        title="Coverage by month and region",
    )
    ax.legend(title="region, S2 images")


def _split_panel(ax: plt.Axes, one: CoverageIndex) -> None:
    """Share of clear images per region and split, grey bars labelled with their image counts."""
    table = coverage_table(one, ["region", "split"])
    clear, images = table.clear_share.unstack("split"), table.images.unstack("split")
    splits = [s for s in SPLIT_COLOURS if s in clear.columns]
    width = 0.8 / len(splits)
    for i, split in enumerate(splits):
        bars = ax.bar(
            np.arange(len(clear)) + (i - (len(splits) - 1) / 2) * width,
            clear[split].fillna(0),
            width,
            color=SPLIT_COLOURS[split],
            edgecolor="black",
            label=split,
        )
        ax.bar_label(bars, [f"n={n:.0f}" if n > 0 else "" for n in images[split].fillna(0)], rotation=90, padding=2)
    ax.set_xticks(np.arange(len(clear)), clear.index)
    ax.set(
        xlabel="region",
        ylabel="share of clear images (coverage <= 1%)",
        ylim=(0, 1.3),
        yticks=np.linspace(0, 1, 6),
        title="Clear images by region and split\n(n: S2 images of the bar)",
    )
    ax.legend(title="split", loc="upper right")


def plot_coverage(
    index: CoverageIndex, detector: str | None = None, out: str | os.PathLike | None = None
) -> plt.Figure | Path:
    """Three panels: coverage histogram per region, mean coverage by month per region, clear share by split.

    Regions have the same colour in every panel (:data:`REGION_COLOURS`), splits are greys
    (:data:`SPLIT_COLOURS`); legends and bar labels give the number of S2 images of each group.

    Parameters
    ----------
    index : CoverageIndex
        The coverage table (:func:`cube.analysis.stats.coverage_index`).
    detector : str, optional
        Whose coverage to plot; default the index's first detector.
    out : path, optional
        Where to write the figure as PNG (110 dpi).

    Returns
    -------
    matplotlib.figure.Figure or pathlib.Path
        The figure, or the path of the PNG written to ``out``.
    """
    name = detector or index.detectors[0]
    one = CoverageIndex(index.coverage[:, :, [index.detectors.index(name)]], (name,), index.labels, index.dates)
    with plt.rc_context(READABLE):
        fig, axes = plt.subplots(1, 3, figsize=(17, 5.2), layout="constrained")
        for panel, ax in zip((_histogram_panel, _month_panel, _split_panel), axes, strict=True):
            panel(ax, one)
        fig.suptitle(f"Cloud coverage ({name}), {int(np.isfinite(one.coverage).sum())} S2 images")
    return finish(fig, out)


def finish(fig: plt.Figure, out: str | os.PathLike | None, dpi: int = 110) -> plt.Figure | Path:
    """The figure itself if ``out`` is None, else the path of the image written there (the figure is closed).

    The image is written whole or not at all (:func:`cube.store.outputs.replacing`), in the format its suffix names
    (PNG without one); an ``out`` inside a cube, or where the file system refuses files, is refused
    (:class:`cube.store.outputs.OutputRefused`, one line naming it) with nothing written.
    """
    if out is None:
        return fig
    out = Path(out)
    try:
        with replacing(out) as partial:
            fig.savefig(partial, dpi=dpi, format=out.suffix[1:] or "png")
    finally:
        plt.close(fig)
    return out
