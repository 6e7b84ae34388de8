"""Class → group mappings for MOS's group softmax: built-in, from a user file, or ImageNet's.

A :class:`Grouping` lists each group's classes in within-group order; in the group-softmax
head, group ``g`` owns ``n_g + 1`` logits with "others" at index 0 and its ``j``-th class at
index ``j + 1`` (synthesis_and_mos.md §3.3–§3.4).

Reference: Huang & Li, "MOS: Towards Scaling Out-of-distribution Detection for Large Semantic
Space", CVPR 2021, arXiv:2105.01879, Sec. 3.1 and 4.1 (the 8-group taxonomy).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from oodlab.errors import ConfigError, DataError


@dataclass(frozen=True)
class Grouping:
    """Groups of class ids (each class in exactly one group) and the groups' names."""

    groups: tuple[tuple[int, ...], ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        flat = [c for g in self.groups for c in g]
        if not self.groups or any(not g for g in self.groups):
            raise ConfigError(f"every group needs at least one class, got {self.groups}")
        if sorted(flat) != list(range(len(flat))):
            raise ConfigError(
                f"the groups must hold each class 0..{len(flat) - 1} exactly once, got "
                f"{sorted(flat)[:20]}; check the grouping for repeated or missing classes"
            )
        if len(self.names) != len(self.groups):
            raise ConfigError(f"{len(self.groups)} groups but {len(self.names)} names")

    @property
    def num_classes(self) -> int:
        return sum(len(g) for g in self.groups)

    @property
    def group_sizes(self) -> list[int]:
        """Logits per group, "others" included: ``n_g + 1``."""
        return [len(g) + 1 for g in self.groups]

    @property
    def class_order(self) -> list[int]:
        """Class ids group by group, in within-group order (flat MOS prediction → class id)."""
        return [c for g in self.groups for c in g]

    def check(self, num_classes: int) -> Grouping:
        if self.num_classes != num_classes:
            raise ConfigError(
                f"the grouping covers {self.num_classes} classes but the data has "
                f"{num_classes}; give a grouping of classes 0..{num_classes - 1}"
            )
        return self


def from_group_ids(group_of_class: Sequence[int], names: Sequence[str] = ()) -> Grouping:
    """A grouping from ``group_of_class[c]`` = the group of class ``c`` (ascending ids inside)."""
    ids = sorted(set(group_of_class))
    groups = tuple(tuple(c for c, g in enumerate(group_of_class) if g == gid) for gid in ids)
    return Grouping(groups, tuple(names) or tuple(f"group{g}" for g in ids))


#: Fashion-MNIST (0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
#: 7 Sneaker, 8 Bag, 9 Ankle boot) by garment type: upper-body garments, trousers and dresses,
#: footwear, and bags (a one-class group).
FASHION_MNIST = Grouping(
    groups=((0, 2, 4, 6), (1, 3), (5, 7, 9), (8,)),
    names=("tops", "bottoms_and_dresses", "footwear", "bags"),
)
BUILT_IN = {"fashion_mnist": FASHION_MNIST}

#: ImageNet-1k group sizes of MOS's taxonomy (animal, artifact, geological formation, fungus,
#: misc, natural object, person, plant).
IMAGENET_GROUP_SIZES = (398, 521, 9, 7, 52, 8, 3, 2)
IMAGENET_GROUP_NAMES = (
    "animal",
    "artifact",
    "geological_formation",
    "fungus",
    "misc",
    "natural_object",
    "person",
    "plant",
)
_WNID = re.compile(r"n\d{8}")


def load_grouping(path: str | Path, num_classes: int | None = None) -> Grouping:
    """A grouping from a file the user wrote, or a built-in name (``fashion_mnist``).

    Formats:
        * JSON object ``{"group name": [class ids in within-group order], ...}`` (groups in
          file order), or a JSON list ``[group id of class 0, of class 1, ...]``;
        * text, one class per line: ``CLASS_ID GROUP`` (``#`` starts a comment); groups are
          ordered by first appearance, classes inside a group by line order;
        * MOS's ImageNet list (lines ``PATH GROUP WITHIN``): :func:`load_imagenet_taxonomy`
          with class ids in sorted-wnid order (torchvision's ``ImageFolder`` order).
    """
    if str(path) in BUILT_IN:
        grouping = BUILT_IN[str(path)]
        return grouping if num_classes is None else grouping.check(num_classes)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"grouping file {path} does not exist; give a JSON/text file mapping classes to "
            f"groups, or one of {sorted(BUILT_IN)}"
        )
    text = path.read_text()
    first = next((ln.split() for ln in text.splitlines() if ln.split()), [])
    if len(first) == 3 and _WNID.search(first[0]):
        grouping = load_imagenet_taxonomy(path)
    elif path.suffix == ".json":
        grouping = _parse_json(text, path)
    else:
        grouping = _parse_text(text, path)
    return grouping if num_classes is None else grouping.check(num_classes)


