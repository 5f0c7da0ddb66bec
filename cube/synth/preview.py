"""A quick-look figure of a synthetic patch: what the files hold next to the ground truth."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import rasterio

from ..analysis.plots import finish, true_colour
from ..dataset.layout import scan_ts
from .dataset import open_truth


def plot_patch(
    root: str | os.PathLike, patch: int = 0, n_times: int = 8, out: str | os.PathLike | None = None
) -> Path | plt.Figure:
    """Plot S2 (as written, with true cloud and shadow outlines), the cloud-free truth and S1 VV.

    Columns are evenly spaced time steps labelled with their S2 and S1 dates.
    Returns the figure, or the path of the PNG written to ``out`` (never inside a cube, see
    :func:`cube.analysis.plots.finish`).
    """
    truth = open_truth(root).isel(patch=patch)
    files, _ = scan_ts(root)
    key = (str(truth.roi_group.values), int(truth.roi), int(truth.patch_id))
    mine = {(f.modality, f.t): f for f in files if (f.roi.group, f.roi.number, f.pid) == key}
    steps = np.unique(np.linspace(0, truth.sizes["time"] - 1, min(n_times, truth.sizes["time"])).astype(int))
    fig, axes = plt.subplots(3, len(steps), figsize=(2.2 * len(steps), 7.2), squeeze=False)
    for col, t in enumerate(steps):
        s1f, s2f = mine[("S1", t)], mine[("S2", t)]
        with rasterio.open(s2f.path) as src:
            s2 = src.read()
        with rasterio.open(s1f.path) as src:
            vv = src.read(1)
        step = truth.isel(time=t)
        cloud, shadow = step.cloud.values, step.shadow.values
        axes[0, col].imshow(true_colour(s2))
        axes[0, col].contour(cloud, levels=[0.5], colors="yellow", linewidths=0.6)
        axes[0, col].contour(shadow, levels=[0.5], colors="magenta", linewidths=0.6)
        axes[0, col].set_title(f"t={t}  S2 {s2f.date:%d %b}\ncloud {cloud.mean():.0%}", fontsize=8)
        axes[1, col].imshow(true_colour(step.s2_clear.values))
        axes[2, col].imshow(vv, cmap="gray", vmin=-25, vmax=0)
        axes[2, col].set_title(f"S1 {s1f.date:%d %b}", fontsize=8)
    for row, label in enumerate(
        ("S2 as written\n(yellow cloud,\nmagenta shadow)", "S2 cloud-free\n(truth)", "S1 VV [dB]\n(-25..0)")
    ):
        axes[row, 0].set_ylabel(label, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{key[0]}/{key[1]} patch {key[2]} ({truth.region.values}, {truth.split.values})")
    fig.tight_layout()
    return finish(fig, out)
