"""The in-band DTMF detector against ITU-T Q.24's limits, and against speech."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from conftest import need_espeak

from intercom.cext.dtmf import DtmfDetector

ROWS = {"1": 697, "2": 697, "3": 697, "A": 697, "4": 770, "5": 770, "6": 770, "B": 770,
        "7": 852, "8": 852, "9": 852, "C": 852, "*": 941, "0": 941, "#": 941, "D": 941}
COLS = {"1": 1209, "4": 1209, "7": 1209, "*": 1209, "2": 1336, "5": 1336, "8": 1336,
        "0": 1336, "3": 1477, "6": 1477, "9": 1477, "#": 1477, "A": 1633, "B": 1633,
        "C": 1633, "D": 1633}


def key(digit: str, ms: float, rate: int = 8000, dbfs: float = -10.0, deviation: float = 0.0,
        twist_db: float = 0.0) -> np.ndarray:
    """One keypress: low and high tone, each at ``dbfs`` (high shifted by twist_db)."""
    t = np.arange(int(ms * rate / 1000)) / rate
    a = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)
    low = a * np.sin(2 * np.pi * ROWS[digit] * (1 + deviation) * t)
    high = a * 10 ** (twist_db / 20) * np.sin(2 * np.pi * COLS[digit] * (1 + deviation) * t)
    pcm: np.ndarray = np.clip(low + high, -32768, 32767).astype(np.int16)
    return pcm


def gap(ms: float, rate: int = 8000) -> np.ndarray:
    return np.zeros(int(ms * rate / 1000), dtype=np.int16)


def detect(signal: np.ndarray, rate: int = 8000, chunk: int = 160) -> str:
    detector = DtmfDetector(rate)
    return "".join("".join(detector.feed(signal[i:i + chunk]))
                   for i in range(0, len(signal), chunk))


@pytest.mark.parametrize("rate", [8000, 16000])
def test_every_key_once_per_press(rate: int) -> None:
    keys = "123A456B789C*0#D"
    signal = np.concatenate([np.concatenate([key(k, 60, rate), gap(60, rate)]) for k in keys])
    assert detect(signal, rate, rate // 50) == keys
    assert detect(np.concatenate([key("5", 800, rate), gap(60, rate)]), rate) == "5"


@pytest.mark.parametrize("offset_ms", [0.0, 3.1, 6.4, 9.7, 12.0])     # against the blocks
def test_q24_duration_40_ms_accepted_23_ms_refused(offset_ms: float) -> None:
    assert detect(np.concatenate([gap(40 + offset_ms), key("7", 40), gap(60)])) == "7"
    assert detect(np.concatenate([gap(40 + offset_ms), key("7", 23), gap(60)])) == ""


@pytest.mark.parametrize("deviation, heard", [(0.015, "9"), (-0.015, "9"),
                                              (0.035, ""), (-0.035, "")])
def test_q24_frequency_tolerance(deviation: float, heard: str) -> None:
    assert detect(np.concatenate([key("9", 80, deviation=deviation), gap(60)])) == heard


@pytest.mark.parametrize("twist, heard", [(-8.0, "#"), (4.0, "#"), (-12.0, ""), (7.0, "")])
def test_twist_limits(twist: float, heard: str) -> None:
    assert detect(np.concatenate([key("#", 80, dbfs=-16, twist_db=twist), gap(60)])) == heard


def test_quiet_tones_and_tones_in_noise() -> None:
    assert detect(np.concatenate([key("1", 80, dbfs=-45), gap(60)])) == ""
    rng = np.random.default_rng(3)
    noisy = key("1", 80, dbfs=-20) + rng.normal(0, 32768 * 10 ** (-40 / 20), 640)
    assert detect(np.concatenate([noisy.astype(np.int16), gap(60)])) == "1"


def test_speech_does_not_key_a_digit() -> None:
    need_espeak()
    from intercom.media.signal import synthesized_speech
    speech = np.concatenate([synthesized_speech(8000, voice=v) for v in ("en", "en+f3", "de")])
    assert detect(speech) == ""                           # talk-off


def test_memory_stays_bounded_under_a_held_key_and_noise() -> None:
    detector = DtmfDetector(8000)
    held = key("0", 10_000)
    digits = []
    for i in range(0, len(held), 160):
        digits += detector.feed(held[i:i + 160])
    assert digits == ["0"]
    rng = np.random.default_rng(1)
    tracemalloc.start()
    for _ in range(500):                                  # 10 s of loud noise
        assert detector.feed(rng.integers(-20000, 20000, 160).astype(np.int16)) == []
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 200_000                                 # at most a second of history
