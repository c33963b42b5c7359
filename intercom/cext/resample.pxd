# The resampler and the one libspeexdsp error check, for the other extensions
# (echo.pyx's MicPath resamples the microphone and the reference with it).
from libc.stdint cimport int16_t, uint32_t
from libspeexdsp cimport SpeexResamplerState


cdef int check_speex(int err, str what) except -1


cdef class Resampler:
    cdef SpeexResamplerState* _state
    cdef readonly unsigned int in_rate
    cdef readonly unsigned int out_rate

    cdef int convert(self, const int16_t* src, uint32_t* count, int16_t* dst,
                     uint32_t* room) except -1 nogil
