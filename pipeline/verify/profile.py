"""The profile as verify (and scan) read it: the recipe text in `pipeline/recipes/`, parsed by this
module's own small parser (nothing of pipeline.profile or deid), resolved for each
attribute to what an output may hold (`Expect`, PS3.15 Table E.1-1a).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from pydicom.datadict import tag_for_keyword

from pipeline.errors import ProfileError

PROFILES_ENV = "DEID_PIPELINE_PROFILES"


# Options in the order their recipes are layered (the option columns of PS3.15 Table E.1-1),
# then the pixel options, which have no header recipe. Value: CID 7050 code (PS3.16).
OPTION_CODES: dict[str, str] = {
    "retain-safe-private": "113111",
    "retain-uids": "113110",
    "retain-device-identity": "113109",
    "retain-institution-identity": "113112",
    "retain-patient-characteristics": "113108",
    "retain-longitudinal-full-dates": "113106",
    "retain-longitudinal-modified-dates": "113107",
    "clean-descriptors": "113105",
    "clean-structured-content": "113104",
    "clean-graphics": "113103",
    "clean-pixel-data": "113101",
    "clean-recognizable-visual-features": "113102",
}


BASIC_PROFILE_CODE = "113100"
_PIXEL_OPTIONS = frozenset({"clean-pixel-data", "clean-recognizable-visual-features"})
FULL_DATES, MODIFIED_DATES = "retain-longitudinal-full-dates", "retain-longitudinal-modified-dates"


class Expect(Enum):
    """What the profile allows for one attribute (PS3.15 Table E.1-1a, as verify reads it)."""

    ABSENT = "X"
    EMPTY = "Z"
    REPLACED = "D"  # func:dummy and every combined code
    UID = "U"
    KEEP = "K"
    CLEAN = "C"
    SHIFTED = "shift"
    PSEUDONYM = "pseudonym"
    LITERAL = "literal"
    STANDARD_OR_NEW_UID = "registered-or-2.25"  # UI that no recipe names


# X/Z/U* (two sequence rows) keeps the items for the UIDs they reference, which their own U
# rows replace: a sequence whose content is judged item by item (K), not replaced (D).
_FUNCTIONS: dict[str, Expect] = {
    "dummy": Expect.REPLACED, "blank_or_dummy": Expect.REPLACED, "remove_or_blank": Expect.REPLACED,
    "remove_or_dummy": Expect.REPLACED, "remove_blank_or_dummy": Expect.REPLACED,
    "remove_blank_or_uids": Expect.KEEP, "uid": Expect.UID, "clean": Expect.CLEAN,
    "shift_date": Expect.SHIFTED, "patient_id": Expect.PSEUDONYM, "patient_name": Expect.PSEUDONYM,
}


TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "UR", "AE"})


@dataclass(frozen=True, slots=True)
class Rule:
    expect: Expect
    order: int
    literal: str | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """The recipes of one option set: rules by tag, by (group, creator, element byte), by pattern."""

    options: tuple[str, ...]
    exact: dict[int, Rule]
    private: dict[tuple[int, str, int], Rule]
    patterns: tuple[tuple[re.Pattern[str], Rule], ...]
    resolved: dict[tuple[int, str | None], Rule | None] = field(default_factory=dict)
    # pipeline/verify/walk.py's cache: public tag (with bit 32 set inside a cleaned sequence) -> what it decides
    walked: dict[int, tuple[str, str, Expect, bool]] = field(default_factory=dict)

    def rule_for(self, tag: int, creator: str | None) -> Rule | None:
        """The rule from the latest recipe line that names `tag` (layer order, then line order)."""
        key = (tag, creator)
        if key not in self.resolved:
            self.resolved[key] = self._resolve(tag, creator)
        return self.resolved[key]

    def _resolve(self, tag: int, creator: str | None) -> Rule | None:
        best = self.exact.get(tag)
        if creator is not None:
            found = self.private.get((tag >> 16, creator, tag & 0xFF))
            if found is not None and (best is None or found.order > best.order):
                best = found
        text = f"({tag >> 16:04x},{tag & 0xFFFF:04x})"
        for pattern, rule in self.patterns:
            if (best is None or rule.order > best.order) and pattern.search(text):
                best = rule
        return best

    def has(self, option: str) -> bool:
        return option in self.options


_LINE = re.compile(r"(KEEP|REMOVE|BLANK|REPLACE|ADD)\s+(\([0-9A-Fa-f]{4},\"[^\"]+\",[0-9A-Fa-f]{2}\)|\S+)(?:\s+(.+))?")
_TAG_FIELD = re.compile(r"\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)")
_PRIVATE_FIELD = re.compile(r"\(([0-9A-Fa-f]{4}),\"([^\"]+)\",([0-9A-Fa-f]{2})\)")


def normalise_options(options: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The options named, deduplicated and in layer order; unknown names are a `ProfileError`."""
    chosen = {o.strip().lower() for o in options}
    unknown = sorted(chosen - OPTION_CODES.keys())
    if unknown:
        raise ProfileError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTION_CODES)}")
    if {FULL_DATES, MODIFIED_DATES} <= chosen:
        raise ProfileError(f"options contradict each other: {FULL_DATES} and {MODIFIED_DATES}")
    return tuple(o for o in OPTION_CODES if o in chosen)


