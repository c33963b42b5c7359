"""Echo: the simulated room that makes it, and the control that removes it.

``EchoPath`` models what a door station's microphone hears of its own
speaker: a bulk delay (the sound card's buffers and the air), a room impulse
response (an exponentially decaying tail, 100-250 ms), a gain, and noise.
The simulated sound card runs it, so echo cancellation and calibration are
tested on a real echo, not a mock.

``EchoControl`` sits on the microphone path of a call: it keeps what the
speaker played, lines it up with the microphone by the playback-to-capture
delay (configured, or measured by ``intercom calibrate``), and runs
libspeexdsp's canceller and then its preprocessor (residual echo
suppression tied to the canceller, noise suppression, optional AGC).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from intercom.cext.echo import EchoCanceller, MicPath, Preprocessor
from intercom.media.signal import Pcm

ALIGN_MARGIN_MS = 10         # start the filter a little before the measured delay


@dataclass(frozen=True)
class EchoPathSpec:
    delay_ms: float = 60.0           # bulk delay, speaker to microphone
    room_ms: float = 150.0           # length of the room response
    gain_db: float = -6.0            # level of the echo against what was played
    noise_dbfs: float = -70.0        # microphone self-noise; below -120: none
    seed: int = 1


class EchoPath:
    """Streams speaker frames through delay, room response and gain, plus noise."""

    def __init__(self, spec: EchoPathSpec, rate: int) -> None:
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        taps = max(1, int(spec.room_ms * rate / 1000))
        decay = np.exp(-6.9 * np.arange(taps) / taps)          # -60 dB over the room length
        response = 0.25 * rng.standard_normal(taps) * decay      # diffuse reflections
        response[0] = 1.0                                        # the direct sound, loudest
        self.response = response / np.sqrt(np.sum(response ** 2)) * 10 ** (spec.gain_db / 20)
        self.delay = int(spec.delay_ms * rate / 1000)
        self._keep = self.delay + taps - 1
        self._history = np.zeros(self._keep)
        self._noise_rng = rng
        self._noise = 32768 * 10 ** (spec.noise_dbfs / 20) if spec.noise_dbfs > -120 else 0.0

    def echo(self, played: Pcm) -> np.ndarray:
        """The echo (float samples) the microphone picks up during this frame."""
        start = len(self._history)
        history = np.concatenate([self._history, played.astype(np.float64)])
        # Sample i heard now left the speaker ``delay`` samples earlier, spread by the room.
        segment = history[start - self._keep:start + len(played) - self.delay]
        out = np.convolve(segment, self.response, mode="valid")
        self._history = history[len(history) - self._keep:]
        if self._noise:
            out = out + self._noise_rng.standard_normal(len(played)) * self._noise
        return out

    def microphone(self, played: Pcm, near: Pcm | None = None) -> Pcm:
        """What the microphone records: the echo of ``played`` plus ``near`` (the visitor)."""
        total = self.echo(played)
        if near is not None:
            total = total + near
        return np.clip(np.round(total), -32768, 32767).astype(np.int16)


class EchoControl:
    """The microphone path's echo canceller and preprocessor, fed with what was played."""

    def __init__(self, rate: int, frame: int, tail_ms: int = 200, delay_ms: float = 0.0,
                 denoise: bool = True, agc: bool = False) -> None:
        self.frame = frame
        self.rate = rate
        self.canceller = EchoCanceller(frame, max(frame, rate * tail_ms // 1000), rate)
        self.preprocessor = Preprocessor(frame, rate)
        self.preprocessor.configure(denoise=denoise, agc=agc)
        self.preprocessor.use_echo_state(self.canceller)
        self.lag = max(0, int((delay_ms - ALIGN_MARGIN_MS) * rate / 1000))
        # The reference for each microphone frame is the speaker signal ``lag`` samples ago.
        self._played = np.zeros(self.lag, dtype=np.int16)

    def restart(self) -> None:
        """A new call: realign the reference, keep what the filter learnt of the room."""
        self._played = np.zeros(self.lag, dtype=np.int16)

    def mic_path(self, device_rate: int, mic_gain: float = 1.0) -> MicPath:
        """A call's microphone path through this canceller and preprocessor, in C,
        fed a sound-card period at a time (``played``/``clean`` are the same steps
        a frame at a time, at the codec's rate)."""
        return MicPath(device_rate, self.rate, self.frame, mic_gain, self.canceller,
                       self.preprocessor, self.lag)

    def played(self, frame: Pcm) -> None:
        """A frame went to the speaker."""
        self._played = np.concatenate([self._played, frame])

    def clean(self, mic: Pcm) -> Pcm:
        """The microphone frame without the speaker's echo (and noise)."""
        if len(self._played) >= self.frame:
            reference = self._played[:self.frame]
            self._played = self._played[self.frame:]
        else:                              # nothing played yet: the reference is silence
            reference = np.zeros(self.frame, dtype=np.int16)
        out = self.canceller.process(np.ascontiguousarray(mic), reference)
        self.preprocessor.process(out)
        return out


@dataclass(frozen=True)
class EchoMeasurement:
    erle_db: float                  # echo return loss enhancement after convergence
    converged_s: float | None       # from the first echo until it stays cancelled


def measure(spec: EchoPathSpec, far: Pcm, rate: int, frame: int, tail_ms: int = 200,
            delay_ms: float | None = None, near: Pcm | None = None,
            control: EchoControl | None = None, settle_s: float = 2.0,
            window_s: float = 0.1, converged_db: float = 20.0) -> EchoMeasurement:
    """Play ``far`` through the echo path and the echo control; how well is it cancelled?

    ERLE is the echo's energy over the residual's, over everything after
    ``settle_s``. Convergence is the time, from the first echo, until the echo
    over a ``window_s`` window is first cancelled by ``converged_db``.
    """
    path = EchoPath(spec, rate)
    if control is None:
        control = EchoControl(rate, frame, tail_ms, spec.delay_ms if delay_ms is None
                              else delay_ms)
    mic_energy, out_energy = [], []
    for start in range(0, len(far) - frame + 1, frame):
        played = far[start:start + frame]
        mic = path.microphone(played, None if near is None else near[start:start + frame])
        control.played(played)
        out = control.clean(mic)
        mic_energy.append(float(np.sum(mic.astype(np.float64) ** 2)))
        out_energy.append(float(np.sum(out.astype(np.float64) ** 2)))
    e_mic, e_out = np.array(mic_energy), np.array(out_energy)
    per_s = rate / frame
    settle = int(settle_s * per_s)
    erle = 10 * np.log10(np.sum(e_mic[settle:]) / max(float(np.sum(e_out[settle:])), 1.0))
    size = max(1, int(window_s * per_s))
    loud = 32768.0 ** 2 * frame * 10 ** (-55 / 10)          # a frame that carries echo
    first = next((k for k, e in enumerate(e_mic) if e > loud), None)
    converged = None
    if first is not None:
        for k in range(first, len(e_mic) - size + 1):
            m, o = e_mic[k:k + size].sum(), e_out[k:k + size].sum()
            if m > loud * size / 4 and 10 * np.log10(m / max(o, 1.0)) >= converged_db:
                converged = (k - first) / per_s
                break
    return EchoMeasurement(float(erle), converged)
