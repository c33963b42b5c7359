"""An RTP session on one UDP port (RFC 3550), symmetric as RFC 4961 describes.

We send from the port we receive on, and once the peer's packets arrive we
send to wherever they come from (the SDP address may be a private one
behind NAT). From then on, packets from any other address are dropped: DTMF
opens the door, so a stranger who guesses the port must not be heard.
RTCP is not sent yet; the RTP port is even, RTCP's is kept free.
"""
from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Callable
from typing import cast
from dataclasses import dataclass

from intercom.cext import rtp
from intercom.sip import stun

log = logging.getLogger("intercom.media")
PacketHandler = Callable[[int, bool, int, int, bytes], None]   # pt, marker, seq, ts, payload


@dataclass
class RtpStats:
    sent: int = 0
    received: int = 0
    invalid: int = 0
    foreign: int = 0          # from an address other than the latched peer


class RtpSession(asyncio.DatagramProtocol):
    def __init__(self, on_packet: PacketHandler) -> None:
        self.on_packet = on_packet
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.latched = False
        self.paused = False       # on hold: the peer asked us not to send
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.stats = RtpStats()
        self.local_port = 0
        self._stun: dict[bytes, asyncio.Future[bytes]] = {}

    @classmethod
    async def open(cls, host: str, port_min: int, port_max: int,
                   on_packet: PacketHandler, attempts: int = 50) -> RtpSession:
        """Bind an even port in [port_min, port_max], chosen at random."""
        loop = asyncio.get_running_loop()
        evens = range(port_min + (port_min % 2), port_max, 2)
        for port in random.sample(evens, min(attempts, len(evens))):
            session = cls(on_packet)
            try:
                await loop.create_datagram_endpoint(  # the factory runs within this await
                    lambda: session, local_addr=(host, port))  # noqa: B023
            except OSError:
                continue
            session.local_port = port
            return session
        raise OSError(f"no free RTP port in {port_min}..{port_max}")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def set_remote(self, host: str, port: int) -> None:
        if not self.latched:
            self.remote = (host, port)

    def retarget(self, host: str, port: int) -> None:
        """The peer moved (re-INVITE or UPDATE with new SDP): latch again from scratch."""
        if self.remote != (host, port):
            self.latched = False
            self.remote = (host, port)

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
        source = (addr[0], addr[1])
        if self._stun and stun.is_stun(data):
            waiter = self._stun.get(data[8:20])
            if waiter is not None and not waiter.done():
                waiter.set_result(data)
            return
        if self.latched and source != self.remote:
            self.stats.foreign += 1
            return
        try:
            pt, marker, seq, ts, _ssrc, payload = rtp.parse(data)
        except rtp.RtpError:
            self.stats.invalid += 1
            return
        if not self.latched:
            if self.remote is not None and source != self.remote:
                log.info("RTP: peer sends from %s:%d, answering there", *source)
            self.remote = source
            self.latched = True
        self.stats.received += 1
        self.on_packet(pt, marker, seq, ts, payload)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)

    def send(self, payload_type: int, payload: bytes, timestamp: int, marker: bool = False) -> None:
        if (self.transport is None or self.remote is None or self.paused
                or self.transport.is_closing()):
            return
        self.transport.sendto(rtp.build(payload_type, marker, self.seq, timestamp, self.ssrc,
                                        payload), self.remote)
        self.seq = (self.seq + 1) & 0xFFFF
        self.stats.sent += 1

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
