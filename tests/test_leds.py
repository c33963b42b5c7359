"""What the LEDs show for each state: the table, and the station driving it."""
from __future__ import annotations

from typing import Any

import pytest

from intercom.app.events import StationCallState as C
from intercom.app.leds import PATTERNS, RGB, CallLook, Shown, Status, shown


def view(started: bool = True, error: bool = False, locked_out: bool = False,
         registered: bool | None = True, door_open: bool = False, call: C = C.IDLE) -> Shown:
    return shown(started=started, error=error, locked_out=locked_out, registered=registered,
                 door_open=door_open, call=call)


@pytest.mark.parametrize("changes, status, call", [
    ({"started": False}, "booting", "none"),
    ({"registered": False}, "unregistered", "none"),
    ({"registered": None}, "idle", "none"),                # no registrar configured
    ({}, "idle", "none"),
    ({"call": C.CALLING}, "idle", "calling"),
    ({"call": C.RINGING}, "idle", "ringing"),
    ({"call": C.ANSWERED}, "idle", "in_call"),
    ({"call": C.ANSWERED, "door_open": True}, "idle", "door_open"),
    ({"error": True, "registered": False}, "error", "none"),
    ({"locked_out": True, "call": C.ANSWERED}, "locked_out", "in_call"),
])
def test_each_state_has_its_own_look(changes: dict[str, Any], status: str, call: str) -> None:
    assert view(**changes) == Shown(Status(status), CallLook(call))


def test_every_state_looks_different_on_two_leds_and_has_a_colour() -> None:
    looks = {}
    for s in Status:
        for c in CallLook:
            leds = Shown(s, c).leds()
            assert set(leds.values()) <= set(PATTERNS)
            looks[(s, c)] = tuple(leds.values())
            Shown(s, c).colour()                      # each has one
    assert len(set(looks.values())) == len(looks)    # no two states look alike
    assert {state for state, _, _ in RGB} == set(Status) | set(CallLook) - {CallLook.NONE}


def test_the_colour_led_shows_the_most_important_state() -> None:
    assert Shown(Status.ERROR, CallLook.IN_CALL).colour() == ((1.0, 0.0, 0.0), "flash")
    assert Shown(Status.IDLE, CallLook.DOOR_OPEN).colour() == ((0.0, 1.0, 0.0), "fast")
    assert Shown(Status.UNREGISTERED, CallLook.RINGING).colour() == ((0.0, 0.0, 1.0), "blink")
    assert Shown(Status.IDLE, CallLook.NONE).colour() == ((0.0, 1.0, 0.0), "on")


def test_each_state_of_the_call_has_its_own_call_led() -> None:
    looks = {view(call=state).call for state in C}
    assert len(looks) == len(C) and CallLook.DOOR_OPEN not in looks
    assert {view(call=state, door_open=True).call for state in C} == {CallLook.DOOR_OPEN}
