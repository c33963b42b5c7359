# cython: language_level=3
"""Sample-rate conversion with libspeexdsp's resampler (mono, int16).

A sound card that runs at 48 kHz feeds an 8 kHz codec through one of these
per direction; each keeps its filter state across frames.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int16_t, uint32_t
from libspeexdsp cimport (
    SpeexResamplerState, RESAMPLER_ERR_SUCCESS, speex_resampler_init,
    speex_resampler_destroy, speex_resampler_process_int, speex_resampler_reset_mem,
    speex_resampler_strerror,
)

cnp.import_array()


class SpeexError(RuntimeError):
    """libspeexdsp returned an error code."""


cdef int _check(int err) except -1:
    # Every libspeexdsp return code passes through here.
    if err != RESAMPLER_ERR_SUCCESS:
        raise SpeexError(speex_resampler_strerror(err).decode("ascii", "replace"))
    return 0


cdef class Resampler:
    cdef SpeexResamplerState* _state
    cdef readonly unsigned int in_rate
    cdef readonly unsigned int out_rate

    def __cinit__(self, unsigned int in_rate, unsigned int out_rate, int quality=5):
        if not 0 <= quality <= 10:
            raise ValueError(f"resampler quality {quality} outside 0..10")
        if in_rate == 0 or out_rate == 0:
            raise ValueError("sample rates must be positive")
        cdef int err = RESAMPLER_ERR_SUCCESS
        self._state = speex_resampler_init(1, in_rate, out_rate, quality, &err)
        if self._state == NULL:
            _check(err if err != RESAMPLER_ERR_SUCCESS else -1)
        self.in_rate = in_rate
        self.out_rate = out_rate

    def __dealloc__(self):
        if self._state != NULL:
            speex_resampler_destroy(self._state)

    def process(self, const int16_t[::1] pcm):
        """Resample one block; returns as many samples as the ratio gives."""
        cdef uint32_t in_len = pcm.shape[0]
        cdef uint32_t out_len = (in_len * self.out_rate) // self.in_rate + 16
        cdef cnp.ndarray out = np.empty(out_len, dtype=np.int16)
        cdef int16_t[::1] dst = out
        cdef const int16_t* src = &pcm[0] if in_len else NULL
        cdef int err
        if in_len == 0:
            return out[:0]
        with nogil:
            err = speex_resampler_process_int(self._state, 0, src, &in_len, &dst[0], &out_len)
        _check(err)
        return out[:out_len]

    def reset(self):
        """Forget the filter history (after a gap in the stream)."""
        _check(speex_resampler_reset_mem(self._state))
