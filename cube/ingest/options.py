"""The options of one conversion, checked once: what :func:`cube.ingest.conversion.convert` takes besides its source
and cube, handed as one frozen object to the tree and the archive drivers (and built by ``crts convert`` and
``crts download --convert``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..clouds.detectors import DETECTORS, detector
from ..parallel import check_count, check_workers
from ..store.schema import TILE_PX

ON_ERROR = ("fail", "skip")
"""What a bad file does: stop the conversion, or leave a gap and convert the rest."""


@dataclass(frozen=True)
class ConversionOptions:
    """How to convert; refused at construction when a value cannot be right whatever the source.

    Attributes
    ----------
    rois : list of str, optional
        ROIs to convert (``"ROIs1868/17"``); None: those of ``split`` and ``region``.
    split, region : str, optional
        Official split and region (None: 'all', every ROI found).
    workers : int, optional
        Local worker processes, at least 1 (None: all cores); 1 runs in this process.
    scheduler : str, optional
        Address of a running dask.distributed scheduler.
    resume : bool
        Finish an interrupted conversion.
    on_error : {"fail", "skip"}
        Stop at the first bad file, or convert the rest and record the gaps (:data:`ON_ERROR`).
    report : path, optional
        Where the conversion's report is written as JSON.
    clouds : tuple of str
        Detectors of the cloud pass after the conversion (names of :data:`cube.clouds.detectors.DETECTORS`);
        ``()`` skips it.
    force_unlock : bool
        Break the writer lock of a process that died on another machine.
    storage_options : dict, optional
        Object-store options of the cube.
    tile : int
        Edge in px of the images' inner chunks in a new cube (must divide the patch size).
    progress : bool
        Show a progress bar.
    scratch : path, optional
        Archives only: folder for the members waiting for the rest of their patch.
    times : int, optional
        Archives only: time steps of every patch (None: the cube's, or 30 for a new cube).
    groups_at_once : int, optional
        Archives only: groups of archives read at once, at least 1 (None: one per 6 workers).

    Examples
    --------
    >>> ConversionOptions(workers=2, clouds=()).on_error
    'fail'
    >>> ConversionOptions(on_error="ignore")
    Traceback (most recent call last):
    ...
    ValueError: invalid on_error 'ignore': choose one of fail, skip
    """

    rois: list[str] | None = None
    split: str | None = None
    region: str | None = None
    workers: int | None = None
    scheduler: str | None = None
    resume: bool = False
    on_error: str = "fail"
    report: str | os.PathLike | None = None
    clouds: tuple[str, ...] = DETECTORS
    force_unlock: bool = False
    storage_options: dict | None = None
    tile: int = TILE_PX
    progress: bool = True
    scratch: str | os.PathLike | None = None
    times: int | None = None
    groups_at_once: int | None = None

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise ValueError(f"invalid on_error {self.on_error!r}: choose one of {', '.join(ON_ERROR)}")
        check_workers(self.workers)
        for name in self.clouds:
            detector(name)  # an unknown detector is refused before anything is written
        check_count(
            "groups_at_once",
            self.groups_at_once,
            "read at least 1 group of archives at once, or leave it out for one per 6 workers",
        )
