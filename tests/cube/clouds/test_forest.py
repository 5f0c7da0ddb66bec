"""The compiled forest gives exactly s2cloudless's probabilities, masks and maps, or falls back to s2cloudless."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import pickle
import shutil
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import lightgbm
import numpy as np
import pytest
import rasterio

from cube import convert, open_cube
from cube.clouds.detectors import s2cloudless_map, s2cloudless_mask, s2cloudless_probability
from cube.clouds.forest import (
    CACHE_ENV,
    FLAGS,
    INSTALLED,
    MODEL_PATH,
    SOURCE,
    ForestPredictor,
    alike_order,
    cache_dir,
    dn_bins,
    fast_probability,
    feature_bins,
    installed_recipe,
    kernel_path,
    load_forest,
    portable_nodes,
    predictor,
    sigmoid32,
    threshold_probe,
    vector_layout,
    vector_nodes,
    vector_tops,
)
from cube.dataset.bands import S2_SCALE

ROOT = Path(__file__).resolve().parents[3]


def _cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))


VECTOR_CPU = {"avx512f", "avx512bw", "avx512vbmi"}
"""What the vector walk needs of the CPU."""


@pytest.fixture(scope="module")
def fast() -> ForestPredictor:
    """The predictor from the default cache (built at most once per machine), the fastest walk."""
    return fast_probability()


@pytest.fixture(scope="module", params=["vector", "portable"])
def each_walk(request: pytest.FixtureRequest) -> ForestPredictor:
    """The predictor running one walk; a walk this CPU cannot run is skipped with the reason."""
    if request.param == "vector" and not _cpu_flags() >= VECTOR_CPU:
        pytest.skip(f"the vector walk needs {', '.join(sorted(VECTOR_CPU))}, which this CPU lacks")
    walk = predictor(cache_dir(), MODEL_PATH, request.param)
    assert walk.walk == request.param
    return walk


def test_synthetic_images_give_s2cloudless_bit_for_bit(each_walk: ForestPredictor, synthetic_root: Path) -> None:
    fast = each_walk
    paths = sorted(synthetic_root.rglob("S2/*/*.tif"))
    picks = np.random.default_rng(3).choice(len(paths), 6, replace=False)
    s2 = np.stack([rasterio.open(paths[i]).read() for i in picks])
    expected = s2cloudless_probability(s2)
    got = fast(s2)
    assert got.dtype == np.float32 and np.abs(got - expected).max() == 0
    np.testing.assert_array_equal(s2cloudless_mask(probability=got), s2cloudless_mask(probability=expected))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(s2cloudless_map(g), s2cloudless_map(e))


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32, np.float64])
def test_random_reflectances_give_s2cloudless_bit_for_bit(each_walk: ForestPredictor, dtype: type) -> None:
    fast = each_walk
    rng = np.random.default_rng(4)
    s2 = rng.integers(-50, 12_000, (2, 13, 48, 48)).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        s2 = s2 + rng.random(s2.shape).astype(dtype)  # off the digital-number grid
    np.testing.assert_array_equal(fast(s2), s2cloudless_probability(s2))
    np.testing.assert_array_equal(fast(s2[0]), s2cloudless_probability(s2[0]))


def test_pixels_on_and_next_to_every_threshold_decide_as_lightgbm(each_walk: ForestPredictor) -> None:
    walk = each_walk
    forest = load_forest()
    probe = threshold_probe(forest, n=50_000, seed=5)
    for f, ts in enumerate(forest.thresholds):
        down = ts.astype(np.float32)
        down = np.where(down.astype(np.float64) > ts, np.nextafter(down, np.float32(-np.inf)), down)
        up = np.nextafter(down, np.float32(np.inf))
        assert (down.astype(np.float64) <= ts).all() and (up.astype(np.float64) > ts).all()
        assert np.isin(down, probe[:, f]).mean() > 0.9 and np.isin(up, probe[:, f]).mean() > 0.9
    expected = lightgbm.Booster(model_file=str(MODEL_PATH)).predict(probe, num_threads=1).astype(np.float32)
    np.testing.assert_array_equal(walk.bins_probability(feature_bins(forest, probe)), expected)


def test_every_digital_number_bins_as_its_clipped_reflectance() -> None:
    forest = load_forest()
    every = np.broadcast_to(np.arange(65536, dtype=np.uint16).reshape(1, 1, 256, 256), (1, 13, 256, 256))
    np.testing.assert_array_equal(
        dn_bins(forest, np.ascontiguousarray(every), S2_SCALE), dn_bins(forest, every.astype(np.float32), S2_SCALE)
    )
    wide = every.astype(np.int32) - 1000  # other integer types, negative values too: clipped before the table
    np.testing.assert_array_equal(dn_bins(forest, wide, S2_SCALE), dn_bins(forest, wide.astype(np.float32), S2_SCALE))


def test_pixels_are_walked_alike_first_and_answered_in_their_own_order(each_walk: ForestPredictor) -> None:
    forest = load_forest()
    bins = feature_bins(forest, threshold_probe(forest, n=4096, seed=9))
    order = alike_order(bins)
    walked = bins[order]
    assert (np.diff(walked[:, 0].astype(int)) >= 0).all()  # feature 0's bins ascend: alike pixels side by side
    assert not np.array_equal(order, np.arange(len(bins)))  # the probe is not in that order already
    shuffle = np.random.default_rng(9).permutation(len(bins))
    np.testing.assert_array_equal(each_walk.bins_probability(bins[shuffle]), each_walk.bins_probability(bins)[shuffle])


def test_the_fastest_walk_is_timed_among_those_this_cpu_runs(fast: ForestPredictor) -> None:
    assert fast.walks == (("vector", "portable") if _cpu_flags() >= VECTOR_CPU else ("portable",))
    assert set(fast.walk_seconds) == set(fast.walks) and all(s > 0 for s in fast.walk_seconds.values())
    assert fast.walk == min(fast.walk_seconds, key=fast.walk_seconds.__getitem__)
    assert repr(fast).endswith(f"{'AVX-512' if fast.walk == 'vector' else 'portable'} walk, fastest on this CPU)")
    asked = predictor(cache_dir(), MODEL_PATH, "portable")
    assert asked.walk == "portable" and asked.walk_seconds == {} and repr(asked).endswith("portable walk, asked for)")
    with pytest.raises(ValueError, match="unknown forest walk 'avx2': expected one of fastest, vector, portable"):
        ForestPredictor(cache_dir(), MODEL_PATH, "avx2")


def test_both_walks_agree_on_every_pixel_count_and_image(each_walk: ForestPredictor) -> None:
    fast, portable = each_walk, predictor(cache_dir(), MODEL_PATH, "portable")
    bins = feature_bins(fast.forest, threshold_probe(fast.forest, n=4099, seed=8))
    for n in (0, 1, 15, 16, 17, 100, 2047, 2049, 4099):  # fewer chunks of 16 than groups, ragged blocks
        np.testing.assert_array_equal(fast.bins_probability(bins[:n]), portable.bins_probability(bins[:n]))
    s2 = np.random.default_rng(9).integers(0, 11_000, (3, 13, 40, 40)).astype(np.uint16)
    np.testing.assert_array_equal(fast(s2), portable(s2))


def test_forests_beyond_the_vector_layout_take_the_portable_walk() -> None:
    forest = load_forest()
    words = vector_nodes(forest)
    split = (forest.nodes & 0x80000000) == 0
    assert words is not None and np.array_equal(words[~split], forest.nodes[~split])
    assert np.array_equal(words[split] >> 4 & 15, forest.nodes[split] & 15)
    assert np.array_equal(words[split] >> 16, forest.nodes[split] >> 12)
    assert vector_nodes(dataclasses.replace(forest, thresholds=forest.thresholds + [np.zeros(0)] * 3)) is None


def test_the_portable_walks_leaves_step_to_themselves_and_carry_their_values() -> None:
    forest = load_forest()
    words, values = portable_nodes(forest)
    leaf = (forest.nodes & 0x80000000) != 0
    own = np.concatenate([np.arange(n) for n in np.diff(np.append(forest.node_offsets, len(words)))])
    assert np.array_equal(words[leaf] >> 16, own[leaf]) and not (words[leaf] & 0xFFFF).any()
    assert np.array_equal(words[~leaf] & 255, (forest.nodes[~leaf] >> 4 & 255) + 1)
    assert np.array_equal(words[~leaf] >> 8 & 255, forest.nodes[~leaf] & 15)
    assert np.array_equal(words[~leaf] >> 16, forest.nodes[~leaf] >> 12) and not values[~leaf].any()
    assert np.array_equal(np.sort(values[leaf]), np.sort(forest.leaves))


def test_the_vector_walks_top_levels_are_each_trees_first_five_levels() -> None:
    forest = load_forest()
    words = vector_nodes(forest)
    assert words is not None
    tops = vector_tops(forest, words)
    shallow = 0
    for t, start in enumerate(forest.node_offsets):
        nodes, top = words[start:], tops[t]
        for leaf_slot in range(32):  # down to level 5 by the slot's path bits; node i's children: 2i+1, 2i+2
            x, i = 0, 0
            for level in range(5):
                right = leaf_slot >> (4 - level) & 1
                if not nodes[x] & 0x80000000:
                    assert top[i] == nodes[x]
                    x = int(nodes[x]) >> 16 if right else x + 1
                else:
                    shallow += 1
                    assert top[i] == 0
                i = 2 * i + 1 + right
            assert top[32 + i - 31] == x
    assert shallow > 0  # trees with leaves above level 5 (s2cloudless: 153 of 170) are covered


def _model_text(trees: list[dict[str, list]], n_features: int = 10) -> str:
    """A LightGBM model file (binary objective, numerical splits) with the given trees' fields."""
    lines = ["tree", "version=v2", "num_class=1", "num_tree_per_iteration=1", "label_index=0"]
    lines += [f"max_feature_idx={n_features - 1}", "objective=binary sigmoid:1"]
    lines += ["feature_names=" + " ".join(f"Column_{i}" for i in range(n_features))]
    lines += ["feature_infos=" + " ".join(["[0:1]"] * n_features), ""]
    for i, tree in enumerate(trees):
        lines += [f"Tree={i}", f"num_leaves={len(tree['leaf_value'])}", "num_cat=0"]
        lines += [f"{key}={' '.join(map(repr, values))}" for key, values in tree.items()]
        lines += [f"decision_type={' '.join(['2'] * (len(tree['leaf_value']) - 1))}", "shrinkage=1", "", ""]
    return "\n".join([*lines, "end of trees", ""])


