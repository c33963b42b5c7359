"""linphonec (liblinphone 5.1) as the callee and as the caller, directly by IP.

As callee it auto-answers the station, hears its tone, and keys the door code
with RFC 4733. As caller it calls the station (refused unless it is an
allowed caller; then answered, and its code opens the door) and calls a bare
user agent of ours that answers, to check our UAS side against a real phone.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from conftest import free_port
from peers import Linphone, Station, assert_heard, intercom, wait_for

from intercom.media.codecs import offer_formats
from intercom.media.signal import tone, write_wav
from intercom.sip import events as ev
from intercom.sip import sdp
from intercom.sip.transport import SipEndpoint
from intercom.sip.settings import UaSettings
from intercom.sip.ua import UserAgent

pytestmark = pytest.mark.peers
STATION_TONE = 440.0
PHONE_TONE = 1000.0


def phone_audio(work: Path) -> Path:
    path = work / "phone-mic.wav"
    write_wav(str(path), tone(PHONE_TONE, 30.0, 8000), 8000)
    return path


def test_station_calls_linphone_which_opens_the_door(tmp_path: Path) -> None:
    phone_port = free_port()
    linphone = Linphone(tmp_path, phone_port, phone_audio(tmp_path))
    station = None
    try:
        station = Station(tmp_path, "", [f"sip:resident@127.0.0.1:{phone_port}"],
                          tone_hz=STATION_TONE)
        station.press()
        answered = station.wait_event(15, event="call", state="answered")
        assert answered["reason"] == "opus"                # our first choice, and linphone's
        time.sleep(2.0)
        for digit in "1234#":                       # RFC 4733 events from linphonec
            linphone.command(digit)
            time.sleep(0.3)
        station.wait_event(10, event="door", action="opened")
        assert station.keys() == [1, 2, 3, 4, 5]          # each key once
        station.assert_codes_secret("1234#")
        station.wait_event(10, event="relay", energised=False)
        assert station.state()["call"]["state"] == "answered"
        assert intercom("ctl", "--socket", str(station.socket), "hangup").returncode == 0
        station.wait_event(10, event="call", state="ended")
        linphone.wait_output("ended", 10)
    finally:
        if station is not None:
            station.stop()
        linphone.stop()
    assert_heard(station.speaker, PHONE_TONE, "station")
    assert_heard(linphone.record, STATION_TONE, "linphone")
    assert "Traceback" not in station.log_text()


def test_linphone_calling_the_station_is_refused_unless_allowed_then_opens(
        tmp_path: Path) -> None:
    """linphonec calls the station by IP. Not an allowed caller: 403 and nothing
    happens. Allowed: answered at once; it hears the door, and its code opens it."""
    for allowed in (False, True):
        work = tmp_path / str(allowed)
        work.mkdir()
        linphone = Linphone(work, free_port(), phone_audio(work), auto_answer=False)
        station = None
        try:
            station = Station(work, "", ["sip:resident@127.0.0.1:9"], tone_hz=STATION_TONE,
                              extra='[incoming]\ncallers = ["sip:resident@127.0.0.1"]'
                              if allowed else "")
            linphone.command(f"call sip:door@127.0.0.1:{station.port}")
            if not allowed:
                wait_for(lambda: "incoming call refused from sip:resident@127.0.0.1" in
                         station.log_text(), 10, "the station to refuse")
                linphone.wait_output(f"with sip:door@127.0.0.1:{station.port} error", 10)
                assert station.state()["call"]["state"] == "idle"
                assert not station.state()["relay"]["energised"]
                continue
            station.wait_event(10, event="call", state="answered")
            time.sleep(1.5)
            for digit in "1234#":
                linphone.command(digit)
                time.sleep(0.3)
            station.wait_event(10, event="door", action="opened")
            linphone.command("terminate")
            station.wait_event(10, event="call_record", direction="incoming")
        finally:
            if station is not None:
                station.stop()
            linphone.stop()
    assert_heard(linphone.record, STATION_TONE, "linphone listening at the door")


def test_linphone_calls_our_user_agent_which_answers(tmp_path: Path) -> None:
    linphone = Linphone(tmp_path, free_port(), phone_audio(tmp_path), auto_answer=False)
    port = free_port()

    async def scenario() -> list[ev.UaEvent]:
        seen: list[ev.UaEvent] = []
        ua = UserAgent(UaSettings("door", "127.0.0.1", "127.0.0.1", port))
        endpoint = await SipEndpoint.open(ua, ("127.0.0.1", port), seen.append)

        async def wait(kind: type, timeout: float) -> ev.UaEvent:
            for _ in range(int(timeout / 0.05)):
                found = [e for e in seen if isinstance(e, kind)]
                if found:
                    return found[0]
                await asyncio.sleep(0.05)
            raise AssertionError(f"no {kind.__name__} from the UA; saw {seen}")
        try:
            linphone.command(f"call sip:door@127.0.0.1:{port}")
            incoming = await wait(ev.IncomingCall, 10)
            assert isinstance(incoming, ev.IncomingCall)
            offer = sdp.parse(incoming.sdp)
            answer = sdp.answer_for(offer, offer_formats(["PCMU", "PCMA"]), "127.0.0.1",
                                    free_port(), 20)
            body = sdp.build(1, 1, "127.0.0.1", answer)
            endpoint.run(lambda now: ua.ring(incoming.call_id, now))
            await asyncio.sleep(0.5)
            endpoint.run(lambda now: ua.answer(incoming.call_id, body, now))
            for _ in range(100):                       # the ACK confirms it
                if ua.calls[incoming.call_id].ok is None:
                    break
                await asyncio.sleep(0.05)
            assert ua.calls[incoming.call_id].ok is None, "no ACK from linphonec"
            await asyncio.sleep(1.0)
            linphone.command("terminate")
            await wait(ev.CallEnded, 10)
        finally:
            endpoint.close()
        return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        linphone.stop()
    ended = [e for e in seen if isinstance(e, ev.CallEnded)]
    assert ended and ended[0].by_remote and ended[0].reason == "BYE"
    assert not [e for e in seen if isinstance(e, ev.MessageRejected)]
