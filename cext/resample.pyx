# cython: language_level=3
"""Sample-rate conversion with libspeexdsp's resampler (mono, int16).

A sound card that runs at 48 kHz feeds an 8 kHz codec through one of these
per direction; each keeps its filter state across frames. The C side
(``Resampler.convert`` and ``check_speex``, declared in
intercom/cext/resample.pxd) is what echo.pyx's microphone path uses.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int16_t, uint32_t
from libspeexdsp cimport (
    RESAMPLER_ERR_SUCCESS, RESAMPLER_ERR_MAX_ERROR, speex_resampler_init,
    speex_resampler_destroy, speex_resampler_process_int, speex_resampler_reset_mem,
    speex_resampler_strerror,
)

cnp.import_array()


class SpeexError(RuntimeError):
    """libspeexdsp refused a setting, failed to allocate its state or could not
    process a block."""


cdef int check_speex(int err, str what) except -1:
    """The one check of libspeexdsp's return codes: 0 is success; the resampler's
    own codes are named by libspeexdsp, the echo canceller's and preprocessor's
    -1 (an unknown request) by number."""
    if err == RESAMPLER_ERR_SUCCESS:
        return 0
    if 0 < err < RESAMPLER_ERR_MAX_ERROR:
        detail = speex_resampler_strerror(err).decode("ascii", "replace")
    else:
        detail = f"error {err}"
    raise SpeexError(f"libspeexdsp: {what} failed: {detail}")


cdef class Resampler:
    def __cinit__(self, unsigned int in_rate, unsigned int out_rate, int quality=5):
        if not 0 <= quality <= 10:
            raise ValueError(f"resampler quality {quality} outside 0..10")
        if in_rate == 0 or out_rate == 0:
            raise ValueError("sample rates must be positive")
        cdef int err = RESAMPLER_ERR_SUCCESS
        self._state = speex_resampler_init(1, in_rate, out_rate, quality, &err)
        if self._state == NULL:
            check_speex(err if err != RESAMPLER_ERR_SUCCESS else -1, "creating a resampler")
        self.in_rate = in_rate
        self.out_rate = out_rate

    def __dealloc__(self):
        if self._state != NULL:
            speex_resampler_destroy(self._state)

    cdef int convert(self, const int16_t* src, uint32_t* count, int16_t* dst,
                     uint32_t* room) except -1 nogil:
        """Resample ``count`` samples from ``src`` into ``dst``, which has ``room``;
        on return ``count`` holds the samples taken and ``room`` those written."""
        cdef int err = speex_resampler_process_int(self._state, 0, src, count, dst, room)
        if err != RESAMPLER_ERR_SUCCESS:
            with gil:
                check_speex(err, "resampling")
        return 0

    def process(self, const int16_t[::1] pcm):
        """Resample one block; returns as many samples as the ratio gives."""
        cdef uint32_t in_len = pcm.shape[0]
        cdef uint32_t out_len = (in_len * self.out_rate) // self.in_rate + 16
        cdef cnp.ndarray out = np.empty(out_len, dtype=np.int16)
        cdef int16_t[::1] dst = out
        if in_len == 0:
            return out[:0]
        with nogil:
            self.convert(&pcm[0], &in_len, &dst[0], &out_len)
        return out[:out_len]

    def reset(self):
        """Forget the filter history (after a gap in the stream)."""
        check_speex(speex_resampler_reset_mem(self._state), "resetting a resampler")
