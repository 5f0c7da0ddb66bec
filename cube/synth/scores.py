"""How well the cube's stored cloud detectors match the synthetic ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..clouds.detectors import CLOUD, SHADOW
from .dataset import MANIFEST, open_truth

MAP_THRESHOLD = 0.5
"""The s2cloudless map is scored as a mask where it is >= 0.5."""


def _masks(ds: xr.Dataset, p: int) -> dict[str, tuple[np.ndarray, str]]:
    """Binary masks of one patch (time, y, x) per scored detector, and which truth each is scored against."""
    out = {}
    if "s2cloudless_mask" in ds:
        out["s2cloudless_mask"] = (ds.s2cloudless_mask.values[p] == 1, "cloud")
    if "s2cloudless_map" in ds:
        out[f"s2cloudless_map >= {MAP_THRESHOLD}"] = (ds.s2cloudless_map.values[p] >= MAP_THRESHOLD, "cloud")
    if "cloud_cloudshadow_mask" in ds:
        classes = ds.cloud_cloudshadow_mask.values[p]
        out["cloud_cloudshadow_mask"] = ((classes == CLOUD) | (classes == SHADOW), "cloud or shadow")
        out["cloud_cloudshadow_mask: cloud"] = (classes == CLOUD, "cloud")
        out["cloud_cloudshadow_mask: shadow"] = (classes == SHADOW, "shadow")
    return out


def score_detectors(ds: xr.Dataset) -> pd.DataFrame:
    """Precision, recall and IoU of every stored detector against the true masks, over all valid images.

    The cube must have been converted from a synthetic data set (its
    ``source_root`` holds ``synthetic.json``).

    Raises
    ------
    FileNotFoundError
        If the cube's source is not a synthetic data set.
    ValueError
        If the synthetic set at the cube's source lacks the truth of some of its patches (the cube holds
        patches of a set written over since, e.g. appended after ``crts synth --overwrite``).
    """
    root = Path(ds.attrs["source_root"])
    if not (root / MANIFEST).exists():
        raise FileNotFoundError(f"{root}: not a synthetic data set (no {MANIFEST}), so there is no truth to score")
    truth = open_truth(root)
    where = {
        (g, int(r), int(i)): k
        for k, (g, r, i) in enumerate(zip(truth.roi_group.values, truth.roi.values, truth.patch_id.values, strict=True))
    }
    keys = [
        (str(g), int(r), int(i)) for g, r, i in zip(ds.roi_group.values, ds.roi.values, ds.patch_id.values, strict=True)
    ]
    if missing := [key for key in keys if key not in where]:
        g, r, i = missing[0]
        raise ValueError(
            f"{root}: its synthetic truth lacks {len(missing)} of the cube's {len(keys)} patches (e.g. "
            f"{g}/{r} patch {i}: converted from a synthetic set that is no longer there); --truth scores "
            f"a cube converted from one synthetic set: convert {root} into a new cube to score that set"
        )
    counts: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for p, key in enumerate(keys):
        one = truth.isel(patch=where[key])
        cloud, shadow = one.cloud.values, one.shadow.values
        true = {"cloud": cloud, "shadow": shadow, "cloud or shadow": cloud | shadow}
        valid = ds.valid.sel(modality="S2").values[p]
        for name, (mask, kind) in _masks(ds, p).items():
            t, m = true[kind][valid], mask[valid]
            counts[name] = counts.get(name, 0) + np.array([(t & m).sum(), (~t & m).sum(), (t & ~m).sum()])
            kinds[name] = kind
    rows = []
    for name, (tp, fp, fn) in counts.items():
        rows.append(
            {
                "detector": name,
                "truth": kinds[name],
                "precision": tp / max(tp + fp, 1),
                "recall": tp / max(tp + fn, 1),
                "iou": tp / max(tp + fp + fn, 1),
            }
        )
    return pd.DataFrame(rows).set_index("detector")
