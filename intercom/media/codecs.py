"""Audio codecs declared as data: name, rates, payload type, and how to make one.

A ``CodecSpec`` is what we can offer; ``codec_for`` turns the negotiated
format into a ``Codec`` with its own encoder and decoder state (G.722 and
Opus keep state between frames). Two rates matter and differ: the audio's
sample rate, and the RTP clock the SDP names (G.722: 16 kHz audio on an
8000 clock, RFC 3551 4.5.2; Opus: 48000 in SDP whatever it codes, RFC 7587).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from intercom.cext import g711
from intercom.cext.g722 import G722Decoder, G722Encoder
from intercom.cext.opus import OpusFrames
from intercom.cext.plc import WaveformPlc
from intercom.sip.sdp import PayloadFormat

Pcm = npt.NDArray[np.int16]
Encode = Callable[[Pcm], bytes]
Decode = Callable[[bytes], Pcm]
Conceal = Callable[[int], Pcm]
Recover = Callable[[bytes, int], Pcm]
Coders = tuple[Encode, Decode, Conceal, "Recover | None"]
OPUS_RATE = 16000            # wideband by default: what a door station's speech needs
OPUS_COMPLEXITY = 8          # 0-10; libopus 1.3 codes in-band FEC only from 8 up
OPUS_BITRATE = 24000         # wideband speech with room for in-band FEC


@dataclass(frozen=True)
class Codec:
    """One negotiated codec with its own state; encode/decode one frame at a time.

    ``decode`` raises ValueError for a payload it cannot read. ``conceal``
    makes up ``n`` samples for a lost frame (Opus's own concealment; for the
    others a waveform-repeating one that sees every decoded frame);
    ``recover`` rebuilds a lost frame from the forward error correction in
    the packet after it, where the codec has any (Opus).
    """

    name: str
    sample_rate: int                  # of the audio we give and get
    clock_rate: int                   # of RTP timestamps (the SDP's rate)
    payload_type: int
    encode: Encode
    decode: Decode
    conceal: Conceal
    recover: Recover | None = None

    def timestamp_step(self, samples: int) -> int:
        """How far RTP timestamps move for ``samples`` samples of audio."""
        return samples * self.clock_rate // self.sample_rate


@dataclass(frozen=True)
class CodecSpec:
    name: str
    sample_rate: int
    clock_rate: int
    payload_type: int                 # static type, or our choice for dynamic ones
    make: Callable[[int], Coders]         # (complexity) -> fresh coders
    fmtp: str = ""
    channels: int = 1

    @property
    def format(self) -> PayloadFormat:
        return PayloadFormat(self.payload_type, self.name, self.clock_rate, self.fmtp,
                             self.channels)


def _with_plc(rate: int, encode: Encode, decode: Decode) -> Coders:
    """Coders whose lost frames are concealed by repeating the last pitch period."""
    plc = WaveformPlc(rate)

    def decode_and_remember(payload: bytes) -> Pcm:
        out: Pcm = plc.good(decode(payload))
        return out
    return encode, decode_and_remember, plc.conceal, None


def _g711(encode: Encode, decode: Decode) -> Callable[[int], Coders]:
    return lambda complexity: _with_plc(8000, encode, decode)


def _g722(complexity: int) -> Coders:
    encoder, decoder = G722Encoder(), G722Decoder()
    return _with_plc(16000, encoder.encode, decoder.decode)


def _opus(complexity: int) -> Coders:
    import opuslib
    import opuslib.api.ctl as ctl
    import opuslib.api.encoder as opus_encoder
    encoder = opuslib.Encoder(OPUS_RATE, 1, opuslib.APPLICATION_VOIP)
    encoder.complexity = complexity
    # An explicit rate: under about 20 kbit/s libopus leaves the FEC out altogether.
    encoder.bitrate = OPUS_BITRATE
    # In-band FEC on, DTX off (RFC 7587 3.1.3 and 3.1.4); FEC needs an expected loss.
    opus_encoder.encoder_ctl(encoder.encoder_state, ctl.set_inband_fec, 1)
    opus_encoder.encoder_ctl(encoder.encoder_state, ctl.set_packet_loss_perc, 5)
    opus_encoder.encoder_ctl(encoder.encoder_state, ctl.set_dtx, 0)
    decoder = opuslib.Decoder(OPUS_RATE, 1)
    # Per frame, libopus is called directly on these states (cext/opus.pyx).
    frames = OpusFrames(encoder, decoder, OPUS_RATE)
    return frames.encode, frames.decode, frames.conceal, frames.recover


CODECS: dict[str, CodecSpec] = {
    "opus": CodecSpec("opus", OPUS_RATE, 48000, 111, _opus,
                      f"useinbandfec=1; maxplaybackrate={OPUS_RATE}; "
                      f"sprop-maxcapturerate={OPUS_RATE}", channels=2),
    "G722": CodecSpec("G722", 16000, 8000, 9, _g722),
    "PCMU": CodecSpec("PCMU", 8000, 8000, 0, _g711(g711.ulaw_encode, g711.ulaw_decode)),
    "PCMA": CodecSpec("PCMA", 8000, 8000, 8, _g711(g711.alaw_encode, g711.alaw_decode)),
}
# RFC 4733 events 0-15 (digits, *, #, A-D) and 16 (flash), on a dynamic type; also
# on Opus's 48000 clock when Opus is offered, since events share the audio's clock.
TELEPHONE_EVENT = PayloadFormat(101, "telephone-event", 8000, "0-16")
TELEPHONE_EVENT_48K = PayloadFormat(102, "telephone-event", 48000, "0-16")


def spec(name: str) -> CodecSpec:
    """The codec called ``name`` (as in SDP or the config; case does not matter)."""
    for key, value in CODECS.items():
        if key.lower() == name.lower():
            return value
    raise KeyError(name)


def offer_formats(names: Sequence[str]) -> list[PayloadFormat]:
    """Our payload formats in preference order, plus telephone-event."""
    formats = [spec(n).format for n in names]
    events = [TELEPHONE_EVENT]
    if any(f.clock_rate == 48000 for f in formats):
        events.append(TELEPHONE_EVENT_48K)
    return formats + events


def codec_for(fmt: PayloadFormat, complexity: int = OPUS_COMPLEXITY) -> Codec:
    """A fresh codec for a negotiated format, on the payload type the peer chose.

    ``complexity`` is Opus's encoder complexity (0-10); the others have none.
    """
    s = spec(fmt.name)
    encode, decode, conceal, recover = s.make(complexity)
    return Codec(s.name, s.sample_rate, s.clock_rate, fmt.payload_type, encode, decode, conceal,
                 recover)
