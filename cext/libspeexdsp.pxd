# C declarations of the parts of libspeexdsp that intercom binds.
from libc.stdint cimport int16_t, uint32_t

cdef extern from "speex/speex_resampler.h" nogil:
    ctypedef struct SpeexResamplerState:
        pass
    enum:
        RESAMPLER_ERR_SUCCESS
    SpeexResamplerState* speex_resampler_init(uint32_t nb_channels, uint32_t in_rate,
                                              uint32_t out_rate, int quality, int* err)
    void speex_resampler_destroy(SpeexResamplerState* st)
    int speex_resampler_process_int(SpeexResamplerState* st, uint32_t channel_index,
                                    const int16_t* inp, uint32_t* in_len,
                                    int16_t* out, uint32_t* out_len)
    int speex_resampler_skip_zeros(SpeexResamplerState* st)
    int speex_resampler_reset_mem(SpeexResamplerState* st)
    const char* speex_resampler_strerror(int err)
