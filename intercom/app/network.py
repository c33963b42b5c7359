"""The station's SIP identity and whereabouts, from the config: the user agent,
our address on the route to the registrar, and the servers' DNS records."""
from __future__ import annotations

from intercom.config import Config
from intercom.sip.address import SipUri
from intercom.sip.locate import needs_srv
from intercom.sip.transaction import TimerValues
from intercom.sip.transport import local_address_towards
from intercom.sip.settings import UaSettings
from intercom.sip.ua import UserAgent


UNANSWERED_FIX = ("check [sip] registrar (its address and port), that the registrar runs, "
                  "and that a firewall lets SIP through")
CREDENTIALS_FIX = "check [sip] user, auth_user and password against the registrar's account"


def registration_fix(status: int) -> str:
    """What to do about a registration that failed with ``status`` (the station's
    log and ``intercom doctor`` say the same)."""
    if status in (401, 403, 407):
        return CREDENTIALS_FIX
    if status in (408, 503):
        return UNANSWERED_FIX
    if status == 404:
        return "check [sip] user and domain: the registrar does not know this account"
    return "see the registrar's log"


def registrar_of(config: Config) -> SipUri | None:
    s = config.sip
    return SipUri.parse(s.registrar) if s.registrar else None


def route_address(config: Config, toward: tuple[str, int] | None = None) -> str:
    """Our address on the route to ``toward``: the registrar, else the first target."""
    listen = config.sip.listen
    if listen not in ("0.0.0.0", "::", ""):
        return str(listen)
    if toward is None:
        toward = (registrar_of(config) or SipUri.parse(config.call.targets[0])).hostport()
    return local_address_towards(*toward)


def user_agent(config: Config) -> UserAgent:
    s = config.sip
    registrar = registrar_of(config)
    local_host = s.public_address or route_address(config)
    return UserAgent(UaSettings(
        user=s.user, domain=s.domain or (registrar.host if registrar else local_host),
        local_host=local_host, local_port=s.port,
        display_name=config.station.name, registrar=registrar,
        proxy=SipUri.parse(s.proxy) if s.proxy else None,
        backup_registrar=SipUri.parse(s.backup_registrar) if s.backup_registrar else None,
        auth_user=s.auth_user, password=s.password, realm=s.realm,
        register_expires=s.register_expires, session_expires=s.session_expires,
        transport="udp" if s.transport == "auto" else s.transport,
        keepalive_interval=float(s.keepalive_interval), keepalive_method=s.keepalive,
        contact_rewrite=s.contact_rewrite, timers=TimerValues(t1=float(s.t1))))


async def locate_servers(ua: UserAgent, config: Config, targets: list[str]) -> None:
    """RFC 3263: the places DNS names for the registrars and proxy, best first,
    and for the call ``targets`` when calls go to them directly."""
    s = config.sip
    forced = None if s.transport == "auto" else s.transport
    uris = list(ua.settings.servers)
    if ua.outbound is None:
        uris += [SipUri.parse(t) for t in targets]
    if not any(needs_srv(uri) for uri in uris):
        return              # addresses, or names with ports: no DNS library in memory
    from intercom.sip.resolver import locate, make_resolver
    resolver = make_resolver(s.dns_servers)
    for uri in uris:
        if uri.host not in ua.targets:
            ua.set_targets(uri.host, await locate(uri, resolver, transport=forced))
