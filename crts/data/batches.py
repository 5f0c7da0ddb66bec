"""Windows of cube samples as torch tensors, read window by window; batching by torch's DataLoader.

One mechanism cuts samples into windows (:class:`SampleWindows`): a regular grid
for evaluation and prediction, laid by xbatcher's ``BatchGenerator`` over a
lightweight (sample, y, x) view of the selection and completed at the far edges
(xbatcher drops windows that do not fit, so predictions could not cover whole
patches), or one random window per sample and epoch for training. Only the
window's pixels are read from the cube (``array[p, t, :, y0:y1, x0:x1]``, all
images of a sample in one concurrent request). xbatcher's batch cache and torch
loaders are not used (they do not work with zarr 3 / split work between workers).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import xarray as xr
import xbatcher

from .sen12mscrts import SEN12MSCRTS
from .workers import default_start_method, refuse_when_worker_starts, start_worker, worker_context

PLACEMENTS = ("grid", "random")


def covering_size(size: int, window: int, overlap: int) -> int:
    """The length of a grid axis on which xbatcher's windows (stride ``window - overlap``) reach the far edge.

    Windows that start past ``size - window`` on it are moved back to end at the edge.

    Examples
    --------
    >>> covering_size(256, 128, 32)  # windows at 0, 96, 192 -> 0, 96, 128
    320
    >>> covering_size(256, 64, 0)
    256
    """
    if window < 1 or overlap < 0:
        raise ValueError(
            f"invalid window {window} px / overlap {overlap} px: the window must be at least 1 px "
            "and the overlap at least 0 px"
        )
    stride = window - overlap
    if stride <= 0:
        raise ValueError(f"overlap {overlap} px must be smaller than the window ({window} px)")
    return window + -(-(size - window) // stride) * stride


class SampleWindows(torch.utils.data.Dataset):
    """Windows of the cloudy-inputs / cloud-free-target samples of a :class:`SEN12MSCRTS` selection.

    Item ``i`` is a dict of tensors (T = ``n_input_samples``, h, w = window size):

    - ``inputs``: float32 (T, 15, h, w): S2 bands B1 ... B12 then S1 VV, VH, scaled
      per the selection's ``rescale_method`` ([0, 1] for 'default');
    - ``target``: float32 (13, h, w);
    - ``input_masks`` float32 (T, h, w), ``target_mask`` (h, w): the detector's masks;
    - ``input_coverage`` float32 (T,), ``target_coverage`` (): the whole image's coverage;
    - ``input_s1_td``, ``input_s2_td`` int64 (T,), ``target_s2_td`` (): days since 2014-04-03;
    - labels to write results back, as the cube's coordinates: ``pdx`` (sample index), ``roi_group`` (str),
      ``roi`` and ``patch_id`` (int),
      ``input_times`` (T,), ``target_time``, ``y0``, ``x0`` (window origin in the patch, px).

    The DataLoader stacks them into batches (B, ...); see :func:`loader`.

    Parameters
    ----------
    samples : SEN12MSCRTS
        A selection with ``sample_type='cloudy_cloudfree'``.
    input_dims : dict, optional
        Window size in pixels, e.g. ``{"y": 128, "x": 128}``; default the whole patch.
    input_overlap : dict, optional
        Overlap of neighbouring grid windows in pixels, e.g. ``{"y": 32, "x": 32}``.
    placement : {"grid", "random"}
        ``grid``: xbatcher's regular grid, sample by sample, with a last window
        flush with the far edge where the stride does not land on it, so the
        windows cover every pixel. ``random``: one window per sample (item ``i``
        is sample ``i``) at an offset drawn from ``(seed, epoch, i)`` (see
        :meth:`set_epoch`): the same in any order, process or resumed run.
    seed : int
        Seed of the random windows.

    Raises
    ------
    ValueError
        If the selection has no sample index, a window is larger than the patch,
        or the overlap is not smaller than the window.

    Examples
    --------
    >>> windows = SampleWindows(data, {"y": 64, "x": 64}, placement="random", seed=1)  # doctest: +SKIP
    >>> windows.set_epoch(3)  # doctest: +SKIP
    >>> windows[0]["inputs"].shape  # doctest: +SKIP
    torch.Size([3, 15, 64, 64])
    """

    def __init__(
        self,
        samples: SEN12MSCRTS,
        input_dims: dict[str, int] | None = None,
        input_overlap: dict[str, int] | None = None,
        *,
        placement: str = "grid",
        seed: int = 0,
    ) -> None:
        if samples.index is None:
            raise ValueError("windows need sample_type='cloudy_cloudfree' and a cloud detector")
        if placement not in PLACEMENTS:
            raise ValueError(f"invalid placement {placement!r}: choose from {', '.join(PLACEMENTS)}")
        size = samples.image_size
        self.samples, self.placement, self.seed, self.epoch = samples, placement, seed, 0
        self.input_dims = {"y": size, "x": size} | (input_dims or {})
        too_large = {dim: n for dim, n in self.input_dims.items() if n > size}
        if too_large:
            raise ValueError(f"window {too_large} is larger than the patch ({size} x {size} pixels)")
        self.input_overlap = {"y": 0, "x": 0} | (input_overlap or {})
        self._grid_size = {dim: covering_size(size, self.input_dims[dim], self.input_overlap[dim]) for dim in "yx"}
        self._windows: xbatcher.BatchGenerator | None = None

    @property
    def windows(self) -> xbatcher.BatchGenerator:
        """xbatcher's windows over the (sample, y, x) grid, extended to cover the edges; built once per process."""
        if self._windows is None:
            n, (h, w) = len(self.samples), self._grid_size.values()
            pixels = np.broadcast_to(np.zeros((), bool), (n, h, w))  # a view of one value: no memory, no dask
            grid = xr.Dataset(
                {"pixels": (("sample", "y", "x"), pixels)},
                coords={"sample": np.arange(n), "y": np.arange(h), "x": np.arange(w)},
            )
            self._windows = xbatcher.BatchGenerator(
                grid,
                input_dims=self.input_dims,
                input_overlap=self.input_overlap,
                batch_dims={"sample": 1},
                concat_input_dims=False,
            )
        return self._windows

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's random windows (and the ``random`` sampler's samples)."""
        self.epoch = epoch
        self.samples.set_epoch(epoch)

    def position(self, i: int) -> tuple[int, int, int]:
        """Sample index and window origin (row, column in px) of item ``i``."""
        last_y, last_x = (self.samples.image_size - self.input_dims[dim] for dim in "yx")  # of a window's origin
        if self.placement == "random":
            rng = np.random.default_rng((self.seed, self.epoch, i))
            return i, int(rng.integers(0, last_y + 1)), int(rng.integers(0, last_x + 1))
        window = self.windows[i]
        y0, x0 = int(window.y.values[0]), int(window.x.values[0])
        return int(window.sample.values[0]), min(y0, last_y), min(x0, last_x)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_windows": None}

    def __len__(self) -> int:
        return len(self.samples) if self.placement == "random" else len(self.windows)

    def __repr__(self) -> str:
        dims = " x ".join(f"{n}" for n in self.input_dims.values())
        overlap = f", overlap {self.input_overlap}" if any(self.input_overlap.values()) else ""
        where = f"random (seed {self.seed}, epoch {self.epoch})" if self.placement == "random" else "grid"
        return f"SampleWindows({len(self)} windows of {dims} px{overlap}, {where}, over {self.samples!r})"

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """Items ``indices``, every image of all of them read in one concurrent request (:meth:`SEN12MSCRTS.read_many`;
        the DataLoader asks for a batch so): over a network, two latencies per batch, not per item."""
        places = [self.position(i) for i in indices]
        index, (h, w) = self.samples.sample_index, self.input_dims.values()
        reads = self.samples.read_many(
            [
                (pdx, [*map(int, index.inputs[pdx]), int(index.target[pdx])], (slice(y0, y0 + h), slice(x0, x0 + w)))
                for pdx, y0, x0 in places
            ]
        )
        return [self._item(pdx, y0, x0, read) for (pdx, y0, x0), read in zip(places, reads, strict=True)]

    def _item(self, pdx: int, y0: int, x0: int, read: dict) -> dict:
        index, label = self.samples.sample_index, self.samples.labels[pdx]
        n = index.inputs.shape[1]
        return {
            "inputs": torch.from_numpy(read["images"][:n]),
            "target": torch.from_numpy(read["S2"][n]),
            "input_masks": torch.from_numpy(read["masks"][:n]),
            "target_mask": torch.from_numpy(read["masks"][n]),
            "input_coverage": torch.tensor(read["coverage"][:n], dtype=torch.float32),
            "target_coverage": torch.tensor(read["coverage"][n], dtype=torch.float32),
            "input_s1_td": torch.tensor(read["S1 TD"][:n]),
            "input_s2_td": torch.tensor(read["S2 TD"][:n]),
            "target_s2_td": torch.tensor(read["S2 TD"][n]),
            "pdx": pdx,
            "roi_group": label.roi.group,
            "roi": label.roi.number,
            "patch_id": label.patch_id,
            "input_times": torch.from_numpy(index.inputs[pdx].copy()),
            "target_time": int(index.target[pdx]),
            "y0": y0,
            "x0": x0,
        }


SHARED_BYTES = 1 << 20
"""Batch arrays of at least this many bytes travel from workers in shared memory; smaller ones in the message."""


class ArrayBatch(dict):
    """A batch as a DataLoader worker sends it; :meth:`tensors` makes it the batch of tensors.

    Arrays of :data:`SHARED_BYTES` or more are tensors in shared memory, as torch's
    ``default_collate`` makes them in a worker; smaller ones and labels are numpy
    arrays in the pickled message. A batch all in shared memory takes a new segment per
    key (16 here), whose pages both processes fault in; one all in the message copies
    its bytes three times. 2 workers, 2 cores, windows/s (two runs each):

    ====================  ==============  =============  ====================
    window (batch of 4)   all in message  all shared     1 MiB or more shared
    ====================  ==============  =============  ====================
    256 px (whole patch)  20.8, 22.9      56.9, 51.5     58.4, 52.6
    128 px                129.0, 143.3    139.8, 134.5   152.7, 143.7
    64 px                 279.6, 392.3    295.5, 307.9   348.0, 417.6
    ====================  ==============  =============  ====================
    """

    def tensors(self) -> dict:
        """The batch of tensors torch's ``default_collate`` would make (arrays as tensors without a copy)."""
        return {key: torch.from_numpy(value) if isinstance(value, np.ndarray) else value for key, value in self.items()}

    def pin_memory(self, device: str | None = None) -> dict:  # `device`: torch's pinning thread passes it
        """:meth:`tensors` in pinned memory (called by the DataLoader's pinning thread)."""
        return {key: value.pin_memory() if torch.is_tensor(value) else value for key, value in self.tensors().items()}


