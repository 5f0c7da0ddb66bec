"""SEN12MS-CR (mono-temporal) samples from a cube: S1, cloudy S2 and cloud-free S2 of one patch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from cube.clouds.detectors import DETECTORS, float_mask
from cube.dataset.rois import Roi, in_cr_split
from cube.store.store import as_store
from cube.store.views import open_cube, patch_bounds, stored_order

from .plot import SamplePlots
from .scaling import RESCALE_METHODS, scale_s1, scale_s2


class SEN12MSCR(SamplePlots, torch.utils.data.Dataset):
    """Mono-temporal SEN12MS-CR triplets read from a cube made from the SEN12MS-CR layout.

    Each sample is ``{'input': {'S1', 'S2', 'masks', 'coverage', 'S1 path', 'S2 path', 'coord', 'crs'},
    'target': {'S2', 'S2 path', 'coord', 'crs'}}``:

    - ``'S2'``: float32 (13, H, W), bands B1 ... B12 (with B8A): ``input`` the cloudy
      image, ``target`` the cloud-free one, scaled per ``rescale_method`` as for
      :class:`SEN12MSCRTS` ('default': reflectance [0, 1]; 'resnet': [0, 5]);
    - ``'S1'``: float32 (2, H, W), VV and VH ('default': [0, 1]; 'resnet': [0, 2]);
    - ``'masks'``: float32 (H, W), the cloudy image's mask, computed when the sample
      is read as the original loader does (the cloud pass covers multi-temporal
      cubes); ``cloud_masks=None`` gives ones; ``'coverage'``: its mean (float);
    - ``'S1 path'``, ``'S2 path'``: the source GeoTIFFs;
    - ``'coord'``: the patch's bounds [left, bottom, right, top] in metres in its UTM CRS;
    - ``'crs'``: that CRS as a string, e.g. ``'EPSG:32631'``.

    :meth:`plot` draws a sample (TorchGeo's ``plot(sample, show_titles=True, suptitle=None)``).

    ``split`` selects scenes by the original SEN12MS-CR loader's scene lists and
    its rule: a listed folder also takes scenes whose number starts with the
    listed one (``s1_1`` takes ``s1_106``; see :func:`cube.dataset.rois.in_cr_split`);
    ``exact_scenes=True`` takes only the listed scenes. ``region`` (the original
    supports only 'all') keeps the scenes that are SEN12MS-CR-TS ROIs of that region.

    Examples
    --------
    >>> data = SEN12MSCR("sen12mscr.zarr", split="test")  # doctest: +SKIP
    """

    def __init__(
        self,
        cube: str | os.PathLike,
        split: str = "all",
        region: str = "all",
        cloud_masks: str | None = "s2cloudless_mask",
        rescale_method: str = "default",
        exact_scenes: bool = False,
        storage_options: dict | None = None,
    ) -> None:
        if cloud_masks is not None and cloud_masks not in DETECTORS:
            raise ValueError(f"invalid cloud_masks {cloud_masks!r}: choose from {', '.join(DETECTORS)} or None")
        if rescale_method not in RESCALE_METHODS:
            raise ValueError(f"invalid rescale_method {rescale_method!r}: choose from {', '.join(RESCALE_METHODS)}")
        self.store = as_store(cube, storage_options=storage_options)
        self.cube, self.cloud_masks, self.rescale_method = self.store.location, cloud_masks, rescale_method
        ds = open_cube(self.store, chunks=None)
        if ds.attrs["layout"] != "sen12mscr":
            raise ValueError(f"{self.cube}: a {ds.attrs['dataset']} cube; use SEN12MSCRTS for it")
        keep = np.array(
            [
                in_cr_split(Roi(str(g), int(r)), split, region, exact=exact_scenes)
                for g, r in zip(ds.roi_group.values, ds.roi.values, strict=True)
            ],
            dtype=bool,
        )
        self.positions = stored_order(self.store)[keep]
        root = Path(ds.attrs["source_root"])
        self.paths = {m: [str(root / p) for p in ds[f"{m}_path"].values[keep]] for m in ("S1", "S2", "S2_cloudy")}
        self.coords = patch_bounds(ds)[keep]
        self.crs = [f"EPSG:{int(code)}" for code in ds.epsg.values[keep]]

    def __len__(self) -> int:
        return len(self.positions)

    def _mask(self, cloudy: np.ndarray) -> np.ndarray:
        if self.cloud_masks is None:
            return np.ones(cloudy.shape[1:], np.float32)
        return float_mask(self.cloud_masks, cloudy)

    def __getitem__(self, pdx: int) -> dict:
        p = int(self.positions[pdx])
        cloudy, s1, s2 = self.store.read([("S2_cloudy", (p,)), ("S1", (p,)), ("S2", (p,))])  # one request
        mask = self._mask(cloudy)
        coord, crs = self.coords[pdx].tolist(), self.crs[pdx]
        return {
            "input": {
                "S1": scale_s1(s1, self.rescale_method),
                "S2": scale_s2(cloudy, self.rescale_method),
                "masks": mask,
                "coverage": float(mask.mean()),
                "S1 path": self.paths["S1"][pdx],
                "S2 path": self.paths["S2_cloudy"][pdx],
                "coord": coord,
                "crs": crs,
            },
            "target": {
                "S2": scale_s2(s2, self.rescale_method),
                "S2 path": self.paths["S2"][pdx],
                "coord": coord,
                "crs": crs,
            },
        }
