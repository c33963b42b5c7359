"""RTCP: packets (Cython), reception statistics, round-trip time, the E-model summary."""
from __future__ import annotations

import pytest

from intercom.cext import rtcp
from intercom.media.rtcp import ReceptionStats, RtcpSession, e_model_mos, is_rtcp


def test_compound_report_round_trip() -> None:
    block = (0xCAFE, 25, -2, 0x1_0005, 80, 0x12345678, 0x10000)
    packet = (rtcp.build_sr(0xBEEF, 3900000000, 2**31, 160000, 50, 8000, [block])
              + rtcp.build_sdes_cname(0xBEEF, "intercom-x") + rtcp.build_bye(0xBEEF))
    sr, sdes, bye = rtcp.parse(packet)
    assert sr == ("SR", 0xBEEF, 3900000000, 2**31, 160000, 50, 8000, [block])
    assert sdes == ("SDES", 0xBEEF) and bye == ("BYE", [0xBEEF])
    assert len(packet) % 4 == 0 and is_rtcp(packet) and not is_rtcp(b"\x80\x00" + bytes(10))


@pytest.mark.parametrize("data, why", [
    (b"\x81\xc9\x00", "too short"),
    (b"\x41\xc9\x00\x01" + bytes(4), "version 1"),
    (b"\x80\xc9\x00\x09" + bytes(8), "past the datagram"),
    (rtcp.build_sdes_cname(1, "x") + rtcp.build_rr(1, []), "starts with type 202"),
    (b"\x81\xc9\x00\x01" + bytes(4), "shorter than its report blocks"),
])
def test_bad_rtcp_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(rtcp.RtcpError, match=why):
        rtcp.parse(data)


def test_loss_wrap_duplicates_reordering_and_a_new_source() -> None:
    stats = ReceptionStats(8000)
    seqs = [65530, 65531, 65533, 65532, 65532, 65535, 0, 1, 4]   # wraps; 65534, 2, 3 lost
    for i, seq in enumerate(seqs):
        stats.update(7, seq, i * 160, i * 0.02)
    assert stats.expected == 11 and stats.received == 9          # one duplicate counted
    assert stats.lost == 2                                       # (a duplicate hides one)
    block = stats.report_block(0, 0)
    assert block[0] == 7 and block[3] == (1 << 16) + 4
    stats.update(8, 100, 0, 1.0)                                 # the sender restarted
    assert (stats.ssrc, stats.expected, stats.received) == (8, 1, 1)


def test_fraction_lost_is_per_report_interval() -> None:
    stats = ReceptionStats(8000)
    for seq in range(0, 100):
        if seq % 10 != 5:                                        # 10 % lost
            stats.update(1, seq, seq * 160, seq * 0.02)
    assert stats.report_block(0, 0)[1] == (10 << 8) // 100       # 10 % in 1/256: 25
    for seq in range(100, 200):
        stats.update(1, seq, seq * 160, seq * 0.02)
    assert stats.report_block(0, 0)[1] == 0                      # no loss since the last one


def test_jitter_follows_rfc_3550() -> None:
    steady, shaky = ReceptionStats(8000), ReceptionStats(8000)
    for i in range(500):
        steady.update(1, i, i * 160, 10 + i * 0.02)
        shaky.update(1, i, i * 160, 10 + i * 0.02 + (0.01 if i % 2 else 0.0))
    assert steady.jitter < 0.01
    assert shaky.jitter == pytest.approx(80, rel=0.05)           # 10 ms at 8 kHz


