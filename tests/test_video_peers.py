"""Video in calls with a real phone: the station's H.264 decoded by baresip.

baresip (with baresip-ffmpeg's avcodec) answers the station's call; its
``snapshot_recv`` saves the next picture it decodes, and the simulated
camera's frame number is read back from it. With a relay that loses some
of the video on the way, baresip asks for a keyframe (PLI) and the station
sends one: the pictures after the loss are whole again.
"""
from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port, free_port_pair_gap
from peers import Baresip, Station, VideoLossRelay, assert_heard, intercom, wait_for

from intercom.hal.camera import BARS, read_counter

pytestmark = pytest.mark.peers
STATION_TONE = 440.0
PHONE_TONE = 1000.0
CAMERA = '[camera]\nsource = "simulated"\nwidth = 320\nheight = 240\nfps = 15\n'


def picture(path: Path) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def assert_test_pattern(frame: np.ndarray) -> int:
    """The simulated camera's picture: its size, the colour bars, and its number."""
    assert frame.shape == (240, 320, 3)
    middle = frame[120, 4:316].astype(int)           # a row through the bars
    colours = {tuple(c) for c in BARS.astype(int)}
    close = sum(min(np.abs(np.array(c) - px).sum() for c in colours) < 60 for px in middle)
    assert close > 0.9 * len(middle), "the colour bars did not come through"
    return read_counter(frame)


def hang_up(station: Station, baresip: Baresip) -> None:
    n = len(baresip.events)
    assert intercom("ctl", "--socket", str(station.socket), "hangup").returncode == 0
    baresip.wait_event("CALL_CLOSED", 10, after=n)
    station.wait_event(10, event="call", state="ended")


@contextlib.contextmanager
def answered_call(work: Path, video: bool) -> Iterator[tuple[Station, Baresip]]:
    """The station with the simulated camera calls an answering baresip; both are
    stopped at the end, and both voices must have been heard."""
    baresip = Baresip(work, free_port_pair_gap(2), free_port(),
                      "<sip:resident@127.0.0.1>;regint=0;answermode=auto", PHONE_TONE,
                      video=video)
    station = None
    try:
        station = Station(work, "", [f"sip:resident@127.0.0.1:{baresip.sip_port}"],
                          tone_hz=STATION_TONE, extra=CAMERA)
        station.press()
        station.wait_event(15, event="call", state="answered")
        yield station, baresip
        hang_up(station, baresip)
    finally:
        if station is not None:
            station.stop()
        baresip.stop()
    assert_heard(station.speaker, PHONE_TONE, "station")
    assert_heard(next(f for f in baresip.records.glob("*.wav") if "dec" in f.name),
                 STATION_TONE, "baresip")


def test_baresip_sees_the_camera_while_both_talk(tmp_path: Path) -> None:
    with answered_call(tmp_path, video=True) as (station, baresip):
        time.sleep(1.5)
        first = assert_test_pattern(picture(baresip.snapshot(tmp_path / "a.png")))
        started = time.monotonic()
        time.sleep(2.0)
        second = assert_test_pattern(picture(baresip.snapshot(tmp_path / "b.png")))
        # 15 pictures a second, give or take the snapshots' own waits
        expected = 15 * (time.monotonic() - started)
        assert expected - 12 <= second - first <= expected + 8, (first, second, expected)
    log = station.log_text()
    assert "video to sip:resident" in log and "H.264 320x240 at 15 fps" in log


def test_a_phone_without_video_gets_an_audio_call(tmp_path: Path) -> None:
    with answered_call(tmp_path, video=False) as (station, _):
        time.sleep(2.5)
    assert "takes no video; the call is audio-only" in station.log_text()
    assert "video to sip:resident" not in station.log_text()


def test_lost_video_is_recovered_by_the_keyframe_baresip_asks_for(tmp_path: Path) -> None:
    """No keyframe comes by itself for 300 s: only baresip's PLI can mend the picture."""
    baresip = Baresip(tmp_path, free_port_pair_gap(2), free_port(),
                      "<sip:resident@127.0.0.1>;regint=0;answermode=auto", PHONE_TONE,
                      video=True)
    # Lose three datagrams in a row, a second or so into the video, once.
    relay = VideoLossRelay(baresip.sip_port, lambda n: 40 <= n < 43)
    station = None
    try:
        station = Station(tmp_path, "", [f"sip:resident@127.0.0.1:{relay.port}"],
                          tone_hz=STATION_TONE, extra=CAMERA + "keyframe_seconds = 300\n")
        station.press()
        station.wait_event(15, event="call", state="answered")
        wait_for(lambda: relay.video_lost == 3, 10, "the relay to lose video")
        time.sleep(2.0)
        before = assert_test_pattern(picture(baresip.snapshot(tmp_path / "a.png")))
        time.sleep(1.0)
        after = assert_test_pattern(picture(baresip.snapshot(tmp_path / "b.png")))
        assert 8 <= after - before <= 30, (before, after)
        hang_up(station, baresip)
    finally:
        if station is not None:
            station.stop()
        baresip.stop()
        relay.stop()
    found = re.search(r"video to \S+: (\d+) pictures sent, (\d+) keyframes asked for",
                      station.log_text())
    assert found is not None, station.log_text()[-3000:]
    assert int(found.group(1)) > 40 and int(found.group(2)) >= 1


def test_a_resident_calling_the_station_sees_the_door(tmp_path: Path) -> None:
    """baresip offers video both ways; the station answers sendonly with its camera,
    and an offer's other stream keeps its place (the answer has every m= line)."""
    baresip = Baresip(tmp_path, free_port_pair_gap(2), free_port(),
                      "<sip:resident@127.0.0.1>;regint=0", PHONE_TONE, video=True)
    station = None
    try:
        station = Station(tmp_path, "", ["sip:nobody@127.0.0.1:9"], tone_hz=STATION_TONE,
                          extra=CAMERA + '[incoming]\ncallers = ["sip:resident@127.0.0.1"]\n')
        n = len(baresip.events)
        baresip.command("dial", f"sip:door@127.0.0.1:{station.port}")
        baresip.wait_event("CALL_ESTABLISHED", 10, after=n)
        station.wait_event(10, event="call", state="answered")
        time.sleep(1.5)
        first = assert_test_pattern(picture(baresip.snapshot(tmp_path / "a.png")))
        time.sleep(1.0)
        assert assert_test_pattern(picture(baresip.snapshot(tmp_path / "b.png"))) > first
        n = len(baresip.events)
        baresip.command("hangup")
        baresip.wait_event("CALL_CLOSED", 10, after=n)
        station.wait_event(10, event="call_record")
    finally:
        if station is not None:
            station.stop()
        baresip.stop()
    assert "video to sip:resident@127.0.0.1" in station.log_text()
