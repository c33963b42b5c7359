"""An RTP session on one UDP port (RFC 3550), symmetric as RFC 4961 describes.

We send from the port we receive on, and once the peer's packets arrive we
send to wherever they come from (the SDP address may be a private one
behind NAT). From then on, packets from any other address are dropped: DTMF
opens the door, so a stranger who guesses the port must not be heard.
RTCP runs on the next port up (RFC 3550 11), or on the RTP port when both
sides agreed to rtcp-mux (RFC 5761): reports every 5 s or so, and the
peer's reports give the round-trip time. With SRTP keys agreed, everything
is protected, and what fails authentication is dropped and counted.

While a call's audio runs, its media thread owns the data path: it sends
on the socket directly and drains it once per card period (``drain``),
with the kernel's arrival times, so no packet passes through the event
loop. Both go through cext/rtpio.pyx, straight onto the system calls (up
to 16 datagrams per ``recvmmsg``). The loop keeps RTCP reports, STUN and
keepalives; what arrives for those on the media thread is handed to it.
"""
from __future__ import annotations

import asyncio
import logging
import random
import secrets
import select
import socket
import time
from collections.abc import Callable
from typing import cast
from dataclasses import dataclass

from intercom.cext import rtp
from intercom.cext.rtpio import RECEIVE_BATCH, RtpIO
from intercom.media.rtcp import REPORT_INTERVAL, RtcpSession, is_rtcp
from intercom.media.srtp import SrtpContext, SrtpError
from intercom.sip import stun

log = logging.getLogger("intercom.media")
KEEPALIVE_SECONDS = 15.0      # well inside common UDP NAT timeouts (30 s and more)
# pt, marker, seq, ts, ssrc, payload, arrival (time.monotonic() seconds)
PacketHandler = Callable[[int, bool, int, int, int, bytes, float], None]
DRAIN_MAX = 64                # datagrams taken in one drain: a flood cannot hold the thread
# Arrival times from the kernel (Linux; Python 3.11's socket module lacks the name).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


@dataclass
class RtpStats:
    sent: int = 0
    received: int = 0
    invalid: int = 0
    foreign: int = 0          # from an address other than the latched peer
    unauthentic: int = 0      # SRTP packets that failed authentication or replay checks


