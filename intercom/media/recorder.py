"""Recording at the door, as Opus in Ogg: a visitor's message, and calls.

``MessageRecorder`` takes the sound card when nobody answered: it plays the
prompt (the announcements), the start tone, records the microphone until the
longest message, a silence or ``stop``, and plays the end tone. A message in
which no voice was heard is reported as such, so that the station need not
keep (and notify) an empty one.

``CallRecorder`` is fed by a call's audio thread with what the microphone
path sends (the visitor, echo cancelled) and what the speaker plays (the
resident, and the station's own sounds): the door on the left, the resident
on the right. It only
queues them; the encoding runs in its own thread, so the audio thread never
waits for it, and a recorder that falls behind drops periods (counted) rather
than the call's audio.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from intercom.media.devices import AudioDevice, AudioDeviceError
from intercom.media.oggopus import RATES, OggOpusWriter
from intercom.media.signal import Pcm, rms_dbfs
from intercom.media.sounds import Sound, source
from intercom.media.tones import MESSAGE_END, MESSAGE_START

log = logging.getLogger("intercom.audio")
VOICE_DBFS = -45.0          # louder than this is someone speaking (a quiet street is -60)
VOICED_SECONDS = 0.3        # that long in all, for a message to count as said
QUEUED_SECONDS = 10.0       # a call recorder's backlog before it drops some
BATCH_SECONDS = 0.2
BATCH_BLOCKS = 30           # about BATCH_SECONDS of a call's blocks (both sides)


class OpusRecording:
    """PCM into ``out`` as Ogg Opus, one channel per entry of ``rates`` (each side
    at its own rate: a call's microphone at the codec's, its speaker at the
    card's). Every side is resampled to ``rate`` where it differs: ``rate`` if
    Opus takes it, else 48 kHz (for a 44.1 kHz card). Sides are paired in the
    order their samples come, so they stay in step."""

    def __init__(self, out: BinaryIO, rates: tuple[int, ...], rate: int | None = None,
                 comments: list[str] | None = None) -> None:
        from intercom.cext.resample import Resampler
        wanted = rates[0] if rate is None else rate
        self.rate = wanted if wanted in RATES else 48000
        self._resample = [None if r == self.rate else Resampler(r, self.rate) for r in rates]
        self._held = [np.zeros(0, np.int16) for _ in rates]
        self.writer = OggOpusWriter(out, self.rate, len(rates),
                                    bitrate=24000 if self.rate <= 16000 else 32000,
                                    comments=comments)

    @property
    def seconds(self) -> float:
        return self.writer.seconds

    def add(self, side: int, pcm: Pcm) -> None:
        """Samples of one side; written once every side has as many."""
        resampler = self._resample[side]
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        self._held[side] = np.concatenate([self._held[side], pcm if resampler is None
                                           else resampler.process(pcm)])
        n = min(len(held) for held in self._held)
        if n:
            sides = [held[:n] for held in self._held]
            self._held = [held[n:] for held in self._held]
            self.writer.write(sides[0] if len(sides) == 1 else np.stack(sides, axis=1))

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True)
class Message:
    """How a visitor's message went."""

    seconds: float             # recorded
    voiced: bool               # someone spoke in it
    ended: str                 # why it ended: the time, a silence, a press, the card


class MessageRecorder:
    """One visitor's message, in its own thread; ``done`` is called from that
    thread once the card is closed and ``out`` holds the whole recording."""

    def __init__(self, open_device: Callable[[], AudioDevice], rate: int, period: int,
                 prompt: Sound | None, seconds: float, silence_seconds: float,
                 out: BinaryIO, done: Callable[[Message], None], gain: float = 1.0,
                 comments: list[str] | None = None) -> None:
        self.open_device = open_device
        self.rate, self.period = rate, period
        self.prompt = prompt
        self.seconds, self.silence_seconds = seconds, silence_seconds
        self.out, self.done, self.gain = out, done, gain
        self.comments = comments
        self._finish = threading.Event()        # end the message, with the end tone
        self._stop = threading.Event()          # end it and free the card now
        self._thread = threading.Thread(target=self._run, name="message", daemon=True)
        self._thread.start()

    @property
    def recording(self) -> bool:
        return self._thread.is_alive()

    def finish(self) -> None:
        """End the message (a bell press): the end tone plays, the card is freed after."""
        self._finish.set()

    def stop(self) -> None:
        """End the message now and wait for the card to be free (a call needs it)."""
        self._finish.set()
        self._stop.set()
        self._thread.join(timeout=3.0)

    def _play(self, device: AudioDevice, sound: Sound) -> None:
        played = source(sound, self.rate)
        while not played.done and not self._stop.is_set():
            device.read()                       # the prompt's own echo: not the message
            device.write(played.read(self.period))

    def _run(self) -> None:
        recording = OpusRecording(self.out, (self.rate,), comments=self.comments)
        voiced = quiet = 0.0
        ended = "the longest message"
        step = self.period / self.rate
        device: AudioDevice | None = None
        try:
            device = self.open_device()
            device.open()
            if self.prompt is not None:
                self._play(device, self.prompt)
            self._play(device, MESSAGE_START)
            silence = np.zeros(self.period, dtype=np.int16)
            while recording.seconds < self.seconds:
                if self._finish.is_set():
                    ended = "a bell press" if not self._stop.is_set() else "stopped"
                    break
                frame = device.read()
                device.write(silence)
                if self.gain != 1.0:
                    frame = np.clip(np.round(frame * self.gain), -32768, 32767).astype(np.int16)
                recording.add(0, frame)
                if rms_dbfs(frame) >= VOICE_DBFS:
                    voiced += step
                    quiet = 0.0
                else:
                    quiet += step
                if self.silence_seconds and quiet >= self.silence_seconds:
                    ended = f"{self.silence_seconds:g} s of silence"
                    break
            if not self._stop.is_set():
                self._play(device, MESSAGE_END)
        except AudioDeviceError as exc:
            log.error("audio device during the visitor's message: %s", exc)
            ended = f"the sound card: {exc}"
        finally:
            if device is not None:
                device.close()
            recording.close()
            self.done(Message(round(recording.seconds, 1), voiced >= VOICED_SECONDS, ended))


class CallRecorder:
    """Both sides of a call into ``out``: ``add_door`` with what the microphone
    path sends (echo cancelled, at the codec's rate), ``add_resident`` with what
    the speaker plays (at the card's), both from the audio thread; ``close``
    once the call's media has stopped. Each side is resampled to the
    recording's rate (48 kHz for an Opus call, else 16 kHz) and they are paired
    in the order they came, so the two stay in step."""

    def __init__(self, door_rate: int, resident_rate: int, out: BinaryIO,
                 comments: list[str] | None = None) -> None:
        self.recording = OpusRecording(out, (door_rate, resident_rate),
                                       rate=48000 if door_rate == 48000 else 16000,
                                       comments=comments)
        self.dropped = 0                          # batches the encoder could not keep up with
        # The audio thread hands over a batch of blocks at a time (a fifth of a
        # second), so the encoder's thread wakes ten times a second, not 150.
        self._batch: list[tuple[int, Pcm]] = []
        self._queue: queue.Queue[list[tuple[int, Pcm]] | None] = \
            queue.Queue(maxsize=round(QUEUED_SECONDS / BATCH_SECONDS))
        self._thread = threading.Thread(target=self._run, name="call-recorder", daemon=True)
        self._thread.start()

    def _add(self, side: int, pcm: Pcm) -> None:
        self._batch.append((side, pcm))
        if len(self._batch) >= BATCH_BLOCKS:
            self._hand_over()

    def _hand_over(self) -> None:
        try:
            self._queue.put_nowait(self._batch)
        except queue.Full:
            self.dropped += 1
        self._batch = []

    def add_door(self, pcm: Pcm) -> None:
        self._add(0, pcm)

    def add_resident(self, pcm: Pcm) -> None:
        self._add(1, pcm)

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            for side in (0, 1):
                blocks = [pcm for s, pcm in batch if s == side]
                if blocks:
                    self.recording.add(side, np.concatenate(blocks))
        self.recording.close()

    def close(self) -> float:
        """Ends the recording once the audio thread has stopped feeding it (what is
        queued is written first); its seconds."""
        if self._batch:
            self._hand_over()
        self._queue.put(None)
        self._thread.join(timeout=10.0)
        if self.dropped:
            log.warning("call recording: %d batches dropped (the encoder fell behind)",
                        self.dropped)
        return round(self.recording.seconds, 1)
