# cython: language_level=3
"""Waveform-similarity tools: time-scale changes and loss concealment.

Both rest on the same observation: voiced speech repeats itself every pitch
period, so a period can be cut out or repeated with a short cross-fade and
the ear hardly notices.

* ``accelerate`` removes one period from a frame (the jitter buffer plays
  faster to shed delay); ``stretch`` inserts one (it plays slower to build
  delay). Each searches the period with the best normalised correlation and
  declines (returns the frame unchanged) when the frame is neither periodic
  nor quiet, so noise-like audio is not smeared into a click; with
  ``voiced=False`` it changes only quiet frames (the pauses between words).
* ``WaveformPlc`` conceals lost frames of codecs that have no concealment of
  their own (G.711, G.722), in the manner of G.711 Appendix I: repeat the
  last pitch period with a cross-faded seam, full level for 10 ms, then fade
  by a fifth per 10 ms to silence at 60 ms; the first good frame after a
  loss is cross-faded in from the synthetic signal.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport sqrt
from libc.stdint cimport int16_t

cnp.import_array()

ctypedef cnp.int16_t sample_t

# Pitch range searched: 2.5 ms (400 Hz) up to 10 ms (the frame must hold 2 periods
# for accelerate/stretch); concealment looks further, to 15 ms (66 Hz).
cdef double MIN_PITCH_S = 0.0025
cdef double MAX_TSM_PITCH_S = 0.010
cdef double MAX_PLC_PITCH_S = 0.015
# A quiet frame (RMS under about -40 dBFS) is always changed, by as much as it
# can be; a voiced one only when asked to and when its periods correlate at
# least this well. Changes in quiet frames are the ones nobody hears.
cdef double MIN_CORRELATION = 0.75
cdef double QUIET_RMS = 300.0


cdef inline int16_t _clip(double v) noexcept nogil:
    if v > 32767.0:
        return 32767
    if v < -32768.0:
        return -32768
    return <int16_t>(v + 0.5 if v >= 0 else v - 0.5)


cdef double _best_lag(const sample_t[:] x, int start, int lo, int hi, int* lag) noexcept nogil:
    """Lag L in [lo, hi] whose x[start:start+L] best matches x[start+L:start+2L]."""
    cdef int L, i
    cdef double c, e1, e2, a, b, corr, best = -2.0
    lag[0] = hi
    for L in range(lo, hi + 1):
        c = 0.0
        e1 = 0.0
        e2 = 0.0
        for i in range(L):
            a = x[start + i]
            b = x[start + L + i]
            c += a * b
            e1 += a * a
            e2 += b * b
        if e1 <= 0.0 or e2 <= 0.0:
            corr = 0.0
        else:
            corr = c / sqrt(e1 * e2)
        if corr > best:
            best = corr
            lag[0] = L
    return best


cdef double _rms(const sample_t[:] x) noexcept nogil:
    cdef Py_ssize_t i
    cdef double e = 0.0
    if x.shape[0] == 0:
        return 0.0
    for i in range(x.shape[0]):
        e += <double>x[i] * x[i]
    return sqrt(e / x.shape[0])


cdef int _tsm_lag(const sample_t[:] x, int rate, bint voiced, bint force) noexcept nogil:
    """The period to cut or repeat in frame x, or 0 to leave it alone."""
    cdef int n = x.shape[0]
    cdef int lo = <int>(MIN_PITCH_S * rate)
    cdef int hi = <int>(MAX_TSM_PITCH_S * rate)
    cdef int lag = 0
    cdef double corr
    if hi * 2 > n:
        hi = n // 2
    if lo < 1 or hi < lo:
        return 0
    if _rms(x) < QUIET_RMS:
        return hi                                 # nothing to hear: take the most
    if not voiced:
        return 0
    corr = _best_lag(x, 0, lo, hi, &lag)
    if corr >= MIN_CORRELATION or force:
        return lag
    return 0


cdef void _crossfade(sample_t[:] out, int at, const sample_t[:] x, int fading, int rising,
                     int L) noexcept:
    """out[at:at+L] = x[fading:fading+L] fading out while x[rising:rising+L] fades in."""
    cdef int i
    cdef double w
    for i in range(L):
        w = (i + 0.5) / L
        out[at + i] = _clip(x[fading + i] * (1.0 - w) + x[rising + i] * w)


def accelerate(const sample_t[:] frame, int rate, bint voiced=True, bint force=False):
    """The frame with one period removed (shorter), or a copy of it unchanged."""
    cdef int n = frame.shape[0]
    cdef int L = _tsm_lag(frame, rate, voiced, force)
    cdef cnp.ndarray[sample_t, ndim=1] out
    cdef int i
    if L == 0:
        return np.asarray(frame).copy()
    out = np.empty(n - L, dtype=np.int16)
    _crossfade(out, 0, frame, 0, L, L)        # x[0:L] out, x[L:2L] in
    for i in range(2 * L, n):
        out[i - L] = frame[i]
    return out


def stretch(const sample_t[:] frame, int rate, bint voiced=True, bint force=False):
    """The frame with one period repeated (longer), or a copy of it unchanged."""
    cdef int n = frame.shape[0]
    cdef int L = _tsm_lag(frame, rate, voiced, force)
    cdef cnp.ndarray[sample_t, ndim=1] out
    cdef int i
    if L == 0:
        return np.asarray(frame).copy()
    out = np.empty(n + L, dtype=np.int16)
    for i in range(L):
        out[i] = frame[i]
    _crossfade(out, L, frame, L, 0, L)        # x[L:2L] out, x[0:L] back in
    for i in range(L, n):
        out[L + i] = frame[i]
    return out


cdef class WaveformPlc:
    """Concealment for one decoder: feed every good frame, ask for lost ones."""
    cdef readonly int rate
    cdef int hist_len
    cdef double[:] hist           # the last samples played, oldest first
    cdef double[:] cycle          # one pitch period, seam cross-faded, while concealing
    cdef int period
    cdef int phase
    cdef readonly int lost_samples   # into the current loss (0: not concealing)
    cdef readonly long concealed      # samples concealed in all

    def __cinit__(self, int rate):
        if rate < 4000:
            raise ValueError(f"concealment needs a rate of 4000 Hz or more, not {rate}")
        self.rate = rate
        self.hist_len = 2 * <int>(MAX_PLC_PITCH_S * rate) + <int>(0.02 * rate)
        self.hist = np.zeros(self.hist_len, dtype=np.float64)
        self.cycle = np.zeros(<int>(MAX_PLC_PITCH_S * rate) + 1, dtype=np.float64)
        self.period = 0
        self.phase = 0
        self.lost_samples = 0
        self.concealed = 0

    cdef void _remember(self, const sample_t[:] x) noexcept:
        cdef int n = x.shape[0]
        cdef int keep, i
        if n >= self.hist_len:
            for i in range(self.hist_len):
                self.hist[i] = x[n - self.hist_len + i]
            return
        keep = self.hist_len - n
        for i in range(keep):
            self.hist[i] = self.hist[i + n]
        for i in range(n):
            self.hist[keep + i] = x[i]

    cdef void _start_loss(self) noexcept:
        # The period: the lag whose last period best matches the one before it.
        cdef int lo = <int>(MIN_PITCH_S * self.rate)
        cdef int hi = <int>(MAX_PLC_PITCH_S * self.rate)
        cdef int L, i, best_lag = hi, q
        cdef int H = self.hist_len
        cdef double c, e1, e2, corr, best = -2.0, w
        for L in range(lo, hi + 1):
            c = 0.0
            e1 = 0.0
            e2 = 0.0
            for i in range(L):
                c += self.hist[H - L + i] * self.hist[H - 2 * L + i]
                e1 += self.hist[H - L + i] * self.hist[H - L + i]
                e2 += self.hist[H - 2 * L + i] * self.hist[H - 2 * L + i]
            corr = c / sqrt(e1 * e2) if e1 > 0.0 and e2 > 0.0 else 0.0
            if corr > best:
                best = corr
                best_lag = L
        self.period = best_lag
        # The cycle's end blends into what came just before its start, so that
        # repeating it leaves no step at the seam.
        q = best_lag // 4
        for i in range(best_lag):
            self.cycle[i] = self.hist[H - best_lag + i]
        for i in range(best_lag - q, best_lag):
            w = (i - (best_lag - q) + 0.5) / q
            self.cycle[i] = self.cycle[i] * (1.0 - w) + self.hist[H - 2 * best_lag + i] * w
        self.phase = 0

    cdef double _gain(self, int lost) noexcept:
        # Full level for 10 ms, then down by 0.2 per 10 ms: silent at 60 ms.
        cdef double ms = lost * 1000.0 / self.rate
        if ms <= 10.0:
            return 1.0
        if ms >= 60.0:
            return 0.0
        return 1.0 - 0.02 * (ms - 10.0)

    cdef double _next(self) noexcept:
        cdef double v = self.cycle[self.phase] * self._gain(self.lost_samples)
        self.phase += 1
        if self.phase >= self.period:
            self.phase = 0
        self.lost_samples += 1
        return v

    def conceal(self, int samples):
        """``samples`` samples standing in for lost audio."""
        cdef cnp.ndarray[sample_t, ndim=1] out = np.empty(samples, dtype=np.int16)
        cdef int i
        if samples < 0:
            raise ValueError("a negative number of samples")
        if self.lost_samples == 0:
            self._start_loss()
        for i in range(samples):
            out[i] = _clip(self._next())
        self.concealed += samples
        return out

    def good(self, const sample_t[:] frame):
        """A decoded frame as it should be played: after a loss, faded in from the
        concealment over 5 ms."""
        cdef int n = frame.shape[0]
        cdef int m, i
        cdef double w
        cdef cnp.ndarray[sample_t, ndim=1] out
        if self.lost_samples == 0:
            self._remember(frame)
            return np.asarray(frame)
        out = np.asarray(frame).copy()
        m = min(n, self.rate // 200)
        for i in range(m):
            w = (i + 0.5) / m
            out[i] = _clip(self._next() * (1.0 - w) + frame[i] * w)
        self.lost_samples = 0
        self._remember(out)
        return out

    def reset(self) -> None:
        self.hist[:] = 0.0
        self.lost_samples = 0
