"""Fuzz target: the .npy index reader (crts.data.index_files.load_npy_index) on mutated genuine files, generated
pickles and random opcodes: it returns plain data or raises UnsafeIndexFileError / ValueError, never crashes."""

from __future__ import annotations

import atexit
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crts.data.index_files import UnsafeIndexFileError, load_npy_index
from tests.helpers import mutated

pytestmark = pytest.mark.fuzz
FOLDER = Path(tempfile.mkdtemp(prefix="fuzz_npy_"))
atexit.register(shutil.rmtree, FOLDER, True)  # the inputs written for the parsers go with the process
GENUINE = {
    pdx: {
        "input": [pdx, pdx + 1, pdx + 2],
        "target": np.int64(pdx + 3),
        "paths": {
            "input": {"S1": [f"ROIs1868/17/S1/{t}/s1_{pdx}.tif" for t in range(3)]},
            "target": {"S2": [f"ROIs1868/17/S2/3/s2_{pdx}.tif"]},
        },
    }
    for pdx in range(3)
}


def genuine_bytes(protocol: int = 3) -> bytes:
    """An index file as the original toolbox writes it (np.save of a dict), pickled with ``protocol``."""
    path = FOLDER / f"genuine{protocol}.npy"
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(np.array(GENUINE, dtype=object), f, protocol=protocol)
    return path.read_bytes()


def _load(data: bytes) -> object:
    path = FOLDER / "case.npy"
    path.write_bytes(data)
    try:
        return load_npy_index(path)
    except ValueError as err:  # UnsafeIndexFileError is one
        assert "\n" not in str(err) and str(err).startswith(str(path))
        return None


@given(st.sampled_from([2, 3, 4, 5]).flatmap(lambda p: mutated(genuine_bytes(p))))
def test_mutated_genuine_files(data: bytes) -> None:
    _load(data)


numbers = (
    st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.none()
    | st.integers(-(2**31), 2**31 - 1).map(np.int32)
    | st.integers(0, 2**16 - 1).map(np.uint16)
    | st.floats(width=32, allow_nan=False).map(np.float32)
    | st.text(max_size=8)
)
arrays = st.lists(st.integers(-(2**63), 2**63 - 1), max_size=6).map(lambda v: np.array(v, np.int64))
plain = st.recursive(
    numbers | arrays,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.integers(0, 5) | st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(plain, st.sampled_from([2, 3, 4, 5]))
def test_generated_pickles_of_plain_data(value: object, protocol: int) -> None:
    path = FOLDER / "plain.npy"
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(np.array({0: value}, dtype=object), f, protocol=protocol)
    expected = np.load(path, allow_pickle=True).item()[0]
    if protocol == 5 and _has_array(expected):  # raw data out of band (never written by np.save): refused
        with pytest.raises(UnsafeIndexFileError, match="uses pickle opcode BYTEARRAY8"):
            load_npy_index(path)
        return
    assert load_npy_index(path)[0] == _as_plain(expected)


def _has_array(value: object) -> bool:
    if isinstance(value, dict):
        return any(_has_array(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_array(v) for v in value)
    return isinstance(value, np.ndarray)


def _as_plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _as_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_plain(v) for v in value]
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value


@given(st.binary(max_size=300))
def test_random_opcodes(payload: bytes) -> None:
    header = genuine_bytes()[:128]  # the .npy header of a 0-d object array
    _load(header + b"\x80\x03" + payload)


SCRIPT = """
import random, sys
from pathlib import Path
from crts.data.index_files import UnsafeIndexFileError, load_npy_index
data, path, rng = Path(sys.argv[1]).read_bytes(), Path(sys.argv[2]), random.Random(int(sys.argv[3]))
for _ in range(int(sys.argv[4])):
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    path.write_bytes(bytes(out[:rng.randint(len(out) // 2, len(out))]))
    try:
        load_npy_index(path)
    except ValueError:
        pass
print("ran", sys.argv[4])
"""


def test_a_batch_in_a_child_process_does_not_crash() -> None:
    """A crash (a segfault) would kill the test process; here it is an exit status."""
    source = FOLDER / "batch_source.npy"
    source.write_bytes(genuine_bytes())
    count = 2000
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(source),
            str(FOLDER / "batch.npy"),
            str(random.Random(0).randrange(2**32)),
            str(count),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and done.stdout == f"ran {count}\n", done.stderr[-2000:]
