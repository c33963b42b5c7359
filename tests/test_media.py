"""Media: SDP offer/answer, RFC 4733, sound devices (ALSA through a file PCM), streams."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from intercom.media.codecs import CODECS, TELEPHONE_EVENT, codec_for, offer_formats
from intercom.media.devices import AudioDeviceError, SimulatedSoundCard
from intercom.media.dtmf import DtmfReceiver, event_payloads
from intercom.media.rtp import RtpSession
from intercom.media.signal import (longest_run, loudest_tone_window, read_wav, tone, tone_dbfs,
                                   tone_levels, write_wav)
from intercom.media.stream import AudioStream
from intercom.sip import sdp

BARESIP_OFFER = (b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                 b"m=audio 10000 RTP/AVP 96 9 0 8 101\r\nb=AS:837\r\n"
                 b"a=rtpmap:96 opus/48000/2\r\na=fmtp:96 stereo=1;sprop-stereo=1\r\n"
                 b"a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
                 b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
                 b"a=sendrecv\r\n")


def test_parse_a_baresip_offer() -> None:
    media = sdp.parse(BARESIP_OFFER)
    assert (media.address, media.port, media.ptime) == ("127.0.0.1", 10000, 20)
    assert [f.name for f in media.formats] == ["opus", "G722", "PCMU", "PCMA", "telephone-event"]
    event = media.find("telephone-event")
    assert event is not None and event.fmtp == "0-15"


def test_answer_keeps_the_offerers_order_and_negotiates() -> None:
    offer = sdp.parse(BARESIP_OFFER)
    ours = [CODECS["PCMA"].format, CODECS["PCMU"].format, TELEPHONE_EVENT]
    answer = sdp.answer_for(offer, ours, "127.0.0.1", 20000, 20)
    assert [f.name for f in answer.formats] == ["PCMU", "PCMA", "telephone-event"]
    event = answer.find("telephone-event")
    assert event is not None and event.payload_type == 101
    chosen = sdp.negotiate(answer, offer, we_offered=False)
    assert chosen.codec.name == "PCMU" and chosen.remote_port == 10000
    again = sdp.parse(sdp.build(5, 1, "127.0.0.1", answer))
    assert again.formats == answer.formats and again.port == 20000


def test_offerer_uses_the_answerers_choice() -> None:
    ours = sdp.MediaDescription("127.0.0.1", 4000, offer_formats(["PCMU", "PCMA"]), ptime=20)
    answer = sdp.parse(b"v=0\r\nc=IN IP4 192.0.2.7\r\nm=audio 5004 RTP/AVP 8 100\r\n"
                       b"a=rtpmap:100 telephone-event/8000\r\n")
    chosen = sdp.negotiate(ours, answer, we_offered=True)
    assert chosen.telephone_event is not None
    assert (chosen.codec.name, chosen.telephone_event.payload_type) == ("PCMA", 100)
    assert chosen.remote_address == "192.0.2.7"


@pytest.mark.parametrize("body", [b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5 RTP/AVP 31\r\n",
                                  b"v=0\r\nm=audio 5 RTP/AVP 0\r\n",
                                  b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
                                  b"\xff\xfe"])
def test_unusable_sdp_is_a_488(body: bytes) -> None:
    with pytest.raises(sdp.SdpError) as info:
        sdp.parse(body)
    assert info.value.status == 488


def test_no_common_codec_is_a_488() -> None:
    offer = sdp.parse(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 9\r\n")
    with pytest.raises(sdp.SdpError):
        sdp.answer_for(offer, [CODECS["PCMU"].format, TELEPHONE_EVENT], "127.0.0.1", 4, 20)


def test_dtmf_digits_counted_once_despite_repeated_end_packets() -> None:
    rx = DtmfReceiver()
    got: list[str] = []
    for ts, digit in [(1000, "1"), (3000, "#")]:
        for payload in event_payloads(digit, 800, 160):
            got += rx.feed(payload, ts)
    assert got == ["1", "#"]


def test_dtmf_digit_whose_end_packets_were_lost_is_reported_at_the_next_event() -> None:
    rx = DtmfReceiver()
    five = event_payloads("5", 800, 160)[:-3]          # start and updates only
    got = [d for p in five for d in rx.feed(p, 100)]
    assert got == []
    got = [d for p in event_payloads("6", 800, 160) for d in rx.feed(p, 2000)]
    assert got == ["5", "6"]


def test_dtmf_payload_layout() -> None:
    payloads = event_payloads("#", 800, 160)
    assert payloads[0] == bytes([11, 10, 0, 160])
    assert payloads[-1] == payloads[-2] == payloads[-3] == bytes([11, 0x80 | 10, 800 >> 8, 800 & 255])
    with pytest.raises(ValueError):
        event_payloads("x", 800, 160)


def test_simulated_card_is_paced_by_its_clock_and_records(tmp_path: Path) -> None:
    card = SimulatedSoundCard(8000, 160, mic_tone_hz=500, speaker_file=str(tmp_path / "s.wav"))
    card.open()
    start = time.monotonic()
    frames = [card.read() for _ in range(10)]
    elapsed = time.monotonic() - start
    for f in frames:
        card.write(f)
    card.close()
    assert elapsed >= 0.19                              # ten 20 ms periods
    pcm, rate = read_wav(str(tmp_path / "s.wav"))
    assert rate == 8000 and len(pcm) == 1600
    assert tone_dbfs(pcm, 500, 8000) > -20


def test_simulated_card_plays_a_wav_file_as_its_microphone(tmp_path: Path) -> None:
    wav = tmp_path / "mic.wav"
    write_wav(str(wav), tone(700, 0.5, 16000), 16000)
    card = SimulatedSoundCard(16000, 320, mic_file=str(wav))
    card.open()
    assert tone_dbfs(card.read(), 700, 16000) > -20
    card.close()


def test_a_simulated_speakers_file_reads_whole_while_written_and_after(tmp_path: Path) -> None:
    """Each period costs one write; the file reads to its end while it grows, and
    carries its real length (for any WAV reader) once closed."""
    import wave
    from intercom.media.devices import SpeakerFile
    path = str(tmp_path / "speaker.wav")
    speaker = SpeakerFile(path, 16000)
    played = tone(440, 0.3, 16000)
    for i in range(0, 2400, 320):
        speaker.write(played[i:i + 320].astype("<i2").tobytes())
    pcm, rate = read_wav(path)
    assert rate == 16000 and np.array_equal(pcm, played[:2560])
    speaker.write(played[2560:].astype("<i2").tobytes())
    speaker.close()
    speaker.close()                                     # twice is harmless
    with wave.open(path, "rb") as w:
        assert (w.getframerate(), w.getnframes()) == (16000, len(played))
    assert np.array_equal(read_wav(path)[0], played)


@pytest.mark.parametrize("content, needle", [
    (b"RIFF\x04\x00\x00\x00WAVE", "no data chunk"),
    (b"RIFF\x24\x00\x00\x00WAVEdata\x00\x00\x00\x00", "before the format"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00"
     b"\x40\x1f\x00\x00\x01\x00\x08\x00data\x00\x00\x00\x00", "8-bit"),
    (b"OggS" + bytes(40), "not a WAV file")])
def test_read_wav_names_what_is_wrong_with_a_file(tmp_path: Path, content: bytes,
                                                  needle: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=needle):
        read_wav(str(path))


def test_read_wav_skips_other_chunks_and_reads_stereo_as_its_first_channel(tmp_path: Path) -> None:
    import wave
    path = str(tmp_path / "stereo.wav")
    left, right = np.arange(0, 100, dtype=np.int16), np.arange(1000, 1100, dtype=np.int16)
    with wave.open(path, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.column_stack([left, right]).astype("<i2").tobytes())
    raw = Path(path).read_bytes()
    extra = b"LIST" + (5).to_bytes(4, "little") + b"INFOx\x00"     # odd size, padded
    Path(path).write_bytes(raw[:4] + (len(raw) - 8 + len(extra)).to_bytes(4, "little") +
                           raw[8:36] + extra + raw[36:])
    pcm, rate = read_wav(path)
    assert rate == 8000 and np.array_equal(pcm, left)


@pytest.mark.parametrize("name,content,needle", [("missing.wav", None, "No such file"),
                                                  ("junk.wav", b"not a wav", "mic"),
                                                  ("rate.wav", "8k", "8000 Hz")])
def test_simulated_card_reports_a_bad_microphone_file(tmp_path: Path, name: str,
                                                      content: object, needle: str) -> None:
    path = tmp_path / name
    if content == "8k":
        write_wav(str(path), tone(500, 0.5, 8000), 8000)
    elif content is not None:
        path.write_bytes(content)  # type: ignore[arg-type]
    card = SimulatedSoundCard(16000, 320, mic_file=str(path))
    with pytest.raises(AudioDeviceError) as info:
        card.open()
    assert needle in str(info.value) or name in str(info.value)


ALSA_PROBE = r"""
import json, sys
import numpy as np
from intercom.media.devices import AlsaSoundCard, AudioDeviceError
rate, period = int(sys.argv[1]), int(sys.argv[2])
card = AlsaSoundCard(rate, period, "intercom_capture", "intercom_playback")
card.open()
frames = [card.read() for _ in range(10)]
for f in frames:
    card.write(f)