class RtpSession(asyncio.DatagramProtocol):
    def __init__(self, on_packet: PacketHandler) -> None:
        self.on_packet = on_packet
        self.transport: asyncio.DatagramTransport | None = None
        self._remote: tuple[str, int] | None = None
        self.latched = False
        self.paused = False       # on hold: the peer asked us not to send
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.stats = RtpStats()
        self.local_port = 0
        self._stun: dict[bytes, asyncio.Future[bytes]] = {}
        self.rtcp: RtcpSession | None = None
        self.rtcp_transport: asyncio.DatagramTransport | None = None
        self.rtcp_remote: tuple[str, int] | None = None     # latched like RTP
        self.rtcp_mux = False                               # RTCP on the RTP port (RFC 5761)
        self.srtp: SrtpContext | None = None                # set once SDES keys are agreed
        self._last_sent = 0.0
        self._report_timer: asyncio.TimerHandle | None = None
        self._sock: socket.socket | None = None            # for the media thread
        self._io: RtpIO | None = None                       # its data path, in C
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    async def open(cls, host: str, port_min: int, port_max: int,
                   on_packet: PacketHandler, attempts: int = 50) -> RtpSession:
        """Bind an even port in [port_min, port_max] for RTP and the next for RTCP."""
        loop = asyncio.get_running_loop()
        evens = range(port_min + (port_min % 2), port_max, 2)
        for port in random.sample(evens, min(attempts, len(evens))):
            session = cls(on_packet)
            try:
                await loop.create_datagram_endpoint(  # the factory runs within this await
                    lambda: session, local_addr=(host, port))  # noqa: B023
            except OSError:
                continue
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _RtcpPort(session), local_addr=(host, port + 1))  # noqa: B023
            except OSError:
                session.close()
                continue
            session.rtcp_transport = transport
            session.local_port = port
            return session
        raise OSError(f"no free RTP port in {port_min}..{port_max}")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self._loop = asyncio.get_running_loop()
        own = transport.get_extra_info("socket")
        # Our own handle on the same socket: the media thread sends and receives on
        # it directly (asyncio's transport is for the loop's thread only).
        self._sock = socket.fromfd(own.fileno(), own.family, own.type)
        self._sock.setblocking(False)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError as exc:                     # arrival is then taken at the drain
            log.debug("RTP: no kernel timestamps: %s", exc)
        self._io = RtpIO(self._sock.fileno())
        self._aim()

    @property
    def remote(self) -> tuple[str, int] | None:
        """Where RTP goes: the SDP's address, or where the peer's packets come from."""
        return self._remote

    @remote.setter
    def remote(self, value: tuple[str, int] | None) -> None:
        self._remote = value
        self._aim()

    def _aim(self) -> None:
        io, remote = self._io, self._remote
        if io is None or remote is None:
            return
        host, port = remote
        try:
            io.aim(host, port)
            return
        except ValueError:
            pass
        try:                                       # a name in the SDP: resolved once, here
            family = self._sock.family if self._sock is not None else 0
            info = socket.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
            io.aim(str(info[0][4][0]), port)
        except (OSError, ValueError, IndexError) as exc:
            log.warning("RTP: cannot send to %s:%d: %s", host, port, exc)

    def take_over(self) -> None:
        """The media thread reads the socket from now on (call on the loop)."""
        if self.transport is not None and not self.transport.is_closing():
            cast(asyncio.ReadTransport, self.transport).pause_reading()

    def hand_back(self) -> None:
        """The loop reads the socket again (call on the loop, the media thread stopped)."""
        if self.transport is not None and not self.transport.is_closing():
            cast(asyncio.ReadTransport, self.transport).resume_reading()

    def wait_readable(self, seconds: float) -> None:
        """Wait up to ``seconds`` for a datagram (media thread, without a card to pace it)."""
        if self._sock is None:
            time.sleep(seconds)
            return
        try:
            select.select([self._sock], [], [], seconds)
        except (OSError, ValueError):              # closed under us: the call is ending
            time.sleep(seconds)

    def drain(self) -> int:
        """Take what has arrived on the socket, on the media thread; returns how many.
        Each datagram gets the kernel's arrival time; STUN answers and RTCP go to
        the event loop."""
        io = self._io
        if io is None:
            return 0
        taken = 0
        while taken < DRAIN_MAX:
            batch = io.receive()                   # one system call
            for data, source, arrival in batch:
                self.receive(data, source, arrival, on_loop=False)
            taken += len(batch)
            if len(batch) < RECEIVE_BATCH:        # the socket is empty
                break
        return taken

    def set_remote(self, host: str, port: int) -> None:
        if not self.latched:
            self.remote = (host, port)

    def retarget(self, host: str, port: int) -> None:
        """The peer moved (re-INVITE or UPDATE with new SDP): latch again from scratch."""
        if self.remote != (host, port):
            self.latched = False
            self.remote = (host, port)
            self.rtcp_remote = None

    def start_rtcp(self, clock_rate: int, cname: str, interval: float = REPORT_INTERVAL) -> None:
        """Reports from now on, with statistics on the codec's clock."""
        self.rtcp = RtcpSession(self.ssrc, cname, clock_rate, interval=interval)
        if self._report_timer is None:
            self._schedule_report()

    def _schedule_report(self) -> None:
        assert self.rtcp is not None
        self._report_timer = asyncio.get_running_loop().call_later(
            self.rtcp.next_interval(), self._send_report)

    def _send_report(self) -> None:
        if self.rtcp is None:
            return
        self._send_rtcp(self.rtcp.report(time.time()))
        self._schedule_report()

    def _send_rtcp(self, data: bytes) -> None:
        if self.srtp is not None:
            data = self.srtp.protect_rtcp(data)
        if self.rtcp_mux:
            if self.remote is not None and self.transport is not None \
                    and not self.transport.is_closing():
                self.transport.sendto(data, self.remote)
            return
        target = self.rtcp_remote or (self.remote and (self.remote[0], self.remote[1] + 1))
        if target and self.rtcp_transport is not None and not self.rtcp_transport.is_closing():
            self.rtcp_transport.sendto(data, target)
        self._keep_alive()

    def _keep_alive(self) -> None:
        """On hold we send no RTP; a datagram now and then keeps the NAT's mapping for
        the RTP port open (RFC 6263 4.1: an empty transport packet)."""
        now = time.monotonic()
        if self.paused and now - self._last_sent >= KEEPALIVE_SECONDS and \
                self.remote is not None and self._io is not None:
            self._io.send(b"")                     # asyncio's transport drops empty sends
            self._last_sent = now

    def rtcp_received(self, data: bytes, source: tuple[str, int]) -> None:
        # Only from the peer's address: reports feed the call's quality summary.
        if self.remote is not None and source[0] != self.remote[0]:
            self.stats.foreign += 1
            return
        if self.srtp is not None:
            try:
                data = self.srtp.unprotect_rtcp(data)
            except SrtpError:
                self.stats.unauthentic += 1
                return
        self.rtcp_remote = source
        if self.rtcp is not None:
            self.rtcp.on_rtcp(data, time.time())

    async def public_address(self, server: tuple[str, int]) -> tuple[str, int] | None:
        """Our address and port as a STUN server sees this socket (RFC 5389), or None."""
        assert self.transport is not None
        request, tid = stun.binding_request()
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._stun[tid] = answer
        try:
            for wait in stun.RETRANSMIT:
                self.transport.sendto(request, server)
                try:
                    return stun.mapped_address(
                        await asyncio.wait_for(asyncio.shield(answer), wait), tid)
                except asyncio.TimeoutError:
                    continue
                except stun.StunError as exc:
                    log.warning("STUN server %s:%d: %s", *server, exc)
                    return None
        finally:
            del self._stun[tid]
        log.warning("STUN server %s:%d did not answer", *server)
        return None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.receive(data, (addr[0], addr[1]), time.monotonic())

    def receive(self, data: bytes, source: tuple[str, int], arrival: float,
                on_loop: bool = True) -> None:
        """One datagram from ``source``: RTP to ``on_packet``, the rest where it
        belongs. Off the loop (``on_loop`` false), STUN and RTCP are handed to it."""
        if not data:
            return                                 # a keepalive (RFC 6263 4.1)
        if self._stun and stun.is_stun(data):
            if not on_loop:
                self._to_loop(self.receive, data, source, arrival)
                return
            waiter = self._stun.get(data[8:20])
            if waiter is not None and not waiter.done():
                waiter.set_result(data)
            return
        if self.latched and source != self.remote:
            self.stats.foreign += 1
            return
        if is_rtcp(data):                          # multiplexed on the RTP port (RFC 5761)
            if on_loop:
                self.rtcp_received(data, source)
            else:
                self._to_loop(self.rtcp_received, data, source)
            return
        if self.srtp is not None:
            try:
                data = self.srtp.unprotect(data)
            except SrtpError:                      # forged, replayed or not ours: drop it
                self.stats.unauthentic += 1
                return
        try:
            pt, marker, seq, ts, ssrc, payload = rtp.parse(data)
        except rtp.RtpError:
            self.stats.invalid += 1
            return
        if not self.latched:
            if self.remote is not None and source != self.remote:
                log.info("RTP: peer sends from %s:%d, answering there", *source)
            self.remote = source
            self.latched = True
        self.stats.received += 1
        if self.rtcp is not None:
            self.rtcp.on_rtp_received(ssrc, seq, ts, arrival)   # differences only
        self.on_packet(pt, marker, seq, ts, ssrc, payload, arrival)

    def _to_loop(self, handler: Callable[..., None], *args: object) -> None:
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(handler, *args)
            except RuntimeError:                   # the loop has closed: the call is over
                pass

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)

    def send(self, payload_type: int, payload: bytes, timestamp: int, marker: bool = False) -> None:
        """One RTP packet to the peer, straight onto the socket (the media thread)."""
        io = self._io
        if io is None or self.remote is None or self.paused:
            return
        if self.srtp is not None:
            io.send(self.srtp.protect(
                rtp.build(payload_type, marker, self.seq, timestamp, self.ssrc, payload)))
        else:
            io.send_rtp(payload_type, marker, self.seq, timestamp, self.ssrc, payload)
        self.seq = (self.seq + 1) & 0xFFFF
        self.stats.sent += 1
        self._last_sent = time.monotonic()
        if self.rtcp is not None:
            self.rtcp.on_rtp_sent(timestamp, len(payload), time.time())

    def close(self) -> None:
        if self._report_timer is not None:
            self._report_timer.cancel()
            self._report_timer = None
        if self.rtcp is not None:
            self._send_rtcp(self.rtcp.bye())
        if self.transport is not None:
            self.transport.close()
        self._io = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.rtcp_transport is not None:
            self.rtcp_transport.close()


class _RtcpPort(asyncio.DatagramProtocol):
    """The RTCP socket next to an RTP session's."""

    def __init__(self, session: RtpSession) -> None:
        self.session = session

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.session.rtcp_received(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("RTCP socket error: %s", exc)
