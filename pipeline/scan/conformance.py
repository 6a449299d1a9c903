"""Profile conformance without originals: what a published file declares about its
de-identification (PS3.15 E.1.1) and every attribute whose presence or value that profile does
not allow, judged from the file alone. Used by scan (DESIGN.md, "Verification and validation").

The declaration is PatientIdentityRemoved YES with DeidentificationMethodCodeSequence (CID 7050):
113100 (Basic Profile) plus one code per option. The profile judged is Basic plus the declared
options; Basic with no options when PatientIdentityRemoved is not YES. The recipes are read by
verify (`verify_profile.load_profile`, `default_expectation`), so scan and verify agree on what each option allows.

| profile action (verify's reading) | breach, without originals                                |
|-----------------------------------|----------------------------------------------------------|
| X (REMOVE)                        | present (a sequence: reported once, not entered); blank: |
|                                   | bookkeeping only (scan reports it low)                   |
| Z (BLANK)                         | neither empty nor a dummy (a sequence: any item)         |
| D and the combined codes          | a value that does not look like a dummy                  |
| U, and UI that no recipe names    | any unregistered UID when identity removal is not        |
|                                   | declared (declared 2.25 UIDs pass; other unregistered    |
|                                   | UIDs are scan's uid-looks-original)                      |
| not named: text, PN, DA/DT, UN    | present, unless a C sequence holds it or an option keeps |
|                                   | the dates (`default_expectation`)                        |
| K, C, shifted dates, literals     | nothing: only the originals could tell                   |
| patient name / ID pseudonyms      | nothing here: scan's person-name and patient-id rules    |
| private (odd group)               | nothing here: scan's private-tag rule                    |

File meta: only the attributes a recipe names (MediaStorageSOPInstanceUID: U). A breach names
the attribute path and the expected action, never a value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from pydicom._uid_dict import UID_dictionary
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from pipeline.verify.checks import looks_dummy
from pipeline.verify.iod import attributes_at, listed_tag
from pipeline.verify.profile import BASIC_PROFILE_CODE, OPTION_CODES, Expect, Profile, default_expectation, load_profile
from pipeline.verify.strings import text_values
from pipeline.verify.walk import STRUCTURAL, required_expectation, tag_name

_OPTIONS_BY_CODE = {code: option for option, code in OPTION_CODES.items()}
_DATE_OPTIONS = ("retain-longitudinal-full-dates", "retain-longitudinal-modified-dates")
_UID_CHECKED = frozenset({Expect.UID, Expect.STANDARD_OR_NEW_UID, Expect.REPLACED})


class Declared(StrEnum):
    """What a file declares about its de-identification."""

    PROFILE = "profile declared"  # identity removed YES and the Basic Profile code
    IDENTITY_REMOVED = "identity removed, no profile code"  # YES without 113100: judged as Basic
    NOTHING = "nothing declared"  # raw data, as far as the file says


class Expected(StrEnum):
    """The action the profile names for an attribute in breach (a finding's detail)."""

    REMOVED = "X"
    EMPTY = "Z"
    DUMMY = "D"
    NEW_UID = "U"


@dataclass(frozen=True, slots=True)
class Declaration:
    """The profile a file declares: Basic plus `options` (kebab case, verify's names)."""

    declared: Declared
    options: tuple[str, ...] = ()

    @property
    def is_identity_removed(self) -> bool:
        return self.declared is not Declared.NOTHING


@dataclass(frozen=True, slots=True)
class Breach:
    """One attribute the declared profile does not allow, as present in the file."""

    path: str
    expected: Expected
    holds_value: bool = True  # False: an X attribute present but blank (bookkeeping, nothing to see)

    def detail(self, declaration: Declaration) -> str:
        """What the profile expects and what the file declares: no value."""
        return f"expected {self.expected.value}; {declaration.declared.value}"


def read_declaration(ds: Dataset) -> Declaration:
    """The profile `ds` declares (PS3.15 E.1.1): unknown codes are ignored; contradictory date
    options cancel each other (the stricter Basic rules apply to dates)."""
    if str(ds.get("PatientIdentityRemoved", "") or "").strip().upper() != "YES":
        return Declaration(Declared.NOTHING)
    try:
        items = list(ds.get("DeidentificationMethodCodeSequence") or ())
        codes = {str(item.get("CodeValue", "") or "").strip() for item in items}
    except Exception:  # a broken sequence declares nothing it can be held to
        codes = set()
    options = {_OPTIONS_BY_CODE[code] for code in codes if code in _OPTIONS_BY_CODE}
    if set(_DATE_OPTIONS) <= options:
        options -= set(_DATE_OPTIONS)
    declared = Declared.PROFILE if BASIC_PROFILE_CODE in codes else Declared.IDENTITY_REMOVED
    return Declaration(declared, tuple(sorted(options)))


def _is_blank(elem: DataElement) -> bool:
    """No value: no item, only zero bytes or no text."""
    if elem.VR == "SQ":
        return len(elem.value or ()) == 0
    if isinstance(elem.value, bytes):
        return not elem.value.strip(b"\x00 ")
    return not text_values(elem)


def _is_empty_or_dummy(elem: DataElement) -> bool:
    """Z: "a zero length value, or a non-zero length value that may be a dummy value" (Table
    E.1-1a); a sequence must have no item."""
    if elem.VR == "SQ" or isinstance(elem.value, bytes):
        return _is_blank(elem)
    return all(looks_dummy(elem.VR, v) for v in text_values(elem))


def _path(prefix: str, elem: DataElement) -> str:
    return prefix + tag_name(int(elem.tag))


def _breach(elem: DataElement, expect: Expect, declaration: Declaration) -> Expected | None:
    vr = elem.VR
    if expect is Expect.ABSENT:
        return Expected.REMOVED
    if expect is Expect.EMPTY:
        return None if _is_empty_or_dummy(elem) else Expected.EMPTY
    if vr == "UI" and expect in _UID_CHECKED:
        # A declared file's unregistered UIDs are scan's uid-looks-original (not 2.25) or new (2.25).
        if declaration.is_identity_removed:
            return None
        original = any(v not in UID_dictionary for v in text_values(elem))
        return Expected.NEW_UID if original else None
    if expect is Expect.REPLACED and vr != "SQ" and not all(looks_dummy(vr, v) for v in text_values(elem)):
        return Expected.DUMMY
    return None


def _walk(ds: Dataset, declaration: Declaration, profile: Profile, prefix: str = "",
          in_clean: bool = False, sop_class: str = "", tags: tuple[int, ...] = ()) -> Iterator[Breach]:
    """Breaches at every depth; what the object's IOD requires at `tags` may stay (PS3.15 E.1.1:
    a Type 1 attribute dummied, a Type 2 one emptied; verify's `required_expectation`)."""
    listed = attributes_at(sop_class, tags) if sop_class else None
    for elem in ds:
        if elem.tag.group % 2 == 1:
            continue  # private: scan's private-tag reports the block by its creator
        tag = int(elem.tag)
        rule = profile.rule_for(tag, None)
        if rule is not None:
            expect = rule.expect
        else:
            expect = Expect.KEEP if tag in STRUCTURAL else default_expectation(elem.VR, profile, in_clean)
        if listed is not None:
            expect = required_expectation(expect, listed.get(listed_tag(tag)))
        expected = _breach(elem, expect, declaration)
        if expected is not None:
            yield Breach(_path(prefix, elem), expected, expected is not Expected.REMOVED or not _is_blank(elem))
        if elem.VR == "SQ" and expected is None and expect not in (Expect.ABSENT, Expect.EMPTY):
            inner_clean = in_clean or expect is Expect.CLEAN
            for index, item in enumerate(elem.value or ()):
                yield from _walk(item, declaration, profile, f"{_path(prefix, elem)}[{index}].", inner_clean,
                                 sop_class, (*tags, int(elem.tag)))


def _meta_breaches(ds: Dataset, declaration: Declaration, profile: Profile) -> Iterator[Breach]:
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        return
    for elem in meta:
        rule = profile.rule_for(int(elem.tag), None)
        expected = _breach(elem, rule.expect, declaration) if rule is not None else None
        if expected is not None:
            yield Breach(_path("file-meta.", elem), expected, expected is not Expected.REMOVED or not _is_blank(elem))


def breaches(ds: Dataset, declaration: Declaration | None = None) -> list[Breach]:
    """Every attribute of `ds` (file meta: the named ones) that the profile it declares does
    not allow, outermost first: what lies in a sequence in breach is not reported again."""
    declaration = declaration if declaration is not None else read_declaration(ds)
    profile = load_profile(declaration.options)
    sop_class = str(ds.get("SOPClassUID", "") or "").strip("\x00 ")
    return [*_meta_breaches(ds, declaration, profile), *_walk(ds, declaration, profile, sop_class=sop_class)]


__all__ = ["Breach", "Declaration", "Declared", "Expected", "breaches", "looks_dummy", "read_declaration"]
