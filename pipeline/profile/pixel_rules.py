"""Pixel rules: deid ``%filter`` recipes, linted strictly, evaluated on a header by deid's engine.

A pixel recipe (``pipeline/recipes/pixels.deid``) holds only ``%filter`` sections, each at most once:

| list        | a LABEL block that matches the header means                                       |
|-------------|-----------------------------------------------------------------------------------|
| graylist    | with coordinates: burned-in text is there; blank those regions (Clean Pixel Data) |
|             | without coordinates: burned-in text is likely, where is unknown (a flag)          |
| whitelist   | the image is known to carry no burned-in text: the graylist flags are waived      |
|             | (never BurnedInAnnotation YES, never a blacklist match, never coordinates)        |
| blacklist   | never published, whatever cleaning is asked for                                   |

Lines of a LABEL block, as deid reads them: filter members (``contains``, ``notcontains``,
``equals``, ``notequals``, ``missing``, ``present``, ``empty``; a line starting ``+`` is ANDed,
``||`` joins alternatives inside one line) and coordinate lines (``coordinates x0,y0,x1,y1``,
``ctpcoordinates x,y,width,height``, their ``keep`` forms, ``all``, and
``from:SequenceOfUltrasoundRegions``). deid ANDs every line of a block: a line that starts with
``||`` would read as an alternative but is evaluated as AND, so the lint refuses it.

Evaluation is deid's own (``deid.dicom.pixels.detect.has_burned_pixels``) on a copy of the
parsed recipe, since deid rewrites ``from:`` coordinates in place. Within one matched block the
keep regions are cut out of that block's blank regions; across blocks the blank regions add up
(deid's cleaner applies masks in order, so a later keep could re-open an earlier blank region).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset

from pipeline.dicom.dictionary import dictionary_vr
from pipeline.dicom.stored import as_written
from pipeline.errors import ProfileError
from pipeline.profile.recipe import read_recipe

log = logging.getLogger(__name__)

FILTER_ACTIONS = ("contains", "notcontains", "equals", "notequals", "missing", "present", "empty")
_VALUE_ACTIONS = frozenset({"contains", "notcontains", "equals", "notequals"})
_COORDINATE_WORDS = {"coordinates": (False, False), "keepcoordinates": (True, False),
                     "ctpcoordinates": (False, True), "ctpkeepcoordinates": (True, True)}
# The one field deid can read regions from (deid.dicom.pixels.detect.extract_coordinates).
FROM_FIELD = "from:SequenceOfUltrasoundRegions"
WHOLE_IMAGE = "all"
_JOIN = re.compile(r"\s+(\|\||\+)\s+(?=(?:" + "|".join(FILTER_ACTIONS) + r") )")
_NUMBERS = re.compile(r"\d+,\d+,\d+,\d+")
_LARGE = 1 << 30  # "all": clipped to the image when applied


class FilterList(StrEnum):
    """The deid filter lists a pixel recipe may hold."""

    WHITELIST = "whitelist"
    GRAYLIST = "graylist"
    BLACKLIST = "blacklist"


@dataclass(frozen=True, slots=True)
class Label:
    """One checked LABEL block: its list, name, where it is, and its coordinates as deid holds
    them ("x0,y0,x1,y1", "all" or "from:SequenceOfUltrasoundRegions")."""

    filter_list: FilterList
    name: str
    source: str
    members: tuple[tuple[tuple[str, str, str], ...], ...]  # per line: (action, field, value)
    blank: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PixelRules:
    """A checked pixel recipe: its text (deid's objects are rebuilt from it in each process)."""

    name: str
    sha256: str
    text: str
    labels: tuple[Label, ...]


@dataclass(frozen=True, slots=True)
class Region:
    """A half-open rectangle of pixels, columns x0..x1-1 and rows y0..y1-1."""

    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True, slots=True)
class Match:
    """A LABEL block that matched a header, with its regions resolved for that header."""

    filter_list: FilterList
    label: str
    blank: tuple[Region, ...]
    keep: tuple[Region, ...]

    @property
    def locates_text(self) -> bool:
        """True for a graylist block that says where the text is (it cleans the image)."""
        return self.filter_list is FilterList.GRAYLIST and bool(self.blank)


