# cython: language_level=3
"""Opus a frame at a time, straight into libopus (RFC 6716).

opuslib stays the codec's Python face: it makes the encoder and decoder and
sets their options (complexity, bit rate, FEC, DTX). Per frame, though, its
ctypes wrapper costs more than the coding at a door station's bit rates, so
``OpusFrames`` calls libopus directly on the same states, with the GIL
released while libopus works, and decodes into arrays of its own.
"""
import ctypes

import numpy as np
cimport numpy as cnp
from libc.stdint cimport int16_t, int32_t, uintptr_t

cnp.import_array()


cdef extern from "opus/opus.h" nogil:
    ctypedef struct OpusEncoder:
        pass
    ctypedef struct OpusDecoder:
        pass
    int opus_encode(OpusEncoder* st, const int16_t* pcm, int frame_size, unsigned char* data,
                    int32_t max_data_bytes)
    int opus_decode(OpusDecoder* st, const unsigned char* data, int32_t length, int16_t* pcm,
                    int frame_size, int decode_fec)
    const char* opus_strerror(int error)


DEF MAX_PACKET = 1500       # bytes: a frame of speech is far smaller (RFC 6716 3.4: 1275 at most)


cdef uintptr_t _address(object state) except 0:
    """The C pointer behind an opuslib state (a ctypes pointer)."""
    cdef object value = ctypes.cast(state, ctypes.c_void_p).value
    if not value:
        raise ValueError("the opuslib state has no C object behind it")
    return <uintptr_t>value


class OpusFramesError(ValueError):
    """libopus refused a frame or a packet."""


cdef class OpusFrames:
    """Encode and decode one frame at a time on an opuslib ``Encoder`` and
    ``Decoder`` (kept alive here) at ``rate`` Hz, mono."""
    cdef object _encoder
    cdef object _decoder
    cdef OpusEncoder* _enc
    cdef OpusDecoder* _dec
    cdef readonly int rate
    cdef unsigned char _packet[MAX_PACKET]

    def __cinit__(self, object encoder, object decoder, int rate):
        self._encoder = encoder
        self._decoder = decoder
        self._enc = <OpusEncoder*>_address(encoder.encoder_state)
        self._dec = <OpusDecoder*>_address(decoder.decoder_state)
        self.rate = rate

    def encode(self, object pcm):
        """One frame of 16-bit samples (2.5 to 60 ms) -> one Opus packet."""
        cdef const int16_t[::1] view = np.ascontiguousarray(pcm, dtype=np.int16)
        cdef int n = view.shape[0]
        cdef int size
        if n == 0:
            raise OpusFramesError("an empty frame")
        with nogil:
            size = opus_encode(self._enc, &view[0], n, self._packet, MAX_PACKET)
        if size < 0:
            raise OpusFramesError(f"opus_encode: {opus_strerror(size).decode()}")
        return (<char*>self._packet)[:size]

    cdef cnp.ndarray _decode(self, const unsigned char* data, int32_t length, int samples,
                             int fec):
        cdef cnp.ndarray out = np.empty(samples, dtype=np.int16)
        cdef int16_t* dst = <int16_t*>cnp.PyArray_DATA(out)
        cdef int got
        with nogil:
            got = opus_decode(self._dec, data, length, dst, samples, fec)
        if got < 0:
            raise OpusFramesError(f"bad Opus packet: {opus_strerror(got).decode()}")
        return out[:got]

    def decode(self, const unsigned char[::1] payload):
        """One packet -> its samples (up to 120 ms, RFC 6716 3.2.5); ValueError
        for a packet libopus cannot read."""
        if payload.shape[0] == 0:
            raise OpusFramesError("an empty Opus packet")
        return self._decode(&payload[0], payload.shape[0], self.rate * 120 // 1000, 0)

    def conceal(self, int samples):
        """``samples`` made up for a lost frame by libopus's own concealment."""
        return self._decode(NULL, 0, samples, 0)

    def recover(self, const unsigned char[::1] next_payload, int samples):
        """The lost frame rebuilt from the in-band FEC of the packet after it
        (RFC 6716 2.1.7); libopus conceals when that packet carries none."""
        if next_payload.shape[0] == 0:
            raise OpusFramesError("an empty Opus packet")
        return self._decode(&next_payload[0], next_payload.shape[0], samples, 1)
