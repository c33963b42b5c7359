"""Inside a call: re-INVITE and UPDATE both ways, hold, session timers, PRACK, INFO, auth."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conftest import VirtualNetwork, one, only
from test_sip_ua import Responder, add_registrar, kinds, registered_ua

from intercom.sip import events as ev
from intercom.sip import sdp
from intercom.sip.address import SipUri
from intercom.sip.dialog import make_response
from intercom.sip.message import Request, Response, parse_message
from intercom.sip.ua import UserAgent

FORMATS = [sdp.PayloadFormat(0, "PCMU", 8000), sdp.PayloadFormat(8, "PCMA", 8000),
           sdp.PayloadFormat(101, "telephone-event", 8000, "0-16")]


def offer(port: int) -> bytes:
    return sdp.build(1000 + port, 1, "127.0.0.1",
                     sdp.MediaDescription("127.0.0.1", port, list(FORMATS), ptime=20))


def connect(net: VirtualNetwork, door_kw: dict[str, Any] | None = None,
            phone_kw: dict[str, Any] | None = None) -> tuple[UserAgent, UserAgent, str, str]:
    door = net.add("door", 5060, **(door_kw or {}))
    phone = net.add("resident", 5070, **(phone_kw or {}))
    call_id = door.invite("sip:resident@127.0.0.1:5070", offer(4000), net.now)
    net.pump()
    (incoming,) = phone.events()
    assert isinstance(incoming, ev.IncomingCall)
    phone.answer(incoming.call_id, offer(6000), net.now)
    net.pump()
    assert kinds(door.events()) == ["CallAnswered"]
    return door, phone, call_id, incoming.call_id


def sent(net: VirtualNetwork, start: bytes, src_port: int | None = None) -> list[Request | Response]:
    return [parse_message(d) for s, _, d in net.sent
            if d.startswith(start) and (src_port is None or s[1] == src_port)]


def requests_sent(net: VirtualNetwork, start: bytes, src_port: int | None = None) -> list[Request]:
    return only(Request, sent(net, start, src_port))


def responses_sent(net: VirtualNetwork, start: bytes = b"SIP/2.0",
                   src_port: int | None = None) -> list[Response]:
    return only(Response, sent(net, start, src_port))


def updated(events: Sequence[object]) -> list[sdp.MediaDescription]:
    return [sdp.parse(e.sdp) for e in events if isinstance(e, ev.CallUpdated)]


def test_hold_and_resume_from_our_side(net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = connect(net)
    door.hold(call_id, net.now)
    net.pump()
    (theirs,) = updated(phone.events())
    assert theirs.direction == "sendonly" and theirs.version == 2
    (answer,) = updated(door.events())
    assert answer.direction == "recvonly" and answer.version == 2
    door.resume(call_id, net.now)
    net.pump()
    assert [m.direction for m in updated(phone.events())] == ["sendrecv"]
    assert [m.direction for m in updated(door.events())] == ["sendrecv"]
    assert door.calls[call_id].state == phone.calls[in_id].state == "confirmed"
    assert len(requests_sent(net, b"ACK")) == 3              # the call and both re-INVITEs


def test_peer_puts_us_on_hold_and_an_unchanged_refresh_keeps_the_version(
        net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = connect(net)
    phone.hold(in_id, net.now)
    net.pump()
    (held,) = updated(door.events())
    assert held.on_hold
    first = sdp.parse(door.calls[call_id].local_sdp)
    assert first.direction == "recvonly"
    phone.reoffer(in_id, net.now)                    # the same offer again
    net.pump()
    assert sdp.parse(door.calls[call_id].local_sdp).version == first.version


def test_reinvite_without_sdp_gets_an_offer_in_the_2xx_and_the_answer_in_the_ack(
        net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = connect(net)
    phone.reoffer(in_id, net.now, with_sdp=False)
    net.pump()
    (reinvite,) = [r for r in requests_sent(net, b"INVITE", 5070)]
    assert reinvite.body == b""
    (ok,) = [r for r in responses_sent(net, b"SIP/2.0 200", 5060) if r.cseq[1] == "INVITE"]
    assert sdp.parse(ok.body).port == 4000           # the door's offer
    acks = requests_sent(net, b"ACK", 5070)
    assert sdp.parse(acks[-1].body).port == 6000     # the phone's answer in the ACK
    assert [m.port for m in updated(door.events())] == [6000]
    assert [m.port for m in updated(phone.events())] == [4000]


def test_update_with_and_without_sdp_in_both_directions(net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = connect(net)
    door.reoffer(call_id, net.now, method="UPDATE")
    net.pump()
    assert [m.port for m in updated(phone.events())] == [4000]
    assert [m.port for m in updated(door.events())] == [6000]
    phone.reoffer(in_id, net.now, method="UPDATE", with_sdp=False)
    net.pump()
    statuses = [r.status for r in responses_sent(net, b"SIP/2.0") if isinstance(r, Response)
                and r.cseq[1] == "UPDATE"]
    assert statuses == [200, 200]
    assert len(requests_sent(net, b"ACK")) == 1               # UPDATE has no ACK
    assert not updated(door.events())                # no body, nothing changed


def test_remote_target_refresh_moves_later_requests(net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = connect(net)
    moved = net.add("resident", 5072)                # the phone now answers on 5072
    moved.calls[in_id] = phone.calls.pop(in_id)
    moved.calls[in_id].ua = moved
    phone.settings = moved.settings                  # its re-INVITE carries the new Contact
    moved.reoffer(in_id, net.now)
    net.pump()
    door.hangup(call_id, net.now)
    net.pump()
    (bye,) = requests_sent(net, b"BYE")
    assert bye.uri == "sip:resident@127.0.0.1:5072"
    assert kinds(door.events())[-1] == "CallEnded"


def test_glare_both_get_491_and_both_offers_land(net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = connect(net)
    door.hold(call_id, net.now)
    phone.hold(in_id, net.now)
    net.pump()
    statuses = [r.status for r in responses_sent(net, b"SIP/2.0 491")]
    assert statuses == [491, 491]
    net.advance(5)                                   # the retries, 0-2 s and 2.1-4 s later
    assert sdp.parse(door.calls[call_id].local_sdp).direction == "inactive"
    assert sdp.parse(phone.calls[in_id].local_sdp).direction == "inactive"


def test_session_timer_refreshed_by_update_and_expired_without_refresh(
        net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = connect(net, door_kw={"session_expires": 120})
    (ok,) = [r for r in responses_sent(net, b"SIP/2.0 200") if r.cseq[1] == "INVITE"]
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"
    assert ok.headers.get("Require") == "timer"
    net.advance(250, step=1.0)
    updates = requests_sent(net, b"UPDATE", 5060)
    assert len(updates) == 4 and not updates[0].body   # every 60 s, without SDP
    assert door.calls and phone.calls
    # The door stops refreshing (its UPDATEs are lost): the phone gives up at 120-32 s.
    net.drop.extend([lambda s, d, data: data.startswith(b"UPDATE")] * 30)
    net.advance(100, step=1.0)
    assert phone.events()[-1] == ev.CallEnded(in_id, False, "session expired")
    assert not door.calls


def test_422_makes_the_caller_ask_for_the_minimum(net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = connect(net, door_kw={"session_expires": 120},
                                          phone_kw={"min_se": 300})
    invites = requests_sent(net, b"INVITE", 5060)
    assert [i.headers.get("Session-Expires") for i in invites] == ["120", "300"]
    assert invites[1].cseq[0] == invites[0].cseq[0] + 1
    assert 422 in [r.status for r in responses_sent(net, b"SIP/2.0 422")]


def test_reliable_provisional_is_pracked_early_media_then_a_different_answer(
        net: VirtualNetwork) -> None:
    early_sdp, final_sdp = offer(7000), offer(7002)

    def pbx(req: Request) -> list[bytes]:
        if req.method == "INVITE":
            ringing = make_response(req, 183, "Session Progress", "pbx", (
                ("Require", "100rel"), ("RSeq", "5"), ("Contact", "<sip:pbx@127.0.0.1:5090>"),
                ("Content-Type", "application/sdp")))
            ringing.body = early_sdp
            return [ringing.to_bytes(), ringing.to_bytes()]     # and a retransmission
        if req.method == "PRACK":
            ok = make_response(req, 200, "OK", "pbx").to_bytes()
            answer = make_response(invite[0], 200, "OK", "pbx", (
                ("Contact", "<sip:pbx@127.0.0.1:5090>"), ("Content-Type", "application/sdp")))
            answer.body = final_sdp
            return [ok, answer.to_bytes()]
        return [make_response(req, 200, "OK", "pbx").to_bytes()] if req.method == "BYE" else []

    invite: list[Request] = []

    def handle(req: Request) -> list[bytes]:
        if req.method == "INVITE":
            invite.append(req)
        return pbx(req)
    responder = Responder(handle)
    net.agents[("127.0.0.1", 5090)] = responder
    door = net.add("door", 5060)
    call_id = door.invite("sip:pbx@127.0.0.1:5090", offer(4000), net.now)
    net.pump()
    assert "100rel" in (invite[0].headers.get_all("Supported"))
    pracks = [r for r in responder.received if r.method == "PRACK"]
    assert len(pracks) == 1 and pracks[0].headers.get("RAck") == "5 1 INVITE"
    progress, answered = door.events()
    assert isinstance(progress, ev.CallProgress) and progress.sdp == early_sdp
    assert isinstance(answered, ev.CallAnswered) and answered.sdp == final_sdp
    door.hangup(call_id, net.now)
    net.pump()
    (bye,) = [r for r in responder.received if r.method == "BYE"]
    assert bye.cseq[0] > pracks[0].cseq[0]


def invite_requiring_100rel(door: UserAgent) -> Request:
    req = door.new_request("INVITE", SipUri.parse("sip:resident@127.0.0.1:5070"),
                           door.settings.aor.with_tag("caller"),
                           door.settings.aor, "rel-call@127.0.0.1", 1)
    req.headers.set("To", "<sip:resident@127.0.0.1:5070>")
    req.headers.add("Contact", door.contact())
    req.headers.add("Require", "100rel")
    req.headers.add("Content-Type", "application/sdp")
    req.body = offer(4000)
    return req


def ring_reliably(net: VirtualNetwork) -> tuple[UserAgent, UserAgent, str]:
    """A caller that requires 100rel; the phone rings. Returns door, phone, Call-ID."""
    door = net.add("door", 5060)
    phone = net.add("resident", 5070)
    phone.receive(invite_requiring_100rel(door).to_bytes(), ("127.0.0.1", 5060), net.now)
    (incoming,) = only(ev.IncomingCall, phone.events())
    phone.ring(incoming.call_id, net.now)
    return door, phone, incoming.call_id


def test_callee_sends_reliable_ringing_until_pracked(net: VirtualNetwork) -> None:
    door, phone, call_id = ring_reliably(net)
    net.pump()
    ringing = responses_sent(net, b"SIP/2.0 180")
    assert ringing and ringing[0].headers.get("Require") == "100rel"
    rseq = ringing[0].headers.get("RSeq")
    net.advance(1.6)                                 # T1, 2*T1: twice more
    assert len([d for _, _, d in net.sent if d.startswith(b"SIP/2.0 180")]) == 3
    call = phone.calls[call_id]
    prack = Request("PRACK", "sip:resident@127.0.0.1:5070")
    for name in ("Via", "From", "Call-ID"):
        prack.headers.add(name, ringing[0].headers.get(name) or "")
    prack.headers.set("Via", str(door.new_via()))
    prack.headers.add("To", ringing[0].headers.get("To") or "")
    prack.headers.add("CSeq", "2 PRACK")
    prack.headers.add("RAck", f"{rseq} 1 INVITE")
    phone.receive(prack.to_bytes(), ("127.0.0.1", 5060), net.now)
    (resp, _), = phone.datagrams_to_send()
    assert resp.startswith(b"SIP/2.0 200")
    net.advance(5)
    assert len([d for _, _, d in net.sent if d.startswith(b"SIP/2.0 180")]) == 3
    assert call.reliable is None


def test_unpracked_reliable_provisional_ends_in_504(net: VirtualNetwork) -> None:
    _, phone, call_id = ring_reliably(net)
    net.advance(40, step=0.5)
    assert phone.events() == [ev.CallEnded(call_id, False, "rejected 504")]


def info(phone: UserAgent, in_id: str, content_type: str, body: bytes, net: VirtualNetwork) -> None:
    call = phone.calls[in_id]
    assert call.dialog is not None
    req = call.dialog.request("INFO", phone.new_via(), phone.contact())
    req.headers.add("Content-Type", content_type)
    req.body = body
    phone.start_client(req, phone.locate(call.dialog.next_hop()), net.now, _Nothing())
    net.pump()


class _Nothing:
    def on_response(self, *a: object) -> None:
        pass

    def on_timeout(self, *a: object) -> None:
        pass


def test_info_dtmf_in_both_formats_and_bad_bodies(net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = connect(net)
    info(phone, in_id, "application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", net)
    info(phone, in_id, "application/dtmf", b"#", net)
    info(phone, in_id, "application/dtmf-relay", b"Signal=11\r\nDuration=100\r\n", net)
    assert door.events() == [ev.InfoDtmf(call_id, "5"), ev.InfoDtmf(call_id, "#"),
                             ev.InfoDtmf(call_id, "#")]
    info(phone, in_id, "text/plain", b"5", net)
    info(phone, in_id, "application/dtmf-relay", b"Signal=hello\r\n", net)
    statuses = [r.status for r in responses_sent(net, b"SIP/2.0", 5060) if r.cseq[1] == "INFO"]
    assert statuses == [200, 200, 200, 415, 400]
    assert door.events() == []


def test_merged_request_gets_482(net: VirtualNetwork) -> None:
    door = net.add("door", 5060)
    phone = net.add("resident", 5070)
    req = invite_requiring_100rel(door)
    req.headers.remove("Require")
    phone.receive(req.to_bytes(), ("127.0.0.1", 5060), net.now)
    forked = Request(req.method, req.uri, req.headers.copy(), req.body)
    forked.headers.set("Via", str(door.new_via()))              # same request, other path
    phone.receive(forked.to_bytes(), ("127.0.0.1", 5060), net.now)
    statuses = [one(Response, parse_message(d)).status for d, _ in phone.datagrams_to_send()]
    assert statuses == [100, 482]


def test_stronger_digest_algorithm_is_preferred_in_the_servers_order(net: VirtualNetwork) -> None:
    def handle(req: Request) -> list[bytes]:
        if req.headers.get("Authorization"):
            return [make_response(req, 200, "OK", "t", (("Expires", "600"),)).to_bytes()]
        return [make_response(req, 401, "Unauthorized", "t", tuple(
            ("WWW-Authenticate", f'Digest realm="demo", nonce="n", qop="auth", algorithm={a}')
            for a in ("SHA-1", "SHA-512-256", "MD5"))).to_bytes()]

    reg = add_registrar(net, handle)
    ua = registered_ua(net)
    ua.register(net.now)
    net.pump()
    auth = reg.received[1].headers.get("Authorization") or ""
    assert "algorithm=SHA-512-256" in auth and "nc=00000001" in auth
    assert [e.state for e in only(ev.RegistrationChanged, ua.events())] == ["registered"]


def test_replayed_nonce_is_answered_stale_and_the_registration_recovers(
        net: VirtualNetwork) -> None:
    reg = add_registrar(net)
    ua = registered_ua(net, expires=120)
    ua.register(net.now)
    net.pump()
    ua._nonces["Authorization"] = (ua._nonces["Authorization"][0], 0)   # forget the count
    net.advance(70, step=1.0)
    # nc=1 again is a replay: 401 stale=true, then the fresh nonce is answered.
    assert [r.headers.get("Authorization") is not None for r in reg.received] == [
        False, True, True, True]
    assert [e.state for e in only(ev.RegistrationChanged, ua.events())] == ["registered", "registered"]


def test_update_in_the_early_dialog_changes_early_media(net: VirtualNetwork) -> None:
    """A PBX moves its announcement to another port before answering (RFC 3311 5.1)."""
    invite: list[Request] = []

    def pbx(req: Request) -> list[bytes]:
        if req.method == "INVITE":
            invite.append(req)
            early = make_response(req, 183, "Session Progress", "pbx", (
                ("Require", "100rel"), ("RSeq", "1"), ("Contact", "<sip:pbx@127.0.0.1:5090>"),
                ("Content-Type", "application/sdp")))
            early.body = offer(7000)
            return [early.to_bytes()]
        return [make_response(req, 200, "OK", "pbx").to_bytes()]
    responder = Responder(pbx)
    net.agents[("127.0.0.1", 5090)] = responder
    door = net.add("door", 5060)
    call_id = door.invite("sip:pbx@127.0.0.1:5090", offer(4000), net.now)
    net.pump()
    assert kinds(door.events()) == ["CallProgress"]
    first = invite[0]
    update = Request("UPDATE", "sip:door@127.0.0.1:5060")
    h = update.headers
    h.add("Via", "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKearlyupdate")
    h.add("From", f"{first.headers.get('To')};tag=pbx")
    h.add("To", first.headers.get("From") or "")
    h.add("Call-ID", call_id)
    h.add("CSeq", "7 UPDATE")
    h.add("Contact", "<sip:pbx@127.0.0.1:5090>")
    h.add("Content-Type", "application/sdp")
    update.body = offer(7010)
    door.receive(update.to_bytes(), ("127.0.0.1", 5090), net.now)
    (wire, _), = door.datagrams_to_send()
    ok = parse_message(wire)
    assert isinstance(ok, Response) and ok.status == 200 and ok.cseq == (7, "UPDATE")
    assert sdp.parse(ok.body).port == 4000                  # our answer
    (changed,) = updated(door.events())
    assert changed.port == 7010
    stray = Request("UPDATE", update.uri, update.headers.copy(), update.body)
    stray.headers.set("From", f"{first.headers.get('To')};tag=someone-else")
    stray.headers.set("Via", "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKstray")
    door.receive(stray.to_bytes(), ("127.0.0.1", 5090), net.now)
    (wire, _), = door.datagrams_to_send()
    assert one(Response, parse_message(wire)).status == 481               # no such early dialog


def test_a_2xx_with_a_broken_contact_is_acked_ended_with_bye_and_never_cancelled(
        net: VirtualNetwork) -> None:
    """200 OK with Contact <sip:bob@[::1> raised out of receive: the 2xx was never
    ACKed, and the station's hang-up later CANCELled an INVITE that had its 2xx."""
    seen: list[Request] = []

    def phone(req: Request) -> list[bytes]:
        seen.append(req)
        if req.method == "INVITE":
            ringing = make_response(req, 180, "Ringing", "ph")
            ok = make_response(req, 200, "OK", "ph", (("Contact", "<sip:bob@[::1>"),
                                                      ("Content-Type", "application/sdp")))
            ok.body = offer(7000)
            return [ringing.to_bytes(), ok.to_bytes()]
        return [make_response(req, 200, "OK", "ph").to_bytes()] if req.method == "BYE" else []

    net.agents[("127.0.0.1", 5090)] = Responder(phone)
    door = net.add("door", 5060)
    call_id = door.invite("sip:resident@127.0.0.1:5090", offer(4000), net.now)
    net.pump()
    events = door.events()
    assert [type(e).__name__ for e in events] == ["CallProgress", "CallFailed"]
    failed = one(ev.CallFailed, events[-1])
    assert failed.status == 502 and "[::1" in failed.reason
    assert [r.method for r in seen] == ["INVITE", "ACK", "BYE"]
    assert seen[1].cseq == (1, "ACK") and seen[2].to.tag == "ph"
    assert call_id not in door.calls
    net.advance(40)                                  # nothing more: no CANCEL, ever
    assert [r.method for r in seen] == ["INVITE", "ACK", "BYE"]


def test_a_reliable_1xx_with_a_broken_record_route_is_dropped_and_the_call_goes_on(
        net: VirtualNetwork) -> None:
    """A reliable 180 with Record-Route <sip:[2001:db8::1;lr> cannot make an early
    dialog: it is dropped (no PRACK), and the 200 that follows is the call."""
    seen: list[Request] = []

    def phone(req: Request) -> list[bytes]:
        seen.append(req)
        if req.method == "INVITE":
            ringing = make_response(req, 180, "Ringing", "ph", (
                ("Require", "100rel"), ("RSeq", "1"), ("Record-Route", "<sip:[2001:db8::1;lr>"),
                ("Contact", "<sip:resident@127.0.0.1:5090>")))
            ok = make_response(req, 200, "OK", "ph", (
                ("Contact", "<sip:resident@127.0.0.1:5090>"), ("Content-Type", "application/sdp")))
            ok.body = offer(7000)
            return [ringing.to_bytes(), ok.to_bytes()]
        return [make_response(req, 200, "OK", "ph").to_bytes()] if req.method == "BYE" else []

    net.agents[("127.0.0.1", 5090)] = Responder(phone)
    door = net.add("door", 5060)
    call_id = door.invite("sip:resident@127.0.0.1:5090", offer(4000), net.now)
    net.pump()
    assert [type(e).__name__ for e in door.events()] == ["CallAnswered"]
    assert [r.method for r in seen] == ["INVITE", "ACK"]
    door.hangup(call_id, net.now)
    net.pump()
    assert [r.method for r in seen] == ["INVITE", "ACK", "BYE"]
    assert [type(e).__name__ for e in door.events()] == ["CallEnded"]


def test_an_invite_with_a_broken_contact_gets_400_and_makes_no_call(
        net: VirtualNetwork) -> None:
    door = net.add("door", 5060)
    invite = (b"INVITE sip:door@127.0.0.1:5060 SIP/2.0\r\n"
              b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbad1\r\nMax-Forwards: 70\r\n"
              b"From: <sip:resident@127.0.0.1>;tag=x\r\nTo: <sip:door@127.0.0.1>\r\n"
              b"Call-ID: bad-contact\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@[::1>\r\n"
              b"Content-Length: 0\r\n\r\n")
    door.receive(invite, ("127.0.0.1", 5070), net.now)
    (answer, _), = door.datagrams_to_send()
    assert answer.startswith(b"SIP/2.0 400") and not door.calls


def test_a_short_session_interval_from_the_peer_is_honoured_and_zero_does_not_spin(
        net: VirtualNetwork) -> None:
    """A phone answering Session-Expires 10 (below our Min-SE of 90) expires the call
    at 10 s unless refreshed, so the refresh goes at 5 s; "0" is floored, not a spin."""
    for answered, first_refresh in (("10;refresher=uac", 5.0), ("0;refresher=uac", 1.0)):
        seen: list[tuple[float, Request]] = []

        def phone(req: Request, answered: str = answered) -> list[bytes]:
            seen.append((net.now, req))
            if req.method == "INVITE":
                ok = make_response(req, 200, "OK", "ph", (
                    ("Contact", "<sip:resident@127.0.0.1:5090>"), ("Require", "timer"),
                    ("Session-Expires", answered), ("Allow", "INVITE, ACK, BYE, UPDATE"),
                    ("Content-Type", "application/sdp")))
                ok.body = offer(7000)
                return [ok.to_bytes()]
            if req.method == "UPDATE":            # a refresh keeps the interval (RFC 4028 9)
                return [make_response(req, 200, "OK", "ph", (
                    ("Require", "timer"), ("Session-Expires", answered))).to_bytes()]
            return [] if req.method == "ACK" else [make_response(req, 200, "OK", "ph").to_bytes()]

        net.agents[("127.0.0.1", 5090)] = Responder(phone)
        door = net.add("door", 5060, session_expires=1800)
        start = net.now
        call_id = door.invite("sip:resident@127.0.0.1:5090", offer(4000), net.now)
        net.pump()
        assert kinds(door.events()) == ["CallAnswered"]
        net.advance(first_refresh * 3 + 0.5, step=0.25)
        updates = [t - start for t, r in seen if r.method == "UPDATE"]
        assert updates and abs(updates[0] - first_refresh) <= 0.5, (answered, updates)
        assert len(updates) == 3, (answered, updates)
        assert call_id in door.calls
        door.hangup(call_id, net.now)
        net.pump()
        del net.agents[("127.0.0.1", 5060)], net.agents[("127.0.0.1", 5090)]
