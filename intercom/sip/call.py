"""One INVITE session (RFC 3261 sections 13-15) as caller or callee.

A ``Call`` owns its dialog and everything that happens inside it: early
dialogs and PRACK (RFC 3262), re-INVITE and UPDATE offers both ways
(RFC 3311), hold and resume (RFC 6337), session timers (RFC 4028), INFO
digits, CANCEL and BYE. The ``UserAgent`` routes messages to it by Call-ID
and carries out its sends; like the rest of ``sip/`` it never does I/O.
"""
from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from intercom.sip import sdp
from intercom.sip.address import NameAddr, SipUri, parse_params
from intercom.sip.dialog import ALLOW, SUPPORTED, Dialog, new_call_id, new_tag, remote_target
from intercom.sip.errors import LocalError, RemoteError
from intercom.sip.events import (CallAnswered, CallEnded, CallFailed, CallProgress, CallUpdated,
                                 InfoDtmf)
from intercom.sip.host import CallHost
from intercom.sip.locate import Dest
from intercom.sip.message import Request, Response
from intercom.sip.transaction import Transaction, like_invite


DTMF_INFO_TYPES = ("application/dtmf-relay", "application/dtmf")
_DIGITS = "0123456789*#ABCD"
SESSION_FLOOR = 2                # seconds: the shortest session interval honoured


@dataclass
class Resend:
    """A message we repeat at T1, doubling to T2, until told to stop (13.3.1.4, RFC 3262 3)."""

    data: bytes
    dest: Dest
    next_at: float
    interval: float
    give_up_at: float
    cseq: int = 0                  # what the ACK or PRACK must name


@dataclass
class SessionTimer:
    """RFC 4028: who refreshes, and when the session is refreshed or dies."""

    interval: int
    we_refresh: bool
    due: float                     # refresh (we_refresh) or give up (otherwise)


def _digit_from_info(req: Request) -> str | None:
    text = req.body.decode("utf-8", "replace").strip()
    if req.content_type == "application/dtmf-relay":
        fields = {k.strip().lower(): v.strip() for k, _, v in
                  (line.partition("=") for line in text.splitlines())}
        text = fields.get("signal", "")
    text = {"10": "*", "11": "#"}.get(text, text).upper()
    return text if len(text) == 1 and text in _DIGITS else None


class CallState(enum.StrEnum):
    """Where an INVITE dialog is: its INVITE sent or received, a provisional
    answer with a To tag, answered (ACKed or about to be), or being ended."""

    CALLING = "calling"
    EARLY = "early"
    CONFIRMED = "confirmed"
    ENDING = "ending"


