"""What the user agent core tells its user. Frozen, so they can be logged and queued."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class RegState(enum.StrEnum):
    UNREGISTERED = "unregistered"
    REGISTERED = "registered"
    FAILED = "failed"


@dataclass(frozen=True)
class RegistrationChanged:
    state: RegState
    status: int
    reason: str
    expires: int = 0
    retry_in: float = 0.0
    registrar: str = ""         # where (the configured registrar's URI)


@dataclass(frozen=True)
class RegistrationUnanswered:
    """A REGISTER has had no answer for ``seconds`` (its retransmissions go on)."""

    registrar: str
    seconds: float


@dataclass(frozen=True)
class CallProgress:
    call_id: str
    status: int                 # 180 ringing, 183 session progress
    reason: str
    sdp: bytes = b""            # early media (RFC 3960): the answer so far, if any


@dataclass(frozen=True)
class CallAnswered:
    call_id: str
    sdp: bytes


@dataclass(frozen=True)
class CallFailed:
    call_id: str
    status: int
    reason: str


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    by_remote: bool
    reason: str


@dataclass(frozen=True)
class IncomingCall:
    call_id: str
    caller: str                 # the From URI: what the caller claims to be
    sdp: bytes
    source: tuple[str, int] = ("", 0)     # where the INVITE came from


@dataclass(frozen=True)
class CallUpdated:
    """The peer's session description changed: re-INVITE, UPDATE or the answer to ours."""

    call_id: str
    sdp: bytes


@dataclass(frozen=True)
class InfoDtmf:
    """A digit sent in SIP INFO (application/dtmf-relay or application/dtmf)."""

    call_id: str
    digit: str


@dataclass(frozen=True)
class MessageRejected:
    """A datagram we answered with an error or dropped; for the log."""

    status: int
    reason: str
    source: tuple[str, int]


@dataclass(frozen=True)
class LocalAddressChanged:
    """Our own address changed; the calls listed need a new offer with it."""

    address: str
    call_ids: tuple[str, ...]


@dataclass(frozen=True)
class PublicAddress:
    """The registrar sees us at another address than we think (NAT, RFC 3581)."""

    address: tuple[str, int]


UaEvent = (RegistrationChanged | RegistrationUnanswered | CallProgress | CallAnswered | CallFailed | CallEnded
           | IncomingCall | CallUpdated | InfoDtmf | MessageRejected | LocalAddressChanged
           | PublicAddress)
