"""The compiled plan: every row of PS3.15 Table E.1-1 gets exactly the action the table gives,
for the Basic Profile and for every option, and the plan is checked before any file is read."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ProfileError
from pipeline.profile.options import OPTION_ORDER, Option, parse_options
from pipeline.profile.plan import (
    COMBINED_RESOLUTION,
    PROFILES_ENV,
    Action,
    compile_plan,
    describe_plan,
    option_recipe,
    profiles_dir,
)
from tests.conftest import RECIPES, REFERENCE, REPO, TABLE_COPY, reference_rows

COLUMN = {o: o.value.replace("-", "_") for o in OPTION_ORDER}

# What each PS3.15 code becomes in the plan (combined codes per plan.COMBINED_RESOLUTION).
EXPECTED_ACTION = {
    "X": Action.REMOVE, "Z": Action.BLANK, "K": Action.KEEP, "D": Action.DUMMY, "U": Action.UID,
    "C": Action.CLEAN, "Z/D": Action.DUMMY, "X/Z": Action.BLANK, "X/D": Action.DUMMY,
    "X/Z/D": Action.DUMMY, "X/Z/U*": Action.KEEP,
}

OPTION_SETS: list[tuple[Option, ...]] = [()] + [(o,) for o in OPTION_ORDER] + [
    tuple(o for o in OPTION_ORDER if o is not Option.RETAIN_LONGITUDINAL_FULL_DATES)
]


def expected_code(row: dict[str, object], options: tuple[Option, ...]) -> tuple[str, str]:
    """The code the table gives a row under `options`, and the column it came from."""
    code, column = str(row["basic_profile"]), "basic_profile"
    for option in OPTION_ORDER:
        if option in options and row[COLUMN[option]] is not None:
            code, column = str(row[COLUMN[option]]), COLUMN[option]
    return code, column


def probe_tags(row: dict[str, object]) -> list[tuple[int, str | None]]:
    """Concrete (tag, private creator) instances that a row covers."""
    if row["tag_kind"] == "single":
        return [(int(str(row["tag_hex"]), 16), None)]
    if row["tag_kind"] == "private":
        return [(0x00091010, "ACME 1.0"), (0x7FD11001, "UNKNOWN")]
    tag = str(row["tag"])
    if tag.startswith("(50xx"):
        return [(0x50000010, None), (0x501E3000, None)]
    element = int(tag[6:10], 16)
    return [(0x60000000 | element, None), (0x601E0000 | element, None)]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: "+".join(x.value for x in o) or "basic")
def test_every_table_row_gets_the_tables_action(options: tuple[Option, ...]) -> None:
    plan = compile_plan("basic", [o.value for o in options])
    rows = reference_rows()
    assert len(rows) == 657
    checked = 0
    for row in rows:
        code, column = expected_code(row, options)
        for tag, creator in probe_tags(row):
            rule = plan.rule_for(tag, creator)
            assert rule is not None, row["tag"]
            if row["tag_hex"] in ("00100010", "00100020") and column == "basic_profile":
                assert rule.action in (Action.PATIENT_NAME, Action.PATIENT_ID)
            elif column == "retain_safe_private":
                # C for private attributes: only Table E.3.10-1's, by creator; these probes are not.
                assert rule.action is Action.REMOVE, row["tag"]
            elif column == "retain_longitudinal_modified_dates":
                assert rule.action is Action.SHIFT_DATE, row["tag"]
            else:
                assert rule.action is EXPECTED_ACTION[code], (row["tag"], code, rule)
            checked += 1
    assert checked >= 657


def test_safe_private_attributes_are_kept_only_with_their_creator() -> None:
    plan = compile_plan("basic", ["retain-safe-private"])
    kept = plan.rule_for(0x70531000, "Philips PET Private Group")
    assert kept is not None and kept.action is Action.KEEP
    other = plan.rule_for(0x70531000, "SOMEONE ELSE")
    assert other is not None and other.action is Action.REMOVE
    basic = compile_plan("basic").rule_for(0x70531000, "Philips PET Private Group")
    assert basic is not None and basic.action is Action.REMOVE


def test_option_names_are_the_standards_in_kebab_case() -> None:
    assert {o.value for o in Option} == {
        "retain-safe-private", "retain-uids", "retain-device-identity", "retain-institution-identity",
        "retain-patient-characteristics", "retain-longitudinal-full-dates",
        "retain-longitudinal-modified-dates", "clean-descriptors", "clean-structured-content",
        "clean-graphics", "clean-pixel-data", "clean-recognizable-visual-features",
    }
    for option in OPTION_ORDER:
        assert (RECIPES / option_recipe(option)).is_file()


@pytest.mark.parametrize("name", ["clean-recognizable-visual-features"])
def test_unimplemented_option_is_refused(name: str) -> None:
    with pytest.raises(ProfileError, match="not implemented"):
        compile_plan("basic", [name])


def test_unknown_option_is_refused() -> None:
    with pytest.raises(ProfileError, match="unknown option"):
        parse_options(["retain-everything"])


def test_contradictory_date_options_are_refused() -> None:
    with pytest.raises(ProfileError, match="contradict"):
        parse_options(["retain-longitudinal-full-dates", "retain-longitudinal-modified-dates"])


def test_options_are_applied_in_the_standards_order() -> None:
    chosen = parse_options(["clean-descriptors", "retain-uids"])
    assert chosen == (Option.RETAIN_UIDS, Option.CLEAN_DESCRIPTORS)


def test_plan_is_picklable_and_equal_after_a_round_trip() -> None:
    plan = compile_plan("basic", ["retain-safe-private", "clean-descriptors"])
    again = pickle.loads(pickle.dumps(plan))
    assert again == plan
    assert again.rule_for(0x00080050) == plan.rule_for(0x00080050)


def test_user_recipe_overrides_the_profile(tmp_path: Path) -> None:
    recipe = tmp_path / "site.deid"
    recipe.write_text("FORMAT dicom\n%header\nKEEP SeriesDescription\n")
    plan = compile_plan("basic", ["clean-descriptors"], [recipe])
    rule = plan.rule_for(0x0008103E)
    assert rule is not None and rule.action is Action.KEEP and rule.source == "site.deid:3"


def test_combined_codes_resolve_by_one_documented_table() -> None:
    assert set(COMBINED_RESOLUTION) == {
        "blank_or_dummy", "remove_or_blank", "remove_or_dummy", "remove_blank_or_dummy", "remove_blank_or_uids"
    }


def test_allow_list_names_no_row_of_the_table() -> None:
    rows = {int(str(r["tag_hex"]), 16) for r in reference_rows() if r["tag_kind"] == "single"}
    allow = compile_plan("basic")
    safe = [tag for tag, rule in allow.exact.items() if rule.source.startswith("safe_text.deid")]
    assert safe, "the allow-list is empty"
    assert not set(safe) & rows


def test_describe_lists_every_rule_with_its_source() -> None:
    rows = describe_plan(compile_plan("basic", ["retain-patient-characteristics"]))
    by_keyword = {r[1]: r for r in rows}
    assert by_keyword["PatientAge"][2] == "K"
    assert by_keyword["PatientAge"][4].startswith("retain_patient_characteristics.deid:")
    assert by_keyword["AccessionNumber"][2] == "Z"


def test_the_table_copy_is_complete() -> None:
    """The committed copy the tests read (profiles/table-e1-1.json) holds the whole table."""
    rows = reference_rows()
    assert len(rows) == 657 and len({r["tag"] for r in rows}) == 657
    assert sum(r["tag_kind"] == "single" for r in rows) == 653
    assert {str(r["basic_profile"]) for r in rows} == {"X", "D", "U", "Z", "X/D", "X/Z", "X/Z/D", "Z/D", "X/Z/U*"}
    assert sum(r["retain_longitudinal_full_dates"] == "K" for r in rows) == 169


def test_the_table_copy_is_the_reference_table() -> None:
    """Where ../shared/reference (or $DEID_REFERENCE) is at hand: the copy's rows are the
    reference's, column for column (the generator's --check below also compares the text)."""
    path = REFERENCE / "ps3.15-table-e1-1.json"
    if not path.exists():
        pytest.skip("../shared/reference is not beside the project (set DEID_REFERENCE)")
    table = json.loads(path.read_text())
    columns = json.loads(TABLE_COPY.read_text())["columns"]
    assert reference_rows() == [{c: row[c] for c in columns} for row in table]


def test_committed_recipes_are_what_the_generator_makes() -> None:
    if not (REFERENCE / "ps3.15-table-e1-1.json").exists():
        pytest.skip("../shared/reference is not beside the project (set DEID_REFERENCE)")
    result = subprocess.run(
        [sys.executable, str(REPO / "profiles" / "generate_recipes.py"), "--reference", str(REFERENCE), "--check"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_recipe_names_the_edition_and_its_cid_7050_code() -> None:
    for path in sorted(RECIPES.glob("*.deid")):
        head = path.read_text().splitlines()[:5]
        assert any("PS3.15 2026d" in line for line in head), path.name
        assert any("CID 7050 code: (1131" in line for line in head), path.name


def test_the_plan_reads_the_recipes_shipped_as_package_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 18: the recipes are package data found by importlib.resources, not a checkout path."""
    monkeypatch.delenv(PROFILES_ENV, raising=False)
    assert profiles_dir() == RECIPES
    plan = compile_plan("basic", [o.value for o in OPTION_ORDER if o is not Option.RETAIN_LONGITUDINAL_FULL_DATES])
    for name, digest in plan.recipes:
        assert hashlib.sha256((RECIPES / name).read_bytes()).hexdigest() == digest


def test_the_profiles_variable_replaces_the_packaged_recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROFILES_ENV, str(tmp_path))
    assert profiles_dir() == tmp_path
    with pytest.raises(ProfileError, match=r"recipe not found: safe_text\.deid"):
        compile_plan("basic")