# ----------------------------------------------------------------------------- the lint
def lint_filters(text: str, name: str) -> tuple[Label, ...]:
    """Check every line of a pixel recipe; return its LABEL blocks or raise `ProfileError`."""
    labels: list[Label] = []
    seen: set[FilterList] = set()
    fmt_seen = False
    current: FilterList | None = None
    block: dict[str, Any] | None = None

    def close() -> None:
        if block is not None:
            labels.append(_finish(block))

    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{name}:{number}"
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word = line.split()[0]
        if word.upper() == "FORMAT":
            if line.split() != ["FORMAT", "dicom"] or fmt_seen or labels or block is not None:
                raise ProfileError(f"{where}: expected a single 'FORMAT dicom' first")
            fmt_seen = True
            continue
        if not fmt_seen:
            raise ProfileError(f"{where}: 'FORMAT dicom' must come first")
        if line.startswith("%"):
            close()
            block = None
            current = _section(line, where, seen)
            continue
        if current is None:
            raise ProfileError(f"{where}: a line outside a %filter section")
        if word == "LABEL":
            close()
            label = line[len("LABEL"):].split("#", 1)[0].strip()
            if not label:
                raise ProfileError(f"{where}: LABEL needs a name")
            block = {"list": current, "name": label, "source": where, "members": [], "blank": [], "keep": []}
            continue
        if block is None:
            raise ProfileError(f"{where}: a filter line before any LABEL")
        if "#" in line:
            raise ProfileError(f"{where}: a comment must be on a line of its own (or after a LABEL)")
        if word in _COORDINATE_WORDS:
            keep, ctp = _COORDINATE_WORDS[word]
            block["keep" if keep else "blank"].append(_coordinate(line[len(word):].strip(), ctp, where))
        else:
            block["members"].append(_member(line, where))
    close()
    if not fmt_seen:
        raise ProfileError(f"{name}: no 'FORMAT dicom' line")
    return tuple(labels)


def _section(line: str, where: str, seen: set[FilterList]) -> FilterList:
    words = line.split()
    if words[0] != "%filter" or len(words) != 2:
        raise ProfileError(f"{where}: section {words[0]!r} is not supported in a pixel recipe (only %filter NAME)")
    try:
        chosen = FilterList(words[1])
    except ValueError:
        raise ProfileError(f"{where}: unknown filter list {words[1]!r}; known: "
                           + ", ".join(f.value for f in FilterList)) from None
    if chosen in seen:
        raise ProfileError(f"{where}: %filter {chosen} appears twice; keep each list in one section")
    seen.add(chosen)
    return chosen


def _member(line: str, where: str) -> tuple[tuple[str, str, str], ...]:
    if line.startswith("||"):
        raise ProfileError(f"{where}: deid evaluates a line that starts with '||' as AND; "
                           "write the alternatives on one line, joined by ' || '")
    body = line[1:].strip() if line.startswith("+") else line
    parts = _JOIN.split(body)
    checks: list[tuple[str, str, str]] = []
    for part in parts[0::2]:
        words = part.split(" ", 2)
        action = words[0]
        if action not in FILTER_ACTIONS:
            raise ProfileError(f"{where}: unknown filter {action!r}; known: {', '.join(FILTER_ACTIONS)}")
        if len(words) < 2 or not words[1]:
            raise ProfileError(f"{where}: {action} needs a field")
        field = words[1]
        _check_field(field, where)
        value = words[2].strip() if len(words) > 2 else ""
        if action in _VALUE_ACTIONS and not value:
            raise ProfileError(f"{where}: {action} needs a field and a value")
        if action not in _VALUE_ACTIONS and value:
            raise ProfileError(f"{where}: {action} takes a field and nothing else")
        if action in ("contains", "notcontains"):
            try:
                re.compile(value.lower())
            except re.error:
                raise ProfileError(f"{where}: {value!r} is not a valid regular expression") from None
        if action in ("equals", "notequals") and "|" in value:
            raise ProfileError(f"{where}: equals compares literally; for alternatives use contains ^(a|b)$")
        checks.append((action, field, value))
    return tuple(checks)


def _check_field(field: str, where: str) -> None:
    if re.fullmatch(r"0x[0-9A-Fa-f]{8}", field):
        tag = int(field, 16)
    else:
        found = tag_for_keyword(field)
        if found is None:
            raise ProfileError(f"{where}: unknown DICOM keyword {field!r}")
        tag = found
    if tag >> 16 == 0x0002:
        raise ProfileError(f"{where}: {field} is file meta; deid's filters read the dataset only")


