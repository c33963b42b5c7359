"""STUN Binding (RFC 5389), just enough to learn our public address and port.

Sans-IO: ``binding_request`` gives the bytes and the transaction ID to match,
``mapped_address`` reads a Binding success response. The RTP socket sends
and receives them (RFC 5389 7.2.1 retransmission happens there), so the
address learned is the one the peer will see for our media.
"""
from __future__ import annotations

import ipaddress
import secrets
import struct

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
MAPPED_ADDRESS = 0x0001
XOR_MAPPED_ADDRESS = 0x0020
RETRANSMIT = (0.5, 1.0, 2.0, 4.0)   # RTO 500 ms doubling (RFC 5389 7.2.1), 7.5 s in all


class StunError(Exception):
    """Not a STUN Binding success for our transaction."""


def is_stun(data: bytes) -> bool:
    """A STUN message: top two bits zero and the magic cookie (RFC 5389 6)."""
    return len(data) >= 20 and data[0] < 0x40 and \
        struct.unpack_from("!I", data, 4)[0] == MAGIC_COOKIE


def binding_request() -> tuple[bytes, bytes]:
    """(message, transaction ID)."""
    tid = secrets.token_bytes(12)
    return struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE) + tid, tid


def mapped_address(data: bytes, tid: bytes) -> tuple[str, int]:
    """The reflexive address in a Binding success response to ``tid``."""
    if not is_stun(data):
        raise StunError("not a STUN message")
    kind, length = struct.unpack_from("!HH", data, 0)
    if data[8:20] != tid:
        raise StunError("another transaction")
    if kind != BINDING_SUCCESS:
        raise StunError(f"STUN message type {kind:#06x}, not a Binding success")
    if 20 + length > len(data) or length % 4:
        raise StunError("STUN length does not match the message")
    found: tuple[str, int] | None = None
    offset = 20
    while offset + 4 <= 20 + length:
        attr, size = struct.unpack_from("!HH", data, offset)
        value = data[offset + 4:offset + 4 + size]
        if len(value) < size:
            raise StunError("truncated STUN attribute")
        if attr == XOR_MAPPED_ADDRESS:
            return _address(value, data[4:20])          # preferred (RFC 5389 15.2)
        if attr == MAPPED_ADDRESS:
            found = _address(value, None)
        offset += 4 + size + (-size % 4)                # attributes are padded to 4 bytes
    if found is None:
        raise StunError("no mapped address in the STUN response")
    return found


def _address(value: bytes, xor_key: bytes | None) -> tuple[str, int]:
    if len(value) < 8:
        raise StunError("short STUN address")
    family, port = value[1], struct.unpack_from("!H", value, 2)[0]
    size = {1: 4, 2: 16}.get(family)
    if size is None or len(value) < 4 + size:
        raise StunError(f"bad STUN address family {family}")
    raw = value[4:4 + size]
    if xor_key is not None:
        port ^= MAGIC_COOKIE >> 16
        raw = bytes(a ^ b for a, b in zip(raw, xor_key))
    return str(ipaddress.ip_address(raw)), port
