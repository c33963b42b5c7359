"""Transports, server location and NAT in the sans-IO core, on a virtual clock.

Stream framing, RFC 3263 ordering and failover, reliable-transport timers,
keepalives, the received/rport Contact rewrite (and that it cannot loop),
a change of our own address, and the STUN codec.
"""
from __future__ import annotations

import random
from collections import Counter

import pytest
from conftest import VirtualNetwork, one, only
from test_sip_ua import SDP, Responder, add_registrar, kinds

from intercom.demo_peer import DemoRegistrar
from intercom.sip import events as ev
from intercom.sip import stun
from intercom.sip.address import NameAddr, SipUri, Via
from intercom.sip.dialog import make_response
from intercom.sip.framing import FramingError, StreamFramer
from intercom.sip.locate import (Dest, Naptr, Srv, TargetList, fallback_plan, naptr_plan,
                                 order_srv, uri_dest)
from intercom.sip.message import Request, parse_message
from intercom.sip.transaction import Command, Input, Kind, TimerValues, Transaction

OPTIONS = (b"OPTIONS sip:door@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKa\r\n"
           b"From: <sip:a@b>;tag=1\r\nTo: <sip:door@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
           b"Max-Forwards: 70\r\nContent-Length: 4\r\n\r\nbody")


# ----- stream framing (RFC 3261 18.3, RFC 5626 4.4.1) ---------------------------
def test_framer_joins_pieces_and_splits_back_to_back_messages() -> None:
    framer = StreamFramer()
    stream = OPTIONS + OPTIONS.replace(b"c1", b"c2")
    got = []
    for i in range(0, len(stream), 7):                    # arrives 7 bytes at a time
        got += framer.feed(stream[i:i + 7]).messages
    assert got == [OPTIONS, OPTIONS.replace(b"c1", b"c2")]
    assert parse_message(got[1]).body == b"body"


def test_framer_tells_pings_from_pongs() -> None:
    framer = StreamFramer()
    frames = framer.feed(b"\r\n\r\n" + OPTIONS + b"\r\n")
    assert (frames.pings, frames.messages, frames.pongs) == (1, [OPTIONS], 1)
    assert framer.feed(b"\r\n\r").pings == 0              # half a ping: wait for the rest
    assert framer.feed(b"\n").pings == 1


@pytest.mark.parametrize("data, why", [
    (OPTIONS.replace(b"Content-Length: 4\r\n", b""), "without Content-Length"),
    (OPTIONS.replace(b"Content-Length: 4", b"Content-Length: -4"), "bad Content-Length"),
    (OPTIONS.replace(b"Content-Length: 4", b"Content-Length: 9999999"), "too long"),
    (b"INVITE sip:x SIP/2.0\r\nX: " + b"a" * 70000, "no end of headers"),
])
def test_framer_refuses_what_cannot_be_framed(data: bytes, why: str) -> None:
    with pytest.raises(FramingError, match=why):
        StreamFramer().feed(data)


@pytest.mark.parametrize("where", ["first", "middle", "compact in the middle"])
def test_content_length_anywhere_among_the_headers(where: str) -> None:
    """Header order is free (RFC 3261 7.3): Content-Length need not come last."""
    head, _, body = OPTIONS.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.startswith(b"Content-Length")]
    length = b"l: 4" if where.startswith("compact") else b"Content-Length: 4"
    lines.insert(1 if where == "first" else 3, length)
    message = b"\r\n".join(lines) + b"\r\n\r\n" + body
    frames = StreamFramer().feed(message + OPTIONS)
    assert frames.messages == [message, OPTIONS]


