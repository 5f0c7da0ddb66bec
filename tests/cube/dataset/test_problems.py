"""Problems are objects with fields: raised on a worker, they arrive whole; recorded, they keep their location."""

from __future__ import annotations

import pickle

import pytest

from cube.dataset.problems import FileProblem, Problem
from cube.dataset.rois import Roi
from cube.ingest.archives import ArchiveError


@pytest.mark.parametrize("kind", [FileProblem, ArchiveError])
def test_a_file_problem_crosses_processes_with_its_fields(kind: type[FileProblem]) -> None:
    err = kind("ROIs1868/17/S2/3/s2_x.tif", "is 32 x 30 px, expected 32 x 32: of a file: named")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is kind and (back.path, back.message) == (err.path, err.message)
    assert str(back) == "ROIs1868/17/S2/3/s2_x.tif: is 32 x 30 px, expected 32 x 32: of a file: named"
    assert isinstance(back, ValueError)  # the CLI's one-line errors


def test_a_located_problem_records_its_slot_and_an_unlocated_one_says_so() -> None:
    located = FileProblem("a.tif", "bad").located(Roi("ROIs2017", 32), 7, 3, "S1")
    assert located == Problem("a.tif", "bad", Roi("ROIs2017", 32), 7, 3, "S1")
    assert located.record() == {
        "path": "a.tif",
        "message": "bad",
        "roi": "ROIs2017/32",
        "patch_id": 7,
        "time": 3,
        "modality": "S1",
    }
    assert FileProblem("folder", "cannot be read").located().record() == {
        "path": "folder",
        "message": "cannot be read",
        "roi": "",
        "patch_id": -1,
        "time": -1,
        "modality": "",
    }