def _chain(depth: int) -> dict[str, list]:
    """A tree of ``depth`` splits, each with one leaf child, going on right and left in turn.

    Split i is on feature i % 10: a pixel with value v in even features and
    1 - v in odd ones goes on while (i + 1) / (depth + 2) < v (see :func:`_chain_pixels`).
    """
    onward = [i + 1 if i < depth - 1 else -(depth + 1) for i in range(depth)]
    level = [(i + 1) / (depth + 2) for i in range(depth)]
    return {
        "split_feature": [i % 10 for i in range(depth)],
        "threshold": [1 - s if i % 2 else s for i, s in enumerate(level)],
        "left_child": [onward[i] if i % 2 else -(i + 1) for i in range(depth)],
        "right_child": [-(i + 1) if i % 2 else onward[i] for i in range(depth)],
        "leaf_value": [0.01 * (i + 1) * (-1) ** i for i in range(depth + 1)],
    }


def _chain_pixels(depth: int) -> np.ndarray:
    """One pixel (float64 features) for each leaf of :func:`_chain`'s tree, the deepest last."""
    v = (np.arange(depth + 1) + 0.5) / (depth + 2)
    return np.where(np.arange(10) % 2, 1 - v[:, None], v[:, None])


EDGE_TREES = [
    {"leaf_value": [0.25]},  # a single leaf
    {  # a leaf at depth 1, the other child a split
        "split_feature": [3, 5],
        "threshold": [0.5, 0.25],
        "left_child": [-1, -2],
        "right_child": [1, -3],
        "leaf_value": [0.1, -0.2, 0.3],
    },
    _chain(80),  # deeper than s2cloudless's deepest path (74 splits), odd and even levels below the top
]
"""Trees at the edges of the vector walk's 4-ary layout."""


