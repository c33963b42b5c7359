"""Sound files in and out: Ogg Opus both ways (checked against ffmpeg), the
announcements found by event and language, a visitor's message recorded from
the simulated card, a call recorder's two sides, the store's bounds.
"""
from __future__ import annotations

import subprocess
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import need_espeak
from peers import need

from intercom.app.store import FileStore
from intercom.cext.resample import Resampler
from intercom.media.devices import SimulatedSoundCard
from intercom.media.oggopus import OggOpusError, OggOpusWriter, read_opus
from intercom.media.recorder import CallRecorder, Message, MessageRecorder
from intercom.media.signal import (Pcm, find_clip, read_wav, synthesized_speech, tone,
                                   tone_dbfs, write_wav)
from intercom.media.sounds import (Clip, SoundError, find_announcements, load_clip, source,
                                   then)
from intercom.media.tones import RINGBACK

RATE = 16000
SPEECH = "Nobody is home. Please leave a message after the tone."


@pytest.fixture(scope="module")
def speech() -> Pcm:
    need_espeak()
    return synthesized_speech(RATE, SPEECH)


def write_opus(path: Path, pcm: Pcm, rate: int, channels: int = 1) -> None:
    with open(path, "wb") as f:
        writer = OggOpusWriter(f, rate, channels)
        writer.write(pcm)
        writer.close()


def ffmpeg_decode(path: Path, rate: int, channels: int = 1) -> Pcm:
    out = subprocess.run([need("ffmpeg"), "-v", "error", "-i", str(path), "-f", "s16le",
                          "-ac", str(channels), "-ar", str(rate), "-"],
                         capture_output=True, timeout=60, check=True).stdout
    return np.frombuffer(out, dtype="<i2").astype(np.int16)


