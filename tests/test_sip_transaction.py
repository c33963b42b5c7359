"""RFC 3261 section 17 transactions on a virtual clock, and digest auth."""
from __future__ import annotations

import pytest

from intercom.sip import digest
from intercom.sip.errors import LocalError, RemoteError
from intercom.sip.locate import Dest
from intercom.sip.message import Request, Response
from intercom.sip.transaction import (TABLE, Command, Input, Kind, State, TimerValues,
                                      Transaction, Verb)

T = TimerValues(t1=0.5, t2=4.0, t4=5.0)


def request(method: str = "INVITE") -> Request:
    req = Request(method, "sip:bob@example.com")
    for name, value in [("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc"),
                        ("From", "<sip:door@example.com>;tag=1"), ("To", "<sip:bob@example.com>"),
                        ("Call-ID", "c1"), ("CSeq", f"1 {method}"), ("Max-Forwards", "70")]:
        req.headers.add(name, value)
    return req


def response(status: int, method: str = "INVITE") -> Response:
    resp = Response(status, "X")
    req = request(method)
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        resp.headers.add(name, req.headers.get(name) or "")
    resp.headers.set("To", "<sip:bob@example.com>;tag=9")
    return resp


def run_timers(tx: Transaction, until: float, step: float = 0.01) -> list[tuple[float, str, int]]:
    """Advance the clock; record (time, timer, datagrams sent) for each firing."""
    log = []
    now = 0.0
    while now < until and not tx.terminated:
        now = round(now + step, 4)
        for timer in tx.due_timers(now):
            out = tx.fire(timer, now)
            log.append((now, timer.value, len(out.send) + (100 if out.timed_out else 0)))
    return log


def test_invite_client_retransmits_with_doubling_then_times_out_at_64_t1() -> None:
    tx = Transaction(Kind.INVITE_CLIENT, request(), Dest("h", 5060), 0.0, T)
    log = run_timers(tx, 40)
    retransmits = [t for t, name, _ in log if name == "A"]
    assert retransmits == pytest.approx([0.5, 1.5, 3.5, 7.5, 15.5, 31.5], abs=0.011)
    assert log[-1][1] == "B" and log[-1][0] == pytest.approx(32.0, abs=0.011)
    assert tx.terminated and log[-1][2] >= 100            # timed out


def test_invite_client_stops_retransmitting_on_provisional() -> None:
    tx = Transaction(Kind.INVITE_CLIENT, request(), Dest("h", 5060), 0.0, T)
    step = tx.fire(Input.R1XX, 0.2, response=response(180))
    assert step.deliver is not None
    assert tx.state is State.PROCEEDING and tx.next_deadline() is None


def test_invite_client_acks_non_2xx_and_absorbs_retransmissions() -> None:
    tx = Transaction(Kind.INVITE_CLIENT, request(), Dest("h", 5060), 0.0, T)
    step = tx.fire(Input.FINAL, 0.1, response=response(486))
    assert step.deliver is not None and len(step.send) == 1
    ack = step.send[0].decode()
    assert ack.startswith("ACK sip:bob@example.com SIP/2.0")
    assert "branch=z9hG4bKabc" in ack and "CSeq: 1 ACK" in ack and "tag=9" in ack
    again = tx.fire(Input.FINAL, 0.3, response=response(486))
    assert again.deliver is None and again.send == step.send     # ACK resent, TU not told
    assert run_timers(tx, 40)[-1][1] == "D" and tx.terminated


def test_non_invite_client_caps_retransmissions_at_t2() -> None:
    tx = Transaction(Kind.NON_INVITE_CLIENT, request("REGISTER"), Dest("h", 5060), 0.0, T)
    log = run_timers(tx, 40)
    times = [t for t, name, _ in log if name == "E"]
    gaps = [round(b - a, 2) for a, b in zip([0.0] + times, times, strict=False)]
    assert gaps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert log[-1][1] == "F" and log[-1][0] == pytest.approx(32.0, abs=0.011)


