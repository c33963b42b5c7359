"""The station's recordings: visitors' messages and recorded calls, kept in a store.

The core decides when (``RecordMessage``, ``EndMessage``, ``RecordCall``); this
runs the recorders (intercom.media.recorder) on the loop's behalf, keeps what
they made in the recordings store as ``<time>-message-<bell>.opus`` or
``<time>-call-<bell>.opus`` and publishes a ``RecordingEvent`` for each: into
the event log, the hooks (mail attaches the file), the HTTP API.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from intercom.app.eventlog import state_directory
from intercom.app.events import Event, RecordingEvent, RecordingKind
from intercom.app.store import FileStore, Stored, Writing
from intercom.config import Config
from intercom.media.devices import AudioDevice
from intercom.media.recorder import CallRecorder, Message, MessageRecorder
from intercom.media.sounds import Sound
from intercom.media.stream import AudioStream

log = logging.getLogger("intercom.station")


def recordings_store(config: Config) -> FileStore:
    """Where the station keeps its recordings: ``recordings/`` beside the event log."""
    r = config.recordings
    return FileStore(state_directory(config.log.database) / "recordings", ".opus", r.keep,
                     r.max_mb * 2 ** 20)


@dataclass
class _CallRecording:
    stream: AudioStream
    recorder: CallRecorder
    writing: Writing
    button: str
    peer: str


class Recordings:
    def __init__(self, store: FileStore, publish: Callable[[Event], None],
                 message_over: Callable[[], None], station: str) -> None:
        self.store = store
        self.publish = publish
        self.message_over = message_over
        self.station = station
        self.loop = asyncio.get_running_loop()
        self.message: MessageRecorder | None = None
        self.calls: dict[int, _CallRecording] = {}
        self._finishing: set[asyncio.Task[None]] = set()

    def _comments(self, what: str) -> list[str]:
        # Vorbis comments (RFC 7845 5.2): a player shows who made it and what it is.
        return [f"ARTIST={self.station}", f"TITLE={what}"]

    # ----- a visitor's message ----------------------------------------------------------
    def start_message(self, button: str, prompt: Sound | None, seconds: float,
                      silence_seconds: float, open_device: Callable[[], AudioDevice],
                      rate: int, period: int, gain: float) -> None:
        try:
            writing = self.store.writing(f"message-{button}")
        except OSError as exc:
            log.error("no visitor message at %r: the recordings store: %s", button, exc)
            self.loop.call_soon(self.message_over)
            return

        def done(message: Message) -> None:          # the recorder's thread
            stored = self._keep(writing, message)
            try:
                self.loop.call_soon_threadsafe(self._message_done, button, message, stored)
            except RuntimeError:                       # the loop is closed: the station stopped
                pass

        log.info("visitor message at %r: recording up to %g s", button, seconds)
        self.message = MessageRecorder(open_device, rate, period, prompt, seconds,
                                       silence_seconds, writing.file, done, gain,
                                       self._comments(f"message at {button}"))

    @staticmethod
    def _keep(writing: Writing, message: Message) -> Stored | None:
        try:
            if message.voiced:
                return writing.commit()
            writing.discard()
        except OSError as exc:
            log.error("visitor message not kept: %s", exc)
            writing.discard()
        return None

    def _message_done(self, button: str, message: Message, stored: Stored | None) -> None:
        self.message = None
        if stored is not None:
            log.info("visitor message at %r kept: %.1f s (ended by %s)", button,
                     message.seconds, message.ended)
            self.publish(RecordingEvent(RecordingKind.MESSAGE, button, "", stored.name,
                                        message.seconds))
        elif message.ended.startswith("the sound card"):
            log.error("visitor message at %r lost: %s", button, message.ended)
        else:
            log.info("visitor message at %r: nobody spoke (ended by %s); not kept",
                     button, message.ended)
        self.message_over()

    def end_message(self, at_once: bool) -> None:
        if self.message is not None:
            if at_once:
                self.message.stop()
            else:
                self.message.finish()

    # ----- a recorded call ----------------------------------------------------------
    def start_call(self, leg: int, stream: AudioStream, button: str, peer: str) -> None:
        try:
            writing = self.store.writing(f"call-{button or 'incoming'}")
        except OSError as exc:
            log.error("the call with %s is not recorded: the recordings store: %s", peer, exc)
            return
        recorder = CallRecorder(stream.codec.sample_rate, stream.device_rate, writing.file,
                                self._comments(f"call with {peer}"))
        self.calls[leg] = _CallRecording(stream, recorder, writing, button, peer)
        stream.recorder = recorder
        log.info("recording the call with %s", peer)

    def call_over(self, leg: int) -> None:
        """The call's media has stopped: its recording is closed, kept and published
        (off the loop; ``stop`` waits for it)."""
        rec = self.calls.pop(leg, None)
        if rec is not None:
            task = self.loop.create_task(self._finish(rec))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

    async def _finish(self, rec: _CallRecording) -> None:
        rec.stream.recorder = None
        seconds = await asyncio.to_thread(rec.recorder.close)
        try:
            stored = await asyncio.to_thread(rec.writing.commit)
        except OSError as exc:
            log.error("the recording of the call with %s is lost: %s", rec.peer, exc)
            rec.writing.discard()
            return
        self.publish(RecordingEvent(RecordingKind.CALL, rec.button, rec.peer, stored.name,
                                    seconds))

    async def stop(self) -> None:
        self.end_message(at_once=True)
        for leg in list(self.calls):
            self.call_over(leg)
        if self._finishing:
            await asyncio.wait(list(self._finishing), timeout=15.0)
