"""Sample index files: the original toolbox's ``.npy`` format (read safely) and a plain JSON format of our own.

The original writes ``np.save(path, {pdx: {'input': [t, ...], 'target': t, 'paths': {...}}})``: a
0-d object array whose payload is a pickle. Unpickling can run arbitrary code, and NumPy's own
reconstruction functions (``_reconstruct``, ``dtype.__setstate__``) can build object fields
from raw bytes (a pointer read from the file: memory corruption). :func:`load_npy_index`
therefore never calls them: the pickle's opcodes are checked first (:func:`checked_opcodes`),
then the NumPy globals it names are answered by this module's own constructors, which build
plain Python values (ints, floats, bools, lists of ints) from the raw bytes with a few simple
dtypes, and refuse everything else; the result is copied into plain dicts and lists no deeper
than :data:`INDEX_DEPTH` and no larger than :data:`INDEX_ITEMS` values.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import reprlib
from pathlib import Path
from typing import Literal, TypeGuard

import numpy as np

from cube.dataset.rois import PatchLabel

from .sampling import SampleIndex

JSON_FORMAT = "sen12mscrts-sample-index"
INDEX_FILE_BYTES = 256 * 2**20
"""Largest ``.npy`` index file read (256 MiB). A sample of the original's format holds its input and target
steps and two source paths per step (about 100 bytes each); the whole data set (about 15,600 patches) with
all 30 steps as inputs is about 100 MB, so a genuine file is smaller whatever its settings."""
INDEX_ITEMS = 2**23
"""Most values (containers, strings, numbers) built from an index file (8,388,608): the whole data set's
15,600 samples with 31 steps, 62 paths and their containers each need about 2.3 million. Also bounds the
pickle's memo, so that neither a huge memo index nor shared references (a list holding one list a
million times, nested) can make the reader allocate more than the file's size suggests."""
INDEX_DEPTH = 32
"""Deepest nesting of containers accepted (the original's records are 5 deep: samples, sample, 'paths',
modality, list of paths); deeper input would recurse as deep as it is nested."""
SIMPLE_DTYPES = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8"})
"""The only dtypes (besides the one object dtype of the 0-d array that holds the dict) that an index file may
describe: booleans, integers and floats, of one byte order, without fields, subarrays or objects."""
BYTE_ORDERS: dict[str, Literal["<", ">", "="]] = {"<": "<", ">": ">", "|": "=", "=": "="}
"""The byte orders a dtype's state may give, and what each means for a simple dtype (``|``, not applicable:
native)."""
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_OPCODES = frozenset(
    {
        "PROTO",
        "FRAME",
        "STOP",
        "MARK",
        "POP",
        "POP_MARK",
        "DUP",
        "NONE",
        "NEWTRUE",
        "NEWFALSE",
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "UNICODE",
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
        "EMPTY_LIST",
        "APPEND",
        "APPENDS",
        "LIST",
        "EMPTY_TUPLE",
        "TUPLE",
        "TUPLE1",
        "TUPLE2",
        "TUPLE3",
        "EMPTY_DICT",
        "DICT",
        "SETITEM",
        "SETITEMS",
        "GLOBAL",
        "STACK_GLOBAL",
        "REDUCE",
        "BUILD",
        "PUT",
        "BINPUT",
        "LONG_BINPUT",
        "MEMOIZE",
        "GET",
        "BINGET",
        "LONG_BINGET",
    }
)
"""Pickle opcodes of plain data and of NumPy's array and scalar reconstruction (no NEWOBJ, INST, OBJ,
PERSID, EXT, sets, frozensets or out-of-band buffers)."""


class UnsafeIndexFileError(ValueError):
    """An index file that needs more than plain data to load: refused without running it."""


