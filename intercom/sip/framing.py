"""Cutting a TCP or TLS byte stream into SIP messages (RFC 3261 18.3).

On a stream, Content-Length is mandatory and says where the body ends.
Between messages a peer may send CRLF keepalives (RFC 5626 4.4.1): a double
CRLF is a ping that wants a single CRLF back (a pong); a single CRLF is a
pong. The buffer is bounded: a header block that never ends, or a body
longer than a datagram could be, is a framing error and the connection is
closed, since nothing after it can be trusted to start a message.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from intercom.sip.message import MAX_MESSAGE

# One header line of Content-Length (or its compact form "l"), wherever it stands among
# the headers: their order is free (RFC 3261 7.3). Lines end in CRLF (or a bare LF).
_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*\r?$", re.I | re.M)
PING = b"\r\n\r\n"
PONG = b"\r\n"


class FramingError(Exception):
    """The stream cannot be read as SIP any more; close the connection."""


@dataclass
class Frames:
    messages: list[bytes] = field(default_factory=list)
    pings: int = 0                 # double-CRLF pings to answer with a pong
    pongs: int = 0                 # pongs received (answers to our pings)


class StreamFramer:
    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()

    def feed(self, data: bytes) -> Frames:
        self._buf += data
        out = Frames()
        while self._buf:
            if self._buf.startswith(b"\r\n"):
                if self._buf.startswith(PING):
                    del self._buf[:4]
                    out.pings += 1
                elif self._buf == b"\r\n\r":
                    break                  # the rest of a ping may be on its way
                else:
                    del self._buf[:2]      # a lone CRLF: a pong (a ping comes in one piece)
                    out.pongs += 1
                continue
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > self.max_message:
                    raise FramingError(f"no end of headers in {len(self._buf)} bytes")
                break
            header = bytes(self._buf[:end])
            lengths = _LENGTH.findall(header)
            if not lengths:
                raise FramingError("a message on a stream without Content-Length")
            if not lengths[0].isdigit() or len(lengths[0]) > 9:
                raise FramingError(f"bad Content-Length {lengths[0][:20]!r}")
            total = end + 4 + int(lengths[0])
            if total > self.max_message:
                raise FramingError(f"a message of {total} bytes is too long")
            if len(self._buf) < total:
                break
            out.messages.append(bytes(self._buf[:total]))
            del self._buf[:total]
        return out
