"""What the LEDs show for each state: the table, and the station driving it."""
from __future__ import annotations

import pytest

from intercom.app.leds import CALL_STATES, PATTERNS, RGB, STATUS_STATES, Shown, shown


def view(**changes: object) -> Shown:
    base: dict[str, object] = {"started": True, "error": False, "locked_out": False,
                               "registered": True, "door_open": False, "call": "idle"}
    base.update(changes)
    return shown(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("changes, status, call", [
    ({"started": False}, "booting", "none"),
    ({"registered": False}, "unregistered", "none"),
    ({"registered": None}, "idle", "none"),                # no registrar configured
    ({}, "idle", "none"),
    ({"call": "calling"}, "idle", "calling"),
    ({"call": "ringing"}, "idle", "ringing"),
    ({"call": "answered"}, "idle", "in_call"),
    ({"call": "answered", "door_open": True}, "idle", "door_open"),
    ({"error": True, "registered": False}, "error", "none"),
    ({"locked_out": True, "call": "answered"}, "locked_out", "in_call"),
])
def test_each_state_has_its_own_look(changes: dict[str, object], status: str,
                                     call: str) -> None:
    assert view(**changes) == Shown(status, call)


def test_every_state_looks_different_on_two_leds_and_has_a_colour() -> None:
    looks = {}
    for s in STATUS_STATES:
        for c in CALL_STATES:
            leds = Shown(s, c).leds()
            assert set(leds.values()) <= set(PATTERNS)
            looks[(s, c)] = tuple(leds.values())
            Shown(s, c).colour()                      # each has one
    assert len(set(looks.values())) == len(looks)    # no two states look alike
    assert {state for state, _, _ in RGB} == set(STATUS_STATES + CALL_STATES) - {"none"}


def test_the_colour_led_shows_the_most_important_state() -> None:
    assert Shown("error", "in_call").colour() == ((1.0, 0.0, 0.0), "flash")
    assert Shown("idle", "door_open").colour() == ((0.0, 1.0, 0.0), "fast")
    assert Shown("unregistered", "ringing").colour() == ((0.0, 0.0, 1.0), "blink")
    assert Shown("idle", "none").colour() == ((0.0, 1.0, 0.0), "on")
