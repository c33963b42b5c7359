"""What the LEDs show: the station's state as patterns, as one table.

Two LEDs split the story: ``status`` says how the station is (booting,
unregistered, error, locked out, idle) and ``call`` what the visitor's call
is doing (calling, ringing, in call, door open). A board with a colour LED
(``[rgb_led]`` in its profile) shows the most important of all of them in
its colour. A board with one plain LED shows the status.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from intercom.app.events import StationCallState
from intercom.hal.board import BLINKS

PATTERNS = ("on", "off", *BLINKS)


class Status(StrEnum):
    """How the station is: the ``status`` LED."""
    BOOTING = "booting"
    ERROR = "error"
    LOCKED_OUT = "locked_out"
    UNREGISTERED = "unregistered"
    IDLE = "idle"


class CallLook(StrEnum):
    """What the visitor's call is doing: the ``call`` LED."""
    DOOR_OPEN = "door_open"
    IN_CALL = "in_call"
    RINGING = "ringing"
    CALLING = "calling"
    NONE = "none"


STATUS_LED = {Status.BOOTING: "fast", Status.ERROR: "flash", Status.LOCKED_OUT: "slow",
              Status.UNREGISTERED: "blink", Status.IDLE: "on"}
CALL_LED = {CallLook.DOOR_OPEN: "fast", CallLook.IN_CALL: "on", CallLook.RINGING: "blink",
            CallLook.CALLING: "slow", CallLook.NONE: "off"}
# The colour LED: the first state that holds, in this order, and its colour.
RED, GREEN, BLUE, WHITE, AMBER = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), \
    (1.0, 1.0, 1.0), (1.0, 0.5, 0.0)
RGB: tuple[tuple[Status | CallLook, tuple[float, float, float], str], ...] = (
    (Status.ERROR, RED, "flash"), (CallLook.DOOR_OPEN, GREEN, "fast"),
    (Status.LOCKED_OUT, RED, "slow"), (CallLook.IN_CALL, BLUE, "on"),
    (CallLook.RINGING, BLUE, "blink"), (CallLook.CALLING, BLUE, "slow"),
    (Status.BOOTING, WHITE, "fast"), (Status.UNREGISTERED, AMBER, "blink"),
    (Status.IDLE, GREEN, "on"))
# The call LED for each state of the station's call (the door open outranks them all).
CALL_LOOK = {StationCallState.IDLE: CallLook.NONE, StationCallState.CALLING: CallLook.CALLING,
             StationCallState.RINGING: CallLook.RINGING,
             StationCallState.ANSWERED: CallLook.IN_CALL}


@dataclass(frozen=True)
class Shown:
    status: Status
    call: CallLook

    def leds(self) -> dict[str, str]:
        return {"status": STATUS_LED[self.status], "call": CALL_LED[self.call]}

    def colour(self) -> tuple[tuple[float, float, float], str]:
        return next((rgb, pattern) for state, rgb, pattern in RGB
                    if state in (self.status, self.call))


def shown(*, started: bool, error: bool, locked_out: bool, registered: bool | None,
          door_open: bool, call: StationCallState) -> Shown:
    """``registered`` is None without a registrar."""
    if not started:
        status = Status.BOOTING
    elif error:
        status = Status.ERROR
    elif locked_out:
        status = Status.LOCKED_OUT
    elif registered is False:
        status = Status.UNREGISTERED
    else:
        status = Status.IDLE
    return Shown(status, CallLook.DOOR_OPEN if door_open else CALL_LOOK[call])
