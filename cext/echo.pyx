# cython: language_level=3
"""Echo cancellation and clean-up of the microphone with libspeexdsp.

``EchoCanceller`` is speexdsp's multidelay adaptive filter (MDF): each frame
of the microphone is cleaned of what the speaker played, given as the
reference frame that was played at the same moment (the caller aligns the
bulk delay; the filter covers the room's tail). ``Preprocessor`` runs after
it on the same frame: noise suppression, AGC, and residual echo suppression
that uses the canceller's state, so the two share one view of the echo.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int16_t, int32_t, uint32_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memmove, memset
from libspeexdsp cimport (
    SpeexEchoState, SPEEX_ECHO_SET_SAMPLING_RATE, speex_echo_state_init,
    speex_echo_state_destroy, speex_echo_cancellation, speex_echo_state_reset, speex_echo_ctl,
    SpeexPreprocessState, SPEEX_PREPROCESS_SET_DENOISE, SPEEX_PREPROCESS_SET_AGC,
    SPEEX_PREPROCESS_SET_AGC_LEVEL, SPEEX_PREPROCESS_SET_NOISE_SUPPRESS,
    SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE,
    SPEEX_PREPROCESS_SET_ECHO_STATE, SPEEX_PREPROCESS_SET_AGC_MAX_GAIN,
    speex_preprocess_state_init, speex_preprocess_state_destroy, speex_preprocess_run,
    speex_preprocess_ctl,
)
from intercom.cext.resample cimport Resampler, check_speex

from intercom.cext.resample import SpeexError

cnp.import_array()


cdef class EchoCanceller:
    cdef SpeexEchoState* _state
    cdef readonly int frame_size
    cdef readonly int filter_length
    cdef readonly int rate

    def __cinit__(self, int frame_size, int filter_length, int rate):
        if frame_size <= 0 or filter_length < frame_size or rate <= 0:
            raise ValueError(f"bad echo canceller size: frame {frame_size}, "
                             f"filter {filter_length}, rate {rate}")
        self._state = speex_echo_state_init(frame_size, filter_length)
        if self._state == NULL:
            raise SpeexError("libspeexdsp: cannot create the echo canceller")
        self.frame_size, self.filter_length, self.rate = frame_size, filter_length, rate
        cdef int r = rate
        check_speex(speex_echo_ctl(self._state, SPEEX_ECHO_SET_SAMPLING_RATE, &r), "set rate")

    def __dealloc__(self):
        if self._state != NULL:
            speex_echo_state_destroy(self._state)

    def process(self, const int16_t[::1] mic, const int16_t[::1] played):
        """The microphone frame with the echo of ``played`` taken out."""
        if mic.shape[0] != self.frame_size or played.shape[0] != self.frame_size:
            raise ValueError(f"echo canceller frames must be {self.frame_size} samples")
        cdef cnp.ndarray out = np.empty(self.frame_size, dtype=np.int16)
        cdef int16_t[::1] dst = out
        with nogil:
            speex_echo_cancellation(self._state, &mic[0], &played[0], &dst[0])
        return out

    def reset(self):
        speex_echo_state_reset(self._state)


cdef class Preprocessor:
    cdef SpeexPreprocessState* _state
    cdef readonly int frame_size
    cdef object _echo          # keeps the canceller alive while we point at its state

    def __cinit__(self, int frame_size, int rate):
        if frame_size <= 0 or rate <= 0:
            raise ValueError(f"bad preprocessor size: frame {frame_size}, rate {rate}")
        self._state = speex_preprocess_state_init(frame_size, rate)
        if self._state == NULL:
            raise SpeexError("libspeexdsp: cannot create the preprocessor")
        self.frame_size = frame_size

    def __dealloc__(self):
        if self._state != NULL:
            speex_preprocess_state_destroy(self._state)

    cdef _set_int(self, int request, int value, str what):
        cdef int v = value
        check_speex(speex_preprocess_ctl(self._state, request, &v), what)

    def configure(self, bint denoise=True, int noise_suppress_db=-15, bint agc=False,
                  float agc_level=8000.0, int agc_max_gain_db=20,
                  int echo_suppress_db=-40, int echo_suppress_active_db=-15):
        """Switch the stages on or off; suppression in dB (negative), AGC level in
        int16 RMS units."""
        self._set_int(SPEEX_PREPROCESS_SET_DENOISE, 1 if denoise else 0, "denoise")
        self._set_int(SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, noise_suppress_db, "noise suppress")
        self._set_int(SPEEX_PREPROCESS_SET_AGC, 1 if agc else 0, "AGC")
        cdef float level = agc_level
        if agc:
            check_speex(speex_preprocess_ctl(self._state, SPEEX_PREPROCESS_SET_AGC_LEVEL,
                                             &level), "AGC level")
            self._set_int(SPEEX_PREPROCESS_SET_AGC_MAX_GAIN, agc_max_gain_db, "AGC max gain")
        self._set_int(SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, echo_suppress_db, "echo suppress")
        self._set_int(SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, echo_suppress_active_db,
                      "echo suppress (active)")

    def use_echo_state(self, EchoCanceller canceller):
        """Residual echo suppression from the canceller's estimate of the echo."""
        if canceller.frame_size != self.frame_size:
            raise ValueError("the canceller and preprocessor frame sizes differ")
        check_speex(speex_preprocess_ctl(self._state, SPEEX_PREPROCESS_SET_ECHO_STATE,
                                         canceller._state), "echo state")
        self._echo = canceller

    def process(self, int16_t[::1] frame):
        """Clean ``frame`` in place; returns True when it holds speech (VAD off: always)."""
        if frame.shape[0] != self.frame_size:
            raise ValueError(f"preprocessor frames must be {self.frame_size} samples")
        cdef int speech
        with nogil:
            speech = speex_preprocess_run(self._state, &frame[0])
        return bool(speech)


