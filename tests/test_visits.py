"""Whole visits as people make them, against real phones started by the test.

A visitor presses the bell; the station calls the resident's phone, which
rings and answers; both sides talk the whole time: the visitor in 440 Hz
syllables into the station's microphone (broken like speech, as the
station's noise suppressor would take a tone that never stops for a hum and
turn it down), the resident in a 1000 Hz tone from the phone. The resident keys a
wrong code, then the right one, while talking; the door opens; they go on
talking; then the resident hangs up (or the station does). Every visit is
checked the same way:

* both recordings carry the other side's tone in every second of the call,
  before, during and after the digits (``assert_heard_throughout``);
* the wrong code is rejected, the right one opens the door once, the relay
  pulses for the configured time;
* each key arrives once, and no code reaches the log or the event stream;
* the visit ends in one record, and the quality event's MOS says the call
  sounded good (it counts concealed frames too);
* nothing in the station's log is a traceback, and each security event
  (the code rejected, the door opened) is one line in it.

The matrix: baresip over UDP and TCP, with PCMU and Opus, with SRTP and
without; linphonec (Opus, its own RFC 4733 keypad, which sends key events
instead of audio); and baresip registered with Kamailio, called through it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, free_port_pair_gap
from peers import (Baresip, Kamailio, Linphone, Station, assert_heard_throughout, intercom,
                   wait_for)

from intercom.media.signal import syllables, tone, write_wav

pytestmark = pytest.mark.peers
STATION_TONE = 440.0
PHONE_TONE = 1000.0
PULSE = 1.0
WRONG, CODE = "9999#", "1234#"


def visitor(work: Path) -> str:
    """[audio] lines: the visitor talks into the station's microphone, in syllables."""
    voice = work / "visitor.wav"
    write_wav(str(voice), syllables(STATION_TONE, 5.0, 48000, amplitude=0.25), 48000)
    return f'mic_file = "{voice}"'


def tcp_connected(port: int) -> bool:
    """Is a TCP connection to 127.0.0.1:``port`` established (the SIP signalling)?"""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(f.split()[2].endswith(f":{port:04X}") and f.split()[3] == "01" for f in lines)


def check_visit(station: Station, phone_recording: Path, by: str, codec: str) -> None:
    """What every visit must show once it is over (see the module's docstring)."""
    events = station.events()
    answered = next(e for e in events if e["event"] == "call" and e["state"] == "answered")
    ended = next(e for e in events if e["event"] == "call" and e["state"] == "ended")
    seconds = ended["time"] - answered["time"]
    assert seconds > 9, seconds
    assert answered["reason"] == codec
    assert by in ended["reason"], ended
    rejected = [e for e in events if e["event"] == "door" and e["action"] == "rejected"]
    opened = [e for e in events if e["event"] == "door" and e["action"] == "opened"]
    assert len(rejected) == 1 and len(opened) == 1 and opened[0]["reason"] == "code"
    released = [e for e in events if e["event"] == "relay" and not e["energised"]]
    assert len(released) == 1 and released[0]["seconds"] == pytest.approx(PULSE, abs=0.2)
    assert station.keys() == list(range(1, 11))              # each key once
    station.assert_codes_secret(WRONG, CODE)
    record = next(e for e in events if e["event"] == "call_record")
    assert record["outcome"] == "answered" and record["seconds"] > 9
    quality = next(e for e in events if e["event"] == "quality")
    frames = seconds * 50
    assert quality["concealed_frames"] < 0.03 * frames, quality
    assert quality["mos"] >= 4.0, quality
    # the signal, in every second of the call, both ways
    assert_heard_throughout(station.speaker, PHONE_TONE, seconds, "the station's speaker")
    assert_heard_throughout(phone_recording, STATION_TONE, seconds, "the resident's phone")
    log = station.log_text()
    assert "Traceback" not in log
    # each security event is one WARNING line in its fixed form, not repeated at INFO
    assert log.count("door code rejected from ") == 1, log
    assert log.count("door opened by code from ") == 1, log


def talk_and_key(station: Station, key: Any) -> dict[str, Any]:
    """The middle of a visit: talk, a wrong code, talk, the right code, talk on.
    Returns the call's audio state at the end."""
    time.sleep(2.5)
    key(WRONG)
    station.wait_event(10, event="door", action="rejected")
    time.sleep(1.5)
    key(CODE)
    station.wait_event(10, event="door", action="opened")
    assert station.state()["relay"]["energised"]
    station.wait_event(PULSE + 5, event="relay", energised=False)
    time.sleep(3.0)                       # the door is open: they talk on
    audio: dict[str, Any] = station.state()["call"]["audio"]
    assert audio["speaker_dbfs"] > -30, audio       # still hearing the resident
    return audio


