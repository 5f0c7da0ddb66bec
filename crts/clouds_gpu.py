"""s2cloudless's forest in torch (CUDA or CPU), exactly: the cloud pass's GPU predictor.

The same binned forest as :mod:`cube.clouds.forest`: every pixel walks all trees at
once, one level per step, comparing its feature bins with the nodes' threshold
ranks (integers, so exactly LightGBM's decisions); leaf values are summed in
double in tree order, and the sigmoid is LightGBM's, rounded to float32 as
s2cloudless does (:func:`cube.clouds.forest.sigmoid32`, on the CPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cube.clouds.forest import LEAF, MODEL_PATH, dn_bins, load_forest, sigmoid32
from cube.dataset.bands import S2_BANDS, S2_SCALE

from .devices import resolve_device

PIXELS_PER_STEP = 1 << 16
"""Pixels walked at once (65,536 x 170 trees of int32 state: about 45 MB)."""


class TorchForestPredictor:
    """s2cloudless probabilities of S2 digital numbers (N, 13, H, W), evaluated by torch on ``device``."""

    def __init__(self, device: str | torch.device = "cpu", model: Path = MODEL_PATH) -> None:
        self.device, self.model = resolve_device(device), Path(model)
        self.forest = forest = load_forest(self.model)
        self.nodes = torch.from_numpy(forest.nodes.astype(np.int64)).to(self.device)
        self.roots = torch.from_numpy(forest.node_offsets).to(self.device)
        self.leaf_offsets = torch.from_numpy(forest.leaf_offsets).to(self.device)
        self.leaves = torch.from_numpy(forest.leaves).to(self.device)

    def __reduce__(self) -> tuple:
        return TorchForestPredictor, (str(self.device), self.model)  # rebuilt (on the device) where unpickled

    def margin(self, bins: np.ndarray) -> np.ndarray:
        """Raw scores (float64) of binned pixels (n, 16): the leaf sums in tree order."""
        out = []
        for start in range(0, len(bins), PIXELS_PER_STEP):
            out.append(self._margin(torch.from_numpy(bins[start : start + PIXELS_PER_STEP]).to(self.device)))
        return torch.cat(out).cpu().numpy() if out else np.zeros(0)

    def _margin(self, bins: torch.Tensor) -> torch.Tensor:
        pixels = bins.to(torch.int64)
        node = self.roots.expand(len(bins), -1).clone()  # (pixels, trees): global node index
        for _ in range(self.forest.max_depth):
            word = self.nodes[node]
            inner = (word & LEAF) == 0
            if not bool(inner.any()):
                break
            value = torch.gather(pixels, 1, word & 15)
            right = self.roots + (word >> 12)
            step = torch.where(value <= ((word >> 4) & 255), node + 1, right)
            node = torch.where(inner, step, node)
        leaf = self.leaves[self.leaf_offsets + (self.nodes[node] & (LEAF - 1))]
        total = torch.zeros(len(bins), dtype=torch.float64, device=self.device)
        for tree in range(leaf.shape[1]):  # LightGBM's order of additions
            total = total + leaf[:, tree]
        return total

    def __call__(self, s2: np.ndarray) -> np.ndarray:
        """Like :func:`cube.clouds.detectors.s2cloudless_probability` for (13, H, W) or (N, 13, H, W)."""
        stack = s2[None] if s2.ndim == 3 else s2
        if stack.ndim != 4 or stack.shape[1] != len(S2_BANDS):
            raise ValueError(f"expected S2 of shape (13, H, W) or (N, 13, H, W), got {s2.shape}")
        prob = sigmoid32(self.margin(dn_bins(self.forest, stack, S2_SCALE)), self.forest.sigmoid)
        prob = prob.reshape(stack.shape[0], *stack.shape[2:])
        return prob[0] if s2.ndim == 3 else prob
