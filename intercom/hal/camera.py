"""Cameras behind one interface, as the board is: ``open``, ``frame``, ``close``.

``SimulatedCamera`` stands in on the desktop and in CI: a moving test pattern
(colour bars that shift with each frame), the frame's number and the time
written on it, and the number again as a row of black and white blocks
along the top, 32 bits, most significant first, which ``read_counter``
reads back even from a JPEG. The Pi camera and USB webcams come next
(issue 19); until then a station without a camera works audio-only.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]            # height x width x 3, RGB
BARS = np.array([[235, 235, 235], [235, 235, 16], [16, 235, 235], [16, 235, 16],
                 [235, 16, 235], [235, 16, 16], [16, 16, 235], [16, 16, 16]], dtype=np.uint8)
BITS = 32
# A 3x5 font for the digits and the colon
GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001001001", "8": "111101111101111",
    "9": "111101111001111", ":": "000010000010000", " ": "000000000000000",
}


class CameraError(RuntimeError):
    """A camera that cannot be opened or has failed; says which and why."""


class Camera(ABC):
    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def frame(self) -> Frame:
        """The newest picture."""

    @abstractmethod
    def close(self) -> None: ...


def block_size(width: int) -> int:
    """The side of one counter block, so that 32 fit across with a margin."""
    return max(2, (width - 16) // BITS)


def read_counter(frame: Frame) -> int:
    """The frame number the simulated camera wrote along the top of ``frame``."""
    side = block_size(frame.shape[1])
    value = 0
    for bit in range(BITS):
        x = 8 + bit * side
        patch = frame[8 + side // 4:8 + 3 * side // 4, x + side // 4:x + 3 * side // 4]
        value = (value << 1) | int(patch.mean() > 128)
    return value


def _text(frame: Frame, text: str, x: int, y: int, scale: int) -> None:
    for i, char in enumerate(text):
        glyph = GLYPHS.get(char, GLYPHS[" "])
        for row in range(5):
            for col in range(3):
                if glyph[row * 3 + col] == "1":
                    top, left = y + row * scale, x + (i * 4 + col) * scale
                    frame[top:top + scale, left:left + scale] = 255


class SimulatedCamera(Camera):
    """The moving test pattern (see the module's docstring), one new frame per call."""

    def __init__(self, width: int = 640, height: int = 480) -> None:
        super().__init__(width, height)
        if width < 8 + BITS * 2 + 8 or height < 64:
            raise CameraError(f"a simulated camera of {width}x{height} is too small for its "
                              "test pattern (at least 88x64)")
        self.count = 0
        self._lock = threading.Lock()
        self._bars = BARS[(np.arange(width) * len(BARS)) // width]

    def open(self) -> None:
        pass

    def frame(self) -> Frame:
        with self._lock:
            self.count += 1
            n = self.count
        out = np.empty((self.height, self.width, 3), dtype=np.uint8)
        out[:] = np.roll(self._bars, 4 * n, axis=0)[np.newaxis, :, :]
        side = block_size(self.width)
        out[:16 + side] = 0
        for bit in range(BITS):
            if (n >> (BITS - 1 - bit)) & 1:
                x = 8 + bit * side
                out[8:8 + side, x:x + side] = 255
        scale = max(1, self.height // 60)
        band = self.height - 7 * scale
        out[band - scale:] = 0
        _text(out, f"{n:08d} {time.strftime('%H:%M:%S')}", 4 * scale, band, scale)
        return out

    def close(self) -> None:
        pass


def open_camera(source: str, width: int, height: int) -> Camera | None:
    """The configured camera, opened; None for ``none``. CameraError says why not."""
    if source == "none":
        return None
    if source == "simulated":
        camera = SimulatedCamera(width, height)
        camera.open()
        return camera
    raise CameraError(f"camera source {source!r} is not supported yet; use simulated or none")
