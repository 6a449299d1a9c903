"""``deid-pipeline profiles show NAME``: the resolved action for every attribute of a profile."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.common import EXIT_OK, Subparsers, plan_from
from pipeline.profile.plan import PROFILES, describe_plan


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



def register(sub: Subparsers) -> None:
    profiles = sub.add_parser("profiles", help="inspect profiles").add_subparsers(dest="what", required=True)
    show = profiles.add_parser("show", help="print the resolved action for every attribute")
    show.add_argument("name", choices=sorted(PROFILES))
    show.add_argument("--option", action="append", default=[], metavar="NAME")
    show.add_argument("--recipe", action="append", default=[], type=Path, metavar="FILE")
    show.set_defaults(handler=_cmd_profiles_show)
