"""RFC 3263 server location with dnspython: NAPTR, then SRV, for configured servers.

``locate`` turns a SIP URI such as ``sip:example.com`` into the ordered
places to try (``Dest``: SRV target, port and transport). What the records
mean lives in ``locate.py``; this module only asks DNS. An address, or a
name with a port, needs no SRV: the caller uses the URI as it is, and the
transport adapter resolves the name with A/AAAA. An empty list means DNS
had no SRV records either, which is the same case (RFC 3263 4.2).
"""
from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from intercom.sip.address import SipUri, parse_hostport
from intercom.sip.locate import (Dest, Naptr, Srv, fallback_plan, naptr_plan, needs_srv,
                                 order_srv, uri_transport)

log = logging.getLogger("intercom.sip")
QUERY_LIFETIME = 3.0               # seconds for one query, retries included


def make_resolver(nameservers: Sequence[str]) -> dns.asyncresolver.Resolver:
    """The system resolver, or one asking the given ``host[:port]`` servers only."""
    if not nameservers:
        return dns.asyncresolver.Resolver()
    resolver = dns.asyncresolver.Resolver(configure=False)
    hosts, ports = [], set()
    for entry in nameservers:
        host, port = parse_hostport(entry, 53)
        hosts.append(host.strip("[]"))
        ports.add(port or 53)
    if len(ports) > 1:
        raise ValueError("all DNS servers must use the same port")
    resolver.nameservers = hosts
    resolver.port = ports.pop()
    return resolver


async def _query(resolver: dns.asyncresolver.Resolver, name: str,
                 rdtype: dns.rdatatype.RdataType) -> list[Any]:
    try:
        answer = await resolver.resolve(name, rdtype, lifetime=QUERY_LIFETIME, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
        return []
    except dns.exception.Timeout:
        log.warning("DNS: no answer for %s %s", name, rdtype.name)
        return []
    return list(answer)


async def _addresses(resolver: dns.asyncresolver.Resolver, host: str) -> list[str]:
    """A, then AAAA records of an SRV target, from the same DNS servers (RFC 3263 4.2)."""
    found = []
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        found += [r.address for r in await _query(resolver, host, rdtype)]
    return found


async def locate(uri: SipUri, resolver: dns.asyncresolver.Resolver,
                 rng: random.Random | None = None, transport: str | None = None) -> list[Dest]:
    """The places for ``uri``, best first; ``transport`` forces one (else NAPTR decides)."""
    if not needs_srv(uri):
        return []
    rng = rng or random.Random()
    domain = uri.host
    wanted = transport or (uri_transport(uri, "") or None)
    naptrs = [Naptr(r.order, r.preference, r.service.decode(), r.replacement.to_text())
              for r in await _query(resolver, domain, dns.rdatatype.NAPTR)
              if r.flags.decode().lower() == "s"]
    plan = naptr_plan(naptrs, wanted) or fallback_plan(domain, wanted)
    dests: list[Dest] = []
    for proto, srv_name in plan:
        records = [Srv(r.priority, r.weight, r.port, r.target.to_text().rstrip("."))
                   for r in await _query(resolver, srv_name, dns.rdatatype.SRV)]
        for rec in order_srv(records, rng):
            for address in await _addresses(resolver, rec.target):
                dest = Dest(address, rec.port, proto, domain)
                if dest not in dests:
                    dests.append(dest)
    if dests:
        log.info("DNS: %s -> %s", uri, ", ".join(f"{d.transport}:{d.host}:{d.port}"
                                                 for d in dests))
    return dests
