"""Client registration (RFC 3261 section 10): register, refresh, retry, unregister.

After a failure it retries with a randomized, doubling backoff, or when a
503/500 says (Retry-After, RFC 3261 21.5.4 and 20.33). With a backup
registrar configured, a failed registrar is left for the other one at once.
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING

from intercom.sip.address import NameAddr, SipUri
from intercom.sip.dialog import new_call_id
from intercom.sip.errors import RemoteError
from intercom.sip.events import RegistrationChanged
from intercom.sip.message import Request, Response
from intercom.sip.transaction import Transaction

if TYPE_CHECKING:
    from intercom.sip.ua import UserAgent

RETRY_FIRST = 5.0          # seconds before the first retry after a failure
RETRY_MAX = 300.0


class Registration:
    def __init__(self, ua: UserAgent, rng: random.Random) -> None:
        self.ua = ua
        self.rng = rng
        self.state = "unregistered"
        self.wanted = False
        self.expires = ua.settings.register_expires
        self.call_id = new_call_id(ua.settings.local_host)
        self.cseq = 0
        self.failures = 0
        self.auth_tries = 0
        self.due: float | None = None      # next refresh or retry
        self.pending = False
        self.server = ua.settings.registrar

    def start(self, now: float) -> None:
        if self.server is None:
            return
        self.wanted = True
        self._send(now, self.expires)

    def stop(self, now: float) -> None:
        if self.state == "registered":
            self._send(now, 0)
        self.wanted = False
        self.due = None

    def next_deadline(self) -> float | None:
        return self.due

    def handle_timer(self, now: float) -> None:
        if self.due is not None and now >= self.due:
            self.due = None
            if self.wanted and not self.pending:
                self._send(now, self.expires)

    def _send(self, now: float, expires: int, req: Request | None = None) -> None:
        s = self.ua.settings
        server = self.server
        assert server is not None
        if req is None:
            self.auth_tries = 0
            self.cseq += 1
            aor = s.aor
            req = self.ua.new_request("REGISTER", SipUri("sip", server.host, None, None,
                                                          server.port),
                                      aor, NameAddr(aor.uri, aor.display), self.call_id, self.cseq)
            req.headers.add("Contact", s.contact)
            req.headers.add("Expires", str(expires))
            self.ua.add_credentials(req, "Authorization")
        else:
            self.cseq = req.cseq[0]
        self.pending = True
        self.ua.start_client(req, server.hostport(), now, self)

    def on_response(self, tx: Transaction, resp: Response, now: float) -> None:
        if resp.status < 200:
            return
        self.pending = False
        unregistering = tx.request.headers.get("Expires") == "0"
        if resp.status < 300:
            self.failures = 0
            if unregistering:
                self._change("unregistered", resp.status, resp.reason)
                return
            granted = self._granted(resp)
            # Refresh well before expiry: halfway for short grants, a minute early otherwise.
            self.due = now + max(granted / 2, granted - 60)
            self._change("registered", resp.status, resp.reason, granted)
        elif resp.status in (401, 407) and (
                retry := self.ua.authorized_retry(tx.request, resp, tx.dest, self.auth_tries)):
            self.auth_tries += 1
            self._send(now, self.expires, retry)
        elif resp.status == 423 and (resp.headers.get("Min-Expires") or "").isdigit():
            self.expires = int(resp.headers.get("Min-Expires") or 0)   # RFC 3261 10.2.8
            self._send(now, self.expires)
        elif not unregistering:
            self._fail(now, resp.status, resp.reason, _retry_after(resp))

    def on_timeout(self, tx: Transaction, now: float) -> None:
        self.pending = False
        if tx.request.headers.get("Expires") != "0":
            self._fail(now, 408, "Request Timeout")

    def _granted(self, resp: Response) -> int:
        ours = NameAddr.parse(self.ua.settings.contact).uri
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

    def _fail(self, now: float, status: int, reason: str, retry_after: int | None = None) -> None:
        self.failures += 1
        s = self.ua.settings
        backup = s.backup_registrar
        if backup is not None and (status in (408, 480) or status >= 500):
            # The other registrar at once; when both have failed, back off first.
            self.server = backup if self.server == s.registrar else s.registrar
            if self.failures % 2 == 1:
                retry_after = 0
        if retry_after is not None:
            delay = float(retry_after)
        else:
            delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (self.failures - 1))
            delay *= self.rng.uniform(0.8, 1.2)
        self.due = now + delay if self.wanted else None
        self._change("failed", status, reason, retry_in=delay)

    def _change(self, state: str, status: int, reason: str, expires: int = 0,
                retry_in: float = 0.0) -> None:
        self.state = state
        self.ua.emit(RegistrationChanged(state, status, reason, expires, retry_in))


def _retry_after(resp: Response) -> int | None:
    """Seconds from Retry-After (on 500/503 and 404/413/480/486/600/603), if any."""
    value = (resp.headers.get("Retry-After") or "").split(";")[0].split("(")[0].strip()
    return min(int(value), int(RETRY_MAX)) if value.isdigit() else None
