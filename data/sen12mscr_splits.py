"""Which SEN12MS-CR scenes form train, val and test, under the split schemes ``--split_scheme`` names.

- ``official`` (the default): the official test scenes (``data.sen12mscr.TEST_SCENES``), the
  validation scenes UnCRtainTS holds out (``VAL_SCENES``), every other scene train.
- ``uncrtaints``: UnCRtainTS' mono-temporal split (``data/dataLoader.py``, class ``SEN12MSCR``),
  which follows the regions of interest of SEN12MS-CR-TS: the same val and test scenes, and train
  only the 155 scenes its list names (the other scenes are in no split), each scene taken exactly.
- ``uncrtaints_loader``: the same lists as that loader applies them. It keeps a patch when a listed
  ``<season>_s1/s1_<n>`` is a substring of the patch's path, so a listed number also selects every
  scene whose number starts with it: train's ``s1_1`` of spring takes scenes 1, 10-19 and 100-199,
  among them the test scenes 106, 123 and 140 and the validation scene 17. Scenes then fall in
  several splits: the training set the authors' code reads holds 6 of the 10 test scenes (spring
  106, 123, 140; summer 73, 119; fall 139) and 3 of the 10 validation scenes (spring 17, fall 65,
  winter 84).
"""

from __future__ import annotations

SPLIT_SCHEMES = ("official", "uncrtaints", "uncrtaints_loader")

# Scene numbers of UnCRtainTS' lists, by season (facts from its data/dataLoader.py).
UNCRTAINTS_SCENES: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "ROIs1158_spring": (
            "1", "6", "8", "9", "15", "21", "26", "39", "40", "45", "58", "63", "66", "75", "77", "97",
            "100", "101", "109", "110", "113", "115", "117", "119", "120", "121", "124", "126", "128",
            "132", "134", "141", "142", "145", "147",
        ),
        "ROIs1868_summer": (
            "4", "7", "11", "15", "25", "27", "31", "36", "40", "42", "43", "47", "55", "56", "72", "76",
            "86", "87", "89", "90", "93", "95", "100", "101", "102", "113", "114", "115", "120", "121",
            "123", "124", "125", "126", "132", "133", "135", "137", "139", "140", "143", "146", "147",
        ),
        "ROIs1970_fall": (
            "1", "3", "4", "6", "11", "14", "19", "22", "26", "27", "28", "30", "31", "33", "35", "37",
            "39", "40", "41", "42", "57", "64", "71", "77", "81", "82", "83", "85", "88", "91", "93",
            "100", "104", "105", "107", "109", "110", "112", "114", "116", "119", "120", "122", "125",
            "128", "131", "133", "134", "135", "136", "141", "142", "144", "147", "148", "149",
        ),
        "ROIs2017_winter": (
            "8", "21", "25", "42", "47", "49", "55", "59", "61", "62", "64", "68", "75", "81", "94",
            "102", "104", "112", "116", "135", "146",
        ),
    },
    "val": {
        "ROIs1158_spring": ("17",),
        "ROIs1868_summer": ("17", "19", "80", "127"),
        "ROIs1970_fall": ("65",),
        "ROIs2017_winter": ("22", "84", "107", "130"),
    },
    "test": {
        "ROIs1158_spring": ("31", "44", "106", "123", "140"),
        "ROIs1868_summer": ("73", "119"),
        "ROIs1970_fall": ("139",),
        "ROIs2017_winter": ("63", "108"),
    },
}  # fmt: skip


def in_uncrtaints_split(season: str, scene: str, split: str, *, as_loader: bool = False) -> bool:
    """Whether scene ``scene`` (a number string) of ``season`` belongs to UnCRtainTS' ``split``:
    listed exactly, or (``as_loader``) a listed number is a prefix of it, as its loader matches."""
    listed = UNCRTAINTS_SCENES[split].get(season, ())
    if as_loader:
        return any(scene.startswith(number) for number in listed)
    return scene in listed
