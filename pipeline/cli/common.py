"""What every command shares: exit codes, the profile and key arguments, the plan they name."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import TypeAlias

from pipeline.pixels.clean import require_for
from pipeline.profile.options import Option
from pipeline.profile.plan import DEFAULT_MAX_CLEANED_FRACTION, PROFILES, PixelMode, Plan, compile_plan
from pipeline.verify.findings import Finding

# 0 success; 1 a file was quarantined or a finding was made; 2 a usage, profile or key error.
EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """--profile, --option (repeatable) and --recipe (repeatable), shared by every command."""
    parser.add_argument("--profile", default="basic", choices=sorted(PROFILES))
    parser.add_argument(
        "--option", action="append", default=[], metavar="NAME",
        help="a PS3.15 option in kebab case, e.g. retain-patient-characteristics "
        f"(known: {', '.join(o.value for o in Option)})",
    )
    parser.add_argument("--recipe", action="append", default=[], type=Path, metavar="FILE",
                        help="a deid recipe layered over the profile and its options")
    parser.add_argument("--clean-pixels", choices=[m.value for m in PixelMode if m is not PixelMode.OFF],
                        default=None, help="clean burned-in text by the pixel rules (implies clean-pixel-data), "
                        "or by the rules and then OCR (tesseract)")
    parser.add_argument("--max-cleaned-fraction", type=float, default=None, metavar="SHARE",
                        help="with --clean-pixels ocr: an image whose OCR would change more than this share of its "
                        f"pixels, or a third of its anatomy, is quarantined as pixels-need-review "
                        f"(default {DEFAULT_MAX_CLEANED_FRACTION})")


def add_key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-file", type=Path, default=None,
                        help="secret key file (default: $DEID_PIPELINE_KEY_FILE)")
    parser.add_argument("--lookup", type=Path, default=None, metavar="CSV",
                        help="original PatientID -> research ID table (columns original,research)")


def plan_from(args: argparse.Namespace) -> Plan:
    """The plan the arguments name; with pixel mode ocr, tesseract must answer (a `ProfileError`
    before any file is read)."""
    mode = getattr(args, "clean_pixels", None)
    plan = compile_plan(args.profile, args.option, args.recipe, pixel_mode=PixelMode(mode) if mode else None,
                        max_cleaned_fraction=getattr(args, "max_cleaned_fraction", None))
    require_for(plan)
    return plan


# --- findings, as the verify and scan commands print and write them ----------------------


def table(findings: list[Finding]) -> list[tuple[str, str, int]]:
    counts = Counter((str(f.rule), f.severity) for f in findings)
    return [(rule, severity.value, n) for (rule, severity), n in
            sorted(counts.items(), key=lambda item: (item[0][1].rank, item[0][0]))]


def print_table(findings: list[Finding]) -> None:
    if not findings:
        return
    print(f"{'rule':<32} {'severity':<8} {'count':>7}")
    for rule, severity, count in table(findings):
        print(f"{rule:<32} {severity:<8} {count:>7}")


def write_json(path: Path, report: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")