class Call:
    def __init__(self, ua: CallHost, call_id: str, outgoing: bool, invite: Request,
                 local_sdp: bytes, local_tag: str, dest: Dest,
                 server_tx: Transaction | None = None) -> None:
        self.ua = ua
        self.call_id = call_id
        self.outgoing = outgoing
        self.invite = invite                 # the latest initial INVITE sent, or received
        self.local_sdp = local_sdp
        self.remote_sdp = b""
        self.local_tag = local_tag
        self.dest = dest
        self.server_tx = server_tx
        self.state = CallState.CALLING
        self.dialog: Dialog | None = None
        self.early: dict[str, Dialog] = {}   # early dialogs by remote tag (for PRACK)
        self.rseq_seen: dict[str, int] = {}
        self.provisional = False             # a 1xx arrived, so CANCEL may be sent (9.1)
        self.hangup_requested = False
        self.cancel_sent = False
        self.give_up_at: float | None = None  # no final answer 64*T1 after CANCEL (9.1)
        self.auth_tries = {401: 0, 407: 0}   # a proxy and the callee may both challenge
        self.retried_422 = False
        self.ack: bytes | None = None        # resent for each 2xx retransmission (13.2.2.4)
        self.ok: Resend | None = None        # our 2xx, resent until the ACK (13.3.1.4)
        self.reliable: Resend | None = None  # our reliable 1xx, resent until PRACK
        self.rseq = random.randrange(1, 2**31 // 2)
        self.holding = False
        self.offer_pending = False           # our re-INVITE or UPDATE awaits its answer
        self.remote_offer_pending = False    # the peer's re-INVITE awaits its ACK
        self.offer_in_ok = False             # our 2xx carries an offer; the ACK has the answer
        self.retry_offer_at: float | None = None   # after 491 Request Pending (14.1)
        self.queued_offer: tuple[str, bool] | None = None
        self.timer: SessionTimer | None = None
        self.min_se = ua.settings.min_se
        self.peer_allow: frozenset[str] = frozenset()
        if not outgoing:
            self.note_peer_allow(invite)

    # ----- outgoing calls ------------------------------------------------------
    @classmethod
    def place(cls, ua: CallHost, target: str, local_sdp: bytes, now: float) -> Call:
        uri = SipUri.parse(target)
        if not uri.is_sip:
            raise LocalError(f"cannot call {target!r}: only sip: and sips: URIs")
        s = ua.settings
        call_id = new_call_id(s.local_host)
        tag = new_tag()
        dest = ua.locate(ua.outbound or uri)
        req = ua.new_request("INVITE", uri, s.aor.with_tag(tag), NameAddr(uri), call_id, 1,
                             dest.transport)
        call = cls(ua, call_id, True, req, local_sdp, tag, dest)
        call._session_headers(req, s.session_expires, None)
        req.headers.add("Contact", ua.contact(dest.transport))
        req.headers.add("Allow", ALLOW)
        req.headers.add("Content-Type", "application/sdp")
        req.body = local_sdp
        ua.start_client(req, dest, now, _InviteClient(call))
        return call

    def _session_headers(self, req: Request, interval: int, refresher: str | None) -> None:
        req.headers.add("Supported", SUPPORTED)
        if interval:
            value = f"{interval};refresher={refresher}" if refresher else str(interval)
            req.headers.add("Session-Expires", value)
            req.headers.add("Min-SE", str(self.min_se))

    def on_invite_response(self, tx: Transaction, resp: Response, now: float) -> None:
        status = resp.status
        if status < 200:
            self.provisional = True
            if self.hangup_requested and not self.cancel_sent:
                self._send_cancel(now)
            if status > 100:
                self._on_provisional(resp, now)
        elif status < 300:
            self.on_invite_2xx(resp, now)
        elif status in (401, 407) and not self.hangup_requested and (
                retry := self.ua.authorized_retry(tx.request, resp, tx.dest,
                                                  self.auth_tries[status])):
            self.auth_tries[status] += 1
            self._resend_invite(retry, now)
        elif status == 422 and not self.retried_422 and not self.hangup_requested:
            self._retry_422(tx.request, resp, now)
        else:
            self.ua.end(self.call_id, CallFailed(self.call_id, status, resp.reason))

    def _resend_invite(self, retry: Request, now: float) -> None:
        self.invite = retry
        self.provisional = False
        self.ua.start_client(retry, self.dest, now, _InviteClient(self))

    def on_invite_timeout(self, tx: Transaction, now: float) -> None:
        """No answer at all: try the next place DNS gave (RFC 3263 4.3), else give up."""
        if self.ua.outbound is not None and not self.provisional and not self.hangup_requested \
                and self.ua.target_failed(tx.dest):
            self.dest = self.ua.locate(self.ua.outbound)
            retry = Request("INVITE", tx.request.uri, tx.request.headers.copy(), tx.request.body)
            retry.headers.set("Via", str(self.ua.new_via(self.dest.transport)))
            retry.headers.set("CSeq", f"{tx.request.cseq[0] + 1} INVITE")
            self._resend_invite(retry, now)
            return
        if tx.unreachable:              # a transport error is a 503 to the TU (8.1.3.1)
            self.ua.end(self.call_id, CallFailed(self.call_id, 503, "Unreachable"))
        else:
            self.ua.end(self.call_id, CallFailed(self.call_id, 408, "Request Timeout"))

    def _in_dialog(self, dialog: Dialog, method: str, cseq: int | None = None,
                   hop: Dest | None = None) -> tuple[Request, Dest]:
        """A request inside ``dialog`` and where it goes (``hop``, else its next hop),
        over that hop's transport."""
        hop = hop or self.ua.locate(dialog.next_hop())
        contact = "" if method == "ACK" else self.ua.contact(hop.transport)
        return dialog.request(method, self.ua.new_via(hop.transport), contact, cseq), hop

    def _retry_422(self, req: Request, resp: Response, now: float) -> None:
        """Session interval too small: ask again with the peer's minimum (RFC 4028 7.4)."""
        min_se = resp.headers.get("Min-SE") or ""
        value = min_se.split(";")[0].strip()
        if not value.isdigit():
            self.ua.end(self.call_id, CallFailed(self.call_id, 422, resp.reason))
            return
        self.retried_422 = True
        self.min_se = max(self.min_se, int(value))
        retry = Request(req.method, req.uri, req.headers.copy(), req.body)
        retry.headers.set("Via", str(self.ua.new_via(self.dest.transport)))
        retry.headers.set("CSeq", f"{req.cseq[0] + 1} INVITE")
        retry.headers.set("Session-Expires", str(self.min_se))
        retry.headers.set("Min-SE", str(self.min_se))
        self._resend_invite(retry, now)

    def _on_provisional(self, resp: Response, now: float) -> None:
        tag = resp.to.tag
        if "100rel" in _tokens(resp, "Require") and tag:
            rseq = (resp.headers.get("RSeq") or "").strip()
            if not rseq.isdigit():
                return                             # unusable reliable 1xx: ignore it
            if self.rseq_seen.get(tag, -1) >= int(rseq):
                return                             # a retransmission (RFC 3262 4)
            self.rseq_seen[tag] = int(rseq)
            early = self.early.get(tag)
            if early is None:
                try:
                    early = Dialog.as_uac(self.invite, resp)
                except RemoteError:
                    return                         # no usable early dialog: drop the 1xx
                self.early[tag] = early
            prack, hop = self._in_dialog(early, "PRACK")
            prack.headers.add("RAck", f"{rseq} {self.invite.cseq[0]} INVITE")
            self.ua.start_client(prack, hop, now, _Quiet())
        if self.state == CallState.CALLING:
            self.state = CallState.EARLY
        if resp.body and resp.content_type == "application/sdp":
            self.remote_sdp = resp.body
        self.ua.emit(CallProgress(self.call_id, resp.status, resp.reason, resp.body
                                  if resp.content_type == "application/sdp" else b""))

    def on_invite_2xx(self, resp: Response, now: float) -> None:
        try:
            dialog = Dialog.as_uac(self.invite, resp)
        except RemoteError as exc:
            self._refuse_2xx(resp, exc, now)
            return
        early = self.early.get(dialog.remote_tag)
        if early is not None:                     # PRACKs used CSeq numbers (RFC 3262 7.2)
            dialog.local_cseq = max(dialog.local_cseq, early.local_cseq)
        if self.dialog is not None and dialog.remote_tag != self.dialog.remote_tag:
            # A second fork answered: acknowledge it and release it at once.
            ack, hop = self._in_dialog(dialog, "ACK", dialog.local_cseq)
            self.ua.send_raw(ack.to_bytes(), hop)
            bye, hop = self._in_dialog(dialog, "BYE")
            self.ua.start_client(bye, hop, now, _Quiet())
            return
        if self.dialog is not None:
            self._ack_again()                      # our ACK was lost: the 2xx came again
            return
        self.dialog = dialog
        ack, hop = self._in_dialog(dialog, "ACK", self.invite.cseq[0])
        self.ack = ack.to_bytes()
        self.ua.send_raw(self.ack, hop)
        self.give_up_at = None
        if self.hangup_requested:
            self.send_bye(now)
            return
        self.state = CallState.CONFIRMED
        if resp.body:
            self.remote_sdp = resp.body
        self._start_session_timer(resp, we_are_uac=True, now=now)
        self.ua.emit(CallAnswered(self.call_id, self.remote_sdp))

    def _refuse_2xx(self, resp: Response, exc: RemoteError, now: float) -> None:
        """A 2xx we cannot build a dialog on (its Contact or Record-Route is broken):
        acknowledge it all the same, where the INVITE went, so the callee stops
        resending it, end it at once with BYE (RFC 3261 13.2.2.4, 15), and let the
        application know the call failed."""
        dialog = Dialog.fallback_uac(self.invite, resp)
        ack, _ = self._in_dialog(dialog, "ACK", self.invite.cseq[0], hop=self.dest)
        self.ua.send_raw(ack.to_bytes(), self.dest)
        if self.dialog is not None and self.dialog.remote_tag == dialog.remote_tag:
            return                                 # the same 2xx again: ACKed again
        bye, _ = self._in_dialog(dialog, "BYE", hop=self.dest)
        self.ua.start_client(bye, self.dest, now, _Quiet())
        if self.dialog is None:                    # not a second fork of an answered call
            self.dialog = dialog
            self.ack = ack.to_bytes()
            self.state = CallState.ENDING
            self.give_up_at = None
            self.ua.end(self.call_id, CallFailed(self.call_id, 502, f"unusable answer: {exc.reason}"))

    def _ack_again(self) -> None:
        if self.ack is not None and self.dialog is not None:
            self.ua.send_raw(self.ack, self.ua.locate(self.dialog.next_hop()))

    def on_stray_2xx(self, resp: Response) -> None:
        """A 2xx whose transaction is gone: a retransmission to ACK again (13.2.2.4)."""
        self._ack_again()

    # ----- incoming calls ------------------------------------------------------
    def ring(self, now: float) -> None:
        if "100rel" in _tokens(self.invite, "Require"):
            self._reliable_provisional(180, "Ringing", now)
        else:
            self._respond(180, "Ringing", now)

    def _reliable_provisional(self, status: int, reason: str, now: float) -> None:
        if self.reliable is not None:
            raise LocalError("the previous reliable provisional response is not PRACKed yet")
        self.rseq += 1
        resp = self._respond(status, reason, now, extra=(("Require", "100rel"),
                                                         ("RSeq", str(self.rseq))))
        t1 = self.ua.settings.timers.t1
        self.reliable = Resend(resp.to_bytes(), self.dest, now + t1, t1, now + 64 * t1, self.rseq)
        self.state = CallState.EARLY

    def answer(self, local_sdp: bytes, now: float) -> None:
        if self.outgoing or self.ok is not None or self.state in (CallState.CONFIRMED, CallState.ENDING):
            raise LocalError(f"call {self.call_id} cannot be answered")
        self.local_sdp = local_sdp
        self.remote_sdp = self.invite.body
        self.dialog = Dialog.as_uas(self.invite, self.local_tag)
        self.reliable = None
        extra = self.session_answer(self.invite, now)
        resp = self._respond(200, "OK", now, body=local_sdp, extra=extra)
        t1 = self.ua.settings.timers.t1
        self.ok = Resend(resp.to_bytes(), self.dest, now + t1, t1, now + 64 * t1,
                         self.invite.cseq[0])
        self.state = CallState.CONFIRMED

    def reject(self, status: int, reason: str, now: float) -> None:
        self.reliable = None
        self._respond(status, reason, now)
        self.ua.end(self.call_id, CallEnded(self.call_id, False, f"rejected {status}"))

    def _respond(self, status: int, reason: str, now: float, body: bytes = b"",
                 extra: tuple[tuple[str, str], ...] = ()) -> Response:
        if self.server_tx is None:
            raise LocalError(f"call {self.call_id} is not an incoming call")
        if 100 < status < 300:
            extra = (("Contact", self.ua.contact(self.dest.transport)), ("Allow", ALLOW),
                     ("Supported", SUPPORTED)) + extra
            if body:
                extra += (("Content-Type", "application/sdp"),)
        return self.ua.reply(self.server_tx, self.invite, status, reason, now, self.local_tag,
                             extra, body)

    def on_cancel(self, now: float) -> None:
        if self.ok is None and self.state != CallState.CONFIRMED:
            self.reliable = None
            self._respond(487, "Request Terminated", now)
            self.ua.end(self.call_id, CallEnded(self.call_id, True, "cancelled"))

    # ----- ending --------------------------------------------------------------
    def _send_cancel(self, now: float) -> None:
        """CANCEL mirrors the INVITE's Request-URI, Via branch and Route (9.1)."""
        cancel = like_invite("CANCEL", self.invite, self.invite.headers.get("To") or "")
        self.cancel_sent = True
        self.ua.start_client(cancel, self.dest, now, _Ignore())

    def hangup(self, now: float) -> None:
        """End the call in whatever state it is: CANCEL, BYE or a 603 to an offer."""
        if self.state == CallState.ENDING or self.hangup_requested:
            return
        self.hangup_requested = True
        if self.outgoing and self.state in (CallState.CALLING, CallState.EARLY):
            if self.provisional:
                self._send_cancel(now)
            # else: CANCEL waits for the first provisional response (RFC 3261 9.1)
            self.give_up_at = now + 64 * self.ua.settings.timers.t1
        elif not self.outgoing and self.state != CallState.CONFIRMED:
            self.reject(603, "Decline", now)
        else:
            self.send_bye(now)

    def send_bye(self, now: float, reason: str = "hangup") -> None:
        assert self.dialog is not None
        self.state = CallState.ENDING
        self.ok = None
        self.timer = None
        bye, hop = self._in_dialog(self.dialog, "BYE")
        self.ua.start_client(bye, hop, now, _ByeClient(self, reason))

    # ----- offers inside the dialog: re-INVITE and UPDATE --------------------
    def hold(self, now: float) -> None:
        self.holding = True
        self.reoffer(now)

    def resume(self, now: float) -> None:
        self.holding = False
        self.reoffer(now)

    def reoffer(self, now: float, method: str = "INVITE", with_sdp: bool = True,
                local_sdp: bytes | None = None) -> None:
        """Send a re-INVITE or UPDATE, with our SDP (new if ``local_sdp``) or without."""
        if self.dialog is None or self.state != CallState.CONFIRMED:
            raise LocalError(f"call {self.call_id} is not established")
        if local_sdp is not None:
            self.local_sdp = local_sdp
        if self.offer_pending or self.remote_offer_pending or self.retry_offer_at is not None:
            self.queued_offer = (method, with_sdp)  # one offer at a time (RFC 3261 14.1)
            return
        self._send_offer(method, with_sdp, now)

    def _send_offer(self, method: str, with_sdp: bool, now: float) -> None:
        """The offer is made when it is sent, so a queued one reflects the latest state."""
        assert self.dialog is not None
        req, hop = self._in_dialog(self.dialog, method)
        timer = self.timer
        self._session_headers(req, timer.interval if timer else 0, "uac" if timer else None)
        if with_sdp:
            try:
                remote = sdp.parse(self.remote_sdp).direction if self.remote_sdp else "sendrecv"
            except sdp.SdpError:
                remote = "sendrecv"                # what the peer sent last was not SDP
            self.local_sdp = sdp.rebuild(self.local_sdp, sdp.hold_direction(remote, self.holding))
            req.headers.add("Content-Type", "application/sdp")
            req.body = self.local_sdp
        self.offer_pending = True
        self.ua.start_client(req, hop, now, _OfferClient(self))

    def on_offer_response(self, tx: Transaction, resp: Response, now: float) -> None:
        if resp.status < 200:
            return
        self.offer_pending = False
        req = tx.request
        if resp.status < 300:
            assert self.dialog is not None
            self._refresh_target(resp)
            if req.method == "INVITE":
                ack, hop = self._in_dialog(self.dialog, "ACK", req.cseq[0])
                unusable = False
                if not req.body and resp.body:     # their offer in the 2xx; our answer in ACK
                    try:
                        ack.body = self._answer_to(resp.body)
                        ack.headers.add("Content-Type", "application/sdp")
                    except sdp.SdpError:
                        unusable = True            # ACK it all the same, then end the call
                self.ack = ack.to_bytes()
                self.ua.send_raw(self.ack, hop)
                if unusable:
                    self.send_bye(now, "unusable offer in the answer to our re-INVITE")
                    return
            if resp.body:
                self.remote_sdp = resp.body
                self.ua.emit(CallUpdated(self.call_id, resp.body))
            self._start_session_timer(resp, we_are_uac=True, now=now)
        elif resp.status in (401, 407) and (
                retry := self.ua.authorized_retry(req, resp, tx.dest, 0)):
            self.offer_pending = True
            self.ua.start_client(retry, tx.dest, now, _OfferClient(self))
            return
        elif resp.status == 491:
            # Glare: the Call-ID owner waits 2.1-4 s, the other side 0-2 s (RFC 3261 14.1).
            low, high = (2.1, 4.0) if self.outgoing else (0.0, 2.0)
            self.retry_offer_at = now + random.uniform(low, high)
            self.queued_offer = self.queued_offer or (req.method, bool(req.body))
            return
        elif resp.status in (408, 481):          # the dialog is gone (12.2.1.2)
            self.send_bye(now, f"{req.method} answered {resp.status} {resp.reason}")
            return
        self._send_queued(now)

    def on_offer_timeout(self, now: float) -> None:
        self.offer_pending = False
        if self.state == CallState.CONFIRMED:
            self.send_bye(now, "no answer to re-INVITE")

    def _send_queued(self, now: float) -> None:
        if self.queued_offer is not None and not self.offer_pending and self.state == CallState.CONFIRMED:
            method, with_sdp = self.queued_offer
            self.queued_offer = None
            self._send_offer(method, with_sdp, now)

    def _answer_to(self, offer: bytes) -> bytes:
        direction = sdp.answer_direction(sdp.parse(offer).direction, self.holding)
        self.local_sdp = sdp.rebuild(self.local_sdp, direction, offer)
        self.remote_sdp = offer
        return self.local_sdp

    # ----- requests inside the dialog ----------------------------------------
    def on_request(self, req: Request, tx: Transaction, now: float) -> None:
        """An in-dialog (or early-dialog) request that its server transaction let through."""
        if req.method == "PRACK" and req.to.tag == self.local_tag:
            self._on_prack(req, tx, now)
            return
        dialog = self.dialog
        if dialog is None and req.method in ("UPDATE", "INFO") and req.to.tag == self.local_tag:
            # The callee may change early media by UPDATE once 100rel set up the
            # early dialog (RFC 3311 5.1); an INFO there is fine too (RFC 6086).
            dialog = self.early.get(req.from_.tag or "")
        if dialog is None or req.to.tag != dialog.local_tag:
            raise RemoteError(481, "Call/Transaction Does Not Exist", req)
        if dialog.remote_cseq is not None and req.cseq[0] <= dialog.remote_cseq:
            raise RemoteError(500, "CSeq Out of Order", req)   # 12.2.2
        dialog.remote_cseq = req.cseq[0]
        if req.method == "BYE":
            self.ua.reply(tx, req, 200, "OK", now)
            self.ua.end(self.call_id, CallEnded(self.call_id, True, "BYE"))
        elif req.method in ("INVITE", "UPDATE"):
            self._on_offer(req, tx, now)
        elif req.method == "INFO":
            self._on_info(req, tx, now)
        elif req.method == "OPTIONS":
            self.ua.on_options(req, tx, now)
        else:
            raise RemoteError(405, "Method Not Allowed", req, (("Allow", ALLOW),))

    def _on_offer(self, req: Request, tx: Transaction, now: float) -> None:
        remote_target(req, req.from_.uri)           # a Contact we cannot use: 400, unchanged
        if req.body:
            sdp.parse(req.body)                     # an offer we cannot read: 488, unchanged
        if req.method == "INVITE" and (self.offer_pending or self.remote_offer_pending):
            raise RemoteError(491, "Request Pending", req)
        if req.body and self.offer_pending:
            raise RemoteError(491, "Request Pending", req)      # UPDATE glare (RFC 3311 5.2)
        extra = self.session_answer(req, now)
        self._refresh_target(req)
        body = b""
        if req.body:
            body = self._answer_to(req.body)
        elif req.method == "INVITE":
            body = self.local_sdp = sdp.rebuild(   # we offer in the 2xx (RFC 3261 14.2)
                self.local_sdp, sdp.hold_direction("sendrecv", self.holding))
            self.offer_in_ok = True
        extra += (("Contact", self.ua.contact(tx.dest.transport)), ("Allow", ALLOW),
                  ("Supported", SUPPORTED))
        if body:
            extra += (("Content-Type", "application/sdp"),)
        resp = self.ua.reply(tx, req, 200, "OK", now, self.local_tag, extra, body)
        if req.method == "INVITE":
            t1 = self.ua.settings.timers.t1
            self.ok = Resend(resp.to_bytes(), tx.dest, now + t1, t1, now + 64 * t1, req.cseq[0])
            self.remote_offer_pending = True
        if req.body:
            self.ua.emit(CallUpdated(self.call_id, req.body))

    def on_ack(self, req: Request, now: float) -> None:
        if self.ok is None or req.cseq[0] != self.ok.cseq:
            return
        self.ok = None                              # the 2xx got through
        self.remote_offer_pending = False
        if self.offer_in_ok:
            self.offer_in_ok = False
            if req.body:
                self.remote_sdp = req.body
                self.ua.emit(CallUpdated(self.call_id, req.body))
        self._send_queued(now)

    def _on_info(self, req: Request, tx: Transaction, now: float) -> None:
        if not req.body:
            self.ua.reply(tx, req, 200, "OK", now)  # an empty INFO is a keepalive
            return
        if req.content_type not in DTMF_INFO_TYPES:
            raise RemoteError(415, "Unsupported Media Type", req,
                              (("Accept", ", ".join(DTMF_INFO_TYPES)),))
        digit = _digit_from_info(req)
        if digit is None:
            raise RemoteError(400, "Bad DTMF Signal", req)
        self.ua.reply(tx, req, 200, "OK", now)
        self.ua.emit(InfoDtmf(self.call_id, digit))

    def _on_prack(self, req: Request, tx: Transaction, now: float) -> None:
        rack = (req.headers.get("RAck") or "").split()
        if (self.reliable is None or len(rack) != 3 or rack[0] != str(self.reliable.cseq)
                or rack[1] != str(self.invite.cseq[0])):
            raise RemoteError(481, "Call/Transaction Does Not Exist", req)   # RFC 3262 3
        self.reliable = None
        self.ua.reply(tx, req, 200, "OK", now)

    def _refresh_target(self, msg: Request | Response) -> None:
        """re-INVITE, UPDATE and their 2xx may move the peer (RFC 3261 12.2.1.2, 12.2.2).
        A request's Contact was checked before (``_on_offer``); a 2xx whose Contact
        cannot be used leaves the target where it was."""
        if self.dialog is None:
            return
        try:
            self.dialog.remote_target = remote_target(msg, self.dialog.remote_target)
        except RemoteError:
            pass

    # ----- session timers (RFC 4028) ------------------------------------------
    def session_answer(self, req: Request, now: float) -> tuple[tuple[str, str], ...]:
        """Our side of the timer for a request we answer 2xx; raises 422 when too short."""
        value = req.headers.get("Session-Expires")
        if value is None:
            self.timer = None                      # no timer asked for, or turned off
            return ()
        head, _, rest = value.partition(";")
        if not head.strip().isdigit():
            raise RemoteError(400, "Bad Session-Expires", req)
        interval = int(head.strip())
        min_se = self.ua.settings.min_se
        if interval < min_se:
            if "timer" in _tokens(req, "Supported"):
                raise RemoteError(422, "Session Interval Too Small", req, (("Min-SE", str(min_se)),))
            interval = min_se                      # it could not retry: raise it (errata 1687)
        refresher = parse_params(rest).get("refresher")
        if refresher not in ("uac", "uas"):
            # We choose; a peer that supports timers refreshes its own requests (9).
            refresher = "uac" if "timer" in _tokens(req, "Supported") else "uas"
        self.timer = self._timer(interval, we_refresh=refresher == "uas", now=now)
        extra: tuple[tuple[str, str], ...] = (("Session-Expires",
                                                f"{interval};refresher={refresher}"),)
        if "timer" in _tokens(req, "Supported"):
            extra += (("Require", "timer"),)      # RFC 4028 9
        return extra

    def _start_session_timer(self, resp: Response, we_are_uac: bool, now: float) -> None:
        value = resp.headers.get("Session-Expires")
        if value is None:
            self.timer = None                      # the peer does not do timers (7.4)
            return
        head, _, rest = value.partition(";")
        if not head.strip().isdigit() or len(head.strip()) > 9:
            return
        # A peer may answer below our Min-SE (RFC 4028 says it must not); keeping the
        # call up matters more, so its interval is honoured, but a "0" or "1" would
        # refresh without pause: never below SESSION_FLOOR seconds.
        interval = max(int(head.strip()), SESSION_FLOOR)
        refresher = parse_params(rest).get("refresher", "uac")
        self.timer = self._timer(interval, (refresher == "uac") == we_are_uac, now)

    @staticmethod
    def _timer(interval: int, we_refresh: bool, now: float) -> SessionTimer:
        # The refresher goes at half the interval; the other side gives up shortly
        # before the end, at interval - min(32, interval / 3) (RFC 4028 10).
        due = now + (interval / 2 if we_refresh else interval - min(32, interval / 3))
        return SessionTimer(interval, we_refresh, due)

    def _session_timer_fired(self, now: float) -> None:
        timer = self.timer
        assert timer is not None
        if timer.we_refresh:
            timer.due = now + timer.interval / 2   # again unless the answer changes it
            # UPDATE without a body is the light refresh; re-INVITE if the peer lacks it (9).
            update = "UPDATE" in self.peer_allow
            self.reoffer(now, "UPDATE" if update else "INVITE", with_sdp=not update)
        else:
            self.timer = None
            self.send_bye(now, "session expired")

    def note_peer_allow(self, msg: Request | Response) -> None:
        values = msg.headers.get_all("Allow")
        if values:
            self.peer_allow = frozenset(v.strip().upper() for v in values)

    # ----- time ----------------------------------------------------------------
    def next_deadline(self) -> float | None:
        # The session timer runs once the call is up (handle_timer fires it only then):
        # an incoming call that asked for one and rings on must not come due meanwhile.
        session = self.timer.due if self.timer and self.state == CallState.CONFIRMED else None
        times = [self.give_up_at, self.retry_offer_at, session]
        for r in (self.ok, self.reliable):
            if r is not None:
                times.append(min(r.next_at, r.give_up_at))
        return min((t for t in times if t is not None), default=None)

    def handle_timer(self, now: float) -> None:
        if self.give_up_at is not None and now >= self.give_up_at:
            self.ua.end(self.call_id, CallFailed(self.call_id, 408, "no answer to CANCEL"))
            return
        if self.reliable is not None and now >= self.reliable.give_up_at:
            self.reliable = None                   # never PRACKed (RFC 3262 3)
            self.reject(504, "Server Time-out", now)
            return
        if self.ok is not None and now >= self.ok.give_up_at:
            self.ok = None                         # never ACKed: end it (13.3.1.4)
            self.send_bye(now, "no ACK")
            return
        for r in (self.ok, self.reliable):
            if r is not None and now >= r.next_at:
                self.ua.send_raw(r.data, r.dest)
                r.interval = min(r.interval * 2, self.ua.settings.timers.t2)
                r.next_at = now + r.interval
        if self.retry_offer_at is not None and now >= self.retry_offer_at:
            self.retry_offer_at = None
            self._send_queued(now)
        if self.timer is not None and now >= self.timer.due and self.state == CallState.CONFIRMED:
            self._session_timer_fired(now)


def _tokens(msg: Request | Response, header: str) -> set[str]:
    return {v.strip().lower() for v in msg.headers.get_all(header)}


# ----- transaction users: what a client transaction reports back to its call ----
class _InviteClient:
    def __init__(self, call: Call) -> None:
        self.call = call

    def on_response(self, tx: Transaction, resp: Response, now: float) -> None:
        call = self.call
        call.note_peer_allow(resp)
        if call.ua.has_call(call.call_id) and call.invite is tx.request:
            call.on_invite_response(tx, resp, now)
        elif 200 <= resp.status < 300:
            call.on_invite_2xx(resp, now)     # answered after we gave up: ACK and BYE

    def on_timeout(self, tx: Transaction, now: float) -> None:
        if self.call.invite is tx.request:
            self.call.on_invite_timeout(tx, now)


class _OfferClient:
    def __init__(self, call: Call) -> None:
        self.call = call

    def on_response(self, tx: Transaction, resp: Response, now: float) -> None:
        self.call.on_offer_response(tx, resp, now)

    def on_timeout(self, tx: Transaction, now: float) -> None:
        self.call.on_offer_timeout(now)


class _ByeClient:
    def __init__(self, call: Call, reason: str) -> None:
        self.call, self.reason = call, reason

    def on_response(self, tx: Transaction, resp: Response, now: float) -> None:
        if resp.status >= 200:
            self.call.ua.end(self.call.call_id, CallEnded(self.call.call_id, False, self.reason))

    def on_timeout(self, tx: Transaction, now: float) -> None:
        self.call.ua.end(self.call.call_id, CallEnded(self.call.call_id, False,
                                              f"{self.reason} (no answer to BYE)"))


class _Quiet:
    """For requests whose outcome changes nothing: PRACK, BYE to a stray fork, CANCEL."""

    def on_response(self, tx: Transaction, resp: Response, now: float) -> None:
        pass

    def on_timeout(self, tx: Transaction, now: float) -> None:
        pass


class _Ignore:
    """The handler of a CANCEL's transaction: its answer changes nothing (the
    INVITE's final response does)."""

    def on_response(self, tx: Transaction, resp: Response, now: float) -> None:
        pass

    def on_timeout(self, tx: Transaction, now: float) -> None:
        pass
