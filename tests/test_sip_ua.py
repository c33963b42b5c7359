"""The sans-IO user agent on a virtual clock and network (tests/conftest.py)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from conftest import VirtualNetwork, one, only

from intercom.demo_peer import DemoRegistrar
from intercom.sip import events as ev
from intercom.sip.events import RegState
from intercom.sip.address import SipUri
from intercom.sip.dialog import make_response
from intercom.sip.locate import Dest
from intercom.sip.message import Request, Response, parse_message
from intercom.sip.ua import UserAgent

SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


class Responder:
    """A scripted peer: ``handler(request)`` returns responses (bytes) to send back."""

    def __init__(self, handler: Callable[[Request], list[bytes]]) -> None:
        self.handler = handler
        self.received: list[Request] = []
        self._out: list[tuple[bytes, Dest]] = []

    def receive(self, data: bytes, addr: tuple[str, int], now: float,
                transport: str = "udp") -> None:
        if not data.strip():
            return                                  # a keepalive
        msg = parse_message(data)
        if isinstance(msg, Request):
            self.received.append(msg)
            self._out += [(r, Dest(addr[0], addr[1], transport)) for r in self.handler(msg)]

    def datagrams_to_send(self) -> list[tuple[bytes, Dest]]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


def kinds(events: Sequence[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def setup_call(net: VirtualNetwork, **caller_kw: Any) -> tuple[UserAgent, UserAgent, str, str]:
    door = net.add("door", 5060, **caller_kw)
    phone = net.add("resident", 5070)
    call_id = door.invite("sip:resident@127.0.0.1:5070", SDP, net.now)
    net.pump()
    incoming = phone.events()
    assert kinds(incoming) == ["IncomingCall"]
    return door, phone, call_id, one(ev.IncomingCall, incoming[0]).call_id


def test_call_ring_answer_and_bye_from_caller(net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = setup_call(net)
    phone.ring(in_id, net.now)
    net.pump()
    phone.answer(in_id, SDP, net.now)
    net.pump()
    assert kinds(door.events()) == ["CallProgress", "CallAnswered"]
    door.hangup(call_id, net.now)
    net.pump()
    assert door.events() == [ev.CallEnded(call_id, False, "hangup")]
    assert phone.events() == [ev.CallEnded(in_id, True, "BYE")]
    assert not door.calls and not phone.calls


def test_bye_from_callee(net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = setup_call(net)
    phone.answer(in_id, SDP, net.now)
    net.pump()
    door.events()
    phone.hangup(in_id, net.now)
    net.pump()
    assert door.events() == [ev.CallEnded(call_id, True, "BYE")]
    assert phone.events() == [ev.CallEnded(in_id, False, "hangup")]


def test_hangup_while_ringing_sends_cancel_and_acks_487(net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = setup_call(net)
    phone.ring(in_id, net.now)
    net.pump()
    door.hangup(call_id, net.now)
    net.pump()
    methods = [parse_message(d) for _, _, d in net.sent]
    requests = [m.method for m in methods if isinstance(m, Request)]
    assert requests == ["INVITE", "CANCEL", "ACK"]
    statuses = [m.status for m in methods if isinstance(m, Response)]
    assert 487 in statuses and 200 in statuses
    assert kinds(door.events())[-1] == "CallFailed"
    assert phone.events() == [ev.CallEnded(in_id, True, "cancelled")]


def test_cancel_waits_for_a_provisional_response(net: VirtualNetwork) -> None:
    door = net.add("door", 5060)
    phone = net.add("resident", 5070)
    net.drop.append(lambda src, dst, data: data.startswith(b"INVITE"))   # lose the first INVITE
    call_id = door.invite("sip:resident@127.0.0.1:5070", SDP, net.now)
    net.pump()
    door.hangup(call_id, net.now)
    net.pump()
    assert not any(d.startswith(b"CANCEL") for _, _, d in net.sent)  # nothing to cancel yet
    net.advance(0.6)                                  # timer A: INVITE again, 100 Trying back
    assert any(d.startswith(b"CANCEL") for _, _, d in net.sent)
    net.advance(1)
    assert kinds(door.events()) == ["CallFailed"]
    assert kinds(phone.events()) == ["IncomingCall", "CallEnded"]


def test_lost_ack_makes_the_callee_retransmit_its_2xx(net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = setup_call(net)
    net.drop.append(lambda src, dst, data: data.startswith(b"ACK"))
    phone.answer(in_id, SDP, net.now)
    net.pump()

    def oks() -> list[bytes]:
        return [d for s, _, d in net.sent if s[1] == 5070 and d.startswith(b"SIP/2.0 200")]
    assert len(oks()) == 1
    net.advance(0.6)                                  # T1: the 200 again, and a new ACK
    assert len(oks()) == 2
    acks = [d for _, _, d in net.sent if d.startswith(b"ACK")]
    assert len(acks) == 2 and acks[0] == acks[1]
    net.advance(5)
    assert len(oks()) == 2                            # the ACK stopped the retransmissions
    assert kinds(door.events()) == ["CallAnswered"]


def test_callee_ends_a_call_whose_2xx_is_never_acked(net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = setup_call(net)
    net.drop.extend([lambda s, d, data: data.startswith(b"ACK")] * 20)
    phone.answer(in_id, SDP, net.now)
    net.advance(33)
    assert phone.events()[-1] == ev.CallEnded(in_id, False, "no ACK")


def test_ack_and_bye_follow_the_record_route(net: VirtualNetwork) -> None:
    answers: list[bytes] = []

    def proxy_and_phone(req: Request) -> list[bytes]:
        if req.method == "INVITE":
            ok = make_response(req, 200, "OK", "totag", (
                ("Record-Route", "<sip:127.0.0.1:5080;lr>"),
                ("Record-Route", "<sip:127.0.0.1:5090;lr>"),
                ("Contact", "<sip:resident@127.0.0.1:5070>"),
                ("Content-Type", "application/sdp")))
            ok.body = SDP
            answers.append(ok.to_bytes())
            return [ok.to_bytes()]
        return [make_response(req, 200, "OK").to_bytes()] if req.method == "BYE" else []

    route_hop = Responder(proxy_and_phone)
    net.agents[("127.0.0.1", 5090)] = route_hop       # the first route entry for the UAC
    door = net.add("door", 5060, proxy=SipUri.parse("sip:127.0.0.1:5090"))
    call_id = door.invite("sip:resident@example.com", SDP, net.now)
    net.pump()
    assert kinds(door.events()) == ["CallAnswered"]
    door.hangup(call_id, net.now)
    net.pump()
    ack, bye = [r for r in route_hop.received if r.method in ("ACK", "BYE")]
    for req in (ack, bye):
        assert req.uri == "sip:resident@127.0.0.1:5070"            # the remote target
        assert req.headers.get_all("Route") == ["<sip:127.0.0.1:5090;lr>",
                                                "<sip:127.0.0.1:5080;lr>"]
    assert kinds(door.events()) == ["CallEnded"]


def challenge(status: int, realm: str = "example.com") -> Callable[[Request], list[bytes]]:
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"

    def handle(req: Request) -> list[bytes]:
        if req.method == "ACK":
            return []
        if req.headers.get("Authorization") or req.headers.get("Proxy-Authorization"):
            return [make_response(req, 180, "Ringing", "t").to_bytes()]
        return [make_response(req, status, "Auth", "t", ((header, f'Digest realm="{realm}", '
                              'nonce="abc", qop="auth"'),)).to_bytes()]
    return handle


def test_invite_answers_407_with_credentials_to_the_configured_proxy(net: VirtualNetwork) -> None:
    proxy = Responder(challenge(407))
    net.agents[("127.0.0.1", 5090)] = proxy
    door = net.add("door", 5060, proxy=SipUri.parse("sip:127.0.0.1:5090"), password="pw")
    door.invite("sip:resident@example.com", SDP, net.now)
    net.pump()
    first, ack, second = proxy.received
    assert (first.method, ack.method, second.method) == ("INVITE", "ACK", "INVITE")
    assert second.call_id == first.call_id and second.from_.tag == first.from_.tag
    assert second.cseq == (2, "INVITE")
    assert second.vias[0].branch != first.vias[0].branch
    auth = second.headers.get("Proxy-Authorization") or ""
    assert 'username="door"' in auth and 'realm="example.com"' in auth and "nc=00000001" in auth
    assert kinds(door.events()) == ["CallProgress"]


def test_credentials_never_go_to_a_peer_that_is_not_the_configured_server(
        net: VirtualNetwork) -> None:
    stranger = Responder(challenge(401))
    net.agents[("127.0.0.1", 5070)] = stranger
    door = net.add("door", 5060, proxy=None, password="pw")
    call_id = door.invite("sip:resident@127.0.0.1:5070", SDP, net.now)
    net.pump()
    assert [r.method for r in stranger.received] == ["INVITE", "ACK"]
    assert door.events() == [ev.CallFailed(call_id, 401, "Auth")]


def test_credentials_only_for_the_configured_realm(net: VirtualNetwork) -> None:
    proxy = Responder(challenge(407, realm="evil.example"))
    net.agents[("127.0.0.1", 5090)] = proxy
    door = net.add("door", 5060, proxy=SipUri.parse("sip:127.0.0.1:5090"), password="pw",
                   realm="example.com")
    door.invite("sip:resident@example.com", SDP, net.now)
    net.pump()
    assert [r.method for r in proxy.received] == ["INVITE", "ACK"]


def add_registrar(net: VirtualNetwork, handler: Callable[[Request], list[bytes]] | None = None
                  ) -> Responder:
    registrar = DemoRegistrar("demo", {"door": "pw"})
    responder = Responder(handler or (lambda req: [registrar.handle(req)]))
    net.agents[("127.0.0.1", 5090)] = responder
    return responder


def registered_ua(net: VirtualNetwork, expires: int = 600) -> UserAgent:
    return net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5090"), password="pw",
                   register_expires=expires)


def test_register_with_digest_then_refresh_before_expiry(net: VirtualNetwork) -> None:
    reg = add_registrar(net)
    ua = registered_ua(net)
    ua.register(net.now)
    net.pump()
    assert [r.status for r in only(ev.RegistrationChanged, ua.events())] == [200]
    assert len(reg.received) == 2 and reg.received[1].headers.get("Authorization")
    assert reg.received[0].call_id == reg.received[1].call_id
    net.advance(539, step=1.0)
    assert len(reg.received) == 2
    net.advance(2, step=0.5)                          # a minute before the 600 s expire
    # The refresh answers the known nonce again with the next count: no new 401.
    assert len(reg.received) == 3
    assert reg.received[2].cseq[0] > reg.received[1].cseq[0]
    assert "nc=00000002" in (reg.received[2].headers.get("Authorization") or "")
    assert [r.state for r in only(ev.RegistrationChanged, ua.events())] == ["registered"]


def test_register_423_uses_min_expires(net: VirtualNetwork) -> None:
    def handler(req: Request) -> list[bytes]:
        if req.headers.get("Expires") == "60":
            return [make_response(req, 423, "Interval Too Brief", "t",
                                  (("Min-Expires", "120"),)).to_bytes()]
        return [make_response(req, 200, "OK", "t").to_bytes()]
    reg = add_registrar(net, handler)
    ua = registered_ua(net, expires=60)
    ua.register(net.now)
    net.pump()
    assert [r.headers.get("Expires") for r in reg.received] == ["60", "120"]
    assert ua.events()[-1] == ev.RegistrationChanged(RegState.REGISTERED, 200, "OK", 120, 0.0,
                                                           "sip:127.0.0.1:5090")


def test_wrong_password_fails_without_looping(net: VirtualNetwork) -> None:
    reg = add_registrar(net, lambda req: [make_response(req, 401, "Unauthorized", "t", (
        ("WWW-Authenticate", 'Digest realm="demo", nonce="n1", qop="auth"'),)).to_bytes()])
    ua = registered_ua(net)
    ua.register(net.now)
    net.pump()
    # The registrar keeps challenging: one authenticated retry, then give up.
    assert len([r for r in reg.received if r.method == "REGISTER"]) == 2
    event = one(ev.RegistrationChanged, ua.events()[-1])
    assert event.state == "failed" and event.status == 401


def test_unreachable_registrar_times_out_and_retries_with_backoff(net: VirtualNetwork) -> None:
    ua = registered_ua(net)                           # nobody at 5090
    ua.register(net.now)
    net.advance(4.5, step=0.25)
    # Said once, seconds in, while the retransmissions go on (not 32 s later).
    assert ua.events() == [ev.RegistrationUnanswered("sip:127.0.0.1:5090", 4.0)]
    net.advance(28.5, step=0.25)
    failed = only(ev.RegistrationChanged, ua.events())
    assert len(failed) == 1 and failed[0].status == 408
    assert 4.0 <= failed[0].retry_in <= 6.0
    sent_before = len([1 for _, dst, _ in net.sent if dst[1] == 5090])
    net.advance(failed[0].retry_in + 0.5)
    assert len([1 for _, dst, _ in net.sent if dst[1] == 5090]) > sent_before


def test_options_bye_for_unknown_dialog_and_unknown_methods(net: VirtualNetwork) -> None:
    ua = net.add("door", 5060)
    replies: list[int] = []
    peer = Responder(lambda req: [])
    net.agents[("127.0.0.1", 5099)] = peer

    def ask(method: str, extra: str = "") -> Response:
        data = (f"{method} sip:door@127.0.0.1:5060 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{method}{len(replies)}\r\n"
                f"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:door@127.0.0.1>{extra}\r\n"
                f"Call-ID: q{len(replies)}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n\r\n")
        ua.receive(data.encode(), ("127.0.0.1", 5099), net.now)
        (out, _), = ua.datagrams_to_send()
        resp = parse_message(out)
        assert isinstance(resp, Response)
        replies.append(resp.status)
        return resp

    ok = ask("OPTIONS")
    assert ok.status == 200 and "INVITE" in (ok.headers.get("Allow") or "")
    assert ask("BYE", ";tag=zz").status == 481
    assert ask("SUBSCRIBE").status == 405
    assert ask("FROBNICATE").status == 501


def test_malformed_request_gets_400_and_the_ua_carries_on(net: VirtualNetwork) -> None:
    door, phone, call_id, in_id = setup_call(net)
    phone.receive(b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKq\r\n"
                  b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: bad\r\nCSeq: x INVITE\r\n\r\n",
                  ("127.0.0.1", 5060), net.now)
    (data, _), = phone.datagrams_to_send()
    assert data.startswith(b"SIP/2.0 400")
    assert kinds(phone.events()) == ["MessageRejected"]
    phone.answer(in_id, SDP, net.now)
    net.pump()
    assert kinds(door.events()) == ["CallAnswered"]


def test_503_retry_after_is_honoured(net: VirtualNetwork) -> None:
    registrar = DemoRegistrar("demo", {"door": "pw"})
    busy = [True]

    def handle(req: Request) -> list[bytes]:
        if busy[0]:
            busy[0] = False
            return [make_response(req, 503, "Service Unavailable", "t",
                                  (("Retry-After", "7 (maintenance)"),)).to_bytes()]
        return [registrar.handle(req)]

    reg = add_registrar(net, handle)
    ua = registered_ua(net)
    ua.register(net.now)
    net.pump()
    assert ua.events() == [ev.RegistrationChanged(RegState.FAILED, 503, "Service Unavailable",
                                                  retry_in=7.0, registrar="sip:127.0.0.1:5090")]
    net.advance(6.9, step=0.1)
    assert len(reg.received) == 1
    net.advance(0.2, step=0.1)
    assert [e.state for e in only(ev.RegistrationChanged, ua.events())] == ["registered"]


def test_failover_to_the_backup_registrar_and_calls_follow(net: VirtualNetwork) -> None:
    registrar = DemoRegistrar("demo", {"door": "pw"})
    backup = Responder(lambda req: [registrar.handle(req)] if req.method == "REGISTER" else [])
    net.agents[("127.0.0.1", 5091)] = backup          # the primary (5090) is not there at all
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5090"), password="pw",
                 backup_registrar=SipUri.parse("sip:127.0.0.1:5091"))
    ua.register(net.now)
    net.advance(33, step=0.5)                         # timer F on the primary, then the backup
    states = [e.state for e in ua.events() if isinstance(e, ev.RegistrationChanged)]
    assert states[:2] == ["failed", "registered"]
    ua.invite("sip:resident@example.com", SDP, net.now)
    net.pump()
    assert backup.received[-1].method == "INVITE"
