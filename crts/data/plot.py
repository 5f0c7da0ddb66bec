"""Figures of single samples, as TorchGeo's datasets draw them: ``dataset.plot(sample)``.

One figure per sample: the true-colour RGB (B4, B3, B2) of every input with its
cloud mask contoured, the target, and the prediction when the sample carries one
under ``'prediction'`` (as in TorchGeo), each titled with its time step, S2 date
and cloud coverage. matplotlib is imported when a figure is drawn, not with the
datasets (DataLoader workers never draw).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .scaling import S1_LAUNCH, s2_reflectance

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = 6
"""Panels per row of a figure."""
Panel = tuple[list[str], np.ndarray, np.ndarray | None]
"""One image of a figure: title lines, S2 image (13, H, W) in reflectance, cloud mask to contour or None."""


def _steps(value: object) -> list:
    """A sample entry as a list over time steps (SEN12MS-CR and the targets' ``idx`` hold single values)."""
    return list(value) if isinstance(value, list | tuple) else [value]


def s2_date(days: int) -> str:
    """The date of a sample's ``'S2 TD'`` / ``'S1 TD'`` value (days since 2014-04-03).

    Examples
    --------
    >>> s2_date(1540)
    '2018-06-21'
    """
    return str(S1_LAUNCH + np.timedelta64(int(days), "D"))


def _panels(part: dict, name: str, rescale_method: str, coverage: bool, contour: bool) -> list[Panel]:
    """Titled panels of every time step of one part of a sample (``input``, ``target`` or a generic series).

    Titles: ``name`` and the time step, the S2 date, and (with ``coverage``) the cloud coverage in %.
    """
    images = _steps(part["S2"])
    n = len(images)
    steps, days = _steps(part.get("idx", [None] * n)), _steps(part.get("S2 TD", [None] * n))
    shares = _steps(part.get("coverage", [None] * n)) if coverage else [None] * n
    clouds = _steps(part["masks"]) if contour and "masks" in part else [None] * n
    panels = []
    for image, step, day, share, mask in zip(images, steps, days, shares, clouds, strict=True):
        where = None if step is None else f"t = {int(step)}"
        role = f"{name} ({where})" if name and where else name or where
        title = [] if role is None else [role]
        title += [] if day is None else [s2_date(day)]
        title += [] if share is None else [f"clouds {100 * float(share):.0f} %"]
        panels.append((title, s2_reflectance(image, rescale_method), mask))
    return panels


def _numpy(value: object) -> np.ndarray:
    """An array of a torch tensor (on any device, with or without grad) or of anything numpy takes."""
    return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)


def sample_panels(sample: dict, rescale_method: str = "default", cloud_masks: str | None = None) -> list[Panel]:
    """The panels of a sample of :class:`~crts.data.SEN12MSCRTS` (either ``sample_type``) or
    :class:`~crts.data.SEN12MSCR`, then ``sample['prediction']`` (13, H, W, on the S2 scale) if present.

    Masks are contoured on the inputs (a generic series: every step) and coverage shown only with a
    detector (``cloud_masks``); without one the samples' masks are all ones.
    """
    detector = cloud_masks is not None
    if "input" not in sample:  # sample_type 'generic': the whole series
        panels = _panels(sample, "", rescale_method, detector, detector)
    else:
        multi = isinstance(sample["input"]["S2"], list)
        panels = _panels(sample["input"], "input" if multi else "input (cloudy)", rescale_method, detector, detector)
        panels += _panels(
            sample["target"], "target" if multi else "target (cloud-free)", rescale_method, detector, False
        )
    if "prediction" in sample:
        panels.append((["prediction"], s2_reflectance(_numpy(sample["prediction"]), rescale_method), None))
    return panels


def plot_sample(
    sample: dict,
    rescale_method: str = "default",
    cloud_masks: str | None = None,
    *,
    show_titles: bool = True,
    suptitle: str | None = None,
) -> Figure:
    """A figure of one sample: one axis per image (inputs, target, prediction), in rows of :data:`COLUMNS`.

    Parameters
    ----------
    sample : dict
        A sample of :class:`~crts.data.SEN12MSCRTS` or :class:`~crts.data.SEN12MSCR` (not a batch),
        optionally with ``'prediction'``.
    rescale_method : str
        The dataset's ``rescale_method``: how its S2 values map to reflectance.
    cloud_masks : str or None
        The dataset's detector, named in the caption; None draws no masks.
    show_titles : bool
        Title every image with its role, time step, S2 date and cloud coverage.
    suptitle : str, optional
        A title over the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from cube.analysis.plots import CLOUD_COLOUR, READABLE, REFLECTANCE_TOP, draw_clouds, true_colour

    panels = sample_panels(sample, rescale_method, cloud_masks)
    columns = min(len(panels), COLUMNS)
    rows = math.ceil(len(panels) / columns)
    with plt.rc_context(READABLE):
        fig, axes = plt.subplots(
            rows, columns, figsize=(2.6 * columns, 3.4 * rows + 1.0), squeeze=False, layout="constrained"
        )
        for ax in axes.ravel()[len(panels) :]:
            fig.delaxes(ax)
        for ax, (title, image, mask) in zip(axes.ravel(), panels, strict=False):
            ax.imshow(true_colour(image, per_reflectance=1.0))
            if mask is not None:
                draw_clouds(ax, mask)
            if show_titles:
                ax.set_title("\n".join(title))
            ax.set_axis_off()
        clouds = f"; {CLOUD_COLOUR} contours: clouds by {cloud_masks}" if cloud_masks else ""
        fig.supxlabel(f"true colour (B4, B3, B2), reflectance 0-{REFLECTANCE_TOP}{clouds}")
        if suptitle is not None:
            fig.suptitle(suptitle)
    return fig


class SamplePlots:
    """``plot(sample)`` for the datasets (TorchGeo's signature), from their ``rescale_method`` and ``cloud_masks``."""

    rescale_method: str
    cloud_masks: str | None

    def plot(self, sample: dict, show_titles: bool = True, suptitle: str | None = None) -> Figure:
        """Plot a sample of this dataset (see :func:`crts.data.plot.plot_sample`).

        Examples
        --------
        >>> data = SEN12MSCRTS("cube.zarr", split="test")  # doctest: +SKIP
        >>> sample = data[0]  # doctest: +SKIP
        >>> sample["prediction"] = model_output  # optional, (13, H, W) on the S2 scale  # doctest: +SKIP
        >>> data.plot(sample, suptitle="test sample 0").savefig("sample.png")  # doctest: +SKIP
        """
        return plot_sample(sample, self.rescale_method, self.cloud_masks, show_titles=show_titles, suptitle=suptitle)
