"""The built-in demo peer: a resident's phone and a small registrar on one UDP port.

It lets ``intercom demo`` (and quick tests) run with no PBX or softphone
installed. The registrar challenges REGISTER with digest auth (401) and
checks the answer; the phone auto-answers, talks with a simulated sound card
(a tone, recorded to a WAV file) and keys DTMF when told. It is built on the
same SIP core and media code as the station, so the real interoperability
checks are the tests against Kamailio and baresip.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from intercom.media.codecs import TELEPHONE_EVENT, codec_for, spec
from intercom.media.srtp import Crypto, SrtpContext, choose
from intercom.media.devices import SimulatedSoundCard
from intercom.media.rtp import RtpSession
from intercom.media.stream import AudioStream
from intercom.sip import digest, sdp
from intercom.sip import events as ev
from intercom.sip.address import NameAddr
from intercom.sip.dialog import make_response, new_tag
from intercom.sip.errors import SipError
from intercom.sip.message import Request, parse_message
from intercom.sip.transport import SipEndpoint
from intercom.sip.settings import UaSettings
from intercom.sip.ua import UserAgent

log = logging.getLogger("intercom.demo")
PTIME = 20


class DemoRegistrar:
    """Answers REGISTER: a 401 challenge, then 200 when the digest is right."""

    def __init__(self, realm: str, users: dict[str, str]) -> None:
        self.realm = realm
        self.users = users
        self.nonces: dict[str, int] = {}           # nonce -> the highest nonce count seen
        self.bindings: dict[str, str] = {}

    def handle(self, req: Request) -> bytes:
        auth = req.headers.get("Authorization")
        stale = False
        if auth:
            _, p = digest.parse_auth_params(auth)
            password = self.users.get(p.get("username", ""))
            nonce, nc_text = p.get("nonce", ""), p.get("nc", "0")
            nc = int(nc_text, 16) if nc_text.isalnum() and len(nc_text) == 8 else 0
            stale = nonce not in self.nonces or nc <= self.nonces[nonce]   # replayed
            if password is not None and not stale:
                ch = digest.Challenge(self.realm, nonce, None, p.get("algorithm", "MD5").upper(),
                                      "qop" in p, False)
                expected = digest.digest_response(ch, p["username"], password, "REGISTER",
                                                  p.get("uri", ""), p.get("cnonce", ""), nc)
                if secrets.compare_digest(expected, p.get("response", "")):
                    self.nonces[nonce] = nc
                    return self._ok(req, p["username"])
                return make_response(req, 403, "Forbidden", new_tag()).to_bytes()
        nonce = secrets.token_hex(16)
        self.nonces[nonce] = 0
        flag = ", stale=true" if stale else ""
        # One challenge per algorithm, the preferred first (RFC 8760 2.4).
        return make_response(req, 401, "Unauthorized", new_tag(), tuple(
            ("WWW-Authenticate", f'Digest realm="{self.realm}", nonce="{nonce}", '
                                 f'qop="auth", algorithm={alg}{flag}')
            for alg in ("SHA-256", "MD5"))).to_bytes()

    def _ok(self, req: Request, user: str) -> bytes:
        expires = req.headers.get("Expires") or "600"
        contact = req.headers.get("Contact")
        if expires == "0":
            self.bindings.pop(user, None)
            return make_response(req, 200, "OK", new_tag()).to_bytes()
        if contact:
            self.bindings[user] = contact
        extra = (("Contact", f"{NameAddr.parse(contact)};expires={expires}"),) if contact else ()
        return make_response(req, 200, "OK", new_tag(), extra).to_bytes()


class _PhoneEndpoint(SipEndpoint):
    """The phone's SIP endpoint (UDP only), with REGISTER handed to the registrar."""

    registrar: DemoRegistrar | None = None

    def deliver(self, data: bytes, addr: tuple[str, int], transport: str) -> None:
        if data.startswith(b"REGISTER ") and self.registrar is not None:
            try:
                msg = parse_message(data)
            except SipError:
                msg = None                       # the UA core answers it with 400
            udp = self.udp.transport if self.udp is not None else None
            if isinstance(msg, Request) and udp is not None and transport == "udp":
                udp.sendto(self.registrar.handle(msg), addr)
                return
        super().deliver(data, addr, transport)


@dataclass
class PhoneCall:
    call_id: str
    caller: str
    rtp: RtpSession
    stream: AudioStream | None = None


