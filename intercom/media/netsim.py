"""A simulated network between an encoder and a receive path, on a virtual clock.

A ``Trace`` says, for each 20 ms packet, how much later than the fastest
possible it arrives, or that it is lost. Three kinds model what a door
station sees (each seeded, so a run can be repeated):

* ``mild``: 1 % random loss, delays spread evenly over 0-20 ms;
* ``bursty``: 5 % loss in bursts (a Gilbert model, 3 packets long on
  average), delays spread evenly over 0-60 ms;
* ``wifi``: 1 % random loss, 0-8 ms of delay most of the time, and every
  2-5 s a stall of 100-300 ms during which packets queue and then arrive
  together (a Wi-Fi client waking from power save or retrying).

``run`` plays a trace through one of three receivers, all with the same
decoder and concealment, and returns what came out of the speaker with the
mean added delay (time from the fastest possible arrival to the speaker):

* ``adaptive``: ours (intercom.media.playout: jitter buffer with FEC, time
  scaling and a 10 ms sound-card period);
* ``speex``: libspeexdsp's jitter buffer, asked for a frame every 20 ms;
* ``fixed``: a fixed 60 ms buffer, playing packet n at the first packet's
  arrival + 60 ms + n x 20 ms, concealing what is not there by then.

The receiver's card ticks at a random phase to the sender's clock.
"""
from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass

import numpy as np

from intercom.cext import speexjb
from intercom.media.codecs import Codec, Pcm, codec_for, spec
from intercom.media.playout import QUANTILE, Playout

PACKET_MS = 20
TRACES = ("mild", "bursty", "wifi")
RECEIVERS = ("adaptive", "speex", "fixed")
FIXED_MS = 60.0


@dataclass
class Trace:
    name: str
    delays: list[float | None]            # ms beyond the fastest, None: lost
    phase_ms: float = 0.0                 # where the receiver's card clock ticks

    @property
    def loss(self) -> float:
        return sum(d is None for d in self.delays) / len(self.delays)


def make_trace(name: str, packets: int, seed: int = 1) -> Trace:
    rng = random.Random(f"{name}-{seed}")
    delays: list[float | None] = []
    phase = rng.uniform(0, PACKET_MS)
    if name == "mild":
        for _ in range(packets):
            delays.append(None if rng.random() < 0.01 else rng.uniform(0, 20))
    elif name == "bursty":
        bad = False                        # Gilbert: good -> bad 1/57.. bad -> good 1/3
        p_enter, p_leave = 0.05 / 3 / 0.95, 1 / 3
        for _ in range(packets):
            bad = (rng.random() >= p_leave) if bad else (rng.random() < p_enter)
            delays.append(None if bad else rng.uniform(0, 60))
    elif name == "wifi":
        next_stall = rng.uniform(2000, 5000)
        stall_end, stall_start = -1.0, -1.0
        for i in range(packets):
            t = i * PACKET_MS
            if t >= next_stall:
                stall_start, stall_end = t, t + rng.uniform(100, 300)
                next_stall = t + rng.uniform(2000, 5000)
            if rng.random() < 0.01:
                delays.append(None)
            elif t < stall_end:            # queued until the stall ends, then 1 ms apart
                delays.append(stall_end - t + (t - stall_start) / PACKET_MS)
            else:
                delays.append(rng.uniform(0, 8))
    else:
        raise ValueError(f"unknown trace {name!r}; known: {', '.join(TRACES)}")
    return Trace(name, delays, phase)


@dataclass
class Result:
    audio: Pcm
    mean_delay_ms: float
    concealed: int


def encode(speech: Pcm, codec_name: str = "opus") -> tuple[Codec, list[bytes], int]:
    """The speech cut into 20 ms packets: the codec, payloads and samples per packet."""
    codec = codec_for(spec(codec_name).format)
    n = codec.sample_rate * PACKET_MS // 1000
    frames = [speech[i:i + n] for i in range(0, len(speech) - n + 1, n)]
    return codec, [codec.encode(f) for f in frames], n


