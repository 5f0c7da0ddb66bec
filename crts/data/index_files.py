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
import reprlib
from pathlib import Path

import numpy as np

from cube.rois import PatchLabel

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
    """Check that a loaded value is plain data (NumPy scalars and 1-d int arrays allowed); return Python objects."""
    if isinstance(value, dict):
        return {k if isinstance(k, tuple) else _plain(k, where): _plain(v, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    if isinstance(value, np.integer | np.floating | np.bool_):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.ndim <= 1:
        return value.tolist()
    if isinstance(value, bool | int | str | float) or value is None:
        return value
    raise UnsafeIndexFileError(f"{where}: holds a {type(value).__name__}, not plain data")


def _first_line(err: Exception) -> str:
    return str(err).split("\n", 1)[0]


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
        except Exception as err:  # a damaged header fails in NumPy's parser as ValueError, TokenError, ...
            raise ValueError(f"{path}: not a NumPy .npy file ({type(err).__name__}: {_first_line(err)})") from None
        if dtype != np.dtype(object) or shape != ():
            raise ValueError(f"{path}: expected one pickled dict (a 0-d object array), found {dtype} {shape}")
        try:
            array = _PlainDataUnpickler(io.BytesIO(f.read())).load()
        except UnsafeIndexFileError as err:
            raise UnsafeIndexFileError(f"{path}: refused: {err}") from None
        except Exception as err:  # damaged bytes fail in many ways (TypeError, MemoryError, ...): all mean corrupt
            raise ValueError(f"{path}: unreadable pickle payload ({type(err).__name__}: {_first_line(err)})") from None
    content = array[()] if isinstance(array, np.ndarray) and array.shape == () else array
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


def index_from_records(records: dict, n_input_samples: int, n_times: int, labels: list[PatchLabel],
                       source: str) -> SampleIndex:
    """A :class:`SampleIndex` from ``{pdx: {'input': [...], 'target': t}}``, every field checked.

    Parameters
    ----------
    records : dict
        Sample records by pdx, as read from an index file.
    n_input_samples : int
        The number of input steps each record must list.
    n_times : int
        The cube's number of time steps: steps must lie in [0, n_times).
    labels : list of cube.rois.PatchLabel
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
    steps = [_checked_record(records[pdx], pdx, n_input_samples, n_times, labels[pdx], source)
             for pdx in range(len(labels))]
    return SampleIndex(inputs=np.array([s[0] for s in steps], dtype=np.int64),
                       target=np.array([s[1] for s in steps], dtype=np.int64),
                       coverage_bin=np.array([s[2] for s in steps], dtype=bool))


def _check_sample_numbers(records: dict, n_samples: int, source: str) -> None:
    """Samples must be numbered 0 .. n_samples - 1, as this selection's."""
    extra = [k for k in records if not _is_int(k) or not 0 <= k < n_samples]
    missing = [pdx for pdx in range(n_samples) if pdx not in records]
    if extra or missing:
        faults = ([f"lacks pdx {_listed(missing)}"] if missing else []) + (
            [f"has pdx {_listed(extra)} in excess"] if extra else [])
        raise ValueError(f"{source}: this selection's samples are pdx 0..{n_samples - 1}; the file "
                         f"{' and '.join(faults)}; use the split, region and cube it was made for")


def _is_int(value: object) -> bool:
    """An integer, and not a bool (JSON's true and false are Python ints)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _listed(values: list, most: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:most])
    return shown if len(values) <= most else f"{shown}, ... ({len(values)} in all)"


def _checked_record(record: object, pdx: int, n_input_samples: int, n_times: int, label: dict,
                    source: str) -> tuple[list[int], int, bool]:
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
        raise ValueError(f"{where}: 'input' holds {reprlib.repr(inputs)}, not a list of {n_input_samples} "
                         "distinct time steps")
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


def save_json_index(path: str | os.PathLike, index: SampleIndex, labels: list[PatchLabel],
                    settings: dict) -> Path:
    """Write an index as plain JSON: settings plus one record per sample with its patch labels."""
    samples = [{"pdx": pdx, **labels[pdx].record(), "input": index.inputs[pdx].tolist(),
                "target": int(index.target[pdx]), "coverage bin": bool(index.coverage_bin[pdx])}
               for pdx in range(len(index))]
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
