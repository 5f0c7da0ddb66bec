"""Figures of cloud coverage for people who would rather look than read."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .stats import CoverageIndex, coverage_table, histogram


def plot_coverage(index: CoverageIndex, detector: str | None = None, out: str | os.PathLike | None = None
                  ) -> plt.Figure | Path:
    """Three panels: coverage histogram per region, mean coverage by month per region, clear share by split.

    Returns the figure, or the path of the PNG written to ``out``.
    """
    name = detector or index.detectors[0]
    one = CoverageIndex(index.coverage[:, :, [index.detectors.index(name)]], (name,), index.labels, index.dates)
    fig, (ax_hist, ax_month, ax_clear) = plt.subplots(1, 3, figsize=(15, 4.2))

    counts = histogram(one, bins=10, by="region")
    shares = counts / counts.sum()
    width = 0.8 / len(shares.columns)
    for i, region in enumerate(shares.columns):
        ax_hist.bar(np.arange(len(shares)) + i * width, shares[region], width, label=region)
    ax_hist.set_xticks(np.arange(len(shares)) + 0.4 - width / 2, shares.index, rotation=45, ha="right")
    ax_hist.set(xlabel="cloud coverage of an image", ylabel="share of the region's images",
                title="Coverage histogram")
    ax_hist.legend(title="region")

    by_month = coverage_table(one, ["region", "month"])["mean_coverage"].unstack("region")
    for region in by_month.columns:
        ax_month.plot(by_month.index, by_month[region], marker="o", label=region)
    ax_month.set(xlabel="month", ylabel="mean coverage", ylim=(0, 1), xticks=range(1, 13),
                 title="Coverage by month and region")
    ax_month.legend(title="region")

    clear = coverage_table(one, ["region", "split"])["clear_share"].unstack("split")
    clear.plot.bar(ax=ax_clear, rot=0)
    ax_clear.set(xlabel="region", ylabel="share of clear images (coverage <= 1%)", ylim=(0, 1),
                 title="Clear images by region and split")
    fig.suptitle(f"Cloud coverage ({name}), {int(np.isfinite(one.coverage).sum())} S2 images")
    fig.tight_layout()
    if out is None:
        return fig
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)
