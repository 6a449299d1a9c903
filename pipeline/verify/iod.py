"""What an object's IOD requires, read by the verifier on its own from the shipped PS3.3 table.

The verifier checks that an output keeps what its IOD requires (PS3.5 7.4: Type 1 present
with a value, Type 2 present, 1C and 2C the same when their condition holds; Type 3
optional). It reads the same data file as the scrubber (``pipeline/profile/iod_types.json``,
generated from the PS3.3 IOD tables) but none of the scrubber's or the profile's code, so a
bug in that code is not hidden here by the same bug.

Paths are tags from the top of the dataset down through sequences. Overlay groups
(6000-601E, even) are one entry, keyed here by group 6000. A SOP class, sequence or
attribute the table does not list is unknown (``None``), never "not required".
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from typing import Any

from pipeline.errors import VerificationError

_FORMAT = "deid-pipeline-iod-types/1"


class IodType(StrEnum):
    """Data element Type of an attribute in its IOD (PS3.5 7.4)."""

    TYPE_1 = "1"
    TYPE_1C = "1C"
    TYPE_2 = "2"
    TYPE_2C = "2C"
    TYPE_3 = "3"


REQUIRED = frozenset({IodType.TYPE_1, IodType.TYPE_1C, IodType.TYPE_2, IodType.TYPE_2C})


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    # Located as data under the installed "pipeline" package; the profile package is not imported.
    source = resources.files("pipeline") / "profile" / "iod_types.json"
    document: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    if document.get("format") != _FORMAT:
        raise VerificationError("the shipped IOD table is not in the expected format")
    return document


def _key(tag: int) -> str:
    text = f"{tag:08X}"
    group = tag >> 16
    if 0x6000 <= group <= 0x601E and not group & 1:
        return "60XX" + text[4:]
    return text


def _tag(key: str) -> int:
    return int(key.replace("XX", "00"), 16)


_CONTENT_SEQUENCE = 0x0040A730  # SR Document Content Macro: recursive, listed once (PS3.3 C.17.3)


def _item_at(sop_class_uid: str, path: tuple[int, ...]) -> dict[str, Any] | None:
    item = _listed_item(sop_class_uid, path)
    if item is None and path.count(_CONTENT_SEQUENCE) > 1:
        flat: list[int] = []
        for tag in path:
            if not (tag == _CONTENT_SEQUENCE and flat and flat[-1] == tag):
                flat.append(tag)
        item = _listed_item(sop_class_uid, tuple(flat))
    return item


def _listed_item(sop_class_uid: str, path: tuple[int, ...]) -> dict[str, Any] | None:
    document = _document()
    iod = document["sop_classes"].get(sop_class_uid)
    if iod is None:
        return None
    item: dict[str, Any] = document["items"][document["iods"][iod]]
    for tag in path:
        node = item.get(_key(tag))
        if not isinstance(node, list):  # unknown, or an attribute without listed items
            return None
        item = document["items"][node[1]]
    return item


def _type(node: Any) -> IodType | None:
    kind = node[0] if isinstance(node, list) else node
    return None if kind is None else IodType(kind)


def is_known(sop_class_uid: str) -> bool:
    """Whether the table has the IOD of this SOP class."""
    return sop_class_uid in _document()["sop_classes"]


def type_at(sop_class_uid: str, path: tuple[int, ...]) -> IodType | None:
    """Return the Type of the attribute at `path` in the SOP class's IOD; None when unknown."""
    if not path:
        return None
    item = _item_at(sop_class_uid, path[:-1])
    if item is None or _key(path[-1]) not in item:
        return None
    return _type(item[_key(path[-1])])


@lru_cache(maxsize=8192)
def attributes_at(sop_class_uid: str, path: tuple[int, ...] = ()) -> dict[int, IodType | None] | None:
    """Return tag -> Type of every attribute the IOD lists in the dataset (empty path) or in the
    items of the sequence at `path`; None when the SOP class or the sequence's items are unknown.
    Cached (one look-up per SOP class and path in a process): do not change what it returns.
    Overlay attributes are listed once, in group 6000 (`listed_tag`)."""
    item = _item_at(sop_class_uid, path)
    if item is None:
        return None
    return {_tag(key): _type(node) for key, node in item.items()}


def listed_tag(tag: int) -> int:
    """`tag` as `attributes_at` lists it: overlay groups (6000-601E, even) as group 6000."""
    group = tag >> 16
    return tag & 0x6000FFFF if 0x6000 <= group <= 0x601E and not group & 1 else tag


def required_at(sop_class_uid: str, path: tuple[int, ...] = ()) -> dict[int, IodType] | None:
    """Return tag -> Type of the attributes an object must keep there (Type 1, 1C, 2, 2C)."""
    listed = attributes_at(sop_class_uid, path)
    if listed is None:
        return None
    return {tag: kind for tag, kind in listed.items() if kind is not None and kind in REQUIRED}