card.close()
try:
    AlsaSoundCard(rate, period, "no_such_pcm", "intercom_playback").open()
    error = ""
except AudioDeviceError as exc:
    error = str(exc)
print(json.dumps({"first": frames[0][:4].tolist(), "n": sum(len(f) for f in frames),
                  "error": error}))
"""


@pytest.mark.parametrize("rate, period_ms", [(8000, 20), (16000, 10), (48000, 20),
                                             (48000, 10)])
def test_alsa_device_through_a_file_pcm(tmp_path: Path, rate: int, period_ms: int) -> None:
    """The real pyalsaaudio code path, with ALSA's file plugin standing in for a card."""
    pytest.importorskip("alsaaudio")
    period = rate * period_ms // 1000
    source = (np.arange(20 * period) % 200 * 50).astype("<i2")
    source.tofile(tmp_path / "in.raw")
    conf = tmp_path / "asound.conf"
    conf.write_text(f"""
pcm.intercom_capture {{
    type file
    slave.pcm {{ type null }}
    file "/dev/null"
    infile "{tmp_path / 'in.raw'}"
    format "raw"
}}
pcm.intercom_playback {{
    type file
    slave.pcm {{ type null }}
    file "{tmp_path / 'out.raw'}"
    format "raw"
}}
""")
    env = {**os.environ, "ALSA_CONFIG_PATH": str(conf)}
    out = subprocess.run([sys.executable, "-c", ALSA_PROBE, str(rate), str(period)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["first"] == source[:4].tolist() and result["n"] == 10 * period
    assert "no_such_pcm" in result["error"]
    played = np.fromfile(tmp_path / "out.raw", dtype="<i2")
    assert np.array_equal(played, source[:10 * period])


class StallingCard(SimulatedSoundCard):
    """A simulated card whose reader is held up once, ``stall`` s at period ``at``:
    the card's clock runs on, so the periods missed are an overrun."""

    def __init__(self, *args: object, at: int, stall: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.at, self.stall, self.reads = at, stall, 0

    def read(self) -> np.ndarray:
        self.reads += 1
        if self.reads == self.at:
            time.sleep(self.stall)
        return super().read()


async def _two_streams(tmp_path: Path, mic_a: str = "", period_ms: int = 20,
                       stall_a: float = 0.0) -> dict[str, Any]:
    digits: list[str] = []
    errors: list[str] = []
    rtp_a = await RtpSession.open("127.0.0.1", 30000, 30998, lambda *a: None)
    rtp_b = await RtpSession.open("127.0.0.1", 31000, 31998, lambda *a: None)
    rtp_a.set_remote("127.0.0.1", rtp_b.local_port)
    rtp_b.set_remote("127.0.0.1", rtp_a.local_port)
    codec = codec_for(CODECS["PCMA"].format)
    a = AudioStream(lambda: StallingCard(48000, 48 * period_ms, mic_file=mic_a,
                                         mic_tone_hz=440, speaker_file=str(tmp_path / "a.wav"),
                                         at=30 if stall_a else 0, stall=stall_a),
                    48000, rtp_a, codec, 101, digits.append, errors.append,
                    device_period_ms=period_ms)
    b = AudioStream(lambda: SimulatedSoundCard(8000, 160, mic_tone_hz=1000,
                                               speaker_file=str(tmp_path / "b.wav")),
                    8000, rtp_b, codec, 101, digits.append, errors.append)
    a.start()
    b.start()
    await asyncio.sleep(1.2)
    b.send_dtmf("42#")
    await asyncio.sleep(1.2)
    a.stop()
    b.stop()
    stats = a.stats()
    rtp_a.close()
    rtp_b.close()
    return {"digits": digits, "errors": errors, "stats": stats}


@pytest.mark.parametrize("period_ms", [20, 10])     # the card's period; RTP stays at 20 ms
def test_two_streams_carry_tones_both_ways_and_dtmf(tmp_path: Path, period_ms: int) -> None:
    result = asyncio.run(_two_streams(tmp_path, period_ms=period_ms))
    assert result["digits"] == ["4", "2", "#"] and result["errors"] == []
    for wav, freq in (("a.wav", 1000), ("b.wav", 440)):
        pcm, rate = read_wav(str(tmp_path / wav))
        level, rms = loudest_tone_window(pcm, freq, rate)
        assert level > -25 and level > rms - 3, (wav, level, rms)
    assert result["stats"]["rtp_sent"] > 80             # ~2.4 s of 20 ms packets
    # The keys go beside b's audio, not in its place: a hears b all the way through
    # them (the demo's speaker fell to -120 dBFS while its phone keyed the code).
    jitter = result["stats"]["jitter"]
    assert jitter["concealed"] <= 2 and jitter["replaced"] == 0, jitter
    pcm, rate = read_wav(str(tmp_path / "a.wav"))
    levels = tone_levels(pcm, 1000, rate, window=0.1)
    start, length = longest_run(levels, -25)
    assert length >= len(levels) - start - 3, levels   # from the first tenth to the end


def test_an_overrun_is_counted_and_the_audio_thread_carries_on(tmp_path: Path) -> None:
    """The audio thread held up for 400 ms in a call: the card overruns; the stream
    counts it, takes up the card's clock again and keeps sending and playing."""
    result = asyncio.run(_two_streams(tmp_path, stall_a=0.4))
    stats = result["stats"]
    assert isinstance(stats, dict)
    assert stats["xruns"] == 1 and stats["device_error"] is None
    assert result["digits"] == ["4", "2", "#"] and result["errors"] == []
    # 2.4 s of 20 ms frames less the 0.4 s stall, give or take start and stop
    assert 90 <= stats["rtp_sent"] <= 125, stats
    pcm, rate = read_wav(str(tmp_path / "a.wav"))
    level, rms = loudest_tone_window(pcm[-rate // 2:], 1000, rate)   # still playing at the end
    assert level > -25, level


def test_alsa_xruns_are_recovered_in_place() -> None:
    """pyalsaaudio reports an overrun as a negative length from read() and an
    underrun as a negative count from write(), having re-prepared the PCM: the
    card counts each and goes on. (No clocked ALSA device exists on a CI machine,
    so the PCMs here are stand-ins that answer as pyalsaaudio does.)"""
    from intercom.media.devices import AlsaSoundCard

    class Capture:
        def __init__(self) -> None:
            self.answers = [(160, b"\x01\x00" * 160), (-32, b""), (160, b"\x02\x00" * 160)]

        def read(self) -> tuple[int, bytes]:
            return self.answers.pop(0)

    class Playback:
        def __init__(self) -> None:
            self.answers = [-32, 160, 160]
            self.data: list[bytes] = []

        def write(self, data: bytes) -> int:
            self.data.append(data)
            return self.answers.pop(0)

    card = AlsaSoundCard(8000, 160)
    card._capture, card._playback = Capture(), Playback()
    frames = [card.read() for _ in range(3)]
    assert [int(f[0]) for f in frames] == [1, 0, 2] and all(len(f) == 160 for f in frames)
    card.write(np.full(160, 7, dtype=np.int16))       # underrun: written again
    card.write(np.full(160, 8, dtype=np.int16))
    assert card.xruns == 2
    assert [d[:2] for d in card._playback.data] == [b"\x07\x00", b"\x07\x00", b"\x08\x00"]


def test_broken_device_is_reported_and_dtmf_still_arrives(tmp_path: Path) -> None:
    result = asyncio.run(_two_streams(tmp_path, mic_a=str(tmp_path / "missing.wav")))
    assert result["digits"] == ["4", "2", "#"]         # RTP and DTMF do not need the device
    assert result["errors"] and "missing.wav" in result["errors"][0]
    assert "missing.wav" in str(result["stats"]["device_error"])


async def _latching() -> tuple[list[int], object]:
    got: list[int] = []
    ours = await RtpSession.open("127.0.0.1", 32000, 32998, lambda pt, *a: got.append(pt))
    peer = await RtpSession.open("127.0.0.1", 33000, 33998, lambda *a: None)
    stranger = await RtpSession.open("127.0.0.1", 34000, 34998, lambda *a: None)
    ours.set_remote("127.0.0.1", peer.local_port)
    for session in (peer, stranger):
        session.set_remote("127.0.0.1", ours.local_port)
    peer.send(0, b"\xff" * 160, 0)
    await asyncio.sleep(0.1)
    stranger.send(101, bytes([1, 0x80, 3, 32]), 160)      # an injected DTMF '1'
    await asyncio.sleep(0.1)
    peer.send(0, b"\xff" * 160, 160)
    await asyncio.sleep(0.1)
    for session in (ours, peer, stranger):
        session.close()
    return got, ours.stats


def test_rtp_latches_to_the_first_source_and_drops_strangers() -> None:
    got, stats = asyncio.run(_latching())
    assert got == [0, 0]
    assert stats.foreign == 1 and stats.received == 2  # type: ignore[attr-defined]


async def _drained_late() -> tuple[list[float], list[float], float, int, list[bytes]]:
    arrivals: list[float] = []
    loop_saw: list[bytes] = []
    ours = await RtpSession.open("127.0.0.1", 32000, 32998,
                                 lambda *packet: arrivals.append(packet[-1]))
    peer = await RtpSession.open("127.0.0.1", 33000, 33998, lambda *a: None)
    ours.set_remote("127.0.0.1", peer.local_port)
    peer.set_remote("127.0.0.1", ours.local_port)
    ours.rtcp_received = lambda data, source: loop_saw.append(data)  # type: ignore[method-assign]
    ours.take_over()                    # the media thread's: the loop no longer reads it
    sent = []
    for i in range(3):
        sent.append(time.monotonic())
        peer.send(0, b"\xff" * 160, 160 * i)
        await asyncio.sleep(0.03)
    peer._send_rtcp(b"\x80\xc9\x00\x01" + b"\x00" * 4)      # an RR on the RTCP port
    peer.rtcp_mux = True
    peer._send_rtcp(b"\x80\xc9\x00\x01" + b"\x00" * 4)      # and one on the RTP port
    await asyncio.sleep(0.1)
    assert arrivals == [] and len(loop_saw) == 1      # the RTCP port is still the loop's
    drained_at = time.monotonic()
    taken = await asyncio.to_thread(ours.drain)
    await asyncio.sleep(0.05)            # the RTCP handed to the loop
    ours.hand_back()
    for session in (ours, peer):
        session.close()
    return arrivals, sent, drained_at, taken, loop_saw


def test_the_media_thread_drains_rtp_with_the_kernels_arrival_times() -> None:
    """Packets that waited in the socket until the media thread's turn carry the time
    they arrived, not the time they were taken (the jitter buffer sees the network's
    jitter, not the card's period); RTCP on the RTP port goes to the loop."""
    arrivals, sent, drained_at, taken, loop_saw = asyncio.run(_drained_late())
    assert taken == 4 and len(arrivals) == 3
    for arrival, when in zip(arrivals, sent):
        assert when <= arrival + 0.002 and arrival - when < 0.015, (arrivals, sent)
    assert drained_at - arrivals[-1] > 0.1
    assert len(loop_saw) == 2


def _socket_pair(family: int = 0) -> tuple[Any, Any]:
    import socket
    family = family or socket.AF_INET
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    ours = socket.socket(family, socket.SOCK_DGRAM)
    ours.bind((host, 0))
    ours.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, 35, 1)                 # SO_TIMESTAMPNS
    peer = socket.socket(family, socket.SOCK_DGRAM)
    peer.bind((host, 0))
    peer.settimeout(1.0)
    return ours, peer


def test_the_c_data_path_takes_a_backlog_in_batches_with_arrival_times() -> None:
    from intercom.cext.rtpio import RtpIO
    ours, peer = _socket_pair()
    try:
        io = RtpIO(ours.fileno())
        assert io.receive() == []                             # nothing waiting: no error
        sent_at = time.monotonic()
        for i in range(40):
            peer.sendto(bytes([0x80, 0, 0, i]) + bytes(8), ours.getsockname())
        peer.sendto(b"x" * 3000, ours.getsockname())          # too large for RTP here
        peer.sendto(b"", ours.getsockname())                  # a keepalive
        time.sleep(0.05)
        batches = []
        for _ in range(10):
            batch = io.receive()
            if not batch:
                break
            batches.append(batch)
        got = [item for batch in batches for item in batch]
        assert [len(b) for b in batches] == [16, 16, 9]        # three system calls
        assert [data[3] for data, _, _ in got[:40]] == list(range(40))
        assert got[40][0] == b"" and io.oversized == 1
        assert all(source == peer.getsockname() for _, source, _ in got)
        assert all(sent_at <= arrival <= sent_at + 0.05 for _, _, arrival in got)
        assert io.errors == 0
    finally:
        ours.close()
        peer.close()


def test_the_c_data_path_sends_rtp_to_where_it_is_aimed_on_either_family() -> None:
    import socket
    from intercom.cext.rtpio import RtpIO
    from intercom.cext import rtp
    for family in (socket.AF_INET, socket.AF_INET6):
        ours, peer = _socket_pair(family)
        try:
            io = RtpIO(ours.fileno())
            assert io.send_rtp(0, False, 1, 160, 7, b"\xff" * 160)   # not aimed: nothing sent
            host, port = peer.getsockname()[:2]
            io.aim(host, port)
            assert io.target == (host, port)
            assert io.send_rtp(8, True, 65535, 2**32 + 5, 0xCAFEBABE, b"\xd5" * 160)
            assert io.send(b"\x80\x08" + bytes(10))
            first, _ = peer.recvfrom(2048)
            assert rtp.parse(first) == (8, True, 65535, 5, 0xCAFEBABE, b"\xd5" * 160)
            assert peer.recvfrom(2048)[0] == b"\x80\x08" + bytes(10)
            peer.sendto(b"\x80\x00" + bytes(10), ours.getsockname())
            time.sleep(0.02)
            assert [source for _, source, _ in io.receive()] == [(host, port)]
        finally:
            ours.close()
            peer.close()


@pytest.mark.parametrize("host, port, needle", [("door.example", 5004, "numeric"),
                                                ("127.0.0.1", 70000, "0..65535"),
                                                ("", 5004, "numeric")])
def test_the_c_data_path_refuses_a_target_it_cannot_send_to(host: str, port: int,
                                                             needle: str) -> None:
    from intercom.cext.rtpio import RtpIO
    ours, peer = _socket_pair()
    try:
        io = RtpIO(ours.fileno())
        with pytest.raises(ValueError, match=needle):
            io.aim(host, port)
        with pytest.raises(ValueError, match="payload type"):
            io.send_rtp(128, False, 0, 0, 0, b"")
        with pytest.raises(ValueError, match="bytes"):
            io.send_rtp(0, False, 0, 0, 0, bytes(1501))
    finally:
        ours.close()
        peer.close()


async def _sent_to_a_name() -> tuple[bytes, tuple[str, int] | None]:
    import socket
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    session = await RtpSession.open("127.0.0.1", 34000, 34998, lambda *a: None)
    try:
        session.set_remote("localhost", peer.getsockname()[1])   # an SDP with a name in c=
        session.send(0, b"\xff" * 160, 1234)
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(peer, 2048), 2)
        assert session._io is not None
        return data, session._io.target
    finally:
        session.close()
        peer.close()


def test_an_rtp_peer_named_in_the_sdp_is_resolved_once_and_sent_to() -> None:
    data, target = asyncio.run(_sent_to_a_name())
    assert data[:2] == b"\x80\x00" and len(data) == 172
    assert target is not None and target[0] in ("127.0.0.1", "::1")