def test_content_length_over_a_real_tcp_connection_in_any_place() -> None:
    """The asyncio TCP transport answers an OPTIONS whose Content-Length comes first,
    and the connection stays open for the next message."""
    import asyncio

    from conftest import free_port

    from intercom.sip.transport import SipEndpoint
    from intercom.sip.settings import UaSettings
    from intercom.sip.ua import UserAgent

    async def main() -> list[bytes]:
        port = free_port()
        ua = UserAgent(UaSettings("door", "127.0.0.1", "127.0.0.1", port))
        endpoint = await SipEndpoint.open(ua, ("127.0.0.1", port), lambda e: None)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            first = OPTIONS.replace(b"Max-Forwards: 70\r\nContent-Length: 4\r\n",
                                    b"Max-Forwards: 70\r\n").replace(
                b"OPTIONS sip:door@127.0.0.1 SIP/2.0\r\n",
                b"OPTIONS sip:door@127.0.0.1 SIP/2.0\r\nContent-Length: 4\r\n")
            answers = []
            for message in (first, OPTIONS.replace(b"z9hG4bKa", b"z9hG4bKb")):
                writer.write(message)
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                answers.append(head)
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await asyncio.wait_for(reader.readexactly(length), 5)
            writer.close()
            return answers
        finally:
            endpoint.close()
    answers = asyncio.run(main())
    assert [a.split(b"\r\n")[0] for a in answers] == [b"SIP/2.0 200 OK"] * 2


def test_compact_content_length_frames_too() -> None:
    compact = OPTIONS.replace(b"Content-Length: 4", b"l: 4")
    assert StreamFramer().feed(compact).messages == [compact]


# ----- RFC 3263 ordering --------------------------------------------------------
def test_naptr_order_and_preference_and_the_services_we_speak() -> None:
    records = [Naptr(20, 10, "SIP+D2U", "_sip._udp.example.com."),
               Naptr(10, 20, "SIP+D2T", "_sip._tcp.example.com."),
               Naptr(10, 10, "SIPS+D2T", "_sips._tcp.example.com."),
               Naptr(5, 10, "SIP+D2S", "_sip._sctp.example.com.")]      # SCTP: not ours
    assert naptr_plan(records, None) == [("tls", "_sips._tcp.example.com"),
                                         ("tcp", "_sip._tcp.example.com"),
                                         ("udp", "_sip._udp.example.com")]
    assert naptr_plan(records, "udp") == [("udp", "_sip._udp.example.com")]
    assert fallback_plan("example.com", "tls") == [("tls", "_sips._tcp.example.com")]


def test_srv_priority_first_then_weighted_draws() -> None:
    records = [Srv(20, 0, 5060, "backup.example.com"), Srv(10, 90, 5060, "big.example.com"),
               Srv(10, 10, 5060, "small.example.com"), Srv(10, 0, 5060, ".")]
    rng = random.Random(7)
    firsts = Counter(order_srv(records, rng)[0].target for _ in range(2000))
    assert set(firsts) == {"big.example.com", "small.example.com"}
    assert 0.85 < firsts["big.example.com"] / 2000 < 0.95       # weight 90 of 100
    assert all(order_srv(records, rng)[-1].target == "backup.example.com" for _ in range(50))
    assert all(len(order_srv(records, rng)) == 3 for _ in range(50))   # "." means no service


def test_uri_dest_transport_and_default_ports() -> None:
    assert uri_dest(SipUri.parse("sips:pbx.example.com")) == \
        Dest("pbx.example.com", 5061, "tls", "pbx.example.com")
    assert uri_dest(SipUri.parse("sip:10.0.0.1;transport=TCP")) == Dest("10.0.0.1", 5060, "tcp")
    assert uri_dest(SipUri.parse("sip:[2001:db8::1]:5070"), "tcp") == \
        Dest("2001:db8::1", 5070, "tcp")


def test_target_list_moves_on_and_says_when_a_round_is_over() -> None:
    a, b = Dest("10.0.0.1", 5060), Dest("10.0.0.2", 5060)
    targets = TargetList([a, b])
    assert targets.failed(b) is False and targets.current == a     # not the one in use
    assert targets.failed(a) is True and targets.current == b
    assert targets.failed(b) is False and targets.current == a     # all tried: back off


