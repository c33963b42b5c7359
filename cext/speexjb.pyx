# cython: language_level=3
"""libspeexdsp's jitter buffer, bound only to measure ours against it.

It keeps packets by timestamp and, asked each tick for one frame, answers
with a packet, "missing" (conceal) or "insertion" (play a filler frame); it
adapts its delay by inserting and dropping whole frames.
"""
from libc.stdint cimport int32_t, uint32_t
from libc.string cimport memcpy
from libspeexdsp cimport (
    JitterBuffer, JitterBufferPacket, jitter_buffer_init, jitter_buffer_destroy,
    jitter_buffer_put, jitter_buffer_get, jitter_buffer_tick, jitter_buffer_ctl,
    JITTER_BUFFER_OK, JITTER_BUFFER_MISSING, JITTER_BUFFER_INSERTION,
    JITTER_BUFFER_SET_MARGIN,
)
from intercom.cext.resample cimport check_speex

OK = JITTER_BUFFER_OK
MISSING = JITTER_BUFFER_MISSING
INSERTION = JITTER_BUFFER_INSERTION
cdef enum:
    MAX_PAYLOAD = 1500


cdef class SpeexJitterBuffer:
    cdef JitterBuffer* _jb
    cdef readonly int step
    cdef char _data[MAX_PAYLOAD]

    def __cinit__(self, int step, int margin=0):
        if step <= 0:
            raise ValueError("step must be positive")
        self._jb = jitter_buffer_init(step)
        if self._jb == NULL:
            raise MemoryError("jitter_buffer_init failed")
        self.step = step
        cdef int32_t m = margin
        check_speex(jitter_buffer_ctl(self._jb, JITTER_BUFFER_SET_MARGIN, &m),
                    "setting the jitter buffer's margin")

    def __dealloc__(self):
        if self._jb != NULL:
            jitter_buffer_destroy(self._jb)

    def put(self, bytes payload, uint32_t timestamp, uint32_t sequence=0):
        cdef JitterBufferPacket packet
        if len(payload) > MAX_PAYLOAD:
            raise ValueError("payload too long")
        packet.data = <char*>payload
        packet.len = <uint32_t>len(payload)
        packet.timestamp = timestamp
        packet.span = self.step
        packet.sequence = <unsigned short>sequence
        packet.user_data = 0
        jitter_buffer_put(self._jb, &packet)          # it copies the data

    def get(self):
        """``(status, payload, timestamp)`` for the next frame; payload is None unless OK."""
        cdef JitterBufferPacket packet
        cdef int32_t offset = 0
        packet.data = self._data
        packet.len = MAX_PAYLOAD
        cdef int status = jitter_buffer_get(self._jb, &packet, self.step, &offset)
        if status == JITTER_BUFFER_OK:
            return status, packet.data[:packet.len], packet.timestamp
        return status, None, None

    def tick(self):
        jitter_buffer_tick(self._jb)
