"""``intercom sim``: the simulated door station, live in the terminal.

Press the bells with the number keys and watch the LEDs, the relay, the door
and the call as they change. It drives the station through the control
socket, like ``intercom ctl``: a running station's (``--socket``), or,
without one, a station of its own on the embedded default (simulated board
and sound card, the built-in demo phone as registrar and resident), whose
phone can also key a code or hang up from here.

The screen is redrawn a few times a second with plain ANSI sequences; the
keys are read from the terminal in cbreak mode, restored on exit.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import termios
import time
import tty
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from intercom.app.events import describe
from intercom.demo import CODE, WRONG, PHONE_TONE, demo_config, free_udp_port

REFRESH = 0.2
LED_GLYPH = {"on": "●", "off": "○"}


def led_text(mode: str, tick: int) -> str:
    """A LED as the eye would catch it: lit, dark, or blinking with the refresh."""
    if mode in LED_GLYPH:
        return f"{LED_GLYPH[mode]} {mode}"
    return f"{'●' if tick % 2 == 0 else '○'} {mode}"


def render(state: dict[str, Any] | None, events: list[str], keys: list[tuple[str, str]],
           message: str, tick: int) -> list[str]:
    """The screen's lines for this state (None: the station cannot be reached)."""
    lines = ["intercom sim: the door station, live", ""]
    if state is None:
        lines.append("station: not reachable")
    else:
        reg = state["registration"]
        call = state["call"]
        relay = state["relay"]
        door = {True: "closed", False: "OPEN", None: "no contact"}[state["door_closed"]]
        lines += [f"station   {state['station']}   registration: {reg['state']}"
                  + (f" at {reg['registrar']}" if reg["registrar"] else ""),
                  "LEDs      " + "   ".join(f"{name} {led_text(mode.split()[-1], tick)}"
                                            + (f" {mode.split()[0]}" if name == "rgb" else "")
                                            for name, mode in sorted(state["leds"].items())),
                  f"relay     {'ENERGISED' if relay['energised'] else 'released'}"
                  + ("  (held open)" if relay.get("held") else "")
                  + f"   door: {door}   tamper: "
                  + {True: "OPEN", False: "closed", None: "none"}[state.get("tamper_open")],
                  f"call      {call['state']}" + (f"  {call['peer']}" if call.get("peer")
                                                    else ""),
                  "alarms    " + (", ".join(state.get("alarms", [])) or "none")]
    lines += ["", "keys      " + "  ".join(f"[{k}] {what}" for k, what in keys), "",
              "events"]
    lines += [f"  {e}" for e in events] or ["  (none yet)"]
    if message:
        lines += ["", message]
    return lines


