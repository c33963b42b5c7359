"""One call's audio: sound device <-> codec <-> RTP, with DTMF both ways, and the
echo of the speaker taken out of the microphone.

The call's media thread is paced by the sound device, which is the clock:
each period it takes what the network has sent (``RtpSession.drain``) into
the play-out path (jitter buffer, decoder, concealment;
intercom.media.playout), plays one period from it, and sends what the
microphone captured (echo canceller, encoder, RTP). No frame or packet passes
through the event loop; the loop gets only what it acts on (digits, errors,
RTCP). A device that fails to open or breaks is reported and retried; the
thread goes on taking packets meanwhile, so DTMF and the door carry on
without it.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from intercom.cext.echo import MicPath
from intercom.cext.level import LevelMeter
from intercom.media.codecs import Codec
from intercom.media.devices import AudioDevice, AudioDeviceError
from intercom.media.echo import EchoControl
from intercom.media.rtcp import Quality
from intercom.cext.dtmf import DtmfDetector
from intercom.media.dtmf import DtmfReceiver, event_payloads
from intercom.media.playout import MAX_DELAY_MS, SPIKE_MAX_MS, Playout
from intercom.media.rtp import RtpSession
from intercom.media.signal import Pcm
from intercom.media.recorder import CallRecorder
from intercom.media.sounds import Sound, SoundSource, source
from intercom.media.tones import mix

log = logging.getLogger("intercom.audio")
DEVICE_RETRY_SECONDS = 2.0
WITHOUT_DEVICE_TURN = 0.1     # s: how often the thread looks up while the card is down
STALL_SECONDS = 10.0          # an audio thread that has not turned for this long is stuck
DTMF_DIGIT_MS = 100
DTMF_GAP_FRAMES = 3


def scaled(frame: Pcm, gain: float) -> Pcm:
    """``frame`` times ``gain``, clipped to 16 bits (the same frame for a gain of 1)."""
    if gain == 1.0:
        return frame
    out: Pcm = np.clip(frame * gain, -32768, 32767).astype(np.int16)
    return out


class AudioStream:
    def __init__(self, open_device: Callable[[], AudioDevice], device_rate: int,
                 rtp: RtpSession, codec: Codec, telephone_event_pt: int | None,
                 on_dtmf: Callable[[str], None], on_device_error: Callable[[str], None],
                 ptime: int = 20, echo: EchoControl | None = None,
                 mic_gain_db: float = 0.0, speaker_gain_db: float = 0.0,
                 telephone_event_rate: int = 8000, inband_dtmf: bool = False,
                 device_period_ms: int | None = None, jitter_min_ms: float = 0.0,
                 jitter_max_ms: float = MAX_DELAY_MS,
                 jitter_spike_max_ms: float = SPIKE_MAX_MS) -> None:
        self.loop = asyncio.get_running_loop()
        self.open_device = open_device
        self.rtp = rtp
        self.codec = codec
        self.te_pt = telephone_event_pt
        self.on_dtmf = on_dtmf
        self.on_device_error = on_device_error
        self.codec_frame = codec.sample_rate * ptime // 1000
        self.ts_step = codec.timestamp_step(self.codec_frame)
        self.te_rate = telephone_event_rate
        self.te_step = telephone_event_rate * ptime // 1000
        # The card may move 10 ms periods while RTP carries 20 ms frames: frames are
        # assembled both ways, so the two need not match.
        self.device_frame = device_rate * (device_period_ms or ptime) // 1000
        # The microphone path (gain, resampling, framing, echo canceller and
        # preprocessor) runs in C a card period at a time: cext/echo.pyx MicPath.
        if echo is not None and echo.frame != self.codec_frame:
            raise ValueError(f"echo control frames are {echo.frame} samples, the codec's "
                             f"{self.codec_frame}")
        self.echo = echo
        self.mic = echo.mic_path(device_rate, 10 ** (mic_gain_db / 20)) if echo is not None \
            else MicPath(device_rate, codec.sample_rate, self.codec_frame,
                         10 ** (mic_gain_db / 20))
        self.speaker_gain = 10 ** (speaker_gain_db / 20)
        self.device_rate = device_rate
        # Tones mixed in: set here on the loop, read by the audio thread (speaker)
        # or the loop (call); a finished source is skipped, never reset from there.
        self._speaker_tone: SoundSource | None = None
        self._call_tone: SoundSource | None = None
        self.recorder: CallRecorder | None = None      # set on the loop, fed by the thread
        self.playout = Playout(codec, self.codec_frame, device_rate, self.device_frame,
                               min_delay_ms=jitter_min_ms, max_delay_ms=jitter_max_ms,
                               spike_max_ms=jitter_spike_max_ms,
                               on_audio=self._on_speaker_audio)
        self.mic_level = LevelMeter(codec.sample_rate // 2)
        self.speaker_level = LevelMeter(codec.sample_rate // 2)
        self.dtmf_in = DtmfReceiver()
        # Tones in the audio count only when asked for, and only until the phone
        # shows it sends RFC 4733 events (a phone that does both would type twice).
        self.inband = DtmfDetector(codec.sample_rate) if inband_dtmf else None
        self._events_seen = False
        self._dtmf_out: deque[tuple[str, bytes]] = deque()
        self._event_ts = 0
        self._ts = int.from_bytes(np.random.bytes(4), "big")
        self._first_packet = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.heartbeat = time.monotonic()              # each turn of the audio thread
        self._device: AudioDevice | None = None     # the open card (audio thread)
        self.xruns = 0                               # of cards closed since
        self.device_error: str | None = None
        rtp.on_packet = self.on_packet
        rtp.start_rtcp(codec.clock_rate, f"intercom-{secrets.token_hex(6)}")   # RFC 7022

    # ----- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        """Start the media thread (on the loop): it owns the RTP socket from now."""
        self.rtp.take_over()
        self._thread = threading.Thread(target=self._device_loop, name="audio-device",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.rtp.on_packet = lambda *args: None
        self.rtp.hand_back()

    # ----- device thread --------------------------------------------------------
    def trouble(self) -> str | None:
        """Why the audio thread is not working (for the watchdog), or None when it is.
        A card that fails and is being retried is working as meant."""
        if self._thread is None or self._stop.is_set():
            return None
        if not self._thread.is_alive():
            return "the audio thread has died"
        late = time.monotonic() - self.heartbeat
        if late > STALL_SECONDS:
            return f"the audio thread has not moved for {late:.0f} s"
        return None

    def _device_loop(self) -> None:
        device: AudioDevice | None = None
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            try:
                if device is None:
                    device = self.open_device()
                    device.open()
                    self._device = device
                frame = device.read()
                self.rtp.drain()
                played = scaled(self.playout.pull(), self.speaker_gain)
                tone = self._speaker_tone
                if tone is not None and not tone.done:
                    played = mix(played, tone.read(len(played)))
                device.write(played)
                recorder = self.recorder
                if recorder is not None:
                    recorder.add_resident(played)
                self._on_mic_frame(frame, played)
            except AudioDeviceError as exc:
                self._report(str(exc))
                if device is not None:
                    device.close()
                    self.xruns += device.xruns          # kept across a reopened device
                device = self._device = None
                self._without_device(DEVICE_RETRY_SECONDS)
        if device is not None:
            device.close()

    def _without_device(self, seconds: float) -> None:
        """Until the card is tried again: packets are still taken (DTMF opens the door
        without a speaker; the jitter buffer keeps only its newest audio), and
        nothing is sent."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.heartbeat = time.monotonic()
            self.rtp.wait_readable(min(left, WITHOUT_DEVICE_TURN))
            self.rtp.drain()

    def _report(self, message: str) -> None:
        log.error("audio device: %s (retrying in %.0f s)", message, DEVICE_RETRY_SECONDS)
        self._to_loop(self._set_device_error, message)

    def _to_loop(self, handler: Callable[..., None], *args: object) -> None:
        try:
            self.loop.call_soon_threadsafe(handler, *args)
        except RuntimeError:                        # the loop is closed: the call is over
            self._stop.set()

    def _set_device_error(self, message: str) -> None:
        self.device_error = message
        self.on_device_error(message)

    # ----- what the media thread does each period ----------------------------------
    def _on_mic_frame(self, frame: Pcm, played: Pcm) -> None:
        chunks = self.mic.process(frame, played)
        recorder = self.recorder
        for chunk in chunks:
            self.mic_level.add(chunk)
            if recorder is not None:
                recorder.add_door(chunk)
            tone = self._call_tone
            if tone is not None and not tone.done:
                chunk = mix(chunk, tone.read(len(chunk)))
            # Key events go alongside the audio, not in its place (as baresip does):
            # the other side goes on hearing us while we key, and a receiver that
            # took the events' frames for lost would conceal them.
            if self._dtmf_out and self.te_pt is not None:
                self._send_dtmf_packet()
            self.rtp.send(self.codec.payload_type, self.codec.encode(chunk), self._ts,
                          marker=self._first_packet)
            self._first_packet = False
            self._ts = (self._ts + self.ts_step) & 0xFFFFFFFF

    def _send_dtmf_packet(self) -> None:
        kind, payload = self._dtmf_out.popleft()
        if kind == "gap":                 # a pause between digits keeps them distinct
            return
        if kind == "start":
            self._event_ts = self._ts
        assert self.te_pt is not None
        self.rtp.send(self.te_pt, payload, self._event_ts, marker=kind == "start")

    def play(self, sound: Sound, to_call: bool = True, to_speaker: bool = True) -> None:
        """Mix ``sound`` (a tone, an announcement) into what the peer hears, what the
        speaker plays, or both (in place of a sound still playing there)."""
        if to_speaker:
            self._speaker_tone = source(sound, self.device_rate)
        if to_call:
            self._call_tone = source(sound, self.codec.sample_rate)

    def send_dtmf(self, digits: str) -> None:
        """Queue RFC 4733 events for ``digits``: one packet per audio frame, beside it."""
        if self.te_pt is None:
            raise ValueError("the peer did not negotiate telephone-event")
        duration = self.te_rate * DTMF_DIGIT_MS // 1000
        for digit in digits:
            payloads = event_payloads(digit, duration, self.te_step)
            self._dtmf_out.append(("start", payloads[0]))
            self._dtmf_out.extend(("event", p) for p in payloads[1:])
            self._dtmf_out.extend(("gap", b"") for _ in range(DTMF_GAP_FRAMES))

    def on_packet(self, pt: int, marker: bool, seq: int, ts: int, ssrc: int,
                  payload: bytes, arrival: float) -> None:
        """An RTP packet from the peer (media thread)."""
        if pt == self.te_pt:
            self._events_seen = True
            if len(payload) >= 4 and self.te_rate == self.codec.clock_rate:
                # the audio this event stands in for, if the phone sends none meanwhile
                self.playout.event_span(ts, ssrc, int.from_bytes(payload[2:4], "big"))
            for digit in self.dtmf_in.feed(payload, ts):
                self._to_loop(self.on_dtmf, digit)
        elif pt == self.codec.payload_type:
            self.playout.put(seq, ts, ssrc, payload, arrival)

    def _on_speaker_audio(self, pcm: Pcm) -> None:
        """Each decoded or concealed frame, at the codec's rate (audio thread)."""
        self.speaker_level.add(pcm)
        if self.inband is not None and not self._events_seen:
            for digit in self.inband.feed(pcm):
                self._to_loop(self.on_dtmf, digit)

    def quality(self) -> Quality | None:
        """The call's quality so far, from RTCP and the jitter buffer."""
        if self.rtp.rtcp is None:
            return None
        jb = self.playout.jb
        return self.rtp.rtcp.summary(self.codec.name, jb.concealed, jb.mean_delay_ms(),
                                     jb.played)

    def stats(self) -> dict[str, object]:
        return {"codec": self.codec.name, "rtp_sent": self.rtp.stats.sent,
                "rtp_received": self.rtp.stats.received,
                "mic_dbfs": round(self.mic_level.dbfs, 1),
                "speaker_dbfs": round(self.speaker_level.dbfs, 1),
                "jitter": self.playout.stats(), "device_error": self.device_error,
                "xruns": self.xruns + (self._device.xruns if self._device is not None else 0),
                "srtp": self.rtp.srtp is not None, "unauthentic": self.rtp.stats.unauthentic}
