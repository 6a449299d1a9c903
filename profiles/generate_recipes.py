"""Generate the deid recipes in ``pipeline/recipes/`` from PS3.15 Table E.1-1 as data.

This is a development tool, not part of the package: the pipeline reads only the
generated ``*.deid`` files, which ship in the wheel as package data (the package never
reads ../shared). It also writes ``profiles/table-e1-1.json``, a compact copy of the table's
columns the tests check the recipes, plan and scrubber against, so they run without
``../shared``. Rebuild them all for a newer edition of the standard with::

    python profiles/generate_recipes.py --reference ../shared/reference --edition 2026d

Every row of the table becomes one action line in ``basic.deid``; every non-empty
cell of an option column becomes one line in that option's recipe. Rows are matched
on tag numbers, never keywords. Masked tags ((50xx,xxxx), (60xx,xxxx), private
groups) become ``contains:`` expressions anchored on the tag text, which both deid
and the pipeline's plan compiler read the same way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RECIPES = HERE.parent / "pipeline" / "recipes"

# Option recipes, in the order the standard's table lists its option columns. The
# plan applies them in this order (a later option wins over an earlier one).
OPTION_COLUMNS: dict[str, str] = {
    "retain_safe_private": "retain-safe-private",
    "retain_uids": "retain-uids",
    "retain_device_identity": "retain-device-identity",
    "retain_institution_identity": "retain-institution-identity",
    "retain_patient_characteristics": "retain-patient-characteristics",
    "retain_longitudinal_full_dates": "retain-longitudinal-full-dates",
    "retain_longitudinal_modified_dates": "retain-longitudinal-modified-dates",
    "clean_descriptors": "clean-descriptors",
    "clean_structured_content": "clean-structured-content",
    "clean_graphics": "clean-graphics",
}

# PS3.15 action code -> deid action line. Combined codes keep their meaning in the
# function name; the plan resolves them (pipeline/profile/plan.py, COMBINED_RESOLUTION).
ACTION_LINES: dict[str, str] = {
    "X": "REMOVE {field}",
    "Z": "BLANK {field}",
    "K": "KEEP {field}",
    "D": "REPLACE {field} func:dummy",
    "U": "REPLACE {field} func:uid",
    "C": "REPLACE {field} func:clean",
    "Z/D": "REPLACE {field} func:blank_or_dummy",
    "X/Z": "REPLACE {field} func:remove_or_blank",
    "X/D": "REPLACE {field} func:remove_or_dummy",
    "X/Z/D": "REPLACE {field} func:remove_blank_or_dummy",
    "X/Z/U*": "REPLACE {field} func:remove_blank_or_uids",
}

# Rows whose basic action is carried out with a keyed pseudonym (a D value, which
# both Z and Z/D allow): DESIGN.md "a pseudonymous patient ID and name per patient".
PSEUDONYM_ROWS: dict[str, str] = {
    "00100010": "REPLACE {field} func:patient_name",
    "00100020": "REPLACE {field} func:patient_id",
}

_MASK_HEX = "[0-9a-f]"
_EVEN_HEX = "[02468ace]"
_ODD_HEX = "[13579bdf]"


def field_of(row: dict[str, Any]) -> str:
    """Return the recipe field expression for one table row."""
    kind = row["tag_kind"]
    if kind == "single":
        return f"({row['tag_hex'][:4]},{row['tag_hex'][4:]})"
    if kind == "private":
        return rf"contains:^\({_MASK_HEX}{{3}}{_ODD_HEX},{_MASK_HEX}{{4}}\)$"
    if kind == "repeating_group":
        match = re.fullmatch(r"\(([0-9A-Fx]{4}),([0-9A-Fx]{4})\)", row["tag"])
        if match is None:
            raise ValueError(f"unexpected repeating-group tag {row['tag']}")
        group, element = match.groups()
        # Repeating groups are even (odd groups are private): the last group digit is even.
        group_re = "".join(_MASK_HEX if c == "x" else c.lower() for c in group[:3])
        group_re += _EVEN_HEX if group[3] == "x" else group[3].lower()
        element_re = "".join(_MASK_HEX if c == "x" else c.lower() for c in element)
        return rf"contains:^\({group_re},{element_re}\)$"
    raise ValueError(f"unknown tag kind {kind!r}")


def describe(row: dict[str, Any]) -> str:
    vr = row["vr"] or "no dictionary VR"
    retired = ", retired" if row["retired"] else ""
    return f"# {row['name']} {row['tag']} {vr}{retired}"


def action_line(row: dict[str, Any], code: str, column: str) -> str:
    field = field_of(row)
    if column == "basic_profile" and row["tag_hex"] in PSEUDONYM_ROWS:
        return PSEUDONYM_ROWS[row["tag_hex"]].format(field=field)
    if column == "retain_longitudinal_modified_dates" and code == "C":
        return f"REPLACE {field} func:shift_date"
    return ACTION_LINES[code].format(field=field)


def safe_private_lines(safe_rows: list[dict[str, Any]]) -> list[str]:
    """Retain Safe Private: one KEEP per row of Table E.3.10-1, by private creator."""
    lines = []
    for row in safe_rows:
        creator = row["private_creator"]
        if '"' in creator or "#" in creator:
            raise ValueError("a private creator with a quote or # cannot be written as a recipe field")
        lines.append(f"# {row['meaning'] or 'no meaning given'} {row['tag']}")
        lines.append(f'KEEP ({row["group"]},"{creator}",{row["element_in_block"]})')
    return lines


def header(edition: str, code: dict[str, Any], title: str, source: str, digest: str) -> list[str]:
    return [
        f"# PS3.15 {edition} Table E.1-1: {title}",
        f"# CID 7050 code: ({code['code_value']}, {code['coding_scheme_designator']}, "
        f"\"{code['code_meaning']}\")",
        f"# Generated by profiles/generate_recipes.py from {source} (sha256 {digest[:16]}).",
        "# Do not edit by hand: regenerate with `make profiles`.",
        "# Fields are tag numbers; masked tags are contains: expressions on the tag text.",
        "FORMAT dicom",
        "",
        "%header",
        "",
    ]


def build(reference: Path, edition: str) -> dict[str, str]:
    """Return recipe file name -> recipe text."""
    table_path = reference / "ps3.15-table-e1-1.json"
    table_bytes = table_path.read_bytes()
    digest = hashlib.sha256(table_bytes).hexdigest()
    rows: list[dict[str, Any]] = json.loads(table_bytes)
    safe_rows: list[dict[str, Any]] = json.loads((reference / "ps3.15-safe-private.json").read_text())
    codes = {c["table_e1_1_column"]: c for c in json.loads((reference / "cid7050.json").read_text())}
    rows = sorted(rows, key=lambda r: (r["tag_kind"] != "single", r["tag_hex"] or r["tag"]))

    recipes: dict[str, str] = {}
    lines = header(edition, codes["basic_profile"], "Basic Application Level Confidentiality Profile",
                   table_path.name, digest)
    for row in rows:
        lines += [describe(row) + f": {row['basic_profile']}",
                  action_line(row, row["basic_profile"], "basic_profile")]
    recipes["basic.deid"] = "\n".join(lines) + "\n"

    for column, option in OPTION_COLUMNS.items():
        code = codes[column]
        lines = header(edition, code, code["code_meaning"], table_path.name, digest)
        for row in rows:
            cell = row[column]
            if cell is None:
                continue
            if column == "retain_safe_private":
                lines.append(describe(row) + f": {cell} (removed unless listed below)")
                lines += safe_private_lines(safe_rows)
                continue
            lines += [describe(row) + f": {cell}", action_line(row, cell, column)]
        recipes[option.replace("-", "_") + ".deid"] = "\n".join(lines) + "\n"
    return recipes


TABLE_COPY = "table-e1-1.json"
# The columns of Table E.1-1 the tests read (tests/conftest.py reference_rows), in this order.
TABLE_COLUMNS = ("tag", "tag_kind", "tag_hex", "keyword", "vr", "basic_profile", *OPTION_COLUMNS)


def table_copy(reference: Path, edition: str) -> str:
    """A compact copy of Table E.1-1 for the tests, so they run in a clean clone without
    ``../shared``: the columns they read, one row per line, in the reference's order."""
    table_path = reference / "ps3.15-table-e1-1.json"
    table_bytes = table_path.read_bytes()
    rows: list[dict[str, Any]] = json.loads(table_bytes)
    head = {"source": f"PS3.15 {edition} Table E.1-1, {table_path.name}",
            "sha256": hashlib.sha256(table_bytes).hexdigest(), "generated_by": "profiles/generate_recipes.py",
            "columns": list(TABLE_COLUMNS)}
    lines = [json.dumps([row[column] for column in TABLE_COLUMNS]) for row in rows]
    return json.dumps(head)[:-1] + ', "rows": [\n' + ",\n".join(lines) + "\n]}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=HERE.parent.parent / "shared" / "reference")
    parser.add_argument("--edition", default="2026d")
    parser.add_argument("--out", type=Path, default=RECIPES)
    parser.add_argument("--check", action="store_true", help="fail if a committed recipe differs")
    args = parser.parse_args(argv)
    recipes = build(args.reference, args.edition)
    outputs = {args.out / name: text for name, text in recipes.items()}
    outputs[HERE / TABLE_COPY] = table_copy(args.reference, args.edition)  # for the tests, not shipped
    stale = []
    for target, text in outputs.items():
        name = target.name
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(name)
            continue
        target.write_text(text)
    if stale:
        print("stale: " + ", ".join(stale), file=sys.stderr)
        return 1
    print(f"{'checked' if args.check else 'wrote'} {len(recipes)} recipes in {args.out} and {TABLE_COPY} in {HERE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
