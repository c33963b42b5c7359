"""The station's fixed vocabulary of events, as frozen dataclasses that check themselves.

They go to the log, to ``intercom ctl events`` as JSON lines, and to the demo's
timeline. ``kind`` names the family a subscriber filters on.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from intercom.media.rtcp import Quality
from intercom.sip.events import RegState



class EventKind(StrEnum):
    """The families a subscriber filters on (``intercom ctl events --kind``)."""
    BUTTON = "button"
    REGISTRATION = "registration"
    CALL = "call"
    CALL_RECORD = "call_record"
    AUDIO = "audio"
    QUALITY = "quality"
    DTMF = "dtmf"
    DOOR = "door"
    RELAY = "relay"
    DOOR_CONTACT = "door_contact"
    ALARM = "alarm"
    SNAPSHOT = "snapshot"
    RECORDING = "recording"


class CallPhase(StrEnum):
    """What a call event reports."""
    CALLING = "calling"
    RINGING = "ringing"
    ANSWERED = "answered"
    UPDATED = "updated"
    EXPIRING = "expiring"
    EXTENDED = "extended"
    ENDED = "ended"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REFUSED = "refused"


class CallOutcome(StrEnum):
    """How a visit (or an incoming call) ended, in its call record."""
    ANSWERED = "answered"
    NO_ANSWER = "no answer"
    BUSY = "busy"
    DECLINED = "declined"
    UNAVAILABLE = "unavailable"
    STOPPED = "stopped"


class Direction(StrEnum):
    BELL = "bell"
    INCOMING = "incoming"


class DoorAction(StrEnum):
    OPENED = "opened"
    REJECTED = "rejected"
    LOCKED_OUT = "locked_out"
    HELD_OPEN = "held_open"
    LOCKED = "locked"


class AlarmCause(StrEnum):
    DOOR_OPEN = "door_open"
    TAMPER = "tamper"


class StationCallState(StrEnum):
    """What the station's call is doing, as `intercom ctl state` and the LEDs show it."""
    IDLE = "idle"
    CALLING = "calling"
    RINGING = "ringing"
    ANSWERED = "answered"


@dataclass(frozen=True)
class Event:
    kind: ClassVar[EventKind]
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

    def _enum(self, name: str, vocabulary: type[StrEnum]) -> None:
        """Field ``name`` as a member of ``vocabulary``; a word outside it is a
        ValueError that lists the words there are."""
        value = getattr(self, name)
        try:
            object.__setattr__(self, name, vocabulary(value))
        except ValueError:
            raise ValueError(f"{type(self).__name__}.{name} {value!r} is not one of "
                             f"{', '.join(vocabulary)}") from None


@dataclass(frozen=True)
class ButtonPressed(Event):
    kind: ClassVar[EventKind] = EventKind.BUTTON
    button: str


@dataclass(frozen=True)
class RegistrationEvent(Event):
    kind: ClassVar[EventKind] = EventKind.REGISTRATION
    state: RegState
    status: int
    reason: str
    registrar: str
    retry_in: float = 0.0          # seconds until the next attempt, after a failure

    def __post_init__(self) -> None:
        self._enum("state", RegState)


@dataclass(frozen=True)
class CallEvent(Event):
    kind: ClassVar[EventKind] = EventKind.CALL
    state: CallPhase
    peer: str
    reason: str = ""

    def __post_init__(self) -> None:
        self._enum("state", CallPhase)


@dataclass(frozen=True)
class CallRecord(Event):
    """One press of a bell, or one call from a resident, once it is over."""

    kind: ClassVar[EventKind] = EventKind.CALL_RECORD
    direction: Direction
    button: str                         # the bell pressed ("" for an incoming call)
    outcome: CallOutcome
    tried: tuple[str, ...]              # the targets rung, in order (the caller if incoming)
    answered_by: str = ""
    seconds: float = 0.0                # how long the call was up
    quality: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._enum("direction", Direction)
        self._enum("outcome", CallOutcome)


@dataclass(frozen=True)
class AudioEvent(Event):
    """Once a second in a call: levels in dBFS and RTP packet counts."""

    kind: ClassVar[EventKind] = EventKind.AUDIO
    codec: str
    mic_dbfs: float
    speaker_dbfs: float
    rtp_sent: int
    rtp_received: int
    device_error: str | None = None


@dataclass(frozen=True)
class QualityEvent(Quality, Event):
    """At hang-up: how the call sounded (the media engine's ``Quality``, flat in JSON)."""

    kind: ClassVar[EventKind] = EventKind.QUALITY
    peer: str
    codec: str


@dataclass(frozen=True)
class DtmfEvent(Event):
    """A key pressed by the resident. Never the digit: keys make up door codes, and
    a code must not reach a log, an event stream or a screen. ``count`` is how
    many keys this call has had so far."""

    kind: ClassVar[EventKind] = EventKind.DTMF
    caller: str
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"key count {self.count} must be 1 or more")


@dataclass(frozen=True)
class DoorEvent(Event):
    """A code decision. The digits of a rejected code are not recorded."""

    kind: ClassVar[EventKind] = EventKind.DOOR
    action: DoorAction
    caller: str
    reason: str = ""
    source: str = ""            # the address the call's signalling came from

    def __post_init__(self) -> None:
        self._enum("action", DoorAction)


@dataclass(frozen=True)
class RelayEvent(Event):
    kind: ClassVar[EventKind] = EventKind.RELAY
    energised: bool
    seconds: float = 0.0          # on release: how long it was energised


@dataclass(frozen=True)
class DoorContactEvent(Event):
    kind: ClassVar[EventKind] = EventKind.DOOR_CONTACT
    closed: bool


@dataclass(frozen=True)
class AlarmEvent(Event):
    """An alarm raised (``active``) or cleared: a door left open, the case opened."""

    kind: ClassVar[EventKind] = EventKind.ALARM
    cause: AlarmCause
    active: bool
    detail: str = ""

    def __post_init__(self) -> None:
        self._enum("cause", AlarmCause)


@dataclass(frozen=True)
class SnapshotEvent(Event):
    """The camera's picture of a bell press, kept in the snapshot store as ``file``."""

    kind: ClassVar[EventKind] = EventKind.SNAPSHOT
    button: str
    file: str
    width: int
    height: int


class RecordingKind(StrEnum):
    MESSAGE = "message"          # a visitor's, when nobody answered
    CALL = "call"                # an answered call, both sides


@dataclass(frozen=True)
class RecordingEvent(Event):
    """A visitor's message or a recorded call, kept in the recordings store as
    ``file``: ``button`` is the bell rung, ``peer`` whom the call was with."""

    kind: ClassVar[EventKind] = EventKind.RECORDING
    what: RecordingKind
    button: str
    peer: str
    file: str
    seconds: float

    def __post_init__(self) -> None:
        self._enum("what", RecordingKind)


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
    if kind == "snapshot":
        return f"snapshot of the visitor at '{event['button']}': {event['file']}"
    if kind == "recording":
        if event["what"] == "message":
            return (f"message from the visitor at '{event['button']}': "
                    f"{event['seconds']:.0f} s, {event['file']}")
        return f"call with {event['peer']} recorded: {event['seconds']:.0f} s, {event['file']}"
    if kind == "call_record":
        who = f", answered by {event['answered_by']}" if event["answered_by"] else ""
        tried = ", ".join(event["tried"])
        return (f"visit over: {event['direction']} call {event['outcome']}{who}, "
                f"{event['seconds']:.0f} s (tried {tried})")
    return " ".join(f"{k}={v}" for k, v in event.items() if k != "time")
