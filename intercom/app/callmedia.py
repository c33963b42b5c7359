"""The media of the station's calls: RTP ports, SDP offers and answers, SDES
keys, the sound device and the echo canceller kept from call to call, and
the camera's video.

Each SIP call of the station (a leg: to a call target, or from a resident)
gets its own RTP session; only a leg that is answered, or that plays the
PBX's early media, gets the sound device through an AudioStream. With a
camera, each leg also gets a video RTP session and offers H.264 (sendonly:
the station has no screen); once the peer's SDP takes it, answered or in
early media, the leg is fed from the one VideoFeed.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from intercom.config import Config
from intercom.hal.camera import Camera
from intercom.media import calibrate
from intercom.media.codecs import codec_for, offer_formats
from intercom.media.devices import AlsaSoundCard, AudioDevice, AudioDeviceError, SimulatedSoundCard
from intercom.media.echo import EchoControl, EchoPathSpec
from intercom.media.rtp import RtpSession
from intercom.media.srtp import Crypto, SrtpContext, choose, crypto_or_none
from intercom.media.stream import AudioStream
from intercom.media import video as videomod
from intercom.media.video import VideoFeed, VideoSender
from intercom.sip import sdp
from intercom.sip.address import parse_hostport
from intercom.sip.errors import SipError

log = logging.getLogger("intercom.station")
PTIME = 20


@dataclass
class CallLeg:
    """The media of one SIP call of the station: to a call target, or from a resident."""

    peer: str
    rtp: RtpSession
    media: sdp.MediaDescription            # our side of the offer/answer
    incoming: bool = False
    leg: int = -1                          # the station core's number for it
    call_id: str = ""
    stream: AudioStream | None = None
    crypto: Crypto | None = None           # our SDES key
    video_crypto: Crypto | None = None     # and the video's own (RFC 4568 6.1)
    listen_only: bool = False              # the station's speaker stays silent
    video_rtp: RtpSession | None = None    # with a camera: the video's own session
    video_media: sdp.MediaDescription | None = None
    video: VideoSender | None = None       # sending, once the peer's SDP took video


class CallMedia:
    def __init__(self, config: Config, local_host: Callable[[], str],
                 on_dtmf: Callable[[CallLeg, str], None],
                 on_audio_error: Callable[[str], None],
                 camera: Callable[[], Camera | None] = lambda: None) -> None:
        self.config = config
        self.local_host = local_host
        self.on_dtmf = on_dtmf
        self.on_audio_error = on_audio_error
        self.camera = camera
        self._echo: dict[int, EchoControl] = {}
        self.feed: VideoFeed | None = None
        self._video_ok: bool | None = None        # the encoder is installed (checked once)

    def _video_feed(self) -> VideoFeed | None:
        """The feed when calls are to show video: a camera, video_calls on, an encoder."""
        c = self.config.camera
        camera = self.camera()
        if camera is None or not c.video_calls:
            return None
        if self._video_ok is None:
            self._video_ok = videomod.available()
            if not self._video_ok:
                log.error("video: no H.264 encoder (pip install 'intercom[video]'); "
                          "calls are audio-only")
        if not self._video_ok:
            return None
        if self.feed is None or self.feed.camera is not camera:
            self.feed = VideoFeed(camera, c.fps, c.bitrate_kbps * 1000, c.keyframe_seconds,
                                  c.encoder)
        return self.feed

    async def open(self, peer: str, incoming: bool = False) -> CallLeg:
        """A leg with its RTP port open and our media description. Raises OSError."""
        m = self.config.media
        rtp = await RtpSession.open(self.config.sip.listen, m.rtp_port_min,
                                    m.rtp_port_max, lambda *a: None)
        host, port = await self.address(rtp)
        media = sdp.MediaDescription(host, port, offer_formats(self.config.audio.codecs),
                                     ptime=PTIME, rtcp_mux=True)
        leg = CallLeg(peer, rtp, media, incoming=incoming)
        if self._video_feed() is not None:
            try:
                leg.video_rtp = await RtpSession.open(self.config.sip.listen, m.rtp_port_min,
                                                      m.rtp_port_max, lambda *a: None)
            except OSError as exc:
                log.warning("no RTP port for video, the call is audio-only: %s", exc)
            else:
                vhost, vport = await self.address(leg.video_rtp)
                leg.video_media = sdp.video_offer(vhost, vport)
        return leg

    async def address(self, rtp: RtpSession) -> tuple[str, int]:
        """Where the peer should send our audio: STUN's answer when configured (RFC 5389)."""
        server = self.config.sip.stun_server
        if server:
            host, port = parse_hostport(server, 3478)
            found = await rtp.public_address((host.strip("[]"), port or 3478))
            if found is not None:
                return found
        return self.local_host(), rtp.local_port

    def offer(self, leg: CallLeg) -> bytes:
        srtp = self.config.media.srtp
        if srtp != "off":
            # Required: RTP/SAVP, which a phone without SRTP refuses. Optional: RTP/AVP
            # with a=crypto, which such a phone ignores (best effort, RFC 4568 7.1).
            leg.crypto = Crypto.new()
            leg.media.crypto = [str(leg.crypto)]
            leg.media.protocol = "RTP/SAVP" if srtp == "required" else "RTP/AVP"
            if leg.video_media is not None:
                leg.video_crypto = Crypto.new()
                leg.video_media.crypto = [str(leg.video_crypto)]
                leg.video_media.protocol = leg.media.protocol
        video = () if leg.video_media is None else (leg.video_media,)
        return sdp.build(secrets.randbelow(2**31), 1, leg.media.address, leg.media, *video)

    def answer(self, leg: CallLeg, offer: bytes) -> bytes:
        """Our answer to a resident's offer; the stream starts. Raises SipError."""
        streams = sdp.parse_streams(offer)
        remote = sdp.parse(offer)
        srtp = self.config.media.srtp
        protocols = {"off": ("RTP/AVP",), "optional": ("RTP/AVP", "RTP/SAVP"),
                     "required": ("RTP/SAVP", "RTP/AVP")}[srtp]
        answer = sdp.answer_for(remote, leg.media.formats, leg.media.address, leg.media.port,
                                PTIME, protocols)
        theirs = choose(remote.crypto) if srtp != "off" else None
        if theirs is None and (srtp == "required" or remote.protocol == "RTP/SAVP"):
            raise sdp.SdpError("SRTP is required and the offer has no usable a=crypto")
        if theirs is not None:
            leg.crypto = Crypto.new(theirs.tag, theirs.suite)
            answer.crypto = [str(leg.crypto)]
        leg.media = answer
        offered_video = sdp.video_of(streams)
        video = None
        if offered_video is not None and leg.video_media is not None:
            video = sdp.answer_video(offered_video, leg.video_media)
            keyed = choose(offered_video.crypto) if srtp != "off" else None
            if keyed is None and (srtp == "required" or offered_video.protocol.endswith("SAVP")):
                video = None                  # no video in the clear, nor keyless SRTP
            elif keyed is not None and video is not None:
                leg.video_crypto = Crypto.new(keyed.tag, keyed.suite)
                video.crypto = [str(leg.video_crypto)]
        if video is None:
            self._close_video(leg)
        leg.video_media = video
        if not self.apply(leg, offer, we_offered=False):
            raise sdp.SdpError("the offer cannot be used")
        return sdp.build(secrets.randbelow(2**31), 1, answer.address,
                         *sdp.answer_streams(streams, answer, video))

    def apply(self, leg: CallLeg, body: bytes, we_offered: bool = True) -> bool:
        """Follow the peer's latest SDP: where to send, which codec, and whether to send.

        Early media, the final answer (which may differ from the 183's) and later
        offers all come here; the stream restarts only when the codec changes.
        """
        try:
            remote = sdp.parse(body)
            chosen = sdp.negotiate(leg.media, remote, we_offered=we_offered)
        except SipError as exc:
            log.warning("SDP from %s unusable: %s", leg.peer, exc)
            return False
        if not self._agree_srtp(leg.peer, leg.rtp, leg.crypto, remote):
            return False
        leg.rtp.retarget(chosen.remote_address, chosen.remote_port)
        leg.rtp.rtcp_mux = chosen.rtcp_mux
        leg.rtp.paused = remote.on_hold
        self._apply_video(leg, sdp.parse_streams(body))
        te = chosen.telephone_event.payload_type if chosen.telephone_event else None
        running = leg.stream
        if running is not None and running.codec.name.lower() == chosen.codec.name.lower() \
                and (running.codec.payload_type, running.te_pt) == (chosen.codec.payload_type, te):
            return True                            # same codec: keep its state and the stream
        codec = codec_for(chosen.codec, self.config.audio.opus_complexity)
        if leg.stream is not None:
            leg.stream.stop()
        a, m = self.config.audio, self.config.media
        te_rate = chosen.telephone_event.clock_rate if chosen.telephone_event else 8000
        leg.stream = AudioStream(self.open_device, a.rate, leg.rtp, codec, te,
                                 lambda digit: self.on_dtmf(leg, digit), self.on_audio_error,
                                 PTIME, self._echo_control(codec.sample_rate),
                                 a.mic_gain_db, a.speaker_gain_db, te_rate,
                                 self.config.door.inband_dtmf, a.period_ms,
                                 jitter_min_ms=m.jitter_min_ms,
                                 jitter_max_ms=m.jitter_max_ms,
                                 jitter_spike_max_ms=m.jitter_spike_max_ms)
        if leg.listen_only:
            leg.stream.speaker_gain = 0.0
        leg.stream.start()
        return True

    def _agree_srtp(self, peer: str, rtp: RtpSession, ours: Crypto | None,
                    remote: sdp.MediaDescription) -> bool:
        """Use the peer's SDES key if it answered ours; refuse plain RTP if required."""
        theirs = None
        if ours is not None:
            theirs = next((c for c in map(crypto_or_none, remote.crypto)
                           if c is not None and c.tag == ours.tag
                           and c.suite == ours.suite), None)
        if theirs is None:
            if self.config.media.srtp == "required":
                log.warning("%s sent SDP without SRTP, which the config requires", peer)
                return False
            rtp.srtp = None
            return True
        current = rtp.srtp
        if current is None or current.theirs != theirs:
            assert ours is not None
            rtp.srtp = SrtpContext(ours, theirs)
        return True

    def _apply_video(self, leg: CallLeg, streams: list[sdp.MediaDescription]) -> None:
        """Send video where the peer's SDP takes it; stop where it turns it down or
        asks us not to send (hold, or a recvonly answer would be sendonly here)."""
        feed = self.feed
        theirs = sdp.video_of(streams)
        ours = leg.video_media
        fmt = sdp.h264_mode1(theirs) if theirs is not None else None
        wants = theirs is not None and fmt is not None and theirs.direction in (
            "sendrecv", "recvonly") and theirs.address not in ("0.0.0.0", "::")
        if leg.video_rtp is None or ours is None or feed is None or not wants:
            if leg.video is not None:
                self.stop_video(leg)
                log.info("video to %s stopped: %s", leg.peer, "turned down" if theirs is None
                         else f"the peer's video is {theirs.direction}")
            elif leg.video_rtp is not None and theirs is None:
                log.info("%s takes no video; the call is audio-only", leg.peer)
            return
        assert theirs is not None and fmt is not None
        rtp = leg.video_rtp
        if not self._agree_srtp(leg.peer, rtp, leg.video_crypto, theirs):
            self.stop_video(leg)
            return
        rtp.retarget(theirs.address, theirs.port)
        rtp.rtcp_mux = ours.rtcp_mux and theirs.rtcp_mux
        if leg.video is not None and leg.video.payload_type == fmt.payload_type:
            return
        if leg.video is not None:
            self.stop_video(leg)
        if rtp.rtcp is None:
            rtp.start_rtcp(videomod.CLOCK, f"intercom-{secrets.token_hex(6)}")
        assert rtp.rtcp is not None
        rtp.rtcp.on_keyframe_request = feed.keyframe
        leg.video = VideoSender(rtp, fmt.payload_type)
        feed.attach(leg.video)
        log.info("video to %s: H.264 %dx%d at %d fps", leg.peer, feed.camera.width,
                 feed.camera.height, feed.fps)

    def stop_video(self, leg: CallLeg) -> None:
        if leg.video is not None and self.feed is not None:
            self.feed.detach(leg.video)
            log.info("video to %s: %d pictures sent, %d keyframes asked for (PLI/FIR)",
                     leg.peer, leg.video.frames,
                     leg.video_rtp.rtcp.keyframe_requests
                     if leg.video_rtp is not None and leg.video_rtp.rtcp is not None else 0)
        leg.video = None

    def _close_video(self, leg: CallLeg) -> None:
        self.stop_video(leg)
        if leg.video_rtp is not None:
            leg.video_rtp.close()
            leg.video_rtp = None

    def close(self, leg: CallLeg) -> None:
        if leg.stream is not None:
            leg.stream.stop()
        self._close_video(leg)
        leg.rtp.close()

    async def probe(self) -> str | None:
        """Open and close the sound device once: its error, if it has one."""
        device = self.open_device()
        try:
            await asyncio.to_thread(device.open)
        except AudioDeviceError as exc:
            return str(exc)
        device.close()
        return None

    def open_device(self) -> AudioDevice:
        a = self.config.audio
        period = a.rate * a.period_ms // 1000
        if a.device == "alsa":
            return AlsaSoundCard(a.rate, period, a.capture, a.playback)
        echo = None
        if a.sim_echo_gain_db > -120:
            echo = EchoPathSpec(a.sim_echo_delay_ms, a.sim_echo_room_ms,
                                a.sim_echo_gain_db, a.sim_noise_dbfs)
        return SimulatedSoundCard(a.rate, period, a.mic_file, a.mic_tone_hz,
                                  a.speaker_file, echo)

    def _echo_control(self, rate: int) -> EchoControl | None:
        """The echo canceller for calls at ``rate``, kept from call to call: the room
        does not change, so a canceller that has learnt it starts the next call ready."""
        a = self.config.audio
        if not a.echo_cancel:
            return None
        control = self._echo.get(rate)
        if control is None:
            control = self._echo[rate] = EchoControl(
                rate, rate * PTIME // 1000, a.echo_tail_ms, a.echo_delay_ms,
                denoise=a.denoise, agc=a.agc)
            if a.echo_training and not calibrate.train(control, a.echo_training):
                log.warning("echo training file %s is missing or broken; run intercom "
                            "calibrate again", a.echo_training)
        else:
            control.restart()
        return control