def test_round_trip_time_from_sr_and_the_block_about_us() -> None:
    door, phone = RtcpSession(0xD, "door", 8000), RtcpSession(0xF, "phone", 8000)
    t = 1_800_000_000.0
    for i in range(50):                                          # both send audio
        door.on_rtp_sent(i * 160, 160, t + i * 0.02)
        phone.on_rtp_received(0xD, i, i * 160, t + i * 0.02 + 0.04)
        phone.on_rtp_sent(i * 160, 160, t + i * 0.02)
        door.on_rtp_received(0xF, i, i * 160, t + i * 0.02 + 0.04)
    sr = door.report(t + 1.0)                                    # 40 ms on the way
    phone.on_rtcp(sr, t + 1.04)
    reply = phone.report(t + 1.54)                               # held 0.5 s (DLSR)
    door.on_rtcp(reply, t + 1.58)                                # 40 ms back
    assert door.rtt_ms == pytest.approx(80, abs=0.1)
    summary = door.summary("PCMU", concealed_frames=0, playout_ms=40, played_frames=50)
    assert summary.loss_percent == 0 and summary.rtt_ms == pytest.approx(80, abs=0.1)
    assert summary.mos > 4.3
    # Every packet came, but most could not be played (the resident went silent
    # after the door code): the MOS says what the listener heard, not the network.
    silent = door.summary("PCMU", concealed_frames=907, playout_ms=40, played_frames=190)
    assert silent.loss_percent == 0 and silent.concealed_frames == 907
    assert silent.mos < 1.5


def test_a_peer_next_to_us_that_rounds_its_delay_up_gives_a_round_trip_of_zero() -> None:
    """On a LAN or loopback the round trip is shorter than the peer's DLSR rounding:
    A - LSR - DLSR comes out a few 1/65536 s below zero. That is a round trip of
    about nothing, not a missing one; far below zero is a broken clock and ignored."""
    door = RtcpSession(0xD, "door", 8000)
    t = 1_800_000_000.0
    door.on_rtp_sent(0, 160, t)
    sent = rtcp.parse(door.report(t))[0]
    lsr = ((sent[2] & 0xFFFF) << 16) | (sent[3] >> 16)
    held = 0.5
    dlsr_rounded_up = int(held * 65536) + 3                    # 3 units (46 us) too long

    def reply(dlsr: int) -> bytes:
        return rtcp.build_rr(0xF, [(0xD, 0, 0, 0, 0, lsr, dlsr)])
    door.on_rtcp(reply(dlsr_rounded_up), t + held)
    assert door.rtt_ms == 0.0
    broken = RtcpSession(0xD, "door", 8000)
    broken.on_rtcp(reply(int(5.0 * 65536)), t + held)          # 4.5 s below zero
    assert broken.rtt_ms is None


def test_e_model() -> None:
    assert e_model_mos("PCMU", 0, 0) == pytest.approx(4.41, abs=0.02)      # R = 93.2
    assert e_model_mos("PCMU", 2, 100) < 3.7 < e_model_mos("opus", 2, 100)  # PLC helps
    assert e_model_mos("PCMU", 0, 400) < e_model_mos("PCMU", 0, 100)       # delay hurts
    assert e_model_mos("PCMU", 50, 800) == 1.0


def test_garbage_rtcp_is_counted_not_fatal() -> None:
    session = RtcpSession(1, "x", 8000)
    session.on_rtcp(b"\x80\xc9\x00\x09garbage", 0.0)
    assert session.invalid == 1 and session.rtt_ms is None


def test_rtcp_mux_is_offered_and_mirrored() -> None:
    from intercom.media.codecs import offer_formats
    from intercom.sip import sdp
    ours = sdp.MediaDescription("192.0.2.1", 4000, offer_formats(["PCMU"]), rtcp_mux=True)
    offer = sdp.parse(sdp.build(1, 1, "192.0.2.1", ours))
    assert offer.rtcp_mux
    answer = sdp.answer_for(offer, offer_formats(["PCMU"]), "192.0.2.2", 5000, 20)
    assert answer.rtcp_mux and sdp.negotiate(ours, answer, we_offered=True).rtcp_mux
    plain = sdp.answer_for(sdp.parse(sdp.build(1, 1, "192.0.2.1", sdp.MediaDescription(
        "192.0.2.1", 4000, offer_formats(["PCMU"])))), offer_formats(["PCMU"]),
        "192.0.2.2", 5000, 20)
    assert not plain.rtcp_mux and not sdp.negotiate(ours, plain, we_offered=True).rtcp_mux
    kept = sdp.rebuild(sdp.build(1, 1, "192.0.2.1", ours), "sendonly")
    assert b"a=rtcp-mux" in kept and b"a=sendonly" in kept


