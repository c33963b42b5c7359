"""The two families of SIP errors (DESIGN.md): our misuse and a peer's misbehaviour."""
from __future__ import annotations


class SipError(Exception):
    """Base of every error the SIP layer raises."""


class LocalError(SipError):
    """The caller used the SIP layer wrongly (a bug on our side or bad config)."""


class RemoteError(SipError):
    """A peer sent something we cannot accept; ``status`` is what to answer.

    ``request`` is as much of the offending request as could be read, so a
    response can be addressed; it is None when nothing usable was read (the
    datagram is then dropped, RFC 3261 section 18.3). It is an
    intercom.sip.message.Request, typed ``object`` here so that this module,
    which every other one imports, imports none of them.
    """

    def __init__(self, status: int, reason: str, request: object | None = None,
                 extra_headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.request = request
        self.extra_headers = extra_headers


class ParseError(RemoteError):
    """A message that breaks the RFC 3261 grammar (answer 400 unless told)."""

    def __init__(self, reason: str, request: object | None = None, status: int = 400) -> None:
        super().__init__(status, reason, request)
