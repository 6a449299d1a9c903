"""Profile + options + user recipes -> an immutable, picklable Plan (tag -> action).

The recipes are read and checked once, before any file is touched; the plan is what every
worker applies with pydicom directly. Layers, lowest precedence first:

1. ``safe_text.deid``: the allow-list of text-bearing standard attributes that are not rows
   of PS3.15 Table E.1-1 and are known to carry no identity (codes, device model, units).
2. ``identification.deid``: standard sequences that are not rows of Table E.1-1 but identify
   a person by code, replaced (D) like the table's own identification rows.
3. ``basic.deid``: every row of Table E.1-1.
4. One recipe per option, in the order of the table's option columns (config.OPTION_ORDER).
5. The user's recipes, in the order given.

Pixels are planned beside the header: `pixel_mode` says how burned-in text is handled, and
with Clean Pixel Data the plan carries ``pixels.deid`` (pipeline/profile/pixel_rules.py), whose
%filter rules pipeline/pixels/clean.py evaluates on each file's original header.

Where two rules match one attribute, the rule from the later line wins: an option's cell
replaces the Basic Profile's action, as the standard says.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path

from pipeline.errors import ProfileError
from pipeline.profile.options import OPTION_ORDER, Option, parse_options
from pipeline.profile.pixel_rules import PixelRules, load_pixel_rules
from pipeline.profile.recipe import Field, Recipe, Verb, load_recipe

PROFILES_ENV = "DEID_PIPELINE_PROFILES"

PROFILES: dict[str, tuple[str, ...]] = {"basic": ("safe_text.deid", "identification.deid", "basic.deid")}
PIXEL_RECIPE = "pixels.deid"
# Pixel mode ocr: an image whose OCR would change more than this share of its pixels (all
# frames) goes to quarantine as pixels-need-review instead of the release (issue 15). OCR
# changes 0.7-13.5 % of the archive's burned-in images; OCR that once read a whole CT head as
# a word changed all of it. `--max-cleaned-fraction` changes the bound.
DEFAULT_MAX_CLEANED_FRACTION = 0.25


class PixelMode(StrEnum):
    """How burned-in text in pixel data is handled (pipeline/pixels/clean.py).

    | mode  | when                        | what                                                     |
    |-------|-----------------------------|----------------------------------------------------------|
    | off   | no Clean Pixel Data option  | pixels untouched, except overlays in unused high bits    |
    |       |                             | (zeroed); BurnedInAnnotation YES and encapsulated        |
    |       |                             | documents are refused                                    |
    | rules | option clean-pixel-data     | pixels.deid regions blanked; an image that carries or    |
    |       |                             | likely carries text that no rule locates is refused      |
    | ocr   | ``--clean-pixels ocr``      | as rules, then tesseract finds and blanks text in every  |
    |       |                             | image that carries or likely carries text                |
    """

    OFF = "off"
    RULES = "rules"
    OCR = "ocr"


class Action(StrEnum):
    """What the scrubber does to one attribute (PS3.15 Table E.1-1a, resolved)."""

    REMOVE = "X"
    BLANK = "Z"
    KEEP = "K"
    DUMMY = "D"
    UID = "U"
    CLEAN = "C"
    SHIFT_DATE = "shift-date"
    PATIENT_ID = "patient-id"
    PATIENT_NAME = "patient-name"
    REPLACE = "replace"
    ADD = "add"


# How combined codes are resolved. PS3.15 resolves them by the attribute's Type in the
# IOD; the plan does not carry IOD module tables, so each resolves to the choice that keeps
# the file conformant whatever the Type, and leaves no original value:
#
# | code   | resolution | why                                                             |
# |--------|------------|-----------------------------------------------------------------|
# | Z/D    | D          | a dummy satisfies Type 1 and Type 2 (Z allows a dummy too)      |
# | X/Z    | Z          | empty satisfies Type 2 and Type 3                               |
# | X/D    | D          | a dummy satisfies Type 1 and Type 3                             |
# | X/Z/D  | D          | a dummy satisfies every Type                                    |
# | X/Z/U* | K + U      | the sequence is kept; its items are scrubbed, so the UIDs it    |
# |        |            | references are remapped by their own U rows                     |
COMBINED_RESOLUTION: dict[str, Action] = {
    "blank_or_dummy": Action.DUMMY,
    "remove_or_blank": Action.BLANK,
    "remove_or_dummy": Action.DUMMY,
    "remove_blank_or_dummy": Action.DUMMY,
    "remove_blank_or_uids": Action.KEEP,
}

_FUNCTION_ACTIONS: dict[str, Action] = {
    "dummy": Action.DUMMY,
    "uid": Action.UID,
    "clean": Action.CLEAN,
    "shift_date": Action.SHIFT_DATE,
    "patient_id": Action.PATIENT_ID,
    "patient_name": Action.PATIENT_NAME,
    **COMBINED_RESOLUTION,
}

_VERB_ACTIONS: dict[Verb, Action] = {
    Verb.KEEP: Action.KEEP,
    Verb.REMOVE: Action.REMOVE,
    Verb.BLANK: Action.BLANK,
    Verb.ADD: Action.ADD,
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One resolved rule: its action, how the recipe wrote it, where, and its precedence."""

    action: Action
    written: str  # "REMOVE" or "func:remove_or_dummy" or a literal's verb
    source: str  # "basic.deid:123"
    order: int
    value: str | None = None  # the literal of REPLACE/ADD