def test_registration_falls_over_to_the_next_srv_target(net: VirtualNetwork) -> None:
    add_registrar(net)                                   # only 127.0.0.1:5090 answers
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:example.com"), password="pw",
                 timers=TimerValues(t1=0.1))
    ua.set_targets("example.com", [Dest("127.0.0.1", 5091, "udp", "example.com"),
                                   Dest("127.0.0.1", 5090, "udp", "example.com")])
    ua.register(net.now)
    net.advance(6.3)
    assert kinds(ua.events()) == ["RegistrationUnanswered"]   # still waiting (timer F)
    net.advance(0.5)
    changes = only(ev.RegistrationChanged, ua.events())
    assert [(c.state, c.status) for c in changes] == [("failed", 408), ("registered", 200)]
    assert changes[0].retry_in == 0.0                    # the next target at once
    assert ua.locate(SipUri.parse("sip:example.com")).port == 5090


def test_invite_falls_over_to_the_next_proxy_target(net: VirtualNetwork) -> None:
    phone = net.add("resident", 5070)
    door = net.add("door", 5060, proxy=SipUri.parse("sip:proxy.example.com"),
                   timers=TimerValues(t1=0.1))
    door.set_targets("proxy.example.com", [Dest("127.0.0.1", 5099), Dest("127.0.0.1", 5070)])
    door.invite("sip:resident@127.0.0.1:5070", SDP, net.now)
    net.advance(6.5)                                     # timer B on the dead first target
    assert kinds(phone.events()) == ["IncomingCall"]
    invites = [parse_message(d) for _, dst, d in net.sent if d.startswith(b"INVITE")]
    assert invites[-1].call_id == invites[0].call_id
    assert invites[-1].cseq[0] == invites[0].cseq[0] + 1


def test_credentials_follow_dns_targets_but_no_one_else(net: VirtualNetwork) -> None:
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:example.com"), password="pw")
    ua.set_targets("example.com", [Dest("192.0.2.7", 5060, "tcp", "example.com")])
    assert ua.is_server(Dest("192.0.2.7", 5060, "tcp"))
    assert not ua.is_server(Dest("192.0.2.8", 5060))
    assert not ua.is_server(Dest("example.com", 5060))   # the name no longer is where we go


# ----- reliable transports --------------------------------------------------------
def test_no_retransmissions_over_tcp_but_timer_b_still_ends_it() -> None:
    invite = parse_message(OPTIONS.replace(b"OPTIONS", b"INVITE"))
    assert isinstance(invite, Request)
    tx = Transaction(Kind.INVITE_CLIENT, invite, Dest("127.0.0.1", 5060, "tcp"), 0.0,
                     TimerValues(), reliable=True)
    assert set(tx.deadlines) == {"B"}
    step = tx.fire(Input.TIMER_B, 32.0)
    assert step.timed_out and not step.send
    server = Transaction(Kind.NON_INVITE_SERVER, invite, Dest("127.0.0.1", 5070, "tcp"), 0.0,
                         TimerValues(), reliable=True)
    server.send(Command.SEND_FINAL, b"SIP/2.0 200 OK\r\n\r\n", 1.0)
    assert server.deadlines == {"J": 1.0}                 # timer J is zero on TCP


def test_tcp_registration_uses_tcp_via_contact_and_no_retransmission(net: VirtualNetwork) -> None:
    reg = add_registrar(net)
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5090;transport=tcp"),
                 password="pw")
    ua.register(net.now)
    net.pump()
    first = reg.received[0]
    via = Via.parse(first.headers.get_all("Via")[0])
    assert via.transport == "TCP" and "alias" in via.params
    assert first.headers.get("Contact") == "<sip:door@127.0.0.1:5060;transport=tcp>"
    assert [c.state for c in only(ev.RegistrationChanged, ua.events())] == ["registered"]


def test_a_transport_error_fails_the_request_at_once(net: VirtualNetwork) -> None:
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5095;transport=tcp"),
                 password="pw")
    ua.register(net.now)
    net.pump()
    ua.transport_error(Dest("127.0.0.1", 5095, "tcp"), net.now)
    # a transport error is a 503 to the transaction's user (RFC 3261 8.1.3.1)
    assert [(c.state, c.status) for c in only(ev.RegistrationChanged, ua.events())] == [("failed", 503)]


