"""Where verify reads the recipes: the package data, or $DEID_PIPELINE_PROFILES (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.datadict import tag_for_keyword

from pipeline.errors import ProfileError
from pipeline.verify.profile import PROFILES_ENV, Expect, load_profile


def test_verify_reads_the_recipes_shipped_as_package_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILES_ENV, raising=False)
    profile = load_profile(("retain-uids",))
    rule = profile.rule_for(tag_for_keyword("StudyInstanceUID"), None)
    assert rule is not None and rule.expect is Expect.KEEP  # retain_uids.deid, read from the package
    basic = load_profile(()).rule_for(tag_for_keyword("StudyInstanceUID"), None)
    assert basic is not None and basic.expect is Expect.UID


def test_the_profiles_variable_replaces_the_packaged_recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROFILES_ENV, str(tmp_path))
    with pytest.raises(ProfileError, match=r"recipe not found or unreadable: safe_text\.deid"):
        load_profile(())
