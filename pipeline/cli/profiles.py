"""``deid-pipeline profiles show NAME``: the resolved action for every attribute of a profile."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.common import EXIT_OK, Subparsers, plan_from
from pipeline.errors import ProfileError
from pipeline.profile.iod import iod_for
from pipeline.profile.plan import PROFILES, describe_plan
from pipeline.profile.resolution import describe_resolution


def _cmd_profiles_show(args: argparse.Namespace) -> int:
    args.profile = args.name
    plan = plan_from(args)
    print(f"# profile {plan.profile}; options: {', '.join(o.value for o in plan.options) or 'none'}")
    for name, digest in plan.recipes:
        print(f"# recipe {name} sha256 {digest[:16]}")
    iod = None
    if args.sop_class:
        iod = iod_for(args.sop_class)
        if iod is None:
            raise ProfileError("the PS3.3 table has no IOD for that SOP class")
        print(f"# IOD {iod.iod} (top level): combined codes and requirements resolved by Type")
    else:
        print("# no SOP class given: combined codes show the conservative choice (--sop-class UID resolves by Type)")
    print("tag\tkeyword\tvr\ttype\taction\twhy")
    for row in describe_resolution(plan, iod):
        print("\t".join(row))
    for plan_row in describe_plan(plan):
        tag, keyword, action, written, source = plan_row
        if tag.startswith("contains:") or '"' in tag or written == "ADD":  # patterns, private, additions
            print("\t".join((tag, keyword, "", "", action, f"recipe: {written} ({source})")))
    return EXIT_OK



def register(sub: Subparsers) -> None:
    profiles = sub.add_parser("profiles", help="inspect profiles").add_subparsers(dest="what", required=True)
    show = profiles.add_parser("show", help="print the resolved action for every attribute")
    show.add_argument("name", choices=sorted(PROFILES))
    show.add_argument("--option", action="append", default=[], metavar="NAME")
    show.add_argument("--recipe", action="append", default=[], type=Path, metavar="FILE")
    show.add_argument("--sop-class", default="", metavar="UID",
                      help="resolve combined codes and required attributes by Type in this SOP class's IOD")
    show.set_defaults(handler=_cmd_profiles_show)
