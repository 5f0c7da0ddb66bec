"""Windows and batches: documented shapes and labels, windows equal crops of whole images, grids that cover
the patch, reproducible random windows, every window once per epoch, also with workers and DDP."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import torch

from crts.data import SEN12MSCRTS, SampleWindows, batches, loader
from cube import open_cube

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def samples(sampling_cube: Path) -> SEN12MSCRTS:
    return SEN12MSCRTS(sampling_cube, split="all", n_input_samples=3)


def test_batches_have_the_documented_shapes_and_labels(samples: SEN12MSCRTS) -> None:
    windows = SampleWindows(samples, {"y": 16, "x": 16}, {"y": 8, "x": 8})
    assert len(windows) == len(samples) * 9  # 3 x 3 windows of 16 px with 8 px overlap on 32 px
    batch = next(iter(loader(windows, batch_size=4)))
    assert batch["inputs"].shape == (4, 3, 15, 16, 16) and batch["inputs"].dtype == torch.float32
    assert batch["target"].shape == (4, 13, 16, 16)
    assert batch["input_masks"].shape == (4, 3, 16, 16) and batch["target_mask"].shape == (4, 16, 16)
    assert batch["input_coverage"].shape == (4, 3) and batch["input_s2_td"].shape == (4, 3)
    assert batch["input_times"].shape == (4, 3)
    sample = samples[int(batch["pdx"][1])]
    y0, x0 = int(batch["y0"][1]), int(batch["x0"][1])
    crop = (slice(y0, y0 + 16), slice(x0, x0 + 16))
    for k in range(3):  # S2 then S1 channels, cropped at the window
        window = (slice(None), *crop)
        np.testing.assert_array_equal(batch["inputs"][1, k, :13].numpy(), sample["input"]["S2"][k][window])
        np.testing.assert_array_equal(batch["inputs"][1, k, 13:].numpy(), sample["input"]["S1"][k][window])
    np.testing.assert_array_equal(batch["target"][1].numpy(), sample["target"]["S2"][0][(slice(None), *crop)])
    assert batch["target_time"][1] == sample["target"]["idx"]
    label = samples.labels[int(batch["pdx"][1])]
    assert (batch["roi_group"][1], int(batch["roi"][1]), int(batch["patch_id"][1])) == (
        label.roi.group,
        label.roi.number,
        label.patch_id,
    )


def _assert_same_batch(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for key, value in expected.items():
        if torch.is_tensor(value):
            assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
            torch.testing.assert_close(got[key], value, rtol=0, atol=0)
        else:
            assert got[key] == value, key


@pytest.mark.parametrize(
    ("workers", "shared_bytes"),
    [(0, 1 << 20), (2, 1 << 20), (2, 0)],
    ids=["no workers", "workers, small arrays in the message", "workers, all in shared memory"],
)
def test_batches_equal_torchs_default_collate_of_the_items(
    samples: SEN12MSCRTS, workers: int, shared_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batches, "SHARED_BYTES", shared_bytes)  # forked workers inherit it
    windows = SampleWindows(samples, {"y": 16, "x": 16}, placement="random", seed=5)
    got = list(
        loader(
            windows,
            batch_size=4,
            num_workers=workers,
            start_method="fork" if workers else None,
            timeout=120 if workers else 0,
        )
    )
    expected = [
        torch.utils.data.default_collate([windows[i] for i in range(s, min(s + 4, len(windows)))])
        for s in range(0, len(windows), 4)
    ]
    assert len(got) == len(expected)
    for batch, want in zip(got, expected, strict=True):
        _assert_same_batch(batch, want)


@pytest.mark.requires_cuda
def test_pinned_batches_equal_the_plain_ones(samples: SEN12MSCRTS) -> None:
    windows = SampleWindows(samples, {"y": 16, "x": 16}, placement="random", seed=5)
    plain = next(iter(loader(windows, batch_size=4, pin_memory=False)))
    pinned = next(iter(loader(windows, batch_size=4, num_workers=2, pin_memory=True, timeout=120)))
    assert pinned["inputs"].is_pinned() and pinned["target"].is_pinned()
    _assert_same_batch(pinned, plain)


def _keys(batches: Iterable[dict]) -> list[tuple[int, int, int]]:
    return [(int(p), int(y), int(x)) for b in batches for p, y, x in zip(b["pdx"], b["y0"], b["x0"], strict=True)]


def test_each_window_once_per_epoch_with_two_workers_and_reshuffled(samples: SEN12MSCRTS) -> None:
    windows = SampleWindows(samples, {"y": 16, "x": 16})
    data = loader(windows, batch_size=3, shuffle=True, num_workers=2)
    first, second = _keys(data), _keys(data)
    expected = {(p, y, x) for p in range(len(samples)) for y in (0, 16) for x in (0, 16)}
    assert Counter(first) == Counter(expected) and Counter(second) == Counter(expected)
    assert first != second


def test_distributed_sampler_splits_the_windows(samples: SEN12MSCRTS) -> None:
    windows = SampleWindows(samples)
    seen = []
    for rank in (0, 1):
        sampler = torch.utils.data.DistributedSampler(windows, num_replicas=2, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(1)
        seen += _keys(loader(windows, batch_size=2, sampler=sampler))
    everything = {(p, 0, 0) for p in range(len(samples))}
    assert set(seen) == everything
    assert len(seen) == len(everything) + len(everything) % 2  # the sampler pads an odd count with one repeat


def test_windows_need_cloudy_cloudfree_samples(sampling_cube: Path) -> None:
    with pytest.raises(ValueError, match="cloudy_cloudfree"):
        SampleWindows(SEN12MSCRTS(sampling_cube, cloud_masks=None))


def test_a_window_larger_than_the_patch_is_refused_at_construction(samples: SEN12MSCRTS) -> None:
    size = samples.image_size
    with pytest.raises(ValueError, match=rf"window \{{'y': {size + 1}\}} is larger than the patch"):
        SampleWindows(samples, {"y": size + 1, "x": size})


def test_repr_names_the_settings_and_sizes(samples: SEN12MSCRTS) -> None:
    text = repr(SampleWindows(samples, {"y": 16, "x": 16}))
    assert text.startswith(f"SampleWindows({len(samples) * 4} windows of 16 x 16 px, grid, over SEN12MSCRTS(")
    assert "split='all', region='all', cloud_masks='s2cloudless_mask'" in text
    assert (
        f"n_input_samples=3, min_cov=0.0, max_cov=1.0, sampler='fixed'): {len(samples)} samples of 32 x 32 px" in text
        and "\n" not in text
    )


def _crop_of_whole_image(samples: SEN12MSCRTS, item: dict) -> dict:
    """The same window cut from the whole images of the item's sample."""
    whole = SampleWindows(samples)[item["pdx"]]
    h, w = item["target"].shape[-2:]
    crop = (slice(item["y0"], item["y0"] + h), slice(item["x0"], item["x0"] + w))
    return {key: whole[key][(..., *crop)] for key in ("inputs", "target", "input_masks", "target_mask")}


