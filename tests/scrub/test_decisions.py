"""The remembered decisions (pipeline/scrub/decisions.py) belong to one plan object: another plan,
even one found under the same id (an id Python reused), never sees them."""

from __future__ import annotations

from pipeline.profile.plan import Action, compile_plan
from pipeline.scrub import decisions as module


def test_a_plan_under_a_reused_id_starts_with_no_decisions() -> None:
    first = compile_plan("basic")
    second = compile_plan("basic", ["retain-patient-characteristics"])
    module.decisions(first, None, (), False, False)[(0x00100040, None, "CS")] = (None, "CS", Action.REMOVE)
    module._PLANS[id(second)] = module._PLANS[id(first)]  # as if `second` had taken the id of a dead `first`
    assert module.decisions(second, None, (), False, False) == {}
    assert module.decisions(first, None, (), False, False) != {}


def test_decisions_are_remembered_per_item_context() -> None:
    plan = compile_plan("basic")
    top = module.decisions(plan, None, (), False, False)
    assert module.decisions(plan, None, (), False, False) is top
    assert module.decisions(plan, None, (0x00081140,), False, False) is not top
    assert module.decisions(plan, None, (), True, False) is not top
