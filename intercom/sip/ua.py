"""The sans-IO SIP user agent: bytes and time in; bytes, events and a timer out.

Feed it with ``receive(data, addr, now)`` and ``handle_timer(now)``; drain
``datagrams_to_send()`` and ``events()``; sleep until ``get_timer()``.
Commands (register, invite, hangup, answer...) take ``now`` too. It never
touches a socket or a clock, so tests run it on a virtual clock.
"""
from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, replace

from intercom.sip import digest
from intercom.sip.address import NameAddr, SipUri, Via
from intercom.sip.call import Call
from intercom.sip.dialog import (ALLOW, SUPPORTED, make_response, new_branch, new_tag,
                                  remote_target, route_set)
from intercom.sip.errors import LocalError, RemoteError
from intercom.sip.events import IncomingCall, LocalAddressChanged, MessageRejected, UaEvent
from intercom.sip.locate import Dest, TargetList, needs_srv, uri_dest
from intercom.sip.message import Request, Response, parse_message
from intercom.sip.registration import Registration
from intercom.sip.settings import UaSettings
from intercom.sip.transaction import Command, Input, Kind, Transaction, TransactionUser

Addr = tuple[str, int]
# Methods we know but do not accept: 405 with Allow (RFC 3261 8.2.1); others get 501.
KNOWN_METHODS = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"})
EXTENSIONS = frozenset({"100rel", "timer"})      # option tags we can be required to use
GONE_KEPT = 16               # unanswered outgoing calls remembered for a late 2xx


