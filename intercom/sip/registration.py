"""Client registration (RFC 3261 section 10): register, refresh, retry, unregister.

After a failure it retries with a randomized, doubling backoff, or when a
503/500 says (Retry-After, RFC 3261 21.5.4 and 20.33). When DNS gave the
registrar several places (RFC 3263), a failed one is left for the next at
once; so is a failed registrar for the backup registrar.

While registered it keeps the NAT binding toward the registrar open with
CRLF pings or OPTIONS (RFC 5626 3.5.1), and when the registrar reports a
different source address in the Via (received/rport, RFC 3581) over UDP,
it registers that address as its Contact instead, at most once per
registration lifetime, so two views of the address cannot make it loop.
"""
from __future__ import annotations

import random

from intercom.sip.address import NameAddr, SipUri, Via
from intercom.sip.dialog import new_call_id, new_tag
from intercom.sip.errors import RemoteError
from intercom.sip.events import (PublicAddress, RegistrationChanged, RegistrationUnanswered,
                                 RegState)
from intercom.sip.host import RegistrationHost
from intercom.sip.locate import Dest
from intercom.sip.message import Request, Response
from intercom.sip.transaction import Transaction


KEEPALIVE = b"\r\n\r\n"       # a CRLF ping (RFC 5626 3.5.1 and 4.4.1)
RETRY_FIRST = 5.0          # seconds before the first retry after a failure
RETRY_MAX = 300.0
UNANSWERED_SECONDS = 4.0   # a REGISTER unanswered this long is worth a warning


