"""Coverage-guided fuzzing (atheris) of the SIP message, URI and SDP parsers and the UA core.

What must hold for any input: the parsers raise only their typed errors
(SipError); a parsed message serialises and parses again to the same
message; and a UserAgent fed the bytes never raises and answers at most once.

    scripts/fuzz [SECONDS]            # longer runs on demand (default 600 s)
    tests/test_fuzz.py                # a bounded run in the suite

Seeds come from the RFC 4475 torture messages when ../shared is there.
"""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from intercom.sip import sdp
    from intercom.sip.address import NameAddr, SipUri, Via
    from intercom.sip.errors import SipError
    from intercom.sip.message import parse_message
    from intercom.sip.settings import UaSettings
    from intercom.sip.ua import UserAgent

UA = UserAgent(UaSettings("door", "example.com", "127.0.0.1", 5060))


def check_message(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipError:
        return
    again = parse_message(msg.to_bytes())        # what we send must parse, and mean the same

    def fields(m: object) -> list[tuple[str, str]]:     # Content-Length is written last
        return [f for f in m.headers.items if f[0] != "Content-Length"]  # type: ignore[attr-defined]

    assert fields(again) == fields(msg), "serialise/parse changed the headers"
    assert again.body == msg.body


def check_ua(data: bytes) -> None:
    UA.receive(data, ("192.0.2.1", 5070), 0.0)
    finals = [d for d, _ in UA.datagrams_to_send() if d.startswith(b"SIP/2.0")]
    assert len(finals) <= 2, "more than a 100 and one final answer to one datagram"
    UA.events()
    UA.calls.clear()                             # keep each input independent


def check_text(kind: int, text: str) -> None:
    parse = (SipUri.parse, NameAddr.parse, Via.parse)[kind]
    try:
        parse(text)
    except SipError:
        pass


def check_sdp(data: bytes) -> None:
    try:
        sdp.parse(data)
    except SipError:
        pass


def one_input(data: bytes) -> None:
    if not data:
        return
    kind, rest = data[0] % 6, data[1:]
    if kind == 0:
        check_message(rest)
    elif kind == 1:
        check_ua(rest)
    elif kind == 2:
        check_sdp(rest)
    else:
        check_text(kind - 3, rest.decode("utf-8", "replace"))


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