@dataclass(frozen=True, slots=True)
class Plan:
    """The compiled profile: rules by tag, by private creator, and by tag pattern."""

    profile: str
    options: tuple[Option, ...]
    recipes: tuple[tuple[str, str], ...]  # (file name, sha256) in layer order
    exact: dict[int, Rule] = field(default_factory=dict)
    private: dict[tuple[int, str, int], Rule] = field(default_factory=dict)
    patterns: tuple[str, ...] = ()  # regular expressions over the tag text
    pattern_rules: tuple[Rule, ...] = ()
    additions: tuple[tuple[int, Rule], ...] = ()
    pixel_mode: PixelMode = PixelMode.OFF
    pixel_rules: PixelRules | None = None  # pixels.deid, with Clean Pixel Data
    cleans_text: bool = False  # some rule is C: the scrubber must collect identifiers first
    max_cleaned_fraction: float = DEFAULT_MAX_CLEANED_FRACTION  # pixel mode ocr: beyond it, review

    def rule_for(self, tag: int, creator: str | None = None) -> Rule | None:
        """Return the winning rule for an attribute, or None when no recipe names it."""
        best = self.exact.get(tag)
        if creator is not None:
            found = self.private.get((tag >> 16, creator, tag & 0xFF))
            if found is not None and (best is None or found.order > best.order):
                best = found
        for index in _matching_patterns(self.patterns, tag):
            found = self.pattern_rules[index]
            if best is None or found.order > best.order:
                best = found
        return best

    @property
    def keeps_dates(self) -> bool:
        return Option.RETAIN_LONGITUDINAL_FULL_DATES in self.options

    @property
    def shifts_dates(self) -> bool:
        return Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in self.options


@functools.lru_cache(maxsize=1 << 16)
def _matching_patterns(patterns: tuple[str, ...], tag: int) -> tuple[int, ...]:
    text = f"({tag >> 16:04x},{tag & 0xFFFF:04x})"
    return tuple(i for i, p in enumerate(patterns) if re.search(p, text))


def profiles_dir() -> Path:
    """Where the recipes live: $DEID_PIPELINE_PROFILES, else the package data `pipeline/recipes/`.

    deid parses a recipe from a file name, so the packaged recipes must be files on disk (an
    installed wheel or a checkout); a zipped install is a `ProfileError`."""
    override = os.environ.get(PROFILES_ENV)
    if override:
        return Path(override)
    packaged = resources.files("pipeline") / "recipes"
    if not isinstance(packaged, Path):
        raise ProfileError("the packaged recipes are not files on disk; set " + PROFILES_ENV)
    return packaged


def option_recipe(option: Option) -> str:
    return option.value.replace("-", "_") + ".deid"


def _rule_of(verb: Verb, value: str | None, source: str, order: int) -> Rule:
    if verb is Verb.REPLACE:
        assert value is not None
        if value.startswith("func:"):
            return Rule(_FUNCTION_ACTIONS[value[5:]], value, source, order)
        return Rule(Action.REPLACE, "REPLACE", source, order, value)
    return Rule(_VERB_ACTIONS[verb], verb.value, source, order, value)


