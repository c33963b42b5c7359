"""What the station plays: generated tones, announcements from sound files, or
one after the other.

An announcement is a ``Clip``: a WAV (16-bit PCM) or Ogg Opus file, read once
at start and resampled to whatever plays it (the card, or a call's codec).
The station finds them by event in ``sounds.directory``: first in the
subdirectory of the station's language, then in the directory itself
(``sounds/de/ringing.opus``, then ``sounds/ringing.wav``). An event without a
file keeps its generated tone, and a file that does not load is reported and
the tone plays instead: a visitor always hears something.

``source(sound, rate)`` gives what a player reads a frame at a time.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from intercom.media.devices import AudioDevice, AudioDeviceError
from intercom.media.signal import Pcm, read_wav
from intercom.media.tones import Tone, ToneSource

log = logging.getLogger("intercom.audio")

# The announcements, by the file name the station looks for, and when each plays.
EVENTS = {
    "ringing": "to the visitor once the bell is pressed, before the ringback tone",
    "nobody_answered": "to the visitor when no one answered (instead of the busy tone)",
    "leave_message": "to the visitor before a message is recorded (after nobody_answered)",
    "door_opened": "to both sides when a code opens the door (instead of the chime)",
    "locked_out": "to the resident when code entry is locked (instead of the wrong-code tone)",
    "call_recorded": "to both sides when a recorded call starts",
}
EXTENSIONS = (".opus", ".ogg", ".wav")
MAX_SECONDS = 120


class SoundError(ValueError):
    """A sound file that cannot be played."""


@dataclass(frozen=True, eq=False)
class Clip:
    """A recorded sound: mono 16-bit samples at ``rate``."""

    name: str
    path: str
    pcm: Pcm
    rate: int
    _at: dict[int, Pcm] = field(default_factory=dict, repr=False)

    @property
    def seconds(self) -> float:
        return len(self.pcm) / self.rate

    def at(self, rate: int) -> Pcm:
        """The samples resampled to ``rate`` (kept for the next time)."""
        if rate == self.rate:
            return self.pcm
        if rate not in self._at:
            from intercom.cext.resample import Resampler
            resampler = Resampler(self.rate, rate)
            # The resampler holds back a few samples: flush them with silence.
            out = np.concatenate([resampler.process(self.pcm),
                                  resampler.process(np.zeros(self.rate // 50, np.int16))])
            self._at[rate] = out[:len(self.pcm) * rate // self.rate]
        return self._at[rate]


@dataclass(frozen=True)
class Sequence:
    """Sounds played one after the other (an announcement, then the ringback)."""

    name: str
    parts: tuple[Tone | Clip, ...]


Sound = Tone | Clip | Sequence


def then(first: Tone | Clip | None, second: Tone | Clip | None) -> Sound | None:
    """``first``, then ``second``: either alone if the other is None."""
    if first is None or second is None:
        return first or second
    return Sequence(f"{first.name}, {second.name}", (first, second))


class ClipSource:
    def __init__(self, clip: Clip, rate: int) -> None:
        self.pcm = clip.at(rate)
        self.pos = 0
        self.done = len(self.pcm) == 0

    def read(self, n: int) -> Pcm:
        out = np.zeros(n, dtype=np.int16)
        chunk = self.pcm[self.pos:self.pos + n]
        out[:len(chunk)] = chunk
        self.pos += len(chunk)
        self.done = self.pos >= len(self.pcm)
        return out


class SequenceSource:
    def __init__(self, sequence: Sequence, rate: int) -> None:
        self.rate = rate
        self.parts = list(sequence.parts)
        self.current = _one(self.parts.pop(0), rate)
        self.done = False

    def read(self, n: int) -> Pcm:
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        while filled < n and not self.done:
            # Each part is read only as far as it goes, so the next starts on time.
            if isinstance(self.current, ClipSource):
                take = min(n - filled, len(self.current.pcm) - self.current.pos)
            else:
                take = n - filled
            if take > 0:
                out[filled:filled + take] = self.current.read(take)
                filled += take
            if self.current.done:
                if not self.parts:
                    self.done = True
                else:
                    self.current = _one(self.parts.pop(0), self.rate)
        return out


def _one(sound: Tone | Clip, rate: int) -> ToneSource | ClipSource:
    return ToneSource(sound, rate) if isinstance(sound, Tone) else ClipSource(sound, rate)


SoundSource = ToneSource | ClipSource | SequenceSource


def source(sound: Sound, rate: int) -> SoundSource:
    """What plays ``sound`` at ``rate``, read a frame at a time."""
    if isinstance(sound, Sequence):
        return SequenceSource(sound, rate)
    return _one(sound, rate)


# ----- files --------------------------------------------------------------------
def load_clip(path: str | Path, name: str = "") -> Clip:
    """The sound in ``path`` (WAV or Ogg Opus). SoundError says what is wrong."""
    path = str(path)
    try:
        if path.endswith(".wav"):
            pcm, rate = read_wav(path)
        else:
            from intercom.media.oggopus import read_opus
            pcm, rate = read_opus(path)
    except OSError as exc:
        raise SoundError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        message = str(exc)
        raise SoundError(message if message.startswith(path) else f"{path}: {message}") \
            from None
    if not 8000 <= rate <= 48000:
        raise SoundError(f"{path}: {rate} Hz; 8000 to 48000 Hz can be played")
    if len(pcm) == 0:
        raise SoundError(f"{path}: no sound in it")
    if len(pcm) > MAX_SECONDS * rate:
        raise SoundError(f"{path}: {len(pcm) / rate:.0f} s long; at most {MAX_SECONDS} s")
    return Clip(name or Path(path).stem, path, pcm, rate)


def find_announcements(directory: str | Path, language: str) -> tuple[dict[str, Clip],
                                                                       list[str]]:
    """The announcements in ``directory`` for ``language``, by event, and one line
    for each file that is no use (it did not load, or its name is no event)."""
    found: dict[str, Clip] = {}
    problems: list[str] = []
    root = Path(directory)
    if not str(directory):
        return found, problems
    if not root.is_dir():
        return found, [f"{root} is not a directory; the generated tones play"]
    for place in (root / language, root):
        if not place.is_dir():
            continue
        for path in sorted(place.iterdir()):
            if path.is_dir() or path.name.startswith("."):
                continue
            if path.suffix not in EXTENSIONS or path.stem not in EVENTS:
                problems.append(f"{path}: not an announcement; the files are named "
                                f"{', '.join(EVENTS)} with {', '.join(EXTENSIONS)}")
                continue
            if path.stem in found:
                if Path(found[path.stem].path).parent == place:
                    problems.append(f"{path}: {found[path.stem].path} is played instead")
                continue                        # the language's own comes first
            try:
                found[path.stem] = load_clip(path)
            except SoundError as exc:
                problems.append(f"{exc}; the generated tone plays instead")
    return found, problems


class SoundPlayer:
    """Plays a sound on the sound card from its own thread, until it ends or ``stop``
    (ringback while the targets ring, busy once the station gives up).

    Capture is read and dropped (the card's clock paces the tone). A card that
    will not open is reported once; the tone is then simply not heard.
    """

    def __init__(self, open_device: Callable[[], AudioDevice], rate: int, period: int,
                 sound: Sound, seconds: float | None = None) -> None:
        self.open_device = open_device
        self.sound = sound
        self.source = source(sound, rate)
        self.period = period
        self.limit = None if seconds is None else round(seconds * rate / period)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sound-{sound.name}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            device = self.open_device()
            device.open()
        except AudioDeviceError as exc:
            log.error("audio device for the %s sound: %s", self.sound.name, exc)
            return
        try:
            periods = 0
            while not self._stop.is_set() and not self.source.done and \
                    (self.limit is None or periods < self.limit):
                device.read()
                device.write(self.source.read(self.period))
                periods += 1
        except AudioDeviceError as exc:
            log.error("audio device during the %s sound: %s", self.sound.name, exc)
        finally:
            device.close()

    @property
    def playing(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop and wait for the card to be closed, so a call can open it."""
        self._stop.set()
        self._thread.join(timeout=2.0)
