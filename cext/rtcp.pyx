# cython: language_level=3
"""RTCP (RFC 3550 section 6): sender and receiver reports, SDES CNAME, BYE, and the
feedback a video sender acts on: PLI and FIR (RFC 4585 6.3.1, RFC 5104 4.3.1, and
RFC 2032's older FIR).

``build_*`` return one RTCP packet each (concatenate them for a compound
packet); ``parse`` reads a compound packet into tuples, checking what RFC
3550 A.2 asks of one (version 2, an SR or RR first, lengths that add up). A compound may also start with feedback, as reduced-size
RTCP does (RFC 5506 3.4.2; baresip sends a PLI on its own).

A report block is (ssrc, fraction_lost, cumulative_lost, highest_seq,
jitter, lsr, dlsr), with fraction_lost in 1/256 and the rest as on the wire.
"""
from libc.stdint cimport int32_t, uint32_t
from wire cimport get32, put32

SR = 200
RR = 201
SDES = 202
BYE = 203
OLD_FIR = 192           # RFC 2032 5.2.1
RTPFB = 205
PSFB = 206
PLI = 1                 # PSFB formats (RFC 4585 6.3, RFC 5104 4.3)
FIR = 4


class RtcpError(ValueError):
    """A datagram that is not a usable RTCP compound packet."""


cdef bytes _blocks(list blocks):
    cdef bytearray out = bytearray(24 * len(blocks))
    cdef unsigned char* p = out
    cdef int32_t lost
    cdef Py_ssize_t i
    for i in range(len(blocks)):
        ssrc, fraction, cumulative, highest, jitter, lsr, dlsr = blocks[i]
        lost = max(-0x800000, min(0x7FFFFF, cumulative))    # 24-bit signed, clamped
        put32(p + 24 * i, ssrc & 0xFFFFFFFF)
        put32(p + 24 * i + 4, ((fraction & 0xFF) << 24) | (<uint32_t>lost & 0xFFFFFF))
        put32(p + 24 * i + 8, highest & 0xFFFFFFFF)
        put32(p + 24 * i + 12, jitter & 0xFFFFFFFF)
        put32(p + 24 * i + 16, lsr & 0xFFFFFFFF)
        put32(p + 24 * i + 20, dlsr & 0xFFFFFFFF)
    return bytes(out)


cdef bytes _header(int count, int packet_type, Py_ssize_t length_bytes):
    cdef bytearray out = bytearray(4)
    out[0] = 0x80 | (count & 0x1F)
    out[1] = packet_type
    words = length_bytes // 4 - 1
    out[2] = (words >> 8) & 0xFF
    out[3] = words & 0xFF
    return bytes(out)


def build_sr(unsigned long long ssrc, unsigned long long ntp_seconds,
             unsigned long long ntp_fraction, unsigned long long rtp_timestamp,
             unsigned long long packets, unsigned long long octets, list blocks) -> bytes:
    if len(blocks) > 31:
        raise ValueError("at most 31 report blocks")
    cdef bytearray body = bytearray(24)
    cdef unsigned char* p = body
    put32(p, ssrc & 0xFFFFFFFF)
    put32(p + 4, ntp_seconds & 0xFFFFFFFF)
    put32(p + 8, ntp_fraction & 0xFFFFFFFF)
    put32(p + 12, rtp_timestamp & 0xFFFFFFFF)
    put32(p + 16, packets & 0xFFFFFFFF)
    put32(p + 20, octets & 0xFFFFFFFF)
    rest = _blocks(blocks)
    return _header(len(blocks), SR, 4 + 24 + len(rest)) + bytes(body) + rest


def build_rr(unsigned long long ssrc, list blocks) -> bytes:
    if len(blocks) > 31:
        raise ValueError("at most 31 report blocks")
    cdef bytearray body = bytearray(4)
    put32(body, ssrc & 0xFFFFFFFF)
    rest = _blocks(blocks)
    return _header(len(blocks), RR, 4 + 4 + len(rest)) + bytes(body) + rest


def build_sdes_cname(unsigned long long ssrc, str cname) -> bytes:
    text = cname.encode("utf-8")[:255]
    chunk = bytearray(4)
    put32(chunk, ssrc & 0xFFFFFFFF)
    chunk += bytes([1, len(text)]) + text + b"\0"          # CNAME item, then the end
    chunk += b"\0" * (-len(chunk) % 4)
    return _header(1, SDES, 4 + len(chunk)) + bytes(chunk)


