"""SIP URIs, name-addr values and Via headers (RFC 3261 section 25.1).

Each value type parses from the text of one header value and prints back to
text; a malformed value raises ParseError naming what is wrong.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from intercom.sip.errors import ParseError

TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
# "SIP / 2.0 / UDP host" with optional whitespace around the slashes (RFC 4475 wsinv).
_VIA = re.compile(r"^\s*SIP\s*/\s*([^\s/]+)\s*/\s*([^\s/]+)\s+(\S.*)$", re.IGNORECASE | re.DOTALL)
_HOSTPORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?::(\d{1,5}))?$")


_TOKEN = re.compile("[" + re.escape("".join(sorted(TOKEN_CHARS))) + "]+")
_SPACE = re.compile(r"\s")


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is outside double quotes and <...>."""
    if '"' not in text and "<" not in text:
        return text.split(sep)                  # the common case, and fast
    parts: list[str] = []
    depth_angle = 0
    in_quote = False
    start = 0
    i = 0
    while i < len(text):
        c = text[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == "<":
            depth_angle += 1
        elif c == ">":
            depth_angle = max(0, depth_angle - 1)
        elif c == sep and depth_angle == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quote:
        raise ParseError(f"unterminated quoted string in {text!r}")
    parts.append(text[start:])
    return parts


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;a=b;c`` (the leading ';' already removed or not) into a dict."""
    params: dict[str, str | None] = {}
    for item in split_outside_quotes(text, ";"):
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if not is_token(name):
            raise ParseError(f"bad parameter name {name!r}")
        params[name] = value.strip() if eq else None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def parse_hostport(text: str, default_port: int | None = None) -> tuple[str, int | None]:
    m = _HOSTPORT.match(text)
    if not m:
        raise ParseError(f"bad host or port {text!r}")
    port = int(m.group(2)) if m.group(2) else default_port
    if port is not None and not 0 < port < 65536:
        raise ParseError(f"port {port} out of range")
    return m.group(1), port


@dataclass(frozen=True)
class SipUri:
    """A sip: or sips: URI. Other schemes are kept whole in ``opaque``."""

    scheme: str
    host: str = ""
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict, compare=False, hash=False)
    headers: str = ""
    opaque: str = ""

    @classmethod
    def parse(cls, text: str) -> SipUri:
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        if not colon or not scheme or not scheme[0].isalpha():
            raise ParseError(f"URI without a scheme: {text!r}")
        if _SPACE.search(text):
            raise ParseError(f"whitespace inside URI {text!r}")
        scheme = scheme.lower()
        if scheme not in ("sip", "sips"):
            return cls(scheme=scheme, opaque=rest)
        # The user part may hold ';', '?' and ',' (RFC 4475 intmeth); the host part
        # may not hold '@'. So split off the user first, then headers and params.
        userinfo, at, hostpart = rest.rpartition("@")
        user: str | None = None
        password: str | None = None
        if at:
            user, _, pw = userinfo.partition(":")
            password = pw or None
        hostpart, _, headers = hostpart.partition("?")
        hostport, _, paramtext = hostpart.partition(";")
        host, port = parse_hostport(hostport)
        return cls(scheme=scheme, host=host.lower(), user=user, password=password, port=port,
                   params=parse_params(paramtext), headers=headers)

    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")

    def __str__(self) -> str:
        if not self.is_sip:
            return f"{self.scheme}:{self.opaque}"
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password else "") + "@"
        port = f":{self.port}" if self.port else ""
        headers = f"?{self.headers}" if self.headers else ""
        return f"{self.scheme}:{userinfo}{self.host}{port}{format_params(self.params)}{headers}"

    def names(self, other: SipUri) -> bool:
        """Does this URI (from a config: who is allowed, whose codes) name the party
        ``other`` is? Same user and host; the port only if this one gives it."""
        return (self.user, self.host) == (other.user, other.host) and \
            (self.port is None or self.port == other.port)

    def hostport(self) -> tuple[str, int]:
        """Where to send a request for this URI (no DNS SRV yet: port 5060/5061)."""
        default = 5061 if self.scheme == "sips" else 5060
        return self.host.strip("[]"), self.port or default


@dataclass(frozen=True)
class NameAddr:
    """``"Display" <uri>;params`` as in From, To, Contact, Route and Record-Route."""

    uri: SipUri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if "<" in text:
            before, _, after = text.partition("<")
            uri_text, closed, params_text = after.partition(">")
            if not closed:
                raise ParseError(f"missing '>' in {text!r}")
            if uri_text != uri_text.strip():
                raise ParseError(f"whitespace inside <> in {text!r}")
            display = before.strip() or None
            if display and display.startswith('"'):
                if len(display) < 2 or not display.endswith('"'):
                    raise ParseError(f"unterminated display name in {text!r}")
            elif display and not all(is_token(word) for word in display.split()):
                raise ParseError(f"display name {display!r} must be quoted")
            params_text = params_text.strip()
            if params_text and not params_text.startswith(";"):
                raise ParseError(f"junk after '>' in {text!r}")
            return cls(SipUri.parse(uri_text), display, parse_params(params_text))
        # addr-spec form: parameters after the URI belong to the header (RFC 3261 20.10),
        # so the URI itself can carry none; a '?' or ',' here is ambiguous.
        uri_text, _, params_text = text.partition(";")
        if "?" in uri_text or "," in uri_text:
            raise ParseError(f"addr-spec with headers or commas must be in <>: {text!r}")
        return cls(SipUri.parse(uri_text), None, parse_params(params_text))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        return replace(self, params={**self.params, "tag": tag})

    def __str__(self) -> str:
        display = f"{self.display} " if self.display else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


@dataclass(frozen=True)
class Via:
    transport: str
    host: str                     # without brackets, also for IPv6
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _VIA.match(text)
        if not m or not is_token(m.group(1)) or not is_token(m.group(2)):
            raise ParseError(f"bad Via {text[:60]!r}")
        sent_by, _, params = m.group(3).partition(";")
        host, port = parse_hostport(re.sub(r"\s+", "", sent_by))
        return cls(m.group(2).upper(), host.strip("[]"), port, parse_params(params))

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        port = f":{self.port}" if self.port else ""
        host = f"[{self.host}]" if ":" in self.host else self.host      # IPv6 reference
        return f"SIP/2.0/{self.transport} {host}{port}{format_params(self.params)}"
