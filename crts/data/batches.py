"""Crops of cube samples as torch tensors: windows from xbatcher, batching by torch's DataLoader.

xbatcher's ``BatchGenerator`` lays the windows (``input_dims`` crop size,
``input_overlap``; windows that do not fit at the far edges are dropped) over a
lightweight (sample, y, x) view of the selection; the pixels of each window are
then read with direct per-image reads from the cube, which is the fast path of
a sharded Zarr store (reference: ecosystem notes). Its own batch cache and torch
loaders are not used (they do not work with zarr 3 / split work between workers).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import torch
import xarray as xr
import xbatcher

from .sen12mscrts import SEN12MSCRTS
from .workers import default_start_method, refuse_when_worker_starts, start_worker, worker_context


class SampleWindows(torch.utils.data.Dataset):
    """Windows of the cloudy-inputs / cloud-free-target samples of a :class:`SEN12MSCRTS` selection.

    Item ``i`` is a dict of tensors (T = ``n_input_samples``, h, w = window size):

    - ``inputs``: float32 (T, 15, h, w): S2 bands B1 ... B12 then S1 VV, VH, scaled
      per the selection's ``rescale_method`` ([0, 1] for 'default');
    - ``target``: float32 (13, h, w);
    - ``input_masks`` float32 (T, h, w), ``target_mask`` (h, w): the detector's masks;
    - ``input_coverage`` float32 (T,), ``target_coverage`` (): the whole image's coverage;
    - ``input_s1_td``, ``input_s2_td`` int64 (T,), ``target_s2_td`` (): days since 2014-04-03;
    - labels to write results back: ``pdx`` (sample index), ``roi`` (str), ``patch_id``,
      ``input_times`` (T,), ``target_time``, ``y0``, ``x0`` (window origin in the patch).

    The DataLoader stacks them into batches (B, ...); see :func:`loader`.

    Parameters
    ----------
    samples : SEN12MSCRTS
        A selection with ``sample_type='cloudy_cloudfree'``.
    input_dims : dict, optional
        Window size, e.g. ``{"y": 128, "x": 128}``; default the whole patch.
    input_overlap : dict, optional
        Overlap of neighbouring windows in pixels, e.g. ``{"y": 32, "x": 32}``.

    Raises
    ------
    ValueError
        If the selection has no sample index, or a window is larger than the patch.
    """

    def __init__(self, samples: SEN12MSCRTS, input_dims: dict[str, int] | None = None,
                 input_overlap: dict[str, int] | None = None) -> None:
        if samples.index is None:
            raise ValueError("windows need sample_type='cloudy_cloudfree' and a cloud detector")
        self.samples = samples
        size = samples.image_size
        self.input_dims = input_dims or {"y": size, "x": size}
        too_large = {dim: n for dim, n in self.input_dims.items() if n > size}
        if too_large:
            raise ValueError(f"window {too_large} is larger than the patch ({size} x {size} pixels)")
        self.input_overlap = input_overlap or {}
        self._size = size
        self._windows: xbatcher.BatchGenerator | None = None

    @property
    def windows(self) -> xbatcher.BatchGenerator:
        """xbatcher's windows over the (sample, y, x) grid; built once per process."""
        if self._windows is None:
            n, s = len(self.samples), self._size
            grid = xr.Dataset({"pixels": (("sample", "y", "x"), da.zeros((n, s, s), dtype=bool, chunks=(1, s, s)))},
                              coords={"sample": np.arange(n), "y": np.arange(s), "x": np.arange(s)})
            self._windows = xbatcher.BatchGenerator(grid, input_dims=self.input_dims, input_overlap=self.input_overlap,
                                                    batch_dims={"sample": 1}, concat_input_dims=False)
        return self._windows

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_windows": None}

    def __len__(self) -> int:
        return len(self.windows)

    def __repr__(self) -> str:
        dims = " x ".join(f"{n}" for n in self.input_dims.values())
        overlap = f", overlap {self.input_overlap}" if self.input_overlap else ""
        return f"SampleWindows({len(self)} windows of {dims} px{overlap} over {self.samples!r})"

    def __getitem__(self, i: int) -> dict:
        window = self.windows[i]
        pdx = int(window.sample.values[0])
        y0, x0 = int(window.y.values[0]), int(window.x.values[0])
        crop = (slice(y0, y0 + window.sizes["y"]), slice(x0, x0 + window.sizes["x"]))
        index = self.samples.index
        n = index.inputs.shape[1]
        read = self.samples.read_steps(pdx, [*map(int, index.inputs[pdx]), int(index.target[pdx])])  # one request
        inputs = (slice(0, n), slice(None), *crop)
        return {
            "inputs": torch.from_numpy(np.concatenate([read["S2"][inputs], read["S1"][inputs]], axis=1)),
            "target": torch.from_numpy(read["S2"][(n, slice(None), *crop)].copy()),
            "input_masks": torch.from_numpy(read["masks"][(slice(0, n), *crop)].copy()),
            "target_mask": torch.from_numpy(read["masks"][(n, *crop)].copy()),
            "input_coverage": torch.tensor(read["coverage"][:n], dtype=torch.float32),
            "target_coverage": torch.tensor(read["coverage"][n], dtype=torch.float32),
            "input_s1_td": torch.tensor(read["S1 TD"][:n]),
            "input_s2_td": torch.tensor(read["S2 TD"][:n]),
            "target_s2_td": torch.tensor(read["S2 TD"][n]),
            "pdx": pdx, "roi": self.samples.labels[pdx]["roi"], "patch_id": self.samples.labels[pdx]["patch_id"],
            "input_times": torch.from_numpy(index.inputs[pdx].copy()), "target_time": int(index.target[pdx]),
            "y0": y0, "x0": x0,
        }


