"""Closed sets of choices (enums) and the frozen values shared by every stage."""

from __future__ import annotations

from enum import StrEnum

from pipeline.errors import ProfileError


class Option(StrEnum):
    """PS3.15 Annex E profile options, named as the standard names them, in kebab case."""

    RETAIN_SAFE_PRIVATE = "retain-safe-private"
    RETAIN_UIDS = "retain-uids"
    RETAIN_DEVICE_IDENTITY = "retain-device-identity"
    RETAIN_INSTITUTION_IDENTITY = "retain-institution-identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain-patient-characteristics"
    RETAIN_LONGITUDINAL_FULL_DATES = "retain-longitudinal-full-dates"
    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain-longitudinal-modified-dates"
    CLEAN_DESCRIPTORS = "clean-descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean-structured-content"
    CLEAN_GRAPHICS = "clean-graphics"
    CLEAN_PIXEL_DATA = "clean-pixel-data"
    CLEAN_RECOGNIZABLE_VISUAL_FEATURES = "clean-recognizable-visual-features"


# The order in which option recipes are layered over the Basic Profile: the order of the
# option columns of PS3.15 Table E.1-1. A later option wins where two touch one attribute,
# so the Clean options (last) win over the Retain options.
OPTION_ORDER: tuple[Option, ...] = (
    Option.RETAIN_SAFE_PRIVATE,
    Option.RETAIN_UIDS,
    Option.RETAIN_DEVICE_IDENTITY,
    Option.RETAIN_INSTITUTION_IDENTITY,
    Option.RETAIN_PATIENT_CHARACTERISTICS,
    Option.RETAIN_LONGITUDINAL_FULL_DATES,
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
    Option.CLEAN_DESCRIPTORS,
    Option.CLEAN_STRUCTURED_CONTENT,
    Option.CLEAN_GRAPHICS,
)

# Options that act on pixel data, not on attributes: no column of Table E.1-1 and no header
# recipe (pipeline/pixels/clean.py, pipeline/recipes/pixels.deid). They follow the header options.
PIXEL_OPTIONS: tuple[Option, ...] = (Option.CLEAN_PIXEL_DATA,)

# Recognised but not implemented yet: refused, never ignored.
NOT_IMPLEMENTED: frozenset[Option] = frozenset({Option.CLEAN_RECOGNIZABLE_VISUAL_FEATURES})

CONFLICTS: tuple[frozenset[Option], ...] = (
    frozenset({Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES}),
)

# CID 7050 "De-identification Method" codes (PS3.16), for DeidentificationMethodCodeSequence.
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
OPTION_CODES: dict[Option, tuple[str, str]] = {
    Option.CLEAN_PIXEL_DATA: ("113101", "Clean Pixel Data Option"),
    Option.CLEAN_RECOGNIZABLE_VISUAL_FEATURES: ("113102", "Clean Recognizable Visual Features Option"),
    Option.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
    Option.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.RETAIN_LONGITUDINAL_FULL_DATES: ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    Option.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    Option.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    Option.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
}


def parse_options(names: list[str] | tuple[str, ...]) -> tuple[Option, ...]:
    """Return the options named, in the standard's order; refuse unknown, unimplemented or
    contradictory ones with a `ProfileError`."""
    chosen: set[Option] = set()
    for name in names:
        try:
            option = Option(name.strip().lower())
        except ValueError:
            known = ", ".join(o.value for o in Option)
            raise ProfileError(f"unknown option {name!r}; known options: {known}") from None
        if option in NOT_IMPLEMENTED:
            raise ProfileError(f"option {option.value} is recognised but not implemented yet")
        chosen.add(option)
    for pair in CONFLICTS:
        if pair <= chosen:
            raise ProfileError("options contradict each other: " + " and ".join(sorted(pair)))
    return tuple(o for o in OPTION_ORDER + PIXEL_OPTIONS if o in chosen)


