"""The station's core: every decision of a door station, with no I/O and no clock.

Like the SIP core (intercom.sip.ua), it is driven from outside:

* ``handle(event, now)`` takes one input and returns the actions it leads to;
* ``next_deadline()`` says when it wants ``timer(now)`` called.

Inputs are what happened (a bell press, a SIP call's progress, a key from
the resident, the door contact, what the adapter did with an action) or a
local command (hang up, a door command, stop). An illegal local command
raises ``LocalError`` and changes nothing, as h11 does; an input from a peer
that does not fit the state is dropped.

Actions are what to do: place, accept, reject or end a call leg, start or
stop its media, the relay, the LEDs, tones, events and log lines. The thin
asyncio adapter (intercom.app.station.DoorStation) carries them out and feeds
their outcome back in (``Placed``, ``MediaApplied``, ...). Ring plans, the
call limit, the keypad with its lockouts and the door all run in here, on
the caller's clock, so whole visits are tested on a virtual one.

Legs are numbered by the core; a leg is one SIP call of the station, to a
call target or from a resident.
"""
from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
import logging
from dataclasses import dataclass, field
from typing import Any

from intercom.app.calltime import CallLimit
from intercom.app.door import Decision, DoorCodes, Lockout
from intercom.app.events import (AlarmCause, AlarmEvent, ButtonPressed, CallEvent, CallOutcome,
                                 CallPhase, CallRecord, Direction, DoorAction, DoorContactEvent,
                                 DoorEvent, DtmfEvent, Event, QualityEvent, RegistrationEvent,
                                 RelayEvent, StationCallState)
from intercom.app.leds import Shown, shown
from intercom.app.ringing import Cancel, GiveUp, Ring, RingPlan, RingSettings
from intercom.app.ringing import Action as PlanAction
from intercom.config import Config
from intercom.media.rtcp import Quality
from intercom.media.sounds import Clip, Sound, then
from intercom.media.tones import (BUSY, CALL_ENDING, CALL_RECORDED, DOOR_OPENED, RINGBACK,
                                  WRONG_CODE, Tone)
from intercom.sip.address import SipUri
from intercom.sip.errors import SipError
from intercom.sip.events import RegState

BUSY_SECONDS = 4.0            # the busy tone once nobody answered
AUDIO_REPORT_SECONDS = 1.0    # an audio event this often in a call


class LocalError(ValueError):
    """A local command that cannot be carried out in this state (nothing changed)."""


class LegState(enum.StrEnum):
    CALLING = "calling"
    RINGING = "ringing"
    ANSWERED = "answered"


class MediaPurpose(enum.StrEnum):
    EARLY = "early"          # the PBX's tones while a lone target rings
    ANSWER = "answer"        # the final answer: the call's audio
    UPDATE = "update"        # a later offer or answer (hold, a new address)


# ----- inputs: what happened ------------------------------------------------------------
@dataclass(frozen=True)
class Started:
    """The station is up: its sound device's error (or None), the lockouts saved
    before a restart, and the board's inputs as they are."""

    audio_error: str | None = None
    lockouts: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    tamper_open: bool = False
    door_closed: bool | None = None


@dataclass(frozen=True)
class Pressed:
    button: str


@dataclass(frozen=True)
class DoorContact:
    closed: bool


@dataclass(frozen=True)
class Tamper:
    opened: bool


@dataclass(frozen=True)
class AudioTrouble:
    message: str


@dataclass(frozen=True)
class Registration:
    state: RegState
    status: int
    reason: str
    registrar: str
    retry_in: float = 0.0
    fix: str = ""            # what to check, for a failure


@dataclass(frozen=True)
class Offered:
    """A call to the station. ``allowed``: the caller is configured and its INVITE
    came from where that caller's calls come from (the adapter checks)."""

    call_id: str
    caller: str
    source: tuple[str, int]
    allowed: bool
    sdp: bytes = b""


@dataclass(frozen=True)
class Progress:
    leg: int
    status: int
    reason: str
    sdp: bytes = b""


@dataclass(frozen=True)
class Answered:
    leg: int
    sdp: bytes


@dataclass(frozen=True)
class Updated:
    leg: int
    sdp: bytes


@dataclass(frozen=True)
class Failed:
    leg: int
    status: int
    reason: str


@dataclass(frozen=True)
class Ended:
    leg: int
    reason: str
    by_remote: bool


@dataclass(frozen=True)
class Digit:
    """A key from a leg (RFC 4733, SIP INFO or a tone in the audio)."""

    leg: int
    digit: str


# The adapter's outcomes of actions.
@dataclass(frozen=True)
class Placed:
    leg: int
    call_id: str
    source: str              # where its signalling goes: the phone, or the PBX


@dataclass(frozen=True)
class NotPlaced:
    """``status`` 0: the leg was withdrawn before its INVITE went out."""

    leg: int
    status: int
    reason: str


