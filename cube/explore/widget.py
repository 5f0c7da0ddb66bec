"""The map of a cube's patches in Jupyter: :func:`explore` (lonboard for the map, ipywidgets for the controls).

lonboard was chosen by measurement (``benchmarks/bench_explore.py``, the 15,600 patches of a hollow cube):
it sends the footprints to the browser as one binary GeoArrow table, ipyleaflet as GeoJSON text; see
docs/exploring.md for the numbers. Both come with the ``explore`` extra (``pip install
'sen12mscrts-cube[explore]'``); this module is imported only when :func:`explore` is called.
"""

from __future__ import annotations

import io

import geopandas as gpd
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import shapely
import xarray as xr
from lonboard import Map, PolygonLayer
from lonboard.layer_extension import DataFilterExtension

from ..analysis.plots import MONTHS, READABLE, draw_clouds, true_colour
from .model import (
    CATEGORY_COLOURS,
    COLOUR_KEYS,
    Filters,
    MapModel,
    PatchStrip,
    Pick,
    colouring,
    map_model,
    patch_strip,
    selected,
)
from .page import strip_image


def footprint_table(model: MapModel, detector: str | None = None) -> gpd.GeoDataFrame:
    """The patches as a GeoDataFrame (WGS84) with what the map's tooltip shows, the fields of
    :func:`cube.explore.model.hover_text`: ROI, patch, split, region and mean coverage (a column per field: text
    made per patch took 3.5 s for the 15,600 patches, the table 0.2 s)."""
    table = model.labels.copy()
    table["coverage"] = colouring(model, "coverage", detector).values
    return gpd.GeoDataFrame(table, geometry=shapely.polygons(model.outlines), crs="EPSG:4326")


def footprint_layer(model: MapModel, detector: str | None = None) -> PolygonLayer:
    """The lonboard layer of every footprint, coloured by mean coverage, all shown, selectable by a click."""
    # get_filter_value and filter_range are DataFilterExtension's keywords, which lonboard's signature leaves out
    return PolygonLayer.from_geopandas(  # type: ignore[call-arg]
        footprint_table(model, detector),
        get_fill_color=colouring(model, "coverage", detector).rgb,
        get_line_color=[40, 40, 40],
        line_width_min_pixels=0.5,
        pickable=True,
        auto_highlight=True,
        extensions=[DataFilterExtension(filter_size=1)],
        get_filter_value=np.ones(len(model), np.float32),
        filter_range=[0.5, 1.5],
    )


def legend_html(model: MapModel, by: str, detector: str | None, month: int | None) -> str:
    """The legend of a colouring as HTML: title, units, a swatch per entry."""
    colours = colouring(model, by, detector, month)
    rows = "".join(
        f'<span style="display:inline-block;width:14px;height:10px;background:{c};border:1px solid #666"></span> '
        f"{label}<br>"
        for label, c in colours.legend
    )
    return f"<b>{colours.title}</b><br><i>{colours.units}</i><br>{rows}"


def strip_html(strip: PatchStrip) -> str:
    """A patch's strip as HTML: its thumbnails (one WebP, S2 above S1) and the date and cloud % of each step,
    the loader's inputs framed orange and its target red."""
    import base64

    sprite = base64.b64encode(strip_image(strip.s2, strip.s1)).decode()
    px, steps = strip.s2.shape[1], len(strip.s2_dates)
    cells = []
    for t in range(steps):
        frame = "#d62728" if t == strip.target else "#ff8c00" if t in strip.inputs else "transparent"
        image = (
            f'<div style="width:{px}px;height:{2 * px}px;background:url(data:image/webp;base64,{sprite}) '
            f'-{t * px}px 0"></div>'
        )
        cells.append(
            f'<div style="display:inline-block;border:3px solid {frame};text-align:center;font-size:10px">'
            f"{image}{strip.caption(t)}</div>"
        )
    return f"<b>{strip.title}</b><br>{''.join(cells)}"


def step_figure(ds: xr.Dataset, strip: PatchStrip, step: int) -> plt.Figure:
    """One step larger: true colour with the mask contoured, S1 VV, the coverage curve per detector, and the
    thirteen S2 bands."""
    s2 = ds.S2.isel(patch=strip.patch, time=step).values
    with plt.rc_context(READABLE):
        fig = plt.figure(figsize=(15, 6), layout="constrained")
        top, bands = fig.subfigures(2, 1, height_ratios=[2.2, 1])  # type: ignore[misc]
        ax = top.subplots(1, 3)
        ax[0].imshow(true_colour(s2))
        draw_clouds(ax[0], ds[strip.detectors[0]].isel(patch=strip.patch, time=step).values)
        ax[0].set_title(f"S2 {strip.s2_dates[step] or 'no image'} ({strip.caption(step).split()[-1]})")
        ax[1].imshow(ds.S1.isel(patch=strip.patch, time=step, S1_band=0).values, cmap="gray", vmin=-25, vmax=0)
        ax[1].set_title(f"S1 VV {strip.s1_dates[step] or 'no image'} (dB)")
        days = np.array([np.datetime64(d) if d else np.datetime64("NaT") for d in strip.s2_dates])
        for k, name in enumerate(strip.detectors):
            ax[2].plot(days, strip.coverage[:, k], marker=".", label=name)
        ax[2].axvline(days[step], color="k", lw=0.8)
        ax[2].set(ylim=(0, 1), ylabel="cloud coverage (fraction)", title="coverage through the year")
        ax[2].legend(fontsize=9)
        for a in ax[:2]:
            a.set_axis_off()
        for a, band, name in zip(bands.subplots(1, 13), s2, ds.S2_band.values, strict=True):
            a.imshow(band, cmap="gray")
            a.set_title(str(name))
            a.set_axis_off()
    return fig


