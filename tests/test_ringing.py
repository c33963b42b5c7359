"""The ring plan on a virtual clock: which targets ring, when, and what ends it."""
from __future__ import annotations

from collections.abc import Sequence

import pytest

from intercom.app.events import CallOutcome
from intercom.app.ringing import Cancel, GiveUp, Ring, RingPlan, RingSettings

A, B, C, F = "sip:a@pbx", "sip:b@pbx", "sip:c@pbx", "sip:mobile@pbx"


def rung(actions: Sequence[object]) -> list[str]:
    return [a.target for a in actions if isinstance(a, Ring)]


def cancelled(actions: Sequence[object]) -> list[int]:
    return [a.leg for a in actions if isinstance(a, Cancel)]


def test_sequence_moves_on_after_the_ring_time_and_cycles_then_falls_back() -> None:
    plan = RingPlan(RingSettings((A, B), "sequential", ring_time=20, cycles=2, fallback=(F,),
                                 ring_timeout=300), started=0.0)
    now = 0.0
    order: list[str] = []
    actions = plan.start(now)
    while not plan.done:
        order += rung(actions)
        deadline = plan.deadline()
        assert deadline is not None and deadline > now
        now = deadline
        actions = plan.timer(now)
        assert len(cancelled(actions)) == 1          # the one that rang out
    assert order == [A, B, A, B, F]
    assert now == 100.0
    assert actions[-1] == GiveUp(CallOutcome.NO_ANSWER) and plan.outcome == "no answer"
    assert plan.tried == [A, B, F]


def test_busy_decline_and_unavailable_move_on_at_once_and_are_not_rung_again() -> None:
    plan = RingPlan(RingSettings((A, B, C), "sequential", ring_time=20, cycles=2),
                    started=0.0)
    assert rung(plan.start(0.0)) == [A]
    assert rung(plan.failed(0, 486, 1.0)) == [B]              # busy
    assert plan.step_ends == 21.0                              # B gets its full ring time
    assert rung(plan.failed(1, 603, 2.0)) == [C]              # declined
    actions = plan.timer(22.0)                                 # C rings out
    assert cancelled(actions) == [2] and rung(actions) == [C]  # second cycle: C only
    assert plan.failed(3, 480, 23.0) == [GiveUp(CallOutcome.NO_ANSWER)]
    assert plan.refused == {A: 486, B: 603, C: 480}


@pytest.mark.parametrize("statuses, reason", [((486, 486), CallOutcome.BUSY), ((486, 603), CallOutcome.DECLINED),
                                              ((480, 404), CallOutcome.UNAVAILABLE)])
def test_the_reason_given_up_says_why_when_nobody_rang_out(statuses: tuple[int, int],
                                                            reason: CallOutcome) -> None:
    plan = RingPlan(RingSettings((A, B), "parallel"), started=0.0)
    assert rung(plan.start(0.0)) == [A, B]
    assert plan.failed(0, statuses[0], 1.0) == []             # B still rings
    assert plan.failed(1, statuses[1], 2.0) == [GiveUp(reason)]
    assert plan.deadline() is None and plan.timer(500.0) == []


def test_parallel_first_answer_wins_and_the_others_are_cancelled() -> None:
    plan = RingPlan(RingSettings((A, B, C), "parallel", fallback=(F,)), started=0.0)
    assert rung(plan.start(0.0)) == [A, B, C]
    assert plan.failed(0, 486, 1.0) == []
    actions = plan.answered(2)
    assert cancelled(actions) == [1]
    assert plan.answered_by == C and plan.outcome == "answered"
    # B's 200 crossed our CANCEL: it is released too; late failures change nothing
    assert plan.answered(1) == [Cancel(1, "answered elsewhere")]
    assert plan.failed(1, 487, 2.0) == []


def test_parallel_group_rings_out_then_the_fallback_group_rings_together() -> None:
    plan = RingPlan(RingSettings((A, B), "parallel", ring_time=15, fallback=(F, C)),
                    started=0.0)
    plan.start(0.0)
    assert plan.timer(14.9) == []
    actions = plan.timer(15.0)
    assert cancelled(actions) == [0, 1] and rung(actions) == [F, C]


def test_the_ring_timeout_ends_everything_whatever_the_steps_say() -> None:
    plan = RingPlan(RingSettings((A, B), "sequential", ring_time=30, cycles=5,
                                 ring_timeout=45), started=10.0)
    plan.start(10.0)
    plan.timer(40.0)                                           # A rang out: B rings
    assert plan.deadline() == 55.0                             # the timeout, before B's end
    actions = plan.timer(55.0)
    assert cancelled(actions) == [1] and actions[-1] == GiveUp(CallOutcome.NO_ANSWER)


def test_a_stopped_plan_cancels_what_rings_and_ignores_what_comes_after() -> None:
    plan = RingPlan(RingSettings((A, B), "parallel"), started=0.0)
    plan.start(0.0)
    assert cancelled(plan.stop("the station is stopping")) == [0, 1]
    assert plan.outcome == "stopped"
    assert plan.failed(0, 487, 1.0) == [] and plan.stop("again") == []


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="strategy"):
        RingSettings((A,), "random")
    with pytest.raises(ValueError):
        RingSettings((), "parallel")
