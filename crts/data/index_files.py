"""Sample index files: the original toolbox's ``.npy`` format (read safely) and a plain JSON format of our own.

The original writes ``np.save(path, {pdx: {'input': [t, ...], 'target': t, 'paths': {...}}})``: a
0-d object array whose payload is a pickle. Unpickling can run arbitrary code,
so :func:`load_npy_index` accepts only the globals that such a file needs
(NumPy's array and scalar reconstruction and dtypes) and refuses anything else.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np

from .sampling import SampleIndex

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}
JSON_FORMAT = "sen12mscrts-sample-index"


class UnsafeIndexFileError(ValueError):
    """An index file that needs more than plain data to load: refused without running it."""


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafeIndexFileError(f"refers to {module}.{name}; only plain dicts, lists, ints, strings and "
                                       "NumPy scalars are allowed in an index file")
        return super().find_class(module, name)


def _plain(value: object, where: str) -> object:
    """Check that a loaded value is plain data (and NumPy scalars as ints); return it as Python objects."""
    if isinstance(value, dict):
        return {_plain(k, where): _plain(v, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.ndim <= 1:
        return value.tolist()
    if isinstance(value, bool | int | str | float) or value is None:
        return value
    raise UnsafeIndexFileError(f"{where}: holds a {type(value).__name__}, not plain data")


def load_npy_index(path: str | os.PathLike) -> dict[int, dict]:
    """Read an original index file without executing code from it.

    Raises
    ------
    UnsafeIndexFileError
        If the file refers to anything but plain data, naming what it refers to.
    ValueError
        If it is not a NumPy file holding one dict.
    """
    path = Path(path)
    with path.open("rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
        except ValueError as err:
            raise ValueError(f"{path}: not a NumPy .npy file ({err})") from None
        if dtype != np.dtype(object) or shape != ():
            raise ValueError(f"{path}: expected one pickled dict (a 0-d object array), found {dtype} {shape}")
        try:
            array = _PlainDataUnpickler(io.BytesIO(f.read())).load()
        except UnsafeIndexFileError as err:
            raise UnsafeIndexFileError(f"{path}: refused: {err}") from None
        except (pickle.UnpicklingError, EOFError) as err:
            raise ValueError(f"{path}: unreadable pickle payload ({err})") from None
    content = array.item() if isinstance(array, np.ndarray) else array
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a dict of samples, found {type(content).__name__}")
    return _plain(content, str(path))


def index_file_name(n_input_samples: int, split: str, cloud_masks: str | None) -> str:
    """The original's file name for an index of (n_input_samples, split, cloud_masks)."""
    return f"{n_input_samples}_{split}_{cloud_masks}.npy"


def save_npy_index(path: str | os.PathLike, index: SampleIndex, paths: list[dict]) -> Path:
    """Write an index in the original's ``.npy`` format (readable by the original toolbox)."""
    content = {pdx: {"input": [int(t) for t in index.inputs[pdx]], "target": np.int64(index.target[pdx]),
                     "paths": paths[pdx]} for pdx in range(len(index))}
    path = Path(path)
    np.save(path, content, allow_pickle=True)
    return path


def index_from_records(records: dict[int, dict], n_input_samples: int, n_samples: int, source: str) -> SampleIndex:
    """A :class:`SampleIndex` from ``{pdx: {'input': [...], 'target': t}}``, checked against the selection."""
    if sorted(records) != list(range(n_samples)):
        raise ValueError(f"{source}: indexes {len(records)} samples, but this selection has {n_samples}; "
                         "use the split, region and cube it was made for")
    inputs = np.array([records[p]["input"] for p in range(n_samples)], dtype=np.int64)
    if inputs.ndim != 2 or inputs.shape[1] != n_input_samples:
        raise ValueError(f"{source}: inputs are not lists of {n_input_samples} time steps")
    target = np.array([records[p]["target"] for p in range(n_samples)], dtype=np.int64)
    bins = np.array([records[p].get("coverage bin", True) for p in range(n_samples)], dtype=bool)
    return SampleIndex(inputs=inputs, target=target, coverage_bin=bins)


def save_json_index(path: str | os.PathLike, index: SampleIndex, labels: list[dict], settings: dict) -> Path:
    """Write an index as plain JSON: settings plus one record per sample with its patch labels."""
    samples = [{"pdx": pdx, **labels[pdx], "input": index.inputs[pdx].tolist(), "target": int(index.target[pdx]),
                "coverage bin": bool(index.coverage_bin[pdx])} for pdx in range(len(index))]
    path = Path(path)
    path.write_text(json.dumps({"format": JSON_FORMAT, "version": 1, **settings, "samples": samples}, indent=1))
    return path


def load_json_index(path: str | os.PathLike) -> tuple[dict[int, dict], dict]:
    """Read an index written by :func:`save_json_index`: records by pdx, and the settings."""
    content = json.loads(Path(path).read_text())
    if content.get("format") != JSON_FORMAT:
        raise ValueError(f"{path}: not a {JSON_FORMAT} file")
    records = {s["pdx"]: s for s in content.pop("samples")}
    return records, content
