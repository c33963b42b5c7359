"""HTTP digest authentication for SIP (RFC 3261 section 22, RFC 2617, qop=auth).

Only MD5 for now; SHA-256 (RFC 8760) comes with the full user agent.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from intercom.sip.address import split_outside_quotes
from intercom.sip.errors import ParseError, RemoteError

SUPPORTED_ALGORITHMS = ("MD5",)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Digest a="b", c=d`` into ("Digest", {"a": "b", "c": "d"})."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    for item in split_outside_quotes(rest, ","):
        name, eq, val = item.strip().partition("=")
        if not item.strip():
            continue
        if not eq:
            raise ParseError(f"bad auth parameter {item.strip()!r}")
        params[name.strip().lower()] = _unquote(val)
    return scheme, params


@dataclass(frozen=True)
class Challenge:
    realm: str
    nonce: str
    opaque: str | None
    algorithm: str
    qop_auth: bool
    stale: bool

    @classmethod
    def parse(cls, value: str) -> Challenge:
        scheme, p = parse_auth_params(value)
        if scheme.lower() != "digest":
            raise RemoteError(401, f"unsupported auth scheme {scheme!r}")
        if "realm" not in p or "nonce" not in p:
            raise ParseError("digest challenge without realm or nonce")
        algorithm = p.get("algorithm", "MD5").upper()
        qops = {q.strip().lower() for q in p.get("qop", "").split(",") if q.strip()}
        return cls(p["realm"], p["nonce"], p.get("opaque"), algorithm,
                   "auth" in qops, p.get("stale", "").lower() == "true")


def _h(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def digest_response(ch: Challenge, username: str, password: str, method: str, uri: str,
                    cnonce: str, nc: int) -> str:
    ha1 = _h(f"{username}:{ch.realm}:{password}")
    ha2 = _h(f"{method}:{uri}")
    if ch.qop_auth:
        return _h(f"{ha1}:{ch.nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return _h(f"{ha1}:{ch.nonce}:{ha2}")


def authorization(ch: Challenge, username: str, password: str, method: str, uri: str,
                  cnonce: str, nc: int) -> str:
    """The Authorization / Proxy-Authorization header value answering ``ch``."""
    if ch.algorithm not in SUPPORTED_ALGORITHMS:
        raise RemoteError(401, f"digest algorithm {ch.algorithm} is not supported")
    response = digest_response(ch, username, password, method, uri, cnonce, nc)
    parts = [f'username="{username}"', f'realm="{ch.realm}"', f'nonce="{ch.nonce}"',
             f'uri="{uri}"', f'response="{response}"', f"algorithm={ch.algorithm}"]
    if ch.qop_auth:
        parts += ["qop=auth", f'cnonce="{cnonce}"', f"nc={nc:08x}"]
    if ch.opaque is not None:
        parts.append(f'opaque="{ch.opaque}"')
    return "Digest " + ", ".join(parts)