@dataclass(frozen=True)
class Accepted:
    leg: int
    codec: str


@dataclass(frozen=True)
class NotAccepted:
    """``status`` 0: the caller gave up meanwhile (nothing to answer)."""

    leg: int
    status: int
    reason: str


@dataclass(frozen=True)
class MediaApplied:
    leg: int
    purpose: MediaPurpose
    ok: bool
    codec: str = ""
    on_hold: bool = False


@dataclass(frozen=True)
class MediaStopped:
    leg: int
    codec: str = ""
    quality: Quality | None = None


# Local commands.
@dataclass(frozen=True)
class Hangup:
    reason: str = "hung up"


@dataclass(frozen=True)
class DoorCommand:
    action: str              # "open", "hold" or "lock"
    by: str


@dataclass(frozen=True)
class Stop:
    """The station is stopping: hang up and call off whatever goes on."""


@dataclass(frozen=True)
class Abandon:
    """The station stops now: legs still open are over, the door is released."""


@dataclass(frozen=True)
class MessageOver:
    """The visitor's message is recorded (or given up): the sound card is free."""


PeerInput = (Started | Pressed | DoorContact | Tamper | AudioTrouble | Registration | Offered
             | Progress | Answered | Updated | Failed | Ended | Digit | Placed | NotPlaced
             | Accepted | NotAccepted | MediaApplied | MediaStopped | MessageOver)
Command = Hangup | DoorCommand | Stop | Abandon
Input = PeerInput | Command


# ----- actions: what to do ------------------------------------------------------------
@dataclass(frozen=True)
class PlaceCall:
    """Open media for a new leg and send its INVITE; answer with Placed or NotPlaced."""

    leg: int
    target: str


@dataclass(frozen=True)
class AcceptCall:
    """Open media for an offered call and answer it; answer with Accepted or NotAccepted."""

    leg: int
    call_id: str
    caller: str
    sdp: bytes
    listen_only: bool


@dataclass(frozen=True)
class RejectCall:
    call_id: str
    status: int
    reason: str


@dataclass(frozen=True)
class EndCall:
    """CANCEL or BYE, whichever the leg needs (or withdraw it, not yet placed)."""

    leg: int


@dataclass(frozen=True)
class ApplyMedia:
    """Follow the peer's SDP; answer with MediaApplied."""

    leg: int
    sdp: bytes
    purpose: MediaPurpose


@dataclass(frozen=True)
class StopMedia:
    """Stop the leg's audio; answer with MediaStopped (its quality)."""

    leg: int


@dataclass(frozen=True)
class CloseMedia:
    leg: int


@dataclass(frozen=True)
class SetRelay:
    energised: bool


@dataclass(frozen=True)
class ShowLeds:
    shown: Shown


@dataclass(frozen=True)
class LocalSound:
    """Play a tone or an announcement on the sound card alone (None: stop the one
    playing), for at most ``seconds``."""

    sound: Sound | None
    seconds: float | None = None


@dataclass(frozen=True)
class CallSound:
    """Mix a tone or an announcement into the call: the resident hears it, the
    visitor too if ``to_speaker``."""

    leg: int
    sound: Sound
    to_speaker: bool


@dataclass(frozen=True)
class RecordMessage:
    """Take a message from the visitor at ``button``: ``prompt``, a start tone, the
    microphone for up to ``seconds`` (less once ``silence_seconds`` pass without a
    voice), an end tone. ``MessageOver`` says when the card is free again."""

    button: str
    prompt: Sound | None
    seconds: float
    silence_seconds: float


@dataclass(frozen=True)
class EndMessage:
    """Finish the message being recorded (kept as far as it goes): with its end tone,
    or ``at_once`` when the card is wanted now."""

    at_once: bool = True


@dataclass(frozen=True)
class RecordCall:
    """Record the call's two sides, from now until its media stops; ``button``: the
    bell that started it ("" for an incoming call)."""

    leg: int
    button: str


@dataclass(frozen=True)
class Publish:
    event: Event


@dataclass(frozen=True)
class Log:
    level: int
    message: str


@dataclass(frozen=True)
class SaveLockouts:
    state: dict[str, tuple[int, int, float]]


@dataclass(frozen=True)
class ReportAudio:
    leg: int


StationAction = (PlaceCall | AcceptCall | RejectCall | EndCall | ApplyMedia | StopMedia
                 | CloseMedia | SetRelay | ShowLeds | LocalSound | CallSound | Publish | Log
                 | SaveLockouts | ReportAudio | RecordMessage | EndMessage | RecordCall)


