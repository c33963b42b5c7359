"""Sound devices: ALSA through pyalsaaudio, and a simulated sound card.

A device moves one period (ptime worth of mono int16 frames) per call:
``read`` blocks until the device has captured a period, so whoever loops on
it is paced by the device clock. ``write`` queues a period for playback.
"""
from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Mapping
from abc import ABC, abstractmethod

import numpy as np

from intercom.media.echo import EchoPath, EchoPathSpec
from intercom.media.signal import UNKNOWN_LENGTH, Pcm, read_wav, tone

log = logging.getLogger("intercom.audio")


class AudioDeviceError(RuntimeError):
    """A sound device that cannot be opened or has failed; says which and why."""


class AudioDevice(ABC):
    def __init__(self, rate: int, period: int) -> None:
        self.rate = rate
        self.period = period
        self.xruns = 0

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> Pcm: ...

    @abstractmethod
    def write(self, frame: Pcm) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class SpeakerFile:
    """A simulated speaker's WAV file (mono, 16-bit), growing as it plays.

    Each period's samples go straight to the file, one write each; the header
    says ``UNKNOWN_LENGTH`` (as streaming writers do) until ``close`` puts in
    the real lengths, so the file can be read at any time (``read_wav`` reads
    it to its end) and no period costs more than its one write.
    """

    def __init__(self, path: str, rate: int) -> None:
        self.rate = rate
        self._file = open(path, "wb", buffering=0)
        self._bytes = 0
        self._file.write(self._header(UNKNOWN_LENGTH))

    def _header(self, data_bytes: int) -> bytes:
        riff = UNKNOWN_LENGTH if data_bytes == UNKNOWN_LENGTH else 36 + data_bytes
        return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " +
                struct.pack("<IHHIIHH", 16, 1, 1, self.rate, 2 * self.rate, 2, 16) +
                b"data" + struct.pack("<I", data_bytes))

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._bytes += len(data)

    def close(self) -> None:
        if not self._file.closed:
            os.pwrite(self._file.fileno(), self._header(min(self._bytes, UNKNOWN_LENGTH - 36)), 0)
            self._file.close()


class _Recordings:
    """The simulated speakers' WAV files, kept open across a card's close and reopen.

    A real speaker plays whatever opens the card next (a ringback tone, then
    the call), so its recording goes on in the same file; a file written
    afresh at each open would keep only the last user. The least recently
    used of too many open files is closed.
    """

    KEEP = 32

    def __init__(self) -> None:
        self._open: dict[str, SpeakerFile] = {}
        self._lock = threading.Lock()

    def writer(self, path: str, rate: int) -> SpeakerFile:
        with self._lock:
            w = self._open.pop(path, None)
            if w is not None and w.rate != rate:
                w.close()
                w = None
            if w is None:
                w = SpeakerFile(path, rate)
            self._open[path] = w                    # most recently used last
            while len(self._open) > self.KEEP:
                oldest = next(iter(self._open))
                self._open.pop(oldest).close()
            return w


_RECORDINGS = _Recordings()


class SimulatedSoundCard(AudioDevice):
    """A sound card made of files and a crystal.

    The microphone plays a WAV file (looped) or a generated tone, plus, with
    ``echo``, the speaker's own sound coming back through a simulated room
    (one period later, then the echo path's delay and response); what the
    speaker plays is written to a WAV file, which goes on from one open of
    the card to the next in the same process. Its clock ticks one period every
    period/rate seconds of monotonic time, from absolute deadlines so that it
    does not drift, like a card's sample clock.
    """

    def __init__(self, rate: int, period: int, mic_file: str = "", mic_tone_hz: float = 440.0,
                 speaker_file: str = "", echo: EchoPathSpec | None = None) -> None:
        super().__init__(rate, period)
        self.mic_file = mic_file
        self.mic_tone_hz = mic_tone_hz
        self.speaker_file = speaker_file
        self.echo = echo
        self._echo_path: EchoPath | None = None
        self._echo_due: np.ndarray | None = None   # what the speaker put into the next period
        self._mic: Pcm = np.zeros(0, dtype=np.int16)
        self._pos = 0
        self._speaker: SpeakerFile | None = None
        self._start = 0.0
        self._ticks = 0

    def open(self) -> None:
        if self.mic_file:
            try:
                pcm, rate = read_wav(self.mic_file)
            except (OSError, ValueError) as exc:
                raise AudioDeviceError(f"simulated microphone file {self.mic_file!r}: {exc}") from exc
            if rate != self.rate:
                raise AudioDeviceError(f"simulated microphone file {self.mic_file!r} is {rate} Hz;"
                                       f" the card runs at {self.rate} Hz")
            if len(pcm) < self.period:
                raise AudioDeviceError(f"simulated microphone file {self.mic_file!r} is too short")
            self._mic = pcm
        elif self.mic_tone_hz > 0:
            # A whole number of cycles per second, so the looped tone has no seam.
            self._mic = tone(self.mic_tone_hz, 1.0, self.rate, amplitude=0.25)
        else:
            self._mic = np.zeros(self.period, dtype=np.int16)    # a quiet street
        if self.speaker_file:
            try:
                self._speaker = _RECORDINGS.writer(self.speaker_file, self.rate)
            except OSError as exc:
                raise AudioDeviceError(f"simulated speaker file {self.speaker_file!r}: {exc}") from exc
        self._echo_path = EchoPath(self.echo, self.rate) if self.echo is not None else None
        self._echo_due = None
        self._start = time.monotonic()
        self._ticks = 0

    def read(self) -> Pcm:
        self._ticks += 1
        deadline = self._start + self._ticks * self.period / self.rate
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.2:                      # the reader stalled: that is an overrun
            self.xruns += 1
            self._start = time.monotonic() - self._ticks * self.period / self.rate
        end = self._pos + self.period
        if end <= len(self._mic):
            frame = self._mic[self._pos:end]
        else:
            frame = np.concatenate([self._mic[self._pos:], self._mic[:end - len(self._mic)]])
        self._pos = end % len(self._mic)
        if self._echo_due is not None:           # the room: our own speaker, heard again
            frame = np.clip(np.round(frame + self._echo_due), -32768, 32767).astype(np.int16)
            self._echo_due = None
        return frame.copy()

    def write(self, frame: Pcm) -> None:
        if self._speaker is not None:
            self._speaker.write(frame.astype("<i2").tobytes())
        if self._echo_path is not None:          # heard one period later, through the room
            self._echo_due = self._echo_path.echo(frame)

    def close(self) -> None:
        self._speaker = None                     # the recording stays open for the next


