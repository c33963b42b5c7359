"""Dialog state (RFC 3261 section 12) and building requests and responses."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from intercom.sip.address import NameAddr, SipUri, Via
from intercom.sip.errors import ParseError
from intercom.sip.message import Request, Response

BRANCH_COOKIE = "z9hG4bK"           # RFC 3261 8.1.1.7
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK"
SUPPORTED = "100rel, timer"         # RFC 3262, RFC 4028


def new_branch() -> str:
    return BRANCH_COOKIE + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(12)}@{host}"


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr           # our From (UAC) or To (UAS), without tag
    remote_uri: NameAddr
    remote_target: SipUri
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 1
    remote_cseq: int | None = None

    @classmethod
    def as_uac(cls, invite: Request, response: Response) -> Dialog:
        """From our INVITE and the 2xx (12.1.2): route set is Record-Route reversed.
        Raises RemoteError when the Contact or a Record-Route entry cannot be used."""
        return cls(invite.call_id, invite.from_.tag or "", response.to.tag or "",
                   _untagged(invite.from_), _untagged(response.to),
                   remote_target(response, invite.ruri),
                   list(reversed(route_set(response))), invite.cseq[0])

    @classmethod
    def fallback_uac(cls, invite: Request, response: Response) -> Dialog:
        """Just enough of a dialog to acknowledge a 2xx that cannot make a real one,
        and to end it with BYE (RFC 3261 13.2.2.4, 15): the INVITE's target, no routes."""
        return cls(invite.call_id, invite.from_.tag or "", response.to.tag or "",
                   _untagged(invite.from_), _untagged(response.to), invite.ruri, [],
                   invite.cseq[0])

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str) -> Dialog:
        """From a received INVITE (12.1.1): route set is Record-Route in order."""
        return cls(invite.call_id, local_tag, invite.from_.tag or "", _untagged(invite.to),
                   _untagged(invite.from_), remote_target(invite, invite.from_.uri),
                   route_set(invite), local_cseq=secrets.randbelow(2**16) + 1,
                   remote_cseq=invite.cseq[0])

    def next_hop(self) -> SipUri:
        """First Route entry when there is a route set (loose routing), else the target."""
        if self.route_set:
            return NameAddr.parse(self.route_set[0]).uri
        return self.remote_target

    def request(self, method: str, via: Via, contact: str, cseq: int | None = None) -> Request:
        """An in-dialog request (12.2.1.1); ACK passes the INVITE's CSeq number."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        req = Request(method, str(self.remote_target))
        h = req.headers
        h.add("Via", str(via))
        for route in self.route_set:
            h.add("Route", route)
        h.add("Max-Forwards", "70")
        h.add("From", str(self.local_uri.with_tag(self.local_tag)))
        h.add("To", str(self.remote_uri.with_tag(self.remote_tag)))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        if method != "ACK":
            h.add("Contact", contact)
        return req


def remote_target(msg: Request | Response, default: SipUri) -> SipUri:
    """The Contact's URI (``default`` without one). A Contact that does not parse, or
    is not a SIP URI, is the peer's error (RemoteError), caught before anything
    is built on it."""
    contact = msg.headers.get("Contact")
    if not contact:
        return default
    uri = NameAddr.parse(contact).uri
    if not uri.is_sip:
        raise ParseError(f"Contact {contact[:60]!r} is not a SIP URI", None, 416)
    return uri


def route_set(msg: Request | Response) -> list[str]:
    """The Record-Route entries, each checked to parse (so ``next_hop`` cannot fail)."""
    entries = msg.headers.get_all("Record-Route")
    for entry in entries:
        if not NameAddr.parse(entry).uri.is_sip:
            raise ParseError(f"Record-Route {entry[:60]!r} is not a SIP URI")
    return entries


def _untagged(addr: NameAddr) -> NameAddr:
    return NameAddr(addr.uri, addr.display, {k: v for k, v in addr.params.items() if k != "tag"})


def make_response(req: Request, status: int, reason: str, to_tag: str | None = None,
                  extra: tuple[tuple[str, str], ...] = ()) -> Response:
    """A response copying Via, From, To, Call-ID and CSeq (8.2.6.2)."""
    resp = Response(status, reason)
    h = resp.headers
    for via in req.headers.get_all("Via"):
        h.add("Via", via)
    h.add("From", req.headers.get("From") or "")
    to = req.headers.get("To") or ""
    if to_tag and status > 100 and ";tag=" not in to.replace(" ", "").lower():
        to = f"{to};tag={to_tag}"
    h.add("To", to)
    h.add("Call-ID", req.headers.get("Call-ID") or "")
    h.add("CSeq", req.headers.get("CSeq") or "")
    if 200 <= status < 300 and req.method == "INVITE":
        for rr in req.headers.get_all("Record-Route"):
            h.add("Record-Route", rr)
    for name, value in extra:
        h.add(name, value)
    return resp