class NumpyDtype:
    """A dtype as an index file describes it (``numpy.dtype(spec, align, copy)`` then its state): checked, never
    built by NumPy's own ``dtype.__setstate__``."""

    def __init__(self, spec: object, align: object = False, copy: object = True) -> None:
        if spec != "O8" and spec not in SIMPLE_DTYPES:
            raise UnsafeIndexFileError(
                f"describes dtype {reprlib.repr(spec)}; only {', '.join(sorted(SIMPLE_DTYPES))} "
                "and one object array are allowed"
            )
        self.spec, self.order = spec, "|"

    def __setstate__(self, state: object) -> None:
        """Accept only the state of a plain dtype: version 3, a byte order, no names, fields or subarray."""
        if not (
            isinstance(state, tuple)
            and len(state) == 8
            and state[0] == 3
            and isinstance(state[1], str)
            and state[1] in BYTE_ORDERS
            and state[2:5] == (None, None, None)
            and state[5:7] == (-1, -1)
            and isinstance(state[7], int)
        ):
            raise UnsafeIndexFileError(
                f"gives dtype {self.spec} the state {reprlib.repr(state)}; only plain "
                "dtypes (no fields, subarrays or objects) are allowed"
            )
        self.order = state[1]

    def numeric(self) -> np.dtype:
        """The dtype, if it is one of :data:`SIMPLE_DTYPES`."""
        if self.spec == "O8":
            raise UnsafeIndexFileError("holds a nested object array; only plain numbers and lists are allowed")
        return np.dtype(self.spec).newbyteorder(BYTE_ORDERS[self.order])


class NumpyArray:
    """An array as an index file describes it (``_reconstruct(ndarray, shape, typecode)`` then its state): the one
    0-d object array around the dict, or a 1-d array of :data:`SIMPLE_DTYPES` read from its raw bytes."""

    def __init__(self, cls: object = None, shape: object = None, typecode: object = None) -> None:
        if cls is not NumpyArray:
            raise UnsafeIndexFileError(f"reconstructs a {reprlib.repr(cls)}; only numpy.ndarray is allowed")
        self.value: object = None

    def __setstate__(self, state: object) -> None:
        if not (
            isinstance(state, tuple)
            and len(state) == 5
            and state[0] == 1
            and isinstance(state[2], NumpyDtype)
            and isinstance(state[1], tuple)
        ):
            raise UnsafeIndexFileError(f"gives an array the state {reprlib.repr(state)}; not a plain array")
        _, shape, dtype, _, raw = state
        if dtype.spec == "O8":
            if shape != () or not isinstance(raw, list) or len(raw) != 1:
                raise UnsafeIndexFileError("holds an object array other than the one around the dict")
            self.value = raw[0]
            return
        if len(shape) > 1 or not all(isinstance(n, int) and 0 <= n <= INDEX_ITEMS for n in shape):
            raise UnsafeIndexFileError(f"holds an array of shape {reprlib.repr(shape)}; only 1-d arrays are allowed")
        self.value = _numbers(raw, dtype.numeric(), shape[0] if shape else 1)
        if not shape:
            self.value = self.value[0]


def _numbers(raw: object, dtype: np.dtype, count: int) -> list:
    """``count`` numbers of ``dtype`` from raw bytes, as Python values."""
    if not isinstance(raw, bytes) or len(raw) != count * dtype.itemsize:
        raise UnsafeIndexFileError(f"gives {reprlib.repr(raw)} as the bytes of {count} {dtype} value(s)")
    return np.frombuffer(raw, dtype).tolist()


def numpy_scalar(dtype: object, raw: object = None) -> object:
    """A NumPy scalar of an index file (``scalar(dtype, bytes)``) as a Python number."""
    if not isinstance(dtype, NumpyDtype):
        raise UnsafeIndexFileError(f"makes a scalar of {reprlib.repr(dtype)}; not a dtype")
    return _numbers(raw, dtype.numeric(), 1)[0]


