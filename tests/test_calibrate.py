"""``intercom calibrate`` on the simulated sound card's room, and the config it writes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need_espeak

from intercom.config import ConfigError, load, update_file
from intercom.media import calibrate
from intercom.media.devices import SimulatedSoundCard
from intercom.media.echo import EchoPathSpec


@pytest.mark.parametrize("rate, delay, room, gain", [(16000, 80, 150, -10.0),
                                                     (48000, 200, 250, -3.0),
                                                     (8000, 20, 100, -25.0)])
def test_measures_delay_and_level_of_the_simulated_room(rate: int, delay: float, room: float,
                                                        gain: float) -> None:
    card = SimulatedSoundCard(rate, rate // 50, mic_tone_hz=0,
                              echo=EchoPathSpec(delay, room, gain, -70))
    result = calibrate.analyse(*calibrate.run(card), rate)
    assert result.delay_ms == pytest.approx(delay + 20, abs=1.0)   # + the card's period
    assert result.echo_db == pytest.approx(gain, abs=1.5)
    assert result.noise_dbfs == pytest.approx(-70, abs=2)
    assert result.tail_ms >= 200 and result.tail_ms >= result.room_ms
    assert (result.speaker_gain_db < 0) == (gain > -6)           # turn a loud speaker down
    assert (result.mic_gain_db > 0) == (gain < -20)              # and a faint echo up


CONFIG = """# front door, installed 2026-11
[call]
targets = ["sip:resident@127.0.0.1"]   # the flat

[audio]
device = "simulated"   # no card yet
sim_echo_delay_ms = 80
echo_delay_ms = 5

[door]
codes = ["1234#"]
"""


def test_calibrate_command_writes_the_delay_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "intercom.toml"
    path.write_text(CONFIG)
    out = subprocess.run([sys.executable, "-m", "intercom.cli", "calibrate", "--config",
                          str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "echo delay     100.0 ms" in out.stdout
    cfg = load(path)
    assert cfg.audio.echo_delay_ms == pytest.approx(100, abs=1)
    assert cfg.audio.echo_tail_ms >= 200
    text = path.read_text()
    assert text.startswith("# front door, installed 2026-11\n")
    assert 'targets = ["sip:resident@127.0.0.1"]   # the flat' in text
    assert text.count("\necho_delay_ms =") == 1                # replaced, not added again
    assert cfg.door.codes == ("1234#",)


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "intercom.toml"
    path.write_text(CONFIG)
    out = subprocess.run([sys.executable, "-m", "intercom.cli", "calibrate", "--config",
                          str(path), "--dry-run"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and path.read_text() == CONFIG


def test_without_an_echo_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "intercom.toml"
    path.write_text(CONFIG.replace("sim_echo_delay_ms = 80", "sim_echo_gain_db = -120"))
    before = path.read_text()
    out = subprocess.run([sys.executable, "-m", "intercom.cli", "calibrate", "--config",
                          str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "no echo found" in out.stderr
    assert path.read_text() == before


def test_an_update_that_would_break_the_config_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "intercom.toml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError, match="audio.echo_delay_ms"):
        update_file(path, "audio", {"echo_delay_ms": 9999})
    assert path.read_text() == CONFIG
    update_file(path, "media", {"rtp_port_min": 20000})          # a section not yet there
    assert load(path).media.rtp_port_min == 20000
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_canceller_learns_the_room_from_the_calibration_noise(tmp_path: Path) -> None:
    """After ``intercom calibrate`` the first call's canceller starts converged."""
    from intercom.media.echo import EchoControl, measure
    from intercom.media.signal import synthesized_speech
    need_espeak()
    path = tmp_path / "intercom.toml"
    path.write_text(CONFIG.replace('device = "simulated"   # no card yet',
                                   'device = "simulated"\nrate = 16000'))
    out = subprocess.run([sys.executable, "-m", "intercom.cli", "calibrate", "--config",
                          str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    audio = load(path).audio
    assert Path(audio.echo_training).is_file()
    control = EchoControl(16000, 320, audio.echo_tail_ms, audio.echo_delay_ms)
    assert calibrate.train(control, audio.echo_training)
    # The simulated card's room: its 80 ms plus the card's own 20 ms period.
    room = EchoPathSpec(delay_ms=100, room_ms=120, gain_db=-10, noise_dbfs=-70)
    speech = synthesized_speech(16000)
    trained = measure(room, speech, 16000, 320, control=control)
    fresh = measure(room, speech, 16000, 320, tail_ms=audio.echo_tail_ms,
                    delay_ms=audio.echo_delay_ms)
    assert trained.converged_s is not None and trained.converged_s < 0.2, trained
    assert fresh.converged_s is not None and fresh.converged_s > 0.5, fresh
    assert trained.erle_db >= 30, trained
    assert not calibrate.train(control, str(tmp_path / "missing.wav"))
