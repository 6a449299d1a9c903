"""Whether a staged output may be published: the installed verifier's verdict on its bytes,
read fail closed.

The verifier (`VERIFY`, by default `pipeline.verify.checks.verify_file`) is given the very bytes
that are written next, the original and the release name. An output is published only on a
positive `Verdict` (elements checked, the original searched, no finding): a verifier that cannot
be imported (``verify-unavailable``) or returns anything else, an empty list included
(``verify-no-verdict``), publishes nothing (`refusal`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import PurePosixPath

from pydicom.dataset import Dataset

from pipeline.profile.plan import PixelMode, Plan
from pipeline.runner.scrubbed import Scrubbed
from pipeline.verify.findings import Verdict
from pipeline.verify.pixels import PixelBound

# (output bytes, options, the original (its bytes, or verify's copy of it as read: `Scrubbed.before`),
# release-relative output path, pixel bound) -> a verify Verdict.
# The result is typed `object` on purpose: the runner publishes only when it is a real
# `pipeline.verify.findings.Verdict` that says verified (see `refusal`), never on an empty list.
Verifier = Callable[[bytes, tuple[str, ...], "bytes | Dataset | None", "str | None", "PixelBound | None"], object]
VERIFY_UNAVAILABLE = "verify-unavailable"  # the verifier cannot be imported
VERIFY_NO_VERDICT = "verify-no-verdict"  # it returned something other than a verdict that it ran


class VerifierUnavailableError(Exception):
    """pipeline.verify.checks cannot be imported: nothing is published unverified."""


def verify_with_pipeline_verify(
    output: bytes, options: tuple[str, ...], original: bytes | Dataset | None, output_path: str | None,
    pixels: PixelBound | None = None,
) -> object:
    """The default verifier, imported when first called so a missing module fails closed."""
    try:
        module = importlib.import_module("pipeline.verify.checks")
        verify_file = module.verify_file
    except (ImportError, AttributeError):
        raise VerifierUnavailableError from None
    return verify_file(output, options, original=original, output_path=output_path, pixels=pixels)


# Resolved at call time, so another verifier can be installed for a whole process.
VERIFY: Verifier = verify_with_pipeline_verify


def refusal(verdict: object, original_given: bool) -> str | None:
    """Why a staged file must not be published, or None when `verdict` positively clears it:
    a `Verdict` (not a look-alike, not a list) that checked elements, searched the original
    when one was given, and found nothing. Fail closed: anything else is a refusal."""
    if not isinstance(verdict, Verdict) or verdict.elements_checked <= 0:
        return VERIFY_NO_VERDICT
    if verdict.findings:
        return f"verify:{verdict.findings[0].rule}"
    if original_given and not verdict.original_searched:
        return VERIFY_NO_VERDICT
    return None if verdict.verified is True else VERIFY_NO_VERDICT


def pixel_bound(plan: Plan) -> PixelBound:
    """What verify checks of cleaned pixels (pipeline/verify/pixels.py): with pixel mode ocr,
    the run's bound on the changed share and a re-reading of the cleaned places; else the
    verifier's own ceiling only."""
    if plan.pixel_mode is PixelMode.OCR:
        return PixelBound(plan.max_cleaned_fraction, reread=True)
    return PixelBound()


def verify_output(scrubbed: Scrubbed, original: bytes | Dataset, name: PurePosixPath, plan: Plan) -> str | None:
    """Why the output's bytes must not be published (`refusal` of the installed verifier's verdict
    on them, the original and the release name), or None when verify clears them."""
    verdict = VERIFY(scrubbed.data, tuple(o.value for o in plan.options), original, name.as_posix(),
                     pixel_bound(plan))
    return refusal(verdict, original_given=True)
