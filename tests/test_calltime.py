"""The call's time limit on a virtual clock: the warning, extensions, the end."""
from __future__ import annotations

from intercom.app.calltime import CallLimit


def test_warning_then_end_without_an_extension() -> None:
    limit = CallLimit(100.0, max_duration=300, warning=20, extend_key="*", extend_seconds=120)
    assert limit.deadline() == 380.0 and limit.due(379.9) is None
    assert limit.due(380.0) == "warn" and limit.due(381.0) is None
    assert limit.deadline() == 400.0
    assert limit.due(400.0) == "end"


def test_the_key_extends_only_after_the_warning_and_not_in_the_middle_of_a_code() -> None:
    limit = CallLimit(0.0, max_duration=60, warning=10, extend_key="*", extend_seconds=30)
    assert not limit.extends("*", entering_code=False)       # before the warning: a digit
    assert limit.due(50.0) == "warn"
    assert not limit.extends("5", entering_code=False)
    assert not limit.extends("*", entering_code=True)        # part of a code being keyed
    assert limit.extends("*", entering_code=False)
    assert limit.ends_at == 90.0 and limit.deadline() == 80.0   # a new warning before it
    assert not limit.extends("*", entering_code=False)       # once per warning
    assert limit.due(80.0) == "warn" and limit.extends("*", entering_code=False)
    assert limit.ends_at == 120.0


def test_no_warning_and_no_key_configured() -> None:
    limit = CallLimit(0.0, max_duration=30, warning=0, extend_key="*", extend_seconds=30)
    assert limit.deadline() == 30.0 and limit.due(29.0) is None and limit.due(30.0) == "end"
    keyless = CallLimit(0.0, max_duration=30, warning=10, extend_key="", extend_seconds=30)
    assert keyless.due(20.0) == "warn" and not keyless.extends("*", entering_code=False)


def test_a_call_shorter_than_the_warning_is_warned_at_once() -> None:
    limit = CallLimit(0.0, max_duration=10, warning=20, extend_key="#", extend_seconds=10)
    assert limit.deadline() == -10.0 and limit.due(0.0) == "warn"
