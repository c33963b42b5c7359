"""Life under systemd: readiness, the watchdog and a status line (sd_notify).

The protocol is a datagram of ``KEY=value`` lines to the Unix socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` is the abstract namespace). Outside
systemd the variable is unset and every call does nothing.

The watchdog is pinged from the event loop, and only while the station says
nothing is wrong (``DoorStation.trouble``: the SIP layer, the call's audio
thread). A loop that hangs, or a part that stops, lets ``WatchdogSec`` run
out and systemd restarts the service.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from intercom.app.station import DoorStation

log = logging.getLogger("intercom.service")


class Notifier:
    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        address = environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        self.watchdog_seconds: float | None = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_seconds = int(usec) / 1e6

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` (``READY=1``, ``STATUS=...``); False if it could not be sent."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError as exc:
            log.warning("sd_notify to %r failed: %s", self.address, exc)
            return False


def status_line(station: DoorStation) -> str:
    """systemctl status's one line: registration, call, alarms."""
    state = station.state()
    parts = [f"registration {state['registration']['state']}", f"call {state['call']['state']}"]
    if state["alarms"]:
        parts.append("alarm " + ", ".join(state["alarms"]))
    return "; ".join(parts)


async def watchdog(notifier: Notifier, trouble: Callable[[], str | None]) -> None:
    """Ping systemd's watchdog at half its interval while ``trouble()`` is None."""
    if notifier.watchdog_seconds is None:
        return
    withheld: str | None = None
    while True:
        why = trouble()
        if why is None:
            notifier.notify("WATCHDOG=1")
            if withheld is not None:
                log.warning("watchdog: working again (%s is over)", withheld)
        elif why != withheld:
            log.error("watchdog: not pinging systemd: %s", why)
            notifier.notify(f"STATUS=fault: {why}")
        withheld = why
        await asyncio.sleep(notifier.watchdog_seconds / 2)


def fallback_board(path: str) -> tuple[str, str]:
    """The board to show a config error on, when the config cannot be used: its
    [board] if that much of the file reads, else GPIO where there is GPIO."""
    import tomllib

    from intercom.hal import machine
    try:
        with open(path, "rb") as f:
            board = tomllib.load(f).get("board", {})
        if isinstance(board, dict) and board.get("type") in ("simulated", "gpio", "auto"):
            profile = board.get("profile", "")
            kind = machine.auto_board() if board["type"] == "auto" else str(board["type"])
            return kind, profile if isinstance(profile, str) else ""
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        pass
    return machine.auto_board(), ""


def _stamp(path: str) -> tuple[float, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime, st.st_size


async def wait_for_config(path: str, error: str, stop: asyncio.Event,
                          poll: float = 2.0) -> bool:
    """A config that cannot be used: keep the door locked, show the error on the
    LEDs, tell systemd (ready, with the error as status, and the watchdog fed),
    and wait until the file changes into one that can be used (True) or the
    service is stopped (False)."""
    from intercom import config as config_mod
    from intercom.hal.board import open_board
    from intercom.hal.errors import HalError
    log.error("config %s: %s; the door stays locked until the file is fixed", path, error)
    board = None
    try:
        board = open_board(*fallback_board(path))
        board.set_relay(False)
        board.set_led("status", "flash")
        board.set_led("call", "off")
        board.set_rgb((1.0, 0.0, 0.0), "flash")
    except HalError as exc:
        log.error("board: %s", exc)
    notifier = Notifier()
    notifier.notify("READY=1", f"STATUS=config error: {error}")
    pinger = asyncio.get_running_loop().create_task(watchdog(notifier, lambda: None))
    seen = _stamp(path)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), poll)
            except TimeoutError:
                pass
            now = _stamp(path)
            if now == seen:
                continue
            seen = now
            try:
                config_mod.load(path)
            except config_mod.ConfigError as exc:
                log.error("config %s still cannot be used: %s", path, exc)
                notifier.notify(f"STATUS=config error: {exc}")
                continue
            log.warning("config %s is usable now: starting the station", path)
            notifier.notify("RELOADING=1", "STATUS=starting with the fixed config")
            return True
        return False
    finally:
        pinger.cancel()
        if board is not None:
            board.set_relay(False)
            board.close()
