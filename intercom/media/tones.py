"""The station's tones, generated as they play (no sound files).

A tone is a list of segments (frequencies and a duration; no frequencies is a
pause), played once or repeated. Ringback and busy follow the country's
telephone tones, so a visitor hears what a phone call sounds like there
(cadences from ITU-T E.180 Supplement 2). The others are the station's own:
a rising chime when the door opens, a low double tone for a wrong code,
three short beeps before a call reaches its maximum time, two beeps when a
recorded call starts, an answering machine's beeps around a visitor's message.

``ToneSource`` renders one tone at one sample rate a frame at a time; it is
mixed into a call's audio (``AudioStream.play``) or played on the card alone
(``sounds.SoundPlayer``), like the announcements that may stand in for a tone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from intercom.media.signal import Pcm

LEVEL_DBFS = -16.0          # each tone's RMS level: clear on a small speaker, not shrill
FADE_MS = 4                 # ramps at each segment's edges, so tones start without a click


@dataclass(frozen=True)
class Tone:
    name: str
    segments: tuple[tuple[tuple[float, ...], float], ...]   # (frequencies Hz, seconds)
    repeat: bool = False

    @property
    def seconds(self) -> float:
        return sum(s for _, s in self.segments)


def _cadence(name: str, freqs: tuple[float, ...], *on_off: float) -> Tone:
    """A repeating tone: ``on_off`` alternates seconds on and seconds off."""
    return Tone(name, tuple((freqs if i % 2 == 0 else (), s) for i, s in enumerate(on_off)),
                repeat=True)


RINGBACK = {
    "at": _cadence("ringback", (420,), 1.0, 5.0),
    "au": _cadence("ringback", (400, 450), 0.4, 0.2, 0.4, 2.0),
    "ch": _cadence("ringback", (425,), 1.0, 4.0),
    "de": _cadence("ringback", (425,), 1.0, 4.0),
    "es": _cadence("ringback", (425,), 1.5, 3.0),
    "fr": _cadence("ringback", (440,), 1.5, 3.5),
    "gb": _cadence("ringback", (400, 450), 0.4, 0.2, 0.4, 2.0),
    "it": _cadence("ringback", (425,), 1.0, 4.0),
    "jp": _cadence("ringback", (400,), 1.0, 2.0),
    "nl": _cadence("ringback", (425,), 1.0, 4.0),
    "us": _cadence("ringback", (440, 480), 2.0, 4.0),
}
BUSY = {
    "at": _cadence("busy", (420,), 0.4, 0.4),
    "au": _cadence("busy", (425,), 0.375, 0.375),
    "ch": _cadence("busy", (425,), 0.5, 0.5),
    "de": _cadence("busy", (425,), 0.48, 0.48),
    "es": _cadence("busy", (425,), 0.2, 0.2),
    "fr": _cadence("busy", (440,), 0.5, 0.5),
    "gb": _cadence("busy", (400,), 0.375, 0.375),
    "it": _cadence("busy", (425,), 0.5, 0.5),
    "jp": _cadence("busy", (400,), 0.5, 0.5),
    "nl": _cadence("busy", (425,), 0.5, 0.5),
    "us": _cadence("busy", (480, 620), 0.5, 0.5),
}
COUNTRIES = tuple(sorted(RINGBACK))
DOOR_OPENED = Tone("door opened", (((660,), 0.12), ((880,), 0.12), ((1320,), 0.25)))
WRONG_CODE = Tone("wrong code", (((330,), 0.2), ((), 0.1), ((330,), 0.2)))
CALL_ENDING = Tone("call ending", (((1400,), 0.1), ((), 0.1), ((1400,), 0.1), ((), 0.1),
                                   ((1400,), 0.1)))
CALL_RECORDED = Tone("call recorded", (((1200,), 0.4), ((), 0.2), ((1200,), 0.4)))
# A visitor's message: the long beep of an answering machine, then a short double one.
MESSAGE_START = Tone("message start", (((1000,), 0.6),))
MESSAGE_END = Tone("message end", (((1000,), 0.12), ((), 0.08), ((1000,), 0.12)))


class ToneSource:
    """One tone rendered at ``rate``, ``read`` a frame at a time; silence once it is done."""

    def __init__(self, tone: Tone, rate: int) -> None:
        self.tone = tone
        self.rate = rate
        self.amplitude = 32768 * math.sqrt(2) * 10 ** (LEVEL_DBFS / 20)     # a sine's peak
        self._segment = 0
        self._pos = 0                    # samples into the segment
        self._t = 0                      # samples since the start, for the phase
        self.done = False

    def read(self, n: int) -> Pcm:
        out = np.zeros(n, dtype=np.float64)
        filled = 0
        while filled < n and not self.done:
            freqs, seconds = self.tone.segments[self._segment]
            length = max(1, round(seconds * self.rate))
            take = min(n - filled, length - self._pos)
            if freqs:
                t = (self._t + np.arange(take)) / self.rate
                wave = sum(np.sin(2 * math.pi * f * t) for f in freqs) / len(freqs)
                i = self._pos + np.arange(take)
                ramp = max(1, self.rate * FADE_MS // 1000)
                envelope = np.minimum(1.0, np.minimum(i + 1, length - i) / ramp)
                out[filled:filled + take] = self.amplitude * wave * envelope
            filled += take
            self._pos += take
            self._t += take
            if self._pos >= length:
                self._pos = 0
                self._segment += 1
                if self._segment == len(self.tone.segments):
                    self._segment = 0
                    self.done = not self.tone.repeat
        return out.astype(np.int16)


def mix(frame: Pcm, tone: Pcm) -> Pcm:
    out: Pcm = np.clip(frame.astype(np.int32) + tone, -32768, 32767).astype(np.int16)
    return out