def test_a_lost_connection_to_the_registrar_registers_again_now(net: VirtualNetwork) -> None:
    reg = add_registrar(net)
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5090;transport=tcp"),
                 password="pw")
    ua.register(net.now)
    net.pump()
    count = len(reg.received)
    ua.transport_error(Dest("127.0.0.1", 5090, "tcp"), net.now)
    net.advance(0.1)
    assert len(reg.received) == count + 1 and reg.received[-1].method == "REGISTER"


# ----- keepalives (RFC 5626 3.5.1) -------------------------------------------------
def test_crlf_keepalives_while_registered(net: VirtualNetwork) -> None:
    add_registrar(net)
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5090"), password="pw",
                 keepalive_interval=20.0)
    ua.register(net.now)
    net.pump()
    net.advance(61, step=1.0)
    pings = [t for t, (src, dst, d) in enumerate(net.sent) if d == b"\r\n\r\n"]
    assert len(pings) == 3 and all(net.sent[i][1] == ("127.0.0.1", 5090) for i in pings)


def test_options_keepalive_notices_a_dead_registrar(net: VirtualNetwork) -> None:
    registrar = DemoRegistrar("demo", {"door": "pw"})
    alive = [True]

    def handle(req: Request) -> list[bytes]:
        if not alive[0]:
            return []
        if req.method == "OPTIONS":
            return [make_response(req, 200, "OK", "t").to_bytes()]
        return [registrar.handle(req)]
    add_registrar(net, handle)
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5090"), password="pw",
                 keepalive_interval=20.0, keepalive_method="options",
                 timers=TimerValues(t1=0.1))
    ua.register(net.now)
    net.pump()
    net.advance(25, step=0.5)
    assert [c.state for c in only(ev.RegistrationChanged, ua.events())] == ["registered"]          # OPTIONS answered
    alive[0] = False
    net.advance(30, step=0.5)                                         # next OPTIONS: no answer
    changes = ua.events()
    first = one(ev.RegistrationChanged, changes[0])
    assert (first.state, first.reason) == ("failed", "Keepalive Timeout")


# ----- received/rport Contact rewrite (RFC 3581) ------------------------------------
def nat_registrar(net: VirtualNetwork, seen_at: list[tuple[str, int]]) -> Responder:
    """A registrar that sees us at seen_at[0] (behind a NAT), and records Contacts."""
    registrar = DemoRegistrar("demo", {"door": "pw"})

    def handle(req: Request) -> list[bytes]:
        wire = registrar.handle(req)
        resp = parse_message(wire)
        via = Via.parse(resp.headers.get_all("Via")[0])
        host, port = seen_at[0]
        via.params["received"] = host
        via.params["rport"] = str(port)
        resp.headers.set("Via", str(via))
        return [resp.to_bytes()]
    return add_registrar(net, handle)


def contacts(req: Request) -> list[str]:
    return req.headers.get_all("Contact")


def test_contact_follows_received_and_rport_once(net: VirtualNetwork) -> None:
    reg = nat_registrar(net, [("198.51.100.7", 40000)])
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5090"), password="pw",
                 register_expires=600)
    ua.register(net.now)
    net.pump()
    assert contacts(reg.received[-1]) == ["<sip:door@198.51.100.7:40000>",
                                          "<sip:door@127.0.0.1:5060>;expires=0"]
    events = ua.events()
    assert ev.PublicAddress(("198.51.100.7", 40000)) in events
    assert [e.state for e in events if isinstance(e, ev.RegistrationChanged)] == ["registered"]
    assert ua.contact() == "<sip:door@198.51.100.7:40000>"
    sent = len(reg.received)
    net.advance(600, step=5.0)                           # refreshes keep the same Contact
    assert all(contacts(r) == ["<sip:door@198.51.100.7:40000>"] for r in reg.received[sent:])


