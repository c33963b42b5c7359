"""The resident's keypad in a call: door codes, the lockout, and what each code leads to.

Digits reach here only from the call that was answered, by RFC 4733 or SIP
INFO (or tones in the audio, when door.inband_dtmf allows them). The codes
for a call are door.codes and the door.caller_codes of its target or caller;
a call without any takes no digits as guesses. While a lockout holds, the
digits are not even compared. A right code pulses the relay and plays the
chime; a wrong one plays the wrong-code tone to the resident. Every decision
is an event and one fixed-form log line with the call's source address, for
fail2ban. Lockouts are saved in the event log, so a restart keeps them.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from intercom.app.callmedia import CallLeg
from intercom.app.door import Decision, DoorCodes, Lockout
from intercom.app.doorcontrol import DoorController
from intercom.app.eventlog import EventLog
from intercom.app.events import DoorEvent, Event
from intercom.config import Config
from intercom.media.tones import DOOR_OPENED, WRONG_CODE, Tone
from intercom.sip.address import SipUri
from intercom.sip.errors import SipError

log = logging.getLogger("intercom.station")


class DoorKeypad:
    def __init__(self, config: Config, doors: DoorController, publish: Callable[[Event], None],
                 tone: Callable[[Tone, bool], None], hangup: Callable[[str], object],
                 changed: Callable[[], None]) -> None:
        d = config["door"]
        self.config = config
        self.doors = doors
        self.publish = publish
        self.tone = tone                       # (tone, to the speaker too)
        self.hangup = hangup
        self.changed = changed                 # a lock began or ended: the LEDs
        self.loop = asyncio.get_running_loop()
        self.codes = DoorCodes([], d["digit_timeout"])
        self.lockout = Lockout(d["max_wrong_codes"], d["max_wrong_codes_overall"],
                               d["lockout_seconds"], d["lockout_max_seconds"])
        self.eventlog: EventLog | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._hangup_after_open: asyncio.TimerHandle | None = None
        self._lock_reported = ""

    def restore(self, eventlog: EventLog) -> None:
        self.eventlog = eventlog
        self.lockout.restore(eventlog.load_lockouts(), self.loop.time())

    def codes_for(self, peer: str) -> list[str]:
        """The codes that open the door in a call with ``peer``: everyone's, and
        those door.caller_codes gives that target or caller."""
        codes = list(self.config["door"]["codes"])
        try:
            uri = SipUri.parse(peer)
        except SipError:
            return codes
        for entry, own in self.config["door"]["caller_codes"].items():
            if SipUri.parse(entry).names(uri):
                codes += own
        return codes

    def call_started(self, call: CallLeg) -> None:
        self.codes = DoorCodes(self.codes_for(call.peer), self.config["door"]["digit_timeout"])

    def call_ended(self, call: CallLeg) -> None:
        self.lockout.call_ended(call.call_id)
        self.codes.reset()
        for timer in (self._expiry, self._hangup_after_open):
            if timer is not None:
                timer.cancel()
        self._expiry = self._hangup_after_open = None

    @property
    def entering(self) -> bool:
        """Part of a code is keyed in."""
        return self.codes.deadline() is not None

    def locked_out(self, call: CallLeg | None) -> bool:
        now = self.loop.time()
        return self.lockout.everyone_locked(now) or (
            call is not None and self.lockout.locked(call.call_id, call.peer, now) is not None)

    def digit(self, call: CallLeg, digit: str) -> None:
        if not self.codes.codes:
            return                                  # no code opens the door in this call
        now = self.loop.time()
        lock = self.lockout.locked(call.call_id, call.peer, now)
        if lock is not None:
            # Locked out: the digits are not even compared, the right code's neither.
            self.codes.reset()
            reason = f"locked out ({lock.scope}" + \
                (f", {lock.seconds:.0f} s left)" if lock.seconds else ", for this call)")
            if self._lock_reported != call.call_id + lock.scope:
                self._lock_reported = call.call_id + lock.scope
                log.warning("door code ignored from %s: %s", call.peer, reason)
            return
        self._decide(call, self.codes.digit(digit, now))
        if self._expiry is not None:
            self._expiry.cancel()
        deadline = self.codes.deadline()
        self._expiry = None if deadline is None else self.loop.call_at(
            deadline, lambda: self._decide(call, [d for d in [
                self.codes.expire(self.loop.time())] if d]))

    def _decide(self, call: CallLeg, decisions: list[Decision]) -> None:
        caller, source = call.peer, call.source or "unknown"
        for decision in decisions:
            if decision.action == "open":
                self.lockout.right(caller)
                self._save()
                self.publish(DoorEvent("opened", caller, "code", source))
                self.tone(DOOR_OPENED, True)
                self.doors.pulse()
                after = self.config["door"]["hangup_after_open"]
                if after and self._hangup_after_open is None:
                    self._hangup_after_open = self.loop.call_later(
                        after, self.hangup, "the door was opened")
                continue
            # Its log line is in a fixed form that fail2ban can match on the
            # address: "door code rejected from <caller> (<ip>): <why>" (events.py).
            self.publish(DoorEvent("rejected", caller, decision.reason, source))
            self.tone(WRONG_CODE, False)
            for lock in self.lockout.wrong(call.call_id, caller, self.loop.time()):
                how = "for the rest of the call" if lock.scope == "call" else \
                    f"for {lock.seconds:.0f} s"
                if lock.seconds:
                    self.loop.call_later(lock.seconds + 0.05, self.changed)   # its end
                self.publish(DoorEvent("locked_out", caller, f"{lock.scope} {how}", source))
            self._save()

    def _save(self) -> None:
        if self.eventlog is not None:
            self.eventlog.save_lockouts(self.lockout.export(self.loop.time()))