def test_muxed_reports_give_the_rtt_and_hold_sends_keepalives(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    import asyncio
    import socket

    from intercom.media import rtp as rtp_mod
    from intercom.media.rtp import RtpSession
    monkeypatch.setattr(rtp_mod, "KEEPALIVE_SECONDS", 0.1)

    async def main() -> tuple[float | None, int, int]:
        a = await RtpSession.open("127.0.0.1", 30000, 30998, lambda *x: None)
        b = await RtpSession.open("127.0.0.1", 30000, 30998, lambda *x: None)
        a.set_remote("127.0.0.1", b.local_port)
        b.set_remote("127.0.0.1", a.local_port)
        a.rtcp_mux = b.rtcp_mux = True
        a.start_rtcp(8000, "a", interval=0.2)
        b.start_rtcp(8000, "b", interval=0.2)
        for i in range(40):
            a.send(0, bytes(160), i * 160)
            b.send(0, bytes(160), i * 160)
            await asyncio.sleep(0.02)
        assert a.rtcp is not None and b.rtcp is not None
        rtt, reports = a.rtcp.rtt_ms, b.rtcp.reports_received
        a.close()
        b.close()
        # On hold nothing is sent but the NAT mapping is kept: empty datagrams.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(2)
            c = await RtpSession.open("127.0.0.1", 30000, 30998, lambda *x: None)
            c.set_remote("127.0.0.1", peer.getsockname()[1])
            c.start_rtcp(8000, "c", interval=0.05)
            c.paused = True
            await asyncio.sleep(0.5)
            c.close()
            got = []
            peer.setblocking(False)
            while True:
                try:
                    got.append(peer.recv(100))
                except BlockingIOError:
                    break
        return rtt, reports, sum(1 for d in got if d == b"")
    rtt, reports, keepalives = asyncio.run(main())
    assert reports >= 2 and rtt is not None and rtt < 20
    assert keepalives >= 2


def test_picture_loss_and_full_intra_requests_ask_for_one_keyframe_each() -> None:
    """PLI (RFC 4585 6.3.1) and FIR (RFC 5104 4.3.1) about our SSRC, alone as baresip
    sends them (RFC 5506) or after a report; a FIR repeated with the same number is
    the same request (4.3.1.2); those about another stream are not ours."""
    asked: list[int] = []
    session = RtcpSession(0xD00D, "intercom-v", 90000)
    session.on_keyframe_request = lambda: asked.append(1)
    pli = rtcp.build_pli(0xBEEF, 0xD00D)
    assert rtcp.parse(pli) == [("PLI", 0xBEEF, 0xD00D)] and is_rtcp(pli)
    session.on_rtcp(pli, 1.0)
    session.on_rtcp(rtcp.build_rr(0xBEEF, []) + rtcp.build_pli(0xBEEF, 0x1234), 1.1)
    assert len(asked) == 1
    fir = rtcp.build_fir(0xBEEF, 0xD00D, 7)
    assert rtcp.parse(fir) == [("FIR", 0xBEEF, [(0xD00D, 7)])]
    session.on_rtcp(fir, 1.2)
    session.on_rtcp(fir, 1.3)                        # the same request again
    session.on_rtcp(rtcp.build_fir(0xBEEF, 0xD00D, 8), 1.4)
    session.on_rtcp(rtcp.build_fir(0xBEEF, 0x1234, 9), 1.5)
    session.on_rtcp(b"\x80\xc0\x00\x01" + (0xBEEF).to_bytes(4, "big"), 1.6)  # RFC 2032
    assert len(asked) == 4 and session.keyframe_requests == 4
    with pytest.raises(rtcp.RtcpError, match="FIR with a broken FCI"):
        rtcp.parse(b"\x84\xce\x00\x03" + bytes(12))     # half an FCI entry
    with pytest.raises(rtcp.RtcpError, match="PLI shorter"):
        rtcp.parse(b"\x81\xce\x00\x01" + bytes(4))