def build_pli(unsigned long long sender_ssrc, unsigned long long media_ssrc) -> bytes:
    """A Picture Loss Indication (RFC 4585 6.3.1): no FCI."""
    body = bytearray(8)
    put32(body, sender_ssrc & 0xFFFFFFFF)
    put32(<unsigned char*>body + 4, media_ssrc & 0xFFFFFFFF)
    return _header(PLI, PSFB, 12) + bytes(body)


def build_fir(unsigned long long sender_ssrc, unsigned long long media_ssrc, int seq) -> bytes:
    """A Full Intra Request (RFC 5104 4.3.1): one FCI entry for ``media_ssrc``."""
    body = bytearray(16)
    put32(body, sender_ssrc & 0xFFFFFFFF)
    put32(<unsigned char*>body + 8, media_ssrc & 0xFFFFFFFF)
    body[12] = seq & 0xFF
    return _header(FIR, PSFB, 20) + bytes(body)


def build_bye(unsigned long long ssrc) -> bytes:
    body = bytearray(4)
    put32(body, ssrc & 0xFFFFFFFF)
    return _header(1, BYE, 8) + bytes(body)


cdef list _read_blocks(const unsigned char* p, int count):
    cdef list out = []
    cdef uint32_t word
    cdef int32_t lost
    cdef int i
    for i in range(count):
        word = get32(p + 24 * i + 4)
        lost = <int32_t>(word & 0xFFFFFF)
        if lost & 0x800000:
            lost -= 0x1000000
        out.append((get32(p + 24 * i), word >> 24, lost, get32(p + 24 * i + 8),
                    get32(p + 24 * i + 12), get32(p + 24 * i + 16), get32(p + 24 * i + 20)))
    return out


def parse(const unsigned char[::1] data):
    """[("SR", ssrc, ntp_sec, ntp_frac, rtp_ts, packets, octets, blocks) |
        ("RR", ssrc, blocks) | ("BYE", [ssrcs]) | ("SDES", ssrc) |
        ("PLI", sender_ssrc, media_ssrc) | ("FIR", sender_ssrc, [(ssrc, seq)]) |
        ("FIR", ssrc, None) for RFC 2032's | (type,)], in order."""
    cdef Py_ssize_t n = data.shape[0]
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t size
    cdef const unsigned char* p
    cdef int count, kind, i
    cdef list out = []
    if n < 8:
        raise RtcpError(f"RTCP packet of {n} bytes is too short")
    while pos < n:
        if n - pos < 4:
            raise RtcpError("RTCP packet header cut short")
        p = &data[pos]
        if (p[0] >> 6) != 2:
            raise RtcpError(f"RTCP version {p[0] >> 6}, expected 2")
        count = p[0] & 0x1F
        kind = p[1]
        size = 4 * (((<Py_ssize_t>p[2] << 8) | p[3]) + 1)
        if pos + size > n:
            raise RtcpError("RTCP length runs past the datagram")
        if pos == 0 and kind not in (SR, RR, RTPFB, PSFB, OLD_FIR):
            raise RtcpError(f"RTCP compound starts with type {kind}, not SR, RR or feedback")
        if p[0] & 0x20 and pos + size != n:
            raise RtcpError("RTCP padding before the last packet")
        if kind == SR:
            if size < 28 + 24 * count:
                raise RtcpError("RTCP SR shorter than its report blocks")
            out.append(("SR", get32(p + 4), get32(p + 8), get32(p + 12), get32(p + 16),
                        get32(p + 20), get32(p + 24), _read_blocks(p + 28, count)))
        elif kind == RR:
            if size < 8 + 24 * count:
                raise RtcpError("RTCP RR shorter than its report blocks")
            out.append(("RR", get32(p + 4), _read_blocks(p + 8, count)))
        elif kind == BYE:
            if size < 4 + 4 * count:
                raise RtcpError("RTCP BYE shorter than its SSRC list")
            out.append(("BYE", [get32(p + 4 + 4 * i) for i in range(count)]))
        elif kind == SDES:
            out.append(("SDES", get32(p + 4) if size >= 8 and count else 0))
        elif kind == PSFB and count == PLI:
            if size < 12:
                raise RtcpError("RTCP PLI shorter than 12 bytes")
            out.append(("PLI", get32(p + 4), get32(p + 8)))
        elif kind == PSFB and count == FIR:
            if size < 12 or (size - 12) % 8:
                raise RtcpError("RTCP FIR with a broken FCI")
            out.append(("FIR", get32(p + 4),
                        [(get32(p + 12 + 8 * i), p[16 + 8 * i]) for i in range((size - 12) // 8)]))
        elif kind == OLD_FIR:
            if size < 8:
                raise RtcpError("RTCP FIR (RFC 2032) shorter than 8 bytes")
            out.append(("FIR", get32(p + 4), None))
        else:
            out.append((kind,))
        pos += size
    return out
