# Big-endian 32-bit words in and out of packet buffers, and the RTP fixed header,
# for rtp.pyx, rtpio.pyx and rtcp.pyx.
from libc.stdint cimport uint32_t


cdef inline void put32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = (v >> 24) & 0xFF
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef inline uint32_t get32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline void put_rtp_header(unsigned char* p, int payload_type, bint marker,
                                unsigned int seq, unsigned long long ts,
                                unsigned long long ssrc) noexcept nogil:
    """The 12-byte RTP fixed header (RFC 3550 5.1): version 2, no padding,
    extension or CSRC. ``payload_type`` must be 0..127 (the callers check)."""
    p[0] = 0x80
    p[1] = (0x80 if marker else 0) | payload_type
    p[2] = (seq >> 8) & 0xFF
    p[3] = seq & 0xFF
    put32(p + 4, <uint32_t>ts)            # the low 32 bits
    put32(p + 8, <uint32_t>ssrc)
