"""The Cython extensions: G.711 against an independent reference, RTP, the resampler."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intercom.cext import g711, rtp
from intercom.cext.resample import Resampler
from intercom.media.signal import tone, tone_dbfs

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop                                    # stdlib G.711 until 3.13: the reference

ALL = np.arange(-32768, 32768, dtype=np.int16)


def test_ulaw_decode_matches_reference_for_every_code() -> None:
    codes = bytes(range(256))
    ref = np.frombuffer(audioop.ulaw2lin(codes, 2), dtype=np.int16)
    assert np.array_equal(g711.ulaw_decode(codes), ref)


def test_alaw_decode_matches_reference_for_every_code() -> None:
    codes = bytes(range(256))
    ref = np.frombuffer(audioop.alaw2lin(codes, 2), dtype=np.int16)
    assert np.array_equal(g711.alaw_decode(codes), ref)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_encode_matches_reference_for_every_sample(law: str) -> None:
    ours = getattr(g711, f"{law}_encode")(ALL)
    ref = getattr(audioop, f"lin2{law}")(ALL.tobytes(), 2)
    # Both are the ITU segment algorithm; allow no difference at all.
    assert ours == ref


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_round_trip_error_is_within_the_segment_step(law: str) -> None:
    enc, dec = getattr(g711, f"{law}_encode"), getattr(g711, f"{law}_decode")
    x = ALL.astype(np.int32)
    err = np.abs(dec(enc(ALL)).astype(np.int32) - x)
    # 16 steps per segment, the step doubling per segment: the error is at most
    # half a step, about 1/32 of the magnitude (1/25 at mu-law segment starts),
    # a few units near zero, and the clipping loss at full scale.
    loud = (np.abs(x) > 512) & (np.abs(x) < 32000)
    assert np.max(err[loud] / np.abs(x[loud])) <= 0.04
    assert np.max(err[np.abs(x) <= 512]) <= 20
    assert np.max(err) <= 650


def test_rtp_round_trip() -> None:
    packet = rtp.build(0, True, 65535, 2**32 - 1, 0xDEADBEEF, b"\x01\x02")
    assert packet[:2] == b"\x80\x80"
    assert rtp.parse(packet) == (0, True, 65535, 2**32 - 1, 0xDEADBEEF, b"\x01\x02")


@given(st.integers(0, 127), st.booleans(), st.integers(0, 65535), st.integers(0, 2**32 - 1),
       st.integers(0, 2**32 - 1), st.binary(max_size=200))
def test_rtp_round_trip_property(pt: int, m: bool, seq: int, ts: int, ssrc: int,
                                 payload: bytes) -> None:
    assert rtp.parse(rtp.build(pt, m, seq, ts, ssrc, payload)) == (pt, m, seq, ts, ssrc, payload)


def test_rtp_skips_csrc_extension_and_padding() -> None:
    header = bytes([0x80 | 0x20 | 0x10 | 2, 8, 0, 1]) + (160).to_bytes(4, "big") + b"SSRC"
    csrcs = b"C1C1C2C2"
    ext = b"\xbe\xde\x00\x01" + b"EXT1"
    packet = header + csrcs + ext + b"payload" + b"\x00\x00\x03"
    assert rtp.parse(packet)[5] == b"payload"


@pytest.mark.parametrize("packet", [b"", b"\x80" * 11, b"\x40" + b"\x00" * 11,
                                    bytes([0x8F]) + b"\x00" * 11,
                                    bytes([0xA0]) + b"\x00" * 10 + b"\xff"])
def test_rtp_rejects_broken_packets(packet: bytes) -> None:
    with pytest.raises(rtp.RtpError):
        rtp.parse(packet)


@given(st.binary(max_size=64))
def test_rtp_parse_never_crashes(data: bytes) -> None:
    try:
        rtp.parse(data)
    except rtp.RtpError:
        pass


def test_resampler_48k_to_8k_keeps_a_1khz_tone() -> None:
    down = Resampler(48000, 8000)
    src = tone(1000, 1.0, 48000, amplitude=0.5)
    out = np.concatenate([down.process(src[i:i + 960]) for i in range(0, len(src), 960)])
    assert abs(len(out) - 8000) <= 16
    steady = out[800:]
    assert tone_dbfs(steady, 1000, 8000) == pytest.approx(tone_dbfs(src, 1000, 48000), abs=1.0)


def test_resampler_removes_what_8k_cannot_carry() -> None:
    down = Resampler(48000, 8000)
    src = tone(6000, 0.5, 48000, amplitude=0.5)          # above the 4 kHz Nyquist limit
    out = np.concatenate([down.process(src[i:i + 960]) for i in range(0, len(src), 960)])
    assert np.sqrt(np.mean(out[400:].astype(float) ** 2)) < 300   # no 2 kHz alias


def test_resampler_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Resampler(48000, 8000, quality=11)
    with pytest.raises(ValueError):
        Resampler(0, 8000)


def test_a_libspeexdsp_failure_is_one_error_named_by_libspeexdsp() -> None:
    """Every libspeexdsp return code goes through one check (intercom/cext/resample.pxd):
    a resampler it cannot allocate is a SpeexError with libspeexdsp's reason, and the
    echo module raises the same class."""
    from intercom.cext import echo
    from intercom.cext.resample import SpeexError
    assert echo.SpeexError is SpeexError
    with pytest.raises(SpeexError, match="creating a resampler failed: Memory allocation"):
        Resampler(4_000_000_000, 1)
    # The microphone path resamples through the same Resampler.
    path = echo.MicPath(48000, 16000, 320)
    frames = path.process(tone(1000, 0.02, 48000), np.zeros(960, dtype=np.int16))
    frames += path.process(tone(1000, 0.02, 48000), np.zeros(960, dtype=np.int16))
    assert [len(f) for f in frames] == [320] * len(frames) and frames