class Sim:
    def __init__(self, socket: Path, out: TextIO,
                 phone_keys: Callable[[str], str] | None = None) -> None:
        self.socket = socket
        self.out = out
        self.phone_keys = phone_keys          # embedded mode: the demo phone's keypad
        self.events: deque[str] = deque(maxlen=10)
        self.message = ""
        self.state: dict[str, Any] | None = None
        self.done = asyncio.Event()
        self.buttons: list[str] = []
        self.tamper = False

    def keys(self) -> list[tuple[str, str]]:
        keys = [(str(i + 1), f"press {b}") for i, b in enumerate(self.buttons[:9])]
        keys += [("o", "open"), ("h", "hold"), ("l", "lock"), ("t", "tamper"),
                 ("x", "hang up")]
        if self.phone_keys is not None:
            keys += [("c", "phone keys the code"), ("w", "a wrong code"), ("e", "phone hangs up")]
        return keys + [("q", "quit")]

    async def request(self, request: dict[str, Any]) -> dict[str, Any]:
        reader, writer = await asyncio.open_unix_connection(str(self.socket))
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            reply: dict[str, Any] = json.loads(await asyncio.wait_for(reader.readline(), 5))
            return reply
        finally:
            writer.close()

    async def command(self, request: dict[str, Any], said: str) -> None:
        try:
            reply = await self.request(request)
        except (OSError, ValueError, TimeoutError) as exc:
            self.message = f"! {exc}"
            return
        self.message = said if reply.get("ok") else f"! {reply.get('error')}"

    def on_key(self, key: str) -> None:
        loop = asyncio.get_running_loop()
        if key == "q":
            self.done.set()
        elif key.isdigit() and 0 < int(key) <= len(self.buttons):
            button = self.buttons[int(key) - 1]
            loop.create_task(self.command({"cmd": "press", "button": button},
                                          f"pressed {button}"))
        elif key in "ohl":
            action = {"o": "open", "h": "hold", "l": "lock"}[key]
            loop.create_task(self.command({"cmd": "door", "action": action}, f"door {action}"))
        elif key == "t":
            self.tamper = not self.tamper
            loop.create_task(self.command({"cmd": "input", "name": "tamper",
                                           "active": self.tamper},
                                          f"tamper switch {'open' if self.tamper else 'closed'}"))
        elif key == "x":
            loop.create_task(self.command({"cmd": "hangup"}, "hang up"))
        elif key in "cwe" and self.phone_keys is not None:
            self.message = self.phone_keys(key)

    async def follow_events(self) -> None:
        while not self.done.is_set():
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.socket))
                writer.write(b'{"cmd": "events"}\n')
                await reader.readline()                        # the greeting
                while line := await reader.readline():
                    event = json.loads(line)
                    if event.get("event") != "audio":
                        stamp = time.strftime("%H:%M:%S", time.localtime(event["time"]))
                        self.events.append(f"{stamp} {describe(event)}")
                writer.close()
            except (OSError, ValueError):
                pass
            await asyncio.sleep(1.0)

    async def run(self) -> None:
        follower = asyncio.get_running_loop().create_task(self.follow_events())
        tick = 0
        try:
            while not self.done.is_set():
                try:
                    reply = await self.request({"cmd": "state"})
                    self.state = reply.get("state")
                    if self.state is not None:
                        self.buttons = list(self.state["buttons"])
                except (OSError, ValueError, TimeoutError):
                    self.state = None
                screen = render(self.state, list(self.events), self.keys(), self.message, tick)
                self.out.write("\x1b[H\x1b[2J" + "\r\n".join(screen) + "\r\n")
                self.out.flush()
                tick += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.done.wait(), REFRESH)
        finally:
            follower.cancel()


async def _embedded(sim_factory: Callable[[Path, Callable[[str], str]], Sim]) -> None:
    """The station and the demo phone in this process, and the sim on its socket."""
    from intercom.app.station import DoorStation
    from intercom.control import ControlServer
    from intercom.demo_peer import DemoPhone
    from intercom.hal.board import BoardProfile, SimulatedBoard
    with tempfile.TemporaryDirectory(prefix="intercom-sim-") as tmp:
        work = Path(tmp)
        phone_port = free_udp_port()
        phone = DemoPhone(phone_port, str(work / "phone-heard.wav"), tone_hz=PHONE_TONE)
        await phone.start()
        board = SimulatedBoard(BoardProfile.load("simulator"))
        station = DoorStation(demo_config(work, free_udp_port(), phone_port), board)
        control = ControlServer(station, work / "control.sock")
        await station.start()
        await control.start()

        def keypad(key: str) -> str:
            try:
                if key == "e":
                    phone.hangup()
                    return "the phone hung up"
                code = CODE if key == "c" else WRONG
                phone.send_dtmf(code)
                # Even the demo's code is not shown: a screen is no place for one.
                return f"the phone keyed {'the right' if key == 'c' else 'a wrong'} code " \
                    f"({'*' * len(code)})"
            except RuntimeError as exc:
                return f"! {exc}"
        try:
            await sim_factory(work / "control.sock", keypad).run()
        finally:
            await station.stop()
            await control.stop()
            phone.close()
            board.close()


def run_sim(socket: Path | None) -> int:
    """``intercom sim``: on a running station's socket, or on a station of its own."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd) if os.isatty(fd) else None

    def make(path: Path, keypad: Callable[[str], str] | None = None) -> Sim:
        sim = Sim(path, sys.stdout, keypad)

        def typed() -> None:
            data = os.read(fd, 32)
            if not data:                                    # end of input: done
                sim.done.set()
            for key in data.decode(errors="replace"):
                sim.on_key(key)
        asyncio.get_running_loop().add_reader(fd, typed)
        return sim

    async def main() -> None:
        if socket is not None:
            await make(socket).run()
        else:
            await _embedded(make)
    try:
        if saved is not None:
            tty.setcbreak(fd)
        sys.stdout.write("\x1b[?25l")                        # no cursor while drawing
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        sys.stdout.write("\x1b[?25h\r\n")
        sys.stdout.flush()
    return 0