def _coordinate(spec: str, ctp: bool, where: str) -> str:
    if spec == WHOLE_IMAGE:
        return spec
    if spec == FROM_FIELD and not ctp:
        return spec
    if not _NUMBERS.fullmatch(spec):
        raise ProfileError(f"{where}: coordinates are four integers a,b,c,d, 'all' or {FROM_FIELD}")
    a, b, c, d = (int(v) for v in spec.split(","))
    if ctp:
        if c <= 0 or d <= 0:
            raise ProfileError(f"{where}: ctpcoordinates are x,y,width,height with a positive width and height")
        c, d = a + c, b + d
    elif c <= a or d <= b:
        raise ProfileError(f"{where}: coordinates are x0,y0,x1,y1 with x1 > x0 and y1 > y0")
    return f"{a},{b},{c},{d}"


def _finish(block: dict[str, Any]) -> Label:
    where = block["source"]
    if not block["members"]:
        raise ProfileError(f"{where}: LABEL {block['name']!r} has no filter line (it would match every image)")
    if block["list"] is not FilterList.GRAYLIST and (block["blank"] or block["keep"]):
        raise ProfileError(f"{where}: only graylist blocks carry coordinates")
    if block["keep"] and not block["blank"]:
        raise ProfileError(f"{where}: keepcoordinates need coordinates to cut them out of")
    return Label(block["list"], block["name"], where, tuple(block["members"]),
                 tuple(block["blank"]), tuple(block["keep"]))


# ----------------------------------------------------------------------------- loading
def load_pixel_rules(path: Path) -> PixelRules:
    """Lint a pixel recipe strictly, load it with deid and check deid read the same blocks."""
    name = path.name
    data, text = read_recipe(path)
    labels = lint_filters(text, name)
    rules = PixelRules(name=name, sha256=hashlib.sha256(data).hexdigest(), text=text, labels=labels)
    _compare_with_deid(rules)
    log.debug("loaded pixel recipe %s with %d labels", name, len(labels))
    return rules


def _compare_with_deid(rules: PixelRules) -> None:
    theirs = [(FilterList(section), item) for section, items in (_deid_filters(rules.text) or {}).items()
              for item in items]
    if len(theirs) != len(rules.labels):
        raise ProfileError(f"{rules.name}: deid read {len(theirs)} LABEL blocks, the lint {len(rules.labels)}")
    for ours, (section, item) in zip(rules.labels, theirs, strict=True):
        members = tuple(
            tuple(zip(group["action"], group["field"], group["value"] + [""] * (len(group["action"])
                                                                               - len(group["value"])), strict=True))
            for group in item["filters"]
        )
        blank = tuple(c for keep, c in item["coordinates"] if not keep)
        keep = tuple(c for keep, c in item["coordinates"] if keep)
        if (section, members, blank, keep) != (ours.filter_list, ours.members, ours.blank, ours.keep):
            raise ProfileError(f"{ours.source}: deid read LABEL {ours.name!r} differently")


# ----------------------------------------------------------------------------- evaluation
def _deid_recipe_class() -> Any:
    """deid's recipe class: deid.config alone (~20 ms), enough to read the recipe when a plan is
    compiled; deid.dicom (~0.45 s: it imports matplotlib) only where a header is evaluated."""
    from deid.config import DeidRecipe
    from deid.logger import bot

    bot.level = 0  # deid prints every step otherwise
    return DeidRecipe


