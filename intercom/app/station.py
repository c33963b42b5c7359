"""The door station: board, SIP and media events in; calls, LEDs and the relay out.

One call at a time. A bell press while idle calls the configured targets in
turn (the next when one fails or does not answer within ring_timeout). In an
answered call, DTMF digits go to the door codes; a right code pulses the relay.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from intercom.app.door import Decision, DoorCodes, Lockout
from intercom.app.events import (AudioEvent, ButtonPressed, CallEvent, DoorContactEvent, DoorEvent,
                                 DtmfEvent, Event, QualityEvent, RegistrationEvent, RelayEvent)
from intercom.config import Config, ConfigError
from intercom.hal.board import Board
from intercom.media.codecs import codec_for, offer_formats
from intercom.media.devices import AlsaSoundCard, AudioDevice, AudioDeviceError, SimulatedSoundCard
from intercom.media import calibrate
from intercom.media.echo import EchoControl, EchoPathSpec
from intercom.media.rtp import RtpSession
from intercom.media.srtp import Crypto, SrtpContext, crypto_or_none
from intercom.media.stream import AudioStream
from intercom.sip import events as sip_events
from intercom.sip import sdp
from intercom.sip.address import SipUri
from intercom.sip.errors import SipError
from intercom.sip.address import parse_hostport
from intercom.sip.resolver import locate, make_resolver
from intercom.sip.transaction import TimerValues
from intercom.sip.transport import SipEndpoint, local_address_towards, tls_context
from intercom.sip.ua import UaSettings, UserAgent

log = logging.getLogger("intercom.station")
PTIME = 20
RECENT_EVENTS = 200           # replayed to a new `intercom ctl events` watcher


@dataclass
class ActiveCall:
    targets: list[str]                     # this bell's targets, tried in order
    target_index: int
    peer: str
    rtp: RtpSession
    media: sdp.MediaDescription
    call_id: str = ""
    state: str = "calling"
    stream: AudioStream | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    crypto: Crypto | None = None           # our SDES key, when we offer SRTP
    audio_report: asyncio.TimerHandle | None = None
    no_answer: bool = False


class DoorStation:
    def __init__(self, config: Config, board: Board) -> None:
        self.config = config
        self.board = board
        self.loop = asyncio.get_running_loop()
        self.subscribers: list[Callable[[Event], None]] = []
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)
        self.call: ActiveCall | None = None
        self.registration = "none"
        d = config["door"]
        self.door = DoorCodes(d["codes"], d["digit_timeout"])
        self.lockout = Lockout(d["max_wrong_codes"], d["max_wrong_codes_overall"],
                               d["lockout_seconds"], d["lockout_max_seconds"])
        self._lock_reported: str | None = None
        self._holdoff_until = 0.0
        self._restart_button: str | None = None
        for button in config["call"]["button_targets"]:
            if button not in board.buttons:
                raise ConfigError(f"call.button_targets.{button}: the board has no such "
                                  f"button; it has {', '.join(sorted(board.buttons))}")
        self._door_timer: asyncio.TimerHandle | None = None
        self._relay_release: asyncio.TimerHandle | None = None
        self._relay_since = 0.0
        self._starting = False
        self.audio_error: str | None = None
        s = config["sip"]
        self.registrar = SipUri.parse(s["registrar"]) if s["registrar"] else None
        self.local_host = s["public_address"] or self._route_address()
        proxy = SipUri.parse(s["proxy"]) if s["proxy"] else None
        backup = SipUri.parse(s["backup_registrar"]) if s["backup_registrar"] else None
        self.ua = UserAgent(UaSettings(
            user=s["user"], domain=s["domain"] or (self.registrar.host if self.registrar
                                                   else self.local_host),
            local_host=self.local_host, local_port=s["port"],
            display_name=config["station"]["name"], registrar=self.registrar, proxy=proxy,
            backup_registrar=backup,
            auth_user=s["auth_user"], password=s["password"], realm=s["realm"],
            register_expires=s["register_expires"], session_expires=s["session_expires"],
            transport="udp" if s["transport"] == "auto" else s["transport"],
            keepalive_interval=float(s["keepalive_interval"]), keepalive_method=s["keepalive"],
            contact_rewrite=s["contact_rewrite"], timers=TimerValues(t1=float(s["t1"]))))
        self.sip: SipEndpoint | None = None
        self._watch: asyncio.Task[None] | None = None
        self._echo: dict[int, EchoControl] = {}

    def _route_address(self, toward: tuple[str, int] | None = None) -> str:
        """Our address on the route to the registrar (or the first call target)."""
        listen = self.config["sip"]["listen"]
        if listen not in ("0.0.0.0", "::", ""):
            return str(listen)
        if toward is None:
            toward = (self.registrar or SipUri.parse(self.config["call"]["targets"][0])).hostport()
        return local_address_towards(*toward)

    async def _locate_servers(self) -> None:
        """RFC 3263: the places DNS names for the registrars and proxy, best first,
        and for the call targets when calls go to them directly."""
        s = self.config["sip"]
        resolver = make_resolver(s["dns_servers"])
        forced = None if s["transport"] == "auto" else s["transport"]
        uris = list(self.ua.settings.servers)
        if self.ua.outbound is None:
            uris += [SipUri.parse(t) for t in self._all_targets()]
        for uri in uris:
            if uri.host not in self.ua.targets:
                self.ua.set_targets(uri.host, await locate(uri, resolver, transport=forced))

    async def _watch_address(self, interval: float) -> None:
        """Follow a change of our own address (Wi-Fi/4G handover): re-register, re-offer."""
        while True:
            await asyncio.sleep(interval)
            first = SipUri.parse(self.config["call"]["targets"][0])
            dest = self.ua.locate(self.ua.outbound or first)
            try:
                current = await asyncio.to_thread(self._route_address, (dest.host, dest.port))
            except OSError:
                continue                               # no route right now: wait for one
            if current != self.ua.settings.local_host and self.sip is not None:
                log.info("our address changed from %s to %s", self.ua.settings.local_host,
                         current)
                self.sip.run(lambda now: self.ua.set_local_address(current, now))

    async def _media_address(self, rtp: RtpSession) -> tuple[str, int]:
        """Where the peer should send our audio: STUN's answer when configured (RFC 5389)."""
        server = self.config["sip"]["stun_server"]
        if server:
            host, port = parse_hostport(server, 3478)
            found = await rtp.public_address((host.strip("[]"), port or 3478))
            if found is not None:
                return found
        return self.ua.settings.local_host, rtp.local_port

    async def _readdress_call(self, call: ActiveCall) -> None:
        host, port = await self._media_address(call.rtp)
        if self.call is not call or self.sip is None or call.call_id not in self.ua.calls:
            return
        body = sdp.readdress(self.ua.call(call.call_id).local_sdp, host, port)
        try:
            self.sip.run(lambda now: self.ua.reoffer(call.call_id, now, sdp=body))
        except SipError as exc:
            log.warning("cannot re-offer the call after the address change: %s", exc)

    # ----- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        s = self.config["sip"]
        tls = tls_context(s["tls_ca_file"]) if s["transport"] in ("auto", "tls") else None
        self.sip = await SipEndpoint.open(self.ua, (s["listen"], s["port"]), self._on_sip_event,
                                          tls)
        await self._locate_servers()
        if s["address_check"] and not s["public_address"] and \
                s["listen"] in ("0.0.0.0", "::", ""):
            self._watch = self.loop.create_task(self._watch_address(float(s["address_check"])))
        self.board.on_button = self._button_from_board
        self.board.on_door = self._door_from_board
        await self._probe_audio()
        if self.registrar is not None:
            self.board.set_led("status", "blink")
            self.sip.run(self.ua.register)
        else:
            self.board.set_led("status", "on")
        log.info("station %r up: SIP %s:%d, %s", self.config["station"]["name"], self.local_host,
                 s["port"], f"registrar {self.registrar}" if self.registrar else "no registrar")

    async def _probe_audio(self) -> None:
        """Open and close the sound device once, so a bad one is reported at start
        rather than at the first ring. Calls still go ahead (and retry the device)."""
        device = self._open_audio_device()
        try:
            await asyncio.to_thread(device.open)
        except AudioDeviceError as exc:
            self.audio_error = str(exc)
            log.error("audio device: %s; calls will go ahead and retry it", exc)
            return
        device.close()
        self.audio_error = None

    # gpiozero calls these on its own threads: hand over to the loop.
    def _button_from_board(self, name: str) -> None:
        self.loop.call_soon_threadsafe(self.press_event, name)

    def _door_from_board(self, closed: bool) -> None:
        self.loop.call_soon_threadsafe(self.publish, DoorContactEvent(closed))

    async def stop(self) -> None:
        assert self.sip is not None
        if self.call is not None:
            self.hangup("station stopping")
            for _ in range(40):                       # up to 2 s for the BYE/CANCEL to finish
                if self.call is None:
                    break
                await asyncio.sleep(0.05)
            if self.call is not None:
                self._finish_call("ended", "station stopped")
        if self.registration == "registered":
            self.sip.run(self.ua.unregister)
            for _ in range(20):                       # up to 1 s for the registrar's answer
                if self.registration != "registered":
                    break
                await asyncio.sleep(0.05)
        self._release_relay()
        if self._watch is not None:
            self._watch.cancel()
        self.sip.close()

    def subscribe(self, callback: Callable[[Event], None],
                  replay: bool = False) -> Callable[[], None]:
        """Call ``callback`` for each event from now on (after the recent ones, if ``replay``)."""
        if replay:
            for event in self.recent:
                callback(event)
        self.subscribers.append(callback)
        return lambda: self.subscribers.remove(callback)

    def publish(self, event: Event) -> None:
        log.info("%s", event.to_json())
        self.recent.append(event)
        for callback in list(self.subscribers):
            callback(event)

    def state(self) -> dict[str, Any]:
        call: dict[str, Any] = {"state": "idle"}
        if self.call is not None:
            call = {"state": self.call.state, "peer": self.call.peer}
            if self.call.stream is not None:
                call["audio"] = self.call.stream.stats()
        return {"station": self.config["station"]["name"],
                "registration": {"state": self.registration,
                                 "registrar": str(self.ua.registration.server)
                                 if self.registrar else None},
                "call": call,
                "audio": {"device": self.config["audio"]["device"], "error": self.audio_error},
                "relay": {"energised": self.board.relay_energised},
                "door_closed": self.board.door_closed,
                "leds": self.board.led_modes(),
                "buttons": sorted(self.board.buttons)}

    # ----- buttons and calls ----------------------------------------------------
    def _all_targets(self) -> list[str]:
        c = self.config["call"]
        return list(c["targets"]) + [t for ts in c["button_targets"].values() for t in ts]

    def targets_for(self, button: str) -> list[str]:
        c = self.config["call"]
        return list(c["button_targets"].get(button, c["targets"]))

    def press_event(self, button: str) -> None:
        self.publish(ButtonPressed(button))
        now = self.loop.time()
        if now < self._holdoff_until:
            log.info("bell %s pressed %.1f s after a call started: ignored (hold-off)",
                     button, self._holdoff_until - now)
            return
        if self.call is None and not self._starting:
            self._begin(button)
        elif self.config["call"]["press_during_call"] == "restart" and self.call is not None:
            log.info("bell %s pressed during a call: ending it, calling again", button)
            self._restart_button = button
            if not self.hangup("the bell was pressed again"):
                self._restart_button = None
        else:
            log.info("bell %s pressed during a call: ignored", button)

    def _begin(self, button: str) -> None:
        self._holdoff_until = self.loop.time() + self.config["call"]["press_holdoff"]
        self._starting = True
        self.loop.create_task(self._start_call(self.targets_for(button), 0))

    async def _start_call(self, targets: list[str], index: int) -> None:
        m = self.config["media"]
        try:
            rtp = await RtpSession.open(self.config["sip"]["listen"], m["rtp_port_min"],
                                        m["rtp_port_max"], lambda *a: None)
        except OSError as exc:
            self._starting = False
            self.publish(CallEvent("failed", targets[index], f"no RTP port: {exc}"))
            return
        host, port = await self._media_address(rtp)
        media = sdp.MediaDescription(host, port, offer_formats(self.config["audio"]["codecs"]),
                                     ptime=PTIME, rtcp_mux=True)
        call = ActiveCall(targets, index, targets[index], rtp, media)
        srtp = self.config["media"]["srtp"]
        if srtp != "off":
            # Required: RTP/SAVP, which a phone without SRTP refuses. Optional: RTP/AVP
            # with a=crypto, which such a phone ignores (best effort, RFC 4568 7.1).
            call.crypto = Crypto.new()
            media.crypto = [str(call.crypto)]
            media.protocol = "RTP/SAVP" if srtp == "required" else "RTP/AVP"
        body = sdp.build(secrets.randbelow(2**31), 1, host, media)
        assert self.sip is not None
        self.call = call
        self._starting = False
        try:
            call.call_id = str(self.sip.run(lambda now: self.ua.invite(call.peer, body, now)))
        except SipError as exc:
            self._finish_call("failed", str(exc))
            return
        self.board.set_led("call", "blink")
        call.timers.append(self.loop.call_later(self.config["call"]["ring_timeout"],
                                                self._ring_timeout, call))
        self.publish(CallEvent("calling", call.peer))

    def _ring_timeout(self, call: ActiveCall) -> None:
        if self.call is call and call.state in ("calling", "ringing"):
            call.no_answer = True
            self.hangup("no answer")

    def hangup(self, reason: str = "hung up") -> bool:
        if self.call is None or not self.call.call_id or self.sip is None:
            return False
        call_id = self.call.call_id
        log.info("hanging up %s: %s", self.call.peer, reason)
        self.sip.run(lambda now: self.ua.hangup(call_id, now))
        return True

    def _on_sip_event(self, event: sip_events.UaEvent) -> None:
        call = self.call
        if isinstance(event, sip_events.RegistrationChanged):
            self.registration = event.state
            self.board.set_led("status", "on" if event.state == "registered" else "blink")
            self.publish(RegistrationEvent(event.state, event.status, event.reason,
                                           str(self.ua.registration.server),
                                           round(event.retry_in, 1)))
        elif isinstance(event, sip_events.IncomingCall):
            log.info("incoming call from %s declined: the station only calls out", event.caller)
            self.ua.reject(event.call_id, 603 if call is None else 486,
                           "Decline" if call is None else "Busy Here", self.loop.time())
        elif isinstance(event, sip_events.LocalAddressChanged):
            self.local_host = event.address
            if call is not None and call.call_id in event.call_ids and call.state == "answered":
                self.loop.create_task(self._readdress_call(call))
        elif isinstance(event, sip_events.PublicAddress):
            log.info("the registrar sees us at %s:%d; registering that as our contact",
                     *event.address)
        elif isinstance(event, sip_events.MessageRejected):
            log.warning("SIP message from %s:%d rejected: %d %s", *event.source, event.status,
                        event.reason)
        elif call is None or getattr(event, "call_id", None) != call.call_id:
            return
        elif isinstance(event, sip_events.CallProgress):
            if call.state == "calling":
                call.state = "ringing"
                self.publish(CallEvent("ringing", call.peer, f"{event.status} {event.reason}"))
            if event.sdp:
                self._apply_sdp(call, event.sdp)       # early media: hear the PBX's tones
        elif isinstance(event, sip_events.CallAnswered):
            self._on_answered(call, event.sdp)
        elif isinstance(event, sip_events.CallUpdated):
            if self._apply_sdp(call, event.sdp) and call.state == "answered":
                self.publish(CallEvent("updated", call.peer,
                                       "on hold" if call.rtp.paused else "talking"))
        elif isinstance(event, sip_events.InfoDtmf):
            self._on_dtmf(call, event.digit)
        elif isinstance(event, sip_events.CallFailed):
            reason = f"{event.status} {event.reason}"
            if call.no_answer:
                reason = f"no answer ({reason})"
            self._finish_call("failed", reason)
            if self._restart_button is None and call.target_index + 1 < len(call.targets):
                self._starting = True
                self.loop.create_task(self._start_call(call.targets, call.target_index + 1))
            self._restarted()
        elif isinstance(event, sip_events.CallEnded):
            who = "by the resident" if event.by_remote else "by the station"
            self._finish_call("ended", f"{event.reason} {who}")
            self._restarted()

    def _restarted(self) -> None:
        """A call ended because a bell was pressed again: that bell's call now."""
        button, self._restart_button = self._restart_button, None
        if button is not None and self.call is None and not self._starting:
            self._begin(button)

    def _on_answered(self, call: ActiveCall, body: bytes) -> None:
        if not self._apply_sdp(call, body):
            self.hangup("unusable SDP answer")
            return
        call.state = "answered"
        self.board.set_led("call", "on")
        for t in call.timers:
            t.cancel()
        call.timers = [self.loop.call_later(self.config["call"]["max_duration"], self.hangup,
                                            "maximum call duration reached")]
        call.audio_report = self.loop.call_later(1.0, self._report_audio, call)
        assert call.stream is not None
        self.publish(CallEvent("answered", call.peer, call.stream.codec.name))

    def _apply_sdp(self, call: ActiveCall, body: bytes) -> bool:
        """Follow the peer's latest SDP: where to send, which codec, and whether to send.

        Early media, the final answer (which may differ from the 183's) and later
        offers all come here; the stream restarts only when the codec changes.
        """
        try:
            remote = sdp.parse(body)
            chosen = sdp.negotiate(call.media, remote, we_offered=True)
        except SipError as exc:
            log.warning("SDP from %s unusable: %s", call.peer, exc)
            return False
        if not self._agree_srtp(call, remote):
            return False
        call.rtp.retarget(chosen.remote_address, chosen.remote_port)
        call.rtp.rtcp_mux = chosen.rtcp_mux
        call.rtp.paused = remote.on_hold
        te = chosen.telephone_event.payload_type if chosen.telephone_event else None
        running = call.stream
        if running is not None and running.codec.name.lower() == chosen.codec.name.lower() \
                and (running.codec.payload_type, running.te_pt) == (chosen.codec.payload_type, te):
            return True                            # same codec: keep its state and the stream
        codec = codec_for(chosen.codec, self.config["audio"]["opus_complexity"])
        if call.stream is not None:
            call.stream.stop()
        a, m = self.config["audio"], self.config["media"]
        te_rate = chosen.telephone_event.clock_rate if chosen.telephone_event else 8000
        call.stream = AudioStream(self._open_audio_device, a["rate"], call.rtp, codec, te,
                                  lambda digit: self._on_dtmf(call, digit), self._on_audio_error,
                                  PTIME, self._echo_control(codec.sample_rate),
                                  a["mic_gain_db"], a["speaker_gain_db"], te_rate,
                                  self.config["door"]["inband_dtmf"], a["period_ms"],
                                  jitter_min_ms=m["jitter_min_ms"],
                                  jitter_max_ms=m["jitter_max_ms"],
                                  jitter_spike_max_ms=m["jitter_spike_max_ms"])
        call.stream.start()
        return True

    def _agree_srtp(self, call: ActiveCall, remote: sdp.MediaDescription) -> bool:
        """Use the phone's SDES key if it answered ours; refuse plain RTP if required."""
        theirs = None
        if call.crypto is not None:
            theirs = next((c for c in map(crypto_or_none, remote.crypto)
                           if c is not None and c.tag == call.crypto.tag
                           and c.suite == call.crypto.suite), None)
        if theirs is None:
            if self.config["media"]["srtp"] == "required":
                log.warning("%s answered without SRTP, which the config requires", call.peer)
                return False
            call.rtp.srtp = None
            return True
        current = call.rtp.srtp
        if current is None or current.theirs != theirs:
            assert call.crypto is not None
            call.rtp.srtp = SrtpContext(call.crypto, theirs)
        return True

    def _on_audio_error(self, message: str) -> None:
        self.audio_error = message

    def _report_audio(self, call: ActiveCall) -> None:
        if self.call is not call or call.stream is None:
            return
        st = call.stream
        self.publish(AudioEvent(st.codec.name, round(st.mic_level.dbfs, 1),
                                round(st.speaker_level.dbfs, 1), st.rtp.stats.sent,
                                st.rtp.stats.received, st.device_error))
        call.audio_report = self.loop.call_later(1.0, self._report_audio, call)

    def _finish_call(self, state: str, reason: str) -> None:
        call = self.call
        if call is None:
            return
        self.call = None
        self.lockout.call_ended(call.call_id)
        self.door.reset()
        for t in call.timers:
            t.cancel()
        if call.audio_report is not None:
            call.audio_report.cancel()
        if call.stream is not None:
            call.stream.stop()
            quality = call.stream.quality()
            if quality is not None and quality.packets_received:
                self.publish(QualityEvent(peer=call.peer, codec=call.stream.codec.name,
                                          **dataclasses.asdict(quality)))
        call.rtp.close()
        self.door.reset()
        if self._door_timer is not None:
            self._door_timer.cancel()
        self.board.set_led("call", "off")
        self.publish(CallEvent(state, call.peer, reason))

    def _open_audio_device(self) -> AudioDevice:
        a = self.config["audio"]
        period = a["rate"] * a["period_ms"] // 1000
        if a["device"] == "alsa":
            return AlsaSoundCard(a["rate"], period, a["capture"], a["playback"])
        echo = None
        if a["sim_echo_gain_db"] > -120:
            echo = EchoPathSpec(a["sim_echo_delay_ms"], a["sim_echo_room_ms"],
                                a["sim_echo_gain_db"], a["sim_noise_dbfs"])
        return SimulatedSoundCard(a["rate"], period, a["mic_file"], a["mic_tone_hz"],
                                  a["speaker_file"], echo)

    def _echo_control(self, rate: int) -> EchoControl | None:
        """The echo canceller for calls at ``rate``, kept from call to call: the room
        does not change, so a canceller that has learnt it starts the next call ready."""
        a = self.config["audio"]
        if not a["echo_cancel"]:
            return None
        control = self._echo.get(rate)
        if control is None:
            control = self._echo[rate] = EchoControl(
                rate, rate * PTIME // 1000, a["echo_tail_ms"], a["echo_delay_ms"],
                denoise=a["denoise"], agc=a["agc"])
            if a["echo_training"] and not calibrate.train(control, a["echo_training"]):
                log.warning("echo training file %s is missing or broken; run intercom "
                            "calibrate again", a["echo_training"])
        else:
            control.restart()
        return control

    # ----- DTMF and the door ----------------------------------------------------
    def _on_dtmf(self, call: ActiveCall, digit: str) -> None:
        if call.state != "answered":
            # Early media comes from the PBX, not the resident: never a door code.
            log.warning("DTMF %r from %s before the call was answered: ignored", digit, call.peer)
            return
        self.publish(DtmfEvent(digit, call.peer))
        now = self.loop.time()
        lock = self.lockout.locked(call.call_id, call.peer, now)
        if lock is not None:
            # Locked out: the digits are not even compared, the right code's neither.
            self.door.reset()
            reason = f"locked out ({lock.scope}" + \
                (f", {lock.seconds:.0f} s left)" if lock.seconds else ", for this call)")
            if self._lock_reported != call.call_id + lock.scope:
                self._lock_reported = call.call_id + lock.scope
                log.warning("door code ignored from %s: %s", call.peer, reason)
            return
        self._decide(call, self.door.digit(digit, now))
        if self._door_timer is not None:
            self._door_timer.cancel()
        deadline = self.door.deadline()
        if deadline is not None:
            self._door_timer = self.loop.call_at(
                deadline, lambda: self._decide(call, [d for d in [
                    self.door.expire(self.loop.time())] if d]))

    def _decide(self, call: ActiveCall, decisions: list[Decision]) -> None:
        caller = call.peer
        for decision in decisions:
            if decision.action == "open":
                log.warning("door opened by code from %s", caller)
                self.lockout.right(caller)
                self.publish(DoorEvent("opened", caller))
                self._energise_relay()
                continue
            # One line per rejected code, in a fixed form that fail2ban can match.
            log.warning("door code rejected from %s: %s", caller, decision.reason)
            self.publish(DoorEvent("rejected", caller, decision.reason))
            for lock in self.lockout.wrong(call.call_id, caller, self.loop.time()):
                how = "for the rest of the call" if lock.scope == "call" else \
                    f"for {lock.seconds:.0f} s"
                log.warning("door code entry locked (%s) for %s %s", lock.scope, caller, how)
                self.publish(DoorEvent("locked_out", caller, f"{lock.scope} {how}"))

    def _energise_relay(self) -> None:
        seconds = float(self.config["door"]["pulse_seconds"])
        if self._relay_release is not None:
            self._relay_release.cancel()          # a second code extends the pulse
        else:
            self.board.set_relay(True)
            self._relay_since = self.loop.time()
            self.publish(RelayEvent(True))
        self._relay_release = self.loop.call_later(seconds, self._release_relay)

    def _release_relay(self) -> None:
        if self._relay_release is None:
            return
        self._relay_release.cancel()
        self._relay_release = None
        self.board.set_relay(False)
        self.publish(RelayEvent(False, round(self.loop.time() - self._relay_since, 3)))
