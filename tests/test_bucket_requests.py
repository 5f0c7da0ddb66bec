"""What a cube in a bucket costs in requests (moto's S3 server on 127.0.0.1, behind a counting proxy).

Opening reads two metadata objects (the root's consolidated ``zarr.json`` and the
state) and each coordinate array once, all coordinates in one concurrent round;
``crts info`` and ``crts stats`` add at most 20 requests; a sample reads its images
in two round trips (the shards' indexes, then the images); and nothing costs a
request per patch: a cube of 2,500 patches, converted in three parts, costs what
one of 53 does.
"""

from __future__ import annotations

import pytest

from crts.cli import main
from crts.data import SEN12MSCRTS, SampleWindows, loader
from cube import open_cube
from cube.synth.hollow import make_hollow
from tests.servers import S3Proxy, Traffic, create_bucket

pytestmark = pytest.mark.slow
DELAY = 0.2
"""Seconds the proxy holds each request: far above the client's own time between the requests it sends at once."""
METADATA = ("cube.zarr/zarr.json", "cube.zarr/cube_state/zarr.json")


@pytest.fixture(scope="module")
def proxy(s3: str) -> S3Proxy:
    """A proxy holding each request :data:`DELAY` s, to count round trips."""
    proxy = S3Proxy(s3, delay=DELAY)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def counter(s3: str) -> S3Proxy:
    """A proxy that only counts."""
    proxy = S3Proxy(s3)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def hollow_cubes(s3: str) -> dict[int, str]:
    """Hollow cubes (all but the image shards) of 30 steps in buckets: 53 patches converted in one go, 2,500 in three
    parts (test, val, train)."""
    return {
        n: make_hollow(f"{create_bucket(f'hollow-{n}')}/cube.zarr", n, parts=parts).location
        for n, parts in ((53, 1), (2500, 3))
    }


def _costs(proxy: S3Proxy, url: str) -> dict[str, Traffic]:
    """The requests of opening, ``crts info``, ``crts stats``, ``SEN12MSCRTS`` and its first sample."""
    options, out = {"endpoint": proxy.url}, {}
    with proxy.counting() as out["open"]:
        open_cube(url, storage_options=options)
    for name, args in (("info", ["info"]), ("stats", ["stats", "--by", "region,split"])):
        with proxy.counting() as out[name]:
            assert main([args[0], url, *args[1:], "--storage-option", f"endpoint={proxy.url}"]) == 0
    with proxy.counting() as out["construct"]:
        samples = SEN12MSCRTS(url, storage_options=options)
    with proxy.counting() as out["sample"]:
        samples[0]
    return out


def test_opening_reads_two_metadata_objects_and_each_coordinate_once_in_three_round_trips(
    proxy: S3Proxy, s3_cube: str
) -> None:
    with proxy.counting() as requests:
        ds = open_cube(s3_cube, storage_options={"endpoint": proxy.url})
    assert {r.method for r in requests} == {"GET"}
    keys = requests.keys()  # Traffic.keys: the requested keys, in order
    assert sorted(k for k in keys if k.endswith("zarr.json")) == sorted(METADATA)
    chunks = [k for k in keys if not k.endswith("zarr.json")]
    assert len(chunks) == len(set(chunks)) == len(ds.coords)  # one chunk each: the coordinates, none twice
    assert requests.round_trips <= 3  # the root, the coordinates at once, the state


def test_info_and_stats_cost_at_most_20_requests_more_than_opening(
    counter: S3Proxy, s3_cube: str, capsys: pytest.CaptureFixture[str]
) -> None:
    costs = _costs(counter, s3_cube)
    capsys.readouterr()
    for name in ("info", "stats"):
        assert len(costs[name]) <= len(costs["open"]) + 20, (name, costs[name].keys())
        assert set(costs[name].keys()) >= set(METADATA)


def test_a_sample_costs_two_round_trips_once_its_arrays_are_open(proxy: S3Proxy, s3_cube: str) -> None:
    samples = SEN12MSCRTS(s3_cube, storage_options={"endpoint": proxy.url})
    with proxy.counting() as first:
        samples[0]
    images = 3 * (samples.n_input_samples + 1)  # S2, S1 and the mask of each input step and the target
    assert first.round_trips <= 3  # the arrays' metadata and the source paths, the shards' indexes, the images
    for pdx in (1, 2):
        with proxy.counting() as requests:
            samples[pdx]
        assert requests.round_trips == 2  # the shards' indexes, then the images
        assert all(r.range for r in requests)  # byte ranges of image shards only
        indexes = [r for r in requests if r.range.startswith("bytes=-")]
        assert len(indexes) == 3  # each shard's index once: the patch's S2, S1 and mask
        assert len(requests) - len(indexes) <= images  # then its chunks, nearby ones merged


def test_a_batch_of_windows_costs_two_round_trips(proxy: S3Proxy, s3_cube: str) -> None:
    windows = SampleWindows(
        SEN12MSCRTS(s3_cube, storage_options={"endpoint": proxy.url}), {"y": 16, "x": 16}, placement="random"
    )
    windows[0]  # the arrays' metadata and the source paths
    with proxy.counting() as requests:
        batch = next(iter(loader(windows, batch_size=4, sampler=[1, 2, 3, 4])))
    assert requests.round_trips == 2  # every shard's index of the 4 samples, then all their images
    assert len([r for r in requests if r.range.startswith("bytes=-")]) == 4 * 3  # S2, S1 and mask of each
    assert batch["pdx"].tolist() == [1, 2, 3, 4]


def test_no_request_is_made_per_patch(
    counter: S3Proxy, hollow_cubes: dict[int, str], capsys: pytest.CaptureFixture[str]
) -> None:
    few, many = (_costs(counter, hollow_cubes[n]) for n in sorted(hollow_cubes))
    capsys.readouterr()
    for name in few:  # 47 times the patches, converted in parts: not one request more
        assert len(many[name]) == len(few[name]), (name, sorted(many[name].keys()), sorted(few[name].keys()))
