"""The station over TCP and TLS, located by DNS NAPTR/SRV, behind a "NAT", with STUN.

Real peers on loopback: Kamailio (UDP, TCP and TLS listeners, digest auth,
Record-Route), baresip as the resident's phone, a DNS server the test runs
(dnspython, answering NAPTR/SRV/A for example.test), and coturn as the STUN
server. Kamailio logs one "SEEN <method> from <addr> over <proto>" line per
request, which is how the tests see which transport was used.
"""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from conftest import free_port, free_port_pair_gap
from peers import (Baresip, DnsServer, Kamailio, Sipp, Station, make_certificates, need,
                   stop_process, wait_for)

from intercom.sip import stun

pytestmark = pytest.mark.peers
USERS = {"door": "doorpass", "resident": "respass"}


def registered(station: Station) -> bool:
    return bool(station.state()["registration"]["state"] == "registered")


def call_and_hang_up(station: Station, baresip: Baresip) -> None:
    n = len(baresip.events)
    station.press()
    baresip.wait_event("CALL_ESTABLISHED", 15, after=n)
    station.wait_event(10, event="call", state="answered")
    baresip.command("hangup")
    baresip.wait_event("CALL_CLOSED", 10, after=n)
    station.wait_event(10, event="call", state="ended")


def free_pair() -> int:
    """A port p with p and p+1 free for UDP and TCP (Kamailio's TLS goes on p+1)."""
    return free_port_pair_gap(1)


def test_registration_and_call_over_tcp_through_kamailio(tmp_path: Path) -> None:
    port = free_pair()
    kamailio = Kamailio(tmp_path, port, USERS, tcp=True)
    baresip = station = None
    try:
        baresip = Baresip(tmp_path, free_port_pair_gap(2), free_port(),
                          f"<sip:resident@127.0.0.1:{port}>;auth_pass=respass;"
                          "answermode=auto;regint=600", 1000.0)
        baresip.wait_registered(15)
        station = Station(tmp_path, f'registrar = "sip:127.0.0.1:{port};transport=tcp"\n'
                                    'password = "doorpass"', ["sip:resident@127.0.0.1"])
        wait_for(lambda: registered(station), 15, "registration over TCP")
        call_and_hang_up(station, baresip)
        ours = f"127.0.0.1:{station.port}"
        registers = [s for s in kamailio.seen("REGISTER") if "contact <sip:door" in s]
        assert registers and all(" over tcp " in s for s in registers), registers
        assert all(";transport=tcp>" in s for s in registers)
        invites = [s for s in kamailio.seen("INVITE") if "contact <sip:door" in s]
        assert invites and all(" over tcp " in s for s in invites), invites
        # The ACK came back over our TCP connection too: no datagram from our UDP port.
        assert not any(f"from {ours} over udp" in s for m in ("INVITE", "ACK", "REGISTER")
                       for s in kamailio.seen(m))
        assert any(" over tcp " in s for s in kamailio.seen("ACK"))
    finally:
        for peer in (station, baresip):
            if peer is not None:
                peer.stop()
        kamailio.stop()
    assert "Traceback" not in station.log_text()


@pytest.fixture
def certificates(tmp_path: Path) -> tuple[Path, Path, Path]:
    return make_certificates(tmp_path, ["example.test", "127.0.0.1"])


def test_tls_registration_found_by_naptr_and_srv(tmp_path: Path,
                                                 certificates: tuple[Path, Path, Path]) -> None:
    ca, cert, key = certificates
    port = free_pair()
    dead = free_port()                                  # nothing listens: refused at once
    dns = DnsServer({
        ("example.test", "NAPTR"): ['10 10 "s" "SIPS+D2T" "" _sips._tcp.example.test.',
                                    '20 10 "s" "SIP+D2U" "" _sip._udp.example.test.'],
        ("_sips._tcp.example.test", "SRV"): [f"10 0 {dead} down.example.test.",
                                             f"20 0 {port + 1} pbx.example.test."],
        ("_sip._udp.example.test", "SRV"): [f"10 0 {port} pbx.example.test."],
        ("down.example.test", "A"): ["127.0.0.1"],
        ("pbx.example.test", "A"): ["127.0.0.1"],
    })
    kamailio = Kamailio(tmp_path, port, USERS, tls=(cert, key))
    station = None
    try:
        station = Station(tmp_path, 'registrar = "sips:example.test"\npassword = "doorpass"\n'
                                    'domain = "example.test"\n'
                                    f'dns_servers = ["127.0.0.1:{dns.port}"]\n'
                                    f'tls_ca_file = "{ca}"', ["sip:resident@example.test"])
        wait_for(lambda: registered(station), 20, "registration over TLS at the second SRV target")
        registers = [s for s in kamailio.seen("REGISTER") if "contact <sip:door" in s]
        assert registers and all(" over tls " in s for s in registers), registers
        assert ("example.test", "NAPTR") in dns.queries
        assert ("_sips._tcp.example.test", "SRV") in dns.queries
        assert ("_sip._udp.example.test", "SRV") not in dns.queries  # sips: means TLS only
        failed = station.wait_event(5, event="registration", state="failed")
        assert failed["retry_in"] == 0                        # straight on to the next target
    finally:
        if station is not None:
            station.stop()
        kamailio.stop()
        dns.stop()
    assert "Traceback" not in station.log_text()