@pytest.mark.parametrize("walk", ["vector", "portable"])
def test_edge_trees_give_lightgbms_probabilities(walk: str, tmp_path: Path) -> None:
    if walk == "vector" and not _cpu_flags() >= VECTOR_CPU:
        pytest.skip(f"the vector walk needs {', '.join(sorted(VECTOR_CPU))}, which this CPU lacks")
    model = tmp_path / "edges.txt"
    model.write_text(_model_text(EDGE_TREES))
    chosen = ForestPredictor(cache_dir(), model, walk)  # checked against LightGBM on its probe
    assert chosen.walk == walk
    forest = chosen.forest
    layout = vector_layout(forest, vector_nodes(forest))
    assert layout is not None and layout.offsets.tolist() == [0, 1, 4]  # tree 1: its 3 leaves, from the tops
    assert (layout.tops[0, 32:64] == 0).all() and layout.values[0] == 0.25  # the single leaf is all the tree
    assert sorted(layout.values[1:4]) == [-0.2, 0.1, 0.3] and (layout.nodes[:4] & 0xFFFF == 0xFF00).all()
    chain = layout.nodes[4:]
    split = chain & 0xFFFF != 0xFF00
    for half in (chain >> 16 & 0xFFFF, chain >> 32 & 0xFFFF):  # a leaf child's split always goes left
        assert (split & (half == 0xFF00)).any()
    probe = threshold_probe(forest, n=20_000, seed=11)
    expected = lightgbm.Booster(model_file=str(model)).predict(probe, num_threads=1).astype(np.float32)
    got = chosen.bins_probability(feature_bins(forest, probe))
    np.testing.assert_array_equal(got, expected)
    chain, booster = _chain_pixels(80).astype(np.float32), lightgbm.Booster(model_file=str(model))
    assert booster.predict(chain, pred_leaf=True)[:, 2].tolist() == list(range(81))  # every leaf, the deepest last
    expected = booster.predict(chain, num_threads=1).astype(np.float32)
    np.testing.assert_array_equal(chosen.bins_probability(feature_bins(forest, chain)), expected)


