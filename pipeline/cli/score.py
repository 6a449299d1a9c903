"""``deid-pipeline score RELEASE --key KEY``: score a release of the sample archive against its answer key.

Exit 0: clean; 1: leaks; 3: no leak but facts, grouping, references or inputs lost.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.common import Subparsers
from pipeline.errors import InputError
from pipeline.evaluate.score import score, table


def _cmd_score(args: argparse.Namespace) -> int:
    """Exit 0: clean; 1: leaks; 3: no leak but facts, grouping, references or inputs lost."""
    if not args.release.is_dir():
        raise InputError("the release must be a folder")
    report = score(args.release, args.key, args.uid_mapping,
                   retain_patient_characteristics=args.retain_patient_characteristics)
    if args.json:
        print(report.to_json())
    else:
        print(table(report))
        print(report.to_json(with_findings=False))
    if report.total_leaks:
        return 1
    return 3 if report.total_integrity_failures else 0



def register(sub: Subparsers) -> None:
    parser = sub.add_parser("score", help="score a release of sample_data/archive against its answer key",
                            description="Score a de-identified release against the answer key of the sample archive.")
    parser.add_argument("release", type=Path, help="folder holding the de-identified output")
    parser.add_argument("--key", type=Path, required=True, help="answer key (sample_data/archive_key.json)")
    parser.add_argument("--uid-mapping", type=Path,
                        help="CSV with columns original,new (or id_old,id_new) to pair files by UID")
    parser.add_argument("--retain-patient-characteristics", action="store_true",
                        help="the release was made with that option: PatientSex and PatientAge must survive")
    parser.add_argument("--json", action="store_true", help="print one JSON line with counts and findings only")
    parser.set_defaults(handler=_cmd_score)
