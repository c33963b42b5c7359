"""Whatever arrives on the media ports: typed errors or a count, never a crash or a digit."""
from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from intercom.cext import rtcp, rtp
from intercom.media.codecs import codec_for, spec
from intercom.media.dtmf import DtmfReceiver
from intercom.media.rtcp import RtcpSession
from intercom.media.rtp import RtpSession
from intercom.media.srtp import Crypto, SrtpContext

DECODERS = {name: codec_for(spec(name).format) for name in ("opus", "G722", "PCMU", "PCMA")}


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_rtp_and_rtcp_parsers_raise_only_their_errors(data: bytes) -> None:
    try:
        rtp.parse(data)
    except rtp.RtpError:
        pass
    try:
        rtcp.parse(data)
    except rtcp.RtcpError:
        pass
    RtcpSession(1, "x", 8000).on_rtcp(data, 1.8e9)               # counts, never raises


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(DECODERS)), st.binary(max_size=300))
def test_decoders_return_audio_or_a_value_error(name: str, payload: bytes) -> None:
    try:
        pcm = DECODERS[name].decode(payload)
    except ValueError:
        return
    assert pcm.dtype.name == "int16"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=8), st.integers(0, 2**32 - 1)), max_size=20))
def test_telephone_events_never_crash(packets: list[tuple[bytes, int]]) -> None:
    receiver = DtmfReceiver()
    for payload, ts in packets:
        for digit in receiver.feed(payload, ts):
            assert digit in "0123456789*#ABCD"


def test_garbage_on_the_rtp_port_is_counted_and_opens_nothing() -> None:
    async def main() -> tuple[int, int, int, list[object]]:
        heard: list[object] = []
        session = await RtpSession.open("127.0.0.1", 31000, 31998,
                                        lambda *packet: heard.append(packet))
        session.srtp = SrtpContext(Crypto.new(), Crypto.new())
        import random
        rng = random.Random(4)
        for _ in range(500):
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            session.datagram_received(data, ("127.0.0.1", 40000))
        # A well-formed plain RTP packet is still refused inside an SRTP call.
        session.datagram_received(rtp.build(101, True, 1, 160, 9, b"\x01\x80\x00\xa0"),
                                  ("127.0.0.1", 40000))
        stats = session.stats
        session.close()
        return stats.invalid, stats.unauthentic, stats.received, heard
    invalid, unauthentic, received, heard = asyncio.run(main())
    assert received == 0 and heard == []
    assert invalid + unauthentic >= 400