def compile_plan(
    profile: str = "basic",
    options: tuple[str, ...] | list[str] = (),
    user_recipes: tuple[Path, ...] | list[Path] = (),
    directory: Path | None = None,
    pixel_mode: PixelMode | None = None,
    max_cleaned_fraction: float | None = None,
) -> Plan:
    """Load and check every recipe of the profile, its options and the user's, and compile
    them into a Plan. Raises `ProfileError` before any file is read.

    `pixel_mode` defaults to RULES with the clean-pixel-data option and OFF without; RULES or
    OCR adds the option (its code then goes in DeidentificationMethodCodeSequence).
    `max_cleaned_fraction` (pixel mode ocr; default `DEFAULT_MAX_CLEANED_FRACTION`) must lie
    in (0, 1]."""
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    chosen = parse_options(tuple(options))
    mode = _pixel_mode(chosen, pixel_mode)
    fraction = DEFAULT_MAX_CLEANED_FRACTION if max_cleaned_fraction is None else float(max_cleaned_fraction)
    if not 0.0 < fraction <= 1.0:
        raise ProfileError("the maximum cleaned fraction must lie in (0, 1]")
    if mode is not PixelMode.OFF and Option.CLEAN_PIXEL_DATA not in chosen:
        chosen = (*chosen, Option.CLEAN_PIXEL_DATA)
    base = directory or profiles_dir()
    paths = [base / name for name in PROFILES[profile]]
    paths += [base / option_recipe(o) for o in chosen if o in OPTION_ORDER]  # pixel options: no header recipe
    paths += [Path(p) for p in user_recipes]
    for path in paths:
        if not path.is_file():
            raise ProfileError(f"recipe not found: {path.name}")
    recipes: list[Recipe] = [load_recipe(p) for p in paths]

    exact: dict[int, Rule] = {}
    private: dict[tuple[int, str, int], Rule] = {}
    patterns: dict[str, Rule] = {}
    additions: dict[int, Rule] = {}
    order = 0
    for recipe in recipes:
        for line in recipe.lines:
            order += 1
            rule = _rule_of(line.verb, line.value, line.source, order)
            target: Field = line.field
            if rule.action is Action.ADD:
                assert target.tag is not None
                additions[target.tag] = rule
            elif target.tag is not None:
                exact[target.tag] = rule
            elif target.private is not None:
                private[target.private] = rule
            elif target.pattern is not None:
                patterns.pop(target.pattern, None)
                patterns[target.pattern] = rule
    pixel_rules = _load_pixel_rules(base, mode)
    pixel_recipe = () if pixel_rules is None else ((pixel_rules.name, pixel_rules.sha256),)
    return Plan(
        profile=profile,
        options=chosen,
        recipes=tuple((r.name, r.sha256) for r in recipes) + pixel_recipe,
        exact=exact,
        private=private,
        patterns=tuple(patterns),
        pattern_rules=tuple(patterns.values()),
        additions=tuple(additions.items()),
        pixel_mode=mode,
        pixel_rules=pixel_rules,
        cleans_text=any(r.action is Action.CLEAN
                        for r in (*exact.values(), *private.values(), *patterns.values())),
        max_cleaned_fraction=fraction,
    )


def _pixel_mode(chosen: tuple[Option, ...], asked: PixelMode | None) -> PixelMode:
    if asked is None:
        return PixelMode.RULES if Option.CLEAN_PIXEL_DATA in chosen else PixelMode.OFF
    if asked is PixelMode.OFF and Option.CLEAN_PIXEL_DATA in chosen:
        raise ProfileError("option clean-pixel-data contradicts pixel mode off")
    return asked


def _load_pixel_rules(base: Path, mode: PixelMode) -> PixelRules | None:
    """pixels.deid, in every mode: without Clean Pixel Data its flag rules still decide which
    images likely carry burned-in text (those are refused, fail closed). Whether tesseract
    answers for pixel mode ocr is the caller's check (`pipeline.pixels.ocr.require_for`)."""
    path = base / PIXEL_RECIPE
    if not path.is_file():
        raise ProfileError(f"recipe not found: {PIXEL_RECIPE}")
    return load_pixel_rules(path)


def describe_plan(plan: Plan) -> list[tuple[str, str, str, str, str]]:
    """Rows of (tag, keyword, action, as written, recipe:line) for every rule of the plan."""
    from pydicom.datadict import keyword_for_tag

    rows: list[tuple[str, str, str, str, str]] = []
    for tag, rule in sorted(plan.exact.items()):
        keyword = keyword_for_tag(tag) or ""
        rows.append((f"({tag >> 16:04X},{tag & 0xFFFF:04X})", keyword, rule.action.value, rule.written, rule.source))
    for (group, creator, element), rule in sorted(plan.private.items()):
        rows.append((f'({group:04X},"{creator}",{element:02X})', "", rule.action.value, rule.written, rule.source))
    for pattern, rule in zip(plan.patterns, plan.pattern_rules, strict=True):
        rows.append((f"contains:{pattern}", "", rule.action.value, rule.written, rule.source))
    for tag, rule in plan.additions:
        rows.append((f"({tag >> 16:04X},{tag & 0xFFFF:04X})", keyword_for_tag(tag) or "", "add", "ADD", rule.source))
    return rows