def explore(ds: xr.Dataset, *, pick: Pick | None = None, detector: str | None = None) -> widgets.VBox:
    """A map of every patch of a cube, with colour and filter controls and, on a click, the patch's year.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube (:func:`cube.open_cube`, local or in a bucket; ``chunks=None`` is fastest). The map reads its
        index and coverage; a click reads that patch's images.
    pick : callable, optional
        The original loader's rule (:data:`cube.explore.model.Pick`) whose inputs and target the strip marks.
    detector : str, optional
        Whose coverage colours the map and whose masks are contoured (default: the cloud pass's first).

    Examples
    --------
    >>> from cube.explore import explore
    >>> explore(cube.open_cube("cube.zarr", chunks=None))  # doctest: +SKIP
    """
    view = MapView(ds, map_model(ds), pick, detector)
    return view.box


class MapView:
    """The widgets of :func:`explore` and how they answer each other."""

    def __init__(self, ds: xr.Dataset, model: MapModel, pick: Pick | None, detector: str | None) -> None:
        self.ds, self.model, self.pick = ds, model, pick
        self.layer = footprint_layer(model, detector)
        self.strip: PatchStrip | None = None
        option = {"style": {"description_width": "initial"}}
        self.by = widgets.Dropdown(options=COLOUR_KEYS, value="coverage", description="colour by", **option)
        self.detector = widgets.Dropdown(options=model.detectors, value=detector or model.detectors[0], **option)
        self.month = widgets.Dropdown(options=[(m, k + 1) for k, m in enumerate(MONTHS)], value=1, **option)
        self.splits = widgets.SelectMultiple(options=list(CATEGORY_COLOURS["split"]), rows=3, description="split")
        self.regions = widgets.SelectMultiple(options=list(CATEGORY_COLOURS["region"]), rows=4, description="region")
        self.coverage = widgets.FloatRangeSlider(value=(0.0, 1.0), min=0, max=1, step=0.05, description="coverage")
        self.legend, self.count, self.panel = widgets.HTML(), widgets.HTML(), widgets.HTML()
        self.step = widgets.IntSlider(min=0, max=model.coverage.shape[1] - 1, description="step", disabled=True)
        self.large = widgets.Output()
        for control in (self.by, self.detector, self.month, self.splits, self.regions, self.coverage):
            control.observe(self.redraw, names="value")
        self.layer.observe(self.select, names="selected_index")
        self.step.observe(self.show_step, names="value")
        controls = widgets.HBox([widgets.VBox([self.by, self.detector, self.month]), self.splits, self.regions])
        map_ = Map(self.layer, height=500)
        self.box = widgets.VBox(
            [controls, self.coverage, self.count, map_, self.legend, self.panel, self.step, self.large]
        )
        self.redraw()

    def filters(self) -> Filters:
        """The filters the controls set (nothing chosen in a list: all)."""
        return Filters(
            tuple(self.splits.value) or None,
            tuple(self.regions.value) or None,
            self.coverage.value,
            self.detector.value,
        )

    def redraw(self, change: object = None) -> None:
        """Recolour and refilter the layer, rewrite the legend and the count."""
        month = self.month.value if self.by.value == "month" else None
        self.layer.get_fill_color = colouring(self.model, self.by.value, self.detector.value, month).rgb
        keep = selected(self.model, self.filters())
        self.layer.get_filter_value = keep.astype(np.float32)
        self.legend.value = legend_html(self.model, self.by.value, self.detector.value, month)
        self.count.value = f"{int(keep.sum())} of {len(self.model)} patches shown"

    def select(self, change: dict) -> None:
        """Show the clicked patch's strip."""
        if change["new"] is None:
            return
        self.strip = patch_strip(self.ds, self.model, int(change["new"]), self.detector.value, self.pick)
        self.panel.value = strip_html(self.strip)
        self.step.disabled = False
        self.show_step()

    def show_step(self, change: object = None) -> None:
        """Draw the slider's step of the selected patch larger, with its bands."""
        if self.strip is None:
            return
        self.large.clear_output(wait=True)
        with self.large:
            fig = step_figure(self.ds, self.strip, self.step.value)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=80)
            plt.close(fig)
            from IPython.display import Image, display

            display(Image(buffer.getvalue()))