class Registration:
    def __init__(self, ua: RegistrationHost, rng: random.Random) -> None:
        self.ua = ua
        self.rng = rng
        self.state = RegState.UNREGISTERED
        self.wanted = False
        self.expires = ua.settings.register_expires
        self.call_id = new_call_id(ua.settings.local_host)
        self.cseq = 0
        self.failures = 0
        self.auth_tries = 0
        self.due: float | None = None      # next refresh or retry
        self.pending = False
        self.unanswered_at: float | None = None     # when to say the registrar is silent
        self.server = ua.settings.registrar
        self.public: tuple[str, int] | None = None   # our address as the registrar sees it
        self.rewrite_after = 0.0
        self.keepalive_due: float | None = None
        self.keepalive_pending = False

    @property
    def dest(self) -> Dest | None:
        return self.ua.locate(self.server) if self.server is not None else None

    @property
    def transport(self) -> str:
        dest = self.dest
        return dest.transport if dest is not None else self.ua.settings.transport

    def start(self, now: float) -> None:
        if self.server is None:
            return
        self.wanted = True
        self._send(now, self.expires)

    def stop(self, now: float) -> None:
        if self.state == RegState.REGISTERED:
            self._send(now, 0)
        self.wanted = False
        self.due = None
        self.keepalive_due = None

    def next_deadline(self) -> float | None:
        return min((d for d in (self.due, self.keepalive_due, self.unanswered_at)
                    if d is not None), default=None)

    def handle_timer(self, now: float) -> None:
        if self.unanswered_at is not None and now >= self.unanswered_at:
            # Said once per attempt, long before Timer B (64*T1) gives up on it.
            self.unanswered_at = None
            self.ua.emit(RegistrationUnanswered(str(self.server), UNANSWERED_SECONDS))
        if self.due is not None and now >= self.due:
            self.due = None
            if self.wanted and not self.pending:
                self._send(now, self.expires)
        if self.keepalive_due is not None and now >= self.keepalive_due:
            self._keepalive(now)

    def address_changed(self, old_contact: str, now: float) -> None:
        """Our address moved: register the new Contact and drop the old one."""
        self.public = None
        self.rewrite_after = 0.0
        if self.wanted:
            self._send(now, self.expires, remove=old_contact)

    def on_transport_lost(self, dest: Dest, now: float) -> None:
        """The connection to the registrar broke: register again over a new one (RFC 5626 4.4.1).
        Only a registration that held: one that has just failed (refused, or ICMP
        port unreachable over UDP) keeps its backoff, or it would storm the registrar."""
        ours = self.dest
        if (self.wanted and not self.pending and self.state == RegState.REGISTERED
                and ours is not None and ours.same_place(dest)):
            self.keepalive_due = None
            self.due = now

    def _keepalive(self, now: float) -> None:
        dest = self.dest
        s = self.ua.settings
        self.keepalive_due = now + s.keepalive_interval
        if dest is None or self.state != RegState.REGISTERED:
            return
        if s.keepalive_method == "options" and not dest.reliable:
            if self.keepalive_pending:
                return
            aor = s.aor
            req = self.ua.new_request("OPTIONS", self._ruri(), aor.with_tag(new_tag()),
                                      NameAddr(aor.uri), new_call_id(s.local_host), 1,
                                      dest.transport)
            self.keepalive_pending = True
            self.ua.start_client(req, dest, now, _KeepaliveClient(self))
        else:
            self.ua.send_raw(KEEPALIVE, dest)

    def _ruri(self) -> SipUri:
        server = self.server
        assert server is not None
        return SipUri(server.scheme, server.host, None, None, server.port)

    def _send(self, now: float, expires: int, req: Request | None = None,
              remove: str | None = None) -> None:
        s = self.ua.settings
        dest = self.dest
        assert dest is not None
        if req is None:
            self.auth_tries = 0
            self.cseq += 1
            aor = s.aor
            req = self.ua.new_request("REGISTER", self._ruri(), aor, NameAddr(aor.uri, aor.display),
                                      self.call_id, self.cseq, dest.transport)
            req.headers.add("Contact", self.ua.contact(dest.transport))
            if remove is not None and remove != self.ua.contact(dest.transport):
                req.headers.add("Contact", remove + ";expires=0")
            req.headers.add("Expires", str(expires))
            self.ua.add_credentials(req, "Authorization")
        else:
            self.cseq = req.cseq[0]
        self.pending = True
        if self.wanted and expires:
            self.unanswered_at = now + UNANSWERED_SECONDS
        self.ua.start_client(req, dest, now, self)

    def on_response(self, tx: Transaction, resp: Response, now: float) -> None:
        self.unanswered_at = None
        if resp.status < 200:
            return
        self.pending = False
        unregistering = tx.request.headers.get("Expires") == "0"
        if resp.status < 300:
            self.failures = 0
            if unregistering:
                self._change(RegState.UNREGISTERED, resp.status, resp.reason)
                return
            granted = self._granted(resp, tx.dest.transport)
            if self._rewrite_contact(tx, resp, now, granted):
                return
            # Refresh well before expiry: halfway for short grants, a minute early otherwise.
            self.due = now + max(granted / 2, granted - 60)
            interval = self.ua.settings.keepalive_interval
            self.keepalive_due = now + interval if interval > 0 else None
            self._change(RegState.REGISTERED, resp.status, resp.reason, granted)
        elif resp.status in (401, 407) and (
                retry := self.ua.authorized_retry(tx.request, resp, tx.dest, self.auth_tries)):
            self.auth_tries += 1
            self._send(now, self.expires, retry)
        elif resp.status == 423 and (resp.headers.get("Min-Expires") or "").isdigit():
            self.expires = int(resp.headers.get("Min-Expires") or 0)   # RFC 3261 10.2.8
            self._send(now, self.expires)
        elif not unregistering:
            failed = tx.dest if resp.status == 503 else None
            self._fail(now, resp.status, resp.reason, _retry_after(resp), failed)

    def on_timeout(self, tx: Transaction, now: float) -> None:
        self.pending = False
        self.unanswered_at = None
        if tx.request.headers.get("Expires") != "0":
            if tx.unreachable:
                self._fail(now, 503, "Unreachable", failed=tx.dest)
            else:
                self._fail(now, 408, "Request Timeout", failed=tx.dest)

    def keepalive_lost(self, tx: Transaction, now: float) -> None:
        """An OPTIONS keepalive got no answer: the registrar (or the NAT) is gone."""
        self.keepalive_pending = False
        if self.wanted and not self.pending:
            self._fail(now, 408, "Keepalive Timeout", failed=tx.dest)

    def _rewrite_contact(self, tx: Transaction, resp: Response, now: float, granted: int) -> bool:
        """Register the address the registrar saw, if it differs from our Contact (RFC 3581)."""
        s = self.ua.settings
        if not s.contact_rewrite or tx.dest.reliable or now < self.rewrite_after:
            return False
        try:
            via = Via.parse(resp.headers.get_all("Via")[0])
        except (RemoteError, IndexError):
            return False
        rport = via.params.get("rport") or ""
        observed = (via.params.get("received") or s.local_host,
                    int(rport) if rport.isdigit() else s.local_port)
        if observed == (self.public or (s.local_host, s.local_port)):
            return False
        old = self.ua.contact(tx.dest.transport)
        self.public = None if observed == (s.local_host, s.local_port) else observed
        self.rewrite_after = now + granted
        self.ua.emit(PublicAddress(observed))
        self._send(now, self.expires, remove=old)
        return True

    def _granted(self, resp: Response, transport: str) -> int:
        ours = NameAddr.parse(self.ua.contact(transport)).uri
        for value in resp.headers.get_all("Contact"):
            try:
                contact = NameAddr.parse(value)
            except RemoteError:
                continue
            exp = contact.params.get("expires")
            if contact.uri == ours and exp is not None and exp.isdigit():
                return int(exp)
        header = resp.headers.get("Expires")
        return int(header) if header and header.isdigit() else self.expires

    def _fail(self, now: float, status: int, reason: str, retry_after: int | None = None,
              failed: Dest | None = None) -> None:
        self.failures += 1
        self.keepalive_due = None
        s = self.ua.settings
        backup = s.backup_registrar
        if failed is not None and self.ua.target_failed(failed):
            retry_after = 0                    # DNS gave another place: try it now (RFC 3263 4.3)
        elif backup is not None and (status in (408, 480) or status >= 500):
            # The other registrar at once; when both have failed, back off first.
            self.server = backup if self.server == s.registrar else s.registrar
            if self.failures % 2 == 1:
                retry_after = 0
        if retry_after is not None:
            delay = float(retry_after)
        else:
            delay = min(RETRY_MAX, RETRY_FIRST * 2 ** min(self.failures - 1, 16))
            delay *= self.rng.uniform(0.8, 1.2)
        self.due = now + delay if self.wanted else None
        self._change(RegState.FAILED, status, reason, retry_in=delay)

    def _change(self, state: RegState, status: int, reason: str, expires: int = 0,
                retry_in: float = 0.0) -> None:
        self.state = state
        self.ua.emit(RegistrationChanged(state, status, reason, expires, retry_in,
                                         str(self.server)))


def _retry_after(resp: Response) -> int | None:
    """Seconds from Retry-After (on 500/503 and 404/413/480/486/600/603), if any."""
    value = (resp.headers.get("Retry-After") or "").split(";")[0].split("(")[0].strip()
    return min(int(value), int(RETRY_MAX)) if value.isdigit() else None


class _KeepaliveClient:
    """OPTIONS as keepalive: any answer shows the registrar is there; none means re-register."""

    def __init__(self, registration: Registration) -> None:
        self.registration = registration

    def on_response(self, tx: Transaction, resp: Response, now: float) -> None:
        if resp.status >= 200:
            self.registration.keepalive_pending = False

    def on_timeout(self, tx: Transaction, now: float) -> None:
        self.registration.keepalive_lost(tx, now)
