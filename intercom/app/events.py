"""The station's fixed vocabulary of events, as frozen dataclasses that check themselves.

They go to the log, to ``intercom ctl events`` as JSON lines, and to the demo's
timeline. ``kind`` names the family a subscriber filters on.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from intercom.media.rtcp import Quality

CALL_STATES = ("calling", "ringing", "answered", "updated", "expiring", "extended", "ended",
               "failed", "cancelled", "refused")
CALL_OUTCOMES = ("answered", "no answer", "busy", "declined", "unavailable", "stopped")
REGISTRATION_STATES = ("registered", "failed", "unregistered")
DOOR_ACTIONS = ("opened", "rejected", "locked_out", "held_open", "locked")
ALARM_CAUSES = ("door_open", "tamper")


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = ""
    at: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("at")
        return {"event": self.kind, "time": round(self.at, 3), **data}

    def text(self) -> str:
        """One line for a person: the log, the demo's timeline, ``intercom sim``."""
        return describe(self.to_json())

    def level(self) -> int:
        """The log level of its line (see ``level``)."""
        return level(self.to_json())

    @staticmethod
    def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            raise ValueError(f"{name} {value!r} is not one of {allowed}")


@dataclass(frozen=True)
class ButtonPressed(Event):
    kind: ClassVar[str] = "button"
    button: str


@dataclass(frozen=True)
class RegistrationEvent(Event):
    kind: ClassVar[str] = "registration"
    state: str
    status: int
    reason: str
    registrar: str
    retry_in: float = 0.0          # seconds until the next attempt, after a failure

    def __post_init__(self) -> None:
        self._one_of("registration state", self.state, REGISTRATION_STATES)


@dataclass(frozen=True)
class CallEvent(Event):
    kind: ClassVar[str] = "call"
    state: str
    peer: str
    reason: str = ""

    def __post_init__(self) -> None:
        self._one_of("call state", self.state, CALL_STATES)


@dataclass(frozen=True)
class CallRecord(Event):
    """One press of a bell, or one call from a resident, once it is over."""

    kind: ClassVar[str] = "call_record"
    direction: str                      # "bell" or "incoming"
    button: str                         # the bell pressed ("" for an incoming call)
    outcome: str
    tried: tuple[str, ...]              # the targets rung, in order (the caller if incoming)
    answered_by: str = ""
    seconds: float = 0.0                # how long the call was up
    quality: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._one_of("call direction", self.direction, ("bell", "incoming"))
        self._one_of("call outcome", self.outcome, CALL_OUTCOMES)


@dataclass(frozen=True)
class AudioEvent(Event):
    """Once a second in a call: levels in dBFS and RTP packet counts."""

    kind: ClassVar[str] = "audio"
    codec: str
    mic_dbfs: float
    speaker_dbfs: float
    rtp_sent: int
    rtp_received: int
    device_error: str | None = None


@dataclass(frozen=True)
class QualityEvent(Quality, Event):
    """At hang-up: how the call sounded (the media engine's ``Quality``, flat in JSON)."""

    kind: ClassVar[str] = "quality"
    peer: str
    codec: str


@dataclass(frozen=True)
class DtmfEvent(Event):
    """A key pressed by the resident. Never the digit: keys make up door codes, and
    a code must not reach a log, an event stream or a screen. ``count`` is how
    many keys this call has had so far."""

    kind: ClassVar[str] = "dtmf"
    caller: str
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"key count {self.count} must be 1 or more")


@dataclass(frozen=True)
class DoorEvent(Event):
    """A code decision. The digits of a rejected code are not recorded."""

    kind: ClassVar[str] = "door"
    action: str
    caller: str
    reason: str = ""
    source: str = ""            # the address the call's signalling came from

    def __post_init__(self) -> None:
        self._one_of("door action", self.action, DOOR_ACTIONS)


@dataclass(frozen=True)
class RelayEvent(Event):
    kind: ClassVar[str] = "relay"
    energised: bool
    seconds: float = 0.0          # on release: how long it was energised