def inner(pcm: Pcm) -> Pcm:
    """Without its first and last 50 ms: found whole despite a resampler's delay."""
    return pcm[RATE // 20:-RATE // 20]


def down(pcm: Pcm, rate: int, to: int = RATE) -> Pcm:
    return pcm if rate == to else Resampler(rate, to).process(pcm)


# ----- Ogg Opus -----------------------------------------------------------------------
def test_ogg_opus_written_here_is_decoded_by_ffmpeg_whole(tmp_path: Path, speech: Pcm) -> None:
    path = tmp_path / "message.opus"
    write_opus(path, speech, RATE)
    theirs = ffmpeg_decode(path, 48000)
    assert len(theirs) == 3 * len(speech)            # pre-skip and end trim as meant
    score, _ = find_clip(down(theirs, 48000), inner(speech))
    assert score > 0.9, score
    ours, rate = read_opus(str(path))
    assert rate == 48000 and len(ours) == len(theirs)
    assert find_clip(down(ours, 48000), inner(speech))[0] > 0.9


def test_ogg_opus_from_ffmpeg_is_read_and_damage_is_reported(tmp_path: Path,
                                                             speech: Pcm) -> None:
    wav, opus = tmp_path / "speech.wav", tmp_path / "speech.opus"
    write_wav(str(wav), speech, RATE)
    subprocess.run([need("ffmpeg"), "-v", "error", "-i", str(wav), "-c:a", "libopus",
                    "-ac", "2", str(opus)], check=True, timeout=60)
    pcm, rate = read_opus(str(opus))                 # stereo, made by libopus through ffmpeg
    assert abs(len(pcm) - 3 * len(speech)) < 960
    assert find_clip(down(pcm, rate), inner(speech))[0] > 0.9
    data = bytearray(opus.read_bytes())
    data[len(data) // 2] ^= 0x40
    broken = tmp_path / "broken.opus"
    broken.write_bytes(bytes(data))
    with pytest.raises(OggOpusError, match="fails its CRC"):
        read_opus(str(broken))
    with pytest.raises(OggOpusError, match="no Ogg page at byte 0"):
        read_opus(str(wav))
    with pytest.raises(OggOpusError, match="No such file"):
        read_opus(str(tmp_path / "missing.opus"))


# ----- announcements ------------------------------------------------------------------
def test_announcements_are_found_by_event_and_language_and_bad_ones_named(
        tmp_path: Path) -> None:
    sounds = tmp_path / "sounds"
    (sounds / "de").mkdir(parents=True)
    write_opus(sounds / "de" / "ringing.opus", tone(500, 1.0, RATE), RATE)
    write_wav(str(sounds / "ringing.wav"), tone(700, 1.0, RATE), RATE)
    write_wav(str(sounds / "door_opened.wav"), tone(800, 0.5, 8000), 8000)
    write_wav(str(sounds / "door_opened_.wav"), tone(800, 0.5, 8000), 8000)   # a typo
    with wave.open(str(sounds / "locked_out.wav"), "wb") as w:     # 8-bit: not played
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes(800))
    (sounds / "de" / "leave_message.ogg").write_bytes(b"OggS" + bytes(40))
    found, problems = find_announcements(sounds, "de")
    assert sorted(found) == ["door_opened", "ringing"]
    assert found["ringing"].path.endswith("de/ringing.opus")          # the language's own
    assert found["ringing"].rate == 48000 and found["ringing"].seconds == pytest.approx(1.0)
    assert found["door_opened"].rate == 8000
    text = "\n".join(problems)
    assert "door_opened_.wav: not an announcement; the files are named ringing, " \
           "nobody_answered" in text
    assert "locked_out.wav: 8-bit WAV" in text and "the generated tone plays instead" in text
    assert "leave_message.ogg: the Ogg page at byte 0 fails its CRC" in text
    assert "ringing.wav" not in text           # a language's own file is no mistake
    write_wav(str(sounds / "de" / "ringing.wav"), tone(700, 1.0, RATE), RATE)
    assert "de/ringing.wav: " in "\n".join(find_announcements(sounds, "de")[1])
    found, _ = find_announcements(sounds, "fr")                      # no fr/: the shared ones
    assert found["ringing"].path.endswith("sounds/ringing.wav")
    assert find_announcements("", "en") == ({}, [])
    assert "is not a directory" in find_announcements(tmp_path / "none", "en")[1][0]
    with pytest.raises(SoundError, match="no sound in it"):
        write_wav(str(tmp_path / "empty.wav"), np.zeros(0, np.int16), RATE)
        load_clip(tmp_path / "empty.wav")


def test_an_announcement_plays_resampled_then_the_ringback(speech: Pcm) -> None:
    clip = Clip("ringing", "ringing.wav", speech, RATE)
    played = source(then(clip, RINGBACK["us"]), 48000)  # type: ignore[arg-type]
    frames = [played.read(480) for _ in range(round((clip.seconds + 3.0) * 100))]
    out = np.concatenate(frames)
    start = len(clip.at(48000))
    assert find_clip(down(out[:start], 48000), inner(speech))[0] > 0.95
    after = out[start:start + 48000]                  # then the US ringback: 440 + 480 Hz
    assert tone_dbfs(after, 440, 48000) > -30 and tone_dbfs(after, 480, 48000) > -30
    assert not played.done                             # the ringback goes on


# ----- a visitor's message ------------------------------------------------------------
def record_message(tmp_path: Path, mic_file: str, seconds: float, silence: float,
                   prompt: Clip | None = None, then_call: str = "") -> tuple[Message, Path]:
    speaker = tmp_path / "speaker.wav"
    card = SimulatedSoundCard(RATE, RATE // 50, mic_file=mic_file, mic_tone_hz=0,
                              speaker_file=str(speaker))
    out = tmp_path / "message.opus"
    done = threading.Event()
    result: list[Message] = []

    def finished(message: Message) -> None:
        result.append(message)
        done.set()
    with open(out, "wb") as f:
        recorder = MessageRecorder(lambda: card, RATE, RATE // 50, prompt, seconds, silence,
                                   f, finished)
        if then_call:
            time.sleep(1.5)
            getattr(recorder, then_call)()
        assert done.wait(seconds + 15), "the message did not end"
    return result[0], speaker


def test_a_message_is_what_the_microphone_heard(tmp_path: Path, speech: Pcm) -> None:
    mic = tmp_path / "visitor.wav"
    voice = np.concatenate([speech, np.zeros(RATE // 2, np.int16)])
    write_wav(str(mic), voice, RATE)
    prompt = Clip("leave_message", "p.wav", tone(600, 1.0, RATE, amplitude=0.2), RATE)
    message, speaker = record_message(tmp_path, str(mic), 3.0, 0.0, prompt)
    assert message == Message(3.0, True, "the longest message")
    recorded = down(read_opus(str(tmp_path / "message.opus"))[0], 48000)
    assert len(recorded) == pytest.approx(3 * RATE, abs=RATE // 50)
    # The microphone plays its file from the card's opening on: the message is
    # the part after the prompt (1 s) and the start tone (0.6 s).
    looped = np.tile(voice, 3)
    score, at = find_clip(looped, recorded[RATE // 10:-RATE // 10])
    assert score > 0.85, score
    assert at / RATE == pytest.approx(1.0 + 0.6 + 0.1, abs=0.05)
    # The visitor heard the prompt, the long beep, silence, the two short beeps.
    heard, rate = read_wav(str(speaker))
    second = rate
    assert tone_dbfs(heard[:second], 600, rate) > -25
    assert tone_dbfs(heard[second:second + second // 2], 1000, rate) > -25
    assert tone_dbfs(heard[2 * second:4 * second], 1000, rate) < -60
    assert tone_dbfs(heard[int(4.6 * second):int(4.9 * second)], 1000, rate) > -30


def test_a_message_ends_after_a_silence_and_says_nobody_spoke(tmp_path: Path) -> None:
    message, _ = record_message(tmp_path, "", 30.0, 1.0)
    assert message == Message(1.0, False, "1 s of silence")


def test_a_bell_press_ends_a_message_and_a_call_frees_the_card(tmp_path: Path) -> None:
    mic = tmp_path / "visitor.wav"
    write_wav(str(mic), tone(300, 1.0, RATE, amplitude=0.2), RATE)
    message, speaker = record_message(tmp_path, str(mic), 30.0, 5.0, then_call="finish")
    assert message.ended == "a bell press" and message.voiced
    assert 0.5 < message.seconds < 1.5
    heard, rate = read_wav(str(speaker))
    assert tone_dbfs(heard[-rate // 3:], 1000, rate) > -30          # the end tone
    started = time.monotonic()
    message, _ = record_message(tmp_path, str(mic), 30.0, 5.0, then_call="stop")
    assert message.ended == "stopped" and time.monotonic() - started < 3.0


# ----- a call's two sides -------------------------------------------------------------
@pytest.mark.parametrize("door_rate,resident_rate", [(48000, 48000), (8000, 44100)])
def test_a_call_recording_keeps_the_door_left_and_the_resident_right(
        tmp_path: Path, door_rate: int, resident_rate: int) -> None:
    path = tmp_path / "call.opus"
    with open(path, "wb") as f:
        recorder = CallRecorder(door_rate, resident_rate, f)
        door, resident = tone(440, 3.0, door_rate, 0.2), tone(1000, 3.0, resident_rate, 0.2)
        # As the audio thread feeds it: 20 ms codec frames, 10 ms card periods.
        d, r = door_rate // 50, resident_rate // 100
        for i in range(150):
            recorder.add_door(door[i * d:(i + 1) * d])
            recorder.add_resident(resident[2 * i * r:(2 * i + 1) * r])
            recorder.add_resident(resident[(2 * i + 1) * r:(2 * i + 2) * r])
        assert recorder.close() == pytest.approx(3.0, abs=0.05)
    both = ffmpeg_decode(path, 48000, channels=2).reshape(-1, 2)
    left, right = both[4800:-4800, 0], both[4800:-4800, 1]
    assert tone_dbfs(left, 440, 48000) > -20 > tone_dbfs(left, 1000, 48000) + 20
    assert tone_dbfs(right, 1000, 48000) > -20 > tone_dbfs(right, 440, 48000) + 20


# ----- the store ----------------------------------------------------------------------
def test_the_recordings_store_keeps_its_bounds(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "recordings", ".opus", keep=3, max_bytes=10_000)
    for i in range(5):
        store.save(bytes(1000), f"message-bell {i}", at=1700000000 + i)
    assert [s.label for s in store.list()] == ["message-bell_2", "message-bell_3",
                                               "message-bell_4"]
    writing = store.writing("call-bell", at=1700000010)
    writing.file.write(bytes(9000))
    assert [s.label for s in store.list()][-1] == "message-bell_4"    # not seen half-made
    stored = writing.commit()
    assert [s.name for s in store.list()] == [store.list()[-2].name, stored.name]
    assert sum(s.size for s in store.list()) <= 10_000
    dropped = store.writing("message-bell")
    dropped.file.write(b"x")
    dropped.discard()
    assert len(store.list()) == 2 and not list((tmp_path / "recordings").glob(".*"))
    assert store.path(stored.name) is not None
    for bad in ("../events.db", stored.name.replace(".opus", ".jpg"), "x.opus"):
        assert store.path(bad) is None