def set_mixer(device: str, levels: Mapping[str, int]) -> list[str]:
    """Set each mixer control of the card behind PCM ``device`` to its percentage.
    Returns the errors (a control the card lacks, no mixer), one line each."""
    import alsaaudio
    card = device.split(":", 1)[1] if ":" in device else "default"
    mixer_device = "default" if card == "default" else f"hw:{card.split(',DEV=')[0]}"
    errors = []
    for control, level in levels.items():
        try:
            alsaaudio.Mixer(control=control, device=mixer_device).setvolume(level)
        except alsaaudio.ALSAAudioError as exc:
            errors.append(f"mixer control {control!r} on {mixer_device}: {exc}")
    return errors


class AlsaSoundCard(AudioDevice):
    """Capture and playback PCMs opened through pyalsaaudio, mono S16_LE."""

    def __init__(self, rate: int, period: int, capture: str = "default",
                 playback: str = "default", periods: int = 4) -> None:
        super().__init__(rate, period)
        self.capture_name = capture
        self.playback_name = playback
        self.periods = periods
        self._capture: object | None = None
        self._playback: object | None = None

    def _open_pcm(self, kind: str, name: str) -> object:
        import alsaaudio
        pcm_type = alsaaudio.PCM_CAPTURE if kind == "capture" else alsaaudio.PCM_PLAYBACK
        try:
            return alsaaudio.PCM(type=pcm_type, mode=alsaaudio.PCM_NORMAL, device=name,
                                 rate=self.rate, channels=1, format=alsaaudio.PCM_FORMAT_S16_LE,
                                 periodsize=self.period, periods=self.periods)
        except alsaaudio.ALSAAudioError as exc:
            raise AudioDeviceError(f"cannot open ALSA {kind} device {name!r}: {exc}") from exc

    def open(self) -> None:
        self._capture = self._open_pcm("capture", self.capture_name)
        try:
            self._playback = self._open_pcm("playback", self.playback_name)
        except AudioDeviceError:
            self.close()
            raise

    def read(self) -> Pcm:
        import alsaaudio
        assert self._capture is not None
        try:
            length, data = self._capture.read()  # type: ignore[attr-defined]
        except alsaaudio.ALSAAudioError as exc:
            raise AudioDeviceError(f"ALSA capture device {self.capture_name!r}: {exc}") from exc
        if length < 0:
            # -EPIPE: overrun. pyalsaaudio has re-prepared the PCM; count it, go on.
            self.xruns += 1
            return np.zeros(self.period, dtype=np.int16)
        frame = np.frombuffer(data, dtype="<i2").astype(np.int16)
        if len(frame) < self.period:
            frame = np.concatenate([frame, np.zeros(self.period - len(frame), dtype=np.int16)])
        return frame[: self.period]

    def write(self, frame: Pcm) -> None:
        import alsaaudio
        assert self._playback is not None
        data = frame.astype("<i2").tobytes()
        try:
            written = self._playback.write(data)  # type: ignore[attr-defined]
        except alsaaudio.ALSAAudioError as exc:
            raise AudioDeviceError(f"ALSA playback device {self.playback_name!r}: {exc}") from exc
        if written < 0:                          # underrun: re-prepared; play this period again
            self.xruns += 1
            self._playback.write(data)  # type: ignore[attr-defined]

    def close(self) -> None:
        for pcm in (self._capture, self._playback):
            if pcm is not None:
                pcm.close()  # type: ignore[attr-defined]
        self._capture = self._playback = None

