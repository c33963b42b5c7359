"""The door itself: the strike relay, the door contact and the tamper switch.

The relay is energised only for a pulse (a right code, or ``intercom ctl door
open``) or while the door is held open (``ctl door hold``, which ends by
itself after ``hold_max`` seconds), and is released at once by ``ctl door
lock`` and when the station stops; the board starts with it released.
Whether energised means a high or a low pin is the board profile's
``relay.active_high``.

The door contact reports the door opening and closing; a door left open
longer than ``open_alarm`` seconds raises an alarm, cleared when it closes.
The tamper switch raises an alarm while the case is open. Each alarm and
each clearing is one fixed-form log line.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from intercom.app.events import AlarmEvent, DoorContactEvent, DoorEvent, Event, RelayEvent
from intercom.hal.board import Board


class DoorController:
    def __init__(self, board: Board, publish: Callable[[Event], None], pulse_seconds: float,
                 hold_max: float, open_alarm: float) -> None:
        self.board = board
        self.publish = publish
        self.pulse_seconds = pulse_seconds
        self.hold_max = hold_max
        self.open_alarm = open_alarm
        self.loop = asyncio.get_running_loop()
        self.held = False
        self.alarms: set[str] = set()
        self._release: asyncio.TimerHandle | None = None
        self._since = 0.0
        self._alarm_timer: asyncio.TimerHandle | None = None

    @property
    def energised(self) -> bool:
        return self._release is not None

    def pulse(self) -> None:
        """Energise for a pulse; a pulse while energised extends it (not a hold)."""
        if not self.held:
            self._energise(self.pulse_seconds)

    def hold(self, by: str) -> None:
        self.held = True
        self._energise(self.hold_max)
        self.publish(DoorEvent("held_open", by, f"for up to {self.hold_max:g} s"))

    def lock(self, by: str) -> None:
        self.release()
        self.publish(DoorEvent("locked", by))

    def _energise(self, seconds: float) -> None:
        if self._release is not None:
            self._release.cancel()
        else:
            self.board.set_relay(True)
            self._since = self.loop.time()
            self.publish(RelayEvent(True))
        self._release = self.loop.call_later(seconds, self.release)

    def release(self) -> None:
        self.held = False
        if self._release is None:
            return
        self._release.cancel()
        self._release = None
        self.board.set_relay(False)
        self.publish(RelayEvent(False, round(self.loop.time() - self._since, 3)))

    # ----- inputs (on the loop) ---------------------------------------------------
    def contact(self, closed: bool) -> None:
        self.publish(DoorContactEvent(closed))
        if self._alarm_timer is not None:
            self._alarm_timer.cancel()
            self._alarm_timer = None
        if not closed and self.open_alarm:
            self._alarm_timer = self.loop.call_later(self.open_alarm, self._alarm,
                                                     "door_open", f"open for "
                                                     f"{self.open_alarm:g} s")
        elif closed:
            self._clear("door_open", "the door closed")

    def tamper(self, opened: bool) -> None:
        if opened:
            self._alarm("tamper", "the case was opened")
        else:
            self._clear("tamper", "the case was closed")

    def _alarm(self, cause: str, detail: str) -> None:
        if cause in self.alarms:
            return
        self.alarms.add(cause)
        self.publish(AlarmEvent(cause, True, detail))

    def _clear(self, cause: str, detail: str) -> None:
        if cause not in self.alarms:
            return
        self.alarms.discard(cause)
        self.publish(AlarmEvent(cause, False, detail))
