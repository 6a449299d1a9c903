"""Recipes: strict lint of deid recipe text, then deid's own parser. The only importer of deid.

deid parses leniently (an unknown line is skipped with a warning, some errors exit the
process). The pipeline first checks every line itself and raises a `ProfileError` naming
the file and line, then loads the text with deid and checks that deid read the same rules.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydicom.datadict import tag_for_keyword

from pipeline.errors import ProfileError

log = logging.getLogger(__name__)


class Verb(StrEnum):
    """deid header actions the pipeline accepts."""

    KEEP = "KEEP"
    REMOVE = "REMOVE"
    BLANK = "BLANK"
    REPLACE = "REPLACE"
    ADD = "ADD"


# Functions a recipe may name in `REPLACE field func:NAME`, each a PS3.15 action code.
FUNCTIONS: dict[str, str] = {
    "dummy": "D",
    "uid": "U",
    "clean": "C",
    "blank_or_dummy": "Z/D",
    "remove_or_blank": "X/Z",
    "remove_or_dummy": "X/D",
    "remove_blank_or_dummy": "X/Z/D",
    "remove_blank_or_uids": "X/Z/U*",
    "shift_date": "C (modified dates)",
    "patient_id": "D (pseudonym)",
    "patient_name": "D (pseudonym)",
}

_TAG = re.compile(r"\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)")
_PRIVATE = re.compile(r'\(([0-9A-Fa-f]{4}),"([^"]+)",([0-9A-Fa-f]{2})\)')
_TAG_PATTERN = re.compile(r"contains:(\^\\\(\S+)")
# deid's own splitting: spaces separate words except inside quotes.
_WORDS = re.compile(r"""(?:[^\s"']+|"(?:\\.|[^"])*"|'(?:\\.|[^'])*')+""")


@dataclass(frozen=True, slots=True)
class Field:
    """What a rule applies to: one tag, one private (group, creator, element byte), or a
    regular expression over the lower-case tag text "(gggg,eeee)"."""

    tag: int | None = None
    private: tuple[int, str, int] | None = None
    pattern: str | None = None

    def __str__(self) -> str:
        if self.tag is not None:
            return f"({self.tag >> 16:04X},{self.tag & 0xFFFF:04X})"
        if self.private is not None:
            group, creator, element = self.private
            return f'({group:04X},"{creator}",{element:02X})'
        return f"contains:{self.pattern}"


@dataclass(frozen=True, slots=True)
class RecipeLine:
    """One checked action line of a recipe."""

    verb: Verb
    field: Field
    value: str | None
    source: str  # "file.deid:LINE"
    text: str  # the field and value as written (for comparison with deid)


@dataclass(frozen=True, slots=True)
class Recipe:
    """A checked recipe: its name, digest and action lines in order."""

    name: str
    sha256: str
    lines: tuple[RecipeLine, ...]


def parse_field(word: str, where: str) -> Field:
    """Parse a recipe field expression; only forms that deid and the plan read alike."""
    if match := _TAG.fullmatch(word):
        return Field(tag=int(match[1] + match[2], 16))
    if match := _PRIVATE.fullmatch(word):
        group = int(match[1], 16)
        if group % 2 == 0:
            raise ProfileError(f"{where}: private field {word} names an even group")
        return Field(private=(group, match[2], int(match[3], 16)))
    if match := _TAG_PATTERN.fullmatch(word):
        pattern = match[1].lower()
        try:
            re.compile(pattern)
        except re.error:
            raise ProfileError(f"{where}: the expression in {word} is not a valid regular expression") from None
        return Field(pattern=pattern)
    if word.isidentifier():
        tag = tag_for_keyword(word)
        if tag is None:
            raise ProfileError(f"{where}: unknown DICOM keyword {word!r}")
        return Field(tag=tag)
    raise ProfileError(
        f"{where}: field {word!r} is not supported: use a keyword, (GGGG,EEEE), "
        '(GGGG,"creator",EE) or contains:^\\(...\\)$ over the tag text'
    )


def _parse_action(words: list[str], where: str) -> tuple[Verb, Field, str | None]:
    try:
        verb = Verb(words[0].upper())
    except ValueError:
        raise ProfileError(f"{where}: unknown or unsupported action {words[0]!r}") from None
    if len(words) < 2:
        raise ProfileError(f"{where}: {verb} needs a field")
    field = parse_field(words[1], where)
    rest = words[2:]
    if verb in (Verb.KEEP, Verb.REMOVE, Verb.BLANK):
        if rest:
            raise ProfileError(f"{where}: {verb} takes a field and nothing else")
        return verb, field, None
    if not rest:
        raise ProfileError(f"{where}: {verb} needs a value")
    value = " ".join(rest)
    if value.startswith("func:") and value[5:] not in FUNCTIONS:
        raise ProfileError(f"{where}: unknown function {value[5:]!r}; known: {', '.join(FUNCTIONS)}")
    if value.startswith("var:"):
        raise ProfileError(f"{where}: var: values are not supported")
    if verb is Verb.ADD and field.tag is None:
        raise ProfileError(f"{where}: ADD needs a single tag or keyword")
    return verb, field, value


def lint(text: str, name: str) -> tuple[RecipeLine, ...]:
    """Check every line of a recipe; return its action lines or raise `ProfileError`."""
    lines: list[RecipeLine] = []
    fmt_seen = False
    section: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{name}:{number}"
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "#" in line:
            raise ProfileError(f"{where}: a comment must be on a line of its own")
        words = _WORDS.findall(line)
        if words[0].upper() == "FORMAT":
            if len(words) != 2 or words[1].lower() != "dicom" or fmt_seen:
                raise ProfileError(f"{where}: expected a single 'FORMAT dicom'")
            fmt_seen = True
            continue
        if line.startswith("%"):
            if not fmt_seen:
                raise ProfileError(f"{where}: 'FORMAT dicom' must come before any section")
            if line.lower() != "%header":
                raise ProfileError(f"{where}: section {words[0]!r} is not supported (only %header)")
            section = "header"
            continue
        if section != "header":
            raise ProfileError(f"{where}: an action outside a %header section")
        verb, field, value = _parse_action(words, where)
        lines.append(RecipeLine(verb, field, value, where, " ".join(words[1:])))
    if not fmt_seen:
        raise ProfileError(f"{name}: no 'FORMAT dicom' line")
    return tuple(lines)


def _deid_actions(path: Path) -> list[dict[str, str]]:
    """Load a recipe with deid's parser and return its header actions."""
    from deid.config import DeidRecipe
    from deid.logger import bot

    bot.level = 0  # deid's own logger prints every line at DEBUG: keep it quiet
    recipe = DeidRecipe(str(path), base=False)
    actions: list[dict[str, str]] = recipe.get_actions() or []
    return actions


def read_recipe(path: Path) -> tuple[bytes, str]:
    """A recipe file's bytes (for its digest) and text; a `ProfileError` if it cannot be read."""
    try:
        data = path.read_bytes()
        return data, data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path.name}: cannot read the recipe ({type(exc).__name__})") from None


def load_recipe(path: Path) -> Recipe:
    """Lint a recipe file strictly, then load it with deid and check deid read the same."""
    name = path.name
    data, text = read_recipe(path)
    lines = lint(text, name)
    actions = _deid_actions(path)
    if len(actions) != len(lines):
        raise ProfileError(f"{name}: deid read {len(actions)} actions where the lint found {len(lines)}")
    for ours, theirs in zip(lines, actions, strict=True):
        written = f"{theirs.get('field', '')} {theirs.get('value', '')}".strip()
        if theirs.get("action") != ours.verb.value or written != ours.text:
            raise ProfileError(f"{ours.source}: deid read this line differently")
    log.debug("loaded recipe %s with %d actions", name, len(lines))
    return Recipe(name=name, sha256=hashlib.sha256(data).hexdigest(), lines=lines)
