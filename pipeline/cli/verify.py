"""``deid-pipeline verify RELEASE``: check a release, print counts, write report.json.

    deid-pipeline verify RELEASE [--originals INPUT...] [--option NAME]... [--key-file K] [--json FILE]

Every file of the release is checked by `pipeline.verify.checks.verify_bytes` (on Dask:
`pipeline.runner.verify_release`). With originals, each output is paired with its input through
the SOP Instance UID: the original's UID remapped under the key (or the same UID with Retain
UIDs). The options are the run record's (``RELEASE.run.json``) when it is beside the release,
else each file's declared ones; ``--option`` must agree with the record
(`pipeline.runner.verify_options`). With originals the pixels are compared too
(`pipeline.verify.pixels`: changes only in blanked rectangles, the run record's bound on the
changed share, and with a run made with OCR the cleaned places re-read by tesseract). Prints
which options it used, counts and release-relative paths only, never a value; ``--json``
writes the findings. Exit codes: 0 clean, 1 findings, 2 usage, profile or key error
(``--option`` contradicting the run record included).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.common import EXIT_FINDINGS, EXIT_OK, Subparsers, print_table, table, write_json
from pipeline.errors import InputError
from pipeline.pixels.ocr import require as require_ocr
from pipeline.runner.verify_options import choose_options
from pipeline.runner.verify_release import index_originals, pixel_bound, verify_release
from pipeline.scrub.keys import load_keys
from pipeline.verify.findings import VerifyRule
from pipeline.verify.pixels import CEILING, PixelBound

MAX_LISTED_FILES = 50






















def _cmd_verify(args: argparse.Namespace) -> int:
    release: Path = args.release
    if not release.is_dir():
        raise InputError("the release is not a directory")
    chosen = choose_options(release, args.option)
    options = None if chosen.is_per_file else chosen.options
    originals: dict[str, Path] | None = None
    if args.originals:
        keys = None if options is not None and "retain-uids" in options else load_keys(args.key_file)
        originals = index_originals(args.originals, keys, as_is=options is None, release=release)
    skip = args.json.resolve() if args.json is not None else None
    if args.ocr:
        require_ocr()
    print(chosen.describe())
    pixels = pixel_bound(release)
    print(_describe_pixels(pixels, originals is not None))
    count, findings = verify_release(release, options, originals, skip, args.ocr, args.workers, args.scheduler,
                                     announce=lambda message: print(message, file=sys.stderr), pixels=pixels)
    flagged = sorted({f.file for f in findings})
    print(f"verified {count} file(s); {len(flagged)} with findings")
    print_table(findings)
    withheld = {f.file for f in findings if f.rule == VerifyRule.VALUE_IN_PATH}
    for file in flagged[:MAX_LISTED_FILES]:
        rules = sorted({str(f.rule) for f in findings if f.file == file})
        print(f"  {'<path withheld: it holds an original value>' if file in withheld else file}: {', '.join(rules)}")
    if len(flagged) > MAX_LISTED_FILES:
        print(f"  ... and {len(flagged) - MAX_LISTED_FILES} more (see --json)")
    if args.json is not None:
        write_json(args.json, {
            "command": "verify", "files": count, "options_source": chosen.source.value,
            "options": None if options is None else list(options), "with_originals": originals is not None,
            "counts": [{"rule": r, "severity": s, "count": n} for r, s, n in table(findings)],
            "findings": [f.as_dict() for f in findings],
        })
    return EXIT_FINDINGS if findings else EXIT_OK








def _describe_pixels(pixels: PixelBound, with_originals: bool) -> str:
    """One line saying what is checked of the pixels (`pipeline.verify.pixels`)."""
    if not with_originals:
        if pixels.reread:
            return ("pixels: no originals; images (but CT, MR, PET, NM) that say BurnedInAnnotation NO are read whole "
                    "by OCR (run record: ocr)")
        return "pixels: not compared (no originals)"
    bound = "" if pixels.max_cleaned_fraction is None else f", at most {pixels.max_cleaned_fraction:.1%} changed"
    reread = "; the cleaned places re-read by OCR" if pixels.reread else ""
    return (f"pixels: compared with the originals (changes only in blanked rectangles{bound}, "
            f"never {CEILING:.0%}){reread}")


def register(sub: Subparsers) -> None:
    """Add the `verify` command to the CLI."""
    verify = sub.add_parser("verify", help="check a release against the profile (and its originals)")
    verify.add_argument("release", type=Path)
    verify.add_argument("--originals", nargs="+", type=Path, default=[], metavar="INPUT",
                        help="the input files or folders the release was made from")
    verify.add_argument("--option", action="append", default=[], metavar="NAME",
                        help="a PS3.15 option the release was made with (repeatable; default: the run "
                        "record's, else what each file declares; must agree with the run record)")
    verify.add_argument("--key-file", type=Path, default=None,
                        help="the run's key, to pair outputs with originals (default: $DEID_PIPELINE_KEY_FILE)")
    verify.add_argument("--json", type=Path, default=None, metavar="FILE", help="write report.json here")
    verify.add_argument("--workers", type=int, default=None, metavar="N",
                        help="local Dask worker processes (default: one per core; 0: in this process)")
    verify.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="verify on the Dask scheduler at ADDRESS (e.g. tcp://host:8786)")
    verify.add_argument("--ocr", action="store_true",
                        help="also read every image with tesseract: readable text left in pixels is a finding")
    verify.set_defaults(handler=_cmd_verify)

