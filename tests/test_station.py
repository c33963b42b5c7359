"""The whole station in-process, against the built-in demo phone on loopback."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, need_espeak

from intercom.app.station import DoorStation
from intercom.config import validate
from intercom.control import ControlServer
from intercom.demo import wait_until
from intercom.demo_peer import DemoPhone
from intercom.hal.board import BoardProfile, SimulatedBoard


class Rig:
    def __init__(self, station: DoorStation, control: ControlServer,
                 phones: list[DemoPhone]) -> None:
        self.station, self.control, self.phones = station, control, phones
        self.events: list[dict[str, Any]] = []
        station.subscribe(lambda e: self.events.append(e.to_json()))

    def seen(self, kind: str, **fields: Any) -> bool:
        return any(e["event"] == kind and all(e.get(k) == v for k, v in fields.items())
                   for e in self.events)

    async def ctl(self, request: dict[str, Any] | bytes) -> dict[str, Any]:
        reader, writer = await asyncio.open_unix_connection(str(self.control.path))
        data = request if isinstance(request, bytes) else json.dumps(request).encode() + b"\n"
        writer.write(data)
        reply: dict[str, Any] = json.loads(await asyncio.wait_for(reader.readline(), 5))
        writer.close()
        return reply


def run_rig(tmp_path: Path, body: Callable[[Rig], Awaitable[None]], phones: int = 1,
            answer_after: tuple[float, ...] = (0.3,), phone_ports: list[int] | None = None,
            phone_mic: str = "", **sections: dict[str, Any]) -> None:
    async def main() -> None:
        ports = phone_ports or [free_port() for _ in range(phones)]
        demo_phones = [DemoPhone(p, str(tmp_path / f"phone{i}.wav"),
                                 answer_after=answer_after[min(i, len(answer_after) - 1)],
                                 mic_file=phone_mic)
                       for i, p in enumerate(ports)]
        for phone in demo_phones:
            await phone.start()
        raw: dict[str, Any] = {
            "sip": {"listen": "127.0.0.1", "port": free_port()},
            "call": {"targets": [f"sip:resident@127.0.0.1:{p}" for p in ports],
                     "ring_time": 5},
            "audio": {"speaker_file": str(tmp_path / "speaker.wav")},
            "door": {"codes": ["1234#"], "pulse_seconds": 0.5},
            "control": {"socket": str(tmp_path / "ctl" / "control.sock")},
            "log": {"database": str(tmp_path / "events.db")}}
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        board = SimulatedBoard(BoardProfile.load("simulator"))
        station = DoorStation(validate(raw), board)
        control = ControlServer(station, Path(raw["control"]["socket"]))
        await station.start()
        await control.start()
        try:
            await body(Rig(station, control, demo_phones))
        finally:
            await station.stop()
            await control.stop()
            for phone in demo_phones:
                phone.close()
            board.close()
    asyncio.run(main())


def test_unanswered_call_is_cancelled_and_the_next_target_rings(tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        assert (await rig.ctl({"cmd": "press", "button": "bell"})) == {"ok": True}
        assert await wait_until(lambda: rig.seen("call", state="answered"), 12)
        failed = [e for e in rig.events if e["event"] == "call" and e["state"] == "cancelled"]
        assert failed and failed[0]["reason"] == "no answer within the ring time"
        assert failed[0]["peer"].endswith(str(rig.phones[0].port))
        answered = [e for e in rig.events if e["event"] == "call" and e["state"] == "answered"]
        assert answered[0]["peer"].endswith(str(rig.phones[1].port))
        assert rig.phones[0].call is None              # the first phone saw the CANCEL
    run_rig(tmp_path, body, phones=2, answer_after=(60.0, 0.3))


def test_a_target_whose_port_is_closed_is_passed_over_at_once(tmp_path: Path) -> None:
    """Nothing listens at the first target: the ICMP port-unreachable fails its INVITE
    at once (RFC 3261 8.1.3.1: a 503), and the next target rings within a second,
    not after the 32 s of Timer B or the ring time."""
    closed = free_port()

    async def body(rig: Rig) -> None:
        loop = asyncio.get_running_loop()
        pressed = loop.time()
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call", state="ringing"), 3)
        assert loop.time() - pressed < 1.5
        failed = next(e for e in rig.events if e["event"] == "call" and e["state"] == "failed")
        assert failed["peer"].endswith(f":{closed}") and failed["reason"] == "503 Unreachable"
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
    port = free_port()
    run_rig(tmp_path, body, phone_ports=[port],
            call={"targets": [f"sip:resident@127.0.0.1:{closed}",
                              f"sip:resident@127.0.0.1:{port}"], "ring_time": 20})


@pytest.mark.parametrize("case", ["silent registrar", "closed port", "wrong password"])
def test_registration_trouble_is_a_warning_with_the_fix_within_seconds(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str) -> None:
    """A registrar that does not answer is named at WARNING 4 s in, with what to check
    (not 32 s later at Timer B, and not only at INFO); a wrong password likewise."""
    import logging
    caplog.set_level(logging.INFO)
    quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # takes it, never answers
    quiet.bind(("127.0.0.1", 0))
    silent = quiet.getsockname()[1] if case == "silent registrar" else free_port()
    port = free_port()

    async def body(rig: Rig) -> None:
        def warned() -> list[str]:
            return [r.getMessage() for r in caplog.records
                    if r.levelno == logging.WARNING and "fix:" in r.getMessage()]
        assert await wait_until(lambda: bool(warned()), 6)
        if case == "silent registrar":
            assert f"registrar sip:127.0.0.1:{silent} has not answered for 4 s" in warned()[0]
            assert "check [sip] registrar" in warned()[0]
        elif case == "closed port":          # ICMP says so at once
            assert "failed: 503 Unreachable" in warned()[0]
            assert "check [sip] registrar" in warned()[0]
        else:
            assert "registration at sip:127.0.0.1:" in warned()[0]
            assert "401" in warned()[0] or "403" in warned()[0]
            assert "check [sip] user, auth_user and password" in warned()[0]
        # and then it waits out its backoff: no storm of REGISTERs (and warnings)
        await asyncio.sleep(1.5)
        assert len(warned()) == 1, warned()[:3]
    registrar = port if case == "wrong password" else silent
    try:
        run_rig(tmp_path, body, phone_ports=[port],
                sip={"registrar": f"sip:127.0.0.1:{registrar}", "password": "not-the-password",
                     "user": "door"})
    finally:
        quiet.close()


def test_parallel_ringing_the_first_to_answer_wins_and_the_others_get_cancel(
        tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
        peers = [f"sip:resident@127.0.0.1:{p.port}" for p in rig.phones]
        calls = [e for e in rig.events if e["event"] == "call"]
        assert [e["peer"] for e in calls if e["state"] == "calling"] == peers
        assert rig.seen("call", state="answered", peer=peers[1])
        assert await wait_until(lambda: all(rig.seen("call", state="cancelled", peer=p,
                                                     reason="answered elsewhere")
                                            for p in (peers[0], peers[2])), 3)
        assert rig.phones[0].call is None and rig.phones[2].call is None
        assert rig.phones[1].call is not None
        rig.phones[1].hangup()
        assert await wait_until(lambda: rig.seen("call_record"), 5)
        record = next(e for e in rig.events if e["event"] == "call_record")
        assert (record["outcome"], record["answered_by"], list(record["tried"])) == \
            ("answered", peers[1], peers)
    run_rig(tmp_path, body, phones=3, answer_after=(60.0, 0.5, 60.0),
            call={"strategy": "parallel"})


def test_parallel_ringing_two_answers_at_once_one_call_and_the_other_released(
        tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
        # The loser's 200 OK crossed our CANCEL: it is ACKed and ended with BYE.
        assert await wait_until(lambda: sum(p.call is not None for p in rig.phones) == 1, 5)
        await asyncio.sleep(0.5)
        answered = [e for e in rig.events if e["event"] == "call" and e["state"] == "answered"]
        assert len(answered) == 1
        winner = next(p for p in rig.phones if p.call is not None)
        assert answered[0]["peer"].endswith(str(winner.port))
        winner.send_dtmf("1234#")
        assert await wait_until(lambda: rig.seen("door", action="opened"), 5)
    run_rig(tmp_path, body, phones=2, answer_after=(0.4, 0.4), call={"strategy": "parallel"})


def test_the_visitor_hears_ringback_then_busy_in_the_countrys_tones(tmp_path: Path) -> None:
    """Nobody answers: while the target rings the door's speaker plays the British
    ringback (400+450 Hz, double ring), and once the station gives up, the busy
    tone (400 Hz, 0.375 s on and off)."""
    from intercom.media.signal import read_wav, tone_dbfs

    async def body(rig: Rig) -> None:
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call_record", outcome="no answer"), 10)
        await asyncio.sleep(2.0)
    run_rig(tmp_path, body, answer_after=(60.0,), station={"country": "gb"},
            call={"ring_timeout": 5}, audio={"rate": 16000})
    pcm, rate = read_wav(str(tmp_path / "speaker.wav"))

    def level(start: float, end: float, freq: float) -> float:
        return tone_dbfs(pcm[round(start * rate):round(end * rate)], freq, rate)
    # ringback from the press: 0.4 s on, 0.2 off, 0.4 on, 2 s off
    assert level(0.05, 0.35, 400) > -25 and level(0.05, 0.35, 450) > -25
    assert level(0.45, 0.55, 400) < -60
    assert level(0.65, 0.95, 450) > -25
    assert level(1.2, 2.9, 400) < -60
    # busy after the give-up (5 s): whole seconds of 400 Hz alone, half on
    busy = pcm[round(5.3 * rate):round(7.3 * rate)]
    assert tone_dbfs(busy, 400, rate) > -26 and tone_dbfs(busy, 450, rate) < -50


def test_the_resident_hears_the_door_open_and_a_wrong_code_in_the_call(tmp_path: Path) -> None:
    from intercom.media.signal import read_wav, tone_dbfs

    async def body(rig: Rig) -> None:
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
        await asyncio.sleep(1.0)
        rig.phones[0].send_dtmf("99#")
        assert await wait_until(lambda: rig.seen("door", action="rejected"), 5)
        await asyncio.sleep(1.0)
        rig.phones[0].send_dtmf("1234#")
        assert await wait_until(lambda: rig.seen("door", action="opened"), 5)
        await asyncio.sleep(1.0)
        rig.phones[0].hangup()
        assert await wait_until(lambda: rig.seen("call", state="ended"), 5)
    run_rig(tmp_path, body)
    heard, rate = read_wav(str(tmp_path / "phone0.wav"))
    door, door_rate = read_wav(str(tmp_path / "speaker.wav"))

    def loudest(pcm: object, freq: float, r: int) -> float:
        import numpy as np
        x = np.asarray(pcm)
        return max(tone_dbfs(x[i:i + r // 10], freq, r) for i in range(0, len(x) - r // 10,
                                                                         r // 20))
    assert loudest(heard, 330, rate) > -30           # the wrong-code tone, to the resident
    assert loudest(heard, 1320, rate) > -30          # the door chime's last note
    assert loudest(door, 1320, door_rate) > -30      # and the visitor hears it too
    assert loudest(door, 330, door_rate) < -40       # but not the wrong code (-19 if so)


def test_door_codes_never_reach_the_log_the_events_or_the_event_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Keys are counted, never shown: not in any log line at any level, not in
    `ctl events`, not in the SQLite event log, for a wrong code and the right one."""
    import logging
    caplog.set_level(logging.DEBUG)

    async def body(rig: Rig) -> None:
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
        rig.phones[0].send_dtmf("5678#")
        assert await wait_until(lambda: rig.seen("door", action="rejected"), 5)
        rig.phones[0].send_dtmf("1234#")
        assert await wait_until(lambda: rig.seen("door", action="opened"), 5)
        keys = [e for e in rig.events if e["event"] == "dtmf"]
        assert [e["count"] for e in keys] == list(range(1, 11))
        assert all(set(e) == {"event", "time", "caller", "count"} for e in keys)
        logged = await rig.ctl({"cmd": "log", "count": 100})
        assert "5678" not in json.dumps(logged) and "1234" not in json.dumps(logged)
        rig.phones[0].hangup()
        assert await wait_until(lambda: rig.seen("call", state="ended"), 5)
    run_rig(tmp_path, body)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("key ***** from sip:resident@") for line in lines)
    for line in lines:
        # no digit of either code, one per line or together, once the URIs are gone
        bare = " ".join(w for w in line.split() if "sip:" not in w and "127.0.0.1" not in w)
        if "key" in bare or "dtmf" in bare.lower() or "digit" in bare:
            assert not any(d in bare for d in "5678") or "digits)" in bare, line
        assert "5678" not in line and "1234" not in line, line


