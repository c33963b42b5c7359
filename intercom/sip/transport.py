"""The asyncio UDP adapter around the sans-IO UserAgent.

It feeds datagrams and the loop clock in, sends what the core gives out,
hands events to a callback, and re-arms one timer. Host names in
destinations are resolved here, never in the core.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Self, cast

from intercom.sip.events import UaEvent
from intercom.sip.ua import UserAgent

log = logging.getLogger("intercom.sip")


def local_address_towards(host: str, port: int) -> str:
    """The source address the kernel picks to reach host:port (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])


class UdpEndpoint(asyncio.DatagramProtocol):
    def __init__(self, ua: UserAgent, on_event: Callable[[UaEvent], None]) -> None:
        self.ua = ua
        self.on_event = on_event
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._resolved: dict[str, str] = {}

    @classmethod
    async def open(cls, ua: UserAgent, bind: tuple[str, int],
                   on_event: Callable[[UaEvent], None]) -> Self:
        loop = asyncio.get_running_loop()
        endpoint = cls(ua, on_event)
        await loop.create_datagram_endpoint(lambda: endpoint, local_addr=bind)
        return endpoint

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.ua.receive(data, (addr[0], addr[1]), self.loop.time())
        self.flush()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the transaction timers deal with it.
        log.debug("SIP socket error: %s", exc)

    def run(self, command: Callable[[float], object]) -> object:
        """Run a core command with the current time, then flush its output."""
        result = command(self.loop.time())
        self.flush()
        return result

    def flush(self) -> None:
        # Event handlers may call the core again (reject a call, say): go round
        # until it has nothing more to say.
        while True:
            for data, (host, port) in self.ua.datagrams_to_send():
                self._sendto(data, host, port)
            events = self.ua.events()
            if not events:
                break
            for event in events:
                try:
                    self.on_event(event)
                except Exception:                  # an app bug must not kill SIP
                    log.exception("event handler failed for %r", event)
        self._rearm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.ua.get_timer()
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.ua.handle_timer(self.loop.time())
        self.flush()

    def _sendto(self, data: bytes, host: str, port: int) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        address = self._resolved.get(host) or self._resolve(host)
        if address is None:
            return
        self.transport.sendto(data, (address, port))

    def _resolve(self, host: str) -> str | None:
        # A blocking look-up, cached: names here are the configured registrar or
        # proxy. RFC 3263 NAPTR/SRV resolution belongs to the full user agent.
        try:
            info = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            log.warning("cannot resolve %s: %s", host, exc)
            return None
        address = str(info[0][4][0])
        self._resolved[host] = address
        return address