@pytest.mark.parametrize("placement", ["grid", "random"])
def test_a_window_read_from_the_cube_equals_the_crop_of_the_whole_image(samples: SEN12MSCRTS, placement: str) -> None:
    windows = SampleWindows(samples, {"y": 12, "x": 20}, placement=placement, seed=5)
    for i in (0, 7, len(windows) - 1):
        item = windows[i]
        assert item["inputs"].shape == (3, 15, 12, 20)
        for key, expected in _crop_of_whole_image(samples, item).items():
            torch.testing.assert_close(item[key], expected, rtol=0, atol=0)


def test_the_grid_covers_every_pixel_with_windows_flush_at_the_far_edge(samples: SEN12MSCRTS) -> None:
    windows = SampleWindows(samples, {"y": 12, "x": 12}, {"y": 3, "x": 3})  # stride 9: 0, 9, 18, then 27 -> 20
    assert len(windows) == len(samples) * 16
    covered = np.zeros((len(samples), 32, 32), int)
    for i in range(len(windows)):
        pdx, y0, x0 = windows.position(i)
        assert 0 <= y0 <= 20 and 0 <= x0 <= 20
        covered[pdx, y0 : y0 + 12, x0 : x0 + 12] += 1
    assert (covered > 0).all()
    assert {windows.position(i)[1] for i in range(16)} == {0, 9, 18, 20}


def test_random_windows_depend_only_on_seed_epoch_and_item(samples: SEN12MSCRTS) -> None:
    def positions(seed: int, epoch: int, order: list[int]) -> dict[int, tuple]:
        windows = SampleWindows(samples, {"y": 16, "x": 16}, placement="random", seed=seed)
        windows.set_epoch(epoch)
        return {i: windows.position(i) for i in order}

    forward = positions(0, 2, list(range(len(samples))))
    assert forward == positions(0, 2, list(reversed(range(len(samples)))))  # a resumed run, another order
    assert len(forward) == len(samples) and [p for p, _, _ in forward.values()] == list(range(len(samples)))
    assert len({(y, x) for _, y, x in forward.values()}) > 1  # offsets do vary
    assert forward != positions(0, 3, list(range(len(samples))))
    assert forward != positions(1, 2, list(range(len(samples))))
    with_workers = _keys(
        loader(SampleWindows(samples, {"y": 16, "x": 16}, placement="random"), batch_size=4, num_workers=2)
    )
    assert sorted(with_workers) == sorted((p, y, x) for p, y, x in positions(0, 0, list(range(len(samples)))).values())


