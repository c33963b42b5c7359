"""The codec table: G.711, G.722 (spandsp) and Opus (opuslib, libopus per frame), and their SDP."""
from __future__ import annotations

import numpy as np
import pytest

from intercom.media.codecs import codec_for, offer_formats, spec
from intercom.media.signal import tone, tone_dbfs
from intercom.sip import sdp


def round_trip(name: str, freq: float, seconds: float = 1.0) -> tuple[np.ndarray, list[int]]:
    codec = codec_for(spec(name).format)
    frame = codec.sample_rate // 50
    signal = tone(freq, seconds, codec.sample_rate)
    out, sizes = [], []
    for i in range(0, len(signal) - frame + 1, frame):
        payload = codec.encode(signal[i:i + frame])
        sizes.append(len(payload))
        out.append(codec.decode(payload))
    return np.concatenate(out), sizes


@pytest.mark.parametrize("name, freq", [("G722", 1000), ("G722", 6000), ("opus", 1000),
                                        ("opus", 6000), ("PCMU", 1000), ("PCMA", 3000)])
def test_a_tone_survives_the_codec(name: str, freq: float) -> None:
    out, _ = round_trip(name, freq)
    rate = spec(name).sample_rate
    assert len(out) == rate // 50 * 50
    level = tone_dbfs(out[rate // 2:], freq, rate)
    assert level == pytest.approx(tone_dbfs(tone(freq, 0.5, rate), freq, rate), abs=1.5)


def test_payload_sizes() -> None:
    assert set(round_trip("G722", 1000)[1]) == {160}           # 64 kbit/s, 20 ms
    assert set(round_trip("PCMU", 1000)[1]) == {160}
    assert max(round_trip("opus", 1000)[1]) < 160              # VBR, well under G.722


def test_rtp_clocks_are_the_sdp_rates_not_the_sample_rates() -> None:
    assert codec_for(spec("G722").format).timestamp_step(320) == 160    # RFC 3551 quirk
    assert codec_for(spec("opus").format).timestamp_step(320) == 960    # RFC 7587: 48000
    assert codec_for(spec("PCMU").format).timestamp_step(160) == 160


def test_opus_conceals_a_lost_frame() -> None:
    codec = codec_for(spec("opus").format)
    signal = tone(440, 0.2, 16000)
    for i in range(0, len(signal), 320):
        codec.decode(codec.encode(signal[i:i + 320]))
    assert codec.conceal is not None
    guess = codec.conceal(320)
    assert len(guess) == 320 and tone_dbfs(guess, 440, 16000) > -30    # it carries on the tone


def test_opus_per_frame_in_c_decodes_as_opuslib_does() -> None:
    """The direct libopus path and opuslib's own wrapper give the same samples for
    the same packets (two decoders, each fed the whole stream)."""
    import opuslib
    codec = codec_for(spec("opus").format)
    reference = opuslib.Decoder(16000, 1)
    signal = tone(700, 0.4, 16000)
    for i in range(0, len(signal), 320):
        payload = codec.encode(signal[i:i + 320])
        ours = codec.decode(payload)
        theirs = np.frombuffer(reference.decode(payload, 1920), dtype="<i2")
        assert np.array_equal(ours, theirs)
    assert codec.encode(signal[:640:2]) != b""            # a strided frame is taken too


def test_opus_per_frame_refuses_what_it_cannot_read_and_recovers_from_fec() -> None:
    codec = codec_for(spec("opus").format)
    signal = tone(500, 0.6, 16000)
    payloads = [codec.encode(signal[i:i + 320]) for i in range(0, len(signal), 320)]
    for bad in (b"", b"\xff\xff\xff\xff", bytes([0x0B]) + bytes(1400)):
        with pytest.raises(ValueError):
            codec.decode(bad)
    with pytest.raises(ValueError):
        codec.encode(np.zeros(0, dtype=np.int16))
    for payload in payloads[:20]:
        codec.decode(payload)
    assert codec.recover is not None
    rebuilt = codec.recover(payloads[21], 320)             # frame 20 lost, 21 carries its FEC
    assert len(rebuilt) == 320 and tone_dbfs(rebuilt, 500, 16000) > -20
    assert len(codec.decode(payloads[21])) == 320         # and decoding goes on


def test_offer_names_opus_as_rfc_7587_says_and_events_on_both_clocks() -> None:
    media = sdp.MediaDescription("192.0.2.1", 4000, offer_formats(["opus", "G722", "PCMU"]))
    text = sdp.build(1, 1, "192.0.2.1", media).decode()
    assert "a=rtpmap:111 opus/48000/2" in text
    assert "a=fmtp:111 useinbandfec=1; maxplaybackrate=16000" in text
    assert "a=rtpmap:9 G722/8000" in text
    assert "a=rtpmap:101 telephone-event/8000" in text
    assert "a=rtpmap:102 telephone-event/48000" in text
    parsed = sdp.parse(text.encode())
    opus = parsed.find("opus")
    assert opus is not None and opus.channels == 2


def test_telephone_events_on_the_chosen_codecs_clock() -> None:
    ours = sdp.MediaDescription("192.0.2.1", 4000, offer_formats(["opus", "PCMU"]))
    answer = sdp.answer_for(ours, offer_formats(["opus", "PCMU"]), "192.0.2.2", 5000, 20)
    chosen = sdp.negotiate(ours, answer, we_offered=True)
    assert chosen.codec.name == "opus"
    assert chosen.telephone_event is not None and chosen.telephone_event.clock_rate == 48000
    g711 = sdp.answer_for(ours, offer_formats(["PCMU"]), "192.0.2.2", 5000, 20)
    chosen = sdp.negotiate(ours, g711, we_offered=True)
    assert chosen.codec.name == "PCMU" and chosen.telephone_event is not None
    assert chosen.telephone_event.clock_rate == 8000


def test_g722_refuses_an_odd_number_of_samples() -> None:
    codec = codec_for(spec("G722").format)
    with pytest.raises(ValueError):
        codec.encode(np.zeros(321, dtype=np.int16))
