"""GeoTIFF tree or archives -> one labelled, lossless, validated Zarr v3 cube; resumable, incremental, parallel.

:func:`convert` checks its options once (:class:`cube.ingest.options.ConversionOptions`), resolves the source and
hands both to its driver: one extracted tree to :mod:`cube.ingest.tree`, archives (and trees) to
:mod:`cube.ingest.archive_conversion`. The drivers build on :mod:`cube.ingest.building` and never import this
module.
"""

from __future__ import annotations

import os
import time

from ..clouds.detectors import DETECTORS
from ..store.schema import TILE_PX
from ..store.store import CubeStore
from .archive_conversion import convert_sources
from .building import ConversionReport
from .options import ConversionOptions
from .sources import resolve_sources
from .tree import convert_tree


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike | CubeStore,
    *,
    rois: list[str] | None = None,
    split: str | None = None,
    region: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    on_error: str = "fail",
    report: str | os.PathLike | None = None,
    clouds: tuple[str, ...] = DETECTORS,
    force_unlock: bool = False,
    storage_options: dict | None = None,
    tile: int = TILE_PX,
    progress: bool = True,
    scratch: str | os.PathLike | None = None,
    times: int | None = None,
    groups_at_once: int | None = None,
) -> ConversionReport:
    """Convert a SEN12MS-CR-TS (or SEN12MS-CR) GeoTIFF tree, or its published archives, into a Zarr v3 cube.

    One process at a time writes a cube: the conversion holds the cube's writer
    lock (see :class:`cube.store.store.CubeStore`) and is refused at once while another
    process holds it. A conversion with nothing to do writes nothing.

    Parameters
    ----------
    src : path, URL or list of them
        Data set root (``ROIsXXXX/<roi>/S1|S2/<t>/...``, or the SEN12MS-CR layout);
        or, read without extracting them (see :mod:`cube.ingest.archive_conversion`), a
        folder of the published ``.tar.gz`` archives, archives, ``http(s)://`` URLs
        of archives, or a list of these and trees.
    dst : path, str or CubeStore
        The cube: a path, or a ``s3://``, ``gs://``, ``file://`` or ``memory://`` URL
        (each shard is written once, whole). If it exists and is complete,
        patches not yet in it are appended.
    rois : list of str, optional
        ROIs to convert (``"ROIs1868/17"``); default: those of ``split`` and ``region``.
    split, region : str, optional
        Official split and region (default 'all' and 'all': every ROI found).
    workers : int, optional
        Local worker processes (default: all cores); 1 runs in this process.
    scheduler : str, optional
        Address of a running dask.distributed scheduler; its workers must see
        ``src`` and ``dst`` at the same paths.
    resume : bool
        Finish an interrupted conversion into ``dst``.
    on_error : {"fail", "skip"}
        "fail": stop at the first bad file with a message naming it (the cube
        stays marked incomplete). "skip": convert the rest; gaps are False in
        the ``valid`` variable and listed in the report.
    report : path, optional
        Write the :class:`ConversionReport` as JSON here.
    clouds : tuple of str
        Detectors of the cloud pass run after the conversion (SEN12MS-CR-TS
        only; see :func:`cube.clouds.compute.compute_clouds`); ``()`` skips it.
    force_unlock : bool
        Break the writer lock of a process that died on another machine (one that
        died on this machine is detected and its lock broken automatically).
    storage_options : dict, optional
        Object-store options (see :func:`cube.open_cube`).
    tile : int
        Edge in px of the images' inner chunks in a new cube (default
        :data:`cube.store.schema.TILE_PX`; must divide the patch size); a cube that
        exists keeps its chunking.
    progress : bool
        Show a progress bar.
    scratch : path, optional
        Archives only: folder for the members waiting for the rest of their
        patch (default: ``<cube>.scratch`` beside a local cube, else in the
        system's temporary folder); emptied at the start, deleted at the end.
    times : int, optional
        Archives only: time steps of every patch (default: the cube's, or 30 for
        a new SEN12MS-CR-TS cube); a tree's are counted.
    groups_at_once : int, optional
        Archives only: groups of archives (the S1 and S2 archives of one region
        and collection; a SEN12MS-CR season's three) read at once (default: one
        per 6 workers; with ``scheduler``, per 6 cores of this machine, which
        decompresses them). Each group decompresses on its own threads of this
        process and spools its own patches: the scratch bound grows with it.

    Returns
    -------
    ConversionReport

    Raises
    ------
    cube.store.lock.WriterLockedError
        If another process is writing the cube.

    Examples
    --------
    >>> convert("SEN12MSCRTS", "cube.zarr", split="test", region="europa")  # doctest: +SKIP
    """
    return convert_with(
        src,
        dst,
        ConversionOptions(
            rois=rois,
            split=split,
            region=region,
            workers=workers,
            scheduler=scheduler,
            resume=resume,
            on_error=on_error,
            report=report,
            clouds=clouds,
            force_unlock=force_unlock,
            storage_options=storage_options,
            tile=tile,
            progress=progress,
            scratch=scratch,
            times=times,
            groups_at_once=groups_at_once,
        ),
    )


def convert_with(
    src: str | os.PathLike | list, dst: str | os.PathLike | CubeStore, options: ConversionOptions
) -> ConversionReport:
    """:func:`convert` with its options as one object (as ``crts convert`` and ``crts download`` build them).

    Examples
    --------
    >>> convert_with("SEN12MSCRTS", "cube.zarr", ConversionOptions(split="test"))  # doctest: +SKIP
    """
    start_time = time.perf_counter()
    sources = resolve_sources(src)
    if sources is not None:
        return convert_sources(sources, dst, options, start_time)
    return convert_tree(src, dst, options, start_time)
