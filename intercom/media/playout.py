"""The receive side of a call: jitter buffer, decoder, concealment, time-scale, card rate.

Packets go in from the event loop as they arrive (``put``); the audio
thread takes one device period at a time (``pull``), and each time it runs
short asks the jitter buffer what to play next: a packet to decode, played
as it is, a period faster or a period slower; a lost frame to conceal (from
the next packet's FEC where the codec carries it); or silence. Decoding
happens here, in the audio thread, because concealment and FEC need the
decoder in play order.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from intercom.cext import jitter
from intercom.cext.plc import accelerate, stretch
from intercom.cext.resample import Resampler
from intercom.media.codecs import Codec, Pcm

log = logging.getLogger("intercom.media")
MAX_DELAY_MS = 500.0
VOIP_QUALITY = 3          # libspeexdsp's resampler setting for VoIP (the mic path's too)
QUANTILE = 0.98          # of the packets' delays that the target covers
SPIKE_MAX_MS = 40.0       # recurring delay spikes are covered up to this delay
URGENT_MS = 60.0          # this far above the target, speech is time-scaled too
URGENT_BELOW_MS = 5.0     # and this far below it (packets come too late)


class Playout:
    def __init__(self, codec: Codec, packet_samples: int, device_rate: int,
                 device_frame: int, min_delay_ms: float = 0.0,
                 max_delay_ms: float = MAX_DELAY_MS, quantile: float = QUANTILE,
                 spike_max_ms: float = SPIKE_MAX_MS,
                 clock: Callable[[], float] = time.monotonic,
                 on_audio: Callable[[Pcm], None] | None = None) -> None:
        self.codec = codec
        self.jb = jitter.JitterBuffer(codec.clock_rate, codec.timestamp_step(packet_samples),
                                      min_delay_ms=min_delay_ms, max_delay_ms=max_delay_ms,
                                      quantile=quantile, spike_max_ms=spike_max_ms)
        self.device_rate = device_rate
        self.device_frame = device_frame
        self.clock = clock
        self.on_audio = on_audio                   # every frame decoded, at the codec's rate
        self._up = None if device_rate == codec.sample_rate else \
            Resampler(codec.sample_rate, device_rate, quality=VOIP_QUALITY)
        self._lock = threading.Lock()
        self._pending = np.zeros(0, dtype=np.int16)     # at the card's rate
        self.invalid = 0                                # payloads the decoder refused
        self.operations = [0] * len(jitter.OPERATIONS)

    def put(self, seq: int, ts: int, ssrc: int, payload: bytes,
            arrival: float | None = None) -> None:
        """A packet from the network that arrived at ``arrival`` (the clock's
        seconds; now when not given)."""
        with self._lock:
            self.jb.put(seq, ts, ssrc, payload,
                        (self.clock() if arrival is None else arrival) * 1000.0)

    def event_span(self, ts: int, ssrc: int, duration: int) -> None:
        """A telephone-event packet: the span of the timeline it covers (event loop)."""
        with self._lock:
            self.jb.event_span(ts, ssrc, duration)

    def pull(self) -> Pcm:
        """The next device period of audio (audio thread)."""
        while len(self._pending) < self.device_frame:
            pcm = self._next()
            if self._up is not None:
                pcm = self._up.process(pcm)
            self._pending = np.concatenate([self._pending, pcm])
        out = self._pending[:self.device_frame]
        self._pending = self._pending[self.device_frame:]
        return out

    def _next(self) -> Pcm:
        """One packet's worth of audio at the codec's rate (more or less, when
        the buffer is adjusting)."""
        with self._lock:
            op, payload = self.jb.get(self.clock() * 1000.0)
            samples = self.jb.step * self.codec.sample_rate // self.codec.clock_rate
        self.operations[op] += 1
        rate = self.codec.sample_rate
        if op == jitter.SILENCE:
            return np.zeros(samples, dtype=np.int16)
        if op == jitter.WAIT:
            return self._audio(self.codec.conceal(samples))
        if op == jitter.CONCEAL:
            if payload is not None and self.codec.recover is not None:
                try:
                    return self._audio(self.codec.recover(payload, samples))
                except ValueError:
                    pass
            if payload is not None:
                with self._lock:
                    self.jb.fec_unused()
            return self._audio(self.codec.conceal(samples))
        try:
            if payload is None:
                raise ValueError("no payload")
            pcm = self.codec.decode(payload)
            if not len(pcm):
                raise ValueError("no audio in the packet")
        except ValueError as exc:               # a broken payload: lost, not fatal
            self.invalid += 1
            log.debug("undecodable %s payload: %s", self.codec.name, exc)
            return self._audio(self.codec.conceal(samples))
        # Time-scale changes go into the pauses between words, where nobody hears
        # them, unless the delay is far off the target.
        if op in (jitter.ACCELERATE, jitter.STRETCH):
            jb = self.jb
            if op == jitter.ACCELERATE:
                changed = accelerate(pcm, rate, voiced=jb.filtered_ms > jb.target_ms + URGENT_MS)
            else:
                changed = stretch(pcm, rate,
                                  voiced=jb.filtered_ms < jb.target_ms - URGENT_BELOW_MS)
            if len(changed) != len(pcm):
                with self._lock:
                    jb.adjusted((len(changed) - len(pcm)) * 1000.0 / rate)
            pcm = changed
        return self._audio(pcm)

    def _audio(self, pcm: Pcm) -> Pcm:
        if self.on_audio is not None:
            self.on_audio(pcm)
        return pcm

    def pending_ms(self) -> float:
        """Audio decoded and waiting for the card."""
        return len(self._pending) * 1000.0 / self.device_rate

    def stats(self) -> dict[str, float]:
        jb = self.jb
        return {"target_ms": round(jb.target_ms, 1), "spike_target_ms": round(jb.spike_ms, 1),
                "spikes": jb.spikes, "level_ms": round(jb.level_ms(), 1),
                "mean_delay_ms": round(jb.mean_delay_ms(), 1), "played": jb.played,
                "concealed": jb.concealed, "replaced": jb.replaced,
                "fec_recovered": jb.fec_recovered,
                "late": jb.late, "duplicates": jb.duplicates, "discarded": jb.discarded,
                "accelerated": jb.accelerated, "stretched": jb.stretched,
                "underruns": jb.underruns, "ssrc_changes": jb.ssrc_changes,
                "timestamp_jumps": jb.timestamp_jumps, "realigned": jb.realigned,
                "invalid": self.invalid}
