"""What the LEDs show: the station's state as patterns, as one table.

Two LEDs split the story: ``status`` says how the station is (booting,
unregistered, error, locked out, idle) and ``call`` what the visitor's call
is doing (calling, ringing, in call, door open). A board with a colour LED
(``[rgb_led]`` in its profile) shows the most important of all of them in
its colour. A board with one plain LED shows the status.
"""
from __future__ import annotations

from dataclasses import dataclass

from intercom.hal.board import BLINKS

PATTERNS = ("on", "off", *BLINKS)

STATUS_STATES = ("booting", "error", "locked_out", "unregistered", "idle")
CALL_STATES = ("door_open", "in_call", "ringing", "calling", "none")

STATUS_LED = {"booting": "fast", "error": "flash", "locked_out": "slow",
              "unregistered": "blink", "idle": "on"}
CALL_LED = {"door_open": "fast", "in_call": "on", "ringing": "blink", "calling": "slow",
            "none": "off"}
# The colour LED: the first state that holds, in this order, and its colour.
RGB = (("error", (1.0, 0.0, 0.0), "flash"), ("door_open", (0.0, 1.0, 0.0), "fast"),
       ("locked_out", (1.0, 0.0, 0.0), "slow"), ("in_call", (0.0, 0.0, 1.0), "on"),
       ("ringing", (0.0, 0.0, 1.0), "blink"), ("calling", (0.0, 0.0, 1.0), "slow"),
       ("booting", (1.0, 1.0, 1.0), "fast"), ("unregistered", (1.0, 0.5, 0.0), "blink"),
       ("idle", (0.0, 1.0, 0.0), "on"))


@dataclass(frozen=True)
class Shown:
    status: str          # one of STATUS_STATES
    call: str            # one of CALL_STATES

    def leds(self) -> dict[str, str]:
        return {"status": STATUS_LED[self.status], "call": CALL_LED[self.call]}

    def colour(self) -> tuple[tuple[float, float, float], str]:
        return next((rgb, pattern) for state, rgb, pattern in RGB
                    if state in (self.status, self.call))


def shown(*, started: bool, error: bool, locked_out: bool, registered: bool | None,
          door_open: bool, call: str) -> Shown:
    """``registered`` is None without a registrar; ``call`` is the call's state
    (idle, calling, ringing, answered)."""
    if not started:
        status = "booting"
    elif error:
        status = "error"
    elif locked_out:
        status = "locked_out"
    elif registered is False:
        status = "unregistered"
    else:
        status = "idle"
    if door_open:
        now = "door_open"
    else:
        now = {"answered": "in_call", "ringing": "ringing", "calling": "calling"}.get(call,
                                                                                     "none")
    return Shown(status, now)
