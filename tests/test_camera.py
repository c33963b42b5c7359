"""The camera and the snapshot of every ring (issue 19, first part).

The simulated camera's test pattern moves and numbers its frames in a way
that survives JPEG; the snapshot store keeps its bounds and serves only its
own files; a running station (`intercom run`) takes a picture at each bell
press, logs it as an event, serves it over the HTTP API, sends the event
to its hooks and mails the picture.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port
from peers import Station, wait_for
from test_hooks import MailServer, Receiver
from test_httpapi import Api, add_account

from intercom.app.store import FileStore
from intercom.hal.camera import CameraError, SimulatedCamera, jpeg, read_counter

NOWHERE = ["sip:resident@127.0.0.1:9"]


def decoded(data: bytes) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_the_simulated_camera_numbers_its_frames_and_moves() -> None:
    camera = SimulatedCamera(640, 480)
    camera.open()
    frames = [camera.frame() for _ in range(3)]
    assert [read_counter(f) for f in frames] == [1, 2, 3]
    assert frames[0].shape == (480, 640, 3) and frames[0].dtype == np.uint8
    middle = slice(100, 300)
    assert not np.array_equal(frames[0][middle], frames[1][middle])     # the bars move
    assert np.array_equal(np.roll(frames[0][middle], 4, axis=1), frames[1][middle])
    for size in ((640, 480), (160, 120)):
        small = SimulatedCamera(*size)
        small.frame()
        assert read_counter(decoded(jpeg(small.frame()))) == 2           # through JPEG
    with pytest.raises(CameraError, match="too small"):
        SimulatedCamera(40, 30)


def test_the_store_keeps_its_bounds_and_serves_only_its_own(tmp_path: Path) -> None:
    camera = SimulatedCamera(320, 240)
    store = FileStore(tmp_path / "shots", ".jpg", keep=3, max_bytes=10 ** 9)
    names = [store.save(jpeg(camera.frame()), "bell", at=1700000000 + i).name for i in range(5)]
    assert [s.name for s in store.list()] == names[2:]
    assert names[0] == "20231114-221320.000-bell.jpg"
    assert [s.label for s in store.list()] == ["bell"] * 3
    assert store.list()[0].at == pytest.approx(1700000002)
    one = store.list()[0].size
    tight = FileStore(tmp_path / "tight", ".jpg", keep=100, max_bytes=int(2.5 * one))
    for i in range(4):
        tight.save(jpeg(camera.frame()), "bell 2/../x", at=1700000000 + i)
    kept = tight.list()
    assert len(kept) == 2 and all(s.label == "bell_2____x" for s in kept)
    assert sum(s.size for s in kept) <= 2.5 * one
    assert store.path(names[-1]) is not None
    for bad in (names[0], "../accounts.json", "x.jpg", f"../shots/{names[-1]}"):
        assert store.path(bad) is None
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "shots").iterdir())


def test_each_ring_gets_its_snapshot_in_the_log_the_api_and_the_hooks(tmp_path: Path) -> None:
    port = free_port()
    hook = Receiver()
    mail = MailServer()
    station = Station(tmp_path, "", NOWHERE, log_level="info",
                      extra=f'[http]\nlisten = "127.0.0.1:{port}"\n'
                            '[camera]\nsource = "simulated"\nwidth = 320\nheight = 240\n'
                            f'[notify]\nurls = ["{hook.url()}"]\nevents = ["snapshot"]\n'
                            f'email_to = ["anna@example.org"]\n'
                            f'smtp_server = "127.0.0.1:{mail.port}"\nsmtp_security = "none"\n')
    try:
        assert add_account(station.config, "vic", "view", "look-only-1").returncode == 0
        api = Api(station, port)
        for press in (1, 2):
            station.press()
            wait_for(lambda: len([e for e in station.events() if e["event"] == "snapshot"])
                     == press, 10, f"snapshot {press}")
            station.wait_event(10, event="call_record")
        shots = [e for e in station.events() if e["event"] == "snapshot"]
        assert [(s["button"], s["width"], s["height"]) for s in shots] == [("bell", 320, 240)] * 2
        status, listed = api.request("GET", "/api/snapshots", "vic", password="look-only-1")
        assert status == 200 and [s["name"] for s in listed] == [s["file"] for s in shots]
        for number, shot in enumerate(shots, 1):
            status, body = api.request("GET", f"/api/snapshots/{shot['file']}", "vic",
                                       password="look-only-1")
            assert status == 200 and isinstance(body, bytes)
            picture = decoded(body)
            assert picture.shape == (240, 320, 3) and read_counter(picture) == number
        assert api.request("GET", "/api/snapshots/..%2Faccounts.json", "vic",
                           password="look-only-1")[0] == 404
        status, kept = api.request("GET", "/api/events?kind=snapshot", "vic",
                                   password="look-only-1")
        assert [e["file"] for e in kept] == [s["file"] for s in shots]     # in the event log
        wait_for(lambda: len(hook.requests) == 2, 10, "both snapshots at the hook")
        assert [json.loads(r["body"])["event"]["file"] for r in hook.requests] == \
            [s["file"] for s in shots]
        wait_for(lambda: len(mail.messages) == 2, 10, "both snapshots by mail")
        for number, (_, _, message) in enumerate(mail.messages, 1):
            (picture,) = [part for part in message.walk()
                          if part.get_content_type() == "image/jpeg"]
            assert read_counter(decoded(picture.get_payload(decode=True))) == number
            assert picture.get_filename() == shots[number - 1]["file"]
        files = os.listdir(tmp_path / "snapshots")
        assert sorted(files) == sorted(s["file"] for s in shots)
        assert station.state()["camera"] == {"source": "simulated", "error": None}
    finally:
        station.stop()
        hook.close()
        mail.close()


def test_a_missing_webcam_is_reported_and_the_station_rings_audio_only(tmp_path: Path) -> None:
    station = Station(tmp_path, "", NOWHERE, log_level="info",
                      extra='[camera]\nsource = "v4l2"\ndevice = "/dev/video9"\n')
    try:
        state = station.state()["camera"]
        assert state["source"] == "v4l2" and "there is no /dev/video9" in state["error"]
        station.press()
        station.wait_event(10, event="call_record")
        assert not [e for e in station.events() if e["event"] == "snapshot"]
        assert "camera: webcam: there is no /dev/video9" in station.log_text()
        assert "the station works audio-only" in station.log_text()
    finally:
        station.stop()
