"""The package's layering is checked by import-linter (`make lint`, contracts in pyproject.toml).
These tests make sure the contracts bite: the repository passes, and a copy of the package with one
forbidden import planted fails with the contract that forbids it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _plant(module: Path, line: str) -> None:
    text = module.read_text()
    anchor = "from __future__ import annotations\n"
    assert anchor in text
    module.write_text(text.replace(anchor, anchor + line + "\n", 1))


def test_the_package_keeps_every_contract() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("verify/checks.py", "import pipeline.scrub.header", "verify and scan read the standard themselves"),
    ("scan/tree.py", "import pipeline.pixels.clean", "verify and scan read the standard themselves"),
    ("verify/high_bits.py", "import pipeline.pixels.unused_bits", "verify and scan read the standard themselves"),
    ("scrub/header.py", "import distributed", "only runner and cli know Dask"),
    ("dicom/file.py", "import pipeline.scrub.keys", "stages are layered"),
    ("runner/orchestrate.py", "import pipeline.cli.main", "stages are layered"),
    ("scrub/clean.py", "import deid", "profile is the only importer of deid"),
    ("scrub/uids.py", "import pipeline.scrub.header", "no import cycles"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    root = _copy(tmp_path)
    _plant(root / "pipeline" / module, line)
    result = _lint(root)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in " ".join(broken.split()), result.stdout[-3000:]