def test_broken_sound_file_is_reported_and_the_door_still_opens(tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        state = (await rig.ctl({"cmd": "state"}))["state"]
        assert "nothere.wav" in state["audio"]["error"]          # reported at start
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
        assert await wait_until(lambda: any(e["event"] == "audio" and e["device_error"]
                                            for e in rig.events), 5)
        assert not rig.station.board.relay_energised
        rig.phones[0].send_dtmf("1234#")
        assert await wait_until(lambda: rig.seen("relay", energised=False), 5)
        assert rig.seen("door", action="opened")
        error = next(e["device_error"] for e in rig.events if e["event"] == "audio")
        assert "nothere.wav" in error
        assert not rig.station.board.relay_energised    # locked again after the pulse
    run_rig(tmp_path, body, audio={"mic_file": str(tmp_path / "nothere.wav")})


def test_malformed_sip_gets_400_and_the_station_carries_on(tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        port = rig.station.config.sip.port
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            bad = (b"INVITE sip:door@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
                   b"From: <sip:a@b>;tag=1\r\nTo: <sip:door@127.0.0.1>\r\nCall-ID: c\r\n"
                   b"CSeq: 1 INVITE\r\nContent-Length: 999\r\n\r\nv=0\r\n")
            for datagram in (b"\x00\xff garbage", bad):
                s.sendto(datagram, ("127.0.0.1", port))
            reply = await asyncio.wait_for(loop.sock_recv(s, 4096), 3)
        assert reply.startswith(b"SIP/2.0 400")
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
    run_rig(tmp_path, body)


def test_control_socket_is_private_and_reports_bad_requests(tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        path = rig.control.path
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o770
        assert (await rig.ctl(b"not json\n"))["ok"] is False
        unknown = await rig.ctl({"cmd": "reboot"})
        assert "allowed: press, state, events, log, hangup, door, input" in unknown["error"]
        button = await rig.ctl({"cmd": "press", "button": "gate"})
        assert "no button 'gate'" in button["error"]
        state = (await rig.ctl({"cmd": "state"}))["state"]
        assert state["call"] == {"state": "idle"} and state["relay"] == {"energised": False, "held": False}
        assert state["registration"]["state"] == "none" and state["door_closed"] is True
        assert state["audio"] == {"device": "simulated", "error": None}
        assert (await rig.ctl({"cmd": "hangup"})) == {
            "ok": False, "error": "no call to hang up: the station is idle"}
    run_rig(tmp_path, body)


def test_each_bell_calls_its_own_targets_and_one_press_places_one_call(
        tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        def calls() -> list[str]:
            return [e["peer"] for e in rig.events if e["event"] == "call"
                    and e["state"] == "calling"]
        first, second = (f"sip:resident@127.0.0.1:{p.port}" for p in rig.phones)
        await rig.ctl({"cmd": "press", "button": "bell2"})
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
        assert calls() == [second]
        rig.phones[1].hangup()
        assert await wait_until(lambda: rig.seen("call", state="ended"), 5)
        # pressed again within the hold-off (a held or bouncing button): no call
        station = rig.station
        assert station.loop.time() < station.core.holdoff_until - 0.5
        await rig.ctl({"cmd": "press", "button": "bell"})
        await asyncio.sleep(0.3)
        assert calls() == [second]
        await asyncio.sleep(station.core.holdoff_until - station.loop.time() + 0.1)
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: len(calls()) == 2, 5)
        assert calls() == [second, first]
    rig_phones = [free_port(), free_port()]
    run_rig(tmp_path, body, phones=2, phone_ports=rig_phones,
            call={"targets": [f"sip:resident@127.0.0.1:{rig_phones[0]}"],
                  "button_targets": {"bell2": [f"sip:resident@127.0.0.1:{rig_phones[1]}"]},
                  "press_holdoff": 4})


def test_targets_for_a_button_the_board_lacks_are_refused(tmp_path: Path) -> None:
    from intercom.config import ConfigError
    raw = {"call": {"targets": ["sip:a@127.0.0.1"],
                    "button_targets": {"gate": ["sip:b@127.0.0.1"]}}}
    board = SimulatedBoard(BoardProfile.load("simulator"))

    async def make() -> None:
        DoorStation(validate(raw), board)
    try:
        with pytest.raises(ConfigError, match="call.button_targets.gate: the board has no "
                                              "such button; it has bell, bell2"):
            asyncio.run(make())
    finally:
        board.close()


def station_uri(rig: Rig) -> str:
    return f"sip:door@127.0.0.1:{rig.station.config.sip.port}"


def test_a_caller_not_configured_gets_403_and_nothing_rings_or_opens(tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        phone = rig.phones[0]
        heard: list[str] = []
        phone.on_event = lambda kind, data: heard.append(f"{kind} {data}")
        await phone.dial(station_uri(rig))
        assert await wait_until(lambda: bool(heard), 3)
        assert heard == ["call failed 403 Forbidden"]
        refused = [e for e in rig.events if e["event"] == "call"]
        assert [e["state"] for e in refused] == ["refused"]
        assert refused[0]["peer"] == "sip:resident@127.0.0.1"
        assert not rig.seen("relay") and rig.station.core.call is None
    run_rig(tmp_path, body)


def test_a_configured_resident_calls_in_listens_at_the_door_and_opens_it(
        tmp_path: Path) -> None:
    """The station answers at once; the resident hears the door (the station's
    microphone tone) but the door does not hear the resident (listen only, the
    default); a door code keyed in the call opens the door."""
    from peers import assert_heard

    from intercom.media.signal import read_wav, rms_dbfs

    async def body(rig: Rig) -> None:
        phone = rig.phones[0]
        heard: list[str] = []
        phone.on_event = lambda kind, data: heard.append(f"{kind} {data}")
        await phone.dial(station_uri(rig))
        assert await wait_until(lambda: rig.seen("call", state="answered"), 3)
        assert rig.seen("call", state="answered", reason="PCMU (incoming)")
        assert heard == ["answered with PCMU"]
        await asyncio.sleep(1.5)
        phone.send_dtmf("1234#")
        assert await wait_until(lambda: rig.seen("door", action="opened",
                                                 caller="sip:resident@127.0.0.1"), 5)
        phone.hangup()
        assert await wait_until(lambda: rig.seen("call_record", direction="incoming"), 5)
        record = next(e for e in rig.events if e["event"] == "call_record")
        assert record["outcome"] == "answered" and record["seconds"] > 1.5
        assert rig.station.core.call is None and not rig.station.busy
    run_rig(tmp_path, body, incoming={"callers": ["sip:resident@127.0.0.1"]},
            audio={"speaker_file": str(tmp_path / "speaker.wav"), "rate": 8000})
    assert_heard(tmp_path / "phone0.wav", 440, "the resident")
    door_speaker, _ = read_wav(str(tmp_path / "speaker.wav"))
    assert len(door_speaker) > 8000 and rms_dbfs(door_speaker) < -80


def test_a_caller_is_not_believed_on_its_from_header_alone(tmp_path: Path) -> None:
    """An INVITE that claims to come from an allowed phone at 192.0.2.7 but comes
    from somewhere else (here 127.0.0.1, not our registrar) gets 403."""
    async def body(rig: Rig) -> None:
        port = rig.station.config.sip.port
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        me = sock.getsockname()[1]
        invite = (f"INVITE sip:door@127.0.0.1:{port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-forged1\r\n"
                  "Max-Forwards: 70\r\nFrom: <sip:resident@192.0.2.7>;tag=f1\r\n"
                  f"To: <sip:door@127.0.0.1:{port}>\r\nCall-ID: forged-1@127.0.0.1\r\n"
                  f"CSeq: 1 INVITE\r\nContact: <sip:resident@127.0.0.1:{me}>\r\n"
                  "Content-Length: 0\r\n\r\n")
        sock.setblocking(False)
        sock.sendto(invite.encode(), ("127.0.0.1", port))
        loop = asyncio.get_running_loop()
        statuses = []
        for _ in range(2):
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 3)
            statuses.append(data.split(b"\r\n")[0].decode())
        sock.close()
        assert statuses == ["SIP/2.0 100 Trying", "SIP/2.0 403 Forbidden"]
        assert rig.seen("call", state="refused", peer="sip:resident@192.0.2.7")
    run_rig(tmp_path, body, incoming={"callers": ["sip:resident@192.0.2.7"]})


def test_ctl_cli_press_state_and_events(tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        sock = str(rig.control.path)

        async def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "intercom.cli",
                                           "ctl", "--socket", sock, *args], capture_output=True,
                                           text=True, timeout=20)
        events = asyncio.create_task(cli("events", "--count", "3", "--timeout", "10"))
        await asyncio.sleep(0.8)
        press = await cli("press", "bell")
        assert press.returncode == 0, press.stderr
        out = await events
        kinds = [json.loads(line)["event"] for line in out.stdout.splitlines()]
        assert kinds[:2] == ["button", "call"]
        state = json.loads((await cli("state")).stdout)
        assert state["call"]["state"] in ("calling", "ringing", "answered")
        missing = await cli("press", "nonesuch")
        assert missing.returncode == 1 and "no button" in missing.stderr
        assert (await cli("door", "hold")).returncode == 0
        assert json.loads((await cli("state")).stdout)["relay"]["held"]
        assert (await cli("door", "lock")).returncode == 0
        assert not rig.station.board.relay_energised
        usage = await cli("door")
        assert usage.returncode == 2 and "usage: intercom ctl door open|hold|lock" in usage.stderr
        usage = await cli("input", "tamper", "maybe")
        assert usage.returncode == 2 and "input door|tamper on|off" in usage.stderr
    run_rig(tmp_path, body)


def test_ctl_without_a_running_station_says_so(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "intercom.cli", "ctl", "--socket",
                          str(tmp_path / "none.sock"), "state"], capture_output=True, text=True,
                         timeout=20)
    assert out.returncode == 1 and "cannot reach the station" in out.stderr


def test_the_demo_passes_and_prints_its_timeline() -> None:
    out = subprocess.run([sys.executable, "-m", "intercom.cli", "demo"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    for needle in ("registration registered", "button 'bell' pressed", "call answered",
                   "key ***** from", "door code rejected from",
                   "door opened by code from sip:resident@",
                   "door relay released after", "call ended", "demo passed"):
        assert needle in out.stdout
    assert "FAIL" not in out.stdout


def run_station(tmp_path: Path, extra: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[call]\ntargets = ["sip:resident@127.0.0.1:5999"]\n'
                   f'[control]\nsocket = "{tmp_path / "c.sock"}"\n'
                   f'[log]\ndatabase = "{tmp_path / "events.db"}"\n{extra}')
    return subprocess.run([sys.executable, "-m", "intercom.cli", "run", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=timeout)


def test_one_station_per_control_socket_and_the_record_readable_when_stopped(
        tmp_path: Path) -> None:
    """A second `intercom run` on the same control socket refuses to start and leaves
    the first one's socket alone; `ctl hangup` with no call says why; `ctl log` reads
    the SQLite file once the station is stopped."""
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'[sip]\nlisten = "127.0.0.1"\nport = {free_port()}\n'
                   f'[call]\ntargets = ["sip:resident@127.0.0.1:{free_port()}"]\n'
                   f'[audio]\nspeaker_file = "{tmp_path / "s.wav"}"\n'
                   f'[control]\nsocket = "{tmp_path / "c.sock"}"\n'
                   f'[log]\ndatabase = "{tmp_path / "events.db"}"\n')
    second = tmp_path / "second.toml"
    second.write_text(cfg.read_text().replace("port = ", f"port = {free_port()}\n#", 1))

    def cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "intercom.cli", *args],
                              capture_output=True, text=True, timeout=timeout)
    first = subprocess.Popen([sys.executable, "-m", "intercom.cli", "run", "--config", str(cfg)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(150):
            if cli("ctl", "--config", str(cfg), "state").returncode == 0:
                break
        hangup = cli("ctl", "--config", str(cfg), "hangup")
        assert hangup.returncode == 1
        assert "no call to hang up: the station is idle" in hangup.stderr
        assert cli("ctl", "--config", str(cfg), "press", "bell").returncode == 0
        refused = cli("run", "--config", str(second))
        assert refused.returncode == 1
        assert "another station answers on the control socket" in refused.stderr
        assert cli("ctl", "--config", str(cfg), "state").returncode == 0   # still the first's
    finally:
        first.terminate()
        first.wait(15)
    assert not (tmp_path / "c.sock").exists()
    logged = cli("ctl", "--config", str(cfg), "log")
    assert logged.returncode == 0, logged.stderr
    assert "call_record" in logged.stdout and "bell" in logged.stdout


def test_sip_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        out = run_station(tmp_path, f'[sip]\nlisten = "127.0.0.1"\nport = {port}\n')
    assert out.returncode == 1
    assert f"cannot open SIP port 127.0.0.1:{port}" in out.stderr


def test_gpio_board_without_gpio_is_a_clear_error(tmp_path: Path) -> None:
    out = run_station(tmp_path, '[board]\ntype = "gpio"\n')
    assert out.returncode == 1 and "board:" in out.stderr
    assert "Traceback" not in out.stderr


def test_an_address_change_re_offers_the_call_with_the_new_address(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Wi-Fi/4G handover, as the station sees it: the route to the peer now
    leaves from another address. Both are on loopback here, so the call goes on."""
    route = ["127.0.0.1"]

    async def body(rig: Rig) -> None:
        monkeypatch.setattr("intercom.app.station.route_address",
                            lambda config, toward=None: route[0])
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
        phone = rig.phones[0]
        (call,) = phone.ua.calls.values()
        assert b"c=IN IP4 127.0.0.1" in call.remote_sdp
        route[0] = "127.0.0.2"
        assert await wait_until(lambda: b"c=IN IP4 127.0.0.2" in call.remote_sdp, 5)
        assert call.dialog is not None and call.dialog.remote_target.host == "127.0.0.2"
        assert rig.seen("call", state="answered") and not rig.seen("call", state="ended")
        phone.hangup()                                 # the BYE goes to the new Contact
        assert await wait_until(lambda: rig.seen("call", state="ended"), 5)
    run_rig(tmp_path, body, sip={"listen": "0.0.0.0", "address_check": 0.2})


def test_a_call_target_by_domain_is_found_by_srv(tmp_path: Path) -> None:
    from peers import DnsServer
    port = free_port()
    dns = DnsServer({("_sip._udp.phone.test", "SRV"): [f"10 0 {port} host.phone.test."],
                     ("host.phone.test", "A"): ["127.0.0.1"]})

    async def body(rig: Rig) -> None:
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
        rig.phones[0].hangup()
        assert await wait_until(lambda: rig.seen("call", state="ended"), 5)
    try:
        run_rig(tmp_path, body, phone_ports=[port],
                call={"targets": ["sip:resident@phone.test"]},
                sip={"dns_servers": [f"127.0.0.1:{dns.port}"]})
    finally:
        dns.stop()
    assert ("_sip._udp.phone.test", "SRV") in dns.queries


def test_the_resident_does_not_hear_himself_back(tmp_path: Path) -> None:
    """The resident talks (espeak-ng speech); the simulated room returns it from the
    station's speaker to its microphone. The street is quiet, so whatever the phone
    hears back is echo: with the canceller on it must be 25 dB weaker than without."""
    import numpy as np

    from intercom.media.signal import read_wav, rms_dbfs, synthesized_speech, write_wav
    need_espeak()
    speech = synthesized_speech(8000)
    write_wav(str(tmp_path / "resident.wav"), np.concatenate([speech, speech]), 8000)
    write_wav(str(tmp_path / "street.wav"), np.zeros(8000, dtype=np.int16), 8000)

    def echo_heard(cancel: bool) -> float:
        work = tmp_path / ("on" if cancel else "off")
        work.mkdir()

        async def body(rig: Rig) -> None:
            await rig.ctl({"cmd": "press", "button": "bell"})
            assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
            await asyncio.sleep(5.0)
            rig.phones[0].hangup()
            assert await wait_until(lambda: rig.seen("call", state="ended"), 5)
        run_rig(work, body, phone_mic=str(tmp_path / "resident.wav"),
                audio={"echo_cancel": cancel, "rate": 8000,
                       "mic_file": str(tmp_path / "street.wav"),
                       "sim_echo_gain_db": -6, "sim_noise_dbfs": -90})
        pcm, rate = read_wav(str(work / "phone0.wav"))
        return rms_dbfs(pcm[-3 * rate:])                   # after the canceller converged
    echo_off, echo_on = echo_heard(False), echo_heard(True)
    print(f"the resident's own voice back: {echo_off:.1f} -> {echo_on:.1f} dBFS")
    assert echo_off > -35                                  # the room's echo is loud
    assert echo_on < echo_off - 25, (echo_on, echo_off)


def test_door_codes_from_tones_in_the_audio_only_when_enabled(tmp_path: Path) -> None:
    """The resident's phone plays 1234# as tones in the audio (no RFC 4733). By default
    that opens nothing (anyone near the phone could play them); with door.inband_dtmf
    it opens the door."""
    import sys

    import numpy as np

    from intercom.media.signal import write_wav
    sys.path.insert(0, str(Path(__file__).parent))
    from test_dtmf_inband import gap, key
    code = np.concatenate([gap(1500)] + [np.concatenate([key(d, 80, dbfs=-12), gap(120)])
                                         for d in "1234#"] + [gap(8000)])
    write_wav(str(tmp_path / "tones.wav"), code, 8000)

    def opened(enabled: bool) -> bool:
        work = tmp_path / str(enabled)
        work.mkdir()
        result = []

        async def body(rig: Rig) -> None:
            await rig.ctl({"cmd": "press", "button": "bell"})
            assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
            await wait_until(lambda: rig.seen("door", action="opened"), 4)
            result.append(rig.seen("door", action="opened"))
            rig.phones[0].hangup()
            assert await wait_until(lambda: rig.seen("call", state="ended"), 5)
        run_rig(work, body, phone_mic=str(tmp_path / "tones.wav"),
                door={"inband_dtmf": enabled}, audio={"rate": 8000})
        return result[0]
    assert not opened(False)
    assert opened(True)


def test_hold_open_lock_the_door_left_open_alarm_and_the_tamper_alarm(tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        def kinds() -> list[tuple[Any, ...]]:
            keep = {"relay": "energised", "door_contact": "closed", "door": "action"}
            out: list[tuple[Any, ...]] = []
            for e in rig.events:
                if e["event"] in keep:
                    out.append((e["event"], e[keep[e["event"]]]))
                elif e["event"] == "alarm":
                    out.append(("alarm", e["cause"], e["active"]))
            return out
        assert (await rig.ctl({"cmd": "door", "action": "hold"})) == {"ok": True}
        # the simulated strike lets the door open; left open 1 s: the alarm
        assert await wait_until(lambda: ("alarm", "door_open", True) in kinds(), 4)
        state = (await rig.ctl({"cmd": "state"}))["state"]
        assert state["relay"] == {"energised": True, "held": True}
        assert state["alarms"] == ["door_open"]
        await asyncio.sleep(pulse + 0.5)                     # a hold outlasts any pulse
        assert rig.station.board.relay_energised
        assert (await rig.ctl({"cmd": "door", "action": "lock"})) == {"ok": True}
        assert await wait_until(lambda: ("alarm", "door_open", False) in kinds(), 4)
        assert kinds() == [("relay", True), ("door", "held_open"), ("door_contact", False),
                           ("alarm", "door_open", True), ("relay", False), ("door", "locked"),
                           ("door_contact", True), ("alarm", "door_open", False)]
        rig.events.clear()
        assert (await rig.ctl({"cmd": "input", "name": "tamper", "active": True}))["ok"]
        assert await wait_until(lambda: kinds() == [("alarm", "tamper", True)], 3)
        await rig.ctl({"cmd": "input", "name": "tamper", "active": False})
        assert await wait_until(lambda: ("alarm", "tamper", False) in kinds(), 3)
        bad = await rig.ctl({"cmd": "door", "action": "unlock-forever"})
        assert bad == {"ok": False, "error": "door action 'unlock-forever'; allowed: open, "
                                             "hold, lock"}
    pulse = 0.5
    run_rig(tmp_path, body, door={"open_alarm_seconds": 1, "pulse_seconds": pulse})


def test_the_door_alarm_and_tamper_lines_are_logged_for_fail2ban(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def body(rig: Rig) -> None:
        await rig.ctl({"cmd": "input", "name": "tamper", "active": True})
        assert await wait_until(lambda: rig.seen("alarm", cause="tamper"), 3)
        await rig.ctl({"cmd": "door", "action": "open"})
        assert await wait_until(lambda: rig.seen("relay", energised=False), 3)
        await rig.ctl({"cmd": "door", "action": "hold"})
        await rig.ctl({"cmd": "door", "action": "lock"})
        await rig.ctl({"cmd": "input", "name": "tamper", "active": False})
        assert await wait_until(lambda: rig.seen("alarm", cause="tamper", active=False), 3)
    with caplog.at_level("INFO"):
        run_rig(tmp_path, body)
    lines = [r.getMessage() for r in caplog.records]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    # each security event once, at WARNING, in its fixed form (not again at INFO)
    for line in ("alarm tamper: the case was opened", "door opened by the control socket",
                 "door held open by the control socket (for up to 3600 s)",
                 "door locked by the control socket", "alarm tamper cleared: the case was closed"):
        assert warnings.count(line) == 1 and lines.count(line) == 1, (line, lines)


def test_a_lockout_survives_a_restart_and_ctl_log_shows_what_happened(tmp_path: Path) -> None:
    port = free_port()

    async def guess(rig: Rig) -> None:
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
        for n in range(3):
            rig.phones[0].send_dtmf("1111#")
            assert await wait_until(lambda: sum(e["event"] == "door" and e["action"] ==
                                                "rejected" for e in rig.events) == n + 1, 5)
        assert await wait_until(lambda: rig.seen("door", action="locked_out"), 3)

    async def after_restart(rig: Rig) -> None:
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
        rig.phones[0].send_dtmf("1234#")                 # the right code: still locked
        assert await wait_until(lambda: sum(e["event"] == "dtmf" for e in rig.events) == 5, 5)
        await asyncio.sleep(0.3)
        assert not rig.seen("door", action="opened") and not rig.seen("relay")
        out = await asyncio.to_thread(subprocess.run, [
            sys.executable, "-m", "intercom.cli", "ctl", "--socket", str(rig.control.path),
            "log", "--kind", "door"], capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert len(lines) == 5                 # 3 rejected, locked out (call, caller)
        assert all(" door " in line for line in lines)
        assert "action=rejected" in lines[0] and "source=127.0.0.1" in lines[0]
        assert 'reason="wrong code (5 digits)"' in lines[0]
    run_rig(tmp_path, guess, phone_ports=[port])
    run_rig(tmp_path, after_restart, phone_ports=[port])


def test_the_leds_follow_the_station_through_a_visit(tmp_path: Path) -> None:
    async def body(rig: Rig) -> None:
        board = rig.station.board

        def looks() -> tuple[str, str]:
            modes = board.led_modes()
            return modes["status"], modes["call"]
        assert looks() == ("on", "off")                                 # idle
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: looks() == ("on", "blink"), 3)  # ringing
        assert await wait_until(lambda: looks() == ("on", "on"), 5)     # in the call
        rig.phones[0].send_dtmf("1234#")
        assert await wait_until(lambda: looks() == ("on", "fast"), 5)   # the door opens
        assert board.led_modes()["rgb"] == "green fast"
        await rig.ctl({"cmd": "input", "name": "tamper", "active": True})
        assert await wait_until(lambda: looks()[0] == "flash", 3)       # an alarm
        assert board.led_modes()["rgb"] == "red flash"
        await rig.ctl({"cmd": "input", "name": "tamper", "active": False})
        rig.phones[0].hangup()
        assert await wait_until(lambda: looks() == ("on", "off"), 5)    # idle again
    run_rig(tmp_path, body, door={"pulse_seconds": 2.0})
