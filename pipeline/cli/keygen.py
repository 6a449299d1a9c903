"""``deid-pipeline keygen PATH``: a new random key file, readable by its owner only."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from pipeline.cli.common import EXIT_OK, Subparsers
from pipeline.scrub.keys import MIN_KEY_BYTES


def _make_private_parents(folder: Path) -> None:
    """Create `folder` and the folders above it that are missing, each owner-only (0700): a
    key's folder lists its name to no one else. A folder that exists is left as it is."""
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(mode=0o700, exist_ok=True)


def _cmd_keygen(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.exists() and not args.force:
        print(f"{path} exists; keeping it (use --force to replace)", file=sys.stderr)
        return EXIT_OK
    _make_private_parents(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(MIN_KEY_BYTES) + "\n")
    os.chmod(path, 0o600)
    print(f"wrote a new key to {path} (owner-only); keep it secret and keep it safe")
    return EXIT_OK



def register(sub: Subparsers) -> None:
    keygen = sub.add_parser("keygen", help="create a random key file, readable by its owner only")
    keygen.add_argument("path", type=Path)
    keygen.add_argument("--force", action="store_true")
    keygen.set_defaults(handler=_cmd_keygen)
