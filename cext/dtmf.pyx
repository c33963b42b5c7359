# cython: language_level=3
"""In-band DTMF detection with Goertzel filters, within ITU-T Q.24's limits.

Audio is read in blocks of 12.8 ms every 6.4 ms. A block is a hit for a digit when
one low-group and one high-group tone stand out (each 8 dB above the rest
of its group), together carry most of the block's energy, are loud enough,
and their levels differ by no more than the allowed twist (high group up to
8 dB weaker, or 4 dB stronger). Each tone must also be closer to its nominal
frequency than to 3.5 % off it, so off-frequency tones are refused
(Q.24: accept +-1.5 %, reject +-3.5 %). Blocks straddle the tone's edges,
so its duration is measured apart: over a run of hits, the 4 ms pieces
whose energy is within 6 dB of the strongest. A digit needs 32 ms of tone
(Q.24 asks for tones of 40 ms to be detected and of 23 ms to be refused).
Two quiet blocks end it. Each keypress gives one digit.

It exists for phones that only send tones in the audio. Door codes never
come from it unless the configuration says so.
"""
import numpy as np
from libc.math cimport cos, M_PI

cdef double[4] ROWS = [697.0, 770.0, 852.0, 941.0]
cdef double[4] COLS = [1209.0, 1336.0, 1477.0, 1633.0]
KEYS = ("123A", "456B", "789C", "*0#D")
cdef double OFF = 0.035            # Q.24 reject deviation
cdef double PEAK_RATIO = 6.3       # 8 dB above the others in the group
cdef double NORMAL_TWIST = 7.1     # high group up to 8 dB (+0.5) below the low group
cdef double REVERSE_TWIST = 2.8    # or up to 4 dB (+0.5) above it
cdef double IN_BAND = 0.4          # the two tones carry this share of the energy
cdef double MIN_TONE_MS = 32.0     # between Q.24's 23 ms (refuse) and 40 ms (accept)
cdef double PIECE_MS = 4.0


cdef double _goertzel(const short[::1] x, Py_ssize_t start, Py_ssize_t n, double freq,
                      double rate) noexcept nogil:
    cdef double coeff = 2.0 * cos(2.0 * M_PI * freq / rate)
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0
    cdef Py_ssize_t i
    for i in range(start, start + n):
        s0 = x[i] + coeff * s1 - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


cdef class DtmfDetector:
    cdef readonly int rate
    cdef readonly int block
    cdef readonly int hop
    cdef double min_power              # per-tone Goertzel power at the minimum level
    cdef object _pending
    cdef str _last_hit
    cdef Py_ssize_t _run_start         # where the current run of hits began (absolute sample)
    cdef object _history               # recent samples, for measuring a tone's duration
    cdef Py_ssize_t _history_start     # absolute index of _history[0]
    cdef int _misses
    cdef bint _in_digit

    def __init__(self, int rate, double min_dbfs=-36.0):
        """``min_dbfs``: the quietest tone (RMS, each of the two) to accept."""
        if rate < 8000:
            raise ValueError("DTMF detection needs at least 8 kHz")
        self.rate = rate
        self.block = rate * 128 // 10000           # 12.8 ms: 102 samples at 8 kHz
        self.hop = self.block // 2
        amplitude = 32768.0 * 10 ** (min_dbfs / 20) * 2 ** 0.5
        self.min_power = (amplitude * self.block / 2) ** 2
        self._pending = np.zeros(0, dtype=np.int16)
        self._last_hit = ""
        self._run_start = -1
        self._history = np.zeros(0, dtype=np.int16)
        self._history_start = 0
        self._misses = 0
        self._in_digit = False

    cdef tuple _classify(self, const short[::1] x, Py_ssize_t start):
        cdef Py_ssize_t n = self.block
        cdef double rate = self.rate
        cdef double rows[4]
        cdef double cols[4]
        cdef int i, r = 0, c = 0
        cdef double energy = 0.0
        for i in range(start, start + n):
            energy += <double>x[i] * x[i]
        if energy <= 0:
            return "", 0.0
        for i in range(4):
            rows[i] = _goertzel(x, start, n, ROWS[i], rate)
            cols[i] = _goertzel(x, start, n, COLS[i], rate)
            if rows[i] > rows[r]:
                r = i
            if cols[i] > cols[c]:
                c = i
        if rows[r] < self.min_power or cols[c] < self.min_power:
            return "", 0.0
        if cols[c] > rows[r] * REVERSE_TWIST or cols[c] * NORMAL_TWIST < rows[r]:
            return "", 0.0
        for i in range(4):
            if (i != r and rows[i] * PEAK_RATIO > rows[r]) or \
                    (i != c and cols[i] * PEAK_RATIO > cols[c]):
                return "", 0.0
        # A tone's Goertzel power is about (A n / 2)^2 and its energy A^2 n / 2.
        if (rows[r] + cols[c]) * 2.0 / n < IN_BAND * energy:
            return "", 0.0
        for freq, power in ((ROWS[r], rows[r]), (COLS[c], cols[c])):
            if _goertzel(x, start, n, freq * (1 + OFF), rate) > power or \
                    _goertzel(x, start, n, freq * (1 - OFF), rate) > power:
                return "", 0.0
        return KEYS[r][c], rows[r] + cols[c]

    def _tone_ms(self, Py_ssize_t start, Py_ssize_t end):
        """How long the tone lasted within samples [start, end)."""
        x = self._history[start - self._history_start:end - self._history_start]
        piece = max(1, int(self.rate * PIECE_MS / 1000))
        count = len(x) // piece
        if count == 0:
            return 0.0
        energy = (x[:count * piece].astype(np.float64) ** 2).reshape(count, piece).sum(axis=1)
        return float(np.count_nonzero(energy >= 0.25 * energy.max())) * PIECE_MS

    def feed(self, pcm):
        """Digits that started in this audio (each keypress once)."""
        samples = np.asarray(pcm, dtype=np.int16)
        data = np.concatenate([self._pending, samples])
        base = self._history_start + len(self._history) - len(self._pending)
        self._history = np.concatenate([self._history, samples])
        cdef const short[::1] buf = data
        cdef list digits = []
        cdef Py_ssize_t start = 0
        while start + self.block <= buf.shape[0]:
            hit, power = self._classify(buf, start)
            if not hit or hit != self._last_hit:
                self._run_start = base + start if hit else -1
            self._last_hit = hit
            if hit:
                self._misses = 0
                end = base + start + self.block
                if not self._in_digit and \
                        self._tone_ms(self._run_start, end) >= MIN_TONE_MS:
                    self._in_digit = True
                    digits.append(hit)
            else:
                self._misses += 1
                if self._misses >= 2:
                    self._in_digit = False
            start += self.hop
        self._pending = data[start:].copy()
        # Keep what a run of hits may still need (a run longer than that is long enough).
        keep = max(len(self._pending), int(self.rate * 0.2))
        drop = max(0, len(self._history) - keep)
        if self._run_start >= 0 and not self._in_digit:
            drop = min(drop, max(0, self._run_start - self._history_start))
        drop = max(drop, len(self._history) - self.rate)        # never more than 1 s
        if self._run_start >= 0:
            self._run_start = max(self._run_start, self._history_start + drop)
        self._history = self._history[drop:]
        self._history_start += drop
        return digits
