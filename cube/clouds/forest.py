"""s2cloudless's LightGBM forest, evaluated exactly and fast by a small compiled kernel.

s2cloudless spends nearly all its time in LightGBM's ``predict``. The forest
(170 trees of 770 leaves, numerical splits only, no missing-value handling)
was trained on LightGBM's histogram bins: each feature has at most 255
distinct thresholds. So every feature value is replaced once by its bin, the
number of that feature's thresholds below it, and ``value <= threshold``
becomes ``bin <= rank of the threshold``: the very comparison LightGBM makes
(feature as double against the double threshold), in one byte. The kernel
(``_forest.c``) walks the trees in LightGBM's order and sums the
leaves in double, then applies the same sigmoid: the probabilities are
bitwise those of s2cloudless. It has two walks that reach the same leaves: 16
pixels per AVX-512 vector where the CPU can (checked at run time; each tree's
first levels from registers, then nodes of two levels each: :func:`vector_layout`)
and eight interleaved pixels in portable C (:func:`portable_nodes`). Each walk the CPU runs is checked against LightGBM
and timed on the threshold probe at first use; the fastest runs.

The kernel is built at install time where a C compiler exists (``setup.py``,
an optional extension: :data:`INSTALLED`), else at first use with the C
compiler into a per-machine cache outside the repository (:func:`kernel_path`).
:func:`fast_probability` takes the installed one where it names this source
and machine and passes the probe, else the cached one, else s2cloudless
itself; an installed kernel it cannot use and a kernel it cannot build are
each one warning line.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import sysconfig
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import s2cloudless
from s2cloudless.cloud_detector import MODEL_BAND_IDS

from ..dataset.bands import S2_SCALE

MODEL_PATH = Path(s2cloudless.__file__).with_name("models") / "pixel_s2_cloud_detector_lightGBM_v0.1.txt"
"""The forest shipped in the s2cloudless wheel."""
LEAF = 0x80000000
WALKS = ("vector", "portable")
"""The kernel's walks: AVX-512 (16 pixels per vector, where the CPU has AVX-512 VBMI) and portable C99."""
WALK_NAMES = {"vector": "AVX-512", "portable": "portable"}
"""How ``repr`` and the benchmark name each walk."""
FASTEST = "fastest"
"""The walk choice that times every available walk on the probe at first use and keeps the fastest."""
PROBE_ROUNDS = 3
"""Timings of each walk on the probe (8192 pixels, ~20 ms each here); the best counts, so that a moment of
other load on the machine does not decide."""
TOP_LEVELS = 5
"""Levels of every tree the vector walk takes from registers, not gathers (``_forest.c``'s TOP): the 31 nodes
above level 5 fill two AVX-512 registers, which one two-source permute indexes."""
TOP_WORDS = 128
"""Words per tree of the vector walk's tops (``_forest.c``'s TOP_WORDS): 32 for the top nodes, then for each
of the 32 nodes of level 5 its index in the 4-ary layout and the two halves of its 4-ary node."""
MAX_QUAD_NODES = 1 << 16
"""Most 4-ary nodes of one tree in the vector walk's layout: a node names its four grandchildren by a 16-bit
index. A tree of n leaves has at most 4n + 28 of them (s2cloudless's, of 770 leaves: at most 1585); a forest
with a larger tree takes the portable walk."""
ALWAYS_LEFT = 0xFF00
"""A 4-ary node's split that every bin takes to the left (feature 0, rank 255: bins are at most 255), standing
in for a leaf child's split."""
PIXEL_BYTES = 16
"""Bins of one pixel in the kernel's input (features beyond the model's are zero)."""
MAX_TREE_LEAVES = 32768
"""Most leaves a tree may have: its 65535 nodes then fit the portable walk's 16-bit node indices (one
instruction to extract). LightGBM's ``num_leaves`` is 31 by default; s2cloudless's trees have 770."""
_MISSING_NONE_NUMERICAL = {0, 2}
"""LightGBM decision types this evaluator reproduces: numerical, missing type None (default_left unused)."""
CACHE_ENV = "SEN12MSCRTS_CACHE"
"""Environment variable naming the cache folder (default ``~/.cache/sen12mscrts``)."""
SOURCE = Path(__file__).with_name("_forest.c")
FLAGS = ("-O2", "-std=c99", "-fPIC", "-shared", "-ffp-contract=off")
"""No fast-math, no contraction: the kernel's double arithmetic is LightGBM's. ``setup.py`` reads these for
the install-time build (after Python's own CFLAGS, so the last ``-O`` and ``-ffp-contract`` are these)."""
INSTALLED = SOURCE.with_name(SOURCE.stem + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
"""The kernel built at install time. Its name carries this interpreter's platform tag (e.g.
``.cpython-311-x86_64-linux-gnu.so``), so a build for another platform is never looked at."""
BUILD_TIMEOUT = 120
CHECK_TIMEOUT = 60
"""Seconds for a bare interpreter to load the installed kernel and report its recipe (well under one second
unloaded; generous for a machine busy with a cloud pass)."""
RECIPE_SCRIPT = """import ctypes, resource, sys
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a library that kills the child leaves no core file
try:
    recipe = ctypes.CDLL(sys.argv[1]).forest_recipe
except (OSError, AttributeError) as error:
    sys.exit(str(error))
recipe.restype = ctypes.c_char_p
print(recipe().decode())
"""
"""What :func:`checked_installed`'s child runs: load the library named by its argument, print its recipe (or
ctypes' one-line error)."""


@dataclass(frozen=True, eq=False)
class Forest:
    """A binary LightGBM forest in the kernel's layout.

    Attributes
    ----------
    thresholds : list of ndarray
        Sorted distinct thresholds (float64) of each feature.
    nodes : ndarray of uint32
        All trees' nodes in preorder, one word each (see ``_forest.c``).
    node_offsets, leaf_offsets : ndarray of int64
        Where each tree starts in ``nodes`` and ``leaves``.
    leaves : ndarray of float64
        Leaf values, tree after tree.
    sigmoid : float
        The binary objective's sigmoid parameter.
    max_depth : int
        Largest number of splits on a root-to-leaf path.
    """

    thresholds: list[np.ndarray]
    nodes: np.ndarray
    node_offsets: np.ndarray
    leaves: np.ndarray
    leaf_offsets: np.ndarray
    sigmoid: float
    max_depth: int


def _parse(path: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The header fields and one dict of fields per tree of a LightGBM model text file."""
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    for line in path.read_text().splitlines():
        if line == "end of trees":
            break
        key, sep, value = line.partition("=")
        if key == "Tree":
            trees.append({})
        elif sep:
            (trees[-1] if trees else header)[key] = value
    return header, trees


def _check(path: Path, header: dict[str, str], trees: list[dict[str, str]]) -> float:
    """Refuse what this evaluator does not reproduce exactly; return the sigmoid parameter."""
    objective = header.get("objective", "").split()
    if objective[:1] != ["binary"] or header.get("num_tree_per_iteration") != "1" or not trees:
        raise ValueError(f"{path}: not a binary LightGBM forest (objective {header.get('objective')!r})")
    if int(header["max_feature_idx"]) >= PIXEL_BYTES:
        raise ValueError(f"{path}: more than {PIXEL_BYTES} features")
    for i, tree in enumerate(trees):
        if int(tree.get("num_leaves", "1")) > MAX_TREE_LEAVES:
            raise ValueError(f"{path}: tree {i} has {tree['num_leaves']} leaves, more than {MAX_TREE_LEAVES}")
        kinds = {int(d) for d in tree.get("decision_type", "").split()}
        if not kinds <= _MISSING_NONE_NUMERICAL or tree.get("is_linear", "0") != "0":
            raise ValueError(f"{path}: tree {i} has categorical, missing-value or linear splits")
    return float(next((o.split(":")[1] for o in objective if o.startswith("sigmoid:")), "1"))


def _preorder(tree: dict[str, str], ranks: list[dict[float, int]]) -> tuple[list[int], int]:
    """One tree's node words in preorder (left child next) and its depth."""
    if int(tree["num_leaves"]) == 1:
        return [LEAF], 0
    feature = [int(v) for v in tree["split_feature"].split()]
    threshold = [float(v) for v in tree["threshold"].split()]
    left = [int(v) for v in tree["left_child"].split()]
    right = [int(v) for v in tree["right_child"].split()]
    words: list[int] = []
    patches: list[tuple[int, int]] = []  # (word index of a split, its right child)
    stack, depth = [(0, 0)], 0
    while stack:
        child, level = stack.pop()
        depth = max(depth, level)
        if child < 0:
            words.append(LEAF | ~child)
            continue
        f = feature[child]
        patches.append((len(words), right[child]))
        words.append(f | ranks[f][threshold[child]] << 4)
        stack += [(right[child], level + 1), (left[child], level + 1)]
    return _link_right(words, patches, left, right), depth


def _link_right(words: list[int], patches: list[tuple[int, int]], left: list[int], right: list[int]) -> list[int]:
    """Store each split's right-child position (its subtree follows the whole left subtree)."""
    position = {}  # LightGBM child reference -> word index
    cursor = 0
    stack = [0]
    while stack:
        child = stack.pop()
        position[child] = cursor
        cursor += 1
        if child >= 0:
            stack += [right[child], left[child]]
    for at, child in patches:
        words[at] |= position[child] << 12
    return words


@cache
def load_forest(path: Path = MODEL_PATH) -> Forest:
    """Read a LightGBM model text file into the kernel's layout (about a second for s2cloudless's)."""
    header, trees = _parse(Path(path))
    sigmoid = _check(Path(path), header, trees)
    n_features = int(header["max_feature_idx"]) + 1
    found: list[set[float]] = [set() for _ in range(n_features)]
    for tree in trees:
        if int(tree["num_leaves"]) > 1:
            for f, t in zip(tree["split_feature"].split(), tree["threshold"].split(), strict=True):
                found[int(f)].add(float(t))
    thresholds = [np.array(sorted(s), dtype=np.float64) for s in found]
    if max(map(len, thresholds)) > 255:
        raise ValueError(f"{path}: a feature has more than 255 thresholds (LightGBM max_bin > 255)")
    ranks = [{t: r for r, t in enumerate(ts)} for ts in thresholds]
    nodes, leaves, depth = [], [], 0
    for tree in trees:
        words, d = _preorder(tree, ranks)
        nodes.append(np.array(words, dtype=np.uint32))
        leaves.append(np.array(tree["leaf_value"].split(), dtype=np.float64))
        depth = max(depth, d)
    return Forest(
        thresholds,
        np.concatenate(nodes),
        np.cumsum([0] + [len(n) for n in nodes[:-1]]),
        np.concatenate(leaves),
        np.cumsum([0] + [len(v) for v in leaves[:-1]]),
        sigmoid,
        depth,
    )


def feature_bins(forest: Forest, features: np.ndarray) -> np.ndarray:
    """Bins (n, 16) uint8 of float32 features (n, n_features): how many thresholds lie below each value.

    Values are compared as double, as LightGBM does; NaN and values of magnitude <= 1e-35 count
    as 0, as LightGBM reads dense rows for a forest without missing values.
    """
    bins = np.zeros((len(features), PIXEL_BYTES), np.uint8)
    for f, ts in enumerate(forest.thresholds):
        x = features[:, f].astype(np.float64)
        x[np.isnan(x) | (np.abs(x) <= 1e-35)] = 0.0
        bins[:, f] = np.searchsorted(ts, x, side="left")
    return bins


@cache
def _dn_tables(forest: Forest, scale: int) -> np.ndarray:
    """Bin of every digital number 0..max(scale, 65535) for each feature, (n_features, that + 1) uint8: those above
    ``scale`` get the bin of ``scale`` (clipped), so that every uint16 is looked up without clipping it first."""
    dn = np.minimum(np.arange(max(scale, 65535) + 1), scale)
    x = (dn.astype(np.float32) / np.float32(scale))[:, None]
    return feature_bins(forest, np.repeat(x, len(forest.thresholds), axis=1))[:, : len(forest.thresholds)].T.copy()


def dn_bins(forest: Forest, s2: np.ndarray, scale: float) -> np.ndarray:
    """Bins (N*H*W, 16) of S2 digital numbers (N, 13, H, W) clipped to [0, scale] / scale as float32.

    Integer input goes through a per-feature table of all digital numbers
    (built with the same float32 division); uint16 (the cube's dtype) is
    looked up as it is, other input is divided and binned.

    Examples
    --------
    >>> forest = load_forest()
    >>> s2 = np.array([0, 100, 10000, 65535], np.uint16).repeat(13).reshape(4, 13, 1, 1)  # 65535: clipped to 1
    >>> bins = dn_bins(forest, s2, 10000)
    >>> bins[:, 0].tolist(), np.array_equal(bins, dn_bins(forest, s2.astype(np.float32), 10000))
    ([0, 0, 253, 253], True)
    """
    if not np.issubdtype(s2.dtype, np.integer):
        x = np.clip(s2[:, MODEL_BAND_IDS], 0, scale).astype(np.float32) / np.float32(scale)
        return feature_bins(forest, x.transpose(0, 2, 3, 1).reshape(-1, len(MODEL_BAND_IDS)))
    tables = _dn_tables(forest, int(scale))
    bins = np.zeros((s2.shape[0], *s2.shape[2:], PIXEL_BYTES), np.uint8)
    for f, band in enumerate(MODEL_BAND_IDS):
        dn = s2[:, band]
        if dn.dtype != np.uint16:  # the cube's uint16 needs no clipping (the table covers every value): 0.73x
            dn = np.clip(dn, 0, int(scale)).astype(np.intp)
        np.take(tables[f], dn, out=bins[..., f])
    return bins.reshape(-1, PIXEL_BYTES)


def sigmoid32(margin: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """``float32(1 / (1 + exp(-alpha * margin)))`` rounded exactly as with the C library's ``exp``.

    numpy's vectorised ``exp`` may differ from libm's in the last bit; values
    whose float32 rounding a few ulps could change are recomputed with
    :func:`math.exp` (the C library's, as LightGBM's).
    """
    scaled = -alpha * margin.astype(np.float64)
    p = 1.0 / (1.0 + np.exp(scaled))
    out = p.astype(np.float32)
    unsure = (p * (1 + 1e-14)).astype(np.float32) != (p * (1 - 1e-14)).astype(np.float32)
    out[unsure] = [np.float32(1.0 / (1.0 + math.exp(s))) for s in scaled[unsure]]
    return out


def cache_dir() -> Path:
    """Where compiled artifacts live: ``$SEN12MSCRTS_CACHE`` or ``~/.cache/sen12mscrts``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "sen12mscrts")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _recipe() -> dict[str, str]:
    """What the artifact depends on: kernel source, compiler (command and version), flags, machine."""
    compiler = shlex.split(os.environ.get("CC", "cc"))
    version = subprocess.run(
        [*compiler, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()[0]
    return {
        "source_sha256": _sha256(SOURCE),
        "compiler": shlex.join(compiler),
        "compiler_version": version,
        "flags": " ".join(FLAGS),
        "machine": platform.machine(),
    }


def kernel_path(cache: Path | None = None) -> Path:
    """The compiled kernel, built once per machine and recipe; a corrupt or stale artifact is rebuilt.

    The artifact sits in ``<cache>/forest/<hash of the recipe>/`` with a
    ``meta.json`` holding the recipe and the artifact's own sha256; both are
    checked before use. Concurrent callers wait on a file lock while one builds.
    Raises OSError or subprocess.SubprocessError where it cannot be built.
    """
    recipe = _recipe()
    folder = (
        (cache or cache_dir()) / "forest" / hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    )
    folder.mkdir(parents=True, exist_ok=True)
    artifact, meta = folder / "_forest.so", folder / "meta.json"
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            known = json.loads(meta.read_text())
        except (OSError, ValueError):
            known = {}
        if artifact.exists() and known == {**recipe, "artifact_sha256": _sha256(artifact)}:
            return artifact
        partial = folder / f"_forest.{os.getpid()}.so"
        subprocess.run(
            [*shlex.split(recipe["compiler"]), *FLAGS, str(SOURCE), "-o", str(partial), "-lm"],
            check=True,
            capture_output=True,
            timeout=BUILD_TIMEOUT,
        )
        os.replace(partial, artifact)
        meta.write_text(json.dumps({**recipe, "artifact_sha256": _sha256(artifact)}, indent=1))
    return artifact


def installed_recipe() -> str:
    """What an installed kernel must report (``forest_recipe``): ``"<sha256 of _forest.c> <machine>"``."""
    return f"{_sha256(SOURCE)} {platform.machine()}"


def checked_installed(path: Path) -> Path:
    """``path`` once another process has loaded it and it reported this source and machine.

    Loading a damaged library can kill the process that loads it (a truncated
    one is a bus error), and a stale one may take other arguments: so a child
    interpreter loads it and calls only ``forest_recipe``.

    Raises
    ------
    OSError
        The child could not load it, or it has no ``forest_recipe``.
    ValueError
        It was built from another ``_forest.c`` or for another machine.
    """
    done = subprocess.run(  # -I: isolated, no PYTHON* variables nor user site (ctypes is all it needs)
        [sys.executable, "-I", "-c", RECIPE_SCRIPT, str(path)], capture_output=True, text=True, timeout=CHECK_TIMEOUT
    )
    if done.returncode < 0:
        killer = signal.strsignal(-done.returncode) or f"signal {-done.returncode}"
        raise OSError(f"{path}: loading it killed the process ({killer})")
    if done.returncode:
        raise OSError((done.stderr.strip().splitlines() or [f"{path}: cannot be loaded"])[-1])
    if done.stdout.strip() != installed_recipe():
        raise ValueError(f"{path}: stale, built from another {SOURCE.name} or for another machine")
    return path


def _thread_seconds(fn: Callable[[np.ndarray], object], data: np.ndarray) -> float:
    """CPU seconds of this thread that ``fn(data)`` took (other load on the machine counts little)."""
    start = time.thread_time()
    fn(data)
    return time.thread_time() - start


def _load(path: Path) -> tuple[Callable, bool]:
    """The kernel's entry point and whether its vector walk runs on this CPU."""
    pointer = np.ctypeslib.ndpointer
    library = ctypes.CDLL(str(path))
    fn = library.forest_probability  # ctypes releases the GIL during the call
    fn.argtypes = [
        pointer(np.uint8, flags="C"),
        ctypes.c_ssize_t,
        ctypes.c_int32,
        pointer(np.int64, flags="C"),
        pointer(np.uint32, flags="C"),
        pointer(np.float64, flags="C"),
        pointer(np.int64, flags="C"),
        pointer(np.uint64, flags="C"),
        pointer(np.float64, flags="C"),
        ctypes.c_double,
        pointer(np.uint32, flags="C"),
        ctypes.c_int32,
        pointer(np.float32, flags="C"),
    ]
    fn.restype = None
    return fn, bool(library.forest_vector())


def portable_nodes(forest: Forest) -> tuple[np.ndarray, np.ndarray]:
    """The nodes in the portable walk's layout and each node's leaf value (0 at splits).

    A split is ``(rank + 1) | feature << 8 | right child << 16``, a leaf its
    own index ``<< 16``: the walk goes left where ``bin < rank + 1``, so a
    leaf (``rank + 1 = 0``) steps to itself. Rank, feature and right child
    each take one instruction to extract (low byte, second byte, top half):
    trees have at most :data:`MAX_TREE_LEAVES` leaves, so indices fit 16 bits.
    """
    words = forest.nodes.astype(np.int64)
    leaf = (words & LEAF) != 0
    sizes = np.diff(np.append(forest.node_offsets, len(words)))
    own = np.arange(len(words)) - np.repeat(forest.node_offsets, sizes)
    split = (((words >> 4) & 255) + 1) | (words & 15) << 8 | (words >> 12) << 16
    leaf_index = np.repeat(forest.leaf_offsets, sizes) + (words & (LEAF - 1))
    values = np.where(leaf, forest.leaves[np.where(leaf, leaf_index, 0)], 0.0)
    return np.where(leaf, own << 16, split).astype(np.uint32), values


def vector_nodes(forest: Forest) -> np.ndarray | None:
    """The nodes in the layout of the vector walk's top levels, or None where the forest does not fit it.

    Leaves as in ``Forest.nodes``; a split is ``16 * feature | rank << 8 |
    right child << 16``. It needs at most 12 features and right children
    below 32768 (s2cloudless: 10 features, trees of 1539 nodes).
    """
    words = forest.nodes
    split = (words & LEAF) == 0
    right = words >> 12
    if len(forest.thresholds) > 12 or (split.any() and right[split].max() >= 1 << 15):
        return None
    vector = ((words & 15) << 4) | (((words >> 4) & 255) << 8) | (right << 16)
    return np.where(split, vector, words).astype(np.uint32)


def vector_tops(forest: Forest, words: np.ndarray) -> np.ndarray:
    """Each tree's first levels for the vector walk's gather-free start, (n_trees, 64) uint32.

    Per tree: the 31 nodes of levels 0-4 breadth first as a complete tree
    (``words``' layout; 0 where a leaf above stands in), one unused word, then
    the preorder index of each of the 32 nodes at level 5 (a leaf above level
    5 for all its missing descendants).
    """
    tops = np.zeros((len(forest.node_offsets), 64), np.uint32)
    for t, start in enumerate(forest.node_offsets):
        nodes = words[start:]
        slots = [0]
        for i in range(2**TOP_LEVELS - 1):
            x = slots[i]
            leaf = bool(nodes[x] & LEAF)
            slots += [x, x] if leaf else [x + 1, int(nodes[x]) >> 16]
            tops[t, i] = 0 if leaf else nodes[x]
        tops[t, 32:] = slots[2**TOP_LEVELS - 1 :]
    return tops


class VectorLayout(NamedTuple):
    """The vector walk's trees: 4-ary nodes (uint64) and their values, where each tree starts, its tops."""

    offsets: np.ndarray
    nodes: np.ndarray
    values: np.ndarray
    tops: np.ndarray


def _quad_leaf(at: int) -> int:
    """The 4-ary node of a leaf at index ``at``: every split goes left, to ``at`` itself."""
    return ALWAYS_LEFT | ALWAYS_LEFT << 16 | (ALWAYS_LEFT | at << 16) << 32


def _quad_split(word: int) -> int:
    """A split of ``Forest.nodes`` as the vector walk compares it: ``16 * feature | rank << 8``."""
    return 16 * (word & 15) | (word >> 4 & 255) << 8


def _quad_tree(nodes: list[int], leaves: np.ndarray, roots: list[int]) -> tuple[list[int], list[float], list[int]]:
    """One tree (``Forest.nodes`` words, preorder) as 4-ary nodes from the given roots: the nodes, their values
    (leaves') and each root's index.

    A node holds a split and its children's splits; its four grandchildren
    follow one another (a leaf child: an always-left split to a leaf, the
    slot after it unused).
    """
    words: list[int] = []
    values: list[float] = []
    splits: list[tuple[int, int]] = []  # (4-ary index, preorder index) of splits to fill in

    def add(node: int | None) -> int:
        """Append the 4-ary node of ``node`` (a split is filled in later; None: an unused slot)."""
        at = len(words)
        if node is not None and nodes[node] & LEAF:
            words.append(_quad_leaf(at))
            values.append(float(leaves[nodes[node] & (LEAF - 1)]))
        else:
            words.append(0)
            values.append(0.0)
            if node is not None:
                splits.append((at, node))
        return at

    index = {root: add(root) for root in dict.fromkeys(roots)}
    while splits:
        at, node = splits.pop()
        halves: list[int] = []
        below: list[int | None] = []
        for child in (node + 1, nodes[node] >> 12):
            leaf = nodes[child] & LEAF
            halves.append(ALWAYS_LEFT if leaf else _quad_split(nodes[child]))
            below += [child, None] if leaf else [child + 1, nodes[child] >> 12]
        base = len(words)
        for grandchild in below:
            add(grandchild)
        words[at] = _quad_split(nodes[node]) | halves[0] << 16 | (halves[1] | base << 16) << 32
    return words, values, [index[root] for root in roots]


def vector_layout(forest: Forest, words: np.ndarray) -> VectorLayout | None:
    """The vector walk's trees, or None where a tree has more than :data:`MAX_QUAD_NODES` 4-ary nodes.

    Each tree's tops (``TOP_WORDS`` words) are its first five levels from
    :func:`vector_tops` (``words``: :func:`vector_nodes`), then the 4-ary
    index, low and high half of each node of level 5. Below level 5 a 4-ary
    node (64 bits) decides two levels: low half the split (bits 0-15) and
    its left child's (16-31), high half the right child's split (0-15) and
    the index of the grandchildren (16-31).
    """
    tops = vector_tops(forest, words)
    out = np.zeros((len(tops), TOP_WORDS), np.uint32)
    ends = np.append(forest.node_offsets[1:], len(forest.nodes))
    leaf_ends = np.append(forest.leaf_offsets[1:], len(forest.leaves))
    trees, values, sizes = [], [], []
    for t, (start, end) in enumerate(zip(forest.node_offsets, ends, strict=True)):
        leaves = forest.leaves[forest.leaf_offsets[t] : leaf_ends[t]]
        quads, vals, index = _quad_tree(forest.nodes[start:end].tolist(), leaves, tops[t, 32:].tolist())
        if len(quads) > MAX_QUAD_NODES:
            return None
        level = np.array(quads, np.uint64)[index]
        out[t, :32], out[t, 32:64] = tops[t, :32], index
        out[t, 64:96], out[t, 96:] = level & 0xFFFFFFFF, level >> 32
        trees.append(np.array(quads, np.uint64))
        values.append(np.array(vals))
        sizes.append(len(quads))
    offsets = np.cumsum([0, *sizes[:-1]]).astype(np.int64)
    return VectorLayout(offsets, np.concatenate(trees), np.concatenate(values), out)


def threshold_probe(forest: Forest, n: int = 8192, seed: int = 0) -> np.ndarray:
    """Float32 features (n, n_features) on and next to the thresholds, plus 0, 1 and random values.

    Each value is, at random, the largest float32 <= a threshold (decides
    ``<=``), the next float32 up (decides ``>``), or a uniform draw in [0, 1].
    """
    rng = np.random.default_rng(seed)
    columns = []
    for ts in forest.thresholds:
        at = ts.astype(np.float32)
        at = np.where(at.astype(np.float64) > ts, np.nextafter(at, np.float32(-np.inf)), at)
        pool = np.concatenate([at, np.nextafter(at, np.float32(np.inf)), np.array([0, 1], np.float32)])
        pick = rng.choice(pool, n)
        columns.append(np.where(rng.random(n) < 0.2, rng.random(n, dtype=np.float32), pick))
    return np.stack(columns, axis=1).astype(np.float32)


class ForestPredictor:
    """s2cloudless probabilities (exactly) from the compiled kernel; pickles by reference to its cache.

    Parameters
    ----------
    cache : path, optional
        Cache folder (default :func:`cache_dir`).
    model : path
        The LightGBM model (default: s2cloudless's).
    walk : str
        ``"fastest"``: of the walks that run here (:data:`WALKS`), the one
        that took the least CPU time on the threshold probe; ``"vector"``: the
        AVX-512 walk where the CPU has it and the forest fits
        (:func:`vector_nodes`, :func:`vector_layout`), else the portable one; ``"portable"``. All give
        the same leaves. ``self.walk`` names the walk that runs,
        ``self.walks`` those available, ``self.walk_seconds`` each one's
        best time on the probe (where ``"fastest"`` timed them).
    kernel : path, optional
        A kernel built at install time (:data:`INSTALLED`) to load instead of
        building one in ``cache``; it must report this source and machine.
        ``self.kernel`` is the library loaded, ``self.installed`` whether it is
        an installed one; ``repr`` says both and the walk.

    Raises
    ------
    OSError, subprocess.SubprocessError, ValueError
        Where the kernel cannot be built or loaded, is stale, or a walk differs
        from LightGBM on the threshold probe; ValueError for an unknown walk.
    """

    def __init__(
        self, cache: Path | None = None, model: Path = MODEL_PATH, walk: str = FASTEST, kernel: Path | None = None
    ) -> None:
        import lightgbm

        if walk not in (FASTEST, *WALKS):
            raise ValueError(f"unknown forest walk {walk!r}: expected one of {', '.join((FASTEST, *WALKS))}")
        self.cache, self.model, self.requested = cache, Path(model), walk
        self.forest = load_forest(self.model)
        self.installed = kernel is not None
        self.kernel = checked_installed(Path(kernel)) if kernel is not None else kernel_path(cache)
        self._fn, cpu_vector = _load(self.kernel)
        words = vector_nodes(self.forest) if cpu_vector else None
        layout = vector_layout(self.forest, words) if words is not None else None
        self.walks = WALKS if layout is not None else ("portable",)
        self._portable_nodes, self._node_values = portable_nodes(self.forest)
        empty = VectorLayout(*(np.zeros(0, dtype) for dtype in (np.int64, np.uint64, np.float64, np.uint32)))
        self._vector = layout or empty
        probe = threshold_probe(self.forest)
        bins = feature_bins(self.forest, probe)
        expected = np.asarray(lightgbm.Booster(model_file=str(self.model)).predict(probe, num_threads=1), np.float32)
        self.walk_seconds: dict[str, float] = {}
        for name in self.walks:
            run = partial(self.bins_probability, walk=name)
            if not np.array_equal(run(bins), expected):
                raise ValueError(f"{self.kernel}: the compiled forest's {name} walk differs from LightGBM on the probe")
            if walk == FASTEST:
                self.walk_seconds[name] = min(_thread_seconds(run, bins) for _ in range(PROBE_ROUNDS))
        if walk == FASTEST:
            self.walk = min(self.walk_seconds, key=self.walk_seconds.__getitem__)
        else:
            self.walk = walk if walk in self.walks else "portable"

    def __reduce__(self) -> tuple:
        return predictor, (self.cache, self.model, self.requested, self.kernel if self.installed else None)

    def __repr__(self) -> str:
        built = "installed" if self.installed else "built at first use"
        how = "fastest on this CPU" if self.requested == FASTEST else "asked for"
        return f"ForestPredictor({str(self.kernel)!r}, {built}, {WALK_NAMES[self.walk]} walk, {how})"

    def bins_probability(self, bins: np.ndarray, walk: str | None = None) -> np.ndarray:
        """Probabilities (float32) of binned pixels (n, 16) by ``walk`` (default ``self.walk``; one not in
        ``self.walks`` runs the portable walk), walked in :func:`alike_order`."""
        f, vector = self.forest, (walk or self.walk) == "vector" and "vector" in self.walks
        order = alike_order(bins)
        walked = np.empty(len(bins), np.float32)
        self._fn(
            np.take(bins, order, axis=0),  # rows gathered 4x faster than by bins[order]
            len(bins),
            len(f.node_offsets),
            f.node_offsets,
            self._portable_nodes,
            self._node_values,
            self._vector.offsets,
            self._vector.nodes,
            self._vector.values,
            f.sigmoid,
            self._vector.tops,
            int(vector),
            walked,
        )
        out = np.empty_like(walked)
        out[order] = walked
        return out

    def __call__(self, s2: np.ndarray) -> np.ndarray:
        """Like :func:`cube.clouds.detectors.s2cloudless_probability`: (13, H, W) or (N, 13, H, W) digital numbers."""
        stack = s2[None] if s2.ndim == 3 else s2
        if stack.ndim != 4 or stack.shape[1] != 13:
            raise ValueError(f"expected S2 of shape (13, H, W) or (N, 13, H, W), got {s2.shape}")
        prob = self.bins_probability(dn_bins(self.forest, stack, S2_SCALE)).reshape(stack.shape[0], *stack.shape[2:])
        return prob[0] if s2.ndim == 3 else prob


def alike_order(bins: np.ndarray, keys: int = 4) -> np.ndarray:
    """The order of pixels (rows of ``bins``) by their first ``keys`` features' bins, feature 0 first: alike pixels
    end up side by side, so the pixels a walk steps through together take alike paths (they reach their leaves at
    about the same step, and fetch the same nodes). Each pixel's sum is its own, so the order changes no
    probability. On synthetic images the portable walk took 0.88x and the AVX-512 walk 0.84x the time in the order
    of all ten features (A/B in one process, best of 7, 262,144 pixels), on the threshold probe 0.96x and 0.91x.
    The first four order the walks as well (1,048,576 pixels, best of 9: walks within 1% of all ten's) at a third
    of the sort's cost (20 instead of 53 ms).

    Examples
    --------
    >>> alike_order(np.array([[2, 0], [1, 5], [1, 3]], np.uint8), 2).tolist()
    [2, 1, 0]
    """
    return np.lexsort(bins[:, keys - 1 :: -1].T)


@cache
def predictor(
    cache: Path | None = None, model: Path = MODEL_PATH, walk: str = FASTEST, kernel: Path | None = None
) -> ForestPredictor:
    """The process's :class:`ForestPredictor` for a cache, model, walk and kernel (loaded and verified once)."""
    return ForestPredictor(cache, model, walk, kernel)


def _warn_unavailable(what: str, error: Exception, instead: str) -> None:
    """One warning line: what cannot be had, the first line of why, and what is used instead."""
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    warnings.warn(f"{what} unavailable ({reason}); {instead}", RuntimeWarning, stacklevel=3)


def fast_probability() -> Callable[[np.ndarray], np.ndarray]:
    """The compiled predictor, or s2cloudless with a one-line warning where it cannot be had.

    In order: the kernel built at install time (:data:`INSTALLED`) where the file exists, reports this
    source and machine and passes the probe (else a one-line warning); the kernel built at first use in
    :func:`cache_dir`; s2cloudless itself. ``repr`` of the predictor says which kernel it runs.
    """
    from .detectors import s2cloudless_probability

    errors = (OSError, ValueError, subprocess.SubprocessError)
    if INSTALLED.exists():
        try:
            return predictor(None, MODEL_PATH, FASTEST, INSTALLED)
        except errors as error:
            _warn_unavailable("installed s2cloudless forest kernel", error, "building it at first use instead")
    try:
        return predictor(cache_dir(), MODEL_PATH)
    except errors as error:
        _warn_unavailable("compiled s2cloudless forest", error, "using s2cloudless itself (same masks, 4-12x slower)")
        return s2cloudless_probability
