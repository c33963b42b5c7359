"""H.264 for video in calls: camera frames to access units and back (libavcodec
through PyAV, the optional ``video`` extra).

The encoder makes what a phone can take (RFC 6184, RFC 6185's advice):
constrained baseline, no B-frames, one slice per picture, low latency
(x264's ``zerolatency``: no frame is held back), the SPS and PPS in front
of every IDR picture so a receiver can join or recover at any keyframe, a
keyframe every few seconds and at once when the peer asks (``keyframe``,
for a PLI or FIR; RFC 4585 6.3.1, RFC 5104 4.3.1). Access units come out
in Annex B form, ready for cext/h264.pyx's ``packetize``.

``VideoFeed`` runs the camera through the encoder on its own thread while
calls show video, and ``VideoSender`` puts the pictures on each call's RTP.
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
from fractions import Fraction
from typing import Any

import numpy as np

from intercom.cext.h264 import START, nal_units, packetize
from intercom.hal.camera import Camera, CameraError, Frame
from intercom.media.rtp import RtpSession

log = logging.getLogger("intercom.video")

SPS_TYPE, PPS_TYPE, IDR_TYPE = 7, 8, 5


class VideoError(RuntimeError):
    """The video codec is not there, or refused a frame."""


def available() -> bool:
    """Whether the H.264 encoder is installed (PyAV with libx264)."""
    try:
        return "libx264" in _av().codecs_available
    except VideoError:
        return False


def _av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise VideoError("video needs PyAV (pip install 'intercom[video]')") from exc
    return av


HARDWARE, SOFTWARE = "h264_v4l2m2m", "libx264"


class H264Encoder:
    """``codec``: libx264 (software), or h264_v4l2m2m (the Pi's hardware encoder
    through V4L2 M2M); VideoError if it does not open."""

    def __init__(self, width: int, height: int, fps: int = 15, bitrate: int = 600_000,
                 keyframe_seconds: int = 4, codec: str = SOFTWARE) -> None:
        av = _av()
        if width % 2 or height % 2:
            raise VideoError(f"{width}x{height}: H.264 in 4:2:0 needs even sides")
        self.width, self.height, self.fps = width, height, fps
        self.codec = codec
        try:
            c = self.context = av.CodecContext.create(codec, "w")
        except (ValueError, av.error.FFmpegError) as exc:
            raise VideoError(f"no H.264 encoder {codec}: {exc}") from exc
        c.width, c.height = width, height
        c.pix_fmt = "yuv420p"
        c.time_base = Fraction(1, fps)
        c.framerate = Fraction(fps, 1)
        c.bit_rate = bitrate
        c.gop_size = fps * keyframe_seconds
        c.max_b_frames = 0
        if codec == SOFTWARE:
            # One thread: at 640x480 x264's threads cost more in hand-overs than they
            # save (2.8 against 3.5 CPU-ms a frame here), and the call's audio wants
            # the other core.
            c.thread_count = 1
            c.options = {"profile": "baseline", "preset": "veryfast", "tune": "zerolatency",
                         "threads": "1",
                         "x264-params": f"repeat-headers=1:annexb=1:slices=1:"
                                        f"keyint={fps * keyframe_seconds}:scenecut=0"}
        try:
            c.open()
        except av.error.FFmpegError as exc:
            raise VideoError(f"H.264 encoder {codec} does not open: {exc}") from exc
        self._pts = 0
        self._key = True
        self.keyframes = 0
        self.parameter_sets = ParameterSets()

    def keyframe(self) -> None:
        """The next picture is an IDR (the peer asked: PLI or FIR)."""
        self._key = True

    def encode(self, frame: Frame) -> list[bytes]:
        """One RGB frame in; the access units it completes (Annex B) out."""
        av = _av()
        if frame.shape != (self.height, self.width, 3):
            raise VideoError(f"a {frame.shape[1]}x{frame.shape[0]} frame for a "
                             f"{self.width}x{self.height} encoder")
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        picture = picture.reformat(format="yuv420p")
        picture.pts = self._pts
        self._pts += 1
        if self._key:
            picture.pict_type = av.video.frame.PictureType.I
            self._key = False
        try:
            out = [self.parameter_sets.complete(bytes(packet))
                   for packet in self.context.encode(picture)]
        except av.error.FFmpegError as exc:
            raise VideoError(f"H.264 encoder {self.codec}: {exc}") from exc
        self.keyframes += sum(is_idr(au) for au in out)
        return out


def is_idr(au: bytes) -> bool:
    return any(n and n[0] & 0x1F == IDR_TYPE for n in nal_units(au))


class ParameterSets:
    """The SPS and PPS in front of every IDR picture (RFC 6184 8.4: a receiver joins
    or recovers there), whatever the encoder does: the newest of each seen is put
    before an IDR access unit that comes without them."""

    def __init__(self) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        self.added = 0

    def complete(self, au: bytes) -> bytes:
        units = nal_units(au)
        types = {n[0] & 0x1F for n in units if n}
        for n in units:
            if n and n[0] & 0x1F == SPS_TYPE:
                self.sps = n
            elif n and n[0] & 0x1F == PPS_TYPE:
                self.pps = n
        if IDR_TYPE not in types or (SPS_TYPE in types and PPS_TYPE in types):
            return au
        if self.sps is None or self.pps is None:
            return au                         # nothing seen yet to put in front
        self.added += 1
        head = b"".join(START + n for n in (self.sps, self.pps)
                        if n[0] & 0x1F not in types)
        return head + au


def open_encoder(choice: str, width: int, height: int, fps: int, bitrate: int,
                 keyframe_seconds: int) -> H264Encoder:
    """The H.264 encoder ``choice`` asks for: ``hardware`` (VideoError when the Pi's
    encoder is not there), ``software``, or ``auto``: hardware where it opens."""
    if choice not in ("auto", "hardware", "software"):
        raise VideoError(f"encoder {choice!r} is not auto, hardware or software")
    if choice != "software":
        try:
            encoder = H264Encoder(width, height, fps, bitrate, keyframe_seconds, HARDWARE)
            log.info("video: the hardware H.264 encoder (V4L2 M2M)")
            return encoder
        except VideoError as exc:
            if choice == "hardware":
                raise VideoError(f"{exc} (the Pi 4 and older have one, as /dev/video11; "
                                 "set [camera] encoder = \"software\" elsewhere)") from exc
            log.debug("video: no hardware H.264 encoder (%s); x264", exc)
    return H264Encoder(width, height, fps, bitrate, keyframe_seconds, SOFTWARE)


class H264Decoder:
    def __init__(self) -> None:
        self.context = _av().CodecContext.create("h264", "r")

    def decode(self, au: bytes) -> list[Frame]:
        """One access unit (Annex B) in; the RGB pictures it gives out. VideoError for
        what the decoder cannot read."""
        av = _av()
        try:
            pictures = self.context.decode(av.Packet(au))
        except av.error.FFmpegError as exc:
            raise VideoError(f"H.264 decoder: {exc}") from exc
        return [p.to_ndarray(format="rgb24") for p in pictures]


MTU = 1200                     # RTP payload bytes: clear of a VPN's or PPPoE's smaller MTU
CLOCK = 90000                  # H.264's RTP clock (RFC 6184 8.2.1)


class VideoSender:
    """One call's video RTP: the feed's access units onto the call's video session.

    A sender that joins mid-stream waits for the next IDR picture (it asks the
    feed for one): the P pictures before it could not be decoded.
    """

    def __init__(self, rtp: RtpSession, payload_type: int) -> None:
        self.rtp = rtp
        self.payload_type = payload_type
        self._ts_base = secrets.randbits(32)        # RFC 3550 5.1: a random start
        self.started = False
        self.frames = 0

    def send(self, payloads: list[bytes], timestamp: int, idr: bool) -> None:
        """One access unit's payloads (media thread); the marker on the last (RFC 6184 5.1)."""
        if not self.started:
            if not idr:
                return
            self.started = True
        ts = (self._ts_base + timestamp) & 0xFFFFFFFF
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            self.rtp.send(self.payload_type, payload, ts, marker=i == last)
        self.frames += 1