def load_profile(options: tuple[str, ...]) -> Profile:
    """The profile for `options` (any order), read from $DEID_PIPELINE_PROFILES or the package
    data `pipeline/recipes/` (read as text here, so any importlib.resources location serves)."""
    return _load_profile(normalise_options(options), os.environ.get(PROFILES_ENV) or "")


@functools.lru_cache(maxsize=64)
def _load_profile(options: tuple[str, ...], override: str) -> Profile:
    directory: Traversable = Path(override) if override else resources.files("pipeline") / "recipes"
    names = ["safe_text.deid", "identification.deid", "basic.deid"]
    names += [o.replace("-", "_") + ".deid" for o in options if o not in _PIXEL_OPTIONS]
    exact: dict[int, Rule] = {}
    private: dict[tuple[int, str, int], Rule] = {}
    patterns: dict[str, Rule] = {}
    order = 0
    for name in names:
        path = directory / name
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            raise ProfileError(f"recipe not found or unreadable: {name}") from None
        section = ""
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#") or line.startswith("FORMAT "):
                continue
            if line.startswith("%"):
                section = line.split()[0]
                continue
            if section != "%header":
                continue  # pixel filters and labels are not header rules
            order += 1
            _add_rule(line, f"{name}:{number}", order, exact, private, patterns)
    compiled = tuple((re.compile(p, re.IGNORECASE), r) for p, r in patterns.items())
    return Profile(options=options, exact=exact, private=private, patterns=compiled)


def _add_rule(line: str, where: str, order: int, exact: dict[int, Rule],
              private: dict[tuple[int, str, int], Rule], patterns: dict[str, Rule]) -> None:
    match = _LINE.fullmatch(line)
    if match is None:
        raise ProfileError(f"{where}: not a recipe line verify understands")
    verb, target, value = match.group(1), match.group(2), match.group(3)
    if verb in ("KEEP", "REMOVE", "BLANK"):
        if value is not None:
            raise ProfileError(f"{where}: {verb} takes no value")
        rule = Rule({"KEEP": Expect.KEEP, "REMOVE": Expect.ABSENT, "BLANK": Expect.EMPTY}[verb], order)
    elif value is None:
        raise ProfileError(f"{where}: {verb} needs a value")
    elif value.startswith("func:"):
        if verb != "REPLACE" or value[5:] not in _FUNCTIONS:
            raise ProfileError(f"{where}: unknown function {value[5:]!r}")
        rule = Rule(_FUNCTIONS[value[5:]], order)
    else:
        rule = Rule(Expect.LITERAL, order, value.strip().strip('"'))
    if target.startswith("contains:"):
        patterns.pop(target[9:], None)  # re-inserted last: a later line wins
        patterns[target[9:]] = rule
    elif (tag_match := _TAG_FIELD.fullmatch(target)) is not None:
        exact[int(tag_match.group(1) + tag_match.group(2), 16)] = rule
    elif (private_match := _PRIVATE_FIELD.fullmatch(target)) is not None:
        key = (int(private_match.group(1), 16), private_match.group(2), int(private_match.group(3), 16))
        private[key] = rule
    else:
        tag = tag_for_keyword(target)
        if tag is None:
            raise ProfileError(f"{where}: unknown keyword {target!r}")
        exact[int(tag)] = rule


def default_expectation(vr: str, profile: Profile, in_clean: bool) -> Expect:
    """The expectation for an attribute that no recipe names."""
    if vr == "SQ":
        return Expect.KEEP
    if vr in TEXT_VRS:
        return Expect.CLEAN if in_clean else Expect.ABSENT
    if vr in ("DA", "DT", "TM") and profile.has(MODIFIED_DATES):
        return Expect.SHIFTED  # PS3.15 E.3.6: dates and times of day are modified
    if vr in ("DA", "DT"):
        return Expect.KEEP if profile.has(FULL_DATES) else Expect.ABSENT
    if vr == "UN":
        return Expect.ABSENT
    if vr == "UI":
        return Expect.KEEP if profile.has("retain-uids") else Expect.STANDARD_OR_NEW_UID
    return Expect.KEEP


__all__ = ["BASIC_PROFILE_CODE", "FULL_DATES", "MODIFIED_DATES", "OPTION_CODES", "PROFILES_ENV", "TEXT_VRS",
           "Expect", "Profile", "Rule", "default_expectation", "load_profile", "normalise_options"]
