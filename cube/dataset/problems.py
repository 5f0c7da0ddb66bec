"""Problems found in a source tree or archive, as objects with fields (formatted only when shown).

A :class:`FileProblem` is raised where one file cannot go into the cube; a
:class:`Problem` is one entry of a conversion's list of problems, located as
precisely as it can be (file or folder, ROI, patch, time step, modality).

Examples
--------
>>> from cube.dataset.rois import Roi
>>> err = FileProblem("ROIs1868/73/S2/4/x.tif", "has 3 bands, expected 13")
>>> str(err)
'ROIs1868/73/S2/4/x.tif: has 3 bands, expected 13'
>>> problem = err.located(Roi("ROIs1868", 73), 12, 4, "S2")
>>> problem.record()["roi"], problem.patch_id
('ROIs1868/73', 12)
"""

from __future__ import annotations

from dataclasses import dataclass

from .rois import Roi


@dataclass(frozen=True)
class Problem:
    """One problem found, located as precisely as it can be (``-1``/``None``/``""`` where unknown)."""

    path: str
    message: str
    roi: Roi | None = None
    patch_id: int = -1
    time: int = -1
    modality: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def record(self) -> dict:
        """The problem as a JSON-ready record (the ROI written ``ROIsXXXX/NN``, ``""`` where unknown)."""
        return {
            "path": self.path,
            "message": self.message,
            "roi": str(self.roi) if self.roi else "",
            "patch_id": self.patch_id,
            "time": self.time,
            "modality": self.modality,
        }


class FileProblem(ValueError):  # noqa: N818 (the public, documented name of the project's file errors)
    """A file (or a missing file) that cannot go into the cube as it is: its ``path`` and the ``message``."""

    def __init__(self, path: object, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = str(path), message

    def __reduce__(self) -> tuple:  # raised on dask workers: pickled by its fields, not its text
        return type(self), (self.path, self.message)

    def located(self, roi: Roi | None = None, patch_id: int = -1, time: int = -1, modality: str = "") -> Problem:
        """This problem as an entry of a conversion's list, at the given patch slot."""
        return Problem(self.path, self.message, roi, patch_id, time, modality)
