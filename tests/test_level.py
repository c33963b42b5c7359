"""The call's level meters (cext/level.pyx) against a float reference."""
from __future__ import annotations

import math

import numpy as np
import pytest

from intercom.cext.level import LevelMeter
from intercom.media.signal import tone


def reference_dbfs(samples: np.ndarray) -> float:
    rms = math.sqrt(float(np.mean(samples.astype(np.float64) ** 2))) / 32768.0
    return 20 * math.log10(rms) if rms > 1e-6 else -120.0


def test_each_window_is_measured_and_the_loudest_kept() -> None:
    meter = LevelMeter(800)
    loud, quiet = tone(1000, 0.1, 8000, amplitude=0.5), tone(1000, 0.1, 8000, amplitude=0.01)
    for frame in np.split(loud, 5):                 # 5 frames of 160: one window
        meter.add(frame)
    assert meter.dbfs == pytest.approx(reference_dbfs(loud), abs=0.01)
    assert meter.dbfs == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.1)
    for frame in np.split(quiet, 5):
        meter.add(frame)
    assert meter.dbfs == pytest.approx(reference_dbfs(quiet), abs=0.01)
    assert meter.peak_dbfs == pytest.approx(reference_dbfs(loud), abs=0.01)
    assert meter.frames == 10


def test_full_scale_silence_strided_frames_and_a_part_window() -> None:
    meter = LevelMeter(4)
    meter.add(np.array([-32768, -32768, -32768, -32768], dtype=np.int16))
    assert meter.dbfs == pytest.approx(0.0, abs=1e-9)     # no overflow in the square sum
    meter.add(np.zeros(4, dtype=np.int16))
    assert meter.dbfs == -120.0 and meter.peak_dbfs == pytest.approx(0.0, abs=1e-9)
    meter.add(np.array([1000, 0, 1000, 0, 1000, 0, 1000, 0], dtype=np.int16)[::2])
    assert meter.dbfs == pytest.approx(20 * math.log10(1000 / 32768), abs=1e-6)
    meter.add(np.full(3, 20000, dtype=np.int16))       # not a whole window yet
    assert meter.dbfs == pytest.approx(20 * math.log10(1000 / 32768), abs=1e-6)


def test_a_window_must_be_positive_and_a_frame_int16() -> None:
    with pytest.raises(ValueError, match="positive number of samples"):
        LevelMeter(0)
    with pytest.raises(ValueError):
        LevelMeter(10).add(np.zeros(4, dtype=np.float64))
