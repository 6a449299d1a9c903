"""deid-pipeline's command line: argparse -> the pipeline. The only code that prints or exits.

Exit codes: 0 success; 1 a file was quarantined or a finding was made; 2 a usage, profile or
key error (nothing was touched). Each command lives in its own module with a ``register``
function; this module builds the parser from them and maps errors to exit codes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from pipeline.cli import keygen, profiles, report, run, scan, score, scrub, verify
from pipeline.cli.common import EXIT_FINDINGS, EXIT_USAGE
from pipeline.errors import InputError, KeyMaterialError, PipelineError, ProfileError
from pipeline.version import __version__

log = logging.getLogger("pipeline")

# In the order `deid-pipeline --help` lists them.
COMMANDS = (profiles, scrub, keygen, run, report, verify, scan, score)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deid-pipeline",
        description="De-identify DICOM files by the PS3.15 Basic Application Level Confidentiality Profile.")
    parser.add_argument("--version", action="version", version=f"deid-pipeline {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except (ProfileError, KeyMaterialError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineError as exc:  # e.g. the run's own records could not be written (disk full)
        print(f"error: {exc.code}: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