@pytest.mark.parametrize("transport, codec, srtp, by", [
    ("udp", "PCMU", False, "resident"),
    ("udp", "PCMU", True, "station"),
    ("udp", "opus", False, "station"),
    ("udp", "opus", True, "resident"),
    ("tcp", "PCMU", False, "station"),
    ("tcp", "PCMU", True, "resident"),
    ("tcp", "opus", False, "resident"),
    ("tcp", "opus", True, "station"),
])
def test_a_visit_with_baresip(tmp_path: Path, transport: str, codec: str, srtp: bool,
                              by: str) -> None:
    baresip = Baresip(tmp_path, free_port_pair_gap(2), free_port(),
                      "<sip:resident@127.0.0.1>;regint=0;answermode=auto"
                      + (";mediaenc=srtp" if srtp else ""), PHONE_TONE, codec=codec)
    station = None
    try:
        target = f"sip:resident@127.0.0.1:{baresip.sip_port}" + \
            (";transport=tcp" if transport == "tcp" else "")
        station = Station(tmp_path, "", [target], pulse=PULSE, log_level="info",
                          audio=visitor(tmp_path),
                          extra=f'[media]\nsrtp = "{"required" if srtp else "off"}"')
        station.press()
        station.wait_event(10, event="call", state="ringing")
        station.wait_event(15, event="call", state="answered")
        baresip.wait_event("CALL_ESTABLISHED", 10)
        audio = station.state()["call"]["audio"]
        assert audio["srtp"] is srtp
        assert tcp_connected(baresip.sip_port) is (transport == "tcp")
        talk_and_key(station, lambda code: baresip.command("sndcode", code))
        n = len(baresip.events)
        if by == "resident":
            baresip.command("hangup")
        else:
            assert intercom("ctl", "--socket", str(station.socket), "hangup").returncode == 0
        baresip.wait_event("CALL_CLOSED", 10, after=n)
        station.wait_event(10, event="call", state="ended")
        station.wait_event(5, event="call_record")
    finally:
        if station is not None:
            station.stop()
        baresip.stop()
    heard = wait_for(lambda: [f for f in baresip.records.glob("*.wav")
                              if "dec" in f.name and f.stat().st_size > 44], 5,
                     "baresip's recording of what it heard")
    check_visit(station, heard[0], f"by the {by}", codec)


def test_a_visit_with_linphone(tmp_path: Path) -> None:
    """linphonec answers, talks (a file), keys the codes on its keypad (RFC 4733)."""
    voice = tmp_path / "phone-voice.wav"
    write_wav(str(voice), tone(PHONE_TONE, 60.0, 16000, amplitude=0.25), 16000)
    phone_port = free_port()
    linphone = Linphone(tmp_path, phone_port, voice)
    station = None
    try:
        station = Station(tmp_path, "", [f"sip:resident@127.0.0.1:{phone_port}"],
                          pulse=PULSE, log_level="info", audio=visitor(tmp_path))
        station.press()
        station.wait_event(15, event="call", state="answered")

        def key(code: str) -> None:
            for digit in code:
                linphone.command(digit)
                time.sleep(0.3)
        audio = talk_and_key(station, key)
        # linphone sends key events *instead of* audio: those frames are not loss
        assert audio["jitter"]["replaced"] >= 10 and audio["jitter"]["concealed"] < 10, audio
        linphone.command("terminate")
        station.wait_event(10, event="call", state="ended")
        linphone.wait_output("ended", 10)
    finally:
        if station is not None:
            station.stop()
        linphone.stop()
    check_visit(station, linphone.record, "by the resident", "opus")


def test_a_visit_through_kamailio(tmp_path: Path) -> None:
    """Both register with Kamailio (digest); the station calls the resident's
    address of record through it (407 on the INVITE, Record-Route); baresip
    answers, keys the codes and hangs up through Kamailio's route."""
    kport = free_port()
    kamailio = Kamailio(tmp_path, kport, {"door": "doorpass", "resident": "respass"})
    baresip = station = None
    try:
        baresip = Baresip(tmp_path, free_port_pair_gap(2), free_port(),
                          f"<sip:resident@127.0.0.1:{kport}>;auth_pass=respass;"
                          "answermode=auto;regint=600", PHONE_TONE)
        baresip.wait_registered(15)
        station = Station(tmp_path, f'registrar = "sip:127.0.0.1:{kport}"\n'
                                    'password = "doorpass"', ["sip:resident@127.0.0.1"],
                          pulse=PULSE, log_level="info", audio=visitor(tmp_path))
        wait_for(lambda: station.state()["registration"]["state"] == "registered", 15,
                 "the station to register with Kamailio")
        station.press()
        station.wait_event(15, event="call", state="answered")
        baresip.wait_event("CALL_ESTABLISHED", 10)
        talk_and_key(station, lambda code: baresip.command("sndcode", code))
        n = len(baresip.events)
        baresip.command("hangup")
        baresip.wait_event("CALL_CLOSED", 10, after=n)
        station.wait_event(10, event="call", state="ended")
        station.wait_event(5, event="call_record")
    finally:
        if station is not None:
            station.stop()
        if baresip is not None:
            baresip.stop()
        kamailio.stop()
    heard = wait_for(lambda: [f for f in baresip.records.glob("*.wav")
                              if "dec" in f.name and f.stat().st_size > 44], 5,
                     "baresip's recording of what it heard")
    check_visit(station, heard[0], "by the resident", "PCMU")
