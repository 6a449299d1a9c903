"""deid-pipeline's command line: argparse -> the pipeline. The only code that prints or exits.

Exit codes: 0 success; 1 a file was quarantined or a finding was made; 2 a usage, profile or
key error (nothing was touched).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline import __version__
from pipeline.config import OPTION_ORDER, Option
from pipeline.errors import InputError, KeyMaterialError, PipelineError, ProfileError
from pipeline.keys import MIN_KEY_BYTES, load_keys
from pipeline.plan import PROFILES, PixelMode, Plan, compile_plan, describe_plan
from pipeline.process import scrub_bytes, source_id
from pipeline.write import write_atomically

log = logging.getLogger("pipeline")

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


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


def add_key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-file", type=Path, default=None,
                        help="secret key file (default: $DEID_PIPELINE_KEY_FILE)")
    parser.add_argument("--lookup", type=Path, default=None, metavar="CSV",
                        help="original PatientID -> research ID table (columns original,research)")


def plan_from(args: argparse.Namespace) -> Plan:
    mode = getattr(args, "clean_pixels", None)
    return compile_plan(args.profile, args.option, args.recipe, pixel_mode=PixelMode(mode) if mode else None)


# --- profiles show -------------------------------------------------------------------------

def _cmd_profiles_show(args: argparse.Namespace) -> int:
    args.profile = args.name
    plan = plan_from(args)
    print(f"# profile {plan.profile}; options: {', '.join(o.value for o in plan.options) or 'none'}")
    for name, digest in plan.recipes:
        print(f"# recipe {name} sha256 {digest[:16]}")
    print("tag\tkeyword\taction\twritten\tsource")
    for row in describe_plan(plan):
        print("\t".join(row))
    return EXIT_OK


# --- scrub: one file -----------------------------------------------------------------------

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


# --- keygen --------------------------------------------------------------------------------

def _cmd_keygen(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.exists() and not args.force:
        print(f"{path} exists; keeping it (use --force to replace)", file=sys.stderr)
        return EXIT_OK
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(MIN_KEY_BYTES) + "\n")
    os.chmod(path, 0o600)
    print(f"wrote a new key to {path} (owner-only); keep it secret and keep it safe")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deid-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"deid-pipeline {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)

    profiles = sub.add_parser("profiles", help="inspect profiles").add_subparsers(dest="what", required=True)
    show = profiles.add_parser("show", help="print the resolved action for every attribute")
    show.add_argument("name", choices=sorted(PROFILES))
    show.add_argument("--option", action="append", default=[], metavar="NAME")
    show.add_argument("--recipe", action="append", default=[], type=Path, metavar="FILE")
    show.set_defaults(handler=_cmd_profiles_show)

    one = sub.add_parser("scrub", help="de-identify one file")
    one.add_argument("input", type=Path)
    one.add_argument("output", type=Path)
    add_profile_arguments(one)
    add_key_arguments(one)
    one.set_defaults(handler=_cmd_scrub)

    keygen = sub.add_parser("keygen", help="create a random key file, readable by its owner only")
    keygen.add_argument("path", type=Path)
    keygen.add_argument("--force", action="store_true")
    keygen.set_defaults(handler=_cmd_keygen)

    _import_commands()
    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


def _import_commands() -> None:
    """Import the modules that define the other commands; each appends to EXTRA_COMMANDS."""
    import pipeline.report_command
    import pipeline.run_command
    import pipeline.verify_command  # noqa: F401


# Commands defined in their own modules register here (run, verify, scan).
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = []


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


__all__ = ["OPTION_ORDER", "main"]

if __name__ == "__main__":
    # `python -m pipeline.cli` runs this file as __main__, a second copy of the module: the
    # commands register with pipeline.cli, so its main is the one that knows them all.
    from pipeline.cli import main as registered_main

    sys.exit(registered_main())
