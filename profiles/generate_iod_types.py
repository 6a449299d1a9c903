"""Generate ``pipeline/profile/iod_types.json``, the PS3.3 attribute Types by SOP class, from the IOD tables as data.

This is a development tool, not part of the package: the pipeline reads only the
generated JSON. Rebuild it with ``make profiles`` or::

    python profiles/generate_iod_types.py --reference ../shared/reference

PS3.15 E.1.1 resolves the combined action codes of Table E.1-1 (Z/D, X/Z, X/D, X/Z/D,
X/Z/U*) by the attribute's Type in the object's IOD; the table written here gives that
Type for every attribute of every IOD, at every nesting level. Source: the reference's
``ps3.3-iod-attributes-2020.json`` (PS3.3 2020, every macro already expanded into tag
paths). SOP Class UIDs map to IODs by that file's ``sop_classes``, plus the UIDs of
PS3.4 2026d Table B.5-1 (``ps3.4-2026d-sop-classes.json``) that the 2020 list lacks and
whose IOD, by name, is a 2020 IOD.

How the rows become one tree per IOD:

* every attribute row of every module the IOD lists (PS3.3 Annex A), whatever the
  module's usage (M, C or U): the Type an attribute has in its module is the Type a
  present module requires;
* the attributes of the IOD's functional group macros (PS3.3 C.7.6.16), whose paths
  are relative to an item of a Functional Groups Sequence, under both the Shared
  (5200,9229) and the Per-Frame (5200,9230) Functional Groups Sequence;
* one path named by several rows (an attribute in two modules, such as Instance Number
  in General Image and SOP Common) takes the strictest Type: 1, 1C, 2, 2C, 3 in that
  order. A row without a Type ("None", a header row) counts only if no row gives one.

Output (sorted keys, one shared item per line, so a test can regenerate and compare):
``sop_classes`` maps UID -> IOD id; ``iods`` maps IOD id -> index of its top-level item in
``items``; an item maps tag (8 hex digits; ``60XX`` for the repeating overlay groups) to
a node: the Type as a string (``null`` where PS3.3 gives none), or ``[Type, item index]``
for a sequence whose item attributes are listed. Identical items are stored once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "pipeline" / "profile" / "iod_types.json"
IOD_FILE = "ps3.3-iod-attributes-2020.json"
SOP_FILE_2026D = "ps3.4-2026d-sop-classes.json"
FORMAT = "deid-pipeline-iod-types/1"

# Strictest first: a path named by several rows takes the first of these its rows give.
TYPE_ORDER = ("1", "1C", "2", "2C", "3")
NO_TYPE = "None"  # the reference's value for a row without a Type
FUNCTIONAL_GROUPS = ("52009229", "52009230")  # Shared, Per-Frame Functional Groups Sequence
_TAG = re.compile(r"[0-9A-F]{8}|60XX[0-9A-F]{4}")

Path_ = tuple[str, ...]
Item = dict[str, Any]


def sop_classes(reference: dict[str, Any], later: list[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """Return UID -> IOD id, and the UIDs taken from the 2026d list."""
    iod_ids = {row["name"]: row["id"] for row in reference["iods"]}
    mapping = {row["uid"]: iod_ids[row["iod"]] for row in reference["sop_classes"]}
    added = []
    for row in later:
        name = row["iod"].removesuffix(" IOD")
        if row["uid"] not in mapping and name in iod_ids:
            mapping[row["uid"]] = iod_ids[name]
            added.append(row["uid"])
    return mapping, sorted(added)


def _stricter(old: str | None, new: str) -> str | None:
    if new == NO_TYPE:
        return old
    if new not in TYPE_ORDER:
        raise ValueError(f"unknown Type {new!r}")
    if old is None or TYPE_ORDER.index(new) < TYPE_ORDER.index(old):
        return new
    return old


Rows = list[tuple[Path_, str]]


class Reference:
    """The PS3.3 tables of the reference file, with module and macro rows grouped by owner."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.modules: dict[str, Rows] = {}
        for row in data["module_attributes"]:
            self.modules.setdefault(row["module"], []).append((tuple(row["path"]), row["type"]))
        self.macros: dict[str, Rows] = {}
        for row in data["macro_attributes"]:
            self.macros.setdefault(row["macro"], []).append((tuple(row["path"]), row["type"]))

    def iod_rows(self, iod: str) -> Iterable[tuple[Path_, str]]:
        """Yield (tag path from the top of the dataset, Type) for every attribute row of one IOD."""
        for row in self.data["iod_modules"]:
            if row["iod"] == iod:
                yield from self.modules[row["module"]]
        for row in self.data["iod_functional_group_macros"]:
            if row["iod"] == iod:
                for path, kind in self.macros[row["macro"]]:
                    for group in FUNCTIONAL_GROUPS:
                        yield (group, *path), kind


