"""End to end: the firmware in simulation calls baresip through Kamailio.

Kamailio is the registrar and proxy (digest auth: 401 on REGISTER, 407 on
INVITE, Record-Route); baresip is the resident's phone (auto-answer, a tone
as its microphone, sndfile recording what it hears, TCP control). The
station runs as `intercom run`; the test drives it with `intercom ctl`.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, free_port_pair_gap
from peers import Baresip, Kamailio, Station, assert_heard, intercom, wait_for


pytestmark = pytest.mark.peers
STATION_TONE = 440.0
PHONE_TONE = 1000.0
PULSE = 1.5


@contextlib.contextmanager
def start_peers(work: Path, answermode: str, ring_timeout: int,
                station_extra: str = "") -> Iterator[Any]:
    kport = free_port()
    kamailio = Kamailio(work, kport, {"door": "doorpass", "resident": "respass"})
    baresip = None
    station = None
    try:
        baresip = Baresip(work, free_port_pair_gap(2), free_port(),
                          f"<sip:resident@127.0.0.1:{kport}>;auth_pass=respass;"
                          f"answermode={answermode};regint=600", PHONE_TONE)
        baresip.wait_registered(15)
        station = Station(work, f'registrar = "sip:127.0.0.1:{kport}"\npassword = "doorpass"',
                          ["sip:resident@127.0.0.1"], ring_timeout=ring_timeout,
                          tone_hz=STATION_TONE, pulse=PULSE, extra=station_extra)
        wait_for(lambda: station.state()["registration"]["state"] == "registered", 15,
                 "the station to register with Kamailio (401 then 200)")
        yield kamailio, baresip, station
    finally:
        if station is not None:
            station.stop()
        if baresip is not None:
            baresip.stop()
        kamailio.stop()


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Any]:
    with start_peers(tmp_path, "auto", 20) as started:
        yield started


def test_bell_calls_baresip_through_kamailio_and_dtmf_opens_the_door(peers: Any,
                                                                       tmp_path: Path) -> None:
    kamailio, baresip, station = peers
    assert station.state()["leds"]["status"] == "on"

    # The visitor presses the bell.
    press = intercom("ctl", "--socket", str(station.socket), "press", "bell")
    assert press.returncode == 0, press.stderr
    station.wait_event(10, event="button", button="bell")
    baresip.wait_event("CALL_ESTABLISHED", 15)
    answered = station.wait_event(10, event="call", state="answered")
    assert answered["reason"] in ("PCMU", "PCMA")
    assert station.state()["leds"]["call"] == "on"
    time.sleep(2.5)                                   # talk: both tones flow

    # A wrong code does not open the door.
    baresip.command("sndcode", "9999#")
    rejected = station.wait_event(10, event="door", action="rejected")
    assert rejected["caller"] == "sip:resident@127.0.0.1"
    assert not station.state()["relay"]["energised"]
    assert not any(e["event"] == "relay" for e in station.events())

    # The right one pulses the relay for the configured time.
    baresip.command("sndcode", "1234#")
    station.wait_event(10, event="door", action="opened")
    assert station.state()["relay"]["energised"]
    released = station.wait_event(PULSE + 5, event="relay", energised=False)
    assert released["seconds"] == pytest.approx(PULSE, abs=0.2)
    assert station.keys() == list(range(1, 11))       # each key once
    station.assert_codes_secret("9999#", "1234#")
    assert len([e for e in station.events() if e["event"] == "relay"]) == 2

    # The resident hangs up: BYE from baresip through Kamailio's Record-Route.
    closed_before = len(baresip.events)
    baresip.command("hangup")
    baresip.wait_event("CALL_CLOSED", 10, after=closed_before)
    ended = station.wait_event(10, event="call", state="ended")
    assert "by the resident" in ended["reason"]
    assert station.state()["call"]["state"] == "idle"

    # What each side heard, by signal analysis of the recordings.
    assert_heard(station.speaker, PHONE_TONE, "station")
    heard = wait_for(lambda: [f for f in baresip.records.glob("*.wav")
                              if "dec" in f.name and f.stat().st_size > 44], 5,
                     "baresip's recording of what it received")
    assert_heard(heard[0], STATION_TONE, "baresip")

    # A second call, ended by the station this time: BYE from our side.
    n = len(baresip.events)
    assert intercom("ctl", "--socket", str(station.socket), "press", "bell").returncode == 0
    baresip.wait_event("CALL_ESTABLISHED", 15, after=n)
    wait_for(lambda: station.state()["call"]["state"] == "answered", 10, "second call answered")
    assert intercom("ctl", "--socket", str(station.socket), "hangup").returncode == 0
    baresip.wait_event("CALL_CLOSED", 10, after=n)
    wait_for(lambda: station.state()["call"]["state"] == "idle", 10, "station idle")

    # The station shuts down cleanly and unregisters.
    assert station.stop() == 0
    log = (tmp_path / "station.log").read_text()
    assert "Traceback" not in log
    assert "door opened by code from sip:resident@127.0.0.1" in log
    assert "door code rejected from sip:resident@127.0.0.1" in log


def test_unanswered_call_is_cancelled_through_kamailio(tmp_path: Path) -> None:
    with start_peers(tmp_path, "manual", 5) as (kamailio, baresip, station):
        n = len(baresip.events)
        assert intercom("ctl", "--socket", str(station.socket), "press", "bell").returncode == 0
        baresip.wait_event("CALL_INCOMING", 10, after=n)
        station.wait_event(5, event="call", state="ringing")
        assert station.state()["leds"]["call"] == "blink"
        # Nobody answers: after ring_timeout the station sends CANCEL; baresip's call closes.
        closed = baresip.wait_event("CALL_CLOSED", 12, after=n)
        cancelled = station.wait_event(5, event="call", state="cancelled")
        # CANCEL went through Kamailio and baresip answered the INVITE with 487.
        assert cancelled["reason"] == "no answer within the ring time"
        assert station.wait_event(5, event="call_record")["outcome"] == "no answer"
        assert closed["param"] == "Connection reset by peer"    # how libre reports a CANCEL
        assert station.state()["call"]["state"] == "idle"
        assert station.state()["leds"]["call"] == "off"


def test_baresip_calling_the_station_through_kamailio_is_refused_unless_allowed(
        tmp_path: Path) -> None:
    """baresip as the caller: Kamailio finds the station's registration and relays the
    INVITE (Record-Route). Not an allowed caller: 403, and nothing rings or opens.
    Allowed (incoming.callers): the station answers at once, and the resident's code
    keyed in that call opens the door."""
    for allowed in (False, True):
        work = tmp_path / str(allowed)
        work.mkdir()
        extra = '[incoming]\ncallers = ["sip:resident@127.0.0.1"]' if allowed else ""
        with start_peers(work, "manual", 20, extra) as (kamailio, baresip, station):
            n = len(baresip.events)
            baresip.command("dial", f"sip:door@127.0.0.1:{kamailio.port}")
            if not allowed:
                closed = baresip.wait_event("CALL_CLOSED", 10, after=n)
                assert "403" in closed["param"] or "Forbidden" in closed["param"], closed
                log = station.log_text()
                assert "incoming call refused from sip:resident@127.0.0.1:" in log
                assert station.state()["call"]["state"] == "idle"
                assert not any(e["event"] == "relay" for e in station.events())
                continue
            baresip.wait_event("CALL_ESTABLISHED", 10, after=n)
            answered = station.wait_event(10, event="call", state="answered")
            assert answered["reason"].endswith("(incoming)")
            time.sleep(2.5)         # as in the other baresip calls: its audio is under way
            baresip.command("sndcode", "1234#")
            station.wait_event(10, event="door", action="opened")
            n = len(baresip.events)
            baresip.command("hangup")
            baresip.wait_event("CALL_CLOSED", 10, after=n)
            record = station.wait_event(10, event="call_record")
            assert record["direction"] == "incoming" and record["outcome"] == "answered"
        assert_heard(next(f for f in baresip.records.glob("*.wav") if "dec" in f.name),
                     STATION_TONE, "baresip listening at the door")


@pytest.mark.parametrize("codec", ["opus", "G722", "PCMA"])
def test_each_codec_carries_both_voices_and_the_door_code(tmp_path: Path, codec: str) -> None:
    """The station calls baresip directly, limited to one codec: both tones arrive, and
    1234# by RFC 4733 opens the door (telephone-event on that codec's stream)."""
    baresip = Baresip(tmp_path, free_port_pair_gap(2), free_port(),
                      "<sip:resident@127.0.0.1>;regint=0;answermode=auto", PHONE_TONE,
                      codec=codec)
    station = None
    try:
        station = Station(tmp_path, "", [f"sip:resident@127.0.0.1:{baresip.sip_port}"],
                          tone_hz=STATION_TONE, pulse=PULSE)
        station.press()
        answered = station.wait_event(15, event="call", state="answered")
        assert answered["reason"] == codec
        time.sleep(2.5)
        baresip.command("sndcode", "1234#")
        station.wait_event(10, event="door", action="opened")
        n = len(baresip.events)
        baresip.command("hangup")
        baresip.wait_event("CALL_CLOSED", 10, after=n)
        station.wait_event(10, event="call", state="ended")
    finally:
        if station is not None:
            station.stop()
        baresip.stop()
    assert_heard(station.speaker, PHONE_TONE, "station")
    assert_heard(next(f for f in baresip.records.glob("*.wav") if "dec" in f.name),
                 STATION_TONE, "baresip")


