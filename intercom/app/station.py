"""The door station: the thin asyncio adapter around the station's core.

Every decision of the station (which targets ring when, the call limit, the
door codes and their lockouts, the door, the LEDs) is made in
intercom.app.core.StationCore, with no I/O and no clock. This adapter feeds
it what happens (board inputs from gpiozero's threads, SIP events from the
user agent, DTMF and device errors from the media) with the loop's time,
carries out the actions it returns (SIP calls, RTP media, the relay, the LEDs,
tones, events) and wakes it at its ``next_deadline``. The outcome of an
action that needs I/O (a leg placed, media applied) is fed back in.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intercom.app import core
from intercom.app.callmedia import CallLeg, CallMedia
from intercom.app.core import LocalError, StationAction, StationCore
from intercom.app.eventlog import EventLog, default_path, state_directory
from intercom.app.events import AudioEvent, ButtonPressed, Event, SnapshotEvent
from intercom.app.hooks import Hooks, Mail
from intercom.app.recordings import Recordings, recordings_store
from intercom.app.store import FileStore
from intercom.app.network import (UNANSWERED_FIX, locate_servers, registrar_of,
                                  registration_fix, route_address, user_agent)
from intercom.app.ringing import RingSettings
from intercom.config import Config, ConfigError, MqttConfig
from intercom.hal.board import Board
from intercom.hal.camera import Camera, CameraError, jpeg, open_camera
from intercom.media.sounds import Sound, SoundPlayer, find_announcements
from intercom.sip import events as sip_events
from intercom.sip import sdp
from intercom.sip.address import SipUri, parse_hostport
from intercom.sip.errors import SipError
from intercom.sip.events import RegState
from intercom.sip.locate import Dest
from intercom.sip.transport import SipEndpoint, tls_context

if TYPE_CHECKING:
    from intercom.app.mqtt import MqttBridge

log = logging.getLogger("intercom.station")
RECENT_EVENTS = 200           # replayed to a new `intercom ctl events` watcher


class DoorStation:
    def __init__(self, config: Config, board: Board) -> None:
        self.config = config
        self.board = board
        self.loop = asyncio.get_running_loop()
        self.subscribers: list[Callable[[Event], None]] = []
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        for button in config.call.button_targets:
            if button not in board.buttons:
                raise ConfigError(f"call.button_targets.{button}: the board has no such "
                                  f"button; it has {', '.join(sorted(board.buttons))}")
        self.registrar = registrar_of(config)
        announcements, problems = find_announcements(config.sounds.directory,
                                                     config.station.language)
        for problem in problems:
            log.warning("sounds: %s", problem)
        self.core = StationCore(config, registrar=self.registrar is not None,
                                sounds=announcements)
        self.eventlog: EventLog | None = None        # opened at start
        self.ua = user_agent(config)
        self.local_host = self.ua.settings.local_host
        self.sip: SipEndpoint | None = None
        self.media = CallMedia(config, lambda: self.ua.settings.local_host, self._on_dtmf,
                               self._on_audio_error, camera=lambda: self.camera)
        self.legs: dict[int, CallLeg] = {}           # the media of each placed leg
        self.by_call_id: dict[str, CallLeg] = {}
        self._withdrawn: set[int] = set()             # legs called off before placed
        self._queue: deque[core.Input] = deque()
        self._feeding = False
        self._timer: asyncio.TimerHandle | None = None
        self._tones: SoundPlayer | None = None        # ringback or busy, on the card alone
        self._watch: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.hooks = self._hooks() if config.notify.urls or config.notify.email_to else None
        if self.hooks is not None:
            self.subscribers.append(self.hooks.offer)
        self.camera: Camera | None = None            # opened at start
        self.camera_error: str | None = None
        c = config.camera
        self.snapshots = FileStore(state_directory(config.log.database) / "snapshots", ".jpg",
                                   c.snapshots_keep, c.snapshots_max_mb * 2 ** 20) \
            if c.source != "none" else None
        if self.snapshots is not None:
            self.subscribers.append(self._snapshot_of_a_ring)
        self.recordings = Recordings(recordings_store(config), self.publish,
                                     lambda: self.feed(core.MessageOver()),
                                     config.station.name)
        self.mqtt: MqttBridge | None = None
        if config.mqtt.broker:
            self.mqtt = self._mqtt_bridge(config.mqtt)
            self.subscribers.append(self.mqtt.offer)
        self._run_core(self.core.timer)                # booting, on the LEDs

    def _hooks(self) -> Hooks:
        n = self.config.notify
        mail = None
        if n.email_to:
            host, port = parse_hostport(n.smtp_server)
            mail = Mail(host, port or (465 if n.smtp_security == "tls" else 587),
                        n.smtp_security, n.smtp_user, n.smtp_password,
                        n.email_from or f"intercom@{socket.gethostname()}", n.email_to,
                        attachment=self._kept_file)
        return Hooks(n.urls, n.events, self.config.station.name, n.timeout_s, n.retries,
                     n.ca_file, mail=mail)

    def _kept_file(self, name: str) -> Path | None:
        """A snapshot's or a recording's file, for a mail to attach."""
        if self.snapshots is not None and (path := self.snapshots.path(name)) is not None:
            return path
        return self.recordings.store.path(name)

    def _mqtt_bridge(self, m: MqttConfig) -> MqttBridge:
        from intercom.app.mqtt import MqttBridge
        host, port = parse_hostport(m.broker)
        return MqttBridge(host, port or (8883 if m.tls else 1883), self.config.station.name,
                          sorted(self.board.buttons), self.state, self.door_command,
                          topic=m.topic, discovery_prefix=m.discovery_prefix,
                          username=m.username, password=m.password, tls=m.tls,
                          ca_file=m.ca_file, door_commands=m.door_commands,
                          keepalive=m.keepalive)

    async def _open_camera(self) -> None:
        c = self.config.camera
        try:
            self.camera = await asyncio.to_thread(
                open_camera, c.source, c.width, c.height, c.fps, c.device,
                self.board.profile.camera, self.config.board.type != "simulated")
        except CameraError as exc:
            self.camera_error = str(exc)
            log.error("camera: %s; the station works audio-only", exc)

    def _snapshot_of_a_ring(self, event: Event) -> None:
        """A subscriber: each bell press gets the camera's picture, off the loop."""
        if isinstance(event, ButtonPressed) and self.camera is not None:
            task = self.loop.create_task(self._snapshot(event.button))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _snapshot(self, button: str) -> None:
        """The camera's picture of the visitor at ``button``, into the store."""
        camera, store = self.camera, self.snapshots
        if camera is None or store is None:
            return
        try:
            frame = await asyncio.to_thread(camera.frame)
            shot = await asyncio.to_thread(lambda: store.save(jpeg(frame), button))
        except (CameraError, OSError) as exc:
            log.error("snapshot at %r: %s", button, exc)
            return
        self.publish(SnapshotEvent(button, shot.name, camera.width, camera.height))

    # ----- feeding the core ---------------------------------------------------------
    def feed(self, event: core.Input) -> None:
        """Hand ``event`` to the core (after the one being handled, if any)."""
        self._queue.append(event)
        if not self._feeding:
            self._drain()

    def _drain(self) -> None:
        self._feeding = True
        try:
            while self._queue:
                event = self._queue.popleft()
                self._do(self.core.handle(event, self.loop.time()))
        finally:
            self._feeding = False
        self._arm()

    def _command(self, command: core.Command) -> None:
        """A local command, at once; raises LocalError (nothing done) when illegal."""
        self._run_core(lambda now: self.core.handle(command, now))

    def _run_core(self, step: Callable[[float], list[StationAction]]) -> None:
        self._feeding = True
        try:
            self._do(step(self.loop.time()))
        finally:
            self._feeding = False
        self._drain()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        deadline = self.core.next_deadline()
        self._timer = None if deadline is None else self.loop.call_at(
            deadline, lambda: self._run_core(self.core.timer))

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = self.loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----- carrying out the core's actions ---------------------------------------------
    def _do(self, actions: list[StationAction]) -> None:
        for action in actions:
            try:
                self._one(action)
            except Exception:                        # one failed action must not stop the rest
                log.exception("station action %r failed", action)

    def _one(self, action: StationAction) -> None:
        match action:
            case core.Publish(event):
                self.publish(event)
            case core.Log(level, message):
                log.log(level, "%s", message)
            case core.ShowLeds(view):
                for name, mode in view.leds().items():
                    self.board.set_led(name, mode)
                self.board.set_rgb(*view.colour())
            case core.SetRelay(energised):
                self.board.set_relay(energised)
            case core.LocalSound(sound, seconds):
                self._play_local(sound, seconds)
            case core.CallSound(leg_id, sound, to_speaker):
                leg = self.legs.get(leg_id)
                if leg is not None and leg.stream is not None:
                    leg.stream.play(sound, to_call=True, to_speaker=to_speaker)
            case core.RecordMessage(button, prompt, seconds, silence_seconds):
                a = self.config.audio
                self.recordings.start_message(button, prompt, seconds, silence_seconds,
                                              self.media.open_device, a.rate,
                                              self._card_period, 10 ** (a.mic_gain_db / 20))
            case core.EndMessage(at_once):
                self.recordings.end_message(at_once)
            case core.RecordCall(leg_id, button):
                leg = self.legs.get(leg_id)
                if leg is not None and leg.stream is not None:
                    self.recordings.start_call(leg_id, leg.stream, button, leg.peer)
            case core.PlaceCall(leg_id, target):
                self._spawn(self._place(leg_id, target))
            case core.AcceptCall():
                self._spawn(self._accept(action))
            case core.RejectCall(call_id, status, reason):
                self._sip(lambda now: self.ua.reject(call_id, status, reason, now))
            case core.EndCall(leg_id):
                leg = self.legs.get(leg_id)
                if leg is None:
                    self._withdrawn.add(leg_id)       # its INVITE has not gone out yet
                elif self.ua.has_call(leg.call_id):
                    call_id = leg.call_id
                    self._sip(lambda now: self.ua.hangup(call_id, now))
            case core.ApplyMedia(leg_id, body, purpose):
                leg = self.legs[leg_id]
                ok = self.media.apply(leg, body, we_offered=not (
                    leg.incoming and purpose == core.MediaPurpose.UPDATE))
                self.feed(core.MediaApplied(leg_id, purpose, ok,
                                            leg.stream.codec.name if leg.stream else "",
                                            leg.rtp.paused))
            case core.StopMedia(leg_id):
                leg = self.legs[leg_id]
                quality, codec = None, ""
                self.media.stop_video(leg)
                if leg.stream is not None:
                    leg.stream.stop()
                    quality, codec = leg.stream.quality(), leg.stream.codec.name
                self.recordings.call_over(leg_id)
                self.feed(core.MediaStopped(leg_id, codec, quality))
            case core.CloseMedia(leg_id):
                leg = self.legs.pop(leg_id, None)
                if leg is not None:
                    self.by_call_id.pop(leg.call_id, None)
                    self.media.close(leg)
            case core.SaveLockouts(state):
                if self.eventlog is not None:
                    self.eventlog.save_lockouts(state)
            case core.ReportAudio(leg_id):
                leg = self.legs.get(leg_id)
                if leg is not None and leg.stream is not None:
                    st = leg.stream
                    self.publish(AudioEvent(st.codec.name, round(st.mic_level.dbfs, 1),
                                            round(st.speaker_level.dbfs, 1),
                                            st.rtp.stats.sent, st.rtp.stats.received,
                                            st.device_error))
            case _:
                raise TypeError(f"not a station action: {action!r}")

    def _sip(self, step: Callable[[float], object]) -> object:
        assert self.sip is not None
        return self.sip.run(step)

    async def _place(self, leg_id: int, target: str) -> None:
        """A ring: an RTP port and an offer, then the INVITE."""
        try:
            leg = await self.media.open(target)
        except OSError as exc:
            self.feed(core.NotPlaced(leg_id, 503, f"no RTP port: {exc}"))
            return
        if leg_id in self._withdrawn:                # called off while the port opened
            self._withdrawn.discard(leg_id)
            self.media.close(leg)
            self.feed(core.NotPlaced(leg_id, 0, "withdrawn"))
            return
        leg.leg = leg_id
        body = self.media.offer(leg)
        try:
            leg.call_id = str(self._sip(lambda now: self.ua.invite(target, body, now)))
        except SipError as exc:
            self.media.close(leg)
            self.feed(core.NotPlaced(leg_id, 500, str(exc)))
            return
        self.legs[leg_id] = leg
        self.by_call_id[leg.call_id] = leg
        self.feed(core.Placed(leg_id, leg.call_id, self.ua.call(leg.call_id).dest.host))

    async def _accept(self, offer: core.AcceptCall) -> None:
        """An incoming call: an RTP port, our answer to its offer, the 200."""
        try:
            leg = await self.media.open(offer.caller, incoming=True)
        except OSError as exc:
            log.error("no RTP port for the call from %s: %s", offer.caller, exc)
            self.feed(core.NotAccepted(offer.leg, 503, "Service Unavailable"))
            return
        if not self.ua.has_call(offer.call_id):          # the caller gave up meanwhile
            self.media.close(leg)
            self.feed(core.NotAccepted(offer.leg, 0, "gone"))
            return
        leg.leg, leg.call_id, leg.listen_only = offer.leg, offer.call_id, offer.listen_only
        try:
            if not offer.sdp:
                raise sdp.SdpError("no SDP offer in the INVITE")
            body = self.media.answer(leg, offer.sdp)
        except SipError as exc:
            log.warning("call from %s refused: %s", offer.caller, exc)
            self.media.close(leg)
            self.feed(core.NotAccepted(offer.leg, 488, "Not Acceptable Here"))
            return
        self.legs[leg.leg] = leg
        self.by_call_id[leg.call_id] = leg
        call_id = offer.call_id
        self._sip(lambda now: self.ua.answer(call_id, body, now))
        assert leg.stream is not None
        self.feed(core.Accepted(leg.leg, leg.stream.codec.name))

    def _play_local(self, sound: Sound | None, seconds: float | None = None) -> None:
        """Play ``sound`` on the sound card on its own (None: stop the one playing)."""
        if self._tones is not None:
            self._tones.stop()
            self._tones = None
        if sound is not None:
            self._tones = SoundPlayer(self.media.open_device, self.config.audio.rate,
                                      self._card_period, sound, seconds)

    @property
    def _card_period(self) -> int:
        """Samples in one period of the sound card."""
        return self.config.audio.rate * self.config.audio.period_ms // 1000

    # ----- the address ---------------------------------------------------------------
    async def _watch_address(self, interval: float) -> None:
        """Follow a change of our own address (Wi-Fi/4G handover): re-register, re-offer."""
        while True:
            await asyncio.sleep(interval)
            first = SipUri.parse(self.config.call.targets[0])
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

    async def _readdress_call(self, leg: CallLeg) -> None:
        host, port = await self.media.address(leg.rtp)
        call = self.core.call
        if call is None or call.id != leg.leg or self.sip is None or \
                not self.ua.has_call(leg.call_id):
            return
        body = sdp.readdress(self.ua.call(leg.call_id).local_sdp, host, port)
        try:
            self._sip(lambda now: self.ua.reoffer(leg.call_id, now, sdp=body))
        except SipError as exc:
            log.warning("cannot re-offer the call after the address change: %s", exc)

    # ----- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        lg = self.config.log
        path = lg.database or default_path()
        lockouts: dict[str, tuple[int, int, float]] = {}
        try:
            self.eventlog = EventLog(path, lg.max_events)
            lockouts = self.eventlog.load_lockouts()
        except (sqlite3.Error, OSError) as exc:
            # The door station works without its record; it says so, once.
            log.error("event log %s cannot be opened: %s; running without it", path, exc)
        if self.hooks is not None:
            self.hooks.start()
        if self.mqtt is not None:
            self.mqtt.start()
        await self._open_camera()
        s = self.config.sip
        tls = tls_context(s.tls_ca_file) if s.transport in ("auto", "tls") else None
        self.sip = await SipEndpoint.open(self.ua, (s.listen, s.port), self._on_sip_event,
                                          tls)
        await locate_servers(self.ua, self.config, self._all_targets())
        if s.address_check and not s.public_address and \
                s.listen in ("0.0.0.0", "::", ""):
            self._watch = self.loop.create_task(self._watch_address(float(s.address_check)))
        self.board.on_button = self._button_from_board
        self.board.on_door = self._door_from_board
        self.board.on_tamper = self._tamper_from_board
        audio_error = await self.media.probe()
        if audio_error is not None:
            log.error("audio device: %s; calls will go ahead and retry it", audio_error)
        if self.registrar is not None:
            self.sip.run(self.ua.register)
        self.feed(core.Started(audio_error, lockouts, self.board.tamper_open is True,
                               self.board.door_closed))
        log.info("station %r up: SIP %s:%d, %s", self.config.station.name, self.local_host,
                 s.port, f"registrar {self.registrar}" if self.registrar else "no registrar")

    @property
    def started(self) -> bool:
        return self.core.started

    # gpiozero calls these on its own threads: hand over to the loop.
    def _button_from_board(self, name: str) -> None:
        self.loop.call_soon_threadsafe(self.press_event, name)

    def _door_from_board(self, closed: bool) -> None:
        self.loop.call_soon_threadsafe(self.feed, core.DoorContact(closed))

    def _tamper_from_board(self, opened: bool) -> None:
        self.loop.call_soon_threadsafe(self.feed, core.Tamper(opened))

    async def stop(self) -> None:
        assert self.sip is not None
        self._command(core.Stop())
        for _ in range(40):                           # up to 2 s for the BYEs/CANCELs
            if not self.core.legs:
                break
            await asyncio.sleep(0.05)
        self._command(core.Abandon())
        if self.core.registration is RegState.REGISTERED:
            self.sip.run(self.ua.unregister)
            for _ in range(20):                       # up to 1 s for the registrar's answer
                if self.core.registration is not RegState.REGISTERED:
                    break
                await asyncio.sleep(0.05)
        if self._timer is not None:
            self._timer.cancel()
        self._play_local(None)
        await self.recordings.stop()
        if self._watch is not None:
            self._watch.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.sip.close()
        if self.hooks is not None:
            await self.hooks.stop()                   # the last events, for a moment
        if self.mqtt is not None:
            await self.mqtt.stop()                    # "offline", not the last will
        if self.media.feed is not None:
            self.media.feed.stop()
        if self.camera is not None:
            self.camera.close()
        if self.eventlog is not None:
            self.eventlog.close()

    def trouble(self) -> str | None:
        """Why the station is not working (the watchdog then withholds its ping, and
        systemd restarts it), or None: the SIP layer, and the call's audio thread."""
        if self.sip is None:
            return "SIP is not started"
        if (why := self.sip.trouble()) is not None:
            return why
        leg = self._call_leg()
        if leg is not None and leg.stream is not None:
            return leg.stream.trouble()
        return None

    def _call_leg(self) -> CallLeg | None:
        call = self.core.call
        return None if call is None else self.legs.get(call.id)

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

    def state(self) -> dict[str, Any]:
        c = self.core
        call: dict[str, Any] = {"state": "idle"}
        if c.call is not None:
            call = {"state": str(c.call.state), "peer": c.call.peer,
                    "incoming": c.call.incoming,
                    "ends_in": round(c.limit.ends_at - self.loop.time(), 1)
                    if c.limit is not None else None}
            leg = self._call_leg()
            if leg is not None and leg.stream is not None:
                call["audio"] = leg.stream.stats()
        elif c.visit is not None:
            call = {"state": c.call_state(),
                    "peer": ", ".join(c.visit.plan.ringing.values()),
                    "button": c.visit.button}
        elif c.message is not None:
            call = {"state": "message", "button": c.message}     # a visitor is speaking
        return {"station": self.config.station.name,
                "registration": {"state": str(c.registration or "none"),
                                 "registrar": str(self.registrar) if self.registrar else None},
                "call": call,
                "audio": {"device": self.config.audio.device, "error": c.audio_error},
                "camera": {"source": self.config.camera.source, "error": self.camera_error},
                "announcements": sorted(c.sounds),
                "board": {"type": self.config.board.type,
                          "profile": self.board.profile.name},
                "relay": {"energised": self.board.relay_energised, "held": c.door.held},
                "door_closed": self.board.door_closed,
                "tamper_open": self.board.tamper_open,
                "alarms": sorted(c.door.alarms),
                "leds": self.board.led_modes(),
                "buttons": sorted(self.board.buttons)}

    # ----- inputs ---------------------------------------------------------------
    def _all_targets(self) -> list[str]:
        """Every target any bell may ring (for DNS at start)."""
        every: list[str] = []
        for button in ["", *self.config.call.button_targets]:
            plan = self.ring_settings(button)           # "": [call]'s own targets
            every += [*plan.targets, *plan.fallback]
        return list(dict.fromkeys(every))

    def ring_settings(self, button: str) -> RingSettings:
        return self.core.ring_settings(button)

    @property
    def busy(self) -> bool:
        return self.core.busy

    def press_event(self, button: str) -> None:
        self.feed(core.Pressed(button))

    def hangup(self, reason: str = "hung up") -> bool:
        """End whatever goes on: the call, and any legs still ringing. False if nothing."""
        try:
            self._command(core.Hangup(reason))
        except LocalError:
            return False
        return True

    def door_command(self, action: str, by: str) -> None:
        """``open`` (a pulse), ``hold`` (open until ``lock``) or ``lock``, from the
        control socket: an installer, a home-automation system. Raises ValueError."""
        self._command(core.DoorCommand(action, by))

    def caller_allowed(self, caller: str, source: tuple[str, int]) -> bool:
        """Is ``caller`` one of incoming.callers, and did the INVITE come from where
        that caller's calls can come from: its own address (a phone called by IP),
        or our registrar or proxy (which authenticated it)? A From header alone
        is whatever the sender wrote."""
        try:
            uri = SipUri.parse(caller)
        except SipError:
            return False
        for entry in map(SipUri.parse, self.config.incoming.callers):
            if (entry.user, entry.host.lower()) != (uri.user, uri.host.lower()) or \
                    (entry.port is not None and entry.port != uri.port):
                continue
            if source[0] == entry.host.strip("[]") or \
                    self.ua.is_server(Dest(source[0], source[1]), any_port=True):
                return True
        return False

    def _on_dtmf(self, leg: CallLeg, digit: str) -> None:
        self.feed(core.Digit(leg.leg, digit))

    def _on_audio_error(self, message: str) -> None:
        self.feed(core.AudioTrouble(message))

    def _on_sip_event(self, event: sip_events.UaEvent) -> None:
        match event:
            case sip_events.RegistrationUnanswered(registrar, seconds):
                log.warning("registrar %s has not answered for %.0f s (still trying); fix: %s",
                            registrar, seconds, UNANSWERED_FIX)
            case sip_events.RegistrationChanged():
                self.feed(core.Registration(event.state, event.status, event.reason,
                                            event.registrar, event.retry_in,
                                            registration_fix(event.status)))
            case sip_events.IncomingCall(call_id, caller, body, source):
                self.feed(core.Offered(call_id, caller, source,
                                       self.caller_allowed(caller, source), body))
            case sip_events.LocalAddressChanged(address, call_ids):
                self.local_host = address
                leg = self._call_leg()
                if leg is not None and leg.call_id in call_ids:
                    self._spawn(self._readdress_call(leg))
            case sip_events.PublicAddress(address):
                log.info("the registrar sees us at %s:%d; registering that as our contact",
                         *address)
            case sip_events.MessageRejected(status, reason, source):
                log.warning("SIP message from %s:%d rejected: %d %s", *source, status, reason)
            case _:
                leg = self.by_call_id.get(event.call_id)
                if leg is not None:
                    self.feed(self._leg_input(leg.leg, event))

    @staticmethod
    def _leg_input(leg: int, event: sip_events.UaEvent) -> core.Input:
        match event:
            case sip_events.CallProgress(_, status, reason, body):
                return core.Progress(leg, status, reason, body)
            case sip_events.CallAnswered(_, body):
                return core.Answered(leg, body)
            case sip_events.CallUpdated(_, body):
                return core.Updated(leg, body)
            case sip_events.InfoDtmf(_, digit):
                return core.Digit(leg, digit)
            case sip_events.CallFailed(_, status, reason):
                return core.Failed(leg, status, reason)
            case sip_events.CallEnded(_, by_remote, reason):
                return core.Ended(leg, reason, by_remote)
        raise TypeError(f"not a call event: {event!r}")
