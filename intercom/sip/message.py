"""SIP messages: parse from one datagram, serialize back (RFC 3261 sections 7 and 20).

``parse_message`` either returns a Request/Response whose mandatory headers
are usable or raises RemoteError/ParseError with the status to answer and as
much of the request as could be read.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from intercom.sip.address import NameAddr, SipUri, Via, is_token, split_outside_quotes
from intercom.sip.errors import ParseError, RemoteError

MAX_MESSAGE = 65535          # one UDP datagram
MAX_HEADERS = 200

COMPACT = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
           "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
           "v": "via", "o": "event", "r": "refer-to", "u": "allow-events", "x": "session-expires"}
CANONICAL = {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
             "mime-version": "MIME-Version", "rack": "RAck", "rseq": "RSeq"}
# Headers whose values are comma-separated lists and may be split (RFC 3261 7.3.1).
LIST_HEADERS = frozenset({"via", "route", "record-route", "contact", "allow", "supported",
                          "require", "proxy-require", "unsupported", "accept",
                          "accept-encoding", "accept-language", "allow-events", "content-encoding"})
SINGLE_HEADERS = frozenset({"to", "from", "call-id", "cseq", "max-forwards", "content-length",
                            "content-type", "expires", "min-expires"})
REQUIRED_REQUEST_HEADERS = ("via", "to", "from", "call-id", "cseq")
_STATUS_LINE = re.compile(r"^SIP/(\d+\.\d+) (\d{3}) (.*)$")
# RFC 3261 25.1 SIP-date: rfc1123-date, always in GMT.
_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                   r"Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$")
_MAX_U32 = 2**32 - 1


@functools.lru_cache(maxsize=256)         # bounded: a peer may send endless new names
def canonical_name(name: str) -> str:
    low = name.lower()
    low = COMPACT.get(low, low)
    return CANONICAL.get(low) or "-".join(p.capitalize() for p in low.split("-"))


@dataclass
class Headers:
    """Ordered header fields; names stored canonical, list headers split per value."""

    items: list[tuple[str, str]] = field(default_factory=list)
    # Values by name, built on the first look-up and dropped on any change: a
    # parsed message is read a dozen times and changed rarely.
    _index: dict[str, list[str]] | None = field(default=None, init=False, repr=False,
                                               compare=False)

    def add(self, name: str, value: str) -> None:
        name = canonical_name(name)
        value = value.strip()
        self._index = None
        if "," in value and name.lower() in LIST_HEADERS:
            self.items.extend((name, v.strip()) for v in split_outside_quotes(value, ",") if v.strip())
        else:
            self.items.append((name, value))

    def _values(self, name: str) -> list[str]:
        index = self._index
        if index is None:
            index = self._index = {}
            for n, v in self.items:
                index.setdefault(n, []).append(v)
        return index.get(canonical_name(name), [])

    def get(self, name: str) -> str | None:
        values = self._values(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        return list(self._values(name))

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        key = canonical_name(name)
        self._index = None
        self.items = [(n, v) for n, v in self.items if n != key]

    def copy(self) -> Headers:
        return Headers(list(self.items))


class _Message:
    headers: Headers
    body: bytes

    # Convenience accessors for the headers every message has once validated.
    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.headers.get("CSeq") or "0 X").partition(" ")
        return int(number), method.strip()

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("To") or "")

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def _serialize(self, start_line: str) -> bytes:
        lines = [start_line]
        last = ""
        joinable = False
        for n, v in self.headers.items:
            if n == "Content-Length":
                continue
            # "Allow: INVITE, ACK": one line per header, but only where the parser will
            # split it the same way (a stray '<' or '"' would hide the comma from it).
            plain = '"' not in v and "<" not in v
            if n == last and joinable and plain and n.lower() in LIST_HEADERS and \
                    n not in ("Via", "Route", "Record-Route", "Contact"):
                lines[-1] += f", {v}"
            else:
                lines.append(f"{n}: {v}")
                joinable = plain
            last = n
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass
class Request(_Message):
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def ruri(self) -> SipUri:
        return SipUri.parse(self.uri)

    def to_bytes(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} SIP/2.0")


@dataclass
class Response(_Message):
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self) -> bytes:
        return self._serialize(f"SIP/2.0 {self.status} {self.reason}")


def _unfold(head: str) -> list[str]:
    """Header lines with continuation lines (leading SP/HT) joined (RFC 3261 7.3.1)."""
    lines: list[str] = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def _split(data: bytes) -> tuple[str, list[str], bytes]:
    if len(data) > MAX_MESSAGE:
        raise ParseError("message larger than one datagram")
    data = data.lstrip(b"\r\n")               # RFC 3261 7.5: ignore leading CRLFs
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
        if not sep:
            raise ParseError("no empty line after the headers")
        head = head.replace(b"\n", b"\r\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError("headers are not UTF-8") from exc
    lines = _unfold(text)
    if len(lines) > MAX_HEADERS:
        raise ParseError(f"more than {MAX_HEADERS} header lines")
    return lines[0], lines[1:], body


def _read_headers(lines: list[str]) -> tuple[Headers, str | None]:
    """The well-formed header lines, and what was wrong with the first bad one.

    Reading goes on past a bad line so that a 400 can still be addressed.
    """
    headers = Headers()
    problem: str | None = None
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        try:
            if not colon or not is_token(name):
                raise ParseError(f"malformed header line {line[:60]!r}")
            headers.add(name, value)
        except ParseError as exc:
            problem = problem or exc.reason
    return headers, problem


def _check_body(headers: Headers, body: bytes) -> bytes:
    lengths = headers.get_all("Content-Length")
    if not lengths:
        return body                             # UDP: the body is the rest of the datagram
    if not lengths[0].isdigit() or len(lengths[0]) > 9:
        raise ParseError(f"bad Content-Length {lengths[0]!r}")
    length = int(lengths[0])
    if length > len(body):
        raise ParseError(f"Content-Length {length} exceeds the {len(body)} bytes received")
    return body[:length]                        # anything after belongs to nobody (RFC 4475 dblreq)


def _validate_common(h: Headers) -> str:
    """Checks for requests and responses alike; returns the CSeq method."""
    for name in REQUIRED_REQUEST_HEADERS:
        if h.get(name) is None:
            raise ParseError(f"missing {canonical_name(name)} header")
    seen: set[str] = set()
    for name, _ in h.items:                     # one pass, not one scan per name
        low = name.lower()
        if low in SINGLE_HEADERS:
            if low in seen:
                raise ParseError(f"more than one {name} header")
            seen.add(low)
    number, _, method = (h.get("CSeq") or "").partition(" ")
    if not number.isdigit() or int(number) >= 2**31:
        raise ParseError(f"bad CSeq number {number[:20]!r}")
    date = h.get("Date")
    if date is not None and not _DATE.match(date):
        raise ParseError(f"Date {date[:40]!r} is not an RFC 1123 date in GMT")
    for value in h.get_all("Via"):
        Via.parse(value)
    return method.strip()


def _validate_request(req: Request, ruri: SipUri) -> None:
    h = req.headers
    method = _validate_common(h)
    if method != req.method:
        raise ParseError(f"CSeq method {method!r} does not match {req.method}", req)
    if ruri.headers:
        raise ParseError("Request-URI must not carry headers", req)
    mf = h.get("Max-Forwards")
    if mf is not None and (not mf.isdigit() or int(mf) > 255):
        raise ParseError(f"bad Max-Forwards {mf!r}", req)
    expires = h.get("Expires")
    if expires is not None and (not expires.isdigit() or int(expires) > _MAX_U32):
        raise ParseError(f"bad Expires {expires!r}", req)
    for name in ("From", "To"):
        NameAddr.parse(h.get(name) or "")
    for value in h.get_all("Contact"):
        if value != "*":
            NameAddr.parse(value)


def parse_message(data: bytes) -> Request | Response:
    """Parse one datagram. Raises ParseError/RemoteError (see module doc)."""
    start, lines, body = _split(data)
    status = _STATUS_LINE.match(start)
    if status:
        code = int(status.group(2))
        if status.group(1) != "2.0" or not 100 <= code <= 699:
            raise ParseError(f"bad status line {start[:60]!r}")
        headers, problem = _read_headers(lines)
        if problem:
            raise ParseError(problem)
        resp = Response(code, status.group(3), headers)
        resp.body = _check_body(resp.headers, body)
        _validate_common(headers)
        return resp
    parts = start.split(" ")
    headers, problem = _read_headers(lines)
    if len(parts) != 3 or not is_token(parts[0]):
        # Still answer 400 if the headers say where (RFC 4475 lwsstart, lwsruri, trws).
        cseq_method = (headers.get("CSeq") or "").partition(" ")[2].strip()
        partial = None if start.startswith("SIP/") or not cseq_method else \
            Request(cseq_method, "", headers)         # never answer a broken response
        raise ParseError(f"bad request line {start[:80]!r}", partial)
    method, uri, version = parts
    req = Request(method, uri, headers)
    try:
        if problem:
            raise ParseError(problem)
        req.body = _check_body(headers, body)
        if not version.startswith("SIP/"):
            raise ParseError(f"bad SIP version {version!r}", req)
        if version != "SIP/2.0":
            raise RemoteError(505, "Version Not Supported", req)
        if uri.startswith("<"):
            raise ParseError("Request-URI must not be enclosed in <>", req)
        _validate_request(req, SipUri.parse(uri))
    except ParseError as exc:
        raise ParseError(exc.reason, req, exc.status) from exc
    return req
