"""``intercom doctor``: each check's line, the config line at fault, and a trial
registration against Kamailio with the right and a wrong password."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port

from intercom.doctor import config_line
from intercom.media.signal import tone, write_wav


def doctor(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intercom.cli", "doctor", "--config",
                           str(config)], capture_output=True, text=True, timeout=60)


def write(tmp_path: Path, sip: str) -> Path:
    cfg = tmp_path / "intercom.toml"
    cfg.write_text(f'[station]\nname = "Door"\n\n[sip]\nlisten = "127.0.0.1"\n'
                   f'port = {free_port()}\n{sip}\n[call]\ntargets = ["sip:resident@127.0.0.1:9"]\n'
                   f'[audio]\nspeaker_file = "{tmp_path / "s.wav"}"\n'
                   f'[control]\nsocket = "{tmp_path / "c.sock"}"\n'
                   f'[log]\ndatabase = "{tmp_path / "e.db"}"\n')
    return cfg


def test_a_bad_value_is_found_on_its_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, "register_expires = 5")
    out = doctor(cfg)
    assert out.returncode == 1
    assert out.stdout.startswith(f"FAIL  config: {cfg}, line 7: sip.register_expires: 5 is "
                                 "outside the allowed range 60..86400")
    assert "audio" not in out.stdout                 # nothing else is checked on a bad config


def test_broken_toml_and_unknown_sections_are_found_on_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text('[call]\ntargets = ["sip:a@b"]\n\n[sipp]\nport = 1\n')
    assert config_line(str(path), "[sipp]: unknown section; allowed: ...") == 4
    assert config_line(str(path), "call.targets: needs at least one SIP URI") == 2
    assert config_line(str(path), "x.toml: not valid TOML: ... (at line 7, column 2)") == 7
    assert config_line(str(path), "call.ring_time: required") is None


def test_without_a_registrar_the_simulated_station_is_all_ok(tmp_path: Path) -> None:
    out = doctor(write(tmp_path, ""))
    assert out.returncode == 0, out.stdout
    lines = out.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        "ok    config", "ok    audio", "ok    board", "ok    camera", "ok    sounds",
        "ok    recordings", "ok    sip port",
        "ok    network",
        "ok    dns",
        "ok    registration", "ok    nat"]
    assert "relay GPIO23 (released)" in out.stdout and lines[-1] == "all checks passed"


def test_the_camera_is_tried_with_one_picture(tmp_path: Path) -> None:
    cfg = write(tmp_path, "")
    base = cfg.read_text()
    cfg.write_text(base + '[camera]\nsource = "simulated"\nwidth = 320\nheight = 240\n')
    out = doctor(cfg)
    assert "ok    camera: SimulatedCamera gives 320x240 pictures" in out.stdout
    cfg.write_text(base + '[camera]\nsource = "v4l2"\ndevice = "/dev/video9"\n')
    out = doctor(cfg)
    assert out.returncode == 1
    assert "FAIL  camera: webcam: there is no /dev/video9" in out.stdout
    assert "check [camera] source and device" in out.stdout


def test_announcements_and_the_recordings_store_are_checked(tmp_path: Path) -> None:
    cfg = write(tmp_path, "")
    base = cfg.read_text()
    sounds = tmp_path / "sounds"
    (sounds / "de").mkdir(parents=True)
    write_wav(str(sounds / "de" / "ringing.wav"), tone(500, 0.5, 16000), 16000)
    cfg.write_text(base.replace('name = "Door"', 'name = "Door"\nlanguage = "de"') +
                   f'[sounds]\ndirectory = "{sounds}"\n[recordings]\nmessages = true\n')
    out = doctor(cfg)
    assert "ok    sounds: announcements for ringing (de); the rest play their tones; " \
           "messages are on with no leave_message announcement" in out.stdout
    assert f"ok    recordings: messages kept in {tmp_path / 'recordings'}: 0 of at most " \
           "100, 0.0 of 200 MB" in out.stdout
    (sounds / "de" / "ring.wav").write_bytes(b"RIFF")
    out = doctor(cfg)
    assert out.returncode == 1
    assert "FAIL  sounds: " in out.stdout and "de/ring.wav: not an announcement" in out.stdout


def test_a_sip_port_another_program_holds_fails_with_the_fix(tmp_path: Path) -> None:
    import socket
    cfg = write(tmp_path, "")
    port = int(cfg.read_text().split("port = ")[1].split("\n")[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", port))
        out = doctor(cfg)
    assert out.returncode == 1
    assert f"FAIL  sip port: 127.0.0.1:{port} cannot be used: UDP (Address already in use)" \
        in out.stdout
    assert "set [sip] port to a free one" in out.stdout


def test_a_bad_board_profile_is_named_with_the_profiles_there_are(tmp_path: Path) -> None:
    cfg = write(tmp_path, "")
    cfg.write_text(cfg.read_text() + '[board]\nprofile = "raspberrypi4"\n')
    out = subprocess.run([sys.executable, "-m", "intercom.cli", "check-config", str(cfg)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "board.profile: 'raspberrypi4' is not a board profile; the profiles are " \
        "generic-pi, pi3, pi4, pi5," in out.stderr


def test_check_config_takes_the_file_either_way(tmp_path: Path) -> None:
    cfg = write(tmp_path, "")
    for args in ([str(cfg)], ["--config", str(cfg)]):
        out = subprocess.run([sys.executable, "-m", "intercom.cli", "check-config", *args],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and out.stdout == f"{cfg}: ok\n", out.stderr
    out = subprocess.run([sys.executable, "-m", "intercom.cli", "check-config"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "give one config file" in out.stderr


@pytest.mark.peers
def test_registration_with_kamailio_ok_and_with_a_wrong_password(tmp_path: Path) -> None:
    from peers import Kamailio
    port = free_port()
    kamailio = Kamailio(tmp_path, port, {"door": "doorpass"})
    try:
        good = doctor(write(tmp_path, f'registrar = "sip:127.0.0.1:{port}"\n'
                                      'password = "doorpass"'))
        assert good.returncode == 0, good.stdout
        assert f"ok    registration: \"Door\" <sip:door@127.0.0.1> registered at " \
               f"sip:127.0.0.1:{port} (200 OK; trial binding removed)" in good.stdout
        registers = kamailio.seen("REGISTER")
        assert len(registers) >= 3                    # challenged, registered, removed
        bad = doctor(write(tmp_path, f'registrar = "sip:127.0.0.1:{port}"\n'
                                     'password = "wrong"'))
        assert bad.returncode == 1
        assert "FAIL  registration: sip:127.0.0.1:" in bad.stdout
        assert "fix: check [sip] user, auth_user and password" in bad.stdout
    finally:
        kamailio.stop()