def _deid_modules() -> tuple[Any, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deid imports pydicom's deprecated pixel_data_handlers
        from deid.dicom.pixels.detect import has_burned_pixels
    return _deid_recipe_class(), has_burned_pixels


@functools.lru_cache(maxsize=8)
def _deid_recipe(text: str) -> Any:
    """deid's recipe object for a pixel recipe's text, built once per process."""
    recipe_class = _deid_recipe_class()
    handle, name = tempfile.mkstemp(prefix="pixels.", suffix=".deid")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        return recipe_class(name, base=False)
    finally:
        os.unlink(name)


def _deid_filters(text: str) -> dict[str, list[dict[str, Any]]] | None:
    filters: dict[str, list[dict[str, Any]]] | None = _deid_recipe(text).get_filters()
    return filters


def evaluate(rules: PixelRules, ds: Dataset) -> tuple[Match, ...]:
    """Every LABEL block of `rules` that matches the header of `ds`, in recipe order.

    deid's filters read only the fields the rules name (and Rows, Columns and the `from:`
    sequences of coordinates), so the result is cached by those fields' values: the slices of a
    series are judged once."""
    if not rules.labels:
        return ()
    return _evaluate_cached(rules, _signature(_fields_read(rules), ds), ds)


_CHARACTER_SET = 0x00080005
_FIELDS: dict[str, tuple[tuple[str, int | None], ...]] = {}  # rules' sha256 -> (keyword, tag) read


def _fields_read(rules: PixelRules) -> tuple[tuple[str, int | None], ...]:
    """The attributes deid reads for `rules`, with their tags; computed once per process."""
    found = _FIELDS.get(rules.sha256)
    if found is None:
        names = {"Rows", "Columns", "NumberOfFrames"}
        for label in rules.labels:
            for line in label.members:
                names.update(field for _, field, _ in line)
            for spec in label.blank + label.keep:
                names.update(re.findall(r"from:(\w+)", spec))
        found = tuple((name, tag_for_keyword(name)) for name in sorted(names))
        _FIELDS[rules.sha256] = found
    return found


def _signature(fields: tuple[tuple[str, int | None], ...], ds: Dataset) -> tuple[object, ...]:
    """What deid's verdict on `ds` depends on: each field's stored VR and bytes while undecoded
    (with the encoding and character set they decode by), else its decoded element's repr.
    Cheaper than the repr of every field, and it needs no keyword look-up."""
    held: dict[int, object] = ds._dict  # type: ignore[assignment]  # `ds.get_item`, without its Tag() per field
    values: list[object] = [tuple(ds.original_encoding), _stored(ds, held.get(_CHARACTER_SET), _CHARACTER_SET)]
    for name, tag in fields:
        if tag is None:
            values.append(repr(ds.get(name)))
        else:
            stored = held.get(tag)
            values.append(None if stored is None else _stored(ds, stored, tag))
    return tuple(values)


def _stored(ds: Dataset, stored: object, tag: int) -> object:
    """The field's stored VR and bytes, or its decoded value's repr. A stored value pydicom
    would not write back as stored is decoded in place, as deid would leave it (the output's
    bytes are then those of the decoded value, as ever)."""
    if stored is None:
        return None
    if isinstance(stored, RawDataElement) and isinstance(stored.value, bytes):
        if not as_written(stored, dictionary_vr(tag) if stored.VR is None else stored.VR, ds):
            ds[tag]
        return (stored.VR, stored.value)
    return repr(stored.value)  # type: ignore[attr-defined]


_CACHE: dict[tuple[str, tuple[object, ...]], tuple[Match, ...]] = {}
_CACHE_SIZE = 1024


def _evaluate_cached(rules: PixelRules, signature: tuple[object, ...], ds: Dataset) -> tuple[Match, ...]:
    key = (rules.sha256, signature)
    found = _CACHE.get(key)
    if found is None:
        found = _evaluate(rules, ds)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()  # bounded: memory stays flat over millions of files
        _CACHE[key] = found
    return found


def _evaluate(rules: PixelRules, ds: Dataset) -> tuple[Match, ...]:
    _, has_burned_pixels = _deid_modules()
    recipe = _fresh(_deid_recipe(rules.text))
    order = {id(item["coordinates"]): index
             for index, item in enumerate(i for items in recipe.get_filters().values() for i in items)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warnings may quote values
        result = has_burned_pixels(_file_dataset(ds), force=True, deid=recipe)
    matches: list[Match] = []
    for found in result["results"]:
        label = rules.labels[order[id(found["coordinates"])]]
        blank: list[Region] = []
        keep: list[Region] = []
        for is_keep, spec in found["coordinates"]:
            specs = spec if isinstance(spec, list) else [spec]
            (keep if is_keep else blank).extend(_region(str(s)) for s in specs)
        matches.append(Match(label.filter_list, label.name, tuple(blank), tuple(keep)))
    return tuple(matches)


def _fresh(recipe: Any) -> Any:
    """A copy of deid's recipe whose coordinate lists deid may rewrite (``from:``) freely."""
    fresh = copy.copy(recipe)
    fresh.deid = dict(recipe.deid)
    fresh.deid["filter"] = {
        section: [{**item, "coordinates": [list(pair) for pair in item["coordinates"]]} for item in items]
        for section, items in recipe.deid["filter"].items()
    }
    return fresh


def _file_dataset(ds: Dataset) -> FileDataset:
    """deid reads a FileDataset as is and anything else as a path: wrap a plain Dataset."""
    if isinstance(ds, FileDataset):
        return ds
    return FileDataset("", ds, preamble=b"\x00" * 128, file_meta=getattr(ds, "file_meta", None))


def _region(spec: str) -> Region:
    if spec == WHOLE_IMAGE:
        return Region(0, 0, _LARGE, _LARGE)
    x0, y0, x1, y1 = (int(float(v)) for v in spec.split(","))
    return Region(max(x0, 0), max(y0, 0), max(x1, 0), max(y1, 0))