def _parse_json(text: str, path: Path) -> Grouping:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"grouping file {path} is not valid JSON: {exc.msg}") from None
    if isinstance(data, list) and all(isinstance(g, int) for g in data):
        return from_group_ids(data)
    if isinstance(data, dict) and all(
        isinstance(v, list) and all(isinstance(c, int) for c in v) for v in data.values()
    ):
        return Grouping(tuple(tuple(v) for v in data.values()), tuple(str(k) for k in data))
    raise ConfigError(
        f"grouping file {path}: expected {{name: [class ids]}} or [group id per class]"
    )


def _parse_text(text: str, path: Path) -> Grouping:
    members: dict[str, list[int]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        if len(line) != 2 or not line[0].lstrip("-").isdigit():
            raise ConfigError(f"{path}:{number}: expected 'CLASS_ID GROUP', got {raw.strip()!r}")
        members.setdefault(line[1], []).append(int(line[0]))
    return Grouping(tuple(tuple(v) for v in members.values()), tuple(members))


def load_imagenet_taxonomy(path: str | Path, wnids: Sequence[str] | None = None) -> Grouping:
    """MOS's 8-group ImageNet-1k taxonomy from a list file you have (nothing is downloaded).

    ``path`` is one of the official ``data_lists/imagenet2012_group_softmax_{train,val}_list
    .txt`` of ``deeplearning-wisc/large_scale_ood``: lines ``PATH GROUP WITHIN`` where ``PATH``
    contains the class's WordNet id (``n01440764``), ``GROUP`` is 0..7 and ``WITHIN`` is the
    1-based index inside the group (0 = others). A file of lines ``WNID GROUP WITHIN`` works too.

    Args:
        path: the list file.
        wnids: the WordNet ids of your class ids 0..999; ``None``: the file's wnids sorted
            (torchvision's folder order). The official lists' flat labels are not in that
            order (synthesis_and_mos.md §3.10.5); they are not read.

    Returns:
        The grouping over your class ids, groups in the file's order with its within-group
        order; checked against the paper's group sizes [398, 521, 9, 7, 52, 8, 3, 2].
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"taxonomy list {path} does not exist; see load_imagenet_taxonomy")
    place: dict[str, tuple[int, int]] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        found = _WNID.search(parts[0])
        if len(parts) < 3 or found is None or not (parts[-2] + parts[-1]).isdigit():
            raise DataError(f"{path}:{number}: expected 'PATH GROUP WITHIN', got {raw.strip()!r}")
        entry = (int(parts[-2]), int(parts[-1]))
        if place.setdefault(found.group(), entry) != entry:
            raise DataError(f"{path}:{number}: class {found.group()} is in two places")
    wnids = sorted(place) if wnids is None else wnids
    class_of = {w: i for i, w in enumerate(wnids)}
    missing = [w for w in wnids if w not in place]
    if missing or len(class_of) != len(wnids):
        raise DataError(
            f"{path} places {len(place)} classes; {len(missing)} of your {len(wnids)} wnids are "
            f"missing (e.g. {missing[:1]}) or repeated; pass the full ImageNet-1k list"
        )
    groups: list[list[tuple[int, int]]] = [[] for _ in IMAGENET_GROUP_SIZES]
    for wnid, (group, within) in place.items():
        if wnid in class_of and 0 <= group < len(groups):
            groups[group].append((within, class_of[wnid]))
    sizes = [len(g) for g in groups]
    if tuple(sizes) != IMAGENET_GROUP_SIZES:
        raise DataError(
            f"{path} gives group sizes {sizes}, expected MOS's {list(IMAGENET_GROUP_SIZES)}"
        )
    return Grouping(tuple(tuple(c for _, c in sorted(g)) for g in groups), IMAGENET_GROUP_NAMES)


__all__ = [
    "BUILT_IN",
    "FASHION_MNIST",
    "IMAGENET_GROUP_NAMES",
    "IMAGENET_GROUP_SIZES",
    "Grouping",
    "from_group_ids",
    "load_grouping",
    "load_imagenet_taxonomy",
]
