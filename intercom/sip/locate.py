"""Where a request goes: destinations with their transport, and RFC 3263 ordering.

A ``Dest`` is one concrete place to send to: a host (an address, or a name
the transport adapter resolves with A/AAAA), a port and a transport. The
RFC 3263 steps that need DNS answers (NAPTR, then SRV) are pure functions
here over plain records, so they are tested without a resolver; the adapter
in ``resolver.py`` asks DNS and feeds the answers in.
"""
from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import NamedTuple

from intercom.sip.address import SipUri

TRANSPORTS = ("udp", "tcp", "tls")
RELIABLE = frozenset({"tcp", "tls"})
# RFC 3263 4.1: NAPTR services, and the SRV prefixes tried when there is no NAPTR.
NAPTR_SERVICES = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
SRV_PREFIX = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}


class Dest(NamedTuple):
    host: str                 # an IP address or a name for A/AAAA look-up; IPv6 without []
    port: int
    transport: str = "udp"    # udp, tcp or tls
    name: str = ""            # the domain a TLS certificate must match (RFC 5922), and SNI

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE

    def same_place(self, other: Dest) -> bool:
        return (self.host, self.port, self.transport) == (other.host, other.port,
                                                         other.transport)


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def uri_transport(uri: SipUri, default: str = "udp") -> str:
    """The transport a URI asks for: sips: means TLS, else its transport= or ``default``."""
    param = (uri.params.get("transport") or "").lower()
    if uri.scheme == "sips":
        return "tls"
    return param if param in TRANSPORTS else default


def uri_dest(uri: SipUri, default_transport: str = "udp") -> Dest:
    """The destination for a URI without DNS SRV (an address, or a port given: 4.2)."""
    transport = uri_transport(uri, default_transport)
    host = uri.host.strip("[]")
    port = uri.port or (5061 if transport == "tls" else 5060)
    return Dest(host, port, transport, "" if is_ip(host) else host)


def needs_srv(uri: SipUri) -> bool:
    """RFC 3263 4.2: SRV only for a name without an explicit port."""
    return uri.port is None and not is_ip(uri.host)


@dataclass(frozen=True)
class Naptr:
    order: int
    preference: int
    service: str              # e.g. "SIP+D2U"
    replacement: str          # the SRV name to look up


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


def naptr_plan(records: list[Naptr], wanted: str | None) -> list[tuple[str, str]]:
    """(transport, SRV name) pairs to try, in NAPTR order (RFC 3263 4.1).

    Only the services we speak are kept; ``wanted`` (a transport the URI or the
    config insists on) narrows the list further.
    """
    plan = []
    for rec in sorted(records, key=lambda r: (r.order, r.preference)):
        transport = NAPTR_SERVICES.get(rec.service.upper())
        if transport is None or (wanted and transport != wanted):
            continue
        plan.append((transport, rec.replacement.rstrip(".")))
    return plan


def fallback_plan(domain: str, wanted: str | None) -> list[tuple[str, str]]:
    """Without NAPTR records: SRV for each transport we speak (RFC 3263 4.1, last paragraph)."""
    transports = [wanted] if wanted else list(TRANSPORTS)
    return [(t, SRV_PREFIX[t] + domain) for t in transports]


def order_srv(records: list[Srv], rng: random.Random) -> list[Srv]:
    """RFC 2782 order: lowest priority first; within one, a weighted random draw."""
    ordered: list[Srv] = []
    for priority in sorted({r.priority for r in records}):
        pool = [r for r in records if r.priority == priority and r.target not in ("", ".")]
        # Zero weights first in the running sum, so they still have a small chance.
        pool.sort(key=lambda r: r.weight != 0)
        while pool:
            total = sum(r.weight for r in pool)
            pick = rng.uniform(0, total) if total else 0.0
            running = 0
            for index, rec in enumerate(pool):
                running += rec.weight
                if running >= pick:
                    ordered.append(pool.pop(index))
                    break
    return ordered


class TargetList:
    """The ordered places for one configured server, and which one is in use.

    A failed place (timeout, transport error, 503) moves on to the next
    (RFC 3263 4.3); after the last one, the first is tried again.
    """

    def __init__(self, dests: list[Dest]) -> None:
        if not dests:
            raise ValueError("a target list needs at least one destination")
        self.dests = dests
        self.index = 0
        self.failed_in_round = 0

    @property
    def current(self) -> Dest:
        return self.dests[self.index]

    def failed(self, dest: Dest) -> bool:
        """Move past ``dest`` if it is in use; True if an untried place remains this round."""
        if not self.current.same_place(dest):
            return False
        self.index = (self.index + 1) % len(self.dests)
        self.failed_in_round += 1
        if self.failed_in_round >= len(self.dests):
            self.failed_in_round = 0
            return False
        return True

    def succeeded(self) -> None:
        self.failed_in_round = 0