def loader(windows: SampleWindows, batch_size: int = 4, *, shuffle: bool = False, num_workers: int = 0,
           sampler: torch.utils.data.Sampler | list[int] | None = None, pin_memory: bool | None = None,
           drop_last: bool = False, start_method: str | None = None,
           timeout: float = 0.0) -> torch.utils.data.DataLoader:
    """A DataLoader over windows that is safe with dask and fast on CUDA.

    Workers stay alive between epochs, and memory is pinned when CUDA is
    available. For DDP pass ``sampler=DistributedSampler(windows)`` and call its
    ``set_epoch`` every epoch.

    Parameters
    ----------
    windows : SampleWindows
        The items.
    batch_size, shuffle, num_workers, sampler, pin_memory, drop_last
        As for :class:`torch.utils.data.DataLoader` (``pin_memory`` default: CUDA is available).
    start_method : {"fork", "forkserver", "spawn"}, optional
        How workers start; default :func:`crts.data.workers.default_start_method` (fork where it is safe).
        With ``forkserver`` and ``spawn`` each worker re-runs the main script: its
        code must be under ``if __name__ == "__main__":``.
    timeout : float
        Seconds to wait for one batch before raising, so that a stuck worker
        stops the loop. With 0 (default) it waits as long as the workers live;
        a worker that dies stops the loop within about 5 s (torch checks its
        workers that often while it waits, but only once ``timeout`` has passed).

    Raises
    ------
    RuntimeError
        If called by the main script while a worker re-runs it to start (no
        ``if __name__ == "__main__":`` guard): the worker stops with this message.
    ValueError
        For an unknown ``start_method``.
    """
    refuse_when_worker_starts()
    workers = num_workers > 0
    context = worker_context(start_method or default_start_method(), type(windows).__module__) if workers else None
    return torch.utils.data.DataLoader(
        windows, batch_size=batch_size, shuffle=shuffle if sampler is None else False, sampler=sampler,
        num_workers=num_workers, drop_last=drop_last,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        multiprocessing_context=context, worker_init_fn=start_worker if workers else None,
        persistent_workers=workers, timeout=timeout if workers else 0)
