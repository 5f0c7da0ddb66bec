"""Predictions of overlapping windows blended back into whole patches, without seams.

A model trained on crops predicts a whole patch window by window (a grid of
:class:`crts.data.SampleWindows` that covers the patch); where windows overlap,
their predictions are averaged with weights that fall off linearly towards the
window's edges over the overlap, so no window's border shows. The weighted sums
are kept in float64, so where all windows agree the blend equals them exactly.
"""

from __future__ import annotations

import torch

from .data.batches import SampleWindows


def taper(size: int, overlap: int) -> torch.Tensor:
    """Weights along one axis of a window: rising linearly over ``overlap`` px at both ends, 1 inside.

    Examples
    --------
    >>> taper(6, 2).tolist()
    [0.3333333333333333, 0.6666666666666666, 1.0, 1.0, 0.6666666666666666, 0.3333333333333333]
    """
    i = torch.arange(size, dtype=torch.float64)
    return torch.clamp(torch.minimum(i + 1, size - i) / (overlap + 1), max=1.0)


class PatchBlender:
    """Whole patches assembled from the windows of a :class:`SampleWindows` grid, on one device.

    :meth:`add` takes one window's model outputs (blended: weighted mean where
    windows overlap) and its inputs from the cube (pasted: every window holds the
    same values); once the last window of a patch is in, it returns the whole
    patch's images ((..., H, W); blended ones float32, pasted ones in their own dtype).

    Examples
    --------
    >>> blender = PatchBlender(windows, device)  # doctest: +SKIP
    >>> whole = blender.add(pdx, y0, x0, {"prediction": out}, {"target": target})  # doctest: +SKIP
    """

    def __init__(self, windows: SampleWindows, device: torch.device) -> None:
        if windows.placement != "grid":
            raise ValueError("blending needs grid windows that cover the patch")
        (h, w), (oy, ox) = windows.input_dims.values(), windows.input_overlap.values()
        self.weight = torch.outer(taper(h, oy), taper(w, ox)).to(device)
        self.windows_per_patch = len(windows) // len(windows.samples)
        self.size, self.device = windows.samples.image_size, device
        self._open: dict[int, dict] = {}

    def add(
        self, pdx: int, y0: int, x0: int, blended: dict[str, torch.Tensor], pasted: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor] | None:
        """Add one window of sample ``pdx`` at (``y0``, ``x0``) px; the whole patch once it is complete."""
        h, w = self.weight.shape
        if pdx not in self._open:
            self._open[pdx] = {
                "count": 0,
                "weight": torch.zeros(self.size, self.size, dtype=torch.float64, device=self.device),
                "sums": {k: self._zeros(v, torch.float64) for k, v in blended.items()},
                "pasted": {k: self._zeros(v, v.dtype) for k, v in pasted.items()},
            }
        patch = self._open[pdx]
        area = (..., slice(y0, y0 + h), slice(x0, x0 + w))
        patch["weight"][area] += self.weight
        for name, value in blended.items():
            patch["sums"][name][area] += value.to(self.device, torch.float64) * self.weight
        for name, value in pasted.items():
            patch["pasted"][name][area] = value.to(self.device)
        patch["count"] += 1
        if patch["count"] < self.windows_per_patch:
            return None
        del self._open[pdx]
        means = {k: (v / patch["weight"]).float() for k, v in patch["sums"].items()}
        return means | patch["pasted"]

    def _zeros(self, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros((*like.shape[:-2], self.size, self.size), dtype=dtype, device=self.device)
