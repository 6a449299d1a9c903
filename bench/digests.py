"""Digests of scrub_bytes' output and verify's finding rules for the 500-file bench corpus and pydicom's
test files, under the bench's options and under none: a performance change must leave both unchanged
(issue 16). An input that fails is recorded by its reason code.

Usage, from the checkout (after `.venv/bin/python bench/corpus.py --files 500`):
    .venv/bin/python bench/digests.py before.json        # on the old commit
    .venv/bin/python bench/digests.py after.json         # on the new one
    .venv/bin/python bench/digests.py --compare before.json after.json   # exit 1 when any input differs
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import warnings
from pathlib import Path

import pydicom.data

from pipeline.profile.plan import Plan, compile_plan
from pipeline.runner.process import pixel_bound, scrub_bytes
from pipeline.runner.release import release_name
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes

OPTIONS = ("retain-longitudinal-modified-dates", "retain-patient-characteristics", "clean-descriptors")
KEY = Keys(key=bytes(range(32)) + b"deid-pipeline-bench")  # the bench's public key
CORPUS = Path(__file__).resolve().parent / "corpus" / "500-seed7-v1"


@functools.lru_cache(maxsize=2)
def _plan(options: tuple[str, ...]) -> Plan:
    return compile_plan("basic", list(options))


def _outcome(data: bytes, options: tuple[str, ...]) -> list[object]:
    plan = _plan(options)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scrubbed = scrub_bytes(data, plan, KEY)
            findings = verify_bytes(scrubbed.data, tuple(o.value for o in plan.options), original=data,
                                    output_path=release_name(scrubbed.dataset).as_posix(), pixels=pixel_bound(plan))
        return [hashlib.sha256(scrubbed.data).hexdigest()[:16], sorted({f.rule.value for f in findings})]
    except BaseException as exc:  # a codec's panic too: recorded, not raised
        return ["error", getattr(exc, "code", type(exc).__name__)]


def digests() -> dict[str, list[object]]:
    """Input name -> [output digest, finding rules] (or ["error", reason])."""
    corpus = sorted(CORPUS.rglob("*.dcm"))
    bundled = sorted(p for p in Path(pydicom.data.__file__).parent.rglob("*")
                     if p.is_file() and p.suffix.lower() in (".dcm", ""))
    result: dict[str, list[object]] = {}
    for options in (OPTIONS, ()):
        label = "+".join(o[:12] for o in options) or "basic"
        for path in corpus[:: 1 if options else 5]:
            result[f"{label}:{path.relative_to(CORPUS.parent)}"] = _outcome(path.read_bytes(), options)
        for path in bundled:
            result[f"{label}:{path.name}"] = _outcome(path.read_bytes(), options)
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["--compare"]:
        before, after = (json.loads(Path(p).read_text()) for p in argv[1:3])
        differ = [name for name in before if before[name] != after.get(name)]
        print(f"{len(before)} inputs, {len(differ)} differ")
        for name in differ[:40]:
            print(name, before[name], "->", after.get(name))
        return 1 if differ else 0
    found = digests()
    Path(argv[0]).write_text(json.dumps(found, indent=0, sort_keys=True))
    print(len(found), "inputs;", sum(1 for v in found.values() if v[0] == "error"), "errors")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