@dataclass(frozen=True)
class DoorContactEvent(Event):
    kind: ClassVar[str] = "door_contact"
    closed: bool


@dataclass(frozen=True)
class AlarmEvent(Event):
    """An alarm raised (``active``) or cleared: a door left open, the case opened."""

    kind: ClassVar[str] = "alarm"
    cause: str
    active: bool
    detail: str = ""

    def __post_init__(self) -> None:
        self._one_of("alarm cause", self.cause, ALARM_CAUSES)


def level(event: dict[str, Any]) -> int:
    """Security events (the door opened, held or locked, a code rejected, entry
    locked, an alarm) are WARNINGs, in the fixed forms fail2ban reads; the levels
    reported each second in a call are DEBUG; the rest INFO."""
    kind = event.get("event")
    if kind == "audio":
        return logging.DEBUG
    if kind in ("door", "alarm"):
        return logging.WARNING
    return logging.INFO


def describe(event: dict[str, Any]) -> str:
    """One readable line for an event in its JSON form (what, who, why)."""
    kind = event.get("event")
    if kind == "registration":
        retry = f", next try in {event['retry_in']:g} s" if event.get("retry_in") else ""
        return (f"registration {event['state']} at {event['registrar']} "
                f"({event['status']} {event['reason']}{retry})")
    if kind == "button":
        return f"button '{event['button']}' pressed"
    if kind == "call":
        extra = f" ({event['reason']})" if event["reason"] else ""
        return f"call {event['state']}: {event['peer']}{extra}"
    if kind == "audio":
        return (f"audio {event['codec']}: microphone {event['mic_dbfs']:.1f} dBFS, "
                f"{event['rtp_sent']} packets sent; speaker {event['speaker_dbfs']:.1f} dBFS, "
                f"{event['rtp_received']} packets received"
                + (f"; device error: {event['device_error']}" if event.get("device_error")
                   else ""))
    if kind == "quality":
        rtt = "" if event["rtt_ms"] is None else f", round trip {event['rtt_ms']:g} ms"
        return (f"call quality with {event['peer']} ({event['codec']}): MOS {event['mos']:.2f}, "
                f"{event['packets_received']} packets, {event['loss_percent']:g} % lost, "
                f"{event['concealed_frames']} frames concealed, jitter "
                f"{event['jitter_ms']:g} ms{rtt}")
    if kind == "dtmf":
        return f"key {'*' * min(event['count'], 16)} from {event['caller']}"
    if kind == "door":
        source = f" ({event['source']})" if event.get("source") else ""
        action, caller, reason = event["action"], event["caller"], event["reason"]
        if action == "rejected":
            return f"door code rejected from {caller}{source}: {reason}"
        if action == "locked_out":                 # reason: "<scope> <for how long>"
            scope, _, how = reason.partition(" ")
            return f"door code entry locked ({scope}) for {caller}{source} {how}"
        if action == "opened" and reason == "code":
            return f"door opened by code from {caller}{source}"
        how = f" ({reason})" if reason and reason != "command" else ""
        return f"door {action.replace('_', ' ')} by {caller}{source}{how}"
    if kind == "relay":
        return ("door relay energised" if event["energised"]
                else f"door relay released after {event['seconds']:.2f} s")
    if kind == "door_contact":
        return "door contact: " + ("closed" if event["closed"] else "open")
    if kind == "alarm":
        return f"alarm {event['cause']}{'' if event['active'] else ' cleared'}" + \
            (f": {event['detail']}" if event.get("detail") else "")
    if kind == "call_record":
        who = f", answered by {event['answered_by']}" if event["answered_by"] else ""
        tried = ", ".join(event["tried"])
        return (f"visit over: {event['direction']} call {event['outcome']}{who}, "
                f"{event['seconds']:.0f} s (tried {tried})")
    return " ".join(f"{k}={v}" for k, v in event.items() if k != "time")
