"""The station's fixed vocabulary of events, as frozen dataclasses that check themselves.

They go to the log, to ``intercom ctl events`` as JSON lines, and to the demo's
timeline. ``kind`` names the family a subscriber filters on.
"""
from __future__ import annotations

import dataclasses
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
    kind: ClassVar[str] = "dtmf"
    digit: str
    caller: str

    def __post_init__(self) -> None:
        if len(self.digit) != 1 or self.digit not in "0123456789*#ABCD":
            raise ValueError(f"{self.digit!r} is not a DTMF digit")


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
