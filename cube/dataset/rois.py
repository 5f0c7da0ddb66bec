"""The 53 ROIs of SEN12MS-CR-TS, their regions and the original train/val/test splits.

Facts from docs/reference.md §1 Layout and §2 Splits. Selection always walks
the ROI table in its fixed order (groups ROIs1158, ROIs1868, ROIs1970,
ROIs2017; ROIs in the listed, ascending order inside a group), keeping the ROIs
that a split list names, which is how the original toolbox orders its samples.

The mono-temporal SEN12MS-CR numbers its scenes the same way (folder
``ROIs1868_summer_s1/s1_73`` is scene 73 of group ROIs1868) but has many more of
them, and its own split lists of scene folders (:func:`in_cr_split`).
"""

from __future__ import annotations

from dataclasses import dataclass

GROUPS: tuple[str, ...] = ("ROIs1158", "ROIs1868", "ROIs1970", "ROIs2017")

_TABLE: dict[str, tuple[int, ...]] = {
    "ROIs1158": (106,),
    "ROIs1868": (17, 36, 56, 73, 85, 100, 114, 119, 121, 126, 127, 139, 142, 143),
    "ROIs1970": (20, 21, 35, 40, 57, 65, 71, 82, 83, 91, 112, 116, 119, 128, 132, 133, 135, 139, 142, 144, 149),
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
    def parse(cls, text: str, *, known: bool = True) -> Roi:
        """Parse ``ROIs1868/73`` (or ``1868/73``) into a known ROI (any scene of a group with ``known=False``).

        Raises
        ------
        ValueError
            If the text is malformed or, with ``known``, names no ROI of SEN12MS-CR-TS.
        """
        group, sep, number = text.strip().partition("/")
        if not group.startswith("ROIs"):
            group = f"ROIs{group}"
        if not sep or not number.isdigit():
            raise ValueError(f"invalid ROI {text!r}: expected GROUP/NUMBER such as ROIs1868/73")
        roi = cls(group, int(number))
        if group not in GROUPS:
            raise ValueError(f"invalid ROI {text!r}: the group is not one of {', '.join(GROUPS)}")
        if known and roi not in ALL_ROIS:
            raise ValueError(f"invalid ROI {text!r}: not one of the 53 SEN12MS-CR-TS ROIs")
        return roi


@dataclass(frozen=True, order=True)
class PatchLabel:
    """One patch: its ROI and its number inside the ROI, written ``ROIs1868/73 patch 12``.

    Examples
    --------
    >>> label = PatchLabel(Roi("ROIs1868", 73), 12)
    >>> str(label), label.record()
    ('ROIs1868/73 patch 12', {'roi': 'ROIs1868/73', 'patch_id': 12})
    """

    roi: Roi
    patch_id: int

    def __str__(self) -> str:
        return f"{self.roi} patch {self.patch_id}"

    def record(self) -> dict:
        """The label as JSON-ready fields (the ROI written ``ROIsXXXX/NN``)."""
        return {"roi": str(self.roi), "patch_id": self.patch_id}


ALL_ROIS: tuple[Roi, ...] = tuple(Roi(g, n) for g in GROUPS for n in _TABLE[g])


def _rois(text: str) -> frozenset[Roi]:
    """Split lists are written as ``1868/119 1970/139 ...``; entries may name no ROI (see asiaWest)."""
    return frozenset(Roi(f"ROIs{item.split('/')[0]}", int(item.split("/")[1])) for item in text.split())


_TEST_ALL = _rois(
    "1868/119 1970/139 2017/108 2017/63 1158/106 1868/73 2017/32 1868/100 1970/132 2017/103 1868/142 1970/20 2017/140"
)
_VAL_ALL = _rois("2017/22 1970/65 2017/117 1868/127 1868/17")

_REGION_SPLITS: dict[str, dict[str, frozenset[Roi]]] = {
    "africa": {
        "test": _rois("2017/32 2017/140"),
        "val": _rois("2017/22"),
        "train": _rois("1970/21 1970/35 1970/40 2017/8 2017/61 2017/75"),
    },
    "america": {
        "test": _rois("1158/106 1970/132"),
        "val": _rois("1970/65"),
        "train": _rois("1868/36 1868/85 1970/82 1970/142 2017/49 2017/116"),
    },
    "asiaEast": {
        "test": _rois("1868/73 1868/119 1970/139"),
        "val": _rois("2017/117"),
        "train": _rois("1868/114 1868/126 1868/143 1970/116 1970/135 2017/25"),
    },
    "asiaWest": {
        "test": _rois("1868/100"),
        "val": _rois("1868/127"),
        "train": _rois("1970/57 1970/83 1970/112 2017/69 1970/115 1970/130"),
    },
    "europa": {
        "test": _rois("2017/63 2017/103 2017/108 1868/142 1970/20"),
        "val": _rois("1868/17"),
        "train": _rois(
            "1868/56 1868/121 1868/139 1970/71 1970/91 1970/119 1970/128 1970/133 1970/144 1970/149 2017/146"
        ),
    },
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


# SEN12MS-CR: the original loader's split lists of scene folders (ROIs1158_spring_s1/s1_<n> and so on).
_CR_SPLITS: dict[str, frozenset[Roi]] = {
    "train": _rois(
        " ".join(
            [
                f"1970/{n}"
                for n in (
                    3,
                    22,
                    148,
                    107,
                    1,
                    114,
                    135,
                    40,
                    42,
                    31,
                    149,
                    64,
                    28,
                    144,
                    57,
                    35,
                    133,
                    30,
                    134,
                    141,
                    112,
                    116,
                    37,
                    26,
                    77,
                    100,
                    83,
                    71,
                    93,
                    119,
                    104,
                    136,
                    6,
                    41,
                    125,
                    91,
                    131,
                    120,
                    110,
                    19,
                    14,
                    81,
                    39,
                    109,
                    33,
                    88,
                    11,
                    128,
                    142,
                    122,
                    4,
                    27,
                    147,
                    85,
                    82,
                    105,
                )
            ]
            + [
                f"1158/{n}"
                for n in (
                    9,
                    1,
                    124,
                    40,
                    101,
                    21,
                    134,
                    145,
                    141,
                    66,
                    8,
                    26,
                    77,
                    113,
                    100,
                    117,
                    119,
                    6,
                    58,
                    120,
                    110,
                    126,
                    115,
                    121,
                    39,
                    109,
                    63,
                    75,
                    132,
                    128,
                    142,
                    15,
                    45,
                    97,
                    147,
                )
            ]
            + [
                f"1868/{n}"
                for n in (
                    90,
                    87,
                    25,
                    124,
                    114,
                    135,
                    40,
                    101,
                    42,
                    31,
                    36,
                    139,
                    56,
                    133,
                    55,
                    43,
                    113,
                    76,
                    123,
                    143,
                    93,
                    125,
                    89,
                    120,
                    126,
                    72,
                    115,
                    121,
                    146,
                    140,
                    95,
                    102,
                    7,
                    11,
                    132,
                    15,
                    137,
                    4,
                    27,
                    147,
                    86,
                    47,
                    100,
                )
            ]
            + [
                f"2017/{n}"
                for n in (68, 25, 62, 135, 42, 64, 21, 55, 112, 116, 8, 59, 49, 104, 81, 146, 75, 94, 102, 61, 47)
            ]
        )
    ),
    "val": _rois("2017/22 1868/19 1970/65 1158/17 2017/107 1868/80 1868/127 2017/130 1868/17 2017/84"),
    "test": _rois("1158/106 1158/123 1158/140 1158/31 1158/44 1868/119 1868/73 1970/139 2017/108 2017/63"),
}


def cr_split_of(scene: Roi) -> str:
    """The SEN12MS-CR split list that names a scene ('train', 'val', 'test'), or 'unlisted'."""
    return next((split for split, scenes in _CR_SPLITS.items() if scene in scenes), "unlisted")


def in_cr_split(scene: Roi, split: str, region: str = "all", *, exact: bool = False) -> bool:
    """Whether the original SEN12MS-CR loader takes a scene into ``split`` (and ``region``).

    The original keeps a file when a listed folder such as
    ``ROIs1158_spring_s1/s1_1`` occurs in its path, so a listed scene also takes
    every scene whose number starts with its own (s1_1 takes s1_106, s1_12, ...)
    into its split, and a scene can be in several splits. ``exact=True`` takes
    only the listed scenes. The original supports only region 'all'; another
    region keeps the scenes that are SEN12MS-CR-TS ROIs of that region.

    Examples
    --------
    >>> in_cr_split(Roi("ROIs1158", 106), "train"), in_cr_split(Roi("ROIs1158", 106), "train", exact=True)
    (True, False)
    """
    if split not in SPLITS:
        raise ValueError(f"invalid split {split!r}: choose one of {', '.join(SPLITS)}")
    if region not in REGIONS:
        raise ValueError(f"invalid region {region!r}: choose one of {', '.join(REGIONS)}")
    if region != "all" and region_of(scene) != region:
        return False
    lists = ("train", "val", "test") if split == "all" else (split,)
    return any(
        listed.group == scene.group
        and (listed.number == scene.number if exact else str(scene.number).startswith(str(listed.number)))
        for name in lists
        for listed in _CR_SPLITS[name]
    )