# ----- state ------------------------------------------------------------------------
@dataclass
class Leg:
    id: int
    peer: str
    incoming: bool = False
    plan_leg: int = -1                    # the ring plan's number, for an outgoing leg
    call_id: str = ""                     # once placed (outgoing) or from the start
    state: LegState = LegState.CALLING
    cancelled: str = ""                   # why we called it off, once we have
    listen_only: bool = False             # the station's speaker stays silent
    answered_at: float = 0.0
    source: str = ""                      # where its signalling comes from (an IP)
    keys: int = 0                         # keys received in the call (never which)
    codec: str = ""
    record: CallRecord | None = None      # the call's record, waiting for its quality


@dataclass
class Visit:
    """One press of a bell: its ring plan and the legs rung so far."""

    button: str
    plan: RingPlan
    legs: dict[int, Leg] = field(default_factory=dict)      # by the plan's number


class StationCore:
    def __init__(self, config: Config, registrar: bool = False,
                 sounds: Mapping[str, Clip] | None = None) -> None:
        self.config = config
        self.sounds = dict(sounds or {})       # the announcements, by event
        self.has_registrar = registrar
        d = config.door
        self.door = DoorState(d.pulse_seconds, d.hold_max_seconds,
                              d.open_alarm_seconds)
        self.lockout = Lockout(d.max_wrong_codes, d.max_wrong_codes_overall,
                               d.lockout_seconds, d.lockout_max_seconds)
        self.codes = DoorCodes([], d.digit_timeout)
        self.started = False
        self.audio_error: str | None = None
        self.registration: RegState | None = None      # None: not tried (or no registrar)
        self.visit: Visit | None = None
        self.legs: dict[int, Leg] = {}         # every leg not over yet
        self.call: Leg | None = None           # the one answered
        self.answering: Leg | None = None      # an incoming call being set up
        self.message: str | None = None        # the bell whose visitor leaves a message
        self.limit: CallLimit | None = None
        self.holdoff_until = 0.0
        self._audio_at: float | None = None
        self._hangup_at: float | None = None   # door.hangup_after_open
        self._lock_reported = ""
        self._lock_ends: list[float] = []      # when a lockout ends (for the LEDs)
        self._stopping: dict[int, Leg] = {}    # calls whose media is stopping
        self._next_leg = 0
        self._shown: Shown | None = None
        self._out: list[StationAction] = []

    # ----- the interface ---------------------------------------------------------------
    def handle(self, event: Input, now: float) -> list[StationAction]:
        """The actions ``event`` leads to. Raises LocalError for an illegal command."""
        self._out = []
        self._dispatch(event, now)
        return self._flush(now)

    def timer(self, now: float) -> list[StationAction]:
        """Whatever is due at ``now``."""
        self._out = []
        if self.visit is not None and (d := self.visit.plan.deadline()) is not None \
                and now >= d:
            self._act(self.visit, self.visit.plan.timer(now), now)
        self._limit_due(now)
        if (due := self.codes.deadline()) is not None and now >= due:
            decision = self.codes.expire(now)
            if self.call is not None and decision is not None:
                self._decide(self.call, [decision], now)
        self._lock_ends = [t for t in self._lock_ends if t > now]     # the LEDs follow
        if self._hangup_at is not None and now >= self._hangup_at:
            self._hangup_at = None
            self._hangup("the door was opened", now)
        if self._audio_at is not None and now >= self._audio_at and self.call is not None:
            self._emit(ReportAudio(self.call.id))
            self._audio_at = now + AUDIO_REPORT_SECONDS
        self.door.timer(now, self._emit)
        return self._flush(now)

    def next_deadline(self) -> float | None:
        times = [self.visit.plan.deadline() if self.visit is not None else None,
                 self.limit.deadline() if self.limit is not None else None,
                 self.codes.deadline(), self._hangup_at, self._audio_at,
                 self.door.deadline(), min(self._lock_ends, default=None)]
        return min((t for t in times if t is not None), default=None)

    @property
    def busy(self) -> bool:
        return self.visit is not None or self.call is not None or self.answering is not None

    def call_state(self) -> StationCallState:
        if self.call is not None:
            return StationCallState(self.call.state)
        if self.visit is not None:
            ringing = any(leg.state == LegState.RINGING for leg in self.visit.legs.values())
            return StationCallState.RINGING if ringing else StationCallState.CALLING
        return StationCallState.IDLE

    def locked_out(self, now: float) -> bool:
        call = self.call
        return self.lockout.everyone_locked(now) or (
            call is not None and self.lockout.locked(call.call_id, call.peer, now) is not None)

    def ring_settings(self, button: str) -> RingSettings:
        """How ``button`` rings: its own table in call.button_targets over [call]'s."""
        c = self.config.call
        own = c.button_targets.get(button)
        if own is None:
            return RingSettings(c.targets, c.strategy, c.ring_time, c.cycles,
                                c.fallback_targets, c.ring_timeout)
        return RingSettings(
            own.targets, own.strategy or c.strategy,
            c.ring_time if own.ring_time is None else own.ring_time,
            c.cycles if own.cycles is None else own.cycles,
            c.fallback_targets if own.fallback_targets is None else own.fallback_targets,
            c.ring_timeout)

    # ----- plumbing ----------------------------------------------------------------
    def _emit(self, action: StationAction) -> None:
        self._out.append(action)

    def _publish(self, event: Event) -> None:
        self._out.append(Publish(event))

    def _log(self, level: int, message: str) -> None:
        self._out.append(Log(level, message))

    def _flush(self, now: float) -> list[StationAction]:
        """The actions so far, and the LEDs if what they show changed."""
        view = shown(started=self.started, error=bool(self.audio_error or self.door.alarms),
                     locked_out=self.locked_out(now),
                     registered=None if not self.has_registrar
                     else self.registration is RegState.REGISTERED,
                     door_open=self.door.energised or self.door.closed is False,
                     call=self.call_state())
        if view != self._shown:
            self._shown = view
            self._out.append(ShowLeds(view))
        out, self._out = self._out, []
        return out

    def _dispatch(self, event: Input, now: float) -> None:
        match event:
            case Pressed(button):
                self._press(button, now)
            case Started():
                self.lockout.restore(event.lockouts, now)
                self._lock_ends += [now + left for _, _, left in event.lockouts.values()
                                    if left > 0]
                self.audio_error = event.audio_error
                self.door.closed = event.door_closed
                if event.tamper_open:
                    self.door.tamper(True, self._emit)
                self.started = True
            case DoorContact(closed):
                self.door.contact(closed, now, self._emit)
            case Tamper(opened):
                self.door.tamper(opened, self._emit)
            case AudioTrouble(message):
                self.audio_error = message
            case Registration():
                self._registration(event)
            case Offered():
                self._offered(event)
            case MediaStopped(leg_id, codec, quality):
                stopped = self._stopping.pop(leg_id, None)
                if stopped is not None:
                    self._record(stopped, codec, quality)
            case Placed() | NotPlaced() | Progress() | Answered() | Updated() | Failed() \
                    | Ended() | Digit() | Accepted() | NotAccepted() | MediaApplied():
                leg = self.legs.get(event.leg)
                if leg is not None:              # else: over already, or never ours
                    self._leg_event(leg, event, now)
            case Hangup(reason):
                if not self._hangup(reason, now):
                    raise LocalError("no call to hang up: the station is idle")
            case DoorCommand(action, by):
                self._door_command(action, by, now)
            case Stop():
                self._hangup("station stopping", now)
            case Abandon():
                for leg in list(self.legs.values()):
                    if leg is self.call:
                        self._call_over(leg, now)
                    self._leg_over(leg, CallPhase.ENDED, "station stopped")
                self.door.release(now, self._emit)
                self._emit(LocalSound(None))
                if self.message is not None:
                    self._emit(EndMessage())
            case MessageOver():
                self.message = None
            case _:
                raise TypeError(f"not a station input: {event!r}")

    def _leg_event(self, leg: Leg, event: Input, now: float) -> None:
        visit = self.visit if self.visit is not None and \
            self.visit.legs.get(leg.plan_leg) is leg and not leg.incoming else None
        match event:
            case Placed(_, call_id, source):
                leg.call_id, leg.source = call_id, source
                self._publish(CallEvent(CallPhase.CALLING, leg.peer))
            case NotPlaced(_, status, reason):
                del self.legs[leg.id]
                if status == 0:
                    return                       # withdrawn: nothing went out
                self._publish(CallEvent(CallPhase.FAILED, leg.peer, reason))
                if visit is not None:
                    self._act(visit, visit.plan.failed(leg.plan_leg, status, now), now)
            case Progress(_, status, reason, body):
                if leg.state == LegState.CALLING:
                    leg.state = LegState.RINGING
                    self._publish(CallEvent(CallPhase.RINGING, leg.peer, f"{status} {reason}"))
                # Early media (the PBX's tones) is heard only from a target ringing alone.
                if body and visit is not None and len(visit.plan.ringing) == 1 \
                        and not leg.cancelled:
                    self._emit(LocalSound(None))
                    self._emit(ApplyMedia(leg.id, body, MediaPurpose.EARLY))
            case Answered(_, body):
                actions = visit.plan.answered(leg.plan_leg) if visit is not None else []
                if visit is None or any(isinstance(a, Cancel) and a.leg == leg.plan_leg
                                        for a in actions):
                    # Another target answered first, or the ringing was over.
                    leg.cancelled = leg.cancelled or "answered elsewhere"
                    self._emit(EndCall(leg.id))      # lost the race: release it
                    return
                self._act(visit, actions, now)
                self._emit(LocalSound(None))
                self._emit(ApplyMedia(leg.id, body, MediaPurpose.ANSWER))
            case MediaApplied(_, purpose, ok, codec, on_hold):
                if purpose == MediaPurpose.ANSWER and leg.state != LegState.ANSWERED:
                    if ok:
                        self._talking(leg, codec, now)
                    else:
                        self._emit(EndCall(leg.id))
                        if visit is not None:
                            self._visit_over(visit, CallOutcome.UNAVAILABLE)
                elif purpose == MediaPurpose.UPDATE and ok and leg is self.call:
                    leg.codec = codec or leg.codec
                    self._publish(CallEvent(CallPhase.UPDATED, leg.peer,
                                            "on hold" if on_hold else "talking"))
            case Updated(_, body):
                self._emit(ApplyMedia(leg.id, body, MediaPurpose.UPDATE))
            case Digit(_, digit):
                self._digit(leg, digit, now)
            case Failed(_, status, reason):
                if leg.cancelled:
                    self._leg_over(leg, CallPhase.CANCELLED, leg.cancelled)
                else:
                    self._leg_over(leg, CallPhase.FAILED, f"{status} {reason}")
                if visit is not None:
                    self._act(visit, visit.plan.failed(leg.plan_leg, status, now), now)
            case Ended(_, reason, by_remote):
                who = "by the resident" if by_remote else "by the station"
                if leg is self.call:
                    self._call_over(leg, now)
                self._leg_over(leg, CallPhase.ENDED, f"{reason} {who}")
            case Accepted(_, codec):
                self.answering = None
                self._talking(leg, codec, now)
            case NotAccepted(_, status, reason):
                self.answering = None
                del self.legs[leg.id]
                if status:
                    self._emit(RejectCall(leg.call_id, status, reason))

    def _record(self, leg: Leg, codec: str, quality: Quality | None) -> None:
        """The call's quality, and the record of its visit with it."""
        record, leg.record = leg.record, None
        summary = None
        if quality is not None and quality.packets_received:
            summary = dataclasses.asdict(quality)
            self._publish(QualityEvent(peer=leg.peer, codec=codec or leg.codec, **summary))
        if record is not None:
            self._publish(dataclasses.replace(record, quality=summary))

    def _leg_over(self, leg: Leg, state: CallPhase, reason: str) -> None:
        self.legs.pop(leg.id, None)
        self._emit(CloseMedia(leg.id))
        self._publish(CallEvent(state, leg.peer, reason))

    def _new_leg(self, peer: str, **fields: Any) -> Leg:
        leg = Leg(self._next_leg, peer, **fields)
        self._next_leg += 1
        self.legs[leg.id] = leg
        return leg

    # ----- bells and the calls they place ----------------------------------------------
    def _press(self, button: str, now: float) -> None:
        self._publish(ButtonPressed(button))
        if self.message is not None:
            self._log(logging.INFO, f"bell {button} pressed during the visitor's message: "
                                    "ending the message")
            self._emit(EndMessage(at_once=False))
            return
        if now < self.holdoff_until:
            self._log(logging.INFO, f"bell {button} pressed {self.holdoff_until - now:.1f} s "
                                    "after a call started: ignored (hold-off)")
            return
        if self.busy and self.config.call.press_during_call == "restart":
            self._log(logging.INFO, f"bell {button} pressed during a call: ending it, "
                                    "calling again")
            self._hangup("the bell was pressed again", now)
        elif self.busy:
            self._log(logging.INFO, f"bell {button} pressed during a call: ignored")
            return
        self.holdoff_until = now + self.config.call.press_holdoff
        visit = self.visit = Visit(button, RingPlan(self.ring_settings(button), now))
        ringback = RINGBACK[self.config.station.country]
        sound = then(self.sounds.get("ringing"), ringback if self.config.audio.tones else None)
        if sound is not None:
            self._emit(LocalSound(sound))
        self._act(visit, visit.plan.start(now), now)

    def _act(self, visit: Visit, actions: list[PlanAction], now: float) -> None:
        """Carry out what the ring plan says (its timer is in next_deadline)."""
        for action in actions:
            if isinstance(action, Ring):
                leg = self._new_leg(action.target, plan_leg=action.leg)
                visit.legs[action.leg] = leg
                self._emit(PlaceCall(leg.id, action.target))
            elif isinstance(action, Cancel):
                rung = visit.legs.get(action.leg)
                if rung is not None and not rung.cancelled and rung.id in self.legs:
                    rung.cancelled = action.reason
                    self._emit(EndCall(rung.id))
            elif isinstance(action, GiveUp):
                self._visit_over(visit, action.reason)

    def _hangup(self, reason: str, now: float) -> bool:
        """End whatever goes on: the call, any legs still ringing, a message being
        recorded. False if nothing."""
        done = False
        if self.message is not None:
            self._log(logging.INFO, f"ending the visitor's message: {reason}")
            self._emit(EndMessage())
            done = True
        if self.visit is not None and not self.visit.plan.done:
            self._log(logging.INFO, f"calling off the ringing: {reason}")
            visit = self.visit
            self._act(visit, visit.plan.stop(reason), now)
            self._visit_over(visit, CallOutcome.STOPPED)
            done = True
        if self.call is not None:
            call = self.call
            self._log(logging.INFO, f"hanging up {call.peer}: {reason}")
            self._call_over(call, now)
            self._emit(EndCall(call.id))
            done = True
        return done

    def _visit_over(self, visit: Visit, outcome: CallOutcome, seconds: float = 0.0,
                    leg: Leg | None = None) -> None:
        """The visit is over; its record now, or once ``leg``'s quality is known."""
        if self.visit is visit:
            self.visit = None
        plan = visit.plan
        if outcome is CallOutcome.STOPPED:
            self._emit(LocalSound(None))
        elif outcome is not CallOutcome.ANSWERED:
            self._log(logging.INFO, f"bell {visit.button}: {outcome} "
                                    f"(tried {', '.join(plan.tried)})")
            self._nobody_answered(visit.button)
        record = CallRecord(Direction.BELL, visit.button, outcome, tuple(plan.tried),
                            plan.answered_by or "", round(seconds, 1))
        if leg is not None:
            leg.record = record
        else:
            self._publish(record)

    # ----- incoming calls ------------------------------------------------------------
    def _offered(self, event: Offered) -> None:
        if not event.allowed:
            # One fixed-form line per refused caller, for fail2ban.
            self._log(logging.WARNING, f"incoming call refused from {event.caller} "
                                       f"({event.source[0]}:{event.source[1]}): "
                                       "not an allowed caller")
            self._emit(RejectCall(event.call_id, 403, "Forbidden"))
            self._publish(CallEvent(CallPhase.REFUSED, event.caller,
                                    f"not an allowed caller, from {event.source[0]}"))
        elif self.busy:
            self._log(logging.INFO, f"incoming call from {event.caller} while busy: 486")
            self._emit(RejectCall(event.call_id, 486, "Busy Here"))
        else:
            listen_only = not self.config.incoming.talk
            leg = self.answering = self._new_leg(event.caller, incoming=True,
                                                 call_id=event.call_id,
                                                 source=event.source[0],
                                                 listen_only=listen_only)
            self._emit(LocalSound(None))
            if self.message is not None:        # the resident calls: the message ends
                self._emit(EndMessage())
            self._emit(AcceptCall(leg.id, event.call_id, event.caller, event.sdp, listen_only))

    def _registration(self, event: Registration) -> None:
        if event.state is RegState.FAILED:
            self._log(logging.WARNING, f"registration at {event.registrar} failed: "
                                       f"{event.status} {event.reason}; next try in "
                                       f"{event.retry_in:.0f} s; fix: {event.fix}")
        self.registration = event.state
        self._publish(RegistrationEvent(event.state, event.status, event.reason,
                                        event.registrar, round(event.retry_in, 1)))

    # ----- the call ---------------------------------------------------------------
    def _talking(self, leg: Leg, codec: str, now: float) -> None:
        """``leg`` is answered: it is the call now."""
        leg.state = LegState.ANSWERED
        leg.answered_at = now
        leg.codec = codec
        self.call = leg
        self.codes = DoorCodes(self._codes_for(leg.peer), self.config.door.digit_timeout)
        c = self.config.call
        self.limit = CallLimit(now, c.max_duration, c.warning_seconds, c.extend_key,
                               c.extend_seconds)
        self._audio_at = now + AUDIO_REPORT_SECONDS
        self._publish(CallEvent(CallPhase.ANSWERED, leg.peer,
                                codec + (" (incoming)" if leg.incoming else "")))
        if self.config.recordings.calls:
            # Both sides are told, whatever [audio] tones says and even when the
            # caller only listens: nobody is recorded without hearing so.
            self._emit(CallSound(leg.id, self.sounds.get("call_recorded", CALL_RECORDED), True))
            visit = self.visit
            self._emit(RecordCall(leg.id, "" if leg.incoming or visit is None
                                  else visit.button))

    def _limit_due(self, now: float) -> None:
        call, limit = self.call, self.limit
        if call is None or limit is None or now < limit.deadline():
            return
        due = limit.due(now)
        if due == "end":
            self._hangup("maximum call duration reached", now)
        elif due == "warn":
            self._in_call(CALL_ENDING, True)
            key = limit.extend_key
            self._publish(CallEvent(CallPhase.EXPIRING, call.peer,
                                    f"ends in {limit.ends_at - now:.0f} s" +
                                    (f"; {key} extends it" if key else "")))

    def _call_over(self, call: Leg, now: float) -> None:
        """The call is over (either side hung up): the station is idle; its record
        follows when its media has stopped (MediaStopped, with the quality)."""
        if self.call is not call:
            return
        self.call = None
        self.limit = None
        self._audio_at = self._hangup_at = None
        self.lockout.call_ended(call.call_id)
        self.codes.reset()
        seconds = now - call.answered_at
        visit = self.visit
        if call.incoming:
            call.record = CallRecord(Direction.INCOMING, "", CallOutcome.ANSWERED, (call.peer,), call.peer,
                                     round(seconds, 1))
        elif visit is not None and visit.plan.answered_by is not None:
            self._visit_over(visit, CallOutcome.ANSWERED, seconds, call)
        self._stopping[call.id] = call
        self._emit(StopMedia(call.id))

    def _in_call(self, tone: Tone, to_speaker: bool, event: str = "") -> None:
        """Mix the announcement for ``event``, or else ``tone``, into the call: the
        resident hears it, and the visitor too unless the caller only listens."""
        call = self.call
        clip = self.sounds.get(event)
        if call is not None and (clip is not None or self.config.audio.tones):
            self._emit(CallSound(call.id, clip or tone, to_speaker and not call.listen_only))

    def _local(self, sound: Sound, seconds: float | None = None) -> None:
        """Play ``sound`` at the door; a generated tone only if [audio] tones is on."""
        if self.config.audio.tones or not isinstance(sound, Tone):
            self._emit(LocalSound(sound, seconds))

    def _nobody_answered(self, button: str) -> None:
        """The visitor hears that no one answers; then leaves a message, if taken."""
        r = self.config.recordings
        said = self.sounds.get("nobody_answered")
        if r.messages:
            self.message = button
            self._emit(LocalSound(None))
            self._emit(RecordMessage(button, then(said, self.sounds.get("leave_message")),
                                     r.message_seconds, r.message_silence_seconds))
        elif said is not None:
            self._local(said)
        else:
            self._local(BUSY[self.config.station.country], BUSY_SECONDS)

    # ----- keys, codes and the door ---------------------------------------------------
    def _digit(self, leg: Leg, digit: str, now: float) -> None:
        if leg is not self.call:
            # Early media comes from the PBX, not the resident: never a door code.
            self._log(logging.WARNING, f"a DTMF key from {leg.peer} outside the call: ignored")
            return
        leg.keys += 1
        self._publish(DtmfEvent(leg.peer, leg.keys))
        entering = self.codes.deadline() is not None
        if self.limit is not None and self.limit.extends(digit, entering):
            # After the warning the extend key is not a code digit.
            self._publish(CallEvent(CallPhase.EXTENDED, leg.peer,
                                    f"by {self.limit.extend_seconds:g} s"))
            return
        if not self.codes.codes:
            return                                  # no code opens the door in this call
        lock = self.lockout.locked(leg.call_id, leg.peer, now)
        if lock is not None:
            # Locked out: the digits are not even compared, the right code's neither.
            self.codes.reset()
            reason = f"locked out ({lock.scope}" + \
                (f", {lock.seconds:.0f} s left)" if lock.seconds else ", for this call)")
            if self._lock_reported != leg.call_id + lock.scope:
                self._lock_reported = leg.call_id + lock.scope
                self._log(logging.WARNING, f"door code ignored from {leg.peer}: {reason}")
            return
        self._decide(leg, self.codes.digit(digit, now), now)

    def _codes_for(self, peer: str) -> list[str]:
        """The codes that open the door in a call with ``peer``: everyone's, and
        those door.caller_codes gives that target or caller."""
        codes = list(self.config.door.codes)
        try:
            uri = SipUri.parse(peer)
        except SipError:
            return codes
        for entry, own in self.config.door.caller_codes.items():
            if SipUri.parse(entry).names(uri):
                codes += own
        return codes

    def _decide(self, leg: Leg, decisions: list[Decision], now: float) -> None:
        caller, source = leg.peer, leg.source or "unknown"
        for decision in decisions:
            if decision.action == "open":
                self.lockout.right(caller)
                self._emit(SaveLockouts(self.lockout.export(now)))
                self._publish(DoorEvent(DoorAction.OPENED, caller, "code", source))
                self._in_call(DOOR_OPENED, True, "door_opened")
                self.door.pulse(now, self._emit)
                after = self.config.door.hangup_after_open
                if after and self._hangup_at is None:
                    self._hangup_at = now + after
                continue
            # Its log line is in a fixed form that fail2ban can match on the
            # address: "door code rejected from <caller> (<ip>): <why>" (events.py).
            self._publish(DoorEvent(DoorAction.REJECTED, caller, decision.reason, source))
            locks = self.lockout.wrong(leg.call_id, caller, now)
            self._in_call(WRONG_CODE, False, "locked_out" if locks else "")
            for lock in locks:
                how = "for the rest of the call" if lock.scope == "call" else \
                    f"for {lock.seconds:.0f} s"
                self._publish(DoorEvent(DoorAction.LOCKED_OUT, caller, f"{lock.scope} {how}", source))
                if lock.seconds:
                    self._lock_ends.append(now + lock.seconds)
            self._emit(SaveLockouts(self.lockout.export(now)))

    def _door_command(self, action: str, by: str, now: float) -> None:
        """``open`` (a pulse), ``hold`` (open until ``lock``) or ``lock``, from the
        control socket: an installer, a home-automation system."""
        if action == "open":
            self._publish(DoorEvent(DoorAction.OPENED, by, "command"))
            self.door.pulse(now, self._emit)
            # Whoever is at the door hears that it opens: in the call, or on its own.
            if self.call is not None:
                self._in_call(DOOR_OPENED, True, "door_opened")
            elif not self.busy and self.message is None:
                self._local(self.sounds.get("door_opened", DOOR_OPENED))
        elif action == "hold":
            self.door.hold(by, now, self._emit)
        elif action == "lock":
            self.door.lock(by, now, self._emit)
        else:
            raise LocalError(f"door action {action!r}; allowed: open, hold, lock")


