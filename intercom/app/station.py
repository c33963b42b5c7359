"""The door station: board, SIP and media events in; calls, LEDs and the relay out.

A bell press starts a visit: its ring plan (intercom.app.ringing) says which
targets ring when; each is a call leg of its own, and the first to answer
becomes the call. A configured resident may call the station too. In the
call, DTMF digits go to the door codes; a right code pulses the relay. A
call is hung up at its maximum time, after a warning the resident can
answer with the extend key.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from intercom.app.callmedia import CallLeg, CallMedia
from intercom.app.calltime import CallLimit
from intercom.app.doorcontrol import DoorController
from intercom.app.eventlog import EventLog, default_path
from intercom.app.keypad import DoorKeypad
from intercom.app.leds import shown
from intercom.app.network import (UNANSWERED_FIX, locate_servers, registrar_of,
                                  registration_fix, route_address, user_agent)
from intercom.app.events import (AudioEvent, ButtonPressed, CallEvent, CallRecord,
                                 DoorEvent, DtmfEvent, Event, QualityEvent, RegistrationEvent)
from intercom.app.ringing import Action, Cancel, GiveUp, Ring, RingPlan, RingSettings
from intercom.config import Config, ConfigError
from intercom.hal.board import Board
from intercom.media.tones import BUSY, CALL_ENDING, RINGBACK, Tone, TonePlayer
from intercom.sip import events as sip_events
from intercom.sip import sdp
from intercom.sip.address import SipUri
from intercom.sip.errors import SipError
from intercom.sip.locate import Dest
from intercom.sip.transport import SipEndpoint, tls_context

log = logging.getLogger("intercom.station")
RECENT_EVENTS = 200           # replayed to a new `intercom ctl events` watcher
BUSY_SECONDS = 4.0            # the busy tone once nobody answered


@dataclass
class Visit:
    """One press of a bell: its ring plan, the legs rung so far, and the call it led to."""

    button: str
    plan: RingPlan
    legs: dict[int, CallLeg] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


class DoorStation:
    def __init__(self, config: Config, board: Board) -> None:
        self.config = config
        self.board = board
        self.loop = asyncio.get_running_loop()
        self.subscribers: list[Callable[[Event], None]] = []
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self.visit: Visit | None = None
        self.legs: dict[str, CallLeg] = {}       # every live SIP call, by Call-ID
        self.call: CallLeg | None = None         # the one that was answered
        self._answering = False                  # an incoming call is being set up
        self.limit: CallLimit | None = None      # the call's end and its warning
        self._limit_timer: asyncio.TimerHandle | None = None
        self._audio_report: asyncio.TimerHandle | None = None
        self._tones: TonePlayer | None = None    # ringback or busy, on the card alone
        self.registration = "none"
        d = config["door"]
        self.doors = DoorController(board, self.publish, d["pulse_seconds"],
                                    d["hold_max_seconds"], d["open_alarm_seconds"])
        self.keypad = DoorKeypad(config, self.doors, self.publish, self._tone_in_call,
                                 self.hangup, self._show)
        self._holdoff_until = 0.0
        self._restart_button: str | None = None
        for button in config["call"]["button_targets"]:
            if button not in board.buttons:
                raise ConfigError(f"call.button_targets.{button}: the board has no such "
                                  f"button; it has {', '.join(sorted(board.buttons))}")
        self.eventlog: EventLog | None = None        # opened at start
        self.started = False
        self.audio_error: str | None = None
        self.registrar = registrar_of(config)
        self.ua = user_agent(config)
        self.local_host = self.ua.settings.local_host
        self.sip: SipEndpoint | None = None
        self._watch: asyncio.Task[None] | None = None
        self.media = CallMedia(config, lambda: self.ua.settings.local_host, self._on_dtmf,
                               self._on_audio_error)

    async def _watch_address(self, interval: float) -> None:
        """Follow a change of our own address (Wi-Fi/4G handover): re-register, re-offer."""
        while True:
            await asyncio.sleep(interval)
            first = SipUri.parse(self.config["call"]["targets"][0])
            dest = self.ua.locate(self.ua.outbound or first)
            try:
                current = await asyncio.to_thread(route_address, self.config,
                                                  (dest.host, dest.port))
            except OSError:
                continue                               # no route right now: wait for one
            if current != self.ua.settings.local_host and self.sip is not None:
                log.info("our address changed from %s to %s", self.ua.settings.local_host,
                         current)
                self.sip.run(lambda now: self.ua.set_local_address(current, now))

    async def _readdress_call(self, call: CallLeg) -> None:
        host, port = await self.media.address(call.rtp)
        if self.call is not call or self.sip is None or call.call_id not in self.ua.calls:
            return
        body = sdp.readdress(self.ua.call(call.call_id).local_sdp, host, port)
        try:
            self.sip.run(lambda now: self.ua.reoffer(call.call_id, now, sdp=body))
        except SipError as exc:
            log.warning("cannot re-offer the call after the address change: %s", exc)

    # ----- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        self._show()                                  # booting, until the end of start
        lg = self.config["log"]
        path = lg["database"] or default_path()
        try:
            self.eventlog = EventLog(path, lg["max_events"])
            self.keypad.restore(self.eventlog)
        except (sqlite3.Error, OSError) as exc:
            # The door station works without its record; it says so, once.
            log.error("event log %s cannot be opened: %s; running without it", path, exc)
        s = self.config["sip"]
        tls = tls_context(s["tls_ca_file"]) if s["transport"] in ("auto", "tls") else None
        self.sip = await SipEndpoint.open(self.ua, (s["listen"], s["port"]), self._on_sip_event,
                                          tls)
        await locate_servers(self.ua, self.config, self._all_targets())
        if s["address_check"] and not s["public_address"] and \
                s["listen"] in ("0.0.0.0", "::", ""):
            self._watch = self.loop.create_task(self._watch_address(float(s["address_check"])))
        self.board.on_button = self._button_from_board
        self.board.on_door = self._door_from_board
        self.board.on_tamper = self._tamper_from_board
        if self.board.tamper_open:
            self.doors.tamper(True)
        self.audio_error = await self.media.probe()
        if self.audio_error is not None:
            log.error("audio device: %s; calls will go ahead and retry it", self.audio_error)
        if self.registrar is not None:
            self.sip.run(self.ua.register)
        self.started = True
        self._show()
        log.info("station %r up: SIP %s:%d, %s", self.config["station"]["name"], self.local_host,
                 s["port"], f"registrar {self.registrar}" if self.registrar else "no registrar")

    # gpiozero calls these on its own threads: hand over to the loop.
    def _button_from_board(self, name: str) -> None:
        self.loop.call_soon_threadsafe(self.press_event, name)

    def _door_from_board(self, closed: bool) -> None:
        self.loop.call_soon_threadsafe(self.doors.contact, closed)

    def _tamper_from_board(self, opened: bool) -> None:
        self.loop.call_soon_threadsafe(self.doors.tamper, opened)

    async def stop(self) -> None:
        assert self.sip is not None
        if self.hangup("station stopping"):
            for _ in range(40):                       # up to 2 s for the BYEs/CANCELs
                if not self.legs:
                    break
                await asyncio.sleep(0.05)
        for call_id in list(self.legs):
            self._leg_over(self.legs[call_id], "ended", "station stopped")
        if self.registration == "registered":
            self.sip.run(self.ua.unregister)
            for _ in range(20):                       # up to 1 s for the registrar's answer
                if self.registration != "registered":
                    break
                await asyncio.sleep(0.05)
        self.doors.release()
        self._play_local(None)
        if self._watch is not None:
            self._watch.cancel()
        self.sip.close()
        if self.eventlog is not None:
            self.eventlog.close()

    def trouble(self) -> str | None:
        """Why the station is not working (the watchdog then withholds its ping, and
        systemd restarts it), or None: the SIP layer, and the call's audio thread."""
        if self.sip is None:
            return "SIP is not started"
        if (why := self.sip.trouble()) is not None:
            return why
        if self.call is not None and self.call.stream is not None:
            return self.call.stream.trouble()
        return None

    def subscribe(self, callback: Callable[[Event], None],
                  replay: bool = False) -> Callable[[], None]:
        """Call ``callback`` for each event from now on (after the recent ones, if ``replay``)."""
        if replay:
            for event in self.recent:
                callback(event)
        self.subscribers.append(callback)
        return lambda: self.subscribers.remove(callback)

    def publish(self, event: Event) -> None:
        # One readable line per event, at its level (security events are WARNINGs in
        # fixed forms for fail2ban); its JSON goes to `intercom ctl events`.
        log.log(event.level(), "%s", event.text())
        self.recent.append(event)
        if self.eventlog is not None:
            self.eventlog.add(event)
        for callback in list(self.subscribers):
            callback(event)
        self._show()

    def state(self) -> dict[str, Any]:
        call: dict[str, Any] = {"state": "idle"}
        if self.call is not None:
            call = {"state": self.call.state, "peer": self.call.peer,
                    "incoming": self.call.incoming,
                    "ends_in": round(self.limit.ends_at - self.loop.time(), 1)
                    if self.limit is not None else None}
            if self.call.stream is not None:
                call["audio"] = self.call.stream.stats()
        elif self.visit is not None:
            call = {"state": self._call_state(),
                    "peer": ", ".join(self.visit.plan.ringing.values()),
                    "button": self.visit.button}
        return {"station": self.config["station"]["name"],
                "registration": {"state": self.registration,
                                 "registrar": str(self.ua.registration.server)
                                 if self.registrar else None},
                "call": call,
                "audio": {"device": self.config["audio"]["device"], "error": self.audio_error},
                "board": {"type": self.config["board"]["type"],
                          "profile": self.board.profile.name},
                "relay": {"energised": self.board.relay_energised, "held": self.doors.held},
                "door_closed": self.board.door_closed,
                "tamper_open": self.board.tamper_open,
                "alarms": sorted(self.doors.alarms),
                "leds": self.board.led_modes(),
                "buttons": sorted(self.board.buttons)}

    # ----- bells and the calls they place -----------------------------------------
    def _all_targets(self) -> list[str]:
        """Every target any bell may ring (for DNS at start)."""
        every: list[str] = []
        for button in ["", *self.config["call"]["button_targets"]]:
            plan = self.ring_settings(button)           # "": [call]'s own targets
            every += [*plan.targets, *plan.fallback]
        return list(dict.fromkeys(every))

    def ring_settings(self, button: str) -> RingSettings:
        """How ``button`` rings: its own table in call.button_targets over [call]'s."""
        c = dict(self.config["call"])
        own = c["button_targets"].get(button)
        if own is not None:
            c.update(own if isinstance(own, dict) else {"targets": own})
        return RingSettings(tuple(c["targets"]), c["strategy"], float(c["ring_time"]),
                            c["cycles"], tuple(c["fallback_targets"]), float(c["ring_timeout"]))

    @property
    def busy(self) -> bool:
        return self.visit is not None or self.call is not None or self._answering

    def press_event(self, button: str) -> None:
        self.publish(ButtonPressed(button))
        now = self.loop.time()
        if now < self._holdoff_until:
            log.info("bell %s pressed %.1f s after a call started: ignored (hold-off)",
                     button, self._holdoff_until - now)
            return
        if self.busy and self.config["call"]["press_during_call"] == "restart":
            log.info("bell %s pressed during a call: ending it, calling again", button)
            self.hangup("the bell was pressed again")
        elif self.busy:
            log.info("bell %s pressed during a call: ignored", button)
            return
        self._holdoff_until = now + self.config["call"]["press_holdoff"]
        visit = self.visit = Visit(button, RingPlan(self.ring_settings(button), now))
        self._play_local(RINGBACK[self.config["station"]["country"]])
        self._act(visit, visit.plan.start(now))

    def _act(self, visit: Visit, actions: list[Action]) -> None:
        """Carry out what the ring plan says, and wake it when it wants."""
        for action in actions:
            if isinstance(action, Ring):
                self.loop.create_task(self._ring(visit, action.leg, action.target))
            elif isinstance(action, Cancel):
                leg = visit.legs.get(action.leg)
                if leg is not None and not leg.cancelled:
                    leg.cancelled = action.reason
                    self._hangup_leg(leg)
            elif isinstance(action, GiveUp):
                self._visit_over(visit, action.reason)
        if visit.timer is not None:
            visit.timer.cancel()
        deadline = visit.plan.deadline()
        visit.timer = None if deadline is None else self.loop.call_at(
            deadline, lambda: self._act(visit, visit.plan.timer(self.loop.time())))

    async def _ring(self, visit: Visit, number: int, target: str) -> None:
        try:
            leg = await self.media.open(target)
        except OSError as exc:
            self.publish(CallEvent("failed", target, f"no RTP port: {exc}"))
            self._act(visit, visit.plan.failed(number, 503, self.loop.time()))
            return
        if number not in visit.plan.ringing:          # called off while the port opened
            self.media.close(leg)
            return
        leg.leg = number
        assert self.sip is not None
        body = self.media.offer(leg)
        try:
            leg.call_id = str(self.sip.run(lambda now: self.ua.invite(target, body, now)))
        except SipError as exc:
            self.media.close(leg)
            self.publish(CallEvent("failed", target, str(exc)))
            self._act(visit, visit.plan.failed(number, 500, self.loop.time()))
            return
        visit.legs[number] = leg
        self.legs[leg.call_id] = leg
        self.publish(CallEvent("calling", target))

    def hangup(self, reason: str = "hung up") -> bool:
        """End whatever goes on: the call, and any legs still ringing. False if nothing."""
        done = False
        if self.visit is not None and not self.visit.plan.done:
            log.info("calling off the ringing: %s", reason)
            self._act(self.visit, self.visit.plan.stop(reason))
            self._visit_over(self.visit, "stopped")
            done = True
        if self.call is not None and self.call.call_id in self.legs:
            log.info("hanging up %s: %s", self.call.peer, reason)
            call = self.call
            self._call_over(call)
            self._hangup_leg(call)
            done = True
        return done

    def _hangup_leg(self, leg: CallLeg) -> None:
        if leg.call_id and self.sip is not None and leg.call_id in self.ua.calls:
            call_id = leg.call_id
            self.sip.run(lambda now: self.ua.hangup(call_id, now))

    def _visit_over(self, visit: Visit, outcome: str, seconds: float = 0.0,
                    quality: dict[str, Any] | None = None) -> None:
        if self.visit is visit:
            self.visit = None
        if visit.timer is not None:
            visit.timer.cancel()
            visit.timer = None
        plan = visit.plan
        if outcome == "stopped":
            self._play_local(None)
        elif outcome != "answered":
            log.info("bell %s: %s (tried %s)", visit.button, outcome, ", ".join(plan.tried))
            self._play_local(BUSY[self.config["station"]["country"]], BUSY_SECONDS)
        self.publish(CallRecord("bell", visit.button, outcome, tuple(plan.tried),
                                plan.answered_by or "", round(seconds, 1), quality))

    # ----- incoming calls -----------------------------------------------------------
    def caller_allowed(self, caller: str, source: tuple[str, int]) -> bool:
        """Is ``caller`` one of incoming.callers, and did the INVITE come from where
        that caller's calls can come from: its own address (a phone called by IP),
        or our registrar or proxy (which authenticated it)? A From header alone
        is whatever the sender wrote."""
        try:
            uri = SipUri.parse(caller)
        except SipError:
            return False
        for entry in map(SipUri.parse, self.config["incoming"]["callers"]):
            if (entry.user, entry.host.lower()) != (uri.user, uri.host.lower()) or \
                    (entry.port is not None and entry.port != uri.port):
                continue
            if source[0] == entry.host.strip("[]") or \
                    self.ua.is_server(Dest(source[0], source[1]), any_port=True):
                return True
        return False

    def _on_incoming(self, event: sip_events.IncomingCall) -> None:
        if not self.caller_allowed(event.caller, event.source):
            # One fixed-form line per refused caller, for fail2ban.
            log.warning("incoming call refused from %s (%s:%d): not an allowed caller",
                        event.caller, *event.source)
            self.ua.reject(event.call_id, 403, "Forbidden", self.loop.time())
            self.publish(CallEvent("refused", event.caller,
                                   f"not an allowed caller, from {event.source[0]}"))
        elif self.busy:
            log.info("incoming call from %s while busy: 486", event.caller)
            self.ua.reject(event.call_id, 486, "Busy Here", self.loop.time())
        else:
            self._answering = True
            self.loop.create_task(self._answer(event))

    async def _answer(self, event: sip_events.IncomingCall) -> None:
        try:
            leg = await self.media.open(event.caller, incoming=True)
        except OSError as exc:
            self._answering = False
            log.error("no RTP port for the call from %s: %s", event.caller, exc)
            self._run(lambda now: self.ua.reject(event.call_id, 503, "Service Unavailable",
                                                 now))
            return
        self._answering = False
        if event.call_id not in self.ua.calls:          # the caller gave up meanwhile
            self.media.close(leg)
            return
        leg.call_id = event.call_id
        leg.source = event.source[0]
        leg.listen_only = not self.config["incoming"]["talk"]
        self._play_local(None)
        try:
            if not event.sdp:
                raise sdp.SdpError("no SDP offer in the INVITE")
            body = self.media.answer(leg, event.sdp)
        except SipError as exc:
            log.warning("call from %s refused: %s", event.caller, exc)
            self.media.close(leg)
            self._run(lambda now: self.ua.reject(event.call_id, 488, "Not Acceptable Here",
                                                 now))
            return
        self.legs[leg.call_id] = leg
        self._run(lambda now: self.ua.answer(event.call_id, body, now))
        self._talking(leg)

    def _run(self, step: Callable[[float], object]) -> None:
        assert self.sip is not None
        self.sip.run(step)

    # ----- SIP events ---------------------------------------------------------------
    def _on_sip_event(self, event: sip_events.UaEvent) -> None:
        if isinstance(event, sip_events.RegistrationUnanswered):
            log.warning("registrar %s has not answered for %.0f s (still trying); fix: %s",
                        event.registrar, event.seconds, UNANSWERED_FIX)
            return
        if isinstance(event, sip_events.RegistrationChanged):
            if event.state == "failed":
                log.warning("registration at %s failed: %d %s; next try in %.0f s; fix: %s",
                            self.ua.registration.server, event.status, event.reason,
                            event.retry_in, registration_fix(event.status))
            self.registration = event.state
            self.publish(RegistrationEvent(event.state, event.status, event.reason,
                                           str(self.ua.registration.server),
                                           round(event.retry_in, 1)))
            return
        if isinstance(event, sip_events.IncomingCall):
            self._on_incoming(event)
            return
        if isinstance(event, sip_events.LocalAddressChanged):
            self.local_host = event.address
            call = self.call
            if call is not None and call.call_id in event.call_ids:
                self.loop.create_task(self._readdress_call(call))
            return
        if isinstance(event, sip_events.PublicAddress):
            log.info("the registrar sees us at %s:%d; registering that as our contact",
                     *event.address)
            return
        if isinstance(event, sip_events.MessageRejected):
            log.warning("SIP message from %s:%d rejected: %d %s", *event.source, event.status,
                        event.reason)
            return
        leg = self.legs.get(event.call_id)
        if leg is None:
            return
        visit = self.visit if self.visit is not None and \
            self.visit.legs.get(leg.leg) is leg else None
        if isinstance(event, sip_events.CallProgress):
            if leg.state == "calling":
                leg.state = "ringing"
                self.publish(CallEvent("ringing", leg.peer, f"{event.status} {event.reason}"))
            # Early media (the PBX's tones) is heard only from a target ringing alone.
            if event.sdp and visit is not None and len(visit.plan.ringing) == 1 \
                    and not leg.cancelled:
                self._play_local(None)
                self.media.apply(leg, event.sdp)
        elif isinstance(event, sip_events.CallAnswered):
            actions: list[Action] = visit.plan.answered(leg.leg) if visit is not None else \
                [Cancel(leg.leg, "answered after the ringing was over")]
            if any(isinstance(a, Cancel) and a.leg == leg.leg for a in actions):
                leg.cancelled = leg.cancelled or "answered elsewhere"
                self._hangup_leg(leg)                # lost the race: release it
                return
            assert visit is not None
            self._act(visit, actions)
            self._play_local(None)
            if not self.media.apply(leg, event.sdp):
                self._hangup_leg(leg)
                self._visit_over(visit, "unavailable")
                return
            self._talking(leg)
        elif isinstance(event, sip_events.CallUpdated):
            if self.media.apply(leg, event.sdp, we_offered=not leg.incoming) \
                    and leg is self.call:
                self.publish(CallEvent("updated", leg.peer,
                                       "on hold" if leg.rtp.paused else "talking"))
        elif isinstance(event, sip_events.InfoDtmf):
            self._on_dtmf(leg, event.digit)
        elif isinstance(event, sip_events.CallFailed):
            if leg.cancelled:
                self._leg_over(leg, "cancelled", leg.cancelled)
            else:
                self._leg_over(leg, "failed", f"{event.status} {event.reason}")
            if visit is not None:
                self._act(visit, visit.plan.failed(leg.leg, event.status, self.loop.time()))
        elif isinstance(event, sip_events.CallEnded):
            who = "by the resident" if event.by_remote else "by the station"
            if leg is self.call:
                self._call_over(leg)
            self._leg_over(leg, "ended", f"{event.reason} {who}")

    def _leg_over(self, leg: CallLeg, state: str, reason: str) -> None:
        self.legs.pop(leg.call_id, None)
        self.media.close(leg)
        self.publish(CallEvent(state, leg.peer, reason))

    # ----- the call ---------------------------------------------------------------
    def _talking(self, leg: CallLeg) -> None:
        """``leg`` is answered: it is the call now."""
        leg.state = "answered"
        leg.answered_at = self.loop.time()
        if not leg.source and leg.call_id in self.ua.calls:
            leg.source = self.ua.call(leg.call_id).dest.host     # the phone, or the PBX
        self.call = leg
        self.keypad.call_started(leg)
        c = self.config["call"]
        self.limit = CallLimit(leg.answered_at, c["max_duration"], c["warning_seconds"],
                               c["extend_key"], c["extend_seconds"])
        self._arm_limit()
        self._audio_report = self.loop.call_later(1.0, self._report_audio, leg)
        assert leg.stream is not None
        self.publish(CallEvent("answered", leg.peer, leg.stream.codec.name +
                               (" (incoming)" if leg.incoming else "")))

    def _arm_limit(self) -> None:
        if self._limit_timer is not None:
            self._limit_timer.cancel()
        limit = self.limit
        self._limit_timer = None if limit is None else \
            self.loop.call_at(limit.deadline(), self._limit_due)

    def _limit_due(self) -> None:
        call, limit = self.call, self.limit
        if call is None or limit is None:
            return
        due = limit.due(self.loop.time())
        if due == "end":
            self.hangup("maximum call duration reached")
            return
        if due == "warn":
            self._tone_in_call(CALL_ENDING)
            key = limit.extend_key
            left = limit.ends_at - self.loop.time()
            self.publish(CallEvent("expiring", call.peer, f"ends in {left:.0f} s" +
                                   (f"; {key} extends it" if key else "")))
        self._arm_limit()

    def _call_over(self, call: CallLeg) -> None:
        """The call is over (either side hung up): its record, and the station idle."""
        if self.call is not call:
            return
        self.call = None
        self.limit = None
        self._arm_limit()
        if self._audio_report is not None:
            self._audio_report.cancel()
        self.keypad.call_ended(call)
        summary = None
        if call.stream is not None:
            call.stream.stop()
            quality = call.stream.quality()
            if quality is not None and quality.packets_received:
                self.publish(QualityEvent(peer=call.peer, codec=call.stream.codec.name,
                                          **dataclasses.asdict(quality)))
                summary = dataclasses.asdict(quality)
        seconds = self.loop.time() - call.answered_at
        visit = self.visit
        if call.incoming:
            self.publish(CallRecord("incoming", "", "answered", (call.peer,), call.peer,
                                    round(seconds, 1), summary))
        elif visit is not None and visit.plan.answered_by is not None:
            self._visit_over(visit, "answered", seconds, summary)

    def _play_local(self, tone: Tone | None, seconds: float | None = None) -> None:
        """Play ``tone`` on the sound card on its own (None: stop the one playing)."""
        if self._tones is not None:
            self._tones.stop()
            self._tones = None
        a = self.config["audio"]
        if tone is not None and a["tones"]:
            self._tones = TonePlayer(self.media.open_device, a["rate"],
                                     a["rate"] * a["period_ms"] // 1000, tone, seconds)

    def _tone_in_call(self, tone: Tone, to_speaker: bool = True) -> None:
        """Mix ``tone`` into the call: the resident hears it, and the visitor too
        unless the caller is only listening at the door."""
        call = self.call
        if call is not None and call.stream is not None and self.config["audio"]["tones"]:
            call.stream.play(tone, to_call=True, to_speaker=to_speaker and not call.listen_only)

    def _call_state(self) -> str:
        if self.call is not None:
            return self.call.state
        if self.visit is not None:
            ringing = any(leg.state == "ringing" for leg in self.visit.legs.values())
            return "ringing" if ringing else "calling"
        return "idle"

    def _show(self) -> None:
        """The LEDs, from the state (intercom.app.leds); after every event."""
        view = shown(started=self.started, error=bool(self.audio_error or self.doors.alarms),
                     locked_out=self.keypad.locked_out(self.call),
                     registered=None if self.registrar is None
                     else self.registration == "registered",
                     door_open=self.doors.energised or self.board.door_closed is False,
                     call=self._call_state())
        for name, mode in view.leds().items():
            self.board.set_led(name, mode)
        self.board.set_rgb(*view.colour())

    def _on_audio_error(self, message: str) -> None:
        self.audio_error = message
        self._show()

    def _report_audio(self, call: CallLeg) -> None:
        if self.call is not call or call.stream is None:
            return
        st = call.stream
        self.publish(AudioEvent(st.codec.name, round(st.mic_level.dbfs, 1),
                                round(st.speaker_level.dbfs, 1), st.rtp.stats.sent,
                                st.rtp.stats.received, st.device_error))
        self._audio_report = self.loop.call_later(1.0, self._report_audio, call)

    # ----- DTMF and the door ----------------------------------------------------
    def door_command(self, action: str, by: str) -> None:
        """``open`` (a pulse), ``hold`` (open until ``lock``) or ``lock``, from the
        control socket: an installer, a home-automation system."""
        if action == "open":
            self.publish(DoorEvent("opened", by, "command"))
            self.doors.pulse()
        elif action == "hold":
            self.doors.hold(by)
        elif action == "lock":
            self.doors.lock(by)
        else:
            raise ValueError(f"door action {action!r}; allowed: open, hold, lock")

    def _on_dtmf(self, call: CallLeg, digit: str) -> None:
        if call is not self.call:
            # Early media comes from the PBX, not the resident: never a door code.
            log.warning("a DTMF key from %s outside the call: ignored", call.peer)
            return
        call.keys += 1
        self.publish(DtmfEvent(call.peer, call.keys))
        if self.limit is not None and self.limit.extends(digit, self.keypad.entering):
            # After the warning the extend key is not a code digit.
            self._arm_limit()
            self.publish(CallEvent("extended", call.peer,
                                   f"by {self.limit.extend_seconds:g} s"))
            return
        self.keypad.digit(call, digit)
