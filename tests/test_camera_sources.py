"""Camera sources (issue 19): pictures from a child process's pipe, as the Pi
camera (rpicam-vid) and USB webcams (ffmpeg reading V4L2) give them.

There is no camera on this machine, so a real ffmpeg plays the simulated
camera's test pattern (a raw file) at its frame rate into the same
``PipeCamera`` the webcam and the Pi camera use, in RGB and in YUV 4:2:0;
its frame numbers are read back from the pictures. Killing the process
stands in for an unplugged webcam: the outage is reported, the process is
started again, the pictures come back, and a video call in progress goes on
and starts its picture with a keyframe. The webcam's own command runs
ffmpeg's V4L2 input for real and fails on what is not a video device.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from intercom.hal.camera import (CameraError, Frame, PipeCamera, SimulatedCamera,
                                 i420_to_rgb, i420_to_rgb_numpy, open_camera, read_counter,
                                 video_device_info, find_webcams)

av = pytest.importorskip("av")
from intercom.media.video import VideoFeed, VideoSender  # noqa: E402
FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg (scripts/setup --test)")
W, H, FPS = 160, 120, 15


def pattern_file(tmp_path: Path, frames: int = 150) -> Path:
    """The simulated camera's first ``frames`` pictures, raw RGB, one after the other."""
    camera = SimulatedCamera(W, H)
    path = tmp_path / "pattern.rgb"
    with path.open("wb") as out:
        for _ in range(frames):
            out.write(camera.frame().tobytes())
    return path


def player(source: Path, pixel_format: str = "rgb24") -> list[str]:
    """ffmpeg playing the raw pattern at its frame rate, as a camera would deliver it."""
    assert FFMPEG is not None
    return [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", f"{W}x{H}",
            "-framerate", str(FPS), "-i", str(source),
            "-pix_fmt", pixel_format, "-f", "rawvideo", "pipe:1"]


def wait_for_picture(camera: PipeCamera, seconds: float) -> Frame:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return camera.frame()
        except CameraError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_i420_pictures_come_out_as_the_camera_saw_them() -> None:
    frame = SimulatedCamera(320, 240).frame()
    planes = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
    raw = planes.to_ndarray().tobytes()
    for convert in (i420_to_rgb, i420_to_rgb_numpy):
        back = convert(raw, 320, 240)
        assert back.shape == (240, 320, 3) and back.dtype == np.uint8
        assert read_counter(back) == 1
        assert np.abs(back.astype(int) - frame).mean() < 3          # colour bars kept
    with pytest.raises(CameraError, match="needs 115200 bytes"):
        i420_to_rgb(raw[:1000], 320, 240)


@needs_ffmpeg
@pytest.mark.parametrize("pixel_format", ["rgb24", "yuv420p"])
def test_a_pipe_camera_keeps_the_newest_picture_and_comes_back_after_its_process_dies(
        tmp_path: Path, pixel_format: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="intercom.camera")
    camera = PipeCamera("test camera", player(pattern_file(tmp_path), pixel_format), W, H,
                        pixel_format=pixel_format, stale_seconds=0.5)
    camera.open()
    try:
        first = camera.frame()
        time.sleep(1.0)
        later = camera.frame()
        assert first.shape == (H, W, 3)
        # About 15 pictures a second arrive, and frame() gives the newest.
        assert 8 <= read_counter(later) - read_counter(first) <= 22
        pid = camera.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)                  # the webcam is pulled out
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                camera.frame()
            except CameraError as exc:
                assert "no picture for 0.5 s" in str(exc)
                break
            time.sleep(0.05)
        else:
            pytest.fail("the camera kept giving its old picture")
        again = wait_for_picture(camera, 10)          # started again after 1 s
        assert camera.restarts == 1 and camera.pid not in (None, pid)
        assert read_counter(again) < read_counter(later) + 5    # a new run of the pattern
        assert "stopped" in caplog.text and "exited with -9" in caplog.text
        assert "is back" in caplog.text
    finally:
        camera.close()
    assert camera.pid is not None and not Path(f"/proc/{camera.pid}").exists()   # reaped


