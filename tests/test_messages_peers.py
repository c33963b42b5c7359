"""Announcements, visitors' messages and recorded calls on a running station
(`intercom run`, simulated board and card), with a real phone (baresip).

The announcements are speech made by espeak-ng; what the phone recorded, what
the station's speaker played and what the station recorded are searched for
them by correlation, so a clip that arrived cut, garbled or not at all fails.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port, free_port_pair_gap, need_espeak
from peers import Baresip, Station, assert_heard, intercom, need, wait_for
from test_hooks import MailServer, Receiver
from test_httpapi import Api, add_account

from intercom.cext.resample import Resampler
from intercom.media.oggopus import read_opus
from intercom.media.signal import (Pcm, find_clip, read_wav, synthesized_speech, tone_dbfs,
                                   tone_levels, write_wav)

pytestmark = pytest.mark.peers
CARD = 48000                      # the station's simulated card
NOWHERE = ["sip:resident@127.0.0.1:9"]
PHONE_TONE = 1000.0


def at(pcm: Pcm, rate: int, to: int) -> Pcm:
    return pcm if rate == to else Resampler(rate, to).process(pcm)


def without(pcm: Pcm, rate: int, freq: float, width: float = 60.0) -> Pcm:
    """``pcm`` with the band around ``freq`` taken out (the other side's test tone)."""
    spectrum = np.fft.rfft(pcm.astype(np.float64))
    bins = np.fft.rfftfreq(len(pcm), 1 / rate)
    spectrum[np.abs(bins - freq) < width] = 0
    return np.fft.irfft(spectrum, len(pcm)).astype(np.int16)


def sounds(work: Path, **said: str) -> tuple[Path, dict[str, Pcm]]:
    """A sounds directory with each event's announcement spoken by espeak-ng (16 kHz)."""
    need_espeak()
    directory = work / "sounds" / "en"
    directory.mkdir(parents=True)
    clips = {}
    for event, text in said.items():
        clips[event] = synthesized_speech(16000, text)
        write_wav(str(directory / f"{event}.wav"), clips[event], 16000)
    return directory.parent, clips


def quiet_mic(work: Path) -> Path:
    path = work / "quiet.wav"
    write_wav(str(path), np.zeros(CARD, np.int16), CARD)
    return path


def test_the_phone_hears_the_door_opened_announcement_whole(tmp_path: Path) -> None:
    directory, clips = sounds(tmp_path, door_opened="The door is open. Please come in.")
    baresip = Baresip(tmp_path, free_port_pair_gap(2), free_port(),
                      "<sip:resident@127.0.0.1>;regint=0;answermode=auto", PHONE_TONE)
    station = Station(tmp_path, "", [f"sip:resident@127.0.0.1:{baresip.sip_port}"],
                      audio=f'mic_file = "{quiet_mic(tmp_path)}"',
                      extra=f'[sounds]\ndirectory = "{directory}"\n')
    try:
        station.press()
        station.wait_event(15, event="call", state="answered")
        baresip.command("sndcode", "1234#")
        station.wait_event(10, event="door", action="opened")
        time.sleep(clips["door_opened"].size / 16000 + 1.5)
        n = len(baresip.events)
        assert intercom("ctl", "--socket", str(station.socket), "hangup").returncode == 0
        baresip.wait_event("CALL_CLOSED", 10, after=n)
    finally:
        station.stop()
        baresip.stop()
    heard_file = next(f for f in baresip.records.glob("*.wav") if "dec" in f.name)
    heard, rate = read_wav(str(heard_file))
    said = clips["door_opened"]
    score, start = find_clip(at(heard, rate, 8000), at(said, 16000, 8000)[400:-400])
    assert score > 0.8, f"the announcement came through with correlation {score:.2f}"
    # The visitor heard it too, from the station's speaker (with the phone's tone).
    speaker, rate = read_wav(str(station.speaker))
    speaker = without(at(speaker, rate, 8000), 8000, PHONE_TONE)
    clip = without(at(said, 16000, 8000), 8000, PHONE_TONE)[400:-400]
    assert find_clip(speaker, clip)[0] > 0.8
    assert "sounds: " not in station.log_text()            # every file loaded


def test_nobody_answers_so_the_visitor_leaves_a_message(tmp_path: Path) -> None:
    directory, clips = sounds(tmp_path, nobody_answered="Nobody is home.",
                              leave_message="Please leave a message after the tone.")
    need_espeak()
    visitor = synthesized_speech(CARD, "Hello, this is the postman with a parcel for you.")
    # The card's microphone plays from its opening on, when the prompt starts: the
    # visitor speaks half a second after the start tone (0.6 s), then is quiet.
    prompt = (len(clips["nobody_answered"]) + len(clips["leave_message"])) / 16000 + 0.6
    mic = tmp_path / "visitor.wav"
    write_wav(str(mic), np.concatenate([np.zeros(int((prompt + 0.5) * CARD), np.int16),
                                        visitor, np.zeros(4 * CARD, np.int16)]), CARD)
    port = free_port()
    hook = Receiver()
    mail = MailServer()
    station = Station(tmp_path, "", NOWHERE, log_level="info", audio=f'mic_file = "{mic}"',
                      extra=f'[sounds]\ndirectory = "{directory}"\n'
                            '[recordings]\nmessages = true\nmessage_seconds = 20\n'
                            'message_silence_seconds = 2\n'
                            f'[http]\nlisten = "127.0.0.1:{port}"\n'
                            f'[notify]\nurls = ["{hook.url()}"]\nevents = ["recording"]\n'
                            'email_to = ["anna@example.org"]\n'
                            f'smtp_server = "127.0.0.1:{mail.port}"\nsmtp_security = "none"\n')
    try:
        assert add_account(station.config, "vic", "view", "look-only-1").returncode == 0
        assert station.state()["announcements"] == ["leave_message", "nobody_answered"]
        station.press()
        station.wait_event(10, event="call_record")
        wait_for(lambda: station.state()["call"] == {"state": "message", "button": "bell"},
                 10, "the station taking the message")
        kept = station.wait_event(40, event="recording", what="message")
        assert station.state()["call"] == {"state": "idle"}
        assert kept["button"] == "bell" and kept["file"].endswith("-message-bell.opus")
        logged = intercom("ctl", "--socket", str(station.socket), "log", "--kind", "recording")
        assert f"recording     what=message button=bell file={kept['file']} " \
               f"seconds={kept['seconds']}" in logged.stdout
        api = Api(station, port)
        status, listed = api.request("GET", "/api/recordings", "vic", password="look-only-1")
        assert status == 200 and listed == [{"name": kept["file"], "time": listed[0]["time"],
                                             "what": "message", "button": "bell",
                                             "bytes": listed[0]["bytes"]}]
        status, body = api.request("GET", f"/api/recordings/{kept['file']}", "vic",
                                   password="look-only-1")
        assert status == 200 and body[:4] == b"OggS"
        assert api.request("GET", "/api/recordings/..%2Fevents.db", "vic",
                           password="look-only-1")[0] == 404
        assert api.request("GET", f"/api/recordings/{kept['file']}")[0] == 401
        wait_for(lambda: hook.requests, 10, "the message at the hook")
        assert json.loads(hook.requests[0]["body"])["event"]["file"] == kept["file"]
        wait_for(lambda: mail.messages, 10, "the message by mail")
        (voice,) = [part for part in mail.messages[0][2].walk()
                    if part.get_content_type() == "audio/ogg"]
        assert voice.get_payload(decode=True) == body
        # Only an admin may delete a recording; then it is gone from the list.
        assert add_account(station.config, "anna", "admin", "front-door-1").returncode == 0
        gone = f"/api/recordings/{kept['file']}"
        assert api.request("DELETE", gone, "vic", password="look-only-1")[0] == 403
        assert api.request("DELETE", gone, "anna", password="front-door-1",
                           headers={"Origin": "https://evil.example"})[0] == 403
        copy = tmp_path / "message-copy.opus"
        copy.write_bytes(body)
        assert api.request("DELETE", gone, "anna", password="front-door-1") == \
            (200, {"ok": True, "deleted": kept["file"]})
        assert api.request("DELETE", gone, "anna", password="front-door-1")[0] == 404
        assert api.request("GET", "/api/recordings", "vic", password="look-only-1") == (200, [])
        assert "deleted by HTTP anna" in station.log_text()
        station.press()                        # the station rings again afterwards
        wait_for(lambda: len([e for e in station.events() if e["event"] == "button"]) == 2
                 and len([e for e in station.events() if e["event"] == "call_record"]) == 2,
                 15, "the second visit")
    finally:
        station.stop()
        hook.close()
        mail.close()
    # The visitor's words are in the message, whole: 0.5 s of quiet, the words,
    # then it ended on the 2 s of silence after them.
    path = tmp_path / "message-copy.opus"                 # as the API served it
    recorded, rate = read_opus(str(path))
    recorded = at(recorded, rate, 16000)
    words = at(visitor, CARD, 16000)
    score, start = find_clip(recorded, words[800:-800])
    assert score > 0.85, f"the message matches the microphone with correlation {score:.2f}"
    assert len(words) / 16000 + 1.5 < kept["seconds"] < len(words) / 16000 + 4.0
    theirs = subprocess.run([need("ffmpeg"), "-v", "error", "-i", str(path), "-f", "s16le",
                             "-ac", "1", "-ar", "16000", "-"], capture_output=True,
                            check=True, timeout=60).stdout
    assert abs(len(theirs) // 2 - kept["seconds"] * 16000) < 0.1 * 16000
    # The visitor heard "nobody is home", "please leave a message", then the beep.
    speaker, rate = read_wav(str(station.speaker))
    speaker = at(speaker, rate, 16000)
    first, a = find_clip(speaker, clips["nobody_answered"][800:-800])
    second, b = find_clip(speaker, clips["leave_message"][800:-800])
    assert first > 0.9 and second > 0.9 and a < b
    beep = b - 800 + len(clips["leave_message"])
    assert tone_dbfs(speaker[beep:beep + 8000], 1000, 16000) > -30
    log = station.log_text()
    assert "Traceback" not in log and "visitor message at 'bell' kept" in log
    assert f"message from the visitor at 'bell': {kept['seconds']:.0f} s, {kept['file']}" in log


def test_a_recorded_call_is_announced_and_keeps_both_voices(tmp_path: Path) -> None:
    baresip = Baresip(tmp_path, free_port_pair_gap(2), free_port(),
                      "<sip:resident@127.0.0.1>;regint=0;answermode=auto", PHONE_TONE)
    station = Station(tmp_path, "", [f"sip:resident@127.0.0.1:{baresip.sip_port}"],
                      tone_hz=440.0, extra='[recordings]\ncalls = true\n')
    try:
        station.press()
        answered = station.wait_event(15, event="call", state="answered")
        time.sleep(4.0)
        n = len(baresip.events)
        baresip.command("hangup")
        baresip.wait_event("CALL_CLOSED", 10, after=n)
        kept = station.wait_event(15, event="recording", what="call")
    finally:
        station.stop()
        baresip.stop()
    assert kept["peer"] == answered["peer"] and kept["button"] == "bell"
    assert 3.0 < kept["seconds"] < 8.0
    decoded = subprocess.run([need("ffmpeg"), "-v", "error", "-i",
                              str(tmp_path / "recordings" / kept["file"]), "-f", "s16le",
                              "-ac", "2", "-ar", "16000", "-"], capture_output=True,
                             check=True, timeout=60).stdout
    both = np.frombuffer(decoded, dtype="<i2").reshape(-1, 2)
    # Each second on its own: the door (the station's microphone, echo cancelled;
    # the noise suppressor takes its steady tone down some) on the left, the
    # resident on the right, and the station's two beeps at the start on the right.
    door = tone_levels(both[:, 0].copy(), 440, 16000)
    resident = tone_levels(both[:, 1].copy(), PHONE_TONE, 16000)
    assert len(door) >= 3 and min(door) > -36 and min(resident) > -20, (door, resident)
    assert max(tone_levels(both[16000:, 0].copy(), PHONE_TONE, 16000)) < -55     # no echo
    # (after the beeps, whose edges and a loaded machine's concealment spread a little)
    assert max(tone_levels(both[16000:, 1].copy(), 440, 16000)) < -55
    assert tone_levels(both[:, 1].copy(), 1200, 16000)[0] > -25
    # The phone was told first: the two beeps, before anything else of the call.
    heard_file = next(f for f in baresip.records.glob("*.wav") if "dec" in f.name)
    heard, rate = read_wav(str(heard_file))
    assert tone_dbfs(heard[:int(1.5 * rate)], 1200, rate) > -35
    assert_heard(station.speaker, PHONE_TONE, "station")
