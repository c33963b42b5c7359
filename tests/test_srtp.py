"""SRTP with SDES keys: the a=crypto attribute, protection, and calls that use it."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_station import Rig, run_rig

from intercom.cext import rtp
from intercom.demo import wait_until
from intercom.media.srtp import Crypto, SrtpContext, SrtpError, choose
from intercom.sip import sdp


def test_crypto_attribute_round_trip_and_what_is_refused() -> None:
    ours = Crypto.new()
    assert Crypto.parse(str(ours)) == ours
    assert str(ours).startswith("1 AES_CM_128_HMAC_SHA1_80 inline:")
    key = str(ours).split("inline:")[1]
    assert Crypto.parse(f"2 AES_CM_128_HMAC_SHA1_32 inline:{key}|2^31").tag == 2
    for bad in (f"1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4",   # MKI
                "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",             # short key
                "1 AES_CM_128_HMAC_SHA1_80 inline:***", "x y"):
        with pytest.raises(sdp.SdpError):
            Crypto.parse(bad)
    assert choose([f"1 F8_128_HMAC_SHA1_80 inline:{key}", str(ours)]) == ours


def test_protected_packets_and_forgeries() -> None:
    a, b = Crypto.new(), Crypto.new()
    door, phone = SrtpContext(a, b), SrtpContext(b, a)
    packet = rtp.build(0, False, 1, 160, 7, bytes(range(160)))
    wire = door.protect(packet)
    assert wire != packet and bytes(range(160)) not in wire           # encrypted
    assert phone.unprotect(wire) == packet
    with pytest.raises(SrtpError):
        phone.unprotect(wire)                                          # a replay
    forged = bytearray(door.protect(rtp.build(0, False, 2, 320, 7, bytes(160))))
    forged[-12] ^= 0x01
    with pytest.raises(SrtpError):
        phone.unprotect(bytes(forged))
    with pytest.raises(SrtpError):
        phone.unprotect(rtp.build(101, True, 3, 480, 7, b"\x01\x80\x00\xa0"))   # plain DTMF
    assert phone.failed == 3


def test_sdp_carries_savp_and_crypto() -> None:
    media = sdp.MediaDescription("192.0.2.1", 4000, [sdp.PayloadFormat(0, "PCMU", 8000)],
                                 protocol="RTP/SAVP", crypto=[str(Crypto.new())])
    parsed = sdp.parse(sdp.build(1, 1, "192.0.2.1", media))
    assert parsed.protocol == "RTP/SAVP" and parsed.crypto == media.crypto
    with pytest.raises(sdp.SdpError, match="RTP/SAVP is not supported"):
        sdp.answer_for(parsed, [sdp.PayloadFormat(0, "PCMU", 8000)], "192.0.2.2", 5000, 20)


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_a_call_with_the_demo_phone_is_encrypted_and_the_door_opens(tmp_path: Path,
                                                                     mode: str) -> None:
    async def body(rig: Rig) -> None:
        await rig.ctl({"cmd": "press", "button": "bell"})
        assert await wait_until(lambda: rig.seen("call", state="answered"), 5)
        await asyncio.sleep(1.0)
        state = (await rig.ctl({"cmd": "state"}))["state"]
        audio = state["call"]["audio"]
        assert audio["srtp"] and audio["unauthentic"] == 0 and audio["rtp_received"] > 20
        rig.phones[0].send_dtmf("1234#")
        assert await wait_until(lambda: rig.seen("door", action="opened"), 5)
        rig.phones[0].hangup()
        assert await wait_until(lambda: rig.seen("call", state="ended"), 5)
    run_rig(tmp_path, body, media={"srtp": mode})