def test_a_tree_beyond_the_4_ary_layout_takes_the_portable_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    forest = load_forest()
    layout = vector_layout(forest, vector_nodes(forest))
    assert layout is not None and np.diff([*layout.offsets, len(layout.nodes)]).max() == 1585
    monkeypatch.setattr("cube.clouds.forest.MAX_QUAD_NODES", 1584)
    assert vector_layout(forest, vector_nodes(forest)) is None
    assert ForestPredictor(cache_dir(), MODEL_PATH, "vector").walks == ("portable",)


def test_sigmoid_rounds_as_the_c_library() -> None:
    margin = np.random.default_rng(6).normal(0, 4, 200_000)
    expected = np.array([np.float32(1.0 / (1.0 + math.exp(-m))) for m in margin])
    np.testing.assert_array_equal(sigmoid32(margin), expected)


def test_stored_masks_without_a_compiler_fall_back_to_s2cloudless(
    tiny_root: Path, tiny_cube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr("cube.clouds.forest.INSTALLED", tmp_path / INSTALLED.name)  # none installed either
    with pytest.warns(RuntimeWarning, match="compiled s2cloudless forest unavailable.*using s2cloudless"):
        assert fast_probability() is s2cloudless_probability
    with pytest.warns(RuntimeWarning, match="using s2cloudless"):
        convert(tiny_root, tmp_path / "c.zarr", workers=1, progress=False)
    fallback, compiled = open_cube(tmp_path / "c.zarr"), open_cube(tiny_cube)
    for name in ("s2cloudless_mask", "s2cloudless_map", "s2cloudless_probability", "coverage"):
        np.testing.assert_array_equal(fallback[name].values, compiled[name].values)


def test_a_corrupt_or_stale_artifact_is_rebuilt(tmp_path: Path) -> None:
    built = kernel_path(tmp_path)
    meta = built.with_name("meta.json")
    good = built.read_bytes()
    built.write_bytes(good[:1000] + b"corrupt" + good[1007:])
    assert kernel_path(tmp_path) == built and built.read_bytes() == good
    stale = json.loads(meta.read_text()) | {"source_sha256": "0" * 64}
    meta.write_text(json.dumps(stale))
    before = built.stat().st_mtime_ns
    assert kernel_path(tmp_path) == built and built.stat().st_mtime_ns > before
    assert json.loads(meta.read_text())["source_sha256"] != "0" * 64
    shutil.rmtree(built.parent)
    assert predictor(tmp_path, MODEL_PATH)(np.zeros((13, 4, 4), np.uint16)).shape == (4, 4)


def test_models_it_cannot_reproduce_are_refused(tmp_path: Path) -> None:
    text = MODEL_PATH.read_text()
    for old, new, message in [
        ("objective=binary sigmoid:1", "objective=regression", "not a binary"),
        ("decision_type=2 ", "decision_type=10 ", "missing-value"),
        ("num_leaves=", "num_leaves=99", "tree 0 has 99[0-9]+ leaves, more than 32768"),
    ]:
        bad = tmp_path / "model.txt"
        bad.write_text(text.replace(old, new, 1))
        with pytest.raises(ValueError, match=message):
            load_forest(bad)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The kernel as ``pip install`` builds it (setup.py's build_ext, outside the repository) and the build's log."""
    out = tmp_path_factory.mktemp("install")
    before = sorted(ROOT.iterdir()), sorted(SOURCE.parent.glob("_forest*"))
    done = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(out / "lib"), "--build-temp", str(out / "tmp")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert (sorted(ROOT.iterdir()), sorted(SOURCE.parent.glob("_forest*"))) == before  # nothing in the repository
    return out / "lib" / INSTALLED.relative_to(ROOT), done.stdout


def test_the_installed_kernel_has_the_run_time_flags_and_comes_first(
    installed: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel, log = installed
    [compile_line] = [line for line in log.splitlines() if " -c cube/clouds/_forest.c " in line]
    assert compile_line.endswith(" ".join(FLAGS)) and installed_recipe() in compile_line  # the last -O is FLAGS'
    spec = importlib.util.spec_from_file_location("cube.clouds._forest", kernel)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # importable too: walking cube's modules works
    monkeypatch.setattr("cube.clouds.forest.INSTALLED", kernel)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))  # a run-time build would fail
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chosen = fast_probability()
    assert isinstance(chosen, ForestPredictor) and chosen.installed and chosen.kernel == kernel
    assert repr(chosen).startswith(f"ForestPredictor({str(kernel)!r}, installed, ")
    s2 = np.random.default_rng(10).integers(0, 11_000, (2, 13, 24, 24)).astype(np.uint16)
    np.testing.assert_array_equal(chosen(s2), s2cloudless_probability(s2))
    assert pickle.loads(pickle.dumps(chosen)) is chosen  # workers load the same file
    assert not (tmp_path / "cache").exists()


def _unusable(case: str, kernel: Path, bad: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write an installed kernel at ``bad`` that must not be used, in one of the ways it can go wrong."""
    if case == "truncated":
        bad.write_bytes(kernel.read_bytes()[:4096])
    elif case == "not a library":
        bad.write_text("#!/bin/sh\n")
    elif case == "no recipe":  # a build by hand, or one from before recipes
        shutil.copy(kernel_path(tmp_path / "cache"), bad)
    elif case == "other source":  # an editable install whose _forest.c changed since
        shutil.copy(kernel, bad)
        source = tmp_path / SOURCE.name
        source.write_text(SOURCE.read_text() + "/* changed */\n")
        monkeypatch.setattr("cube.clouds.forest.SOURCE", source)
    elif case == "other machine":
        shutil.copy(kernel, bad)
        monkeypatch.setattr("platform.machine", lambda: "aarch64")
    else:  # wrong results behind the right recipe: the sigmoid's sign flipped
        source = tmp_path / "wrong.c"
        source.write_text(SOURCE.read_text().replace("exp(-alpha * acc[i])", "exp(alpha * acc[i])"))
        recipe, python = f'-DFOREST_RECIPE="{installed_recipe()}"', f"-I{sysconfig.get_paths()['include']}"
        subprocess.run(["cc", *FLAGS, recipe, python, str(source), "-o", str(bad), "-lm"], check=True)


@pytest.mark.parametrize(
    "case", ["truncated", "not a library", "no recipe", "other source", "other machine", "wrong results"]
)
def test_an_unusable_installed_kernel_is_one_warning_line_then_the_run_time_build(
    case: str, installed: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "site-packages" / INSTALLED.name
    bad.parent.mkdir()
    _unusable(case, installed[0], bad, tmp_path, monkeypatch)
    monkeypatch.setattr("cube.clouds.forest.INSTALLED", bad)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    with pytest.warns(RuntimeWarning) as record:
        chosen = fast_probability()
    [message] = [str(w.message) for w in record]
    assert message.startswith(f"installed s2cloudless forest kernel unavailable ({bad}: ") and "\n" not in message
    assert message.endswith("; building it at first use instead"), message
    if case in ("other source", "other machine"):
        assert "stale, built from another _forest.c or for another machine" in message
    assert isinstance(chosen, ForestPredictor) and not chosen.installed
    assert chosen.kernel.is_relative_to(tmp_path / "cache") and "built at first use" in repr(chosen)
    assert chosen(np.zeros((13, 4, 4), np.uint16)).shape == (4, 4)
