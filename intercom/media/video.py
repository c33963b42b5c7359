"""H.264 for video in calls: camera frames to access units and back (libavcodec
through PyAV, the optional ``video`` extra).

The encoder makes what a phone can take (RFC 6184, RFC 6185's advice):
constrained baseline, no B-frames, one slice per picture, low latency
(x264's ``zerolatency``: no frame is held back), the SPS and PPS in front
of every IDR picture so a receiver can join or recover at any keyframe, a
keyframe every few seconds and at once when the peer asks (``keyframe``,
for a PLI or FIR; RFC 4585 6.3.1, RFC 5104 4.3.1). Access units come out
in Annex B form, ready for cext/h264.pyx's ``packetize``. On the Pi the
hardware encoder (V4L2 M2M) takes libx264's place when wiring video into
calls (issue 19).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from intercom.cext.h264 import nal_units
from intercom.hal.camera import Frame

SPS_TYPE, PPS_TYPE, IDR_TYPE = 7, 8, 5


class VideoError(RuntimeError):
    """The video codec is not there, or refused a frame."""


def _av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise VideoError("video needs PyAV (pip install 'intercom[video]')") from exc
    return av


class H264Encoder:
    def __init__(self, width: int, height: int, fps: int = 15, bitrate: int = 600_000,
                 keyframe_seconds: int = 4) -> None:
        av = _av()
        if width % 2 or height % 2:
            raise VideoError(f"{width}x{height}: H.264 in 4:2:0 needs even sides")
        self.width, self.height, self.fps = width, height, fps
        c = self.context = av.CodecContext.create("libx264", "w")
        c.width, c.height = width, height
        c.pix_fmt = "yuv420p"
        c.time_base = Fraction(1, fps)
        c.framerate = Fraction(fps, 1)
        c.bit_rate = bitrate
        c.gop_size = fps * keyframe_seconds
        c.max_b_frames = 0
        c.options = {"profile": "baseline", "preset": "veryfast", "tune": "zerolatency",
                     "x264-params": f"repeat-headers=1:annexb=1:slices=1:"
                                    f"keyint={fps * keyframe_seconds}:scenecut=0"}
        self._pts = 0
        self._key = True
        self.keyframes = 0

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
        out = [bytes(packet) for packet in self.context.encode(picture)]
        self.keyframes += sum(any(n and n[0] & 0x1F == IDR_TYPE for n in nal_units(au))
                              for au in out)
        return out


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
