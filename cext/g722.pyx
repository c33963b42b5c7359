# cython: language_level=3
"""G.722 (ITU-T, 64 kbit/s sub-band ADPCM) through spandsp.

Wideband: 16 kHz audio, one byte per two samples. Its SDP clock rate is 8000
(RFC 3551 4.5.2, a historical quirk), so RTP timestamps advance by half the
sample count; that is the codec table's business, not this module's.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int16_t, uint8_t
from spandsp cimport (
    g722_encode_state_t, g722_decode_state_t, g722_encode_init, g722_encode_free, g722_encode,
    g722_decode_init, g722_decode_free, g722_decode,
)

cnp.import_array()
BITRATE = 64000


cdef class G722Encoder:
    cdef g722_encode_state_t* _state

    def __cinit__(self):
        self._state = g722_encode_init(NULL, BITRATE, 0)
        if self._state == NULL:
            raise MemoryError("spandsp: cannot create a G.722 encoder")

    def __dealloc__(self):
        if self._state != NULL:
            g722_encode_free(self._state)

    def encode(self, const int16_t[::1] pcm):
        """16 kHz samples (an even number) to G.722 bytes, half as many."""
        cdef Py_ssize_t n = pcm.shape[0]
        if n % 2:
            raise ValueError("G.722 encodes an even number of samples")
        out = bytearray(n // 2)
        cdef uint8_t[::1] dst = out
        cdef int produced = 0
        if n:
            with nogil:
                produced = g722_encode(self._state, &dst[0], &pcm[0], <int>n)
        return bytes(out[:produced])


cdef class G722Decoder:
    cdef g722_decode_state_t* _state

    def __cinit__(self):
        self._state = g722_decode_init(NULL, BITRATE, 0)
        if self._state == NULL:
            raise MemoryError("spandsp: cannot create a G.722 decoder")

    def __dealloc__(self):
        if self._state != NULL:
            g722_decode_free(self._state)

    def decode(self, const uint8_t[::1] data):
        """G.722 bytes to 16 kHz samples, two per byte."""
        cdef Py_ssize_t n = data.shape[0]
        cdef cnp.ndarray out = np.empty(2 * n, dtype=np.int16)
        cdef int16_t[::1] dst = out
        cdef int produced = 0
        if n:
            with nogil:
                produced = g722_decode(self._state, &dst[0], &data[0], <int>n)
        return out[:produced]
