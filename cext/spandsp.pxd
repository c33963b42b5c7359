# C declarations of the parts of spandsp that intercom binds (G.722).
from libc.stdint cimport int16_t, uint8_t

cdef extern from "spandsp.h" nogil:
    ctypedef struct g722_encode_state_t:
        pass
    ctypedef struct g722_decode_state_t:
        pass
    g722_encode_state_t* g722_encode_init(g722_encode_state_t* s, int rate, int options)
    int g722_encode_free(g722_encode_state_t* s)
    int g722_encode(g722_encode_state_t* s, uint8_t* g722_data, const int16_t* amp, int len)
    g722_decode_state_t* g722_decode_init(g722_decode_state_t* s, int rate, int options)
    int g722_decode_free(g722_decode_state_t* s)
    int g722_decode(g722_decode_state_t* s, int16_t* amp, const uint8_t* g722_data, int len)