Emit = Callable[[StationAction], None]


class DoorState:
    """The door itself: the strike relay, the door contact and the tamper switch.

    The relay is energised only for a pulse (a right code, or ``intercom ctl
    door open``) or while the door is held open (``ctl door hold``, which ends
    by itself after ``hold_max`` seconds), and is released at once by ``ctl
    door lock`` and when the station stops. A pulse while energised extends it.
    The door contact reports the door opening and closing; a door left open
    longer than ``open_alarm`` seconds raises an alarm, cleared when it closes.
    The tamper switch raises an alarm while the case is open.
    """

    def __init__(self, pulse_seconds: float, hold_max: float, open_alarm: float) -> None:
        self.pulse_seconds = pulse_seconds
        self.hold_max = hold_max
        self.open_alarm = open_alarm
        self.held = False
        self.closed: bool | None = None        # the contact; None without one
        self.alarms: set[AlarmCause] = set()
        self.release_at: float | None = None   # energised until then
        self._since = 0.0
        self._alarm_at: float | None = None

    @property
    def energised(self) -> bool:
        return self.release_at is not None

    def deadline(self) -> float | None:
        times = [t for t in (self.release_at, self._alarm_at) if t is not None]
        return min(times, default=None)

    def timer(self, now: float, emit: Emit) -> None:
        if self.release_at is not None and now >= self.release_at:
            self.release(now, emit)
        if self._alarm_at is not None and now >= self._alarm_at:
            self._alarm_at = None
            self._alarm(AlarmCause.DOOR_OPEN, f"open for {self.open_alarm:g} s", emit)

    def pulse(self, now: float, emit: Emit) -> None:
        if not self.held:
            self._energise(self.pulse_seconds, now, emit)

    def hold(self, by: str, now: float, emit: Emit) -> None:
        self.held = True
        self._energise(self.hold_max, now, emit)
        emit(Publish(DoorEvent(DoorAction.HELD_OPEN, by, f"for up to {self.hold_max:g} s")))

    def lock(self, by: str, now: float, emit: Emit) -> None:
        self.release(now, emit)
        emit(Publish(DoorEvent(DoorAction.LOCKED, by)))

    def _energise(self, seconds: float, now: float, emit: Emit) -> None:
        if self.release_at is None:
            self._since = now
            emit(SetRelay(True))
            emit(Publish(RelayEvent(True)))
        self.release_at = now + seconds

    def release(self, now: float, emit: Emit) -> None:
        self.held = False
        if self.release_at is None:
            return
        self.release_at = None
        emit(SetRelay(False))
        emit(Publish(RelayEvent(False, round(now - self._since, 3))))

    def contact(self, closed: bool, now: float, emit: Emit) -> None:
        self.closed = closed
        emit(Publish(DoorContactEvent(closed)))
        self._alarm_at = None
        if not closed and self.open_alarm:
            self._alarm_at = now + self.open_alarm
        elif closed:
            self._clear(AlarmCause.DOOR_OPEN, "the door closed", emit)

    def tamper(self, opened: bool, emit: Emit) -> None:
        if opened:
            self._alarm(AlarmCause.TAMPER, "the case was opened", emit)
        else:
            self._clear(AlarmCause.TAMPER, "the case was closed", emit)

    def _alarm(self, cause: AlarmCause, detail: str, emit: Emit) -> None:
        if cause not in self.alarms:
            self.alarms.add(cause)
            emit(Publish(AlarmEvent(cause, True, detail)))

    def _clear(self, cause: AlarmCause, detail: str, emit: Emit) -> None:
        if cause in self.alarms:
            self.alarms.discard(cause)
            emit(Publish(AlarmEvent(cause, False, detail)))