def test_call_quality_from_rtcp_with_baresip(tmp_path: Path) -> None:
    """Both sides send RTCP; at hang-up the station logs loss, jitter, the round-trip
    time from baresip's report about us, and a MOS."""
    baresip = Baresip(tmp_path, free_port_pair_gap(2), free_port(),
                      "<sip:resident@127.0.0.1>;regint=0;answermode=auto", PHONE_TONE,
                      codec="opus")
    station = None
    try:
        station = Station(tmp_path, "", [f"sip:resident@127.0.0.1:{baresip.sip_port}"])
        station.press()
        station.wait_event(15, event="call", state="answered")
        time.sleep(16)                              # at least two report intervals each way
        assert intercom("ctl", "--socket", str(station.socket), "hangup").returncode == 0
        quality = station.wait_event(10, event="quality")
    finally:
        if station is not None:
            station.stop()
        baresip.stop()
    assert quality["codec"] == "opus" and quality["packets_received"] > 500
    assert quality["packets_lost"] == 0 and quality["jitter_ms"] < 20
    assert quality["rtt_ms"] is not None and 0 <= quality["rtt_ms"] < 50
    assert quality["mos"] >= 4.0


def test_srtp_with_baresip_and_refusal_without_it(tmp_path: Path) -> None:
    """baresip with SDES-SRTP: the call is encrypted both ways and its RFC 4733 code
    opens the door. A baresip without SRTP cannot take a call when SRTP is required."""
    for mode, mediaenc in (("optional", ";mediaenc=srtp"), ("required", "")):
        work = tmp_path / mode
        work.mkdir()
        baresip = Baresip(work, free_port_pair_gap(2), free_port(),
                          f"<sip:resident@127.0.0.1>;regint=0;answermode=auto{mediaenc}",
                          PHONE_TONE, codec="PCMU")
        station = None
        try:
            station = Station(work, "", [f"sip:resident@127.0.0.1:{baresip.sip_port}"],
                              extra=f'[media]\nsrtp = "{mode}"')
            station.press()
            if mode == "optional":
                station.wait_event(15, event="call", state="answered")
                time.sleep(2.0)
                audio = station.state()["call"]["audio"]
                assert audio["srtp"] and audio["unauthentic"] == 0, audio
                assert audio["rtp_received"] > 50
                baresip.command("sndcode", "1234#")
                station.wait_event(10, event="door", action="opened")
                assert "srtp" in (work / "baresip.log").read_text().lower()
            else:
                ended = wait_for(lambda: next((e for e in station.events() if e["event"] == "call"
                                               and e["state"] in ("failed", "ended")), None),
                                 15, "the call to fail")
                assert not station.state()["relay"]["energised"], ended
                assert "answered without SRTP" in station.log_text() or \
                    ended["state"] == "failed"
        finally:
            if station is not None:
                station.stop()
            baresip.stop()