@needs_ffmpeg
def test_a_camera_that_gives_no_picture_says_why(tmp_path: Path) -> None:
    camera = PipeCamera("test camera", player(tmp_path / "missing.rgb"), W, H)
    with pytest.raises(CameraError) as info:
        camera.open()
    assert "no picture in" in str(info.value) and "No such file" in str(info.value)
    # The webcam's own command reaches ffmpeg's V4L2 input, which asks the
    # device what it is: a plain file is not a camera.
    not_a_camera = tmp_path / "video0"
    not_a_camera.write_bytes(b"")
    with pytest.raises(CameraError) as info:
        open_camera("v4l2", W, H, FPS, device=str(not_a_camera))
    assert "VIDIOC_QUERYCAP" in str(info.value)
    with pytest.raises(CameraError, match="there is no /dev/video9"):
        open_camera("v4l2", W, H, FPS, device="/dev/video9")


def test_the_pi_camera_and_auto_say_what_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))         # no rpicam-vid, no ffmpeg
    with pytest.raises(CameraError, match="rpicam-vid is not installed"):
        open_camera("picamera", 640, 480)
    with pytest.raises(CameraError, match="not a multiple of 64"):
        open_camera("picamera", 650, 480)
    caplog.set_level(logging.INFO, logger="intercom.camera")
    assert open_camera("auto", 640, 480, board_camera="picamera", find_webcam=False) is None
    assert "none found (no rpicam-vid for a Pi camera)" in caplog.text
    simulated = open_camera("auto", 320, 240, board_camera="simulated", find_webcam=False)
    assert isinstance(simulated, SimulatedCamera)
    assert open_camera("auto", 320, 240, find_webcam=False) is None


def test_webcams_are_found_by_their_driver(tmp_path: Path) -> None:
    def capability(driver: bytes, caps: int, device_caps: int) -> bytes:
        return struct.pack("16s32s32sIII12x", driver, b"HD Webcam", b"usb-1", 1, caps,
                           device_caps)
    webcam = capability(b"uvcvideo", 0x84A00001, 0x04200001)
    assert video_device_info(webcam) == ("uvcvideo", "HD Webcam", True)
    metadata_node = capability(b"uvcvideo", 0x84A00001, 0x04800000)   # the same camera's
    assert video_device_info(metadata_node)[2] is False                # metadata node
    # Files that are no video devices are passed over, not mistaken for cameras.
    for name in ("video0", "video1", "video10"):
        (tmp_path / name).write_bytes(b"")
    assert find_webcams(tmp_path) == []


class Recorder(VideoSender):
    """Stands where a call's RTP would: what the feed hands it, and when."""

    def __init__(self) -> None:                       # no RTP session: nothing goes out
        self.sent: list[tuple[float, bool]] = []

    def send(self, payloads: list[bytes], timestamp: int, idr: bool) -> None:
        self.sent.append((time.monotonic(), idr))


@needs_ffmpeg
def test_a_call_keeps_going_through_a_camera_outage_and_restarts_with_a_keyframe(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    camera = PipeCamera("test camera", player(pattern_file(tmp_path)), W, H, stale_seconds=0.3)
    camera.open()
    feed = VideoFeed(camera, FPS, 200_000, keyframe_seconds=300)
    recorder = Recorder()
    feed.attach(recorder)
    try:
        time.sleep(1.0)
        pid = camera.pid
        assert pid is not None
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while camera.restarts == 0 or not any(t > killed + 1.0 for t, _ in recorder.sent):
            assert time.monotonic() < deadline, "the picture did not come back"
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        feed.stop()
        camera.close()
    assert feed.error is None                          # the feed never gave up
    before = [idr for t, idr in recorder.sent if t < killed]
    gap = [t for t, _ in recorder.sent if killed + 0.4 < t < killed + 0.9]
    after = [idr for t, idr in recorder.sent if t > killed + 0.9]
    assert len(before) >= 10 and before[0] and not any(before[1:])   # one IDR at the start
    assert gap == []                                   # no stale pictures while it was away
    assert after and after[0]                          # back with a keyframe
    assert "the calls keep their sound" in caplog.text and "the camera is back" in caplog.text
