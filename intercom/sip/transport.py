"""The asyncio adapter around the sans-IO UserAgent: UDP, TCP and TLS.

It feeds messages and the loop clock in, sends what the core gives out,
hands events to a callback, and re-arms one timer. The core names each
destination with its transport (``Dest``); here a UDP datagram goes out of
the one UDP socket, and a TCP or TLS message goes over the connection to
that place, opened on first use and reused both ways (RFC 3261 18 and
RFC 5923): requests a registrar sends back over our connection, and
answers to requests that came in on a connection, go over the same one.

A connection that cannot be opened, breaks, or stops answering CRLF pings
(RFC 5626 4.4.1) is reported to the core, which fails what was waiting on
it and registers again over a new one. Host names are resolved here
(A/AAAA), never in the core; RFC 3263 NAPTR/SRV happen in ``resolver.py``.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Self, cast

from intercom.sip.events import UaEvent
from intercom.sip.framing import PING, PONG, FramingError, StreamFramer
from intercom.sip.locate import Dest, is_ip
from intercom.sip.ua import UserAgent

log = logging.getLogger("intercom.sip")

PONG_TIMEOUT = 10.0            # RFC 5626 4.4.1: no pong within 10 s means the flow is dead
CONNECT_TIMEOUT = 8.0
MAX_CONNECTIONS = 64           # accepted and opened together; more are refused
MAX_PENDING = 256 * 1024       # bytes queued on a connection that is still opening
RESOLVE_TTL = 300.0


def local_address_towards(host: str, port: int) -> str:
    """The source address the kernel picks to reach host:port (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """Client TLS that verifies the server: against ``ca_file`` or the system CAs."""
    context = ssl.create_default_context(cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


# Linux's extended reliable error queue (ip(7), ipv6(7)): the ICMP errors of an
# unconnected UDP socket, each with the address of the datagram that caused it.
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
UNREACHABLE = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint
        self.transport: asyncio.DatagramTransport | None = None
        self.errors: socket.socket | None = None      # a duplicate to read the error queue

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is None or not hasattr(socket, "MSG_ERRQUEUE"):
            return                                      # not Linux: timers only
        try:
            if sock.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            self.errors = socket.fromfd(sock.fileno(), sock.family, sock.type)
            self.errors.setblocking(False)
        except OSError as exc:
            log.debug("no ICMP error queue on the SIP socket: %s", exc)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.endpoint.deliver(data, (addr[0], addr[1]), "udp")

    def error_received(self, exc: Exception) -> None:
        """ICMP port or host unreachable: the place we sent to is not there. What
        waits on it fails now instead of at the end of its timers (RFC 3261 8.1.3.1,
        18.4), so the next target rings at once."""
        log.debug("SIP socket error: %s", exc)
        if self.errors is None:
            return
        for _ in range(32):                               # bounded: what is queued now
            try:
                _, ancillary, _, addr = self.errors.recvmsg(1, 256, MSG_ERRQUEUE)
            except OSError:
                return                                    # the queue is empty
            code = next((int.from_bytes(data[:4], sys.byteorder) for _, _, data in ancillary
                         if len(data) >= 4), 0)
            if code in UNREACHABLE and addr:
                log.info("SIP: %s:%d is unreachable (%s)", addr[0], addr[1],
                         os.strerror(code))
                self.endpoint.unreachable(Dest(addr[0], addr[1], "udp"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.errors is not None:
            self.errors.close()
            self.errors = None


class _Stream(asyncio.Protocol):
    """One TCP or TLS connection, framed into SIP messages."""

    def __init__(self, endpoint: SipEndpoint, transport_name: str,
                 peer: tuple[str, int] | None = None) -> None:
        self.endpoint = endpoint
        self.name = transport_name
        self.peer = peer
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.pong_timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.origin: Dest | None = None       # the core's name for where we connected

    @property
    def dest(self) -> Dest:
        if self.origin is not None:
            return self.origin
        assert self.peer is not None
        return Dest(self.peer[0], self.peer[1], self.name)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self.peer is None:                                      # accepted
            addr = transport.get_extra_info("peername")
            self.peer = (addr[0], addr[1])
            if not self.endpoint.adopt(self):
                transport.close()
                return
        for data in self.pending:
            self.transport.write(data)
        self.pending.clear()
        self.pending_bytes = 0

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.framer.feed(data)
        except FramingError as exc:
            log.warning("SIP %s from %s:%s: %s; closing the connection", self.name.upper(),
                        *(self.peer or ("?", 0)), exc)
            self.close()
            return
        if frames.pings and self.transport is not None:
            self.transport.write(PONG * frames.pings)
        if frames.pongs and self.pong_timer is not None:
            self.pong_timer.cancel()
            self.pong_timer = None
        assert self.peer is not None
        for message in frames.messages:
            self.endpoint.deliver(message, self.peer, self.name)

    def write(self, data: bytes) -> None:
        if data == PING and self.pong_timer is None:
            self.pong_timer = self.endpoint.loop.call_later(PONG_TIMEOUT, self._no_pong)
        if self.transport is not None:
            self.transport.write(data)
        elif self.pending_bytes + len(data) <= MAX_PENDING:
            self.pending.append(data)
            self.pending_bytes += len(data)
        else:
            log.warning("SIP %s to %s: connection not up, message dropped", self.name, self.peer)

    def _no_pong(self) -> None:
        self.pong_timer = None
        log.warning("SIP %s to %s:%s: no answer to a keepalive in %.0f s; reconnecting",
                    self.name.upper(), *(self.peer or ("?", 0)), PONG_TIMEOUT)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        else:
            self.connection_lost(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        if self.pong_timer is not None:
            self.pong_timer.cancel()
        self.endpoint.forget(self, exc)


STALL_SECONDS = 10.0        # a core timer this late means the SIP layer has stopped


class SipEndpoint:
    def __init__(self, ua: UserAgent, on_event: Callable[[UaEvent], None],
                 tls: ssl.SSLContext | None = None) -> None:
        self.ua = ua
        self.on_event = on_event
        self.loop = asyncio.get_running_loop()
        self.tls = tls
        self.udp: _Udp | None = None
        self.server: asyncio.Server | None = None
        self.streams: dict[tuple[str, str, int], _Stream] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._resolved: dict[str, tuple[str, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False

    @classmethod
    async def open(cls, ua: UserAgent, bind: tuple[str, int],
                   on_event: Callable[[UaEvent], None], tls: ssl.SSLContext | None = None,
                   listen_tcp: bool = True) -> Self:
        """UDP on ``bind``, and a TCP listener on the same port unless told not to."""
        endpoint = cls(ua, on_event, tls)
        loop = endpoint.loop
        _, proto = await loop.create_datagram_endpoint(lambda: _Udp(endpoint), local_addr=bind)
        endpoint.udp = proto
        if listen_tcp:
            try:
                endpoint.server = await loop.create_server(lambda: _Stream(endpoint, "tcp"),
                                                           bind[0], bind[1], reuse_address=True)
            except OSError as exc:
                log.warning("no SIP over TCP on %s:%d: %s", bind[0], bind[1], exc)
        return endpoint

    # ----- into the core --------------------------------------------------------
    def deliver(self, data: bytes, addr: tuple[str, int], transport: str) -> None:
        self.ua.receive(data, addr, self.loop.time(), transport)
        self.flush()

    def run(self, command: Callable[[float], object]) -> object:
        """Run a core command with the current time, then flush its output."""
        result = command(self.loop.time())
        self.flush()
        return result

    def flush(self) -> None:
        # Event handlers may call the core again (reject a call, say): go round
        # until it has nothing more to say.
        while True:
            for data, dest in self.ua.datagrams_to_send():
                self._send(data, dest)
            events = self.ua.events()
            if not events:
                break
            for event in events:
                try:
                    self.on_event(event)
                except Exception:                  # an app bug must not kill SIP
                    log.exception("event handler failed for %r", event)
        self._rearm()

    def trouble(self) -> str | None:
        """Why the SIP layer is not working (for the watchdog), or None when it is."""
        if self.closing:
            return "the SIP endpoint is closed"
        if self.udp is None or self.udp.transport is None or self.udp.transport.is_closing():
            return "the SIP UDP socket is closed"
        deadline = self.ua.get_timer()
        if deadline is not None and self.loop.time() - deadline > STALL_SECONDS:
            return f"the SIP timers are {self.loop.time() - deadline:.0f} s late"
        return None

    def close(self) -> None:
        self.closing = True
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for stream in list(self.streams.values()):
            stream.close()
        if self.server is not None:
            self.server.close()
        if self.udp is not None and self.udp.transport is not None:
            self.udp.transport.close()

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

    # ----- connections ------------------------------------------------------------
    def adopt(self, stream: _Stream) -> bool:
        """An accepted connection: keep it, unless there are too many."""
        assert stream.peer is not None
        if len(self.streams) >= MAX_CONNECTIONS:
            log.warning("SIP: refusing a connection from %s:%d, %d are open",
                        *stream.peer, len(self.streams))
            return False
        self.streams[(stream.name, *stream.peer)] = stream
        return True

    def forget(self, stream: _Stream, exc: Exception | None) -> None:
        if stream.peer is None:
            return
        key = (stream.name, *stream.peer)
        if self.streams.get(key) is stream:
            del self.streams[key]
        if self.closing:
            return
        if exc is not None:
            log.info("SIP %s connection to %s:%d lost: %s", stream.name.upper(), *stream.peer,
                     exc)
        self.ua.transport_error(stream.dest, self.loop.time())
        self.flush()

    def unreachable(self, dest: Dest) -> None:
        """ICMP said nothing listens at ``dest`` (an address): fail what waits on it,
        under the address and under every name that resolved to it."""
        now = self.loop.time()
        self.ua.transport_error(dest, now)
        for name, (address, _) in list(self._resolved.items()):
            if address == dest.host:
                self.ua.transport_error(Dest(name, dest.port, dest.transport), now)
        self.flush()

    # ----- out of the core -----------------------------------------------------
    def _send(self, data: bytes, dest: Dest) -> None:
        address = self._cached(dest.host)
        if address is None:
            self._spawn(self._resolve_and_send(data, dest))
            return
        if dest.transport == "udp":
            if self.udp is not None and self.udp.transport is not None \
                    and not self.udp.transport.is_closing():
                self.udp.transport.sendto(data, (address, dest.port))
            return
        stream = self.streams.get((dest.transport, address, dest.port))
        if stream is None:
            if len(self.streams) >= MAX_CONNECTIONS:
                log.warning("SIP: not opening a connection to %s:%d, %d are open",
                            address, dest.port, len(self.streams))
                return
            stream = _Stream(self, dest.transport, (address, dest.port))
            stream.origin = dest
            self.streams[(dest.transport, address, dest.port)] = stream
            self._spawn(self._connect(stream, dest))
        stream.write(data)

    async def _resolve_and_send(self, data: bytes, dest: Dest) -> None:
        if await self._resolve(dest.host) is None:
            self.ua.transport_error(dest, self.loop.time())
        else:
            self._send(data, dest)
        self.flush()

    async def _connect(self, stream: _Stream, dest: Dest) -> None:
        assert stream.peer is not None
        context: ssl.SSLContext | None = None
        server_hostname: str | None = None
        if dest.transport == "tls":
            context = self.tls or tls_context()
            server_hostname = dest.name or dest.host
        try:
            await asyncio.wait_for(self.loop.create_connection(
                lambda: stream, stream.peer[0], stream.peer[1], ssl=context,
                server_hostname=server_hostname), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            log.warning("SIP %s connection to %s (%s:%d) failed: %s", dest.transport.upper(),
                        server_hostname or dest.host, *stream.peer, exc or "timed out")
            stream.connection_lost(None)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cached(self, host: str) -> str | None:
        if is_ip(host):
            return host
        entry = self._resolved.get(host)
        if entry is None or entry[1] < self.loop.time():
            return None
        return entry[0]

    async def _resolve(self, host: str) -> str | None:
        try:
            info = await self.loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            log.warning("cannot resolve %s: %s", host, exc)
            return None
        address = str(info[0][4][0])
        self._resolved[host] = (address, self.loop.time() + RESOLVE_TTL)
        return address