def test_invalid_placements_and_overlaps_are_refused(samples: SEN12MSCRTS) -> None:
    with pytest.raises(ValueError, match="invalid placement 'tiles': choose from grid, random"):
        SampleWindows(samples, placement="tiles")
    with pytest.raises(ValueError, match="overlap 16 px must be smaller than the window"):
        SampleWindows(samples, {"y": 16, "x": 16}, {"y": 16, "x": 0})
    with pytest.raises(ValueError, match="invalid window 12 px / overlap -2 px: the window must be at least 1 px"):
        SampleWindows(samples, {"y": 12, "x": 12}, {"y": -2, "x": 0})


def test_forked_workers_read_after_the_parent_used_dask_and_zarr(samples: SEN12MSCRTS, sampling_cube: Path) -> None:
    float(open_cube(sampling_cube).S2.isel(patch=0).mean())  # dask's thread pool runs in the parent
    windows = SampleWindows(samples, {"y": 16, "x": 16})
    windows[0]  # so does zarr's event loop
    data = loader(windows, batch_size=8, num_workers=2, start_method="fork", timeout=30)  # a hang raises
    assert Counter(_keys(data)) == Counter((p, y, x) for p in range(len(samples)) for y in (0, 16) for x in (0, 16))


class _Stuck(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> int:
        time.sleep(60)
        return i


@pytest.mark.slow  # torch gives a stuck worker 5 s to exit before it terminates it
def test_a_stuck_worker_stops_the_loop_after_the_timeout() -> None:
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="timed out after 1 seconds"):
        next(iter(loader(_Stuck(), num_workers=1, start_method="fork", timeout=1)))
    assert time.perf_counter() - start < 30


def test_an_unknown_start_method_is_refused(samples: SEN12MSCRTS) -> None:
    with pytest.raises(ValueError, match="invalid start_method 'thread': choose from fork, forkserver, spawn"):
        loader(SampleWindows(samples), num_workers=1, start_method="thread")


@pytest.mark.slow
@pytest.mark.parametrize("method", [None, "forkserver"], ids=["default", "forkserver"])
def test_a_script_without_main_guard_runs_or_stops_with_the_remedy(
    sampling_cube: Path, tmp_path: Path, method: str | None
) -> None:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(f"""
        from crts.data import SEN12MSCRTS, SampleWindows, loader
        from crts.data.workers import default_start_method

        windows = SampleWindows(SEN12MSCRTS({str(sampling_cube)!r}, n_input_samples=3))
        if __name__ == "__main__":  # the script's own default (this test's process may have imported obstore)
            print({method!r} or default_start_method(), flush=True)
        print(sum(len(batch["pdx"]) for batch in loader(windows, num_workers=2, start_method={method!r})))
    """)
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    chosen, *counts = done.stdout.split()
    assert chosen in ("fork", "forkserver")
    if chosen == "fork":  # no worker re-runs the script
        assert done.returncode == 0 and counts == ["15"], done.stderr
    else:
        assert done.returncode != 0
        assert (
            "RuntimeError: crts.data.loader() ran while a DataLoader worker re-ran the main script to start: "
            'put the script\'s code under `if __name__ == "__main__":`'
        ) in done.stderr


@pytest.mark.parametrize(
    "method",
    ["fork", pytest.param("forkserver", marks=pytest.mark.slow), pytest.param("spawn", marks=pytest.mark.slow)],
)
def test_workers_of_every_start_method_give_the_items_of_one_process(samples: SEN12MSCRTS, method: str) -> None:
    windows = SampleWindows(samples, {"y": 16, "x": 16}, placement="random", seed=3)
    windows[0]  # the parent has read the cube (direct shard reads, Blosc) before its workers start
    expected = _items(loader(windows, batch_size=4))
    got = _items(loader(windows, batch_size=4, num_workers=2, start_method=method, timeout=120))
    assert got.keys() == expected.keys()
    for key, (inputs, target) in got.items():
        torch.testing.assert_close(inputs, expected[key][0], rtol=0, atol=0)
        torch.testing.assert_close(target, expected[key][1], rtol=0, atol=0)


def _items(batches: torch.utils.data.DataLoader) -> dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]]:
    """Inputs and target of every window, by sample and window origin."""
    return {
        (int(b["pdx"][i]), int(b["y0"][i]), int(b["x0"][i])): (b["inputs"][i], b["target"][i])
        for b in batches
        for i in range(len(b["pdx"]))
    }
