"""A converted cube works with plain xarray, matplotlib and rioxarray, without project code."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import xarray as xr

matplotlib.use("Agg")


def test_plain_xarray_plots_every_patch_north_up(tiny_cube: Path) -> None:
    ds = xr.open_zarr(tiny_cube, consolidated=False)
    size = ds.sizes["y"]
    np.testing.assert_array_equal(ds.y.values, (np.arange(size)[::-1] + 0.5) * 10.0)
    np.testing.assert_array_equal(ds.x.values, (np.arange(size) + 0.5) * 10.0)
    assert ds.y.attrs["units"] == ds.x.attrs["units"] == "m"
    rgb = ds.S2.sel(S2_band=["B4", "B3", "B2"]).isel(patch=0, time=1)
    image = rgb.plot.imshow(robust=True)
    bottom, top = image.axes.get_ylim()
    assert image.origin == "upper" and bottom < top
    assert image.get_extent()[3] == top  # row 0 is drawn at the top of the axes
