"""``intercom calibrate``: measure the echo path of the installed station.

It listens to the room in silence (the noise floor), then plays a
logarithmic sweep through the speaker while recording the microphone, and
finds by cross-correlation how long the speaker's sound takes to come back
(the playback-to-capture delay the echo canceller is aligned by), how loud
it comes back, and how long the room keeps ringing (the canceller's tail).
From those it suggests the canceller's settings and the gains.

Then it plays noise, and keeps that and its recording: at start the echo
canceller learns the room from it, so the first call starts with the echo
already cancelled. (Learning from the sweep does not work: the canceller's
step control tunes itself to a signal of one frequency at a time, and on
speech it then cancels 14 dB where it should cancel 40.)
"""
from __future__ import annotations

import math
import os
import wave
from dataclasses import dataclass

import numpy as np

from intercom.cext.resample import Resampler
from intercom.media.devices import AudioDevice
from intercom.media.echo import EchoControl
from intercom.media.signal import Pcm, rms_dbfs

SWEEP_SECONDS = 1.5
QUIET_SECONDS = 0.5
TAIL_SECONDS = 0.6            # recording after the sweep, for late echo
NOISE_SECONDS = 2.0           # for the canceller to learn from
SWEEP_DBFS = -12.0
TAIL_FLOOR_DB = 30.0          # the room has rung out when the response is this far down


@dataclass(frozen=True)
class Calibration:
    delay_ms: float           # speaker to microphone, device buffers included
    echo_db: float            # echo level against what was played
    room_ms: float            # how long the room response lasts
    noise_dbfs: float         # microphone noise floor
    tail_ms: int              # suggested canceller tail
    speaker_gain_db: float    # suggested change to what is played
    mic_gain_db: float        # suggested change to what is recorded

    def settings(self) -> dict[str, float | int]:
        """What ``intercom calibrate`` writes into [audio]."""
        return {"echo_delay_ms": round(self.delay_ms, 1), "echo_tail_ms": self.tail_ms,
                "speaker_gain_db": round(self.speaker_gain_db, 1),
                "mic_gain_db": round(self.mic_gain_db, 1)}


def sweep(rate: int, seconds: float = SWEEP_SECONDS, dbfs: float = SWEEP_DBFS) -> Pcm:
    """A logarithmic sine sweep from 100 Hz to 0.45 of the sample rate, faded at both ends."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    f0, f1 = 100.0, 0.45 * rate
    k = math.log(f1 / f0)
    phase = 2 * math.pi * f0 * seconds / k * (np.exp(t * k / seconds) - 1)
    fade = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / (0.01 * rate))
    amplitude = 32767 * 10 ** (dbfs / 20) * math.sqrt(2)
    return (np.sin(phase) * fade * amplitude).astype(np.int16)


def training_noise(rate: int, seconds: float = NOISE_SECONDS) -> Pcm:
    """White noise at the sweep's level, faded in and out."""
    n = int(seconds * rate)
    fade = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / (0.01 * rate))
    noise = np.random.default_rng(7).standard_normal(n) * 32768 * 10 ** (SWEEP_DBFS / 20)
    return np.clip(noise * fade, -32768, 32767).astype(np.int16)


def training_part(played: Pcm, recorded: Pcm, rate: int) -> tuple[Pcm, Pcm]:
    """The noise and its recording, out of a whole calibration run."""
    start = int((QUIET_SECONDS + SWEEP_SECONDS + TAIL_SECONDS) * rate)
    return played[start:], recorded[start:len(played)]


def run(device: AudioDevice) -> tuple[Pcm, Pcm]:
    """Play silence, the sweep, silence, noise, silence; return (played, recorded)."""
    rate, period = device.rate, device.period
    quiet = np.zeros(int(QUIET_SECONDS * rate), dtype=np.int16)
    gap = np.zeros(int(TAIL_SECONDS * rate), dtype=np.int16)
    played = np.concatenate([quiet, sweep(rate), gap, training_noise(rate), gap])
    played = np.concatenate([played, np.zeros(-len(played) % period, dtype=np.int16)])
    recorded = []
    device.open()
    try:
        for start in range(0, len(played), period):
            recorded.append(device.read())
            device.write(played[start:start + period])
    finally:
        device.close()
    return played, np.concatenate(recorded)


