"""Echo cancellation on a simulated room: libspeexdsp's canceller and preprocessor.

The echo path (bulk delay, decaying room response, gain, noise) is the one
the simulated sound card uses; the far end is speech synthesized here by
espeak-ng. Figures for the README come from ``scripts/bench echo``.
"""
from __future__ import annotations


import numpy as np
import pytest
from conftest import need_espeak

from intercom.cext.echo import EchoCanceller, Preprocessor
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
