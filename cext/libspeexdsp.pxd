# C declarations of the parts of libspeexdsp that intercom binds.
from libc.stdint cimport int16_t, int32_t, uint32_t

cdef extern from "speex/speex_resampler.h" nogil:
    ctypedef struct SpeexResamplerState:
        pass
    enum:
        RESAMPLER_ERR_SUCCESS
        RESAMPLER_ERR_MAX_ERROR
    SpeexResamplerState* speex_resampler_init(uint32_t nb_channels, uint32_t in_rate,
                                              uint32_t out_rate, int quality, int* err)
    void speex_resampler_destroy(SpeexResamplerState* st)
    int speex_resampler_process_int(SpeexResamplerState* st, uint32_t channel_index,
                                    const int16_t* inp, uint32_t* in_len,
                                    int16_t* out, uint32_t* out_len)
    int speex_resampler_skip_zeros(SpeexResamplerState* st)
    int speex_resampler_reset_mem(SpeexResamplerState* st)
    const char* speex_resampler_strerror(int err)


cdef extern from "speex/speex_echo.h" nogil:
    ctypedef struct SpeexEchoState:
        pass
    enum:
        SPEEX_ECHO_SET_SAMPLING_RATE
    SpeexEchoState* speex_echo_state_init(int frame_size, int filter_length)
    void speex_echo_state_destroy(SpeexEchoState* st)
    void speex_echo_cancellation(SpeexEchoState* st, const int16_t* rec, const int16_t* play,
                                 int16_t* out)
    void speex_echo_state_reset(SpeexEchoState* st)
    int speex_echo_ctl(SpeexEchoState* st, int request, void* ptr)


cdef extern from "speex/speex_preprocess.h" nogil:
    ctypedef struct SpeexPreprocessState:
        pass
    enum:
        SPEEX_PREPROCESS_SET_DENOISE
        SPEEX_PREPROCESS_SET_AGC
        SPEEX_PREPROCESS_SET_AGC_LEVEL
        SPEEX_PREPROCESS_SET_NOISE_SUPPRESS
        SPEEX_PREPROCESS_SET_ECHO_SUPPRESS
        SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE
        SPEEX_PREPROCESS_SET_ECHO_STATE
        SPEEX_PREPROCESS_SET_AGC_MAX_GAIN
    SpeexPreprocessState* speex_preprocess_state_init(int frame_size, int sampling_rate)
    void speex_preprocess_state_destroy(SpeexPreprocessState* st)
    int speex_preprocess_run(SpeexPreprocessState* st, int16_t* x)
    int speex_preprocess_ctl(SpeexPreprocessState* st, int request, void* ptr)


cdef extern from "speex/speex_jitter.h" nogil:
    ctypedef struct JitterBuffer:
        pass
    ctypedef struct JitterBufferPacket:
        char* data
        uint32_t len
        uint32_t timestamp
        uint32_t span
        unsigned short sequence
        uint32_t user_data
    enum:
        JITTER_BUFFER_OK
        JITTER_BUFFER_MISSING
        JITTER_BUFFER_INSERTION
        JITTER_BUFFER_SET_MARGIN
    JitterBuffer* jitter_buffer_init(int step_size)
    void jitter_buffer_destroy(JitterBuffer* jitter)
    void jitter_buffer_put(JitterBuffer* jitter, const JitterBufferPacket* packet)
    int jitter_buffer_get(JitterBuffer* jitter, JitterBufferPacket* packet,
                          int32_t desired_span, int32_t* start_offset)
    void jitter_buffer_tick(JitterBuffer* jitter)
    int jitter_buffer_ctl(JitterBuffer* jitter, int request, void* ptr)