def collate(items: list[dict]) -> ArrayBatch:
    """Stack items (dicts of tensors, numbers and strings) into an :class:`ArrayBatch`.

    Tensors and numbers stack along a new first axis (numbers as int64, as torch
    collates them; tensors of :data:`SHARED_BYTES` or more per batch into shared
    memory in a worker); strings become a list.
    """
    batch = ArrayBatch()
    for key, first in items[0].items():
        values = [item[key] for item in items]
        if torch.is_tensor(first) and first.nbytes * len(values) >= SHARED_BYTES:
            batch[key] = torch.utils.data.default_collate(values)  # in a worker: into shared memory
        elif torch.is_tensor(first):
            batch[key] = np.stack([value.numpy() for value in values])
        elif isinstance(first, str):
            batch[key] = values
        else:
            batch[key] = np.asarray(values, dtype=np.int64)
    return batch


class _Loader(torch.utils.data.DataLoader):
    """A DataLoader whose batches (:class:`ArrayBatch` from :func:`collate`) arrive as dicts of tensors."""

    def __iter__(self) -> Iterator[dict]:  # type: ignore[override]  # torch types it as its own iterator class
        for batch in super().__iter__():
            yield batch.tensors() if isinstance(batch, ArrayBatch) else batch


def loader(
    windows: SampleWindows,
    batch_size: int = 4,
    *,
    shuffle: bool = False,
    num_workers: int = 0,
    sampler: torch.utils.data.Sampler | list[int] | None = None,
    pin_memory: bool | None = None,
    drop_last: bool = False,
    start_method: str | None = None,
    timeout: float = 0.0,
) -> torch.utils.data.DataLoader:
    """A DataLoader over windows that starts its workers safely and fast, and is fast on CUDA.

    Workers start with each pass over the loader (with fork in well under a
    second), so what :meth:`SampleWindows.set_epoch` draws reaches them; memory
    is pinned when CUDA is available. Batches are dicts of tensors, as torch's
    ``default_collate`` makes them; workers send the small ones as numpy arrays
    (:class:`ArrayBatch`). For DDP pass
    ``sampler=DistributedSampler(windows)`` and call its ``set_epoch`` every epoch.

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
    return _Loader(
        windows,
        batch_size=batch_size,
        collate_fn=collate,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        multiprocessing_context=context,
        worker_init_fn=start_worker if workers else None,
        timeout=timeout if workers else 0,
    )
