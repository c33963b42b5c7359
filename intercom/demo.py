"""``intercom demo``: the whole door-station scenario on the embedded default.

A simulated board and sound card, and the built-in demo peer (registrar and
resident's phone) on loopback. The bell is pressed through the control
socket; the phone answers, talks, keys a wrong code and then the right one,
and hangs up. A timeline is printed, then checks made on what happened and
on the recordings; the exit status is 0 only if every check passed.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from intercom.app.events import Event, describe
from intercom.app.station import DoorStation
from intercom.config import Config, validate
from intercom.control import ControlServer
from intercom.demo_peer import DemoPhone
from intercom.hal.board import BoardProfile, SimulatedBoard
from intercom.media.signal import longest_run, read_wav, syllables, tone_levels, write_wav

STATION_TONE = 440.0         # what the visitor says into the station (in syllables)
PHONE_TONE = 1000.0          # what the resident says (the demo phone's tone)
PULSE = 1.0
CODE = "1234#"
WRONG = "9999#"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_config(work: Path, station_port: int, phone_port: int) -> Config:
    # The visitor talks in syllables of a tone: broken like speech, so the noise
    # suppressor lets it through as it would a voice (a tone that never stops it
    # would take for a hum and turn down).
    voice = work / "visitor.wav"
    write_wav(str(voice), syllables(STATION_TONE, 5.0, 48000, amplitude=0.25), 48000)
    return validate({
        "station": {"name": "Demo door"},
        "sip": {"user": "door", "password": "demo-secret", "listen": "127.0.0.1",
                "port": station_port, "registrar": f"sip:127.0.0.1:{phone_port}"},
        "call": {"targets": [f"sip:resident@127.0.0.1:{phone_port}"], "ring_time": 15},
        "audio": {"device": "simulated", "mic_file": str(voice), "rate": 48000,
                  "speaker_file": str(work / "station-speaker.wav")},
        "door": {"codes": [CODE], "pulse_seconds": PULSE},
        "board": {"type": "simulated"},
        "control": {"socket": str(work / "control.sock")},
        "log": {"database": str(work / "events.db")},
    })


async def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def ctl_press(path: Path, button: str) -> dict[str, Any]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(json.dumps({"cmd": "press", "button": button}).encode() + b"\n")
    reply: dict[str, Any] = json.loads(await asyncio.wait_for(reader.readline(), 5))
    writer.close()
    return reply


async def scenario(work: Path, say: Callable[[str], None]) -> list[tuple[str, bool]]:
    events: list[dict[str, Any]] = []

    def seen(kind: str, **fields: Any) -> bool:
        return any(e["event"] == kind and all(e.get(k) == v for k, v in fields.items())
                   for e in events)

    def on_event(event: Event) -> None:
        data = event.to_json()
        events.append(data)
        say(describe(data))

    phone_port, station_port = free_udp_port(), free_udp_port()
    phone = DemoPhone(phone_port, str(work / "phone-heard.wav"), tone_hz=PHONE_TONE,
                      on_event=lambda kind, data: say(f"demo phone: {kind} {data}"))
    await phone.start()
    cfg = demo_config(work, station_port, phone_port)
    board = SimulatedBoard(BoardProfile.load("simulator"))
    station = DoorStation(cfg, board)
    station.subscribe(on_event)
    control = ControlServer(station, work / "control.sock")
    try:
        await station.start()
        await control.start()
        await wait_until(lambda: seen("registration", state="registered"), 5)
        say("pressing the bell (the control socket's press command)")
        await ctl_press(control.path, "bell")
        if await wait_until(lambda: seen("call", state="answered"), 10):
            await asyncio.sleep(2.0)
            say(f"demo phone keys a wrong code {WRONG}")
            phone.send_dtmf(WRONG)
            await wait_until(lambda: seen("door", action="rejected"), 5)
            say(f"demo phone keys the door code {CODE}")
            phone.send_dtmf(CODE)
            await wait_until(lambda: seen("relay", energised=False), 5 + PULSE)
            await asyncio.sleep(0.5)
            say("demo phone hangs up")
            phone.hangup()
            await wait_until(lambda: seen("call", state="ended"), 5)
    finally:
        await station.stop()
        await control.stop()
        phone.close()
        board.close()
    keys = [e["count"] for e in events if e["event"] == "dtmf"]
    code_shown = [e for e in events if CODE.rstrip("#") in json.dumps(e)]
    pulses = [e["seconds"] for e in events if e["event"] == "relay" and not e["energised"]]
    opened = [e for e in events if e["event"] == "door" and e["action"] == "opened"]
    checks = [
        ("station registered with digest auth", seen("registration", state="registered")),
        ("call answered", seen("call", state="answered")),
        (f"DTMF received once each: {len(keys)} keys", keys == list(range(1, 11))),
        ("no door code in any event", not code_shown),
        ("wrong code rejected", seen("door", action="rejected")),
        ("right code opened the door once", len(opened) == 1),
        (f"relay pulsed {pulses[0] if pulses else 0:.2f} s (configured {PULSE:.2f} s)",
         len(pulses) == 1 and abs(pulses[0] - PULSE) < 0.25),
        ("call ended cleanly", seen("call", state="ended")),
    ]
    quality = [e for e in events if e["event"] == "quality"]
    mos = quality[0]["mos"] if quality else 0.0
    concealed = quality[0]["concealed_frames"] if quality else -1
    checks.append((f"call quality: MOS {mos:.2f}, {concealed} frames concealed",
                   mos >= 4.0 and 0 <= concealed <= 5))
    times = {e["state"]: e["time"] for e in events if e["event"] == "call"}
    seconds = times.get("ended", 0.0) - times.get("answered", 0.0)
    for name, path, freq in (("station speaker", work / "station-speaker.wav", PHONE_TONE),
                             ("demo phone", work / "phone-heard.wav", STATION_TONE)):
        try:
            pcm, rate = read_wav(str(path))
        except (OSError, EOFError, ValueError) as exc:
            checks.append((f"{name} recording readable ({exc})", False))
            continue
        # Every second of the call but its first and last (the buffer filling, the
        # hang-up) carries the other side: talk that stopped at the code fails here.
        levels = tone_levels(pcm, freq, rate)
        start, length = longest_run(levels, -30.0)
        quietest = min(levels[start:start + length], default=-120.0)
        checks.append((f"{name} heard the {freq:.0f} Hz tone {length} s in a row of a "
                       f"{seconds:.1f} s call (quietest second {quietest:.1f} dBFS)",
                       seconds > 0 and length >= seconds - 2))
    return checks


def run_demo(keep: bool = False, verbose: bool = False) -> int:
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    start = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - start:6.2f} s] {text}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="intercom-demo-"))
    print("intercom demo: simulated board and sound card, built-in demo peer on 127.0.0.1")
    checks = asyncio.run(scenario(work, say))
    print("\nchecks:")
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    if keep:
        print(f"recordings kept in {work}")
    else:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
    passed = all(ok for _, ok in checks)
    print("demo " + ("passed" if passed else "FAILED"))
    return 0 if passed else 1
