"""What other de-identifiers leave behind in the sample archive, and that verify and scan see it.

deid's default recipe (its shipped `deid.dicom`, through `replace_identifiers`) and dicognito's
command line each de-identify the good files of `sample_data/archive`. verify (each output with
its input as the original) and scan_tree (each tool's output folder) are run on the outputs and
their findings counted per rule; the table prints with `pytest -s`. Our own pipeline, run on the
same inputs, has no verify finding. Findings never carry values, and neither does this file's
output.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline.runner.verify_release import index_originals, verify_release
from pipeline.scan.tree import ScanReport, ScanRule, scan_tree
from pipeline.scrub.keys import load_keys
from pipeline.verify.checks import verify_bytes
from pipeline.verify.findings import Finding, Severity, VerifyRule
from tests.verify.test_recall import ARCHIVE, good_files, run_pipeline

# Rules that prove an original value is still there (uid-not-remapped is left out: dicognito's new
# UIDs are fresh but not 2.25 UIDs, which verify also reports under that rule).
IDENTIFYING = frozenset({VerifyRule.ORIGINAL_VALUE_IN_BYTES, VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE,
                         VerifyRule.VALUE_IN_PATH, VerifyRule.VALUE_NOT_REPLACED, VerifyRule.DATE_NOT_SHIFTED})
TOOLS = ("deid", "dicognito", "deid-pipeline")


@dataclass
class ToolResult:
    """One tool's outputs on the good files: (input, output) pairs, failures, findings."""

    name: str
    root: Path
    pairs: list[tuple[str, Path]] = field(default_factory=list)  # archive-relative input, output file
    failed: int = 0
    verify: list[Finding] = field(default_factory=list)
    scan: ScanReport | None = None

    def verify_counts(self) -> Counter[str]:
        return Counter(str(f.rule) for f in self.verify)

    def scan_counts(self) -> Counter[str]:
        return Counter(str(f.rule) for f in self.scan.findings) if self.scan is not None else Counter()


def _outputs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _check(result: ToolResult) -> ToolResult:
    """verify each output against its input; scan the output folder."""
    for rel, output in result.pairs:
        found = verify_bytes(output.read_bytes(), (), original=(ARCHIVE / rel).read_bytes(),
                             output_path=output.relative_to(result.root).as_posix())
        result.verify += [Finding(f.rule, f.path, f.severity, rel, f.detail) for f in found]
    result.scan = scan_tree(result.root)
    return result


def run_deid(root: Path) -> ToolResult:
    """deid's default recipe, one call per file (a failure is counted, not raised)."""
    result = ToolResult("deid", root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from deid.config import DeidRecipe
        from deid.dicom import get_identifiers, replace_identifiers

        recipe = DeidRecipe()  # deid's shipped deid.dicom
        for index, rel in enumerate(good_files()):
            folder = root / f"{index:02d}"
            folder.mkdir(parents=True)
            source = str(ARCHIVE / rel)
            try:
                replace_identifiers([source], deid=recipe, ids=get_identifiers([source]), save=True,
                                    output_folder=str(folder))
            except Exception:  # a tool failing on a file is a result, not an error of this test
                result.failed += 1
                continue
            outputs = _outputs(folder)
            if len(outputs) == 1:
                result.pairs.append((rel, outputs[0]))
            else:
                result.failed += 1
    return _check(result)


def _dicognito_one(job: tuple[int, str, Path]) -> tuple[str, Path | None]:
    index, rel, root = job
    folder = root / f"{index:02d}"
    done = subprocess.run(
        [sys.executable, "-m", "dicognito", "--output-directory", str(folder), "--seed", "1729", "--quiet",
         str(ARCHIVE / rel)], capture_output=True, text=True, timeout=60, check=False)
    outputs = _outputs(folder) if folder.exists() else []
    return rel, outputs[0] if done.returncode == 0 and len(outputs) == 1 else None


def run_dicognito(root: Path) -> ToolResult:
    """dicognito's command line (`python -m dicognito`: its 0.19 console script is broken), one
    process per file so that a failure costs one file; default burned-in handling (warn)."""
    result = ToolResult("dicognito", root)
    jobs = [(index, rel, root) for index, rel in enumerate(good_files())]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for rel, output in pool.map(_dicognito_one, jobs):
            if output is None:
                result.failed += 1
            else:
                result.pairs.append((rel, output))
    return _check(result)


def run_ours(base: Path) -> ToolResult:
    """deid-pipeline run on a copy of the good files only; verify_release pairs by remapped UID."""
    inputs = base / "archive"
    for rel in good_files():
        (inputs / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARCHIVE / rel, inputs / rel)
    completed, release, key_file = run_pipeline(inputs, base)
    result = ToolResult("deid-pipeline", release)
    assert completed.returncode == 1, completed.stdout + completed.stderr  # the PDFs are quarantined
    originals = index_originals([inputs], load_keys(key_file))
    _, result.verify = verify_release(release, ("clean-pixel-data",), originals)
    result.pairs = [("", p) for p in _outputs(release)]
    result.failed = len(good_files()) - len(result.pairs)
    result.scan = scan_tree(release)
    return result


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ToolResult]:
    base = tmp_path_factory.mktemp("competitors")
    found = {
        "deid": run_deid(base / "deid"),
        "dicognito": run_dicognito(base / "dicognito"),
        "deid-pipeline": run_ours(base / "ours"),
    }
    _print_table(found)
    return found


