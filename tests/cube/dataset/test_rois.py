from __future__ import annotations

import pytest

from cube.dataset.rois import ALL_ROIS, GROUPS, Roi, region_of, select_rois, split_of


def names(rois: list[Roi]) -> list[str]:
    return [str(r) for r in rois]


def test_table_has_53_rois_in_group_order() -> None:
    assert len(ALL_ROIS) == 53
    assert [r.group for r in ALL_ROIS] == sorted((r.group for r in ALL_ROIS), key=GROUPS.index)
    assert names(ALL_ROIS[:3]) == ["ROIs1158/106", "ROIs1868/17", "ROIs1868/36"]


@pytest.mark.parametrize(("split", "count"), [("all", 53), ("train", 35), ("val", 5), ("test", 13)])
def test_split_sizes_under_region_all(split: str, count: int) -> None:
    assert len(select_rois(split)) == count


def test_splits_partition_the_table() -> None:
    parts = [set(select_rois(s)) for s in ("train", "val", "test")]
    assert set.union(*parts) == set(ALL_ROIS)
    assert sum(len(p) for p in parts) == 53


def test_selection_follows_table_order_not_list_order() -> None:
    # The reference lists the test split starting with ROIs1868/119; the sample order starts with ROIs1158.
    assert names(select_rois("test"))[:4] == ["ROIs1158/106", "ROIs1868/73", "ROIs1868/100", "ROIs1868/119"]
    assert names(select_rois("val")) == ["ROIs1868/17", "ROIs1868/127", "ROIs1970/65", "ROIs2017/22", "ROIs2017/117"]


def test_region_lists() -> None:
    assert names(select_rois("test", "africa")) == ["ROIs2017/32", "ROIs2017/140"]
    assert names(select_rois("val", "europa")) == ["ROIs1868/17"]
    assert len(select_rois("train", "europa")) == 11
    assert len(select_rois("all", "america")) == 9


def test_asiawest_reproduces_the_original_gap_by_default() -> None:
    default = names(select_rois("train", "asiaWest"))
    assert default == ["ROIs1970/57", "ROIs1970/83", "ROIs1970/112", "ROIs2017/69"]
    corrected = names(select_rois("train", "asiaWest", correct_asiawest=True))
    assert corrected == [*default, "ROIs2017/115", "ROIs2017/130"]


def test_labels_of_an_roi() -> None:
    assert split_of(Roi("ROIs2017", 63)) == "test"
    assert split_of(Roi("ROIs1868", 17)) == "val"
    assert split_of(Roi("ROIs1970", 21)) == "train"
    assert region_of(Roi("ROIs1970", 21)) == "africa"
    assert region_of(Roi("ROIs2017", 115)) == "unassigned"


def test_parse() -> None:
    assert Roi.parse("ROIs1868/73") == Roi("ROIs1868", 73)
    assert Roi.parse("1868/73") == Roi("ROIs1868", 73)
    with pytest.raises(ValueError, match=r"'ROIs1868/999'.*not one of the 53"):
        Roi.parse("ROIs1868/999")
    with pytest.raises(ValueError, match="'ROIs1868-73'"):
        Roi.parse("ROIs1868-73")


@pytest.mark.parametrize(("split", "region"), [("training", "all"), ("all", "oceania")])
def test_bad_split_or_region(split: str, region: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        select_rois(split, region)
