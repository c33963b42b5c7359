"""Echo cancellation on a simulated room: libspeexdsp's canceller and preprocessor.

The echo path (bulk delay, decaying room response, gain, noise) is the one
the simulated sound card uses; the far end is speech synthesized here by
espeak-ng. Figures for the README come from ``scripts/bench echo``.
"""
from __future__ import annotations


import numpy as np
import pytest
from conftest import need_espeak

from intercom.cext.echo import EchoCanceller, MicPath, Preprocessor
from intercom.media.devices import SimulatedSoundCard
from intercom.media.echo import EchoControl, EchoPath, EchoPathSpec, measure
from intercom.media.signal import synthesized_speech, tone, tone_dbfs

RATE = 16000
FRAME = 320


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    need_espeak()
    one = synthesized_speech(RATE)
    return np.concatenate([one, one])                     # about 17 s


def test_echo_path_delays_and_scales_an_impulse() -> None:
    spec = EchoPathSpec(delay_ms=25, room_ms=50, gain_db=-6, noise_dbfs=-130)
    path = EchoPath(spec, 8000)
    impulse = np.zeros(160, dtype=np.int16)
    impulse[0] = 10000
    heard = np.concatenate([path.echo(impulse)] + [path.echo(np.zeros(160, dtype=np.int16))
                                                  for _ in range(4)])
    assert np.all(heard[:200] == 0)                       # nothing before 25 ms
    assert heard[200] != 0
    energy = float(np.sum(heard ** 2)) / 10000 ** 2
    assert 10 * np.log10(energy) == pytest.approx(-6, abs=0.1)


def test_simulated_card_hears_its_own_speaker_a_period_and_the_delay_later() -> None:
    card = SimulatedSoundCard(8000, 160, mic_tone_hz=440, echo=EchoPathSpec(
        delay_ms=20, room_ms=1, gain_db=0, noise_dbfs=-130))
    card.open()
    try:
        card.read()
        card.write(tone(1000, 0.02, 8000, amplitude=0.5))
        first = card.read()                              # our period + 20 ms: not yet
        card.write(np.zeros(160, dtype=np.int16))
        second = card.read()
    finally:
        card.close()
    assert tone_dbfs(second, 1000, 8000) > -12           # 0 dB echo of a -9 dBFS tone
    assert tone_dbfs(first, 1000, 8000) < tone_dbfs(second, 1000, 8000) - 30


@pytest.mark.parametrize("delay, room", [(20, 100), (60, 150), (300, 250)])
def test_cancels_speech_echo_by_30_db(speech: np.ndarray, delay: int, room: int) -> None:
    result = measure(EchoPathSpec(delay_ms=delay, room_ms=room), speech, RATE, FRAME,
                     tail_ms=max(200, room + 50))
    assert result.erle_db >= 30, result
    assert result.converged_s is not None and result.converged_s < 2.0, result


def test_a_canceller_kept_from_the_last_call_is_ready_at_once(speech: np.ndarray) -> None:
    spec = EchoPathSpec(delay_ms=60, room_ms=150)
    control = EchoControl(RATE, FRAME, 200, spec.delay_ms)
    cold = measure(spec, speech, RATE, FRAME, control=control)
    control.restart()
    warm = measure(spec, speech, RATE, FRAME, control=control)
    assert cold.converged_s is not None and warm.converged_s is not None
    assert warm.converged_s < 0.2 < cold.converged_s
    assert warm.erle_db >= cold.erle_db - 1


def test_the_visitor_is_still_heard_during_double_talk(speech: np.ndarray) -> None:
    import pesq
    spec = EchoPathSpec(delay_ms=60, room_ms=150)
    near = synthesized_speech(RATE, "Hello, I am at the front door with your parcel.", "en+f3")
    quiet = np.zeros(len(speech), dtype=np.int16)
    start = 8 * RATE                                     # after the canceller has converged
    quiet[start:start + len(near)] = near // 2
    path = EchoPath(spec, RATE)
    control = EchoControl(RATE, FRAME, 200, spec.delay_ms)
    out = []
    for i in range(0, len(speech) - FRAME + 1, FRAME):
        mic = path.microphone(speech[i:i + FRAME], quiet[i:i + FRAME])
        control.played(speech[i:i + FRAME])
        out.append(control.clean(mic))
    cleaned = np.concatenate(out)[start:start + len(near)]
    reference = quiet[start:start + len(cleaned)]
    score = pesq.pesq(RATE, reference, cleaned, "wb")
    assert score >= 1.8, f"near-end speech during double talk: PESQ {score:.2f}"


def test_wrong_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        EchoCanceller(160, 80, 8000)
    canceller = EchoCanceller(160, 1600, 8000)
    with pytest.raises(ValueError):
        canceller.process(np.zeros(100, dtype=np.int16), np.zeros(160, dtype=np.int16))
    with pytest.raises(ValueError):
        Preprocessor(320, 16000).use_echo_state(canceller)
    with pytest.raises(ValueError):
        MicPath(48000, 16000, 320, canceller=canceller)
    with pytest.raises(ValueError):
        MicPath(48000, 16000, 320).process(np.zeros(48001, dtype=np.int16),
                                           np.zeros(0, dtype=np.int16))


def test_the_calls_mic_path_in_c_does_what_the_frame_by_frame_steps_do(
        speech: np.ndarray) -> None:
    """MicPath (a card period at a time, in C) against EchoControl.played/clean (a
    frame at a time): the same echo path, the same output, sample for sample."""
    spec = EchoPathSpec(delay_ms=60, room_ms=150)
    reference = EchoControl(RATE, FRAME, 200, spec.delay_ms)
    fast = EchoControl(RATE, FRAME, 200, spec.delay_ms).mic_path(RATE)
    path = EchoPath(spec, RATE)
    period = RATE // 100                                 # a card with 10 ms periods
    expected, got, pending = [], [], []
    for i in range(0, 8 * RATE, period):
        played = speech[i:i + period]
        mic = path.microphone(played)
        got += fast.process(mic, played)
        pending.append(mic)
        if (i + period) % FRAME == 0:                    # a whole frame: the slow way
            reference.played(speech[i + period - FRAME:i + period])
            expected.append(reference.clean(np.concatenate(pending)))
            pending = []
    assert len(got) == len(expected) == 8 * RATE // FRAME
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    energy = float(np.sum(np.concatenate(got[-100:]).astype(np.float64) ** 2))
    assert energy < 1e-3 * float(np.sum(speech[6 * RATE:8 * RATE].astype(np.float64) ** 2))


def test_the_mic_path_resamples_from_the_card_and_applies_the_gain() -> None:
    path = MicPath(48000, 16000, 320, mic_gain=4.0)
    mic = tone(1000, 1.0, 48000, amplitude=0.5)          # 4x: clipped, still 1 kHz
    frames = []
    for i in range(0, 48000, 480):                       # 10 ms periods
        frames += path.process(mic[i:i + 480], np.zeros(480, dtype=np.int16))
    assert len(frames) == 50 and all(len(f) == 320 for f in frames)
    out = np.concatenate(frames)[1600:].astype(np.float64)
    assert out.max() == 32767 and out.min() == -32768
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16000 / len(out) - 1000) < 5
    quiet = MicPath(48000, 16000, 320, mic_gain=0.5)
    half = np.concatenate([f for i in range(0, 48000, 960)
                           for f in quiet.process(mic[i:i + 960], mic[:0])])
    assert 0.45 < np.abs(half[1600:]).max() / 16384 < 0.55
