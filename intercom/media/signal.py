"""Signal generation and analysis: tones, levels, Goertzel tone detection."""
from __future__ import annotations

import math
import struct
import wave

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.int16]
FULL_SCALE = 32768.0


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.3,
         phase: float = 0.0) -> Pcm:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t + phase) * amplitude * 32767).astype(np.int16)


def syllables(freq: float, seconds: float, rate: int, amplitude: float = 0.3,
              on: float = 0.3, off: float = 0.2) -> Pcm:
    """A tone switched on for ``on`` and off for ``off`` seconds in turn, with 10 ms
    ramps: steady enough to measure, broken like speech, so that a noise suppressor
    (which learns whatever never stops as noise) leaves it alone as it would a voice."""
    pcm = tone(freq, seconds, rate, amplitude).astype(np.float64)
    period, ramp = int((on + off) * rate), int(0.01 * rate)
    shape = np.zeros(period)
    shape[:int(on * rate)] = 1.0
    shape[:ramp] = np.linspace(0.0, 1.0, ramp)
    shape[int(on * rate) - ramp:int(on * rate)] = np.linspace(1.0, 0.0, ramp)
    envelope = np.resize(shape, len(pcm))
    return (pcm * envelope).astype(np.int16)


def rms_dbfs(pcm: Pcm) -> float:
    if len(pcm) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) / FULL_SCALE
    return 20 * math.log10(rms) if rms > 1e-6 else -120.0


def tone_dbfs(pcm: Pcm, freq: float, rate: int) -> float:
    """Level of the ``freq`` component, in dBFS of a sine's RMS.

    A single-bin DFT (what Goertzel computes), vectorised with numpy.
    """
    n = len(pcm)
    if n == 0:
        return -120.0
    x = pcm.astype(np.float64) / FULL_SCALE
    phasor = np.exp(-2j * np.pi * freq * np.arange(n) / rate)
    amplitude = 2 * abs(complex(np.dot(x, phasor))) / n
    rms = amplitude / math.sqrt(2)
    return 20 * math.log10(rms) if rms > 1e-6 else -120.0


# A WAV file still being written declares its length as this until it is closed
# (as streaming writers do); its samples run to the end of the file.
UNKNOWN_LENGTH = 0xFFFFFFFF


def read_wav(path: str) -> tuple[Pcm, int]:
    """Mono 16-bit samples and the rate of a WAV file (first channel if stereo).
    A file still being written (a length of ``UNKNOWN_LENGTH``, or one the
    samples already run past) is read to its end. ValueError for what is not a
    16-bit PCM WAV file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = pos + 8
        if chunk == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise ValueError(f"{path}: a format chunk of {size} bytes")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            fmt = (tag, channels, rate, bits)
        elif chunk == b"data":
            if fmt is None:
                raise ValueError(f"{path}: samples before the format chunk")
            tag, channels, rate, bits = fmt
            if tag not in (1, 0xFFFE) or bits != 16 or channels < 1:
                raise ValueError(f"{path}: {bits}-bit WAV of format {tag:#x}, "
                                 "expected 16-bit PCM")
            end = len(data) if size == UNKNOWN_LENGTH or body + size > len(data) \
                else body + size
            frames = (end - body) // (2 * channels)
            pcm = np.frombuffer(data, dtype="<i2", count=frames * channels, offset=body)
            return pcm[::channels].astype(np.int16), rate
        pos = body + size + (size & 1)            # chunks are padded to even sizes
    raise ValueError(f"{path}: no data chunk")


def write_wav(path: str, pcm: Pcm, rate: int) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def loudest_tone_window(pcm: Pcm, freq: float, rate: int,
                        window: float = 1.0) -> tuple[float, float]:
    """(tone dBFS, overall RMS dBFS) of the window where ``freq`` is loudest.

    A recording that carried the tone shows a tone level close to its RMS
    level (the tone dominates); one that did not shows a low tone level.
    """
    size = int(window * rate)
    best = (-120.0, -120.0)
    for start in range(0, max(1, len(pcm) - size + 1), size // 2):
        chunk = pcm[start:start + size]
        level = tone_dbfs(chunk, freq, rate)
        if level > best[0]:
            best = (level, rms_dbfs(chunk))
    return best


SPEECH_TEXT = ("Hello, this is the parcel service. I have a delivery for you. "
               "Could you please open the door? Thank you, have a nice day.")


def tone_levels(pcm: Pcm, freq: float, rate: int, window: float = 1.0,
                part: float = 0.1) -> list[float]:
    """The level of ``freq`` in dBFS in each whole ``window`` seconds of ``pcm``, in order.

    Each window's level is the mean power of its ``part``-second pieces, each
    measured on its own: a jitter buffer that stretches or conceals shifts the
    tone's phase, and one long measurement would cancel itself across the shift.
    """
    size, piece = int(window * rate), max(1, int(part * rate))
    levels = []
    for start in range(0, len(pcm) - size + 1, size):
        chunk = pcm[start:start + size]
        powers = [10 ** (tone_dbfs(chunk[i:i + piece], freq, rate) / 10)
                  for i in range(0, len(chunk) - piece + 1, piece)]
        mean = sum(powers) / len(powers)
        levels.append(10 * math.log10(mean) if mean > 1e-12 else -120.0)
    return levels


def longest_run(levels: list[float], threshold: float) -> tuple[int, int]:
    """(start, length) of the longest run of levels above ``threshold``."""
    best, start = (0, 0), None
    for i, level in enumerate([*levels, -200.0]):
        if level > threshold and start is None:
            start = i
        elif level <= threshold and start is not None:
            if i - start > best[1]:
                best = (start, i - start)
            start = None
    return best


def synthesized_speech(rate: int, text: str = SPEECH_TEXT, voice: str = "en") -> Pcm:
    """Speech made on this machine by espeak-ng (Debian package espeak-ng), at ``rate``.

    For echo and jitter-buffer measurements: real speech, nothing downloaded.
    Raises FileNotFoundError when espeak-ng is not installed.
    """
    import shutil
    import subprocess
    import tempfile

    from intercom.cext.resample import Resampler
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise FileNotFoundError("espeak-ng is not installed (scripts/setup --test installs it)")
    with tempfile.TemporaryDirectory() as work:
        path = f"{work}/speech.wav"
        subprocess.run([binary, "-v", voice, "-s", "150", "-w", path, text], check=True,
                       capture_output=True, timeout=60)
        pcm, source_rate = read_wav(path)
    return pcm if source_rate == rate else Resampler(source_rate, rate).process(pcm)


def find_clip(recording: Pcm, clip: Pcm) -> tuple[float, int]:
    """Where ``clip`` is heard in ``recording`` (both at one rate): the best
    normalised correlation (1.0: the same waveform, whatever its level) and the
    sample it starts at. For checking that an announcement or a message came
    through whole, by FFT cross-correlation against each window's own energy."""
    x = recording.astype(np.float64)
    y = clip.astype(np.float64)
    n, m = len(x), len(y)
    if m == 0 or n < m:
        return 0.0, 0
    size = 1 << (n + m - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(y, size)), size)[:n - m + 1]
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    window = energy[m:] - energy[:n - m + 1]
    score = corr / (np.sqrt(np.maximum(window, 1e-9)) * np.sqrt(float(y @ y)) + 1e-9)
    best = int(np.argmax(score))
    return float(score[best]), best