def latin1_bytes(text: object, encoding: object = "latin1") -> bytes:
    """Bytes as pickle protocol 2 writes them (``_codecs.encode(text, 'latin1')``: NumPy's raw data)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeIndexFileError(
            f"encodes {reprlib.repr(text)} as {reprlib.repr(encoding)}; only latin1 text "
            "(protocol 2's bytes) is allowed"
        )
    return text.encode("latin1")


def empty_bytes() -> bytes:
    """The empty bytes as pickle protocol 2 writes them (``bytes()``: the raw data of an empty array)."""
    return b""


_CONSTRUCTORS = {
    **{(module, "_reconstruct"): NumpyArray for module in _NUMPY_MODULES},
    **{(module, "scalar"): numpy_scalar for module in _NUMPY_MODULES},
    ("numpy", "ndarray"): NumpyArray,
    ("numpy", "dtype"): NumpyDtype,
    ("_codecs", "encode"): latin1_bytes,
    ("__builtin__", "bytes"): empty_bytes,
    ("builtins", "bytes"): empty_bytes,
}
"""What the NumPy globals of an index file are answered with: this module's constructors, never NumPy's."""


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _CONSTRUCTORS:
            raise UnsafeIndexFileError(
                f"refers to {module}.{name}; only plain dicts, lists, ints, strings and "
                "NumPy scalars are allowed in an index file"
            )
        return _CONSTRUCTORS[module, name]


def checked_opcodes(payload: bytes) -> None:
    """Check a pickle's opcodes without running it: only those of :data:`_OPCODES`, memo positions below
    :data:`INDEX_ITEMS` (CPython's unpickler sizes its memo by the largest position it is given).

    Raises
    ------
    UnsafeIndexFileError
        Naming the first opcode refused.
    """
    for opcode, arg, position in pickletools.genops(payload):
        if opcode.name not in _OPCODES:
            raise UnsafeIndexFileError(f"uses pickle opcode {opcode.name} at byte {position}; not plain data")
        if opcode.name.endswith("PUT") and not (isinstance(arg, int) and 0 <= arg < INDEX_ITEMS):
            raise UnsafeIndexFileError(
                f"puts an object at memo position {arg} (byte {position}); at most {INDEX_ITEMS} are allowed"
            )


def plain_data(value: object) -> object:
    """A loaded index as plain Python data (NumPy placeholders replaced by their values), within
    :data:`INDEX_DEPTH` and :data:`INDEX_ITEMS`.

    Raises
    ------
    UnsafeIndexFileError
        For a value of another type, nesting that is too deep, or too many values.
    """
    budget = [INDEX_ITEMS]

    def copy(item: object, depth: int) -> object:
        budget[0] -= 1
        if budget[0] < 0:
            raise UnsafeIndexFileError(f"holds more than {INDEX_ITEMS} values (INDEX_ITEMS)")
        if depth > INDEX_DEPTH:
            raise UnsafeIndexFileError(f"nests containers more than {INDEX_DEPTH} deep (INDEX_DEPTH)")
        if isinstance(item, NumpyArray):
            return copy(item.value, depth)
        if isinstance(item, dict):
            return {_key(copy(k, depth + 1)): copy(v, depth + 1) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [copy(v, depth + 1) for v in item]
        if isinstance(item, bool | int | str | float) or item is None:
            return item
        raise UnsafeIndexFileError(f"holds a {type(item).__name__}, not plain data")

    return copy(value, 0)


def _key(value: object) -> object:
    """A dict key copied by :func:`plain_data`: a tuple stays a tuple (as a key it cannot be a list)."""
    return tuple(value) if isinstance(value, list) else value


def _first_line(err: Exception) -> str:
    return str(err).split("\n", 1)[0]


def load_npy_index(path: str | os.PathLike) -> dict[int, dict]:
    """Read an original index file without executing code from it or letting NumPy build objects from it.

    Raises
    ------
    UnsafeIndexFileError
        If the file refers to anything but plain data, is larger than :data:`INDEX_FILE_BYTES`, or nests
        or holds more than :data:`INDEX_DEPTH` / :data:`INDEX_ITEMS` allow; one line naming the file.
    ValueError
        If it is not a NumPy file holding one dict.
    """
    path = Path(path)
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > INDEX_FILE_BYTES:
            raise UnsafeIndexFileError(
                f"{path}: refused: {size} bytes, more than an index file can hold "
                f"({INDEX_FILE_BYTES}, INDEX_FILE_BYTES)"
            )
        try:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(f)
        except Exception as err:  # a damaged header fails in NumPy's parser as ValueError, TokenError, ...
            raise ValueError(f"{path}: not a NumPy .npy file ({type(err).__name__}: {_first_line(err)})") from None
        if dtype != np.dtype(object) or shape != ():
            raise ValueError(f"{path}: expected one pickled dict (a 0-d object array), found {dtype} {shape}")
        content = _unpickled(f.read(), path)
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a dict of samples, found {type(content).__name__}")
    return content


def _unpickled(payload: bytes, path: Path) -> object:
    """The plain data of an index file's pickle (see :func:`load_npy_index`)."""
    try:
        checked_opcodes(payload)
        return plain_data(_PlainDataUnpickler(io.BytesIO(payload)).load())
    except UnsafeIndexFileError as err:
        raise UnsafeIndexFileError(f"{path}: refused: {err}") from None
    except Exception as err:  # damaged bytes fail in many ways (TypeError, MemoryError, ...): all mean corrupt
        raise ValueError(f"{path}: unreadable pickle payload ({type(err).__name__}: {_first_line(err)})") from None


def index_file_name(n_input_samples: int, split: str, cloud_masks: str | None) -> str:
    """The original's file name for an index of (n_input_samples, split, cloud_masks)."""
    return f"{n_input_samples}_{split}_{cloud_masks}.npy"


def save_npy_index(path: str | os.PathLike, index: SampleIndex, paths: list[dict]) -> Path:
    """Write an index in the original's ``.npy`` format (readable by the original toolbox)."""
    content = {
        pdx: {"input": [int(t) for t in index.inputs[pdx]], "target": np.int64(index.target[pdx]), "paths": paths[pdx]}
        for pdx in range(len(index))
    }
    path = Path(path)
    np.save(path, np.array(content, dtype=object), allow_pickle=True)  # a 0-d object array, as np.save makes
    return path


def index_from_records(
    records: dict, n_input_samples: int, n_times: int, labels: list[PatchLabel], source: str
) -> SampleIndex:
    """A :class:`SampleIndex` from ``{pdx: {'input': [...], 'target': t}}``, every field checked.

    Parameters
    ----------
    records : dict
        Sample records by pdx, as read from an index file.
    n_input_samples : int
        The number of input steps each record must list.
    n_times : int
        The cube's number of time steps: steps must lie in [0, n_times).
    labels : list of cube.dataset.rois.PatchLabel
        This selection's patch per pdx; records that carry ``roi`` and
        ``patch_id`` (our JSON format) must name the same patch.
    source : str
        The file, for messages.

    Raises
    ------
    ValueError
        One line naming the file, the sample and the field at fault.
    """
    _check_sample_numbers(records, len(labels), source)
    steps = [
        _checked_record(records[pdx], pdx, n_input_samples, n_times, labels[pdx], source) for pdx in range(len(labels))
    ]
    return SampleIndex(
        inputs=np.array([s[0] for s in steps], dtype=np.int64),
        target=np.array([s[1] for s in steps], dtype=np.int64),
        coverage_bin=np.array([s[2] for s in steps], dtype=bool),
    )


def _check_sample_numbers(records: dict, n_samples: int, source: str) -> None:
    """Samples must be numbered 0 .. n_samples - 1, as this selection's."""
    extra = [k for k in records if not _is_int(k) or not 0 <= k < n_samples]
    missing = [pdx for pdx in range(n_samples) if pdx not in records]
    if extra or missing:
        faults = ([f"lacks pdx {_listed(missing)}"] if missing else []) + (
            [f"has pdx {_listed(extra)} in excess"] if extra else []
        )
        raise ValueError(
            f"{source}: this selection's samples are pdx 0..{n_samples - 1}; the file "
            f"{' and '.join(faults)}; use the split, region and cube it was made for"
        )


def _is_int(value: object) -> TypeGuard[int]:
    """An integer, and not a bool (JSON's true and false are Python ints)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _listed(values: list, most: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:most])
    return shown if len(values) <= most else f"{shown}, ... ({len(values)} in all)"


def _checked_record(
    record: object, pdx: int, n_input_samples: int, n_times: int, label: PatchLabel, source: str
) -> tuple[list[int], int, bool]:
    """One sample's inputs, target and coverage bin, checked."""
    where = f"{source}: sample {pdx}"
    if not isinstance(record, dict):
        raise ValueError(f"{where}: a {type(record).__name__}, not a dict of 'input' and 'target'")
    for field in ("input", "target"):
        if field not in record:
            raise ValueError(f"{where}: no {field!r}")
    inputs = record["input"]
    listed = isinstance(inputs, list) and len(inputs) == n_input_samples
    for step in inputs if listed else []:
        _check_step(step, n_times, f"{where}: 'input'")
    if not listed or len(set(inputs)) < n_input_samples:
        raise ValueError(
            f"{where}: 'input' holds {reprlib.repr(inputs)}, not a list of {n_input_samples} distinct time steps"
        )
    _check_step(record["target"], n_times, f"{where}: 'target'")
    coverage_bin = record.get("coverage bin", True)
    if not isinstance(coverage_bin, bool):
        raise ValueError(f"{where}: 'coverage bin' holds {reprlib.repr(coverage_bin)}, not true or false")
    mine = label.record()
    roi, patch_id = record.get("roi", mine["roi"]), record.get("patch_id", mine["patch_id"])
    if roi != mine["roi"] or patch_id != mine["patch_id"] or not _is_int(patch_id):
        raise ValueError(f"{where}: labelled {roi} patch {patch_id}, but this selection's sample {pdx} is {label}")
    return inputs, record["target"], coverage_bin


def _check_step(value: object, n_times: int, where: str) -> None:
    if not _is_int(value) or not 0 <= value < n_times:
        raise ValueError(f"{where} holds {reprlib.repr(value)}, not a time step in [0, {n_times})")


def save_json_index(path: str | os.PathLike, index: SampleIndex, labels: list[PatchLabel], settings: dict) -> Path:
    """Write an index as plain JSON: settings plus one record per sample with its patch labels."""
    samples = [
        {
            "pdx": pdx,
            **labels[pdx].record(),
            "input": index.inputs[pdx].tolist(),
            "target": int(index.target[pdx]),
            "coverage bin": bool(index.coverage_bin[pdx]),
        }
        for pdx in range(len(index))
    ]
    path = Path(path)
    path.write_text(json.dumps({"format": JSON_FORMAT, "version": 1, **settings, "samples": samples}, indent=1))
    return path


def load_json_index(path: str | os.PathLike) -> tuple[dict[int, dict], dict]:
    """Read an index written by :func:`save_json_index`: records by pdx, and the settings.

    Raises
    ------
    ValueError
        If the file is not JSON, not of this format, or a sample record lacks its
        number and labels (the records' contents are checked by :func:`index_from_records`).
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except ValueError as err:  # undecodable bytes or JSON syntax
        raise ValueError(f"{path}: not a JSON file ({err})") from None
    if not isinstance(content, dict) or content.get("format") != JSON_FORMAT:
        raise ValueError(f"{path}: not a {JSON_FORMAT} file")
    if content.get("version") != 1:
        raise ValueError(f"{path}: version {content.get('version')} of the {JSON_FORMAT} format is not supported")
    samples = content.pop("samples", None)
    if not isinstance(samples, list):
        raise ValueError(f"{path}: 'samples' is not a list")
    records = {}
    for i, sample in enumerate(samples):
        if not isinstance(sample, dict) or not {"pdx", "roi", "patch_id"} <= sample.keys():
            raise ValueError(f"{path}: samples[{i}]: not a record with 'pdx', 'roi' and 'patch_id'")
        pdx = sample["pdx"]
        if not _is_int(pdx):
            raise ValueError(f"{path}: samples[{i}]: 'pdx' holds {reprlib.repr(pdx)}, not a sample number")
        if pdx in records:
            raise ValueError(f"{path}: samples[{i}]: pdx {pdx} appears twice")
        records[pdx] = sample
    return records, content