def test_non_invite_client_waits_timer_k_after_final() -> None:
    tx = Transaction(Kind.NON_INVITE_CLIENT, request("BYE"), Dest("h", 5060), 0.0, T)
    assert tx.fire(Input.R2XX, 0.1, response=response(200, "BYE")).deliver is not None
    assert tx.state is State.COMPLETED
    assert tx.fire(Input.R2XX, 0.2, response=response(200, "BYE")).deliver is None
    assert tx.next_deadline() == pytest.approx(5.1)


def test_invite_server_retransmits_error_until_ack() -> None:
    tx = Transaction(Kind.INVITE_SERVER, request(), Dest("h", 5060), 0.0, T)
    assert tx.fire(Input.REQUEST, 0.1).send == []                    # nothing sent yet
    assert tx.send(Command.SEND_1XX, b"180", 0.1).send == [b"180"]
    assert tx.fire(Input.REQUEST, 0.2).send == [b"180"]             # retransmitted INVITE
    assert tx.send(Command.SEND_FINAL, b"486", 0.3).send == [b"486"]
    log = run_timers(tx, 2.0)
    assert [name for _, name, _ in log][:2] == ["G", "G"]
    tx.fire(Input.ACK, 2.0)
    assert tx.state is State.CONFIRMED
    assert set(tx.deadlines) == {"I"}


def test_invite_server_gives_up_without_ack_at_timer_h() -> None:
    tx = Transaction(Kind.INVITE_SERVER, request(), Dest("h", 5060), 0.0, T)
    tx.send(Command.SEND_FINAL, b"486", 0.0)
    log = run_timers(tx, 40)
    assert log[-1][1] == "H" and log[-1][0] == pytest.approx(32.0, abs=0.011)


def test_non_invite_server_answers_retransmissions_from_completed() -> None:
    tx = Transaction(Kind.NON_INVITE_SERVER, request("OPTIONS"), Dest("h", 5060), 0.0, T)
    tx.send(Command.SEND_2XX, b"200", 0.0)
    assert tx.fire(Input.REQUEST, 1.0).send == [b"200"]
    assert run_timers(tx, 40)[-1][1] == "J"


def test_every_timer_armed_in_a_state_has_a_transition_or_is_disarmed() -> None:
    # A timer left armed with no table entry would fire into nothing; each armed
    # timer in the table must have an entry in the state it is armed into.
    for (kind, _state, _event), (next_state, actions) in TABLE.items():
        for verb, timer in actions:
            if verb is Verb.ARM:
                assert (kind, next_state, Input.timer(timer)) in TABLE, (kind, next_state, timer)


def test_a_response_the_state_does_not_allow_is_a_local_error_and_changes_nothing() -> None:
    """Peer inputs that do not fit are absorbed; our own second final response is a bug."""
    tx = Transaction(Kind.INVITE_SERVER, request(), Dest("h", 5060), 0.0, T)
    tx.send(Command.SEND_FINAL, b"486", 0.0)
    with pytest.raises(LocalError, match="cannot send_2xx: the invite server transaction "
                                         "is completed"):
        tx.send(Command.SEND_2XX, b"200", 0.1)
    assert tx.state is State.COMPLETED and tx.fire(Input.REQUEST, 0.2).send == [b"486"]
    assert tx.fire(Input.R2XX, 0.3).send == []                     # absorbed
    client = Transaction(Kind.NON_INVITE_CLIENT, request("OPTIONS"), Dest("h", 5060), 0.0, T)
    with pytest.raises(LocalError):
        client.send(Command.SEND_1XX, b"100", 0.0)


def test_rfc2617_digest_example() -> None:
    ch = digest.Challenge.parse('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                                'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                                'opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    value = digest.authorization(ch, "Mufasa", "Circle Of Life", "GET", "/dir/index.html",
                                 "0a4f113b", 1)
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert "nc=00000001" in value and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in value


def test_digest_without_qop_and_unsupported_algorithm() -> None:
    ch = digest.Challenge.parse('Digest realm="r", nonce="n"')
    assert not ch.qop_auth
    assert "qop" not in digest.authorization(ch, "u", "p", "REGISTER", "sip:r", "c", 1)
    odd = digest.Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-999')
    with pytest.raises(RemoteError, match="SHA-999"):
        digest.authorization(odd, "u", "p", "REGISTER", "sip:r", "c", 1)
