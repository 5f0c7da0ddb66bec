"""The .npy index reader builds every value itself: NumPy's reconstruction is never called, so a crafted dtype
cannot corrupt memory, and nesting, size and memo positions are bounded (one line naming the file each)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crts.data import index_files
from crts.data.index_files import INDEX_DEPTH, INDEX_FILE_BYTES, UnsafeIndexFileError, load_npy_index

HEADER = {"descr": "|O", "fortran_order": False, "shape": ()}


def write_npy(path: Path, payload: bytes) -> Path:
    """An .npy file of a 0-d object array whose pickle is ``payload``."""
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, HEADER)
        f.write(payload)
    return path


def object_field_payload() -> bytes:
    """A dict whose target is a structured scalar array whose field is an object: its 8 raw bytes
    (0x41 each) become a pointer when NumPy reconstructs it."""
    array = np.zeros((), dtype=[("a", "<i8")])
    array["a"] = 0x4141414141414141
    payload = pickle.dumps(np.array({0: {"input": [0, 1, 2], "target": array}}, dtype=object), protocol=3)
    field_flags, array_flags = b"J\xff\xff\xff\xffK\x00t", b"K\x08K\x01K\x10t"  # the dtypes' state ends
    for part in (b"X\x02\x00\x00\x00i8", field_flags, array_flags):
        assert payload.count(part) == 1
    # the field an object; its flags say so (63); the structure's say "holds references" (9) but not
    # "pickled as a list" (2), so NumPy copies the raw bytes into it
    return (
        payload.replace(b"X\x02\x00\x00\x00i8", b"X\x02\x00\x00\x00O8")
        .replace(field_flags, field_flags[:-3] + b"K?t")
        .replace(array_flags, b"K\x08K\x01K\tt")
    )


def nested_payload(depth: int) -> bytes:
    """A pickle of a 0-d object array around a dict whose sample 0 is a list nested ``depth`` deep, written
    opcode by opcode (pickle.dumps would recurse as deep)."""
    head = pickle.dumps(np.array({0: "X"}, dtype=object), protocol=3)
    marker = b"X\x01\x00\x00\x00X"
    assert head.count(marker) == 1
    return head.replace(marker, b"]" * depth + b"a" * (depth - 1))


def run_isolated(path: Path) -> subprocess.CompletedProcess:
    """load_npy_index on ``path`` in a fresh interpreter (a crash there is an exit status, not a dead test run)."""
    code = (
        "import gc, sys\nfrom crts.data.index_files import load_npy_index\nmessage = None\ntry:\n"
        "    load_npy_index(sys.argv[1])\nexcept ValueError as err:\n    message = str(err)\ngc.collect()\n"
        "print(message)\nsys.exit(2 if message else 0)\n"
    )  # what was built is freed before the exit
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)


def test_an_object_field_dtype_is_refused_without_touching_memory(tmp_path: Path) -> None:
    path = write_npy(tmp_path / "idx.npy", object_field_payload())
    done = run_isolated(path)
    assert done.returncode == 2, done.stderr[-2000:]  # the previous reader died of SIGSEGV (-11) here
    assert (
        done.stdout == f"{path}: refused: describes dtype 'V8'; only b1, f4, f8, i1, i2, i4, i8, u1, u2, u4, "
        "u8 and one object array are allowed\n"
    )


def test_a_dtype_state_with_fields_is_refused(tmp_path: Path) -> None:
    payload = object_field_payload().replace(b"X\x02\x00\x00\x00V8", b"X\x02\x00\x00\x00i8")
    with pytest.raises(UnsafeIndexFileError, match=r"gives dtype i8 the state .*only plain dtypes") as err:
        load_npy_index(write_npy(tmp_path / "idx.npy", payload))
    assert str(err.value).startswith(f"{tmp_path / 'idx.npy'}: refused: ") and "\n" not in str(err.value)


def test_a_deeply_nested_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = write_npy(tmp_path / "idx.npy", nested_payload(100_000))
    with pytest.raises(UnsafeIndexFileError) as err:
        load_npy_index(path)
    assert str(err.value) == f"{path}: refused: nests containers more than {INDEX_DEPTH} deep (INDEX_DEPTH)"


def test_nesting_up_to_the_bound_is_read(tmp_path: Path) -> None:
    value = load_npy_index(write_npy(tmp_path / "idx.npy", nested_payload(INDEX_DEPTH - 1)))[0]
    for _ in range(INDEX_DEPTH - 2):
        (value,) = value
    assert value == []


def test_a_self_containing_list_is_refused(tmp_path: Path) -> None:
    head = pickle.dumps(np.array({0: "X"}, dtype=object), protocol=3)
    cycle = b"]q\xf0h\xf0a"  # a list, memoized, appended to itself
    path = write_npy(tmp_path / "idx.npy", head.replace(b"X\x01\x00\x00\x00X", cycle))
    with pytest.raises(UnsafeIndexFileError, match="nests containers more than 32 deep"):
        load_npy_index(path)


def test_shared_references_cannot_multiply_the_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_files, "INDEX_ITEMS", 1000)
    shared = [0] * 100
    content = {0: [shared] * 100}  # 10,100 values once copied, 201 in the file
    path = tmp_path / "idx.npy"
    np.save(path, content, allow_pickle=True)
    with pytest.raises(UnsafeIndexFileError, match="holds more than 1000 values"):
        load_npy_index(path)


def test_a_huge_memo_position_is_refused_before_unpickling(tmp_path: Path) -> None:
    head = pickle.dumps(np.array({0: "X"}, dtype=object), protocol=3)
    path = write_npy(tmp_path / "idx.npy", head.replace(b"X\x01\x00\x00\x00X", b"]r\xff\xff\xff\xff"))
    with pytest.raises(UnsafeIndexFileError, match="puts an object at memo position 4294967295"):
        load_npy_index(path)


def test_an_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = write_npy(tmp_path / "idx.npy", pickle.dumps(np.array({0: 1}, dtype=object), protocol=3))
    with path.open("r+b") as f:
        f.truncate(INDEX_FILE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(UnsafeIndexFileError, match=f"{INDEX_FILE_BYTES + 1} bytes, more than an index file"):
        load_npy_index(path)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.array([[1, 2]]), "holds an array of shape (1, 2); only 1-d arrays are allowed"),
        (np.array(["a"]), "describes dtype 'U1'"),
        (np.array([1 + 2j]), "describes dtype 'c16'"),
        ({1, 2}, "uses pickle opcode EMPTY_SET"),
        (np.array([None], dtype=object), "holds an object array other than the one around the dict"),
    ],
)
def test_other_values_are_refused(tmp_path: Path, value: object, message: str) -> None:
    path = tmp_path / "idx.npy"
    np.save(path, {0: {"input": [0, 1, 2], "target": value}}, allow_pickle=True)
    with pytest.raises(
        UnsafeIndexFileError, match=f"^{path}: refused: .*" + message.replace("(", r"\(").replace(")", r"\)")
    ):
        load_npy_index(path)


def test_numbers_and_int_arrays_read_as_python_values(tmp_path: Path) -> None:
    path = tmp_path / "idx.npy"
    np.save(
        path,
        {
            0: {
                "input": np.array([3, 1, 2], ">i4"),
                "target": np.int64(7),
                "f": np.float32(0.5),
                "b": np.bool_(True),
                "u": np.uint16(9),
                "paths": {"S2": ["a.tif"]},
                ("x", 1): None,
            }
        },
        allow_pickle=True,
    )
    record = load_npy_index(path)[0]
    assert record == {
        "input": [3, 1, 2],
        "target": 7,
        "f": 0.5,
        "b": True,
        "u": 9,
        "paths": {"S2": ["a.tif"]},
        ("x", 1): None,
    }
    assert type(record["target"]) is int and type(record["input"][0]) is int


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_the_pickle_protocols_np_save_has_written_read_alike(tmp_path: Path, protocol: int) -> None:
    """numpy < 1.17 pickled with protocol 2 (bytes as _codecs.encode, empty bytes as bytes()), later with 3, 4."""
    content = {
        0: {
            "input": [0, 1, 2],
            "target": np.int64(3),
            "empty": np.array([], np.int64),
            "steps": np.array([4, 5], np.int64),
            "paths": {"S2": ["a.tif"]},
        }
    }
    path = write_npy(tmp_path / "idx.npy", pickle.dumps(np.array(content, dtype=object), protocol=protocol))
    assert load_npy_index(path) == {
        0: {"input": [0, 1, 2], "target": 3, "empty": [], "steps": [4, 5], "paths": {"S2": ["a.tif"]}}
    }
