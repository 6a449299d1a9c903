"""Recipes are linted strictly, line by line, then read by deid's own parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ProfileError
from pipeline.profile.pixel_rules import load_pixel_rules
from pipeline.profile.plan import compile_plan
from pipeline.profile.recipe import Verb, lint, load_recipe
from tests.conftest import RECIPES


def write(tmp_path: Path, body: str, name: str = "site.deid") -> Path:
    path = tmp_path / name
    path.write_text("FORMAT dicom\n\n%header\n" + body)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("KEEP PatientsFavouriteColour\n", r"site.deid:4: unknown DICOM keyword"),
        ("SHRED PatientName\n", r"site.deid:4: unknown or unsupported action"),
        ("REPLACE PatientName func:launder\n", r"site.deid:4: unknown function"),
        ("KEEP\n", r"site.deid:4: KEEP needs a field"),
        ("REMOVE PatientName now\n", r"site.deid:4: REMOVE takes a field and nothing else"),
        ("JITTER StudyDate 10\n", r"site.deid:4: unknown or unsupported action"),
        ("KEEP startswith:Patient\n", r"site.deid:4: field 'startswith:Patient' is not supported"),
        ("KEEP (0010,0010) # trailing\n", r"site.deid:4: a comment must be on a line of its own"),
        ("KEEP (0010,\"ACME\",10)\n", r"site.deid:4: private field .* names an even group"),
    ],
)
def test_a_bad_line_is_a_profile_error_naming_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        load_recipe(write(tmp_path, body))


def test_a_bad_user_recipe_stops_compilation(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"site\.deid:4"):
        compile_plan("basic", [], [write(tmp_path, "KEEP NoSuchKeyword\n")])


def test_missing_format_line_is_refused() -> None:
    with pytest.raises(ProfileError, match="FORMAT dicom"):
        lint("%header\nKEEP PatientName\n", "x.deid")


def test_unsupported_section_is_refused() -> None:
    with pytest.raises(ProfileError, match="only %header"):
        lint("FORMAT dicom\n%values names\n", "x.deid")


def test_missing_recipe_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="recipe not found"):
        compile_plan("basic", [], [tmp_path / "absent.deid"])


def test_deid_reads_every_shipped_recipe_as_the_lint_does() -> None:
    for path in sorted(RECIPES.glob("*.deid")):
        if path.name == "pixels.deid":
            assert load_pixel_rules(path).sha256  # %filter rules: their own lint (pixel_rules.py)
            continue
        recipe = load_recipe(path)  # raises if deid's parser disagrees with the lint
        assert recipe.lines, path.name
        assert len(recipe.sha256) == 64


def test_field_forms(tmp_path: Path) -> None:
    body = (
        "KEEP SeriesDescription\n"
        "REMOVE (0010,1010)\n"
        'KEEP (0029,"SIEMENS CSA HEADER",10)\n'
        "BLANK contains:^\\(60[0-9a-f][02468ace],4000\\)$\n"
        "REPLACE (0008,0080) func:remove_blank_or_dummy\n"
        "REPLACE StationName SITE-A\n"
        "ADD BurnedInAnnotation NO\n"
    )
    lines = load_recipe(write(tmp_path, body)).lines
    assert [line.verb for line in lines] == [
        Verb.KEEP, Verb.REMOVE, Verb.KEEP, Verb.BLANK, Verb.REPLACE, Verb.REPLACE, Verb.ADD
    ]
    assert lines[0].field.tag == 0x0008103E
    assert lines[2].field.private == (0x0029, "SIEMENS CSA HEADER", 0x10)
    assert lines[3].field.pattern is not None
    assert lines[5].value == "SITE-A"