class UserAgent:
    def __init__(self, settings: UaSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._out: list[tuple[bytes, Dest]] = []
        self._events: deque[UaEvent] = deque()
        self._client: dict[tuple[str, str], tuple[Transaction, TransactionUser]] = {}
        self._server: dict[tuple[str, str, str], Transaction] = {}
        self._merge: dict[tuple[str, str, int, str], tuple[str, str, str]] = {}
        self._nonces: dict[str, tuple[digest.Challenge, int]] = {}
        self.calls: dict[str, Call] = {}
        self._gone: dict[str, Call] = {}                # outgoing calls ended unanswered
        self.targets: dict[str, TargetList] = {}        # RFC 3263 results per server name
        self.registration = Registration(self, rng or random.Random())

    # ----- the sans-IO interface -------------------------------------------------
    def datagrams_to_send(self) -> list[tuple[bytes, Dest]]:
        out, self._out = self._out, []
        return out

    def events(self) -> list[UaEvent]:
        out = list(self._events)
        self._events.clear()
        return out

    def get_timer(self) -> float | None:
        deadlines = [tx.next_deadline() for tx, _ in self._client.values()]
        deadlines += [tx.next_deadline() for tx in self._server.values()]
        deadlines += [call.next_deadline() for call in self.calls.values()]
        deadlines.append(self.registration.next_deadline())
        return min((d for d in deadlines if d is not None), default=None)

    def receive(self, data: bytes, addr: Addr, now: float, transport: str = "udp") -> None:
        """One datagram, or one framed message from a TCP/TLS connection, from ``addr``."""
        source = Dest(addr[0], addr[1], transport)
        if not data.strip(b"\r\n"):
            return                  # a keepalive (RFC 5626 3.5.1); CRLFs are ignored (7.5)
        try:
            msg = parse_message(data)
        except RemoteError as exc:
            self._reject_unparsable(exc, source, now)
            return
        try:
            if isinstance(msg, Response):
                self._on_response(msg, now)
            else:
                self._on_request(msg, source, now)
        except RemoteError as exc:
            # A part read only when it is used (a header the parser leaves as text) is
            # broken: drop the message, and say so; nothing escapes to the transport.
            self.emit(MessageRejected(exc.status, exc.reason, (source.host, source.port)))

    def transport_error(self, dest: Dest, now: float) -> None:
        """The adapter could not reach ``dest`` (connection refused or lost, TLS failure).

        Client transactions toward it fail at once, as if timed out (RFC 3261
        8.1.3.1 and 17.1.4), and the server list moves on to its next place.
        """
        for key, (tx, handler) in list(self._client.items()):
            if not tx.dest.same_place(dest):
                continue
            tx.unreachable = True
            step = tx.fire(Input.TRANSPORT_ERROR, now)
            if tx.terminated:
                self._client.pop(key, None)
            if step.timed_out:
                handler.on_timeout(tx, now)
        self.registration.on_transport_lost(dest, now)

    def handle_timer(self, now: float) -> None:
        for key, (tx, handler) in list(self._client.items()):
            for timer in tx.due_timers(now):
                step = tx.fire(timer, now)
                self._send(step.send, tx.dest)
                if step.timed_out:
                    handler.on_timeout(tx, now)
            if tx.terminated:
                self._client.pop(key, None)
        for skey, stx in list(self._server.items()):
            for timer in stx.due_timers(now):
                self._send(stx.fire(timer, now).send, stx.dest)
            if stx.terminated:
                del self._server[skey]
        for merge, skey in list(self._merge.items()):
            if skey not in self._server:
                del self._merge[merge]
        for call in list(self.calls.values()):
            call.handle_timer(now)
        self.registration.handle_timer(now)

    # ----- commands --------------------------------------------------------------
    def register(self, now: float) -> None:
        self.registration.start(now)

    def unregister(self, now: float) -> None:
        self.registration.stop(now)

    def invite(self, target: str, sdp: bytes, now: float) -> str:
        """Call ``target`` (a sip: URI) with our SDP offer; returns the Call-ID."""
        call = Call.place(self, target, sdp, now)
        self.calls[call.call_id] = call
        return call.call_id

    def hangup(self, call_id: str, now: float) -> None:
        self.call(call_id).hangup(now)

    def ring(self, call_id: str, now: float) -> None:
        self.call(call_id).ring(now)

    def answer(self, call_id: str, sdp: bytes, now: float) -> None:
        self.call(call_id).answer(sdp, now)

    def reject(self, call_id: str, status: int, reason: str, now: float) -> None:
        self.call(call_id).reject(status, reason, now)

    def hold(self, call_id: str, now: float) -> None:
        self.call(call_id).hold(now)

    def resume(self, call_id: str, now: float) -> None:
        self.call(call_id).resume(now)

    def reoffer(self, call_id: str, now: float, method: str = "INVITE", with_sdp: bool = True,
                sdp: bytes | None = None) -> None:
        """A re-INVITE or UPDATE, e.g. with a new SDP after our address changed."""
        self.call(call_id).reoffer(now, method, with_sdp, sdp)

    @property
    def outbound(self) -> SipUri | None:
        """Where out-of-dialog requests go: the proxy, else the registrar in use."""
        return self.settings.proxy or self.registration.server

    # ----- server location (RFC 3263) --------------------------------------------
    def set_targets(self, host: str, dests: list[Dest]) -> None:
        """What DNS said for a configured server's name (NAPTR/SRV), best first."""
        if dests:
            self.targets[host.lower()] = TargetList(dests)
        else:
            self.targets.pop(host.lower(), None)

    def locate(self, uri: SipUri) -> Dest:
        """Where a request for ``uri`` goes now: the place in use from its target list,
        or the URI's own host and port (a name there is resolved by the adapter)."""
        listed = self.targets.get(uri.host) if needs_srv(uri) else None
        return listed.current if listed is not None else uri_dest(uri, self.settings.transport)

    def target_failed(self, dest: Dest) -> bool:
        """Move past a failed place; True when another place is left to try now."""
        return any([targets.failed(dest) for targets in self.targets.values()])

    def is_server(self, dest: Dest, any_port: bool = False) -> bool:
        """Is ``dest`` one of the configured proxy and registrars (or a place DNS gave
        for them)? With ``any_port``, the host alone decides (a server's TCP
        connections come from any port)."""
        for uri in self.settings.servers:
            listed = self.targets.get(uri.host)
            places = (listed.dests if listed is not None and needs_srv(uri)
                      else [uri_dest(uri, self.settings.transport)])
            if any(p.host == dest.host and (any_port or p.port == dest.port) for p in places):
                return True
        return False

    def contact(self, transport: str = "udp") -> str:
        """Our Contact: the address the registrar saw us at when it differs (RFC 3581)."""
        host, port = self.registration.public or (self.settings.local_host,
                                                  self.settings.local_port)
        host = f"[{host}]" if ":" in host else host
        param = "" if transport == "udp" else f";transport={transport}"
        return f"<sip:{self.settings.user}@{host}:{port}{param}>"

    def set_local_address(self, host: str, now: float) -> None:
        """Our address changed (Wi-Fi or 4G handover): register the new contact and
        tell the application, which re-offers its calls with the new media address."""
        if host == self.settings.local_host:
            return
        old = self.contact(self.registration.transport)
        self.settings = replace(self.settings, local_host=host)
        self.registration.address_changed(old, now)
        self.emit(LocalAddressChanged(host, tuple(self.calls)))

    def has_call(self, call_id: str) -> bool:
        """Is the call still live (not ended, not failed)?"""
        return call_id in self.calls

    def call(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise LocalError(f"no call {call_id!r}")
        return call

    # ----- building blocks shared with Registration ------------------------------
    def new_via(self, transport: str = "udp") -> Via:
        s = self.settings
        params: dict[str, str | None] = {"branch": new_branch(), "rport": None}
        if transport != "udp":
            params["alias"] = None      # reuse this connection toward us (RFC 5923)
        return Via(transport.upper(), s.local_host, s.local_port, params)

    def new_request(self, method: str, ruri: SipUri, from_: NameAddr, to: NameAddr,
                    call_id: str, cseq: int, transport: str = "udp") -> Request:
        req = Request(method, str(ruri))
        h = req.headers
        h.add("Via", str(self.new_via(transport)))
        h.add("Max-Forwards", "70")
        h.add("From", str(from_))
        h.add("To", str(to))
        h.add("Call-ID", call_id)
        h.add("CSeq", f"{cseq} {method}")
        h.add("User-Agent", self.settings.user_agent)
        return req

    def start_client(self, req: Request, dest: Dest, now: float, handler: TransactionUser) -> Transaction:
        kind = Kind.INVITE_CLIENT if req.method == "INVITE" else Kind.NON_INVITE_CLIENT
        tx = Transaction(kind, req, dest, now, self.settings.timers, dest.reliable)
        branch = Via.parse(req.headers.get_all("Via")[0]).branch or ""
        self._client[(branch, req.method)] = (tx, handler)
        self._out.append((tx.initial_send(), dest))
        return tx

    def emit(self, event: UaEvent) -> None:
        self._events.append(event)

    def authorized_retry(self, req: Request, resp: Response, dest: Dest,
                         tries: int) -> Request | None:
        """``req`` again with credentials for ``resp``'s challenge, or None.

        Credentials go only to the configured registrar/proxy, and only for the
        configured realm when one is set (CVE-2009-5140); a second challenge
        for the same credentials means they are wrong, unless the nonce is stale.
        The retry keeps the Call-ID and gets a new branch and CSeq (22.2).
        """
        s = self.settings
        if not s.password or not self.is_server(dest):
            return None
        name = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        answer = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        for value in resp.headers.get_all(name):
            try:
                ch = digest.Challenge.parse(value)
            except RemoteError:
                continue
            if (s.realm and ch.realm != s.realm) or not ch.supported:
                continue
            if tries >= 1 and not ch.stale:
                return None
            retry = Request(req.method, req.uri, req.headers.copy(), req.body)
            h = retry.headers
            h.set("Via", str(self.new_via(dest.transport)))
            h.set("CSeq", f"{req.cseq[0] + 1} {req.method}")
            self._nonces[answer] = (ch, 0)
            h.remove(answer)
            self.add_credentials(retry, answer)
            return retry
        return None

    def add_credentials(self, req: Request, header: str) -> None:
        """Answer the last challenge again with the next nonce count (RFC 7616 3.4).

        Saves a round trip on each refresh; a server that no longer likes the
        nonce says so with a new challenge (stale=true), which is answered.
        """
        entry = self._nonces.get(header)
        if entry is None:
            return
        ch, count = entry
        self._nonces[header] = (ch, count + 1)
        s = self.settings
        req.headers.add(header, digest.authorization(ch, s.auth_user or s.user, s.password,
                                                     req.method, req.uri, new_tag(), count + 1))

    def send_raw(self, data: bytes, dest: Dest) -> None:
        self._out.append((data, dest))

    def end(self, call_id: str, event: UaEvent) -> None:
        """The call is over: ``event`` says how; it is forgotten (kept a while if it
        was ours and never answered, for a late 2xx)."""
        call = self.calls.pop(call_id, None)
        if call is not None:
            self.emit(event)
            if call.outgoing and call.dialog is None:
                # kept a while for a 2xx that comes after all (see _on_response)
                self._gone[call.call_id] = call
                while len(self._gone) > GONE_KEPT:
                    del self._gone[next(iter(self._gone))]

    def reply(self, tx: Transaction, req: Request, status: int, reason: str, now: float,
              to_tag: str | None = None, extra: tuple[tuple[str, str], ...] = (),
              body: bytes = b"") -> Response:
        resp = make_response(req, status, reason, to_tag, extra)
        resp.body = body
        self._send(tx.send(Command.response(status), resp.to_bytes(), now).send, tx.dest)
        return resp

    def on_options(self, req: Request, tx: Transaction, now: float) -> None:
        self.reply(tx, req, 200, "OK", now, new_tag(),
                   (("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", SUPPORTED),
                    ("Contact", self.contact(tx.dest.transport))))

    # ----- responses -------------------------------------------------------------
    def _on_response(self, resp: Response, now: float) -> None:
        vias = resp.headers.get_all("Via")
        if not vias:
            return
        key = (Via.parse(vias[0]).branch or "", resp.cseq[1])
        entry = self._client.get(key)
        if entry is None:
            call = self.calls.get(resp.call_id)
            if key[1] == "INVITE" and 200 <= resp.status < 300:
                if call is not None:
                    call.on_stray_2xx(resp)
                elif (gone := self._gone.get(resp.call_id)) is not None:
                    # An answer after we gave up on the INVITE (no reply in time):
                    # acknowledge it and end it, so the phone does not hold a dead call.
                    gone.hangup_requested = True
                    gone.on_invite_2xx(resp, now)
            return
        tx, handler = entry
        step = tx.fire(Input.response(resp.status), now, response=resp)
        self._send(step.send, tx.dest)
        if tx.terminated:
            self._client.pop(key, None)
        if step.deliver is not None:
            handler.on_response(tx, resp, now)

    # ----- requests --------------------------------------------------------------
    def _reject_unparsable(self, exc: RemoteError, addr: Dest, now: float) -> None:
        self.emit(MessageRejected(exc.status, exc.reason, (addr.host, addr.port)))
        req = exc.request if isinstance(exc.request, Request) else None
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

    def _on_request(self, req: Request, addr: Dest, now: float) -> None:
        key = self._server_key(req)
        tx = self._server.get(key)
        if req.method == "ACK":
            if tx is not None:
                tx.fire(Input.ACK, now)
            elif (call := self.calls.get(req.call_id)) is not None:
                call.on_ack(req, now)
            return
        if tx is not None:
            self._send(tx.fire(Input.REQUEST, now).send, addr)
            return
        kind = Kind.INVITE_SERVER if req.method == "INVITE" else Kind.NON_INVITE_SERVER
        tx = Transaction(kind, req, addr, now, self.settings.timers, addr.reliable)
        self._server[key] = tx
        try:
            self._check_request(req, key)
            self._dispatch(req, tx, now)
        except RemoteError as exc:
            self.reply(tx, req, exc.status, exc.reason, now, new_tag(), exc.extra_headers)

    def _dispatch(self, req: Request, tx: Transaction, now: float) -> None:
        call = self.calls.get(req.call_id)
        if req.to.tag and req.method != "CANCEL":   # inside a dialog (RFC 3261 12.2.2)
            if call is None:
                raise RemoteError(481, "Call/Transaction Does Not Exist", req)
            call.note_peer_allow(req)
            call.on_request(req, tx, now)
            return
        if req.method == "INVITE":
            if call is not None:
                raise RemoteError(482, "Loop Detected", req)
            remote_target(req, req.from_.uri)       # a dialog must be possible on it:
            route_set(req)                          # a bad Contact or Record-Route gets 400
            call = Call(self, req.call_id, False, req, b"", new_tag(), tx.dest, server_tx=tx)
            call.session_answer(req, now)          # a 422 now if the interval is too short
            self.calls[req.call_id] = call
            self.reply(tx, req, 100, "Trying", now)
            self.emit(IncomingCall(req.call_id, str(req.from_.uri), req.body,
                                   (tx.dest.host, tx.dest.port)))
        elif req.method == "CANCEL":
            self._on_cancel(req, tx, now)
        elif req.method == "OPTIONS":
            self.on_options(req, tx, now)
        elif req.method in ("BYE", "UPDATE", "INFO", "PRACK"):
            raise RemoteError(481, "Call/Transaction Does Not Exist", req)
        elif req.method in KNOWN_METHODS:
            raise RemoteError(405, "Method Not Allowed", req, (("Allow", ALLOW),))
        else:
            raise RemoteError(501, "Not Implemented", req, (("Allow", ALLOW),))

    def _check_request(self, req: Request, key: tuple[str, str, str]) -> None:
        if not req.ruri.is_sip:
            raise RemoteError(416, "Unsupported URI Scheme", req)
        if not req.to.tag and req.method != "CANCEL":
            # Merged request: the same request reached us by two paths (8.2.2.2).
            merge = (req.from_.tag or "", req.call_id, req.cseq[0], req.method)
            first = self._merge.setdefault(merge, key)
            if first != key and first in self._server:
                raise RemoteError(482, "Loop Detected", req)
        unsupported = [r for r in req.headers.get_all("Require") if r.lower() not in EXTENSIONS]
        if unsupported and req.method not in ("ACK", "CANCEL"):
            raise RemoteError(420, "Bad Extension", req, (("Unsupported", ", ".join(unsupported)),))
        if req.body and req.method in ("INVITE", "ACK", "UPDATE") and \
                req.content_type != "application/sdp":
            raise RemoteError(415, "Unsupported Media Type", req, (("Accept", "application/sdp"),))
        accept = [a.split(";")[0].strip().lower() for a in req.headers.get_all("Accept")]
        if req.method == "INVITE" and accept and not {"application/sdp", "application/*",
                                                      "*/*"} & set(accept):
            # Our answer would be SDP, which the caller says it cannot take (RFC 4475 sdp01).
            raise RemoteError(415, "Unsupported Media Type", req, (("Accept", "application/sdp"),))

    def _on_cancel(self, req: Request, tx: Transaction, now: float) -> None:
        branch, sent_by, _ = self._server_key(req)
        invite_tx = self._server.get((branch, sent_by, "INVITE"))
        call = self.calls.get(req.call_id)
        if invite_tx is None or call is None:
            raise RemoteError(481, "Call/Transaction Does Not Exist", req)
        self.reply(tx, req, 200, "OK", now, call.local_tag)
        call.on_cancel(now)

    def _send(self, datagrams: list[bytes], dest: Dest) -> None:
        self._out.extend((d, dest) for d in datagrams)
