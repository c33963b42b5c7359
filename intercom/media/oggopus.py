"""Opus in Ogg (RFC 7845, on the Ogg framing of RFC 3533): the visitors'
messages and call recordings are written in it, and announcements read from it.

``OggOpusWriter`` encodes 16-bit PCM a 20 ms frame at a time into an Ogg
stream: the identification header (OpusHead) on the first page alone, the
comment header (OpusTags) on the next, then audio pages of about a second.
Granule positions count the 48 kHz samples decoded through a page, whatever the
input rate, the encoder's pre-skip among them (RFC 7845 section 4); the last page is flagged end of
stream and its granule trims the padding of the last frame.

``read_opus`` decodes such a file back to mono PCM at 48 kHz (channels
averaged), with the pre-skip, the end trim and the output gain applied. Every
page's CRC is checked: a broken file is reported, not half played.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from intercom.media.signal import Pcm

RATES = (8000, 12000, 16000, 24000, 48000)    # what libopus encodes
GRANULE_RATE = 48000
FRAME_MS = 20
PAGE_SECONDS = 1.0
BOS, EOS, CONTINUED = 0x02, 0x04, 0x01
MAX_SECONDS = 600                            # a longer announcement is a mistake
# Half the CPU of libopus's default (10) for speech at these rates, and still clear:
# 0.54 against 1.05 CPU-s a minute of stereo 16 kHz here (scripts/bench recording).
COMPLEXITY = 5


class OggOpusError(ValueError):
    """A file that is not Ogg Opus, or is damaged."""


def _crc_table() -> list[int]:
    # Ogg's CRC-32: polynomial 0x04c11db7, not reflected, no final XOR (RFC 3533 6).
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return table


_CRC = _crc_table()


def ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC[(crc >> 24) ^ byte]
    return crc


def ogg_page(packets: list[bytes], granule: int, serial: int, sequence: int,
             flags: int = 0) -> bytes:
    """One page holding whole ``packets`` (each under 255 * 255 bytes)."""
    lacing = bytearray()
    for packet in packets:
        lacing += bytes([255] * (len(packet) // 255) + [len(packet) % 255])
    if len(lacing) > 255:
        raise ValueError(f"{len(lacing)} lacing values do not fit one page")
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, sequence, 0,
                         len(lacing)) + bytes(lacing)
    page = bytearray(header + b"".join(packets))
    struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
    return bytes(page)


def opus_head(channels: int, pre_skip: int, input_rate: int) -> bytes:
    # RFC 7845 5.1: version 1, mapping family 0 (mono or stereo), no output gain.
    return struct.pack("<8sBBHIhB", b"OpusHead", 1, channels, pre_skip, input_rate, 0, 0)


def opus_tags(vendor: str, comments: list[str]) -> bytes:
    out = bytearray(b"OpusTags")
    out += struct.pack("<I", len(vendor.encode())) + vendor.encode()
    out += struct.pack("<I", len(comments))
    for comment in comments:
        out += struct.pack("<I", len(comment.encode())) + comment.encode()
    return bytes(out)


class OggOpusWriter:
    """Writes PCM at ``rate`` (one of ``RATES``), mono or interleaved stereo, to
    ``out`` as Ogg Opus; ``close`` ends the stream (it does not close ``out``)."""

    def __init__(self, out: BinaryIO, rate: int, channels: int = 1, bitrate: int = 24000,
                 comments: list[str] | None = None, serial: int | None = None,
                 complexity: int = COMPLEXITY) -> None:
        import opuslib
        import opuslib.api.ctl as ctl
        import opuslib.api.encoder as opus_encoder
        if rate not in RATES:
            raise ValueError(f"Opus encodes at {', '.join(map(str, RATES))} Hz, not {rate}")
        if channels not in (1, 2):
            raise ValueError(f"{channels} channels; mono or stereo")
        self.out = out
        self.rate = rate
        self.channels = channels
        self.frame = rate * FRAME_MS // 1000
        self._encoder = opuslib.Encoder(rate, channels, opuslib.APPLICATION_VOIP)
        self._encoder.bitrate = bitrate * channels
        opus_encoder.encoder_ctl(self._encoder.encoder_state, ctl.set_complexity, complexity)
        lookahead = opus_encoder.encoder_ctl(self._encoder.encoder_state, ctl.get_lookahead)
        self.scale = GRANULE_RATE // rate
        self.pre_skip = lookahead * self.scale
        self.serial = int.from_bytes(np.random.bytes(4), "little") if serial is None \
            else serial
        self._sequence = 0
        self._pending = np.zeros(0, dtype=np.int16)      # samples short of a frame
        self._packets: list[bytes] = []
        self.samples = 0                                 # input samples per channel
        self._encoded = 0                                # of them, in packets so far
        self.closed = False
        self._page([opus_head(channels, self.pre_skip, rate)], 0, BOS)
        self._page([opus_tags("intercom", comments or [])], 0)

    def _page(self, packets: list[bytes], granule: int, flags: int = 0) -> None:
        self.out.write(ogg_page(packets, granule, self.serial, self._sequence, flags))
        self._sequence += 1

    @property
    def seconds(self) -> float:
        return self.samples / self.rate

    def write(self, pcm: Pcm) -> None:
        """Interleaved samples (a whole number of frames of all channels)."""
        if self.closed:
            raise ValueError("the recording is closed")
        data = np.concatenate([self._pending, np.asarray(pcm, dtype=np.int16).ravel()])
        step = self.frame * self.channels
        whole = len(data) // step * step
        for start in range(0, whole, step):
            chunk = data[start:start + step]
            self._packets.append(self._encoder.encode(chunk.tobytes(), self.frame))
            self._encoded += self.frame
            if len(self._packets) * FRAME_MS >= PAGE_SECONDS * 1000:
                self._flush(0)
        self._pending = data[whole:].copy()
        self.samples += len(np.asarray(pcm).ravel()) // self.channels

    def _flush(self, flags: int) -> None:
        granule = self._encoded * self.scale        # samples decoded through this page
        if flags & EOS:
            # The last frame's padding is not played: the granule says where it ends.
            granule = self.pre_skip + self.samples * self.scale
        self._page(self._packets, granule, flags)
        self._packets = []

    def close(self) -> None:
        """Pads with silence to whole frames that hold the encoder's delay too, and
        ends the stream: the last page's granule trims less than a frame, which
        every decoder honours (RFC 7845 4.4)."""
        if self.closed:
            return
        counted = self.samples
        delay = self.pre_skip // self.scale
        total = -(-(counted + delay) // self.frame) * self.frame
        self.write(np.zeros((total - counted) * self.channels, dtype=np.int16))
        self.samples = counted
        self._flush(EOS)
        self.closed = True


# ----- reading ----------------------------------------------------------------------
def ogg_packets(data: bytes, where: str) -> Iterator[tuple[bytes, int, int]]:
    """(packet, granule of its page or -1 unless it ends the page, page flags) of
    the first logical stream in ``data``."""
    pos, serial, partial = 0, None, b""
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS" or len(data) < pos + 27:
            raise OggOpusError(f"{where}: no Ogg page at byte {pos}")
        version, flags, granule, page_serial, _, crc, count = \
            struct.unpack_from("<BBqIIIB", data, pos + 4)
        lacing = data[pos + 27:pos + 27 + count]
        size = 27 + count + sum(lacing)
        page = bytearray(data[pos:pos + size])
        if version != 0 or len(page) < size:
            raise OggOpusError(f"{where}: a damaged Ogg page at byte {pos}")
        struct.pack_into("<I", page, 22, 0)
        if ogg_crc(bytes(page)) != crc:
            raise OggOpusError(f"{where}: the Ogg page at byte {pos} fails its CRC "
                               "(the file is damaged)")
        if serial is None:
            serial = page_serial
        if page_serial == serial:
            body = pos + 27 + count
            ends = [i for i, v in enumerate(lacing) if v < 255]
            for i, value in enumerate(lacing):
                partial += data[body:body + value]
                body += value
                if value < 255:
                    yield partial, granule if i == ends[-1] else -1, flags
                    partial = b""
        pos += size


def read_opus(path: str) -> tuple[Pcm, int]:
    """Mono 16-bit samples of an Ogg Opus file, at 48 kHz. OggOpusError if it is
    not one, or damaged."""
    import opuslib
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SECONDS * 64000)
    except OSError as exc:
        raise OggOpusError(f"{path}: {exc.strerror or exc}") from None
    packets = ogg_packets(data, path)
    head = next(packets, None)
    if head is None or not head[0].startswith(b"OpusHead") or len(head[0]) < 19:
        raise OggOpusError(f"{path}: not an Ogg Opus file (no OpusHead)")
    version, channels, pre_skip, _, gain, family = struct.unpack_from("<BBHIhB", head[0], 8)
    if version >> 4 != 0 or channels not in (1, 2) or family != 0:
        raise OggOpusError(f"{path}: Opus with {channels} channels (mapping {family}); "
                           "mono or stereo expected")
    tags = next(packets, None)
    if tags is None or not tags[0].startswith(b"OpusTags"):
        raise OggOpusError(f"{path}: no OpusTags after OpusHead")
    decoder = opuslib.Decoder(GRANULE_RATE, channels)
    out: list[np.ndarray] = []
    decoded, last_granule = 0, -1
    try:
        for packet, granule, _ in packets:
            if not packet:
                continue
            pcm = np.frombuffer(decoder.decode(packet, 5760), dtype=np.int16)
            out.append(pcm.reshape(-1, channels).mean(axis=1))
            decoded += len(out[-1])
            if granule >= 0:
                last_granule = granule
            if decoded > MAX_SECONDS * GRANULE_RATE:
                raise OggOpusError(f"{path}: longer than {MAX_SECONDS} s")
    except opuslib.OpusError as exc:
        raise OggOpusError(f"{path}: an Opus packet does not decode ({exc})") from None
    samples = np.concatenate(out) if out else np.zeros(0)
    end = min(len(samples), last_granule) if last_granule >= 0 else len(samples)
    samples = samples[pre_skip:end] * 10 ** (gain / 256 / 20)      # Q7.8 dB (RFC 7845 5.1)
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16), GRANULE_RATE
