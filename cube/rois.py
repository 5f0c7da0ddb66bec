"""The 53 ROIs of SEN12MS-CR-TS, their regions and the original train/val/test splits.

Facts from the data set's reference (sections 1 and 2). Selection always walks
the ROI table in its fixed order (groups ROIs1158, ROIs1868, ROIs1970,
ROIs2017; ROIs in the listed order inside a group), keeping the ROIs that a
split list names, which is how the original toolbox orders its samples.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUPS: tuple[str, ...] = ("ROIs1158", "ROIs1868", "ROIs1970", "ROIs2017")

_TABLE: dict[str, tuple[int, ...]] = {
    "ROIs1158": (106,),
    "ROIs1868": (17, 36, 56, 73, 85, 100, 114, 119, 121, 126, 127, 139, 142, 143),
    "ROIs1970": (20, 21, 35, 40, 57, 65, 71, 82, 83, 91, 112, 116, 119, 128, 132, 133, 135, 139,
                 142, 144, 149),
    "ROIs2017": (8, 22, 25, 32, 49, 61, 63, 69, 75, 103, 108, 115, 116, 117, 130, 140, 146),
}

SPLITS: tuple[str, ...] = ("all", "train", "val", "test")
REGIONS: tuple[str, ...] = ("all", "africa", "america", "asiaEast", "asiaWest", "europa")


@dataclass(frozen=True, order=True)
class Roi:
    """One ROI of the data set, e.g. ``Roi("ROIs1868", 73)``, written ``ROIs1868/73``."""

    group: str
    number: int

    def __str__(self) -> str:
        return f"{self.group}/{self.number}"

    @classmethod
    def parse(cls, text: str) -> Roi:
        """Parse ``ROIs1868/73`` (or ``1868/73``) into a known ROI.

        Raises
        ------
        ValueError
            If the text is malformed or names no ROI of the data set.
        """
        group, sep, number = text.strip().partition("/")
        if not group.startswith("ROIs"):
            group = f"ROIs{group}"
        if not sep or not number.isdigit():
            raise ValueError(f"invalid ROI {text!r}: expected GROUP/NUMBER such as ROIs1868/73")
        roi = cls(group, int(number))
        if roi not in ALL_ROIS:
            raise ValueError(f"invalid ROI {text!r}: not one of the 53 SEN12MS-CR-TS ROIs")
        return roi


ALL_ROIS: tuple[Roi, ...] = tuple(Roi(g, n) for g in GROUPS for n in _TABLE[g])


def _rois(text: str) -> frozenset[Roi]:
    """Split lists are written as ``1868/119 1970/139 ...``; entries may name no ROI (see asiaWest)."""
    return frozenset(Roi(f"ROIs{item.split('/')[0]}", int(item.split("/")[1])) for item in text.split())


_TEST_ALL = _rois("1868/119 1970/139 2017/108 2017/63 1158/106 1868/73 2017/32 1868/100 1970/132 "
                  "2017/103 1868/142 1970/20 2017/140")
_VAL_ALL = _rois("2017/22 1970/65 2017/117 1868/127 1868/17")

_REGION_SPLITS: dict[str, dict[str, frozenset[Roi]]] = {
    "africa": {"test": _rois("2017/32 2017/140"), "val": _rois("2017/22"),
               "train": _rois("1970/21 1970/35 1970/40 2017/8 2017/61 2017/75")},
    "america": {"test": _rois("1158/106 1970/132"), "val": _rois("1970/65"),
                "train": _rois("1868/36 1868/85 1970/82 1970/142 2017/49 2017/116")},
    "asiaEast": {"test": _rois("1868/73 1868/119 1970/139"), "val": _rois("2017/117"),
                 "train": _rois("1868/114 1868/126 1868/143 1970/116 1970/135 2017/25")},
    "asiaWest": {"test": _rois("1868/100"), "val": _rois("1868/127"),
                 "train": _rois("1970/57 1970/83 1970/112 2017/69 1970/115 1970/130")},
    "europa": {"test": _rois("2017/63 2017/103 2017/108 1868/142 1970/20"), "val": _rois("1868/17"),
               "train": _rois("1868/56 1868/121 1868/139 1970/71 1970/91 1970/119 1970/128 1970/133 "
                              "1970/144 1970/149 2017/146")},
}
# The original lists ROIs1970/115 and ROIs1970/130 for asiaWest/train; neither exists, so they never
# match. ``correct_asiawest=True`` uses the existing ROIs2017/115 and ROIs2017/130 instead.
_ASIAWEST_CORRECTED = _rois("1970/57 1970/83 1970/112 2017/69 2017/115 2017/130")


def _split_members(split: str, region: str, correct_asiawest: bool) -> frozenset[Roi]:
    if region == "all":
        if split == "test":
            return _TEST_ALL
        if split == "val":
            return _VAL_ALL
        if split == "train":
            return frozenset(ALL_ROIS) - _TEST_ALL - _VAL_ALL
        return frozenset(ALL_ROIS)
    lists = dict(_REGION_SPLITS[region])
    if region == "asiaWest" and correct_asiawest:
        lists["train"] = _ASIAWEST_CORRECTED
    if split == "all":
        return lists["train"] | lists["val"] | lists["test"]
    return lists[split]


def select_rois(split: str = "all", region: str = "all", *, correct_asiawest: bool = False) -> list[Roi]:
    """ROIs of a split and region, in the original toolbox's sample order.

    Parameters
    ----------
    split : {"all", "train", "val", "test"}
    region : {"all", "africa", "america", "asiaEast", "asiaWest", "europa"}
    correct_asiawest : bool
        The original's asiaWest train list names two ROIs that do not exist
        (ROIs1970/115 and ROIs1970/130), so it silently has four train ROIs.
        False (default) reproduces that; True uses ROIs2017/115 and ROIs2017/130.

    Examples
    --------
    >>> [str(r) for r in select_rois("val", "europa")]
    ['ROIs1868/17']
    """
    if split not in SPLITS:
        raise ValueError(f"invalid split {split!r}: choose one of {', '.join(SPLITS)}")
    if region not in REGIONS:
        raise ValueError(f"invalid region {region!r}: choose one of {', '.join(REGIONS)}")
    members = _split_members(split, region, correct_asiawest)
    return [roi for roi in ALL_ROIS if roi in members]


def split_of(roi: Roi) -> str:
    """The split ('train', 'val' or 'test') an ROI belongs to under region='all'."""
    return "test" if roi in _TEST_ALL else "val" if roi in _VAL_ALL else "train"


def region_of(roi: Roi) -> str:
    """The region whose lists name the ROI, or 'unassigned' for ROIs no region list names."""
    for region, lists in _REGION_SPLITS.items():
        if any(roi in members for members in lists.values()):
            return region
    return "unassigned"