class DemoPhone:
    """Auto-answering phone (and registrar) for demos and tests."""

    def __init__(self, port: int, speaker_file: str, tone_hz: float = 1000.0,
                 answer_after: float = 1.0, rate: int = 8000,
                 on_event: Callable[[str, object], None] | None = None,
                 mic_file: str = "") -> None:
        self.port = port
        self.speaker_file = speaker_file
        self.tone_hz = tone_hz
        self.mic_file = mic_file              # what the resident says, instead of the tone
        self.answer_after = answer_after
        self.rate = rate
        self.on_event = on_event or (lambda kind, data: None)
        self.registrar = DemoRegistrar("demo", {"door": "demo-secret"})
        self.ua = UserAgent(UaSettings("resident", "127.0.0.1", "127.0.0.1", port))
        self.endpoint: SipEndpoint | None = None
        self.call: PhoneCall | None = None
        self._offer: sdp.MediaDescription | None = None      # ours, in a call we placed
        self.dtmf_received: list[str] = []

    async def start(self) -> None:
        self.endpoint = await _PhoneEndpoint.open(self.ua, ("127.0.0.1", self.port),
                                                  self._on_ua_event, listen_tcp=False)
        self.endpoint.registrar = self.registrar

    def close(self) -> None:
        if self.call is not None:
            self._end_media()
        if self.endpoint is not None:
            self.endpoint.close()

    def send_dtmf(self, digits: str) -> None:
        if self.call is None or self.call.stream is None:
            raise RuntimeError("no call to send DTMF in")
        self.call.stream.send_dtmf(digits)

    def hangup(self) -> None:
        if self.call is not None and self.endpoint is not None:
            call_id = self.call.call_id
            self.endpoint.run(lambda now: self.ua.hangup(call_id, now))

    async def dial(self, target: str) -> str:
        """Call ``target`` (the resident calling the door station); returns the Call-ID.
        Audio starts when it answers; ``on_event`` hears of the answer and the end."""
        assert self.endpoint is not None
        rtp = await RtpSession.open("127.0.0.1", 40000, 49998, lambda *a: None)
        offer = sdp.MediaDescription("127.0.0.1", rtp.local_port,
                                     [spec("PCMU").format, spec("PCMA").format,
                                      TELEPHONE_EVENT], ptime=PTIME)
        body = sdp.build(secrets.randbelow(2**31), 1, "127.0.0.1", offer)
        call_id = str(self.endpoint.run(lambda now: self.ua.invite(target, body, now)))
        self.call = PhoneCall(call_id, target, rtp)
        self._offer = offer
        return call_id

    def _on_ua_event(self, event: ev.UaEvent) -> None:
        if isinstance(event, ev.IncomingCall):
            asyncio.get_running_loop().create_task(self._answer(event))
        elif isinstance(event, ev.CallAnswered) and self.call is not None:
            try:
                assert self._offer is not None
                chosen = sdp.negotiate(self._offer, sdp.parse(event.sdp), we_offered=True)
            except SipError as exc:
                self.on_event("unusable answer:", str(exc))
                self.hangup()
                return
            te = chosen.telephone_event.payload_type if chosen.telephone_event else None
            self._start_media(self.call, chosen, te)
            self.on_event("answered with", chosen.codec.name)
        elif isinstance(event, ev.CallEnded):
            self._end_media()
            self.on_event("call ended", event.reason)
        elif isinstance(event, ev.CallFailed):
            self._end_media()
            self.on_event("call failed", f"{event.status} {event.reason}")

    async def _answer(self, incoming: ev.IncomingCall) -> None:
        assert self.endpoint is not None
        now = asyncio.get_running_loop().time
        if self.call is not None:
            self.ua.reject(incoming.call_id, 486, "Busy Here", now())
            self.endpoint.flush()
            return
        rtp = await RtpSession.open("127.0.0.1", 40000, 49998, lambda *a: None)
        self.call = PhoneCall(incoming.call_id, incoming.caller, rtp)
        self.endpoint.run(lambda t: self.ua.ring(incoming.call_id, t))
        self.on_event("ringing, call from", incoming.caller)
        await asyncio.sleep(self.answer_after)
        if self.call is None or self.call.call_id != incoming.call_id:
            return                                     # cancelled while ringing
        try:
            offer = sdp.parse(incoming.sdp)
            ours = [spec("PCMU").format, spec("PCMA").format, TELEPHONE_EVENT]
            answer = sdp.answer_for(offer, ours, "127.0.0.1", rtp.local_port, PTIME,
                                    ("RTP/AVP", "RTP/SAVP"))
            theirs = choose(offer.crypto)              # SDES: answer with a key of ours
            if theirs is not None:
                mine = Crypto.new(theirs.tag, theirs.suite)
                answer.crypto = [str(mine)]
                rtp.srtp = SrtpContext(mine, theirs)
            elif offer.protocol == "RTP/SAVP":
                raise sdp.SdpError("RTP/SAVP offered without a usable a=crypto")
            chosen = sdp.negotiate(answer, offer, we_offered=False)
        except SipError as exc:
            self.endpoint.run(lambda t: self.ua.reject(incoming.call_id, 488,
                                                       "Not Acceptable Here", t))
            self.on_event("rejected the offer:", str(exc))
            return
        te = next((f.payload_type for f in answer.formats if f.name == "telephone-event"), None)
        body = sdp.build(secrets.randbelow(2**31), 1, "127.0.0.1", answer)
        self.endpoint.run(lambda t: self.ua.answer(incoming.call_id, body, t))
        self._start_media(self.call, chosen, te)
        self.on_event("answered with", chosen.codec.name)

    def _start_media(self, call: PhoneCall, chosen: sdp.Negotiated, te: int | None) -> None:
        call.rtp.set_remote(chosen.remote_address, chosen.remote_port)
        call.rtp.rtcp_mux = chosen.rtcp_mux
        period = self.rate * PTIME // 1000
        call.stream = AudioStream(
            lambda: SimulatedSoundCard(self.rate, period, self.mic_file, self.tone_hz,
                                       self.speaker_file),
            self.rate, call.rtp, codec_for(chosen.codec), te, self.dtmf_received.append,
            lambda message: log.error("demo phone audio: %s", message), PTIME)
        call.stream.start()

    def _end_media(self) -> None:
        call, self.call = self.call, None
        if call is not None:
            if call.stream is not None:
                call.stream.stop()
            call.rtp.close()
