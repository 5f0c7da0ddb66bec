"""What the original loader does per sample, for comparison only: 60 GeoTIFFs and a detector on 30 images.

Per sample: open every S1 and S2 GeoTIFF of the patch with rasterio, run the
chosen detector on all S2 images, choose inputs and target by the rules, scale.
Not part of the package: the cube dataset (``crts.data.SEN12MSCRTS``) replaces it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from crts.data.sampling import choose_steps
from crts.data.scaling import scale_s1, scale_s2
from cube.clouds.detectors import float_mask
from cube.dataset.layout import scan_ts
from cube.dataset.rois import ALL_ROIS, select_rois


class GeoTiffLoader:
    """The original's per-sample work on a GeoTIFF tree (split 'all' order)."""

    def __init__(
        self, root: Path, split: str = "all", cloud_masks: str | None = "s2cloudless_mask", n_input_samples: int = 3
    ) -> None:
        files = scan_ts(root)[0]
        wanted = set(select_rois(split))
        self.patches: dict[tuple, dict] = {}
        for f in files:
            if f.roi in wanted:
                self.patches.setdefault((f.roi, f.pid), {}).setdefault(f.modality, {})[f.t] = f.path
        self.keys = sorted(self.patches, key=lambda k: (ALL_ROIS.index(k[0]), k[1]))
        self.cloud_masks, self.n = cloud_masks, n_input_samples

    def __len__(self) -> int:
        return len(self.keys)

    def _mask(self, s2: np.ndarray) -> np.ndarray:
        return float_mask(self.cloud_masks, s2)

    def __getitem__(self, i: int) -> dict:
        files = self.patches[self.keys[i]]
        times = sorted(files["S2"])
        s1 = [rasterio.open(files["S1"][t]).read() for t in times]
        s2 = [rasterio.open(files["S2"][t]).read() for t in times]
        if self.cloud_masks is None:
            return {
                "S1": [scale_s1(x) for x in s1],
                "S2": [scale_s2(x) for x in s2],
                "masks": [np.ones(x.shape[1:], np.float32) for x in s2],
            }
        masks = [self._mask(x) for x in s2]
        index = choose_steps(np.array([[m.mean() for m in masks]]), self.n)
        steps = [*index.inputs[0].tolist(), int(index.target[0])]
        return {
            "S1": [scale_s1(s1[t]) for t in steps],
            "S2": [scale_s2(s2[t]) for t in steps],
            "masks": [masks[t] for t in steps],
            "idx": steps,
        }
