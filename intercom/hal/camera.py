"""Cameras behind one interface, as the board is: ``open``, ``frame``, ``close``.

``SimulatedCamera`` stands in on the desktop and in CI: a moving test pattern
(colour bars that shift with each frame), the frame's number and the time
written on it, and the number again as a row of black and white blocks
along the top, 32 bits, most significant first, which ``read_counter``
reads back even from a JPEG.

The Pi camera and USB webcams are read through a child process that writes
raw pictures to a pipe (``PipeCamera``): ``rpicam-vid`` (libcamera, on
Raspberry Pi OS) for the Pi camera, ``ffmpeg`` reading V4L2 for a webcam. The
camera stack stays out of the station's process, and when it fails or the
webcam is unplugged, the failure is reported and the process started again
while the station goes on audio-only. ``auto`` takes the board profile's
camera, else the first USB webcam, else none.
"""
from __future__ import annotations

import collections
import fcntl
import logging
import os
import shutil
import struct
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger("intercom.camera")

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


def jpeg(frame: Frame, quality: int = 85) -> bytes:
    """``frame`` as a JPEG file (a snapshot of the visitor)."""
    import io

    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(frame, "RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def i420_to_rgb(data: bytes | bytearray | memoryview, width: int, height: int) -> Frame:
    """A planar YUV 4:2:0 picture (BT.601, limited range, as cameras give it) in RGB."""
    size = width * height
    if len(data) < size * 3 // 2:
        raise CameraError(f"a YUV 4:2:0 picture of {width}x{height} needs {size * 3 // 2} "
                          f"bytes, not {len(data)}")
    try:
        import av                         # libswscale: a few times faster than numpy
        planes = np.frombuffer(data, np.uint8, size * 3 // 2).reshape(height * 3 // 2, width)
        picture: Any = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        out: Frame = picture.to_ndarray(format="rgb24")
        return out
    except ImportError:
        return i420_to_rgb_numpy(data, width, height)


def i420_to_rgb_numpy(data: bytes | bytearray | memoryview, width: int, height: int) -> Frame:
    """``i420_to_rgb`` without PyAV."""
    size = width * height
    y = np.frombuffer(data, np.uint8, size).reshape(height, width).astype(np.float32)
    quarter = (width // 2) * (height // 2)
    u, v = (np.frombuffer(data, np.uint8, quarter, size + k * quarter)
            .reshape(height // 2, width // 2).repeat(2, 0).repeat(2, 1)
            .astype(np.float32) - 128.0 for k in (0, 1))
    luma = (y - 16.0) * 1.164
    rgb = np.stack((luma + 1.596 * v, luma - 0.392 * u - 0.813 * v, luma + 2.017 * u), axis=2)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


class PipeCamera(Camera):
    """Pictures from a child process's standard output, one raw picture after the
    other (``rgb24``: 3 bytes a pixel; ``yuv420p``: 1.5). A reader thread keeps the
    newest; ``frame`` gives it, or CameraError once none came for ``stale_seconds``.
    When the process ends, what it said last is reported and it is started again,
    1 s later, then 2, 4 ... up to a minute, until ``close``.
    """

    def __init__(self, name: str, command: Sequence[str], width: int, height: int,
                 pixel_format: str = "rgb24", first_picture_seconds: float = 15.0,
                 stale_seconds: float = 3.0, longest_pause: float = 60.0) -> None:
        super().__init__(width, height)
        if pixel_format not in ("rgb24", "yuv420p"):
            raise CameraError(f"{name}: pixel format {pixel_format!r} is not rgb24 or yuv420p")
        self.name = name
        self.command = list(command)
        self.pixel_format = pixel_format
        self.picture_bytes = width * height * 3 if pixel_format == "rgb24" \
            else width * height * 3 // 2
        self.first_picture_seconds = first_picture_seconds
        self.stale_seconds = stale_seconds
        self.longest_pause = longest_pause
        self.pictures = 0
        self.restarts = 0
        self.problem: str | None = None
        self._newest: tuple[float, bytes] | None = None
        self._got = threading.Condition()
        self._stop = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._said: collections.deque[str] = collections.deque(maxlen=4)
        self._thread: threading.Thread | None = None
        self._drainer: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    def open(self) -> None:
        """Start the process and wait for its first picture; CameraError with what it
        said if none comes."""
        self._stop.clear()
        self._start()
        self._thread = threading.Thread(target=self._read_all, name=f"camera {self.name}",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.first_picture_seconds
        with self._got:
            while self._newest is None and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._got.wait(min(left, 0.2))
        if self._newest is None:
            problem = self._describe_end()
            self._stop.set()
            self.close()
            raise CameraError(f"{self.name}: no picture in {self.first_picture_seconds:g} s"
                              f" ({problem})")

    def frame(self) -> Frame:
        with self._got:
            newest = self._newest
        if newest is None or time.monotonic() - newest[0] > self.stale_seconds:
            raise CameraError(f"{self.name}: no picture for {self.stale_seconds:g} s"
                              + (f" ({self.problem})" if self.problem else ""))
        return self._picture(newest[1])

    def close(self) -> None:
        self._stop.set()
        self._end_process()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        self._thread = None

    def _picture(self, raw: bytes) -> Frame:
        if self.pixel_format == "yuv420p":
            return i420_to_rgb(raw, self.width, self.height)
        frame: Frame = np.frombuffer(raw, np.uint8).reshape(self.height, self.width, 3)
        return frame

    def _start(self) -> None:
        try:
            self._process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             bufsize=0)
        except OSError as exc:
            raise CameraError(f"{self.name}: cannot start {self.command[0]}: {exc}") from exc
        assert self._process.stderr is not None
        self._drainer = threading.Thread(target=self._drain, args=(self._process.stderr,),
                                         name=f"camera {self.name} stderr", daemon=True)
        self._drainer.start()

    def _drain(self, stream: object) -> None:
        for line in iter(stream.readline, b""):      # type: ignore[attr-defined]
            text = line.decode("utf-8", "replace").strip()
            if text:
                self._said.append(text)

    def _describe_end(self) -> str:
        """How the process ended, with its last words: its pipe has just closed, so
        it is given a moment to exit and finish saying why."""
        process = self._process
        code = None
        if process is not None:
            try:
                code = process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                pass
            if code is not None and self._drainer is not None:
                self._drainer.join(timeout=1.0)
        said = "; ".join(self._said) or "it said nothing"
        return f"{self.command[0]} exited with {code}: {said}" if code is not None \
            else f"{self.command[0]}: {said}"

    def _end_process(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=3.0)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    def _read_all(self) -> None:
        pause = 1.0
        while not self._stop.is_set():
            started = time.monotonic()
            self._read_pictures()
            if self._stop.is_set() or not self.pictures:
                return                      # closed, or open() reports the failure
            self.problem = self._describe_end()
            self._end_process()
            if time.monotonic() - started > 2 * self.longest_pause:
                pause = 1.0                 # it ran a good while: not a failing loop
            log.warning("camera %s stopped (%s); starting it again in %g s",
                        self.name, self.problem, pause)
            if self._stop.wait(pause):
                return
            pause = min(pause * 2, self.longest_pause)
            self._said.clear()
            try:
                self._start()
            except CameraError as exc:
                self.problem = str(exc)
                self._process = None
                continue
            self.restarts += 1

    def _read_pictures(self) -> None:
        process = self._process
        if process is None or process.stdout is None:
            return
        stream = process.stdout
        size = self.picture_bytes
        while not self._stop.is_set():
            buffer = bytearray(size)
            view = memoryview(buffer)
            have = 0
            while have < size:
                try:
                    n = stream.readinto(view[have:])     # type: ignore[attr-defined]
                except (OSError, ValueError):
                    n = 0
                if not n:
                    return                               # the process ended
                have += n
            with self._got:
                if self.problem is not None and self._newest is not None:
                    log.info("camera %s is back", self.name)
                self._newest = (time.monotonic(), bytes(buffer))
                self.pictures += 1
                if self.pictures == 1 or self.problem is not None:
                    self.problem = None
                self._got.notify_all()


def find_program(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def webcam_command(ffmpeg: str, device: str, width: int, height: int, fps: int) -> list[str]:
    """ffmpeg reading a V4L2 webcam, scaled to width x height, raw RGB out."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "v4l2", "-framerate", str(fps), "-video_size", f"{width}x{height}",
            "-i", device, "-vf", f"scale={width}:{height}", "-r", str(fps),
            "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]


def picamera_command(program: str, width: int, height: int, fps: int) -> list[str]:
    """rpicam-vid writing raw YUV 4:2:0 pictures until stopped, with no preview window."""
    return [program, "--timeout", "0", "--nopreview", "--codec", "yuv420", "--width",
            str(width), "--height", str(height), "--framerate", str(fps), "--flush",
            "--output", "-"]


# struct v4l2_capability (linux/videodev2.h): driver[16] card[32] bus_info[32]
# version capabilities device_caps reserved[3]
_CAPABILITY = struct.Struct("16s32s32sIII12x")
VIDIOC_QUERYCAP = (2 << 30) | (_CAPABILITY.size << 16) | (ord("V") << 8) | 0
CAP_VIDEO_CAPTURE, CAP_DEVICE_CAPS = 0x00000001, 0x80000000


def video_device_info(data: bytes) -> tuple[str, str, bool]:
    """(driver, card, captures video) from a v4l2_capability."""
    driver, card, _bus, _version, caps, device_caps = _CAPABILITY.unpack(data)
    if caps & CAP_DEVICE_CAPS:
        caps = device_caps                    # what this node does, not the whole device
    return (driver.split(b"\0")[0].decode("ascii", "replace"),
            card.split(b"\0")[0].decode("utf-8", "replace"), bool(caps & CAP_VIDEO_CAPTURE))


def find_webcams(root: Path = Path("/dev")) -> list[str]:
    """The video nodes of USB webcams (driver uvcvideo) that capture; a Pi's codec
    and ISP nodes and the CSI camera's raw node are not webcams."""
    found = []
    for node in sorted(root.glob("video[0-9]*"), key=lambda p: int(p.name[5:])):
        try:
            fd = os.open(node, os.O_RDWR | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            data = fcntl.ioctl(fd, VIDIOC_QUERYCAP, bytes(_CAPABILITY.size))
        except OSError:
            continue
        finally:
            os.close(fd)
        driver, _card, captures = video_device_info(bytes(data))
        if driver == "uvcvideo" and captures:
            found.append(str(node))
    return found


def pi_camera_listed(program: str) -> bool:
    """Whether libcamera sees a camera (``--list-cameras`` names at least one)."""
    try:
        done = subprocess.run([program, "--list-cameras"], capture_output=True, timeout=20,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    listing = done.stdout.decode("utf-8", "replace")
    return done.returncode == 0 and "no cameras available" not in listing.lower() \
        and any(line.strip()[:2].rstrip(":").isdigit() for line in listing.splitlines())


def open_webcam(device: str, width: int, height: int, fps: int) -> PipeCamera:
    if not os.path.exists(device):
        raise CameraError(f"webcam: there is no {device} (is it plugged in? `ls /dev/video*` "
                          "lists the video devices)")
    ffmpeg = find_program("ffmpeg")
    if ffmpeg is None:
        raise CameraError("webcam: ffmpeg is not installed (apt install ffmpeg)")
    camera = PipeCamera(f"webcam {device}", webcam_command(ffmpeg, device, width, height, fps),
                        width, height)
    camera.open()
    return camera


def open_pi_camera(width: int, height: int, fps: int) -> PipeCamera:
    if width % 64:
        raise CameraError(f"Pi camera: width {width} is not a multiple of 64 (the rows of its "
                          "raw pictures); use 640, 1280 or 1920")
    program = find_program("rpicam-vid", "libcamera-vid")
    if program is None:
        raise CameraError("Pi camera: rpicam-vid is not installed (apt install rpicam-apps)")
    camera = PipeCamera("Pi camera", picamera_command(program, width, height, fps),
                        width, height, pixel_format="yuv420p")
    camera.open()
    return camera


def open_camera(source: str, width: int, height: int, fps: int = 15,
                device: str = "/dev/video0", board_camera: str = "",
                find_webcam: bool = True) -> Camera | None:
    """The configured camera, opened; None for ``none``, or for ``auto`` when there is
    none to find (``board_camera``: the board profile's; ``find_webcam``: look for a
    USB webcam too, not on a simulated board). CameraError says why a named one
    cannot be used."""
    if source == "none":
        return None
    if source == "simulated":
        camera: Camera = SimulatedCamera(width, height)
        camera.open()
        return camera
    if source == "v4l2":
        return open_webcam(device, width, height, fps)
    if source == "picamera":
        return open_pi_camera(width, height, fps)
    if source != "auto":
        raise CameraError(f"camera source {source!r} is not one of auto, none, simulated, "
                          "picamera, v4l2")
    tried = []
    if board_camera == "simulated":
        return open_camera("simulated", width, height, fps)
    if board_camera == "picamera":
        program = find_program("rpicam-vid", "libcamera-vid")
        if program is not None and pi_camera_listed(program):
            return open_pi_camera(width, height, fps)
        tried.append("no Pi camera listed by libcamera" if program else
                     "no rpicam-vid for a Pi camera")
    webcams = find_webcams() if find_webcam else []
    if webcams:
        return open_webcam(webcams[0], width, height, fps)
    if find_webcam:
        tried.append("no USB webcam")
    if not board_camera and not find_webcam:
        return None                         # a simulated board without a camera: say nothing
    log.info("camera: none found (%s); the station works audio-only", ", ".join(tried))
    return None
