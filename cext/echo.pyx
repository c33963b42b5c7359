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
from libc.stdint cimport int16_t, int32_t
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

cnp.import_array()


class SpeexError(RuntimeError):
    """libspeexdsp refused a setting or failed to allocate its state."""


cdef int _check(int err, str what) except -1:
    # Every libspeexdsp control call's return code passes through here.
    if err != 0:
        raise SpeexError(f"libspeexdsp: {what} failed ({err})")
    return 0


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
        _check(speex_echo_ctl(self._state, SPEEX_ECHO_SET_SAMPLING_RATE, &r), "set rate")

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
        _check(speex_preprocess_ctl(self._state, request, &v), what)

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
            _check(speex_preprocess_ctl(self._state, SPEEX_PREPROCESS_SET_AGC_LEVEL, &level),
                   "AGC level")
            self._set_int(SPEEX_PREPROCESS_SET_AGC_MAX_GAIN, agc_max_gain_db, "AGC max gain")
        self._set_int(SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, echo_suppress_db, "echo suppress")
        self._set_int(SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, echo_suppress_active_db,
                      "echo suppress (active)")

    def use_echo_state(self, EchoCanceller canceller):
        """Residual echo suppression from the canceller's estimate of the echo."""
        if canceller.frame_size != self.frame_size:
            raise ValueError("the canceller and preprocessor frame sizes differ")
        _check(speex_preprocess_ctl(self._state, SPEEX_PREPROCESS_SET_ECHO_STATE,
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
