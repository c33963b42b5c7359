"""What a user agent is configured with: who it is, where it registers, its timers."""
from __future__ import annotations

from dataclasses import dataclass

from intercom.sip.address import NameAddr, SipUri
from intercom.sip.transaction import TimerValues


@dataclass(frozen=True)
class UaSettings:
    user: str
    domain: str
    local_host: str
    local_port: int
    display_name: str = ""
    registrar: SipUri | None = None
    backup_registrar: SipUri | None = None   # used while the registrar fails
    proxy: SipUri | None = None          # outbound proxy; the active registrar when unset
    auth_user: str = ""
    password: str = ""
    realm: str = ""                      # answer challenges of this realm only, when set
    register_expires: int = 600
    transport: str = "udp"               # for URIs that do not say (udp, tcp, tls)
    keepalive_interval: float = 25.0     # toward the registrar; 0: none
    keepalive_method: str = "crlf"       # or "options"
    contact_rewrite: bool = True         # follow the registrar's received/rport (RFC 3581)
    session_expires: int = 1800          # RFC 4028 interval we ask for; 0: none
    min_se: int = 90
    timers: TimerValues = TimerValues()
    user_agent: str = "intercom/0.1"

    @property
    def aor(self) -> NameAddr:
        display = f'"{self.display_name}"' if self.display_name else None
        return NameAddr(SipUri("sip", self.domain, self.user), display)

    @property
    def servers(self) -> tuple[SipUri, ...]:
        """Where our credentials may go: the configured proxy and registrars only."""
        return tuple(u for u in (self.proxy, self.registrar, self.backup_registrar)
                     if u is not None)
