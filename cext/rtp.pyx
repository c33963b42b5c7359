# cython: language_level=3
"""RTP fixed header (RFC 3550 section 5.1): build and parse, per packet."""
from libc.string cimport memcpy
from wire cimport get32, put_rtp_header


class RtpError(ValueError):
    """A datagram that is not a usable RTP packet."""


def build(int payload_type, bint marker, unsigned int seq, unsigned long long timestamp,
          unsigned long long ssrc, const unsigned char[::1] payload) -> bytes:
    """Return one RTP packet: version 2, no padding, extension or CSRC."""
    if not 0 <= payload_type <= 127:
        raise ValueError(f"payload type {payload_type} outside 0..127")
    cdef Py_ssize_t n = payload.shape[0]
    cdef bytearray out = bytearray(12 + n)
    cdef unsigned char* p = out
    put_rtp_header(p, payload_type, marker, seq, timestamp, ssrc)
    if n:
        memcpy(p + 12, &payload[0], n)
    return bytes(out)


def parse(const unsigned char[::1] packet):
    """Return (payload_type, marker, seq, timestamp, ssrc, payload).

    CSRCs, a header extension and padding are skipped. Raises RtpError for a
    packet that is too short, not version 2, or whose lengths do not add up.
    """
    cdef Py_ssize_t n = packet.shape[0]
    if n < 12:
        raise RtpError(f"RTP packet of {n} bytes is shorter than the 12-byte header")
    cdef const unsigned char* p = &packet[0]
    if (p[0] >> 6) != 2:
        raise RtpError(f"RTP version {p[0] >> 6}, expected 2")
    cdef Py_ssize_t start = 12 + 4 * (p[0] & 0x0F)
    cdef Py_ssize_t end = n
    if p[0] & 0x10:                       # header extension: 4-byte head + length words
        if start + 4 > n:
            raise RtpError("RTP header extension runs past the packet")
        start += 4 + 4 * ((p[start + 2] << 8) | p[start + 3])
    if p[0] & 0x20:                       # padding: last octet counts the padding
        end -= p[n - 1]
    if start > end:
        raise RtpError("RTP header, extension and padding exceed the packet")
    return (p[1] & 0x7F, bool(p[1] & 0x80), (p[2] << 8) | p[3], get32(p + 4),
            get32(p + 8), bytes(packet[start:end]))
