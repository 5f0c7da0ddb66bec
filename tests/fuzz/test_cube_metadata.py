"""Fuzz target: a cube's JSON metadata (cube.store.backends.parse_metadata, and `crts info` on a cube whose state
and root attributes are generated): the document is read as json.loads reads it, or refused in one MetadataError line;
`crts info` ends with exit status 0 or 2 and at most one line on stderr, never a traceback."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crts.cli import main
from cube.store.backends import METADATA_DEPTH, MetadataError, parse_metadata
from cube.synth.hollow import make_hollow
from tests.helpers import mutated

pytestmark = pytest.mark.fuzz
FOLDER = Path(tempfile.mkdtemp(prefix="fuzz_metadata_"))
atexit.register(shutil.rmtree, FOLDER, True)  # the inputs written for the parsers go with the process
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)


def _depth(value: object) -> int:
    if isinstance(value, dict | list):
        return 1 + max((_depth(v) for v in (value.values() if isinstance(value, dict) else value)), default=0)
    return 0


def _nested(depth: int, innermost: object) -> object:
    for _ in range(depth):
        innermost = [innermost]
    return innermost


@given(values, st.integers(0, 2 * METADATA_DEPTH))
def test_generated_documents(value: object, wrap: int) -> None:
    document = {"zarr_format": 3, "node_type": "group", "attributes": {"a": _nested(wrap, value)}}
    data = json.dumps(document).encode()
    try:
        got = parse_metadata(data, "x/zarr.json")
    except MetadataError as err:
        assert (
            _depth(document) > METADATA_DEPTH
            and str(err) == f"x/zarr.json: metadata nested more than {METADATA_DEPTH} deep (METADATA_DEPTH)"
        )
        return
    assert got == json.loads(data) and _depth(document) <= METADATA_DEPTH


@given(
    mutated(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {"a": [[1, 2], {"b": "c"}]}}).encode())
)
def test_mutated_documents(data: bytes) -> None:
    try:
        parse_metadata(data, "x/zarr.json")
    except MetadataError as err:
        assert str(err).startswith("x/zarr.json: ") and "\n" not in str(err)


def _hollow() -> Path:
    path = FOLDER / "hollow.zarr"
    if not path.exists():
        make_hollow(path, 53, times=2, size=16)
    return path


@settings(max_examples=max(10, settings.default.max_examples // 10))  # a command per example: 0.1 s or more
@given(st.sampled_from(["zarr.json", "cube_state/zarr.json"]), values, st.integers(0, 2 * METADATA_DEPTH))
def test_crts_info_on_generated_attributes(key: str, value: object, wrap: int) -> None:
    cube = FOLDER / "cube.zarr"
    if not cube.exists():
        shutil.copytree(_hollow(), cube)
    document = json.loads((_hollow() / key).read_text())
    document["attributes"]["fuzzed"] = _nested(wrap, value)
    (cube / key).write_text(json.dumps(document))
    with pytest.MonkeyPatch.context() as patch:
        lines = []
        patch.setattr("sys.stderr.write", lambda text: lines.append(text) or len(text), raising=False)
        code = main(["info", str(cube)])
    assert code in (0, 2) and "".join(lines).count("\n") <= 1
