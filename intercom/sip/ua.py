"""The sans-IO SIP user agent: bytes and time in; bytes, events and a timer out.

Feed it with ``receive(data, addr, now)`` and ``handle_timer(now)``; drain
``datagrams_to_send()`` and ``events()``; sleep until ``get_timer()``.
Commands (register, invite, hangup, answer...) take ``now`` too. It never
touches a socket or a clock, so tests run it on a virtual clock.
"""
from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from intercom.sip import digest
from intercom.sip.address import NameAddr, SipUri, Via
from intercom.sip.dialog import ALLOW, Dialog, make_response, new_branch, new_call_id, new_tag
from intercom.sip.errors import LocalError, RemoteError
from intercom.sip.events import (CallAnswered, CallEnded, CallFailed, CallProgress, CallUpdated,
                                 IncomingCall, MessageRejected, UaEvent)
from intercom.sip.message import Request, Response, parse_message
from intercom.sip.registration import Registration
from intercom.sip.transaction import Kind, TimerValues, Transaction, response_input

Addr = tuple[str, int]
# Methods we know but do not accept: 405 with Allow (RFC 3261 8.2.1); others get 501.
KNOWN_METHODS = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "INFO", "UPDATE",
                           "PRACK", "MESSAGE", "PUBLISH"})


@dataclass(frozen=True)
class UaSettings:
    user: str
    domain: str
    local_host: str
    local_port: int
    display_name: str = ""
    registrar: SipUri | None = None
    proxy: SipUri | None = None          # outbound proxy; the registrar when unset
    auth_user: str = ""
    password: str = ""
    realm: str = ""                      # answer challenges of this realm only, when set
    register_expires: int = 600
    timers: TimerValues = TimerValues()
    user_agent: str = "intercom/0.1"

    @property
    def aor(self) -> NameAddr:
        display = f'"{self.display_name}"' if self.display_name else None
        return NameAddr(SipUri("sip", self.domain, self.user), display)

    @property
    def contact(self) -> str:
        host = f"[{self.local_host}]" if ":" in self.local_host else self.local_host
        return f"<sip:{self.user}@{host}:{self.local_port}>"

    @property
    def outbound(self) -> SipUri | None:
        return self.proxy or self.registrar


@dataclass
class Call:
    call_id: str
    outgoing: bool
    invite: Request                       # the latest INVITE sent or the one received
    local_sdp: bytes
    local_tag: str
    dest: Addr
    state: str = "calling"                # calling, early, confirmed, ending
    dialog: Dialog | None = None
    provisional: bool = False             # a 1xx arrived, so CANCEL may be sent (9.1)
    hangup_requested: bool = False
    cancel_sent: bool = False
    give_up_at: float | None = None       # no final answer 64*T1 after CANCEL (9.1)
    auth_tries: int = 0
    ack: bytes | None = None              # resent for each 2xx retransmission (13.2.2.4)
    ok: bytes | None = None               # our 2xx, resent until the ACK (13.3.1.4)
    ok_next: float = 0.0
    ok_interval: float = 0.0
    ok_give_up: float = 0.0
    server_tx: Transaction | None = field(default=None, repr=False)


