"""``intercom sim`` in a pseudo-terminal: keys in, the live screen out."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from intercom.sim import render


def test_render_shows_leds_relay_door_call_and_events() -> None:
    state = {"station": "Front door", "registration": {"state": "registered",
                                                       "registrar": "sip:pbx"},
             "call": {"state": "answered", "peer": "sip:resident@pbx"},
             "relay": {"energised": True, "held": False}, "door_closed": False,
             "tamper_open": False, "alarms": [], "leds": {"status": "on", "call": "fast",
                                                          "rgb": "x"}, "buttons": ["bell"]}
    lines = render(state, ["12:00:00 button 'bell' pressed"], [("1", "press bell")], "", 1)
    text = "\n".join(lines)
    assert "registration: registered at sip:pbx" in text
    assert "call ○ fast" in text and "status ● on" in text       # blinking: dark this tick
    assert "relay     ENERGISED   door: OPEN   tamper: closed" in text
    assert "call      answered  sip:resident@pbx" in text
    assert "[1] press bell" in text and "12:00:00 button 'bell' pressed" in text
    assert "station: not reachable" in "\n".join(render(None, [], [], "", 0))


def test_the_sim_in_a_terminal_rings_opens_raises_an_alarm_and_quits() -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "intercom.cli", "sim"], stdin=slave,
                            stdout=slave, stderr=subprocess.DEVNULL, close_fds=True)
    os.close(slave)
    screen = ""

    def wait_for(text: str, timeout: float = 15) -> None:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    screen = (screen + os.read(master, 65536).decode(errors="replace"))[-20000:]
                except OSError:
                    break
            last = screen.rsplit("\x1b[2J", 1)[-1]          # the latest full screen
            if text in last:
                return
        raise AssertionError(f"{text!r} not on the screen:\n{screen[-3000:]}")
    try:
        wait_for("registration: registered")
        wait_for("call      idle")
        os.write(master, b"1")                               # the first bell
        wait_for("call      answered")
        os.write(master, b"c")                               # the demo phone keys the code
        wait_for("relay     ENERGISED")
        wait_for("door opened by code from sip:resident@")
        wait_for("key ***** from sip:resident@")
        assert "1234" not in screen                          # the code is never shown
        os.write(master, b"t")                               # someone opens the case
        wait_for("alarms    tamper")
        wait_for("status ● flash")
        os.write(master, b"q")
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