def _rows(results: dict[str, ToolResult]) -> Iterator[str]:
    width = 34
    yield f"{'':<{width}}" + "".join(f"{name:>15}" for name in TOOLS)
    yield f"{'files out / failed':<{width}}" + "".join(
        f"{f'{len(results[n].pairs)}/{results[n].failed}':>15}" for n in TOOLS)
    for title, counts in (("verify", lambda r: r.verify_counts()), ("scan", lambda r: r.scan_counts())):
        rules = sorted(set().union(*(counts(results[n]) for n in TOOLS)))
        for rule in rules:
            yield f"{title + ' ' + rule:<{width}}" + "".join(f"{counts(results[n])[rule]:>15}" for n in TOOLS)


def _print_table(results: dict[str, ToolResult]) -> None:
    print(f"\nfindings per rule on the {len(good_files())} good files of sample_data/archive")
    for row in _rows(results):
        print(row)


# --- what each tool leaves, as verify and scan see it ---------------------------------------


def _files_with(result: ToolResult, rule: str) -> set[str]:
    return {f.file for f in result.verify if f.rule == rule}


@pytest.mark.parametrize("tool", ["deid", "dicognito"])
def test_each_tool_leaves_identifying_values_that_verify_catches(results: dict[str, ToolResult], tool: str) -> None:
    result = results[tool]
    assert result.pairs, f"{tool} wrote nothing"
    identifying = [f for f in result.verify if f.rule in IDENTIFYING and f.severity is Severity.HIGH]
    assert identifying
    assert result.scan is not None and result.scan.has_high


def test_deid_default_recipe_leaves_private_tags_padding_nested_values_and_the_file_name(
        results: dict[str, ToolResult]) -> None:
    result = results["deid"]
    counts = result.verify_counts()
    assert counts[VerifyRule.PRIVATE_NOT_ALLOWED] > 0
    assert counts[VerifyRule.TRAILING_PADDING] > 0
    assert counts[VerifyRule.ORIGINAL_VALUE_IN_BYTES] > 0
    assert _files_with(result, VerifyRule.VALUE_IN_PATH)  # the output keeps the input's file name (accession)
    nested = {f.path for f in result.verify if f.rule in IDENTIFYING and "[" in f.path}
    assert nested  # values inside sequences survive the default recipe
    assert result.scan_counts()[ScanRule.PRIVATE_TAG] > 0


def test_dicognito_leaves_private_tags_padding_and_original_values_in_attributes(
        results: dict[str, ToolResult]) -> None:
    result = results["dicognito"]
    counts = result.verify_counts()
    assert counts[VerifyRule.ORIGINAL_VALUE_IN_ATTRIBUTE] > 0
    assert counts[VerifyRule.PRIVATE_NOT_ALLOWED] > 0
    assert counts[VerifyRule.TRAILING_PADDING] > 0
    assert counts[VerifyRule.ORIGINAL_VALUE_IN_BYTES] > 0
    assert result.scan_counts()[ScanRule.PRIVATE_TAG] > 0


def test_both_tools_leave_burned_in_pixels_flagged_by_scan(results: dict[str, ToolResult]) -> None:
    for tool in ("deid", "dicognito"):
        assert results[tool].scan_counts()[ScanRule.BURNED_IN_ANNOTATION] > 0, tool


def test_our_pipeline_on_the_same_inputs_has_no_verify_finding(results: dict[str, ToolResult]) -> None:
    ours = results["deid-pipeline"]
    documents = [rel for rel in good_files() if "_DOC" in rel]  # encapsulated PDFs: quarantined, not cleaned
    assert documents
    assert len(ours.pairs) == len(good_files()) - len(documents) and ours.failed == len(documents)
    assert ours.verify == []
    assert ours.scan_counts()[ScanRule.BURNED_IN_ANNOTATION] == 0