class UserAgent:
    def __init__(self, settings: UaSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._out: list[tuple[bytes, Addr]] = []
        self._events: deque[UaEvent] = deque()
        self._client: dict[tuple[str, str], tuple[Transaction, object]] = {}
        self._server: dict[tuple[str, str, str], Transaction] = {}
        self.calls: dict[str, Call] = {}
        self.registration = Registration(self, rng or random.Random())

    # ----- the sans-IO interface -------------------------------------------------
    def datagrams_to_send(self) -> list[tuple[bytes, Addr]]:
        out, self._out = self._out, []
        return out

    def events(self) -> list[UaEvent]:
        out = list(self._events)
        self._events.clear()
        return out

    def get_timer(self) -> float | None:
        deadlines = [tx.next_deadline() for tx, _ in self._client.values()]
        deadlines += [tx.next_deadline() for tx in self._server.values()]
        for call in self.calls.values():
            deadlines.append(call.give_up_at)
            if call.ok is not None:
                deadlines.append(min(call.ok_next, call.ok_give_up))
        deadlines.append(self.registration.next_deadline())
        return min((d for d in deadlines if d is not None), default=None)

    def receive(self, data: bytes, addr: Addr, now: float) -> None:
        try:
            msg = parse_message(data)
        except RemoteError as exc:
            self._reject_unparsable(exc, addr, now)
            return
        if isinstance(msg, Response):
            self._on_response(msg, now)
        else:
            self._on_request(msg, addr, now)

    def handle_timer(self, now: float) -> None:
        for key, (tx, handler) in list(self._client.items()):
            for name in tx.due_timers(now):
                step = tx.fire("timer_" + name, now)
                self._send(step.send, tx.dest)
                if step.timed_out:
                    handler.on_timeout(tx, now)  # type: ignore[attr-defined]
            if tx.terminated:
                self._client.pop(key, None)
        for skey, stx in list(self._server.items()):
            for name in stx.due_timers(now):
                self._send(stx.fire("timer_" + name, now).send, stx.dest)
            if stx.terminated:
                del self._server[skey]
        for call in list(self.calls.values()):
            self._call_timers(call, now)
        self.registration.handle_timer(now)

    # ----- commands --------------------------------------------------------------
    def register(self, now: float) -> None:
        self.registration.start(now)

    def unregister(self, now: float) -> None:
        self.registration.stop(now)

    def invite(self, target: str, sdp: bytes, now: float) -> str:
        """Call ``target`` (a sip: URI) with our SDP offer; returns the Call-ID."""
        uri = SipUri.parse(target)
        if not uri.is_sip:
            raise LocalError(f"cannot call {target!r}: only sip: and sips: URIs")
        s = self.settings
        call_id = new_call_id(s.local_host)
        tag = new_tag()
        req = self.new_request("INVITE", uri, s.aor.with_tag(tag), NameAddr(uri), call_id, 1)
        req.headers.add("Contact", s.contact)
        req.headers.add("Allow", ALLOW)
        req.headers.add("Content-Type", "application/sdp")
        req.body = sdp
        dest = s.outbound.hostport() if s.outbound else uri.hostport()
        call = Call(call_id, True, req, sdp, tag, dest)
        self.calls[call_id] = call
        self.start_client(req, dest, now, _InviteHandler(self, call))
        return call_id

    def hangup(self, call_id: str, now: float) -> None:
        """End a call in whatever state it is: CANCEL, BYE or a 603 to an offer."""
        call = self._call(call_id)
        if call.state == "ending" or call.hangup_requested:
            return
        call.hangup_requested = True
        if call.outgoing and call.state in ("calling", "early"):
            if call.provisional:
                self._send_cancel(call, now)
            # else: CANCEL waits for the first provisional response (RFC 3261 9.1)
            call.give_up_at = now + 64 * self.settings.timers.t1
        elif not call.outgoing and call.state != "confirmed":
            self.reject(call_id, 603, "Decline", now)
        else:
            self._send_bye(call, now)

    def ring(self, call_id: str, now: float) -> None:
        call = self._call(call_id)
        self._respond_call(call, 180, "Ringing", now)

    def answer(self, call_id: str, sdp: bytes, now: float) -> None:
        call = self._call(call_id)
        if call.outgoing or call.ok is not None:
            raise LocalError(f"call {call_id} cannot be answered")
        call.local_sdp = sdp
        call.dialog = Dialog.as_uas(call.invite, call.local_tag)
        resp = self._respond_call(call, 200, "OK", now, body=sdp)
        call.ok = resp.to_bytes()
        t1 = self.settings.timers.t1
        call.ok_interval = t1
        call.ok_next = now + t1
        call.ok_give_up = now + 64 * t1
        call.state = "confirmed"

    def reject(self, call_id: str, status: int, reason: str, now: float) -> None:
        call = self._call(call_id)
        self._respond_call(call, status, reason, now)
        self._end(call, CallEnded(call_id, False, f"rejected {status}"))

    # ----- building blocks shared with Registration ------------------------------
    def new_via(self) -> Via:
        s = self.settings
        return Via("UDP", s.local_host, s.local_port, {"branch": new_branch(), "rport": None})

    def new_request(self, method: str, ruri: SipUri, from_: NameAddr, to: NameAddr,
                    call_id: str, cseq: int) -> Request:
        req = Request(method, str(ruri))
        h = req.headers
        h.add("Via", str(self.new_via()))
        h.add("Max-Forwards", "70")
        h.add("From", str(from_))
        h.add("To", str(to))
        h.add("Call-ID", call_id)
        h.add("CSeq", f"{cseq} {method}")
        h.add("User-Agent", self.settings.user_agent)
        return req

    def start_client(self, req: Request, dest: Addr, now: float, handler: object) -> Transaction:
        kind = Kind.INVITE_CLIENT if req.method == "INVITE" else Kind.NON_INVITE_CLIENT
        tx = Transaction(kind, req, dest, now, self.settings.timers)
        branch = Via.parse(req.headers.get_all("Via")[0]).branch or ""
        self._client[(branch, req.method)] = (tx, handler)
        self._out.append((tx.initial_send(), dest))
        return tx

    def emit(self, event: UaEvent) -> None:
        self._events.append(event)

    def authorized_retry(self, req: Request, resp: Response, dest: Addr,
                         tries: int) -> Request | None:
        """``req`` again with credentials for ``resp``'s challenge, or None.

        Credentials go only to the configured registrar/proxy, and only for the
        configured realm when one is set (CVE-2009-5140); a second challenge
        for the same credentials means they are wrong, unless the nonce is stale.
        """
        s = self.settings
        if not s.password or s.outbound is None or dest != s.outbound.hostport():
            return None
        name = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        answer = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        for value in resp.headers.get_all(name):
            try:
                ch = digest.Challenge.parse(value)
            except RemoteError:
                continue
            if (s.realm and ch.realm != s.realm) or ch.algorithm not in digest.SUPPORTED_ALGORITHMS:
                continue
            if tries >= 1 and not ch.stale:
                return None
            retry = Request(req.method, req.uri, req.headers.copy(), req.body)
            h = retry.headers
            h.remove("Via")
            h.items.insert(0, ("Via", str(self.new_via())))
            h.set("CSeq", f"{req.cseq[0] + 1} {req.method}")
            h.remove(answer)
            h.add(answer, digest.authorization(ch, s.auth_user or s.user, s.password,
                                               req.method, req.uri, new_tag(), 1))
            return retry
        return None

    # ----- responses -------------------------------------------------------------
    def _on_response(self, resp: Response, now: float) -> None:
        vias = resp.headers.get_all("Via")
        if not vias:
            return
        key = (Via.parse(vias[0]).branch or "", resp.cseq[1])
        entry = self._client.get(key)
        if entry is None:
            if key[1] == "INVITE" and 200 <= resp.status < 300:
                self._stray_2xx(resp)
            return
        tx, handler = entry
        step = tx.fire(response_input(resp.status), now, response=resp)
        self._send(step.send, tx.dest)
        if tx.terminated:
            self._client.pop(key, None)
        if step.deliver is not None:
            handler.on_response(tx, resp, now)  # type: ignore[attr-defined]

    def _stray_2xx(self, resp: Response) -> None:
        """A retransmitted 2xx: ACK it again (RFC 3261 13.2.2.4)."""
        call = self.calls.get(resp.call_id)
        if call is not None and call.ack is not None and call.dialog is not None:
            self._out.append((call.ack, call.dialog.next_hop()))

    def _on_invite_response(self, call: Call, tx: Transaction, resp: Response,
                            now: float) -> None:
        status = resp.status
        if status < 200:
            call.provisional = True
            if call.hangup_requested and not call.cancel_sent:
                self._send_cancel(call, now)
            if status > 100 and call.state == "calling":
                call.state = "early"
                self.emit(CallProgress(call.call_id, status, resp.reason))
        elif status < 300:
            self._on_invite_2xx(call, resp, now)
        elif status in (401, 407) and not call.hangup_requested and (
                retry := self.authorized_retry(tx.request, resp, tx.dest, call.auth_tries)):
            call.auth_tries += 1
            call.invite = retry
            self.start_client(retry, tx.dest, now, _InviteHandler(self, call))
        else:
            self._end(call, CallFailed(call.call_id, status, resp.reason))

    def _on_invite_2xx(self, call: Call, resp: Response, now: float) -> None:
        dialog = Dialog.as_uac(call.invite, resp)
        if call.dialog is not None and dialog.remote_tag != call.dialog.remote_tag:
            # A second fork answered: acknowledge it and release it at once.
            self._out.append((dialog.request("ACK", self.new_via(), "", dialog.local_cseq)
                              .to_bytes(), dialog.next_hop()))
            self._bye(dialog, now, None)
            return
        call.dialog = dialog
        call.ack = dialog.request("ACK", self.new_via(), "", call.invite.cseq[0]).to_bytes()
        self._out.append((call.ack, dialog.next_hop()))
        call.give_up_at = None
        if call.hangup_requested:
            self._send_bye(call, now)
        else:
            call.state = "confirmed"
            self.emit(CallAnswered(call.call_id, resp.body))

    def _send_cancel(self, call: Call, now: float) -> None:
        """CANCEL mirrors the INVITE's Request-URI, Via branch and Route (9.1)."""
        inv = call.invite
        cancel = Request("CANCEL", inv.uri)
        h = cancel.headers
        h.add("Via", inv.headers.get_all("Via")[0])
        for route in inv.headers.get_all("Route"):
            h.add("Route", route)
        h.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            h.add(name, inv.headers.get(name) or "")
        h.add("CSeq", f"{inv.cseq[0]} CANCEL")
        call.cancel_sent = True
        self.start_client(cancel, call.dest, now, _Ignore())

    def _send_bye(self, call: Call, now: float) -> None:
        assert call.dialog is not None
        call.state = "ending"
        call.ok = None
        self._bye(call.dialog, now, call)

    def _bye(self, dialog: Dialog, now: float, call: Call | None) -> None:
        bye = dialog.request("BYE", self.new_via(), self.settings.contact)
        self.start_client(bye, dialog.next_hop(), now, _ByeHandler(self, call))

    # ----- requests --------------------------------------------------------------
    def _reject_unparsable(self, exc: RemoteError, addr: Addr, now: float) -> None:
        self.emit(MessageRejected(exc.status, exc.reason, addr))
        req = exc.request
        if req is None or req.method == "ACK" or not req.headers.get_all("Via"):
            return                                  # nothing to address a response to
        try:
            Via.parse(req.headers.get_all("Via")[0])
        except RemoteError:
            return                                  # no usable top Via: drop (RFC 3261 18.3)
        resp = make_response(req, exc.status, exc.reason, new_tag(), exc.extra_headers)
        self._out.append((resp.to_bytes(), addr))

    def _server_key(self, req: Request) -> tuple[str, str, str]:
        via = req.headers.get_all("Via")[0]
        method = "INVITE" if req.method == "ACK" else req.method
        top = Via.parse(via)
        branch = top.branch or ""
        if not branch.startswith("z9hG4bK"):     # RFC 2543 peer: no usable branch (17.2.3)
            branch = f"{req.call_id}|{req.cseq[0]}|{req.from_.tag}"
        return branch, f"{top.host}:{top.port}", method

    def _on_request(self, req: Request, addr: Addr, now: float) -> None:
        key = self._server_key(req)
        tx = self._server.get(key)
        if req.method == "ACK":
            if tx is not None:
                tx.fire("ack", now)
            elif (call := self.calls.get(req.call_id)) is not None and call.ok is not None:
                call.ok = None                      # the 2xx got through
            return
        if tx is not None:
            self._send(tx.fire("request", now).send, addr)
            return
        kind = Kind.INVITE_SERVER if req.method == "INVITE" else Kind.NON_INVITE_SERVER
        tx = Transaction(kind, req, addr, now, self.settings.timers)
        self._server[key] = tx
        try:
            self._check_request(req)
            handler = {"INVITE": self._on_invite, "BYE": self._on_bye,
                       "CANCEL": self._on_cancel, "OPTIONS": self._on_options}.get(req.method)
            if handler is not None:
                handler(req, tx, now)
            elif req.method in KNOWN_METHODS:
                raise RemoteError(405, "Method Not Allowed", req, (("Allow", ALLOW),))
            else:
                raise RemoteError(501, "Not Implemented", req, (("Allow", ALLOW),))
        except RemoteError as exc:
            self._reply(tx, req, exc.status, exc.reason, now, new_tag(), exc.extra_headers)

    def _check_request(self, req: Request) -> None:
        if not req.ruri.is_sip:
            raise RemoteError(416, "Unsupported URI Scheme", req)
        required = [r for r in req.headers.get_all("Require") if r]
        if required and req.method not in ("ACK", "CANCEL"):
            raise RemoteError(420, "Bad Extension", req, (("Unsupported", ", ".join(required)),))
        if req.body and req.method in ("INVITE", "ACK") and req.content_type != "application/sdp":
            raise RemoteError(415, "Unsupported Media Type", req, (("Accept", "application/sdp"),))
        accept = [a.split(";")[0].strip().lower() for a in req.headers.get_all("Accept")]
        if req.method == "INVITE" and accept and not {"application/sdp", "application/*",
                                                      "*/*"} & set(accept):
            # Our answer would be SDP, which the caller says it cannot take (RFC 4475 sdp01).
            raise RemoteError(415, "Unsupported Media Type", req, (("Accept", "application/sdp"),))

    def _on_options(self, req: Request, tx: Transaction, now: float) -> None:
        self._reply(tx, req, 200, "OK", now, new_tag(),
                    (("Allow", ALLOW), ("Accept", "application/sdp"),
                     ("Contact", self.settings.contact)))

    def _on_invite(self, req: Request, tx: Transaction, now: float) -> None:
        call = self.calls.get(req.call_id)
        if req.to.tag:                              # re-INVITE (RFC 3261 14.2)
            if call is None or call.dialog is None or call.dialog.local_tag != req.to.tag:
                raise RemoteError(481, "Call/Transaction Does Not Exist", req)
            self._reply(tx, req, 200, "OK", now, call.local_tag,
                        (("Contact", self.settings.contact),
                         ("Content-Type", "application/sdp")), call.local_sdp)
            if req.body:
                self.emit(CallUpdated(call.call_id, req.body))
            return
        if call is not None:
            raise RemoteError(482, "Loop Detected", req)
        call = Call(req.call_id, False, req, b"", new_tag(), tx.dest, server_tx=tx)
        self.calls[req.call_id] = call
        self._reply(tx, req, 100, "Trying", now)
        self.emit(IncomingCall(req.call_id, str(req.from_.uri), req.body))

    def _on_bye(self, req: Request, tx: Transaction, now: float) -> None:
        call = self.calls.get(req.call_id)
        if call is None or call.dialog is None or req.to.tag != call.dialog.local_tag:
            raise RemoteError(481, "Call/Transaction Does Not Exist", req)
        self._reply(tx, req, 200, "OK", now)
        self._end(call, CallEnded(call.call_id, True, "BYE"))

    def _on_cancel(self, req: Request, tx: Transaction, now: float) -> None:
        branch, sent_by, _ = self._server_key(req)
        invite_tx = self._server.get((branch, sent_by, "INVITE"))
        call = self.calls.get(req.call_id)
        if invite_tx is None or call is None:
            raise RemoteError(481, "Call/Transaction Does Not Exist", req)
        self._reply(tx, req, 200, "OK", now, call.local_tag)
        if call.ok is None and call.state != "confirmed":
            self._respond_call(call, 487, "Request Terminated", now)
            self._end(call, CallEnded(call.call_id, True, "cancelled"))

    # ----- helpers ---------------------------------------------------------------
    def _reply(self, tx: Transaction, req: Request, status: int, reason: str, now: float,
               to_tag: str | None = None, extra: tuple[tuple[str, str], ...] = (),
               body: bytes = b"") -> Response:
        resp = make_response(req, status, reason, to_tag, extra)
        resp.body = body
        event = "send_1xx" if status < 200 else "send_2xx" if status < 300 else "send_final"
        self._send(tx.fire(event, now, wire=resp.to_bytes()).send, tx.dest)
        return resp

    def _respond_call(self, call: Call, status: int, reason: str, now: float,
                      body: bytes = b"") -> Response:
        if call.server_tx is None:
            raise LocalError(f"call {call.call_id} is not an incoming call")
        extra: tuple[tuple[str, str], ...] = ()
        if status < 300:
            extra = (("Contact", self.settings.contact), ("Allow", ALLOW))
            if body:
                extra += (("Content-Type", "application/sdp"),)
        return self._reply(call.server_tx, call.invite, status, reason, now, call.local_tag,
                           extra, body)

    def _call_timers(self, call: Call, now: float) -> None:
        if call.give_up_at is not None and now >= call.give_up_at:
            self._end(call, CallFailed(call.call_id, 408, "no answer to CANCEL"))
            return
        if call.ok is None:
            return
        if now >= call.ok_give_up:                  # never ACKed: end it (13.3.1.4)
            self._send_bye(call, now)
        elif now >= call.ok_next:
            self._out.append((call.ok, call.dest))
            call.ok_interval = min(call.ok_interval * 2, self.settings.timers.t2)
            call.ok_next = now + call.ok_interval

    def _call(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise LocalError(f"no call {call_id!r}")
        return call

    def _end(self, call: Call, event: UaEvent) -> None:
        if self.calls.pop(call.call_id, None) is not None:
            self.emit(event)

    def _send(self, datagrams: list[bytes], dest: Addr) -> None:
        self._out.extend((d, dest) for d in datagrams)


class _InviteHandler:
    def __init__(self, ua: UserAgent, call: Call) -> None:
        self.ua, self.call = ua, call

    def on_response(self, tx: Transaction, resp: Response, now: float) -> None:
        if self.ua.calls.get(self.call.call_id) is self.call:
            self.ua._on_invite_response(self.call, tx, resp, now)
        elif 200 <= resp.status < 300:
            self.ua._on_invite_2xx(self.call, resp, now)   # answered after we gave up

    def on_timeout(self, tx: Transaction, now: float) -> None:
        self.ua._end(self.call, CallFailed(self.call.call_id, 408, "Request Timeout"))


class _ByeHandler:
    def __init__(self, ua: UserAgent, call: Call | None) -> None:
        self.ua, self.call = ua, call

    def on_response(self, tx: Transaction, resp: Response, now: float) -> None:
        if resp.status >= 200 and self.call is not None:
            self.ua._end(self.call, CallEnded(self.call.call_id, False, "hangup"))

    def on_timeout(self, tx: Transaction, now: float) -> None:
        if self.call is not None:
            self.ua._end(self.call, CallEnded(self.call.call_id, False, "hangup (no answer to BYE)"))


class _Ignore:
    def on_response(self, tx: Transaction, resp: Response, now: float) -> None:
        pass

    def on_timeout(self, tx: Transaction, now: float) -> None:
        pass

