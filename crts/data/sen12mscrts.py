"""SEN12MS-CR-TS samples from a cube, with the original loader's arguments, sample order and dictionary."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from numcodecs import Zstd

from cube.clouds.compute import require_clouds
from cube.clouds.detectors import DETECTORS, detector
from cube.dataset.layout import parse_ts_path
from cube.dataset.rois import select_rois
from cube.store.store import CubeStore, as_store
from cube.store.views import open_cube, patch_bounds, patch_labels, stored_order

from .index_files import (
    index_file_name,
    index_from_records,
    load_json_index,
    load_npy_index,
    save_json_index,
    save_npy_index,
)
from .plot import SamplePlots
from .sampling import SAMPLERS, SampleIndex, check_selection, choose_steps, choose_steps_random
from .scaling import RESCALE_METHODS, days_since_s1_launch, scale_s1, scale_s2

PUBLISHED_INDEX_FILES = (
    "the original authors' published index files (e.g. 3_test_s2cloudless_mask.npy) are "
    "downloaded from the link in https://github.com/PatrickTUM/SEN12MS-CR-TS (README, Usage); "
    "docs/convert-real-data.md, section 8"
)
"""Where the index files that ``import_data_path`` (``--import-index``) names come from, for the one line
that says a file is missing."""
SAMPLE_TYPES = ("generic", "cloudy_cloudfree")


class SEN12MSCRTS(SamplePlots, torch.utils.data.Dataset):
    """Multi-temporal SEN12MS-CR-TS samples read from a cube instead of GeoTIFFs.

    Drop-in for the original ``SEN12MSCRTS(root, ...)``: same arguments (the
    first one is the cube), the same samples in the same order (``pdx``), the
    same dictionary. Cloud masks and coverage come from the cube's cloud pass.

    Each sample (``sample_type='cloudy_cloudfree'``) is ``{'input': {...},
    'target': {...}, 'coverage bin': bool}``; ``input`` holds lists over the
    ``n_input_samples`` steps, ``target`` lists of one:

    - ``'S2'``: float32 (13, H, W), bands B1 ... B12 (with B8A), scaled per
      ``rescale_method`` ('default': [0, 1]; 'resnet': [0, 5]);
    - ``'S1'``: float32 (2, H, W), VV and VH ('default': [0, 1]; 'resnet': [0, 2]);
    - ``'masks'``: float32 (H, W): the detector's mask (map for ``s2cloudless_map``;
      ones without a detector); ``'coverage'``: its mean;
    - ``'S1 TD'``, ``'S2 TD'``: int days since 2014-04-03;
    - ``'S1 path'``, ``'S2 path'``: the source GeoTIFFs recorded at conversion;
    - ``'coord'``: the S2 file's bounds [left, bottom, right, top] in metres in its UTM CRS
      (one list per step, as the original);
    - ``'crs'``: that CRS as a string, e.g. ``'EPSG:32631'`` (one per patch; batched: a list);
    - ``'idx'``: the time step(s).

    ``sample_type='generic'`` (and ``cloud_masks=None``) gives the whole series
    under the same keys, without ``input``/``target`` nesting. :meth:`plot` draws a
    sample (TorchGeo's ``plot(sample, show_titles=True, suptitle=None)``).

    Parameters
    ----------
    cube : path, str or cube.store.store.CubeStore
        A cube made by ``crts convert`` (with its cloud pass): a path, URL or opened store.
    split, region, cloud_masks, sample_type, n_input_samples, rescale_method, min_cov, max_cov
        As in the original loader (docs/reference.md §2 Splits to §5 Sampling).
    import_data_path : path, optional
        An index file to take inputs and targets from (the published test-split
        ``.npy`` files work unchanged and are read without running pickled code;
        ``.json`` files of our own format too); a folder means
        ``<n>_<split>_<cloud_masks>.npy`` in it.
    export_data_path : path, optional
        Where to write this selection's index (``.npy`` as the original, or
        ``.json``); a folder means ``<n>_<split>_<cloud_masks>.npy`` in it.
    sampler : {'fixed', 'random'}
        ``fixed``: the rules above. ``random``: UnCRtainTS's training sampler (a
        random clear target, inputs from the window around it; see
        :func:`crts.data.sampling.choose_steps_random`), drawn anew per epoch by
        :meth:`set_epoch` from ``(seed, epoch)``: reproducible and resumable.
    seed : int
        Seed of the ``random`` sampler.

    Examples
    --------
    >>> from crts.data import SEN12MSCRTS
    >>> data = SEN12MSCRTS("cube.zarr", split="test", n_input_samples=3)  # doctest: +SKIP
    >>> sample = data[0]; sample["input"]["S2"][0].shape  # doctest: +SKIP
    (13, 256, 256)
    """

    def __init__(
        self,
        cube: str | os.PathLike | CubeStore,
        split: str = "all",
        region: str = "all",
        cloud_masks: str | None = "s2cloudless_mask",
        sample_type: str = "cloudy_cloudfree",
        n_input_samples: int = 3,
        rescale_method: str = "default",
        min_cov: float = 0.0,
        max_cov: float = 1.0,
        import_data_path: str | os.PathLike | None = None,
        export_data_path: str | os.PathLike | None = None,
        sampler: str = "fixed",
        seed: int = 0,
        storage_options: dict | None = None,
    ) -> None:
        if cloud_masks is not None and cloud_masks not in DETECTORS:
            raise ValueError(f"invalid cloud_masks {cloud_masks!r}: choose from {', '.join(DETECTORS)} or None")
        if sample_type not in SAMPLE_TYPES:
            raise ValueError(f"invalid sample_type {sample_type!r}: choose from {', '.join(SAMPLE_TYPES)}")
        if sampler not in SAMPLERS:
            raise ValueError(f"invalid sampler {sampler!r}: choose from {', '.join(SAMPLERS)}")
        if sampler == "random" and import_data_path is not None:
            raise ValueError("an imported index fixes the time steps: it cannot go with sampler='random'")
        if rescale_method not in RESCALE_METHODS:
            raise ValueError(f"invalid rescale_method {rescale_method!r}: choose from {', '.join(RESCALE_METHODS)}")
        check_selection(n_input_samples, min_cov, max_cov)
        self.store = as_store(cube, storage_options=storage_options)
        self.cube = self.store.location
        self.split, self.region, self.cloud_masks = split, region, cloud_masks
        self.sample_type = "generic" if cloud_masks is None else sample_type
        self.n_input_samples, self.rescale_method = n_input_samples, rescale_method
        self.min_cov, self.max_cov = min_cov, max_cov
        self.sampler, self.seed = sampler, seed

        ds = open_cube(self.store, chunks=None)
        if ds.attrs["layout"] != "sen12mscrts":
            raise ValueError(f"{self.cube}: a {ds.attrs['dataset']} cube; use SEN12MSCR for it")
        if cloud_masks is not None:
            require_clouds(ds, cloud_masks)
        self.source_root = Path(ds.attrs["source_root"])
        stored = stored_order(self.store)  # sample order -> position on disk, for direct zarr reads
        chosen = {(r.group, r.number) for r in select_rois(split, region)}
        keep = np.array([(g, int(r)) in chosen for g, r in zip(ds.roi_group.values, ds.roi.values, strict=True)])
        if not keep.any():
            raise ValueError(f"{self.cube}: no patches of split {split!r} and region {region!r}")
        self.labels = [label for label, kept in zip(patch_labels(ds), keep, strict=True) if kept]
        """The :class:`cube.dataset.rois.PatchLabel` of each sample."""
        self.positions = stored[keep]
        self.s1_td = days_since_s1_launch(ds.S1_date.values[keep])
        self.s2_td = days_since_s1_launch(ds.S2_date.values[keep])
        self._paths: dict[str, np.ndarray] | None = None  # read on first use: 40 MB at full size
        self.coords = patch_bounds(ds)[keep]
        self.crs = [f"EPSG:{int(code)}" for code in ds.epsg.values[keep]]
        self.valid = ds.valid.sel(modality="S2").values[keep]
        self.coverage = (
            ds.coverage.sel(detector=cloud_masks).values[keep] if cloud_masks else np.where(self.valid, 1.0, np.nan)
        )
        self.index = self._sample_index(import_data_path) if self.sample_type == "cloudy_cloudfree" else None
        if sampler == "random" and self.index is not None:
            self.set_epoch(0)
        if export_data_path is not None and self.index is not None:
            self.export_index(export_data_path)
        self.image_size = ds.sizes["x"]
        """Width (= height) of the cube's images in pixels."""
        self._s2_type = self.store.array("S2").dtype

    def _sample_index(self, import_data_path: str | os.PathLike | None) -> SampleIndex:
        if import_data_path is None:
            return choose_steps(self.coverage, self.n_input_samples, self.min_cov, self.max_cov, self.labels)
        path = Path(import_data_path)
        if path.is_dir():
            path = path / index_file_name(self.n_input_samples, self.split, self.cloud_masks)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such index file; {PUBLISHED_INDEX_FILES}")
        records = load_json_index(path)[0] if path.suffix == ".json" else load_npy_index(path)
        index = index_from_records(records, self.n_input_samples, self.coverage.shape[1], self.labels, str(path))
        self._check_paths(records, path)
        return index

    def _check_paths(self, records: dict[int, dict], source: Path) -> None:
        """Paths in an imported file must name this selection's patch at every pdx (same order)."""
        for pdx, record in records.items():
            for text in _strings(record.get("paths", {})):
                try:
                    parsed = parse_ts_path(Path(text).relative_to(Path(text).parents[4]), Path())
                except (ValueError, IndexError):
                    continue
                mine = self.labels[pdx]  # pdx are 0 .. len - 1: index_from_records checked them
                if (parsed.roi, parsed.pid) != (mine.roi, mine.patch_id):
                    raise ValueError(
                        f"{source}: sample {pdx} refers to {parsed.roi} patch {parsed.pid}, but this "
                        f"selection's sample {pdx} is {mine}"
                    )

    @property
    def sample_index(self) -> SampleIndex:
        """The inputs and target of every sample (:attr:`index`), which the ``generic`` sample type has none of.

        Raises
        ------
        ValueError
            For a selection of sample type ``generic`` (or without a cloud detector).
        """
        if self.index is None:
            raise ValueError(
                f"{self.cube}: a selection of sample type 'generic' has no inputs and targets: choose "
                "sample_type='cloudy_cloudfree' and a cloud detector"
            )
        return self.index

    def set_epoch(self, epoch: int) -> None:
        """Draw the ``random`` sampler's time steps for ``epoch`` (from ``(seed, epoch)``); no-op for ``fixed``."""
        if self.sampler == "random" and self.index is not None:
            self.index = choose_steps_random(self.coverage, self.n_input_samples, (self.seed, epoch), self.labels)

    def export_index(self, path: str | os.PathLike) -> Path:
        """Write this selection's sample index (``.npy`` in the original's format, or ``.json``).

        A ``path`` with a suffix is the file; one without (or an existing folder) is a folder that gets the
        original's file name (:func:`index_file_name`). Missing parent folders are created.
        """
        index, path = self.sample_index, Path(path)
        if path.is_dir() or not path.suffix:
            path = path / index_file_name(self.n_input_samples, self.split, self.cloud_masks)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".json":
            settings = {
                k: getattr(self, k) for k in ("split", "region", "cloud_masks", "n_input_samples", "min_cov", "max_cov")
            }
            return save_json_index(path, index, self.labels, settings)
        paths = [
            {
                "input": {
                    "S1": [self._path("S1", p, t) for t in index.inputs[p]],
                    "S2": [self._path("S2", p, t) for t in index.inputs[p]],
                },
                "target": {
                    "S1": [self._path("S1", p, index.target[p])],
                    "S2": [self._path("S2", p, index.target[p])],
                },
            }
            for p in range(len(self))
        ]
        return save_npy_index(path, index, paths)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        masks = f"cloud_masks={self.cloud_masks!r}, sample_type={self.sample_type!r}"
        inputs = (
            (
                f", n_input_samples={self.n_input_samples}, min_cov={self.min_cov}, "
                f"max_cov={self.max_cov}, sampler={self.sampler!r}"
            )
            if self.index is not None
            else ""
        )
        return (
            f"SEN12MSCRTS({self.cube!r}, split={self.split!r}, region={self.region!r}, {masks}{inputs}): "
            f"{len(self)} samples of {self.image_size} x {self.image_size} px"
        )

    def __getstate__(self) -> dict:
        """What a DataLoader worker receives: the selection without its source paths, which each process reads
        on first use (at full size 41 of 50 MB), compressed with Zstandard: the train split of a 15,600-patch
        cube pickles to 1.16 MB instead of 7.8 MB (per-step dates, coverage, labels) in about 30 ms, once per
        worker start, and unpickles in 16 ms."""
        return {"zstd": Zstd(level=3).encode(pickle.dumps({**self.__dict__, "_paths": None}, protocol=5))}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(pickle.loads(Zstd().decode(state["zstd"])))  # our own __getstate__'s bytes

    def _path(self, modality: str, pdx: int, t: int) -> str:
        paths = self._paths
        if paths is None:
            paths = self._keep_paths([np.asarray(self.store.array(f"{m}_path")[:]) for m in ("S1", "S2")])
        return str(self.source_root / str(paths[modality][pdx, t]))

    def _keep_paths(self, stored: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Keep (and return) the selection's rows of the ``S1_path`` and ``S2_path`` arrays (as stored)."""
        self._paths = {m: paths[self.positions] for m, paths in zip(("S1", "S2"), stored, strict=True)}
        return self._paths

    def read_steps(self, pdx: int, steps: list[int], window: tuple[slice, slice] | None = None) -> dict:
        """Stacked arrays of some time steps of one sample: scaled ``S1`` (n, 2, H, W) and ``S2`` (n, 13, H, W),
        ``masks`` (n, H, W), and per-step ``coverage``, ``S1 TD``, ``S2 TD``, paths, ``coord``, ``idx`` lists;
        ``images`` is the float32 (n, 15, H, W) array that ``S2`` and ``S1`` are views of (S2 bands, then S1).

        Every image (S1, S2 and mask of every step) is read in one concurrent request
        to the cube (:meth:`cube.store.store.CubeStore.read`): over a network, two latencies per sample.
        S1 is read straight into ``images`` and scaled there, S2 scaled into it: no other copies.
        ``window`` (row and column slices) reads only that part of every image; the
        coverage stays the whole image's.
        """
        return self.read_many([(pdx, steps, window)])[0]

    def read_many(self, wanted: list[tuple[int, list[int], tuple[slice, slice] | None]]) -> list[dict]:
        """:meth:`read_steps` of several ``(pdx, steps, window)`` at once: every image of all of them in one
        concurrent request to the cube (over a network, two latencies for the lot, not two per sample)."""
        plans = [self._plan(*one) for one in wanted]
        requests = [request for plan in plans for request in plan[0]]
        out = [target for plan in plans for target in plan[1]]
        if self._paths is None:  # read with the first images, not one round trip after them
            requests += [(f"{m}_path", (slice(None),)) for m in ("S1", "S2")]
        read = self.store.read(requests, out + [None] * (len(requests) - len(out)))
        if self._paths is None:
            self._keep_paths(read[len(out) :])
        results, start = [], 0
        for (pdx, steps, _), (mine, _, images, s2) in zip(wanted, plans, strict=True):
            results.append(self._finish(pdx, steps, images, s2, read[start + 2 * len(steps) : start + len(mine)]))
            start += len(mine)
        return results

    def _plan(
        self, pdx: int, steps: list[int], window: tuple[slice, slice] | None
    ) -> tuple[list, list, np.ndarray, np.ndarray]:
        """One sample's requests, the arrays they read into (None: a new one), its float32 images and raw S2."""
        p, n = int(self.positions[pdx]), len(steps)
        rows, cols = window or (slice(None), slice(None))
        height, width = (len(range(self.image_size)[part]) for part in (rows, cols))
        images = np.empty((n, 15, height, width), np.float32)
        s2 = np.empty((n, 13, height, width), self._s2_type)
        requests: list[tuple[str, tuple]] = [("S2", (p, t, slice(None), rows, cols)) for t in steps]
        requests += [("S1", (p, t, slice(None), rows, cols)) for t in steps]
        if self.cloud_masks is not None:
            requests += [(self.cloud_masks, (p, t, rows, cols)) for t in steps]
        return requests, [*s2, *images[:, 13:], *[None] * (len(requests) - 2 * n)], images, s2

    def _finish(self, pdx: int, steps: list[int], images: np.ndarray, s2: np.ndarray, masks: list) -> dict:
        """:meth:`read_steps`' result from the images read (``masks``: the detector's, or none)."""
        n, (height, width) = len(steps), images.shape[-2:]
        clouds = (
            detector(self.cloud_masks).to_float(np.stack(masks))
            if masks and self.cloud_masks is not None  # masks are read only where there is a detector
            else np.ones((n, height, width), np.float32)
        )
        return {
            "S1": scale_s1(images[:, 13:], self.rescale_method, out=images[:, 13:]),
            "S2": scale_s2(s2, self.rescale_method, out=images[:, :13]),
            "masks": clouds,
            "images": images,
            "coverage": [float(self.coverage[pdx, t]) for t in steps],
            "S1 TD": [int(self.s1_td[pdx, t]) for t in steps],
            "S2 TD": [int(self.s2_td[pdx, t]) for t in steps],
            "S1 path": [self._path("S1", pdx, t) for t in steps],
            "S2 path": [self._path("S2", pdx, t) for t in steps],
            "coord": [self.coords[pdx].tolist()] * n,
            "idx": list(steps),
        }

    @staticmethod
    def _series(read: dict, part: slice) -> dict:
        """The original's per-step lists (of arrays) of some steps of a :meth:`read_steps` result."""
        return {key: list(value[part]) for key, value in read.items() if key != "images"}

    def __getitem__(self, pdx: int) -> dict:
        crs = {"crs": self.crs[pdx]}
        if self.sample_type == "generic":
            return self._series(self.read_steps(pdx, list(range(self.coverage.shape[1]))), slice(None)) | crs
        index = self.sample_index
        inputs = [int(t) for t in index.inputs[pdx]]
        read = self.read_steps(pdx, [*inputs, int(index.target[pdx])])  # one request for the whole sample
        target = self._series(read, slice(len(inputs), None)) | crs
        target["idx"] = target["idx"][0]
        return {
            "input": self._series(read, slice(0, len(inputs))) | crs,
            "target": target,
            "coverage bin": bool(index.coverage_bin[pdx]),
        }


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