def merged_types(rows: Iterable[tuple[Path_, str]]) -> dict[Path_, str | None]:
    """Return path -> strictest Type over its rows (None where no row gives a Type)."""
    types: dict[Path_, str | None] = {}
    for path, kind in rows:
        bad = [tag for tag in path if not _TAG.fullmatch(tag)]
        if bad:
            raise ValueError(f"unexpected tag {bad[0]!r} in a PS3.3 path")
        types[path] = _stricter(types.get(path), kind)
    orphans = [path for path in types if len(path) > 1 and path[:-1] not in types]
    if orphans:
        raise ValueError(f"path {orphans[0]} lies in a sequence the IOD does not list")
    return types


class Interner:
    """Stores each distinct item once; an item refers to its sequences' items by index."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self._index: dict[str, int] = {}

    def intern(self, item: Item) -> int:
        key = json.dumps(item, sort_keys=True, separators=(",", ":"))
        if key not in self._index:
            self._index[key] = len(self.items)
            self.items.append(item)
        return self._index[key]


class Tree:
    """One IOD's paths grouped by parent, so that interning visits each path once."""

    def __init__(self, types: dict[Path_, str | None]) -> None:
        self.types = types
        self.children: dict[Path_, list[Path_]] = {}
        for path in types:
            self.children.setdefault(path[:-1], []).append(path)

    def add_to(self, interner: Interner, prefix: Path_ = ()) -> int:
        """Intern the item below `prefix` (the dataset when empty), its sequences' items first."""
        item: Item = {}
        for path in sorted(self.children.get(prefix, ())):
            kind = self.types[path]
            item[path[-1]] = [kind, self.add_to(interner, path)] if path in self.children else kind
        return interner.intern(item)


def build(reference_dir: Path) -> tuple[str, dict[str, int]]:
    """Return the JSON text and a few counts for the summary line."""
    iod_bytes = (reference_dir / IOD_FILE).read_bytes()
    sop_bytes = (reference_dir / SOP_FILE_2026D).read_bytes()
    reference = Reference(json.loads(iod_bytes))
    later = json.loads(sop_bytes)
    mapping, added = sop_classes(reference.data, later["rows"])

    interner = Interner()
    roots: dict[str, int] = {}
    paths = 0
    for iod in sorted(set(mapping.values())):
        types = merged_types(reference.iod_rows(iod))
        if any(len(p) > 1 and p[0] in FUNCTIONAL_GROUPS for p in types) and not all(
            (group,) in types for group in FUNCTIONAL_GROUPS
        ):
            raise ValueError(f"{iod}: functional group macros without both Functional Groups Sequences")
        roots[iod] = Tree(types).add_to(interner)
        paths += len(types)

    document = {
        "acknowledgement": f"{reference.data['acknowledgement']}; {later['acknowledgement']}",
        "edition": reference.data["edition"],
        "format": FORMAT,
        "generator": "profiles/generate_iod_types.py",
        "iods": roots,
        "items": interner.items,
        "sop_classes": dict(sorted(mapping.items())),
        "sop_classes_from_2026d": added,
        "sources": {
            IOD_FILE: hashlib.sha256(iod_bytes).hexdigest(),
            SOP_FILE_2026D: hashlib.sha256(sop_bytes).hexdigest(),
        },
    }
    counts = {"sop_classes": len(mapping), "iods": len(roots), "paths": paths, "items": len(interner.items)}
    return render(document), counts


def render(document: dict[str, Any]) -> str:
    """Compact JSON with sorted keys; the shared items one per line."""
    parts = []
    for key in sorted(document):
        value = document[key]
        if key == "items":
            lines = ",\n".join(json.dumps(item, sort_keys=True, separators=(",", ":")) for item in value)
            parts.append(f'"items":[\n{lines}\n]')
        else:
            parts.append(f"{json.dumps(key)}:{json.dumps(value, sort_keys=True, separators=(',', ':'))}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=HERE.parent.parent / "shared" / "reference")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="fail if the committed table differs")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    text, counts = build(args.reference)
    seconds = time.perf_counter() - started
    if args.check:
        if not args.out.exists() or args.out.read_text(encoding="utf-8") != text:
            print(f"stale IOD table: {args.out}", file=sys.stderr)
            return 1
    else:
        args.out.write_text(text, encoding="utf-8")
    summary = ", ".join(f"{value} {key}" for key, value in counts.items())
    print(f"{'checked' if args.check else 'wrote'} {args.out} ({len(text.encode())} bytes: {summary}; {seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
