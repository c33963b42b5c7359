"""Local control of a running station over a Unix socket (``intercom ctl``).

One JSON object per line. Requests: {"cmd": "press", "button": "bell"},
{"cmd": "state"}, {"cmd": "hangup"}, {"cmd": "door", "action": "open"} (or
"hold", "lock"), {"cmd": "input", "name": "tamper", "active": true} (the
simulated board's door contact and tamper switch), {"cmd": "log", "count":
20, "kind": "door"} (the latest kept events, from SQLite), {"cmd": "events"} (the
connection then streams the recent events and then new ones as JSON lines
until the client closes it). The socket is
mode 0660 in a directory of mode 0770: only the station's user and group.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intercom.app.events import Event
from intercom.ctl import default_socket
from intercom.hal.errors import HalError

if TYPE_CHECKING:
    from intercom.app.station import DoorStation

log = logging.getLogger("intercom.control")
MAX_REQUEST = 4096


class ControlError(Exception):
    """The control socket cannot be ours."""


def default_socket_path() -> Path:
    """Where the socket is when [control] socket is empty (intercom.ctl)."""
    return Path(default_socket())


def socket_path(configured: str) -> Path:
    return Path(configured) if configured else default_socket_path()


class ControlServer:
    def __init__(self, station: DoorStation, path: Path) -> None:
        self.station = station
        self.path = path
        self.server: asyncio.AbstractServer | None = None
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._inode: int | None = None

    def check_free(self) -> None:
        """Raise ControlError when another station answers on our socket: a second
        ``intercom run`` must not take it over (and delete it when it stops)."""
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(2)
        try:
            probe.connect(str(self.path))
        except OSError:
            return                                    # none, or a stale one from a crash
        finally:
            probe.close()
        raise ControlError(f"another station answers on the control socket {self.path}: "
                           "stop it first, or give this one its own [control] socket")

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.parent.stat().st_uid == os.geteuid():
            os.chmod(self.path.parent, 0o770)
        self.check_free()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()                        # a stale socket from a crash
        old_umask = os.umask(0o117)                   # born 0660: no window of wider access
        try:
            self.server = await asyncio.start_unix_server(self._client, path=str(self.path),
                                                          limit=MAX_REQUEST)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o660)
        self._inode = self.path.stat().st_ino

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        # Close client connections so their handlers end on their own (an event
        # stream ends when its reader sees EOF) rather than being cancelled.
        for writer in self._clients.values():
            writer.close()
        if self._clients:
            await asyncio.wait(list(self._clients), timeout=2)
        if self.server is not None:
            await self.server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_ino == self._inode:    # ours, not a later station's
                self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("request must be a JSON object")
            except ValueError as exc:
                await self._send(writer, {"ok": False, "error": f"bad request: {exc}"})
                return
            if request.get("cmd") == "events":
                await self._stream_events(reader, writer)
            else:
                await self._send(writer, await self._handle(request))
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._clients.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "state":
            return {"ok": True, "state": self.station.state()}
        if cmd == "press":
            button = str(request.get("button", ""))
            try:
                # press() holds the (simulated) button down for a moment: not on the loop.
                await asyncio.get_running_loop().run_in_executor(
                    None, self.station.board.press, button)
            except HalError as exc:
                return {"ok": False, "error": str(exc)}
            return {"ok": True}
        if cmd == "hangup":
            if self.station.hangup("hung up from the control socket"):
                return {"ok": True}
            return {"ok": False, "error": "no call to hang up: the station is idle"}
        if cmd == "door":
            try:
                self.station.door_command(str(request.get("action", "")), "the control socket")
            except ValueError as exc:
                return {"ok": False, "error": str(exc)}
            return {"ok": True}
        if cmd == "log":
            if self.station.eventlog is None:
                return {"ok": False, "error": "the station runs without its event log"}
            count = request.get("count", 20)
            if not isinstance(count, int) or not 0 < count <= 10000:
                return {"ok": False, "error": "count must be a whole number from 1 to 10000"}
            kind = request.get("kind")
            return {"ok": True, "events": self.station.eventlog.latest(
                count, str(kind) if kind else None)}
        if cmd == "input":
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None, self.station.board.set_input, str(request.get("name", "")),
                    bool(request.get("active")))
            except HalError as exc:
                return {"ok": False, "error": str(exc)}
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {cmd!r}; "
                                      "allowed: press, state, events, log, hangup, door, input"}

    async def _stream_events(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)

        def push(event: Event) -> None:
            with contextlib.suppress(asyncio.QueueFull):   # a stalled reader loses events
                queue.put_nowait(event)

        unsubscribe = self.station.subscribe(push, replay=True)
        closed = asyncio.ensure_future(reader.read())    # returns when the client goes
        try:
            await self._send(writer, {"ok": True})
            while not closed.done():
                get = asyncio.ensure_future(queue.get())
                await asyncio.wait({get, closed}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():
                    get.cancel()
                    break
                await self._send(writer, get.result().to_json())
        finally:
            unsubscribe()
            closed.cancel()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
        writer.write(json.dumps(obj).encode() + b"\n")
        await writer.drain()