def run(receiver: str, trace: Trace, payloads: list[bytes], codec_name: str,
        samples: int, quantile: float = QUANTILE, min_delay_ms: float = 0.0) -> Result:
    """The speaker's output for ``payloads`` sent every 20 ms through ``trace``
    (``quantile`` and ``min_delay_ms`` for ours)."""
    codec = codec_for(spec(codec_name).format)     # a fresh decoder
    step = codec.timestamp_step(samples)
    arrivals = [(i * PACKET_MS + d, i) for i, d in enumerate(trace.delays[:len(payloads)])
                if d is not None]
    heapq.heapify(arrivals)
    end_ms = len(payloads) * PACKET_MS + 400.0
    if receiver == "adaptive":
        return _adaptive(codec, payloads, arrivals, step, samples, trace.phase_ms, end_ms,
                         quantile, min_delay_ms)
    if receiver == "speex":
        return _speex(codec, payloads, arrivals, step, samples, trace.phase_ms, end_ms)
    if receiver == "fixed":
        return _fixed(codec, payloads, arrivals, samples, trace.phase_ms, end_ms)
    raise ValueError(f"unknown receiver {receiver!r}; known: {', '.join(RECEIVERS)}")


def _adaptive(codec: Codec, payloads: list[bytes], arrivals: list[tuple[float, int]],
              step: int, samples: int, phase: float, end_ms: float,
              quantile: float, min_delay_ms: float) -> Result:
    now = [0.0]
    period = codec.sample_rate // 100                  # the card moves 10 ms at a time
    index = {id(p): i for i, p in enumerate(payloads)}
    starts: dict[int, float] = {}
    playout = Playout(codec, samples, codec.sample_rate, period, clock=lambda: now[0] / 1000,
                      quantile=quantile, min_delay_ms=min_delay_ms)
    decode = codec.decode

    def decode_and_note(payload: bytes) -> Pcm:
        # played once what is already waiting for the card has gone out
        starts.setdefault(index[id(payload)], now[0] + playout.pending_ms())
        return decode(payload)
    playout.codec = Codec(codec.name, codec.sample_rate, codec.clock_rate,
                          codec.payload_type, codec.encode, decode_and_note, codec.conceal,
                          codec.recover)
    out = []
    t = phase
    while t < end_ms:
        while arrivals and arrivals[0][0] <= t:
            now[0], i = heapq.heappop(arrivals)        # each at its own arrival time
            playout.put(i & 0xFFFF, (i * step) & 0xFFFFFFFF, 0x1234, payloads[i])
        now[0] = t
        out.append(playout.pull())
        t += 10.0
    return _result(out, starts, playout.jb.concealed)


def _speex(codec: Codec, payloads: list[bytes], arrivals: list[tuple[float, int]],
           step: int, samples: int, phase: float, end_ms: float) -> Result:
    jb = speexjb.SpeexJitterBuffer(step)
    starts: dict[int, float] = {}
    out, concealed = [], 0
    t = phase
    while t < end_ms:
        while arrivals and arrivals[0][0] <= t:
            _, i = heapq.heappop(arrivals)
            jb.put(payloads[i], (i * step) & 0xFFFFFFFF, i & 0xFFFF)
        status, payload, ts = jb.get()
        if status == speexjb.OK and payload is not None and ts is not None:
            starts.setdefault(ts // step, t)
            out.append(codec.decode(payload))
        else:
            concealed += 1
            out.append(codec.conceal(samples))
        jb.tick()
        t += PACKET_MS
    return _result(out, starts, concealed)


def _fixed(codec: Codec, payloads: list[bytes], arrivals: list[tuple[float, int]],
           samples: int, phase: float, end_ms: float) -> Result:
    first_time, first = arrivals[0]
    # the first card tick 60 ms after the first packet came plays it
    start = phase + math.ceil((first_time + FIXED_MS - phase) / PACKET_MS) * PACKET_MS
    base = start - first * PACKET_MS                       # when packet 0 would play
    arrived = {i: at for at, i in arrivals}
    starts: dict[int, float] = {}
    out, concealed = [], 0
    for i in range(len(payloads)):
        play = base + i * PACKET_MS
        if play > end_ms:
            break
        if i in arrived and arrived[i] <= play:
            starts[i] = play
            out.append(codec.decode(payloads[i]))
        else:
            concealed += 1
            out.append(codec.conceal(samples))
    return _result(out, starts, concealed)


def _result(out: list[Pcm], starts: dict[int, float], concealed: int) -> Result:
    # added delay: play time minus the fastest possible arrival (the send time)
    delays = [t - i * PACKET_MS for i, t in starts.items()]
    return Result(np.concatenate(out) if out else np.zeros(0, dtype=np.int16),
                  float(np.mean(delays)) if delays else 0.0, concealed)
