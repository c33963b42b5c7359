# cython: language_level=3
"""G.711 mu-law and A-law (ITU-T G.711), table driven.

Encoding uses a 64 Ki-entry table per law indexed by the 16-bit sample, built
once at import; decoding a 256-entry table. Both are exact to the reference
segment algorithm; tests compare them with an independent implementation.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int16_t, uint8_t

cnp.import_array()

cdef uint8_t ULAW_ENC[65536]
cdef uint8_t ALAW_ENC[65536]
cdef int16_t ULAW_DEC[256]
cdef int16_t ALAW_DEC[256]

cdef int _segment(int value, int first_end) noexcept nogil:
    # Index of the first segment whose end ((first_end + 1) << seg) - 1 holds value.
    cdef int seg = 0
    while seg < 8 and value > ((first_end + 1) << seg) - 1:
        seg += 1
    return seg

cdef uint8_t _ulaw_encode(int sample) noexcept nogil:
    # mu-law works on 14-bit samples, biased by 33, in 8 segments (G.711 table 2a).
    cdef int value = sample >> 2
    cdef int mask = 0xFF
    cdef int seg
    if value < 0:
        value = -value
        mask = 0x7F
    if value > 8159:
        value = 8159
    value += 0x21
    seg = _segment(value, 0x3F)
    if seg >= 8:
        return <uint8_t>(0x7F ^ mask)
    return <uint8_t>(((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask)

cdef int16_t _ulaw_decode(uint8_t code) noexcept nogil:
    cdef int u = ~code & 0xFF
    cdef int exponent = (u >> 4) & 0x07
    cdef int sample = (((u & 0x0F) << 3) + 0x84) << exponent
    sample -= 0x84
    return <int16_t>(-sample if u & 0x80 else sample)

cdef uint8_t _alaw_encode(int sample) noexcept nogil:
    cdef int value = sample >> 3          # A-law works on 13-bit samples
    cdef int mask, seg, code
    if value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        value = -value - 1
    seg = _segment(value, 0x1F)
    if seg >= 8:
        return <uint8_t>(0x7F ^ mask)
    code = seg << 4
    if seg < 2:
        code |= (value >> 1) & 0x0F
    else:
        code |= (value >> seg) & 0x0F
    return <uint8_t>(code ^ mask)

cdef int16_t _alaw_decode(uint8_t code) noexcept nogil:
    cdef int a = code ^ 0x55
    cdef int t = (a & 0x0F) << 4
    cdef int seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    else:
        t += 0x108
        if seg > 1:
            t <<= seg - 1
    return <int16_t>(t if a & 0x80 else -t)

cdef void _build_tables() noexcept nogil:
    cdef int i
    for i in range(65536):
        ULAW_ENC[i] = _ulaw_encode(<int16_t>i)
        ALAW_ENC[i] = _alaw_encode(<int16_t>i)
    for i in range(256):
        ULAW_DEC[i] = _ulaw_decode(<uint8_t>i)
        ALAW_DEC[i] = _alaw_decode(<uint8_t>i)

_build_tables()

cdef bytes _encode(const int16_t[::1] pcm, const uint8_t* table):
    cdef Py_ssize_t n = pcm.shape[0]
    cdef bytearray out = bytearray(n)
    cdef unsigned char* dst = out
    cdef Py_ssize_t i
    with nogil:
        for i in range(n):
            dst[i] = table[<unsigned short>pcm[i]]
    return bytes(out)

cdef cnp.ndarray _decode(const unsigned char[::1] data, const int16_t* table):
    cdef Py_ssize_t n = data.shape[0]
    cdef cnp.ndarray out = np.empty(n, dtype=np.int16)
    cdef int16_t[::1] dst = out
    cdef Py_ssize_t i
    with nogil:
        for i in range(n):
            dst[i] = table[data[i]]
    return out

def ulaw_encode(const int16_t[::1] pcm) -> bytes:
    """Encode 16-bit linear samples to mu-law bytes."""
    return _encode(pcm, ULAW_ENC)

def alaw_encode(const int16_t[::1] pcm) -> bytes:
    """Encode 16-bit linear samples to A-law bytes."""
    return _encode(pcm, ALAW_ENC)

def ulaw_decode(const unsigned char[::1] data):
    """Decode mu-law bytes to an int16 array."""
    return _decode(data, ULAW_DEC)

def alaw_decode(const unsigned char[::1] data):
    """Decode A-law bytes to an int16 array."""
    return _decode(data, ALAW_DEC)