class VideoFeed:
    """The camera through one H.264 encoder to every call that shows video.

    One thread takes a picture every 1/fps s while any sender is attached,
    encodes it and packetizes it once, and hands the payloads to each sender:
    two phones ringing with early media cost one encoder. A PLI or FIR from
    any of them makes the next picture an IDR for all (``keyframe``).
    """

    def __init__(self, camera: Camera, fps: int, bitrate: int, keyframe_seconds: int,
                 encoder: str = "software") -> None:
        self.camera = camera
        self.encoder_choice = encoder
        self.fps = fps
        self.bitrate = bitrate
        self.keyframe_seconds = keyframe_seconds
        self._senders: list[VideoSender] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._encoder: H264Encoder | None = None
        self.frames = 0
        self.keyframes_asked = 0
        self.error: str | None = None

    def attach(self, sender: VideoSender) -> None:
        """Start sending to ``sender`` from the next IDR picture (on the loop)."""
        with self._lock:
            if sender not in self._senders:
                self._senders.append(sender)
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="video", daemon=True)
            self._thread.start()
        self.keyframe()

    def detach(self, sender: VideoSender) -> None:
        with self._lock:
            if sender in self._senders:
                self._senders.remove(sender)
            idle = not self._senders
        if idle:
            self.stop()

    def keyframe(self) -> None:
        """The next picture is an IDR (a peer asked, or a sender joined)."""
        self.keyframes_asked += 1
        if self._encoder is not None:
            self._encoder.keyframe()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self._thread = None

    @property
    def keyframes(self) -> int:
        return self._encoder.keyframes if self._encoder is not None else 0

    def _run(self) -> None:
        try:
            if self._encoder is None:
                self._encoder = open_encoder(self.encoder_choice, self.camera.width,
                                             self.camera.height, self.fps, self.bitrate,
                                             self.keyframe_seconds)
            encoder = self._encoder
            encoder.keyframe()
            step = 1.0 / self.fps
            due = time.monotonic()
            outage: str | None = None
            while not self._stop.is_set():
                try:
                    frame = self.camera.frame()
                except CameraError as exc:
                    if outage is None:           # once an outage: the camera restarts itself
                        log.warning("video: %s; the calls keep their sound, the picture "
                                    "comes back with the camera", exc)
                    outage = str(exc)
                    self._stop.wait(step)
                    due = time.monotonic()
                    continue
                if outage is not None:
                    log.info("video: the camera is back")
                    outage = None
                    encoder.keyframe()           # the receivers' pictures start again here
                timestamp = int(time.monotonic() * CLOCK)
                for au in encoder.encode(frame):
                    idr = is_idr(au)
                    payloads = packetize(au, MTU)
                    with self._lock:
                        senders = list(self._senders)
                    for sender in senders:
                        sender.send(payloads, timestamp, idr)
                self.frames += 1
                due += step
                late = time.monotonic() - due
                if late > step:              # fell behind (a slow encoder): skip, not burst
                    due = time.monotonic()
                else:
                    self._stop.wait(max(0.0, -late))
        except (VideoError, OSError) as exc:
            self.error = str(exc)
            log.error("video: %s; calls go on with audio only", exc)
