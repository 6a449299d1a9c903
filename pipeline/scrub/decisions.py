"""Which action one attribute gets: the plan's rule, resolved by the object's IOD (PS3.15 E.1.1),
or the default of its VR when no recipe names it; decided once per item context and remembered.

An element's action depends only on the plan, the IOD item it stands in (the SOP class and the
path of sequences above it), whether an option cleans or a D replaces that sequence, its tag, its
private creator and its stored VR: `decisions` holds what was decided for one such context, so a
file decides each attribute by a dictionary look-up once the plan has met it (bounded).
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.profile.iod import AttributeType, IodTable, canonical
from pipeline.profile.options import Option
from pipeline.profile.plan import Action, Plan, Rule
from pipeline.profile.resolution import STRUCTURAL, by_type, combined_code, conformant
from pipeline.scrub.vr import decided_vr

TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC", "UR", "AE"})
DATE_VRS = frozenset({"DA", "DT"})
SHIFTED_VRS = frozenset({"DA", "DT", "TM"})  # Modified Dates moves all three (pipeline/scrub/dates.py)


def default_action(vr: str, plan: Plan, in_clean_sequence: bool) -> Action:
    """The action for an attribute that no recipe names.

    | VR                         | action                                                   |
    |----------------------------|----------------------------------------------------------|
    | SQ                         | K: kept, its items scrubbed by the same rules            |
    | PN LO SH ST LT UT UC UR AE | X (C inside a sequence an option cleans): free text may  |
    |                            | identify; safe ones are in recipes/safe_text.deid        |
    | DA DT                      | X; K with full dates; shifted with modified dates        |
    | TM                         | K; shifted with modified dates                           |
    | UI                         | registered (standard) UIDs K, every other UID U          |
    | UN                         | X: an unknown value cannot be judged                     |
    | anything else              | K: numbers, codes (CS), geometry, pixel data             |
    """
    if vr == "SQ":
        return Action.KEEP
    if vr in TEXT_VRS:
        return Action.CLEAN if in_clean_sequence else Action.REMOVE
    if vr in SHIFTED_VRS and plan.shifts_dates:
        return Action.SHIFT_DATE
    if vr in DATE_VRS:
        if plan.shifts_dates:
            return Action.SHIFT_DATE
        return Action.KEEP if plan.keeps_dates else Action.REMOVE
    if vr == "UI":
        return Action.KEEP if Option.RETAIN_UIDS in plan.options else Action.UID
    if vr == "UN":
        return Action.REMOVE
    return Action.KEEP


def replacing_action(action: Action, vr: str, tag: int = 0) -> Action:
    """The action inside a sequence whose own action is D (or X/D, X/Z/D, Z/D resolved to D).

    PS3.15 Table E.1-1a: D replaces the attribute's value, and a sequence's value is its items,
    so no original item content survives: what would be kept (K, C, kept by default) is
    replaced by a dummy of its VR; X, Z, U, dates shifted and pseudonyms stay as they are.
    Sequences inside are entered the same way. UIDs keep their own rule (U, or K with Retain
    UIDs): a keyed UID replaces the original and keeps references linked. Structural attributes
    (pipeline/profile/resolution.py, STRUCTURAL: SR Value Type, waveform channel numbers) are
    kept: they identify no one, and a dummy would break the object.
    """
    if vr in ("SQ", "UI") or action not in (Action.KEEP, Action.CLEAN) or tag in STRUCTURAL:
        return action
    return Action.DUMMY


def resolve(rule: Rule | None, vr: str, tag: int, types: _Types | None, replacing: bool,
            default: Action) -> Action:
    """The action for one public attribute of an item whose IOD definition is `types` (None:
    unknown): combined codes by Type, structural attributes kept, and what the IOD requires
    never removed (pipeline/profile/resolution.py, PS3.15 E.1.1)."""
    kind: AttributeType | None = None
    listed = False
    if types is not None:
        key = canonical(tag)
        listed = key in types
        kind = types.get(key)
    is_sequence = vr == "SQ"
    code = combined_code(rule)
    if code is not None:
        action = by_type(code, kind, types is not None, is_sequence).action
    elif rule is not None:
        action = rule.action
    else:
        action = Action.KEEP if tag in STRUCTURAL else default
    if replacing:
        action = replacing_action(action, vr, tag)
    if types is not None:
        raised = conformant(action, kind, listed, is_sequence)
        if raised is not None:
            action = raised.action
    return action


_Types = Mapping[int, AttributeType | None]


_Decision = tuple[Rule | None, str, Action]  # the rule, the VR judged by, the action
_Level = tuple[IodTable | None, tuple[int, ...], bool, bool]  # IOD, path, in a C sequence, replaced (D)
_Decided = dict[tuple[int, str | None, str | None], _Decision]  # (tag, creator, stored VR) -> decision
# id(plan) -> the plan itself and its decisions per item context. The plan is held beside its
# decisions: a plan found under an id is that very plan (alive, so its id is not reused), and
# another plan under the same id starts afresh.
_PLANS: dict[int, tuple[Plan, dict[_Level, _Decided]]] = {}
_MAX_PLANS = 8
_MAX_LEVELS = 4096  # memory stays flat: a plan's table is emptied when it holds more item contexts


def decisions(plan: Plan, iod: IodTable | None, path: tuple[int, ...], in_clean_sequence: bool,
              replacing: bool) -> _Decided:
    """The decisions already made for the items at `path` of an object of `iod` under `plan`:
    an element's action depends only on these, its tag, its creator and its stored VR."""
    entry = _PLANS.get(id(plan))
    if entry is None or entry[0] is not plan:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        entry = _PLANS[id(plan)] = (plan, {})
    levels = entry[1]
    if len(levels) > _MAX_LEVELS:
        levels.clear()
    key = (iod, path, in_clean_sequence, replacing)
    found = levels.get(key)
    if found is None:
        found = levels[key] = {}
    return found


def decide(number: int, creator: str | None, stored_vr: str | None, plan: Plan, types: _Types | None,
            in_clean_sequence: bool, replacing: bool) -> _Decision:
    """The rule, VR and action for one element (tag, private creator, stored VR) of an item."""
    rule = plan.rule_for(number, creator)
    vr = decided_vr(number, creator, stored_vr)  # never the VR the file claims (pipeline/scrub/vr.py)
    default = default_action(vr, plan, in_clean_sequence)
    if number >> 16 & 1:
        action = rule.action if rule is not None else default
        if replacing:
            action = replacing_action(action, vr)
    else:
        action = resolve(rule, vr, number, types, replacing, default)
        if in_clean_sequence and action is Action.KEEP and vr in TEXT_VRS:
            # PS3.15 E.3.5 / E.3.6 (Clean Descriptors, Clean Structured Content): inside a
            # sequence the option cleans, every text is cleaned, safe-listed text included
            # (a CodeMeaning there can carry the patient's name).
            action = Action.CLEAN
    return rule, vr, action
