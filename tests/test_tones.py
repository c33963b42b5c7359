"""Generated tones: frequencies, cadences and edges, measured on the samples."""
from __future__ import annotations

import numpy as np
import pytest

from intercom.config import SCHEMA
from intercom.media.signal import rms_dbfs, tone_dbfs
from intercom.media.tones import (BUSY, CALL_ENDING, COUNTRIES, DOOR_OPENED, LEVEL_DBFS,
                                  RINGBACK, WRONG_CODE, ToneSource, mix)

RATE = 16000


def render(source: ToneSource, seconds: float, frame: int = 320) -> np.ndarray:
    frames = [source.read(frame) for _ in range(round(seconds * RATE / frame))]
    return np.concatenate(frames)


def on_off(pcm: np.ndarray, freq: float, step: float = 0.05) -> list[bool]:
    """Per ``step`` seconds: is ``freq`` there (within 6 dB of the tone level)?"""
    n = round(step * RATE)
    return [tone_dbfs(pcm[i:i + n], freq, RATE) > LEVEL_DBFS - 9
            for i in range(0, len(pcm) - n + 1, n)]


def test_us_ringback_is_440_and_480_hz_two_seconds_on_four_off_repeating() -> None:
    pcm = render(ToneSource(RINGBACK["us"], RATE), 12.0)
    # two frequencies at half amplitude each: each 6 dB under the tone's level
    on = [tone_dbfs(pcm[i:i + 800], 440, RATE) > LEVEL_DBFS - 12 and
          tone_dbfs(pcm[i:i + 800], 480, RATE) > LEVEL_DBFS - 12
          for i in range(0, len(pcm) - 799, 800)]
    assert on == ([True] * 40 + [False] * 80) * 2
    assert rms_dbfs(pcm[2 * RATE + 400:6 * RATE - 400]) == -120.0     # silent between


@pytest.mark.parametrize("country, freq, seconds", [("de", 425, 0.48), ("gb", 400, 0.375),
                                                    ("fr", 440, 0.5)])
def test_busy_tones_follow_the_country(country: str, freq: float, seconds: float) -> None:
    pcm = render(ToneSource(BUSY[country], RATE), 4 * seconds, frame=160)
    n = round(seconds * RATE)
    assert tone_dbfs(pcm[100:n - 100], freq, RATE) == pytest.approx(LEVEL_DBFS, abs=1.0)
    assert rms_dbfs(pcm[n + 100:2 * n - 100]) == -120.0
    assert tone_dbfs(pcm[2 * n + 100:3 * n - 100], freq, RATE) > LEVEL_DBFS - 1


def test_every_country_has_both_tones_and_the_config_offers_exactly_those() -> None:
    assert set(RINGBACK) == set(BUSY) == set(COUNTRIES)
    assert SCHEMA["station"]["country"].choices == COUNTRIES


def test_one_shot_tones_end_and_then_give_silence() -> None:
    for tone in (DOOR_OPENED, WRONG_CODE, CALL_ENDING):
        source = ToneSource(tone, RATE)
        pcm = render(source, tone.seconds + 0.2, frame=160)
        assert source.done
        assert rms_dbfs(pcm[round(tone.seconds * RATE) + 160:]) == -120.0
        assert rms_dbfs(pcm[:round(tone.seconds * RATE)]) > LEVEL_DBFS - 6


def test_the_door_chime_rises_and_the_wrong_code_tone_is_low() -> None:
    chime = render(ToneSource(DOOR_OPENED, RATE), 0.5, frame=160)
    thirds = [chime[round(a * RATE):round(b * RATE)] for a, b in
              ((0.01, 0.11), (0.13, 0.23), (0.25, 0.48))]
    assert [max((660, 880, 1320), key=lambda f: tone_dbfs(part, f, RATE))
            for part in thirds] == [660, 880, 1320]
    wrong = render(ToneSource(WRONG_CODE, RATE), 0.5, frame=160)
    assert on_off(wrong, 330, 0.1) == [True, True, False, True, True]


def test_tones_start_and_stop_without_a_click() -> None:
    """The chime's notes change mid-cycle (660 Hz for 0.12 s is 79.2 cycles): without
    the fades that would be a jump of more than the amplitude."""
    source = ToneSource(DOOR_OPENED, RATE)
    pcm = render(source, 0.5, frame=160).astype(np.int32)
    edge = round(0.12 * RATE)
    assert abs(pcm[0]) < 200 and abs(pcm[edge - 1]) < 200 and abs(pcm[edge]) < 200
    # no step larger than the highest note's own steepest slope
    slope = source.amplitude * 2 * np.pi * 1320 / RATE
    assert np.max(np.abs(np.diff(pcm))) < 1.05 * slope


def test_mix_clips_instead_of_wrapping() -> None:
    loud = np.full(4, 30000, dtype=np.int16)
    assert list(mix(loud, np.full(4, 10000, dtype=np.int16))) == [32767] * 4