def test_contact_rewrite_cannot_loop_when_the_address_flaps(net: VirtualNetwork) -> None:
    seen_at = [("198.51.100.7", 40000)]
    reg = nat_registrar(net, seen_at)
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5090"), password="pw",
                 register_expires=600)

    def flip(*_: object) -> None:
        seen_at[0] = ("198.51.100.8", 40002) if seen_at[0][0].endswith("7") else \
            ("198.51.100.7", 40000)
    ua.register(net.now)
    net.pump()
    for _ in range(20):                                  # every answer shows another address
        flip()
        net.advance(300, step=10.0)
    rewrites = sum(1 for r in reg.received if len(contacts(r)) == 2)
    assert 1 <= rewrites <= 12                           # at most one per 600 s registration


def test_no_rewrite_when_turned_off(net: VirtualNetwork) -> None:
    reg = nat_registrar(net, [("198.51.100.7", 40000)])
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5090"), password="pw",
                 contact_rewrite=False)
    ua.register(net.now)
    net.pump()
    assert all(contacts(r) == ["<sip:door@127.0.0.1:5060>"] for r in reg.received)


# ----- our own address changes (handover) -------------------------------------------
def test_new_local_address_registers_again_and_asks_for_new_offers(net: VirtualNetwork) -> None:
    reg = add_registrar(net)
    door = net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5090"), password="pw",
                   proxy=SipUri.parse("sip:127.0.0.1:5070"))        # calls go straight there
    phone = net.add("resident", 5070)
    door.register(net.now)
    call_id = door.invite("sip:resident@127.0.0.1:5070", SDP, net.now)
    net.pump()
    (incoming,) = [e for e in phone.events() if isinstance(e, ev.IncomingCall)]
    phone.answer(incoming.call_id, SDP, net.now)
    net.pump()
    door.events()
    # Moving to 127.0.0.2 (the virtual network routes by port, so it still arrives).
    door.set_local_address("127.0.0.2", net.now)
    net.pump()
    assert contacts(reg.received[-1]) == ["<sip:door@127.0.0.2:5060>",
                                          "<sip:door@127.0.0.1:5060>;expires=0"]
    assert ev.LocalAddressChanged("127.0.0.2", (call_id,)) in door.events()
    new_sdp = SDP.replace(b"127.0.0.1", b"127.0.0.2").replace(b"- 1 1", b"- 1 2")
    door.reoffer(call_id, net.now, sdp=new_sdp)
    net.pump()
    reinvite = [parse_message(d) for _, _, d in net.sent if d.startswith(b"INVITE")][-1]
    assert NameAddr.parse(reinvite.headers.get("Contact") or "").uri.host == "127.0.0.2"
    assert b"c=IN IP4 127.0.0.2" in reinvite.body
    assert kinds(phone.events()) == ["CallUpdated"]


# ----- STUN (RFC 5389; the response is RFC 5769's sample, without its integrity) ----
def test_stun_xor_mapped_address_from_rfc_5769() -> None:
    tid = bytes.fromhex("b7e7a701bc34d686fa87dfae")
    response = bytes.fromhex("0101000c2112a442") + tid + bytes.fromhex("0020000800 01a147e112a643"
                                                                        .replace(" ", ""))
    assert stun.is_stun(response)
    assert stun.mapped_address(response, tid) == ("192.0.2.1", 32853)
    with pytest.raises(stun.StunError, match="another transaction"):
        stun.mapped_address(response, bytes(12))
    request, rid = stun.binding_request()
    assert stun.is_stun(request) and len(request) == 20 and request[8:] == rid
    assert not stun.is_stun(b"\x80\x00" + bytes(18))     # an RTP packet


