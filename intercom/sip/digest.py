"""Digest authentication for SIP (RFC 3261 section 22, RFC 7616, RFC 8760).

Algorithms MD5, SHA-256 and SHA-512-256, each also in its "-sess" form,
with qop=auth and nonce counts. A server may offer one challenge per
algorithm; RFC 8760 section 2.4 says to answer the first one we support,
so the server's order is its preference.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from intercom.sip.address import split_outside_quotes
from intercom.sip.errors import ParseError, RemoteError

_HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
SUPPORTED_ALGORITHMS = tuple(_HASHES) + tuple(f"{a}-SESS" for a in _HASHES)


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
    algorithm: str          # upper case, e.g. "SHA-256" or "MD5-SESS"
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

    @property
    def supported(self) -> bool:
        return self.algorithm in SUPPORTED_ALGORITHMS

    @property
    def _algorithm_name(self) -> str:
        """As it goes on the wire: "SHA-256-sess", "MD5"."""
        base = self.algorithm.removesuffix("-SESS")
        return base + "-sess" if self.algorithm.endswith("-SESS") else base


def digest_response(ch: Challenge, username: str, password: str, method: str, uri: str,
                    cnonce: str, nc: int) -> str:
    base = ch.algorithm.removesuffix("-SESS")
    if base not in _HASHES:
        raise RemoteError(401, f"digest algorithm {ch.algorithm} is not supported")
    name = _HASHES[base]

    def h(text: str) -> str:
        return hashlib.new(name, text.encode("utf-8")).hexdigest()

    ha1 = h(f"{username}:{ch.realm}:{password}")
    if ch.algorithm.endswith("-SESS"):
        ha1 = h(f"{ha1}:{ch.nonce}:{cnonce}")        # RFC 7616 3.4.2
    ha2 = h(f"{method}:{uri}")
    if ch.qop_auth:
        return h(f"{ha1}:{ch.nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return h(f"{ha1}:{ch.nonce}:{ha2}")


def authorization(ch: Challenge, username: str, password: str, method: str, uri: str,
                  cnonce: str, nc: int) -> str:
    """The Authorization / Proxy-Authorization header value answering ``ch``."""
    response = digest_response(ch, username, password, method, uri, cnonce, nc)
    parts = [f'username="{username}"', f'realm="{ch.realm}"', f'nonce="{ch.nonce}"',
             f'uri="{uri}"', f'response="{response}"', f"algorithm={ch._algorithm_name}"]
    if ch.qop_auth:
        parts += ["qop=auth", f'cnonce="{cnonce}"', f"nc={nc:08x}"]
    if ch.opaque is not None:
        parts.append(f'opaque="{ch.opaque}"')
    return "Digest " + ", ".join(parts)
