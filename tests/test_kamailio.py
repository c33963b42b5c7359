"""Registration against Kamailio: SHA-256 digest, and a registrar that goes away and comes back."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from conftest import free_port
from peers import Kamailio, Station, wait_for

from intercom.sip.message import Response, parse_message

pytestmark = pytest.mark.peers


def challenge(port: int) -> str:
    """The WWW-Authenticate Kamailio answers a bare REGISTER with."""
    msg = (f"REGISTER sip:127.0.0.1:{port} SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKprobe\r\n"
           "From: <sip:door@127.0.0.1>;tag=1\r\nTo: <sip:door@127.0.0.1>\r\n"
           "Call-ID: probe\r\nCSeq: 1 REGISTER\r\nMax-Forwards: 5\r\n"
           "Contact: <sip:door@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.bind(("127.0.0.1", 0))
        s.sendto(msg.encode(), ("127.0.0.1", port))
        resp = parse_message(s.recv(4096))
    assert isinstance(resp, Response) and resp.status == 401
    return resp.headers.get("WWW-Authenticate") or ""


def registration(station: Station) -> list[tuple[object, object]]:
    return [(e["state"], e["status"]) for e in station.events() if e["event"] == "registration"]


def test_sha256_digest_registration(tmp_path: Path) -> None:
    port = free_port()
    kamailio = Kamailio(tmp_path, port, {"door": "doorpass"}, algorithm="SHA-256")
    try:
        assert "algorithm=SHA-256" in challenge(port)     # so MD5 would not do
        station = Station(tmp_path, f'registrar = "sip:127.0.0.1:{port}"\npassword = "doorpass"',
                          ["sip:resident@127.0.0.1"])
        try:
            wait_for(lambda: registration(station) == [("registered", 200)], 10,
                     "registration with a SHA-256 challenge")
        finally:
            station.stop()
    finally:
        kamailio.stop()
    assert "Traceback" not in station.log_text()


def test_registrar_goes_away_and_comes_back(tmp_path: Path) -> None:
    port = free_port()
    users = {"door": "doorpass"}
    kamailio = Kamailio(tmp_path, port, users, max_expires=10)
    station = None
    try:
        station = Station(tmp_path, f'registrar = "sip:127.0.0.1:{port}"\npassword = "doorpass"\n'
                                    "t1 = 0.1", ["sip:resident@127.0.0.1"])
        wait_for(lambda: registration(station) == [("registered", 200)], 10, "registered")
        kamailio.stop()            # the refresh at 5 s finds the port closed (ICMP): 503 at once
        wait_for(lambda: ("failed", 503) in registration(station), 10, "the refresh to fail")
        kamailio = Kamailio(tmp_path, port, users, max_expires=10)
        wait_for(lambda: registration(station)[-1] == ("registered", 200), 15,
                 "registered again after the backoff")
        failed = [e for e in station.events() if e["event"] == "registration"
                  and e["state"] == "failed"]
        assert 4.0 <= failed[0]["retry_in"] <= 6.0       # 5 s +-20 %
    finally:
        if station is not None:
            station.stop()
        kamailio.stop()