def analyse(played: Pcm, recorded: Pcm, rate: int) -> Calibration:
    """Delay, level and room length from the sweep and its recording."""
    quiet = int(QUIET_SECONDS * rate)
    noise = rms_dbfs(recorded[:quiet])
    x = played.astype(np.float64)
    y = recorded.astype(np.float64)
    size = 1 << (len(x) + len(y)).bit_length()
    # Cross-correlation by FFT, whitened (PHAT) so the sweep's colour does not smear the peak.
    cross = np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size))
    response = np.fft.irfft(cross / np.maximum(np.abs(cross), 1e-9), size)[:len(y)]
    # The delay is the onset of the response (the direct sound), not its largest tap.
    magnitude = np.abs(response)
    strongest = int(np.argmax(magnitude))
    lag = int(np.argmax(magnitude[:strongest + 1] >= 0.5 * magnitude[strongest]))
    # The echo's level: its energy over the sweep's (the noise's energy taken out).
    start, end = quiet + lag, quiet + lag + int(SWEEP_SECONDS * rate)
    noise_power = (32768 * 10 ** (noise / 20)) ** 2
    echo_rms = math.sqrt(max(float(np.mean(y[start:end] ** 2)) - noise_power, 1e-9))
    sweep_rms = float(np.sqrt(np.mean(x[quiet:quiet + int(SWEEP_SECONDS * rate)] ** 2)))
    echo_db = 20 * math.log10(max(echo_rms, 1e-9) / sweep_rms)
    # Room length: where the response's envelope (10 ms blocks) stays TAIL_FLOOR_DB down.
    envelope = np.abs(response[lag:lag + rate])
    block = max(1, rate // 100)
    blocks = [float(np.max(envelope[i:i + block])) for i in range(0, len(envelope), block)]
    peak = blocks[0] if blocks else 1.0
    floor = peak * 10 ** (-TAIL_FLOOR_DB / 20)
    last = max((i for i, b in enumerate(blocks) if b >= floor), default=0)
    room_ms = (last + 1) * 1000 * block / rate
    tail = int(min(500, max(200, math.ceil((room_ms + 50) / 50) * 50)))
    # Gains: keep the echo at or below the played level (the canceller is linear and
    # a louder echo clips), and bring a quiet microphone up toward -30 dBFS speech.
    speaker_gain = min(0.0, -6.0 - echo_db) if echo_db > -6 else 0.0
    mic_gain = 0.0 if echo_db > -20 else min(20.0, -20.0 - echo_db)
    return Calibration(lag * 1000 / rate, echo_db, room_ms, noise, tail, speaker_gain, mic_gain)


def save_training(path: str, played: Pcm, recorded: Pcm, rate: int) -> None:
    """Keep the noise and its recording (a stereo WAV: played, recorded), written
    atomically, for ``train``."""
    played, recorded = training_part(played, recorded, rate)
    n = min(len(played), len(recorded))
    stereo = np.stack([played[:n], recorded[:n]], axis=1)
    tmp = f"{path}.tmp"
    with wave.open(tmp, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(stereo.astype("<i2").tobytes())
    os.replace(tmp, path)


def train(control: EchoControl, path: str) -> bool:
    """Run the saved noise through ``control`` as if it had just been played.

    Returns False when there is nothing usable to learn from (the file is
    missing or broken); the canceller then learns in the first call instead.
    """
    try:
        with wave.open(path, "rb") as w:
            if w.getnchannels() != 2 or w.getsampwidth() != 2:
                return False
            rate = w.getframerate()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    except (OSError, EOFError, wave.Error, ValueError):
        return False
    played = np.ascontiguousarray(data[:, 0], dtype=np.int16)
    recorded = np.ascontiguousarray(data[:, 1], dtype=np.int16)
    if rate != control.rate:
        played = Resampler(rate, control.rate).process(played)
        recorded = Resampler(rate, control.rate).process(recorded)
    frame = control.frame
    for start in range(0, min(len(played), len(recorded)) - frame + 1, frame):
        control.played(played[start:start + frame])
        control.clean(recorded[start:start + frame])
    control.restart()
    return True