cdef inline int16_t _clip(double x) noexcept nogil:
    if x > 32767.0:
        return 32767
    if x < -32768.0:
        return -32768
    return <int16_t>x


cdef class MicPath:
    """The microphone side of a call, one sound-card period at a time, in C.

    Each period the microphone's samples (times the microphone gain) and what
    the speaker played in the same period are brought to the codec's rate by
    libspeexdsp's resampler at its VoIP quality, and cut into codec frames.
    The reference runs ``lag`` samples behind (the playback-to-capture delay
    the canceller does not have to learn). Each microphone frame goes through
    the echo canceller with its reference frame and then the preprocessor,
    and comes out ready to encode. Without a canceller the frames come out as
    they were recorded (the preprocessor, if given, still runs).
    """
    cdef Resampler _mic_rs
    cdef Resampler _ref_rs
    cdef int16_t* _mic
    cdef int16_t* _ref
    cdef int16_t* _scratch
    cdef int _mic_n, _ref_n, _cap, _scratch_cap
    cdef readonly int device_rate, rate, frame, lag
    cdef double _gain
    cdef EchoCanceller _canceller
    cdef Preprocessor _pre

    def __cinit__(self, int device_rate, int rate, int frame, double mic_gain=1.0,
                  EchoCanceller canceller=None, Preprocessor preprocessor=None, int lag=0,
                  int quality=3):
        if device_rate <= 0 or rate <= 0 or frame <= 0 or lag < 0:
            raise ValueError("rates and frame must be positive, lag not negative")
        if canceller is not None and canceller.frame_size != frame:
            raise ValueError(f"echo canceller frames are {canceller.frame_size} samples, "
                             f"the codec's {frame}")
        if preprocessor is not None and preprocessor.frame_size != frame:
            raise ValueError(f"preprocessor frames are {preprocessor.frame_size} samples, "
                             f"the codec's {frame}")
        self.device_rate, self.rate, self.frame, self.lag = device_rate, rate, frame, lag
        self._gain = mic_gain
        self._canceller, self._pre = canceller, preprocessor
        # room for a second of audio beyond the lag: periods are 10-20 ms
        self._cap = lag + rate + 4 * frame
        self._scratch_cap = device_rate
        self._mic = <int16_t*>calloc(self._cap, sizeof(int16_t))
        self._ref = <int16_t*>calloc(self._cap, sizeof(int16_t))
        self._scratch = <int16_t*>calloc(self._scratch_cap, sizeof(int16_t))
        if self._mic == NULL or self._ref == NULL or self._scratch == NULL:
            raise MemoryError()
        self._ref_n = lag                       # the reference starts with the lag's silence
        if device_rate != rate:
            self._mic_rs = Resampler(device_rate, rate, quality)
            if canceller is not None:
                self._ref_rs = Resampler(device_rate, rate, quality)

    def __dealloc__(self):
        free(self._mic)
        free(self._ref)
        free(self._scratch)

    cdef int _append(self, Resampler rs, int16_t* buf, int* n,
                     const int16_t* src, uint32_t count) except -1 nogil:
        # Add ``count`` device-rate samples to ``buf`` at the codec's rate; when
        # full, the oldest give way (the other side stopped taking frames).
        cdef uint32_t in_len = count, out_len
        cdef int room = self._cap - n[0]
        if room < <int>count + 16:
            memmove(buf, buf + (n[0] - self._cap // 2), (self._cap // 2) * sizeof(int16_t))
            n[0] = self._cap // 2
            room = self._cap - n[0]
        if rs is None:
            memcpy(buf + n[0], src, count * sizeof(int16_t))
            n[0] += count
            return 0
        out_len = room
        rs.convert(src, &in_len, buf + n[0], &out_len)
        n[0] += out_len
        return 0

    def process(self, const int16_t[::1] mic, const int16_t[::1] played):
        """One period: the microphone's samples and the speaker's, at the card's
        rate. Returns the codec frames completed, cleaned, ready to encode."""
        cdef int count = mic.shape[0], i, k, frames
        cdef int16_t* src
        cdef cnp.ndarray out
        cdef int16_t[::1] dst
        cdef list result = []
        if count > self._scratch_cap or played.shape[0] > self._scratch_cap:
            raise ValueError(f"a period of at most {self._scratch_cap} samples")
        with nogil:
            if count:
                src = <int16_t*>&mic[0]
                if self._gain != 1.0:
                    for i in range(count):
                        self._scratch[i] = _clip(mic[i] * self._gain)
                    src = self._scratch
                self._append(self._mic_rs, self._mic, &self._mic_n, src, count)
            if self._canceller is not None and played.shape[0]:
                self._append(self._ref_rs, self._ref, &self._ref_n, &played[0],
                             played.shape[0])
        frames = self._mic_n // self.frame
        for k in range(frames):
            out = np.empty(self.frame, dtype=np.int16)
            dst = out
            with nogil:
                if self._canceller is not None:
                    if self._ref_n < self.frame:        # nothing played yet: silence
                        memset(self._ref + self._ref_n, 0,
                               (self.frame - self._ref_n) * sizeof(int16_t))
                        self._ref_n = self.frame
                    speex_echo_cancellation(self._canceller._state, self._mic + k * self.frame,
                                            self._ref, &dst[0])
                    self._ref_n -= self.frame
                    memmove(self._ref, self._ref + self.frame, self._ref_n * sizeof(int16_t))
                else:
                    memcpy(&dst[0], self._mic + k * self.frame, self.frame * sizeof(int16_t))
                if self._pre is not None:
                    speex_preprocess_run(self._pre._state, &dst[0])
            result.append(out)
        if frames:
            self._mic_n -= frames * self.frame
            memmove(self._mic, self._mic + frames * self.frame, self._mic_n * sizeof(int16_t))
        return result