def test_tls_with_an_untrusted_certificate_is_refused(tmp_path: Path,
                                                      certificates: tuple[Path, Path, Path]
                                                      ) -> None:
    _, cert, key = certificates
    (tmp_path / "other").mkdir()
    other_ca, _, _ = make_certificates(tmp_path / "other", ["elsewhere.test"])
    port = free_pair()
    kamailio = Kamailio(tmp_path, port, USERS, tls=(cert, key))
    station = None
    try:
        station = Station(tmp_path, f'registrar = "sips:127.0.0.1:{port + 1}"\n'
                                    f'password = "doorpass"\ntls_ca_file = "{other_ca}"',
                          ["sip:resident@127.0.0.1"])
        station.wait_event(15, event="registration", state="failed")
        assert not registered(station)
        assert "CERTIFICATE_VERIFY_FAILED" in station.log_text()
        assert not kamailio.seen("REGISTER")                 # nothing was sent in the clear
    finally:
        if station is not None:
            station.stop()
        kamailio.stop()


def test_contact_follows_what_kamailio_sees(tmp_path: Path) -> None:
    """The station thinks it is 127.0.0.5 (a private address behind a NAT); Kamailio
    sees it at 127.0.0.1 and says so in received/rport, so the station registers that."""
    port = free_port()
    kamailio = Kamailio(tmp_path, port, USERS)
    station = None
    try:
        station = Station(tmp_path, f'registrar = "sip:127.0.0.1:{port}"\n'
                                    'password = "doorpass"\npublic_address = "127.0.0.5"',
                          ["sip:resident@127.0.0.1"])
        wait_for(lambda: registered(station), 15, "registration")
        wait_for(lambda: any(f"contact <sip:door@127.0.0.1:{station.port}>" in s
                             for s in kamailio.seen("REGISTER")), 10, "the rewritten contact")
        registers = [s for s in kamailio.seen("REGISTER") if "contact <sip:door" in s]
        # 127.0.0.5 first (challenged, then accepted), then the address Kamailio saw,
        # and no more: the rewrite does not loop.
        assert len([s for s in registers if "127.0.0.5" in s]) == 2, registers
        assert station.log_text().count("the registrar sees us at") == 1
    finally:
        if station is not None:
            station.stop()
        kamailio.stop()


def stun_answers(port: int) -> bool:
    request, tid = stun.binding_request()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(request, ("127.0.0.1", port))
        try:
            return bool(stun.mapped_address(sock.recv(2048), tid) == sock.getsockname())
        except OSError:
            return False


def test_stun_gives_the_address_put_in_the_sdp(tmp_path: Path) -> None:
    binary = need("turnserver")
    stun_port = free_port()
    log = open(tmp_path / "coturn.log", "wb")
    coturn = subprocess.Popen(
        [binary, "--stun-only", "-n", "--no-cli", "--listening-ip", "127.0.0.1",
         "--listening-port", str(stun_port), "--log-file", "stdout", "--simple-log",
         "--pidfile", str(tmp_path / "coturn.pid")], stdout=log, stderr=subprocess.STDOUT)
    sipp = None
    station = None
    try:
        wait_for(lambda: stun_answers(stun_port) or coturn.poll() is not None, 10,
                 "coturn to answer a Binding request")
        assert coturn.poll() is None, (tmp_path / "coturn.log").read_text()
        sip_port = free_port()
        sipp = Sipp(tmp_path, "phone_hold_update_info", sip_port)
        station = Station(tmp_path, f'public_address = "127.0.0.5"\n'
                                    f'stun_server = "127.0.0.1:{stun_port}"',
                          [f"sip:resident@127.0.0.1:{sip_port}"])
        station.press()
        invite = wait_for(lambda: next((m for m in sipp.messages().split("-" * 20)
                                        if "INVITE sip:resident" in m), None), 10,
                          "the INVITE at SIPp")
        # STUN saw the RTP socket at 127.0.0.1 (no NAT here), not the 127.0.0.5 we claimed.
        assert "c=IN IP4 127.0.0.1" in invite
        assert "c=IN IP4 127.0.0.5" not in invite
    finally:
        if station is not None:
            station.stop()
        if sipp is not None:
            sipp.stop()
        stop_process(coturn)
        log.close()
