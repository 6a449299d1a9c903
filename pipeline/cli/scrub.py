"""``deid-pipeline scrub INPUT OUTPUT``: de-identify one file, without a release or a manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.common import EXIT_FINDINGS, EXIT_OK, Subparsers, add_key_arguments, add_profile_arguments, plan_from
from pipeline.errors import InputError, PipelineError
from pipeline.files import write_atomically
from pipeline.runner.process import source_id
from pipeline.runner.scrubbed import scrub_bytes
from pipeline.scrub.keys import load_keys


def _cmd_scrub(args: argparse.Namespace) -> int:
    plan = plan_from(args)
    keys = load_keys(args.key_file, args.lookup)
    try:
        data = args.input.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the input ({exc.strerror})") from None
    sid = source_id(data)[:16]
    try:
        result = scrub_bytes(data, plan, keys)
    except PipelineError as exc:
        print(f"input {sid}: not scrubbed: {exc.code}: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    except Exception as exc:
        print(f"input {sid}: not scrubbed: unexpected {type(exc).__name__}", file=sys.stderr)
        return EXIT_FINDINGS
    write_atomically(result.data, args.output)
    counts = ", ".join(f"{action} {count}" for action, count in result.log.actions)
    print(f"input {sid}: scrubbed ({counts})")
    return EXIT_OK



def register(sub: Subparsers) -> None:
    one = sub.add_parser("scrub", help="de-identify one file")
    one.add_argument("input", type=Path)
    one.add_argument("output", type=Path)
    add_profile_arguments(one)
    add_key_arguments(one)
    one.set_defaults(handler=_cmd_scrub)