# ----- RFC 3263 against a DNS server (dnspython on both sides) ----------------------
def test_locate_with_naptr_without_naptr_and_without_srv() -> None:
    import asyncio

    from peers import DnsServer

    from intercom.sip.resolver import locate, make_resolver
    dns = DnsServer({
        ("a.test", "NAPTR"): ['10 10 "s" "SIP+D2T" "" _sip._tcp.a.test.'],
        ("_sip._tcp.a.test", "SRV"): ["10 0 5070 pbx.a.test."],
        ("pbx.a.test", "A"): ["192.0.2.10"],
        ("pbx.a.test", "AAAA"): ["2001:db8::10"],
        ("_sip._udp.b.test", "SRV"): ["10 0 5080 pbx.b.test."],    # no NAPTR for b.test
        ("pbx.b.test", "A"): ["192.0.2.20"],
        ("c.test", "A"): ["192.0.2.30"],                           # neither NAPTR nor SRV
    })
    try:
        resolver = make_resolver([f"127.0.0.1:{dns.port}"])

        async def run(uri: str, transport: str | None = None) -> list[Dest]:
            return await locate(SipUri.parse(uri), resolver, transport=transport)
        assert asyncio.run(run("sip:a.test")) == [Dest("192.0.2.10", 5070, "tcp", "a.test"),
                                                  Dest("2001:db8::10", 5070, "tcp", "a.test")]
        assert asyncio.run(run("sip:a.test", "udp")) == []          # NAPTR offers TCP only
        assert asyncio.run(run("sip:b.test")) == [Dest("192.0.2.20", 5080, "udp", "b.test")]
        assert asyncio.run(run("sip:c.test")) == []                 # A record: the adapter's job
        assert asyncio.run(run("sip:a.test:5999")) == []            # a port given: no SRV (4.2)
    finally:
        dns.stop()


LOCATE_PROBE = """
import asyncio, sys
from intercom.app.network import locate_servers, user_agent
from intercom.config import validate
cfg = validate({"sip": {"registrar": sys.argv[1], "public_address": "127.0.0.1",
                        "dns_servers": ["127.0.0.1:9"]},        # nothing there: bounded
                "call": {"targets": [sys.argv[2]]}})
try:             # the queries themselves go nowhere: the question is what got loaded
    asyncio.run(asyncio.wait_for(locate_servers(user_agent(cfg), cfg, list(cfg.call.targets)),
                                 1.0))
except TimeoutError:
    pass
print("dns" in sys.modules)
"""


@pytest.mark.parametrize("registrar, target, loaded", [
    ("sip:192.0.2.1", "sip:resident@192.0.2.2:5062", False),
    ("sip:pbx.invalid:5060", "sip:resident@[2001:db8::2]", False),
    ("sip:pbx.invalid", "sip:resident@192.0.2.2", True),      # a name without a port: SRV
])
def test_dns_is_loaded_only_for_a_name_that_needs_srv(registrar: str, target: str,
                                                      loaded: bool) -> None:
    """dnspython (2.4 MB) stays out of a station whose servers are addresses."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", LOCATE_PROBE, registrar, target],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == str(loaded)


def test_a_refused_registrar_is_retried_with_backoff_not_at_once(net: VirtualNetwork) -> None:
    """Over UDP, a registrar host with nothing on the port answers each REGISTER
    with ICMP port unreachable: each is a failure with its backoff (5, 10, 20 s...),
    not a new REGISTER at once (which once made a storm of thousands a second)."""
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5095"), password="pw")
    ua.register(net.now)
    refused = 0
    for _ in range(600):                                  # 60 s
        net.advance(0.1)
        sent = sum(1 for _, dst, data in net.sent if dst[1] == 5095
                   and data.startswith(b"REGISTER"))
        while refused < sent:                             # ICMP for each one sent
            refused += 1
            ua.transport_error(Dest("127.0.0.1", 5095, "udp"), net.now)
    failed = only(ev.RegistrationChanged, ua.events())
    assert 3 <= refused <= 5 and len(failed) == refused
    assert [f.status for f in failed] == [503] * refused
    assert all(later.retry_in > earlier.retry_in for earlier, later in zip(failed, failed[1:]))


def test_the_backoff_stays_at_its_ceiling_however_long_the_registrar_is_gone(
        net: VirtualNetwork) -> None:
    ua = net.add("door", 5060, registrar=SipUri.parse("sip:127.0.0.1:5095"), password="pw")
    ua.register(net.now)
    ua.registration.failures = 5000                       # weeks of a registrar away
    ua.transport_error(Dest("127.0.0.1", 5095, "udp"), net.now)
    (failed,) = only(ev.RegistrationChanged, ua.events())
    assert 240 <= failed.retry_in <= 360
