"""The codec table: G.711, G.722 (spandsp) and Opus (opuslib, libopus per frame), and their SDP."""
from __future__ import annotations

import numpy as np
import pytest

from intercom.media.codecs import Codec, codec_for, offer_formats, spec
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


def _voiced(seconds: float, rate: int = 16000) -> np.ndarray:
    """Speech-like sound: a gliding buzz with noise, its loudness rising and falling."""
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * rate)) / rate
    phase = np.cumsum(2 * np.pi * (120 + 20 * np.sin(np.pi * t)) / rate)
    x = (np.sign(np.sin(phase)) * 0.3 + 0.1 * rng.standard_normal(len(t))) * \
        (0.5 + 0.5 * np.sin(6 * np.pi * t))
    x = np.convolve(x, np.hanning(12), "same")
    out: np.ndarray = (x / np.abs(x).max() * 12000).astype(np.int16)
    return out


def test_opus_per_frame_refuses_what_it_cannot_read_and_recovers_from_fec() -> None:
    """A lost frame rebuilt from the next packet's in-band FEC is much closer to
    what decoding it would have given than Opus's own concealment."""
    speech = _voiced(2.0)
    sender = codec_for(spec("opus").format)
    payloads = [sender.encode(speech[i:i + 320]) for i in range(0, len(speech), 320)]
    for bad in (b"", b"\xff\xff\xff\xff", bytes([0x0B]) + bytes(1400)):
        with pytest.raises(ValueError):
            codec_for(spec("opus").format).decode(bad)
    with pytest.raises(ValueError):
        sender.encode(np.zeros(0, dtype=np.int16))

    def receiver_after(frames: int) -> Codec:
        codec = codec_for(spec("opus").format)
        for payload in payloads[:frames]:
            codec.decode(payload)
        return codec

    reference = receiver_after(50).decode(payloads[50]).astype(float)
    fec_side = receiver_after(50)
    assert fec_side.recover is not None
    rebuilt = fec_side.recover(payloads[51], 320)        # frame 50 lost, 51 carries its FEC
    concealed = receiver_after(50).conceal(320)

    def error_db(pcm: np.ndarray) -> float:
        return float(10 * np.log10(np.sum((pcm - reference) ** 2) / np.sum(reference ** 2)))
    assert len(rebuilt) == 320 and error_db(rebuilt) < error_db(concealed) - 4
    assert len(fec_side.decode(payloads[51])) == 320     # and decoding goes on


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
