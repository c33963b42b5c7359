# cython: language_level=3
"""The level of a call's audio both ways: RMS in dBFS over windows, the loudest kept.

One frame each 20 ms each way, for every call: the sum of squares runs in C over
the int16 samples in place (no float64 copy of the frame, as numpy needed).
"""
from libc.math cimport log10, sqrt
from libc.stdint cimport int16_t, int64_t


cdef class LevelMeter:
    """RMS level in dBFS over windows of ``window`` samples; keeps the loudest."""
    cdef readonly int window
    cdef readonly double dbfs
    cdef readonly double peak_dbfs
    cdef readonly long frames
    cdef int64_t _energy
    cdef long _count

    def __init__(self, int window):
        if window <= 0:
            raise ValueError(f"a level window is a positive number of samples, not {window}")
        self.window = window
        self.dbfs = -120.0
        self.peak_dbfs = -120.0
        self.frames = 0
        self._energy = 0
        self._count = 0

    def add(self, const int16_t[:] frame):
        cdef Py_ssize_t i, n = frame.shape[0]
        cdef int64_t energy = 0
        cdef double rms
        with nogil:
            for i in range(n):
                energy += <int64_t>frame[i] * frame[i]
        self.frames += 1
        self._energy += energy
        self._count += n
        if self._count >= self.window:
            rms = sqrt(<double>self._energy / self._count) / 32768.0
            self.dbfs = 20.0 * log10(rms) if rms > 1e-6 else -120.0
            if self.dbfs > self.peak_dbfs:
                self.peak_dbfs = self.dbfs
            self._energy = 0
            self._count = 0
