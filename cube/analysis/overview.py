"""What a cube holds, in a few lines: patches by split and region, time steps, dates, cloud pass, runs, size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..store.runs import list_runs
from ..store.store import CubeStore
from ..store.views import finished_detectors


def summary(ds: xr.Dataset, store: CubeStore | None = None) -> dict:
    """The contents of a cube (:func:`cube.open_cube`) as plain Python values.

    Parameters
    ----------
    ds : xarray.Dataset
        The cube.
    store : CubeStore, optional
        The same cube's store, for its runs and size on disk; without it both are None.

    Returns
    -------
    dict
        ``patches`` (int), ``by_split_region`` (DataFrame of patch counts, splits x regions),
        ``time_steps`` (1 for a mono-temporal SEN12MS-CR cube), ``first_date`` and ``last_date``
        (ISO dates of the S2 acquisitions, None without any: SEN12MS-CR), ``detectors`` (of the
        finished cloud pass), ``mean_coverage`` (detector -> mean coverage over the valid images), ``gaps``
        (missing images: False in ``valid``), ``runs`` (names) and ``bytes`` (size on disk of a local cube;
        None for a URL).

    Examples
    --------
    >>> summary(open_cube("cube.zarr"), CubeStore("cube.zarr"))["patches"]  # doctest: +SKIP
    """
    labels = pd.DataFrame({"split": ds.split.values.tolist(), "region": ds.region.values.tolist()})
    dates = pd.DatetimeIndex(ds.S2_date.values.ravel() if "S2_date" in ds else []).dropna()  # none: SEN12MS-CR
    detectors = finished_detectors(ds)
    table = ds.coverage.sel(detector=list(detectors)).values if detectors else None  # one read for all of them
    coverage = {} if table is None else {d: float(np.nanmean(table[..., i])) for i, d in enumerate(detectors)}
    return {
        "patches": ds.sizes["patch"],
        "by_split_region": pd.crosstab(labels.split, labels.region),
        "time_steps": ds.sizes.get("time", 1),
        "first_date": dates.min().date().isoformat() if len(dates) else None,
        "last_date": dates.max().date().isoformat() if len(dates) else None,
        "detectors": detectors,
        "mean_coverage": coverage,
        "gaps": int((~ds.valid.values).sum()),
        "runs": list_runs(store) if store is not None else None,
        "bytes": store.size_bytes() if store is not None else None,
    }


def format_summary(facts: dict, name: str) -> str:
    """:func:`summary` as text: a few lines, then the patch counts by split and region."""
    size = "n/a (not a local folder)" if facts["bytes"] is None else f"{facts['bytes'] / 2**20:.1f} MiB"
    coverage = ", ".join(f"{d} {c:.3f}" for d, c in facts["mean_coverage"].items()) or "no cloud pass"
    runs = "n/a" if facts["runs"] is None else (", ".join(facts["runs"]) or "none")
    table = facts["by_split_region"].to_string()
    return "\n".join(
        [
            f"{name}: {facts['patches']} patches x {facts['time_steps']} time steps, "
            f"S2 dates {facts['first_date']} to {facts['last_date']}, {facts['gaps']} gap(s)",
            f"cloud pass: {', '.join(facts['detectors']) or 'none'}",
            f"mean coverage: {coverage}",
            f"runs: {runs}",
            f"size on disk: {size}",
            "patches by split and region:",
            table,
        ]
    )
