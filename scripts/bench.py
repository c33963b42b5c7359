"""Benchmarks: print figures for docs/benchmarks.md (run with scripts/bench).

1. Per-frame cost of the Cython hot paths (G.711, RTP, the resampler).
2. SIP: one typical INVITE parsed, and parsed and serialised; messages per second.
3. Echo cancellation on the simulated room: ERLE, convergence (a new canceller,
   and one kept from the last call), near-end quality in double talk (PESQ),
   and the cost per frame.
4. CPU time and memory of a running station (`intercom run`, simulated board
   and sound card at 48 kHz) through a call with the demo phone.
5. The media thread's work per card period, run flat out, and the Opus
   encoder's cost per complexity (``period``); the station beside a baresip
   door station (``cpu``).
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import timeit
import warnings
from pathlib import Path
from typing import Any


from intercom.cext import g711, rtp
from intercom.cext.dtmf import DtmfDetector
from intercom.cext.resample import Resampler
from intercom.media.codecs import codec_for, spec
from intercom.media.rtcp import RtcpSession
from intercom.demo import free_udp_port, wait_until
from intercom.demo_peer import DemoPhone
from intercom.media.echo import EchoControl, EchoPath, EchoPathSpec, measure
from intercom.media.signal import synthesized_speech, tone
from intercom.sip.message import parse_message

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

CALL_SECONDS = 30.0
BARESIP_CALL_SECONDS = 60.0


def per_call(stmt: object, number: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number  # type: ignore[arg-type]


def micro() -> None:
    frame = tone(440, 0.02, 8000)
    frame48 = tone(440, 0.02, 48000)
    raw = frame.tobytes()
    enc = g711.ulaw_encode(frame)
    down = Resampler(48000, 8000)
    pkt = rtp.build(0, False, 1, 160, 7, enc)
    detector = DtmfDetector(8000)
    wide = tone(440, 0.02, 16000)
    g722 = codec_for(spec("G722").format)
    opus = codec_for(spec("opus").format)
    session = RtcpSession(1, "bench", 8000)
    session.on_rtp_received(2, 1, 160, 1.0)
    session.on_rtp_sent(160, 160, 1.0)
    rows = [
        ("G.711 mu-law encode, 160 samples", per_call(lambda: g711.ulaw_encode(frame), 20000)),
        ("  (stdlib audioop, for scale)", per_call(lambda: audioop.lin2ulaw(raw, 2), 20000)),
        ("G.711 mu-law decode, 160 bytes", per_call(lambda: g711.ulaw_decode(enc), 20000)),
        ("RTP build, 160-byte payload", per_call(lambda: rtp.build(0, False, 1, 160, 7, enc), 20000)),
        ("RTP parse", per_call(lambda: rtp.parse(pkt), 20000)),
        ("resample 48 kHz -> 8 kHz, one 20 ms frame", per_call(lambda: down.process(frame48), 5000)),
        ("in-band DTMF detector, one 20 ms frame at 8 kHz",
         per_call(lambda: detector.feed(frame), 5000)),
        ("G.722 encode + decode, one 20 ms frame", per_call(
            lambda: g722.decode(g722.encode(wide)), 5000)),
        ("Opus encode + decode, one 20 ms frame (16 kHz)", per_call(
            lambda: opus.decode(opus.encode(wide)), 2000)),
        ("RTCP compound report (SR + block + SDES)", per_call(
            lambda: session.report(1.8e9), 5000)),
    ]
    print("Per-frame costs (best of 5):")
    for name, seconds in rows:
        print(f"  {name:45s} {seconds * 1e6:8.2f} us")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def station_call(work: Path) -> dict[str, float]:
    phone_port = free_udp_port()
    phone = DemoPhone(phone_port, str(work / "phone.wav"), answer_after=0.2)
    await phone.start()
    sock = work / "control.sock"
    cfg = work / "station.toml"
    cfg.write_text(f"""
[sip]
listen = "127.0.0.1"
port = {free_udp_port()}
[call]
targets = ["sip:resident@127.0.0.1:{phone_port}"]
[audio]
rate = 48000
speaker_file = "{work / 'speaker.wav'}"
# The simulated room's convolution is the simulator's work, not the firmware's.
sim_echo_gain_db = -120
[control]
socket = "{sock}"
[log]
level = "warning"
database = "{work / 'events.db'}"
""")
    proc = subprocess.Popen([sys.executable, "-m", "intercom.cli", "run", "--config", str(cfg)])
    try:
        await wait_until(sock.exists, 15)
        await asyncio.sleep(1.0)
        idle_cpu0, t0 = proc_cpu(proc.pid), time.monotonic()
        await asyncio.sleep(5.0)
        idle = (proc_cpu(proc.pid) - idle_cpu0) / (time.monotonic() - t0)
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(json.dumps({"cmd": "press", "button": "bell"}).encode() + b"\n")
        await reader.readline()
        writer.close()
        await wait_until(lambda: phone.call is not None and phone.call.stream is not None, 10)
        await asyncio.sleep(1.0)
        cpu0, t0 = proc_cpu(proc.pid), time.monotonic()
        await asyncio.sleep(CALL_SECONDS)
        busy = (proc_cpu(proc.pid) - cpu0) / (time.monotonic() - t0)
        rss = proc_rss(proc.pid)[0]
        phone.hangup()
        await asyncio.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(10)
        phone.close()
    return {"idle": idle, "call": busy, "rss": rss}


def proc_rss(pid: int) -> tuple[float, float]:
    """Resident memory and its anonymous part (what the process itself holds, not
    shared library pages), in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            fields[name] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("RssAnon", 0.0)


SIDE_ROUNDS = int(os.environ.get("INTERCOM_BENCH_ROUNDS", "3"))
SIDE_SECONDS = float(os.environ.get("INTERCOM_BENCH_SECONDS", "60"))
SETTLE = 1.0


def _peers() -> Any:
    """The test suite's peer helpers (baresip, the station), for side-by-side runs."""
    tests = str(Path(__file__).resolve().parent.parent / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import conftest
    import peers
    return conftest, peers


def _measured(pid: int, seconds: float) -> dict[str, float]:
    """CPU seconds per minute over ``seconds``, then the memory."""
    c0, t0 = proc_cpu(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = proc_cpu(pid), time.monotonic()
    rss, anon = proc_rss(pid)
    return {"cpu": (c1 - c0) * 60.0 / (t1 - t0), "rss": rss, "anon": anon}


def one_call(candidate: str, codec: str, work: Path, seconds: float,
             camera: str = "", extra: str = "") -> dict[str, float]:
    """One call from ``candidate`` (``station``, ``station-no-aec`` or ``baresip``)
    to an answering baresip limited to ``codec``: the caller's CPU and memory in
    the call, and its memory idle before it. ``camera``: the station's [camera]
    lines, with a baresip that takes video; ``extra``: more config sections."""
    conftest, peers = _peers()
    for sub in ("answer", "station", "door"):
        (work / sub).mkdir()
    answer = peers.Baresip(work / "answer", conftest.free_port_pair_gap(2), conftest.free_port(),
                           "<sip:resident@127.0.0.1>;regint=0;answermode=auto", 660.0,
                           seconds + 30, codec=codec, record=False, video=bool(camera))
    target = f"sip:resident@127.0.0.1:{answer.sip_port}"
    caller: Any = None
    try:
        if candidate.startswith("station"):
            # the simulated room is the simulator's work; without the echo canceller
            # (and its preprocessor) the station does what the baresip door station does
            caller = peers.Station(work / "station", "", [target], ring_timeout=20,
                                   log_level="warning",
                                   extra='[media]\nsrtp = "off"\n' + camera + extra,
                                   audio="sim_echo_gain_db = -120\n" +
                                   ("echo_cancel = false\n" if candidate == "station-no-aec"
                                    else ""))
        else:
            caller = peers.Baresip(work / "door", conftest.free_port_pair_gap(2),
                                   conftest.free_port(), "<sip:door@127.0.0.1>;regint=0",
                                   440.0, seconds + 30, codec=codec, record=False)
        time.sleep(3.0)
        idle = proc_rss(caller.proc.pid)
        if candidate.startswith("station"):
            caller.press()
            caller.wait_event(15, event="call", state="answered")
        else:
            caller.command("dial", target)
            caller.wait_event("CALL_ESTABLISHED", 15)
        time.sleep(SETTLE)
        figures = _measured(caller.proc.pid, seconds)
        figures["idle_rss"], figures["idle_anon"] = idle
        return figures
    finally:
        if caller is not None:
            caller.stop()
        answer.stop()


def _first_datagram(sock: Any, word: bytes, timeout: float) -> float:
    """When the first datagram starting with ``word`` arrives (monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data, _ = sock.recvfrom(65536)
        except TimeoutError:
            break
        if data.startswith(word):
            return time.monotonic()
    raise RuntimeError(f"no {word.decode()} within {timeout} s")


def start_to_register(candidate: str, work: Path) -> float:
    """Milliseconds from starting the process to its first REGISTER on the wire."""
    import socket
    conftest, peers = _peers()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as registrar:
        registrar.bind(("127.0.0.1", 0))
        port = registrar.getsockname()[1]
        caller: Any = None
        try:
            if candidate == "station":
                caller = peers.Station(work, f'registrar = "sip:127.0.0.1:{port}"\n'
                                             'password = "x"', ["sip:resident@127.0.0.1:9"],
                                      log_level="warning")
            else:
                caller = peers.Baresip(work, conftest.free_port_pair_gap(2), conftest.free_port(),
                                       f"<sip:door@127.0.0.1:{port}>;regint=60;auth_pass=x",
                                       440.0, 5, record=False)
            started: float = caller.started
            return (_first_datagram(registrar, b"REGISTER", 15) - started) * 1000
        finally:
            if caller is not None:
                caller.stop()


def press_to_invite(candidate: str, work: Path) -> float:
    """Milliseconds from ``intercom ctl press bell`` (a new process, as a script or
    a second button daemon runs it) to the INVITE on the wire; for baresip, from its
    control connection's ``dial`` command (a running process) to its INVITE."""
    import socket
    conftest, peers = _peers()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        target = f"sip:resident@127.0.0.1:{phone.getsockname()[1]}"
        caller: Any = None
        try:
            if candidate == "station":
                caller = peers.Station(work, "", [target], log_level="warning")
                time.sleep(1.0)
                command = [str(Path(sys.executable).parent / "intercom"), "ctl", "--socket",
                           str(caller.socket), "press", "bell"]
                t0 = time.monotonic()
                subprocess.Popen(command, stdout=subprocess.DEVNULL)
            else:
                caller = peers.Baresip(work, conftest.free_port_pair_gap(2), conftest.free_port(),
                                       "<sip:door@127.0.0.1>;regint=0", 440.0, 5, record=False)
                time.sleep(1.0)
                t0 = time.monotonic()
                caller.command("dial", target)
            return (_first_datagram(phone, b"INVITE", 10) - t0) * 1000
        finally:
            if caller is not None:
                caller.stop()


# An INVITE as a phone gets it through a proxy: two Vias, Record-Route, SDP.
TYPICAL_INVITE = (
    b"INVITE sip:resident@192.168.1.20:5060;transport=udp SIP/2.0\r\n"
    b"Record-Route: <sip:192.168.1.2;lr;ftag=8a3bc1d2e4f5>\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.2;branch=z9hG4bKcydzigwkX.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.50:5060;received=192.168.1.50;branch=z9hG4bK5a1f3e9c7b2d;rport=5060\r\n"
    b"Max-Forwards: 69\r\n"
    b"From: \"Front door\" <sip:door@pbx.home.arpa>;tag=8a3bc1d2e4f5\r\n"
    b"To: <sip:resident@pbx.home.arpa>\r\n"
    b"Call-ID: 3f1e9a7c5b2d4e6f8a0b1c2d@192.168.1.50\r\n"
    b"CSeq: 2 INVITE\r\n"
    b"Contact: <sip:door@192.168.1.50:5060>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK\r\n"
    b"Supported: 100rel, timer\r\n"
    b"Session-Expires: 1800\r\nMin-SE: 90\r\n"
    b"User-Agent: intercom/0.1\r\n"
    b"Proxy-Authorization: Digest username=\"door\", realm=\"pbx.home.arpa\", "
    b"nonce=\"Y2FmZWJhYmU1Njc4\", uri=\"sip:resident@pbx.home.arpa\", "
    b"response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, qop=auth, "
    b"cnonce=\"0a4f113b\", nc=00000001\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 235\r\n\r\n"
    b"v=0\r\no=- 229589355 1 IN IP4 192.168.1.50\r\ns=intercom\r\nc=IN IP4 192.168.1.50\r\n"
    b"t=0 0\r\nm=audio 30550 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\na=sendrecv\r\n")


def sip_parsing() -> None:
    assert parse_message(TYPICAL_INVITE).body.endswith(b"a=sendrecv\r\n")
    parse = per_call(lambda: parse_message(TYPICAL_INVITE), 2000)
    both = per_call(lambda: parse_message(TYPICAL_INVITE).to_bytes(), 2000)
    print(f"\nSIP ({len(TYPICAL_INVITE)}-byte INVITE through a proxy, best of 5):")
    print(f"  {'parse one INVITE':45s} {parse * 1e6:8.1f} us  ({1 / parse:,.0f} messages/s)")
    print(f"  {'parse and serialise one INVITE':45s} {both * 1e6:8.1f} us")


ROOMS = [(20, 100), (60, 150), (150, 200), (300, 250)]   # bulk delay, room response (ms)


def double_talk_pesq(far: object, rate: int, frame: int, spec: EchoPathSpec) -> float:
    """PESQ of the visitor's speech after the canceller, while the resident talks too."""
    import numpy as np
    from pesq import pesq
    far_pcm = np.asarray(far)
    near = synthesized_speech(rate, "Hello, I am at the front door with your parcel.", "en+f3")
    start = 8 * rate
    visitor = np.zeros(len(far_pcm), dtype=np.int16)
    visitor[start:start + len(near)] = near // 2
    path, control = EchoPath(spec, rate), EchoControl(rate, frame, 200, spec.delay_ms)
    out = []
    for i in range(0, len(far_pcm) - frame + 1, frame):
        played = far_pcm[i:i + frame]
        mic = path.microphone(played, visitor[i:i + frame])
        control.played(played)
        out.append(control.clean(mic))
    cleaned = np.concatenate(out)[start:start + len(near)]
    return float(pesq(rate, visitor[start:start + len(cleaned)], cleaned,
                      "wb" if rate == 16000 else "nb"))


def echo_figures() -> None:
    import numpy as np
    print("\nEcho cancellation (libspeexdsp MDF + preprocessor, 20 ms frames, espeak-ng speech;"
          "\n target: ERLE >= 30 dB, convergence < 1 s):")
    print(f"  {'rate':>5} {'delay':>6} {'room':>5} {'tail':>5} {'ERLE':>8} {'new':>8} "
          f"{'kept':>8}")
    for rate in (16000, 8000):
        frame = rate // 50
        one = synthesized_speech(rate)
        far = np.concatenate([one, one])
        for delay, room in ROOMS:
            spec = EchoPathSpec(delay_ms=delay, room_ms=room)
            tail = max(200, room + 50)
            control = EchoControl(rate, frame, tail, delay)
            cold = measure(spec, far, rate, frame, control=control)
            control.restart()
            warm = measure(spec, far, rate, frame, control=control)

            def seconds(value: float | None) -> str:
                return "never" if value is None else f"{value:.2f} s"
            print(f"  {rate:>5} {delay:>4}ms {room:>3}ms {tail:>3}ms {cold.erle_db:6.1f}dB "
                  f"{seconds(cold.converged_s):>8} {seconds(warm.converged_s):>8}")
    spec = EchoPathSpec(delay_ms=60, room_ms=150)
    wide = synthesized_speech(16000)
    print(f"  double talk, visitor's speech after the canceller: PESQ "
          f"{double_talk_pesq(np.concatenate([wide, wide]), 16000, 320, spec):.2f} (wideband)")
    control = EchoControl(16000, 320, 200, 60)
    chunk = wide[:320]
    control.played(chunk)

    def one_frame() -> None:
        control.played(chunk)
        control.clean(chunk)
    cost = per_call(one_frame, 500)
    print(f"  cost of one 20 ms frame at 16 kHz (canceller + preprocessor): {cost * 1e6:.0f} us")


def jitter_figures(seeds: int = 5) -> None:
    """Speech through each receive path under each impairment trace: PESQ and delay."""
    import numpy as np
    from pesq import pesq

    from intercom.cext import jitter
    from intercom.media import netsim
    speech = synthesized_speech(16000)
    speech = np.concatenate([speech, np.zeros(8000, dtype=np.int16), speech])
    _, payloads, n = netsim.encode(speech, "opus")
    print(f"\nJitter buffer: {len(speech) / 16000:.0f} s of espeak-ng speech, Opus 16 kHz 20 ms "
          f"with FEC, {seeds} seeded runs per trace (intercom.media.netsim);"
          f"\n PESQ wideband (mean) and mean added delay (ms beyond the fastest packet);"
          f"\n target: higher PESQ than both references at no more delay")
    columns = [("ours", "adaptive", 0.0), ("libspeexdsp", "speex", 0.0),
               ("fixed 60 ms", "fixed", 0.0), ("ours, min 60 ms", "adaptive", 60.0)]
    print(f"  {'trace':<8} {'loss':>5} " + " ".join(f"{c[0]:>16}" for c in columns))
    for name in netsim.TRACES:
        cells, losses = [], []
        for _, receiver, floor in columns:
            scores, delays = [], []
            for seed in range(1, seeds + 1):
                trace = netsim.make_trace(name, len(payloads), seed)
                losses.append(trace.loss)
                result = netsim.run(receiver, trace, payloads, "opus", n, min_delay_ms=floor)
                scores.append(pesq(16000, speech, result.audio[:len(speech) + 16000], "wb"))
                delays.append(result.mean_delay_ms)
            cells.append(f"{np.mean(scores):5.2f} @{np.mean(delays):5.1f} ms")
        print(f"  {name:<8} {np.mean(losses) * 100:4.1f}% " + " ".join(f"{c:>16}" for c in cells))
    jb = jitter.JitterBuffer(48000, 960)
    k = [0]

    def one_packet() -> None:
        i = k[0]
        k[0] += 1
        jb.put(i & 0xFFFF, (i * 960) & 0xFFFFFFFF, 1, b"x", i * 20.0 + 1.0)
        jb.get(i * 20.0 + 15.0)
    print(f"  cost per packet (put + get): {per_call(one_packet, 20000) * 1e6:.1f} us")


LATENCY_CLICKS = 12


async def device_latency(period_ms: int = 10) -> tuple[list[float], list[float]]:
    """Click latencies through a call's audio path at zero network jitter (G.722,
    16 kHz card): microphone to wire, and wire to speaker, in ms."""
    import numpy as np

    from intercom.media.devices import SimulatedSoundCard
    from intercom.media.rtp import RtpSession
    from intercom.media.signal import write_wav
    from intercom.media.stream import AudioStream
    rate, frame = 16000, 320
    card_frames: list[tuple[float, np.ndarray]] = []
    opened: list[float] = []

    class Card(SimulatedSoundCard):
        def open(self) -> None:
            super().open()
            opened.append(self._start)

        def write(self, pcm: np.ndarray) -> None:
            card_frames.append((time.monotonic(), pcm.copy()))

    with tempfile.TemporaryDirectory() as tmp:
        # the microphone hears a click every 1.013 s (so it lands all over a frame)
        mic = np.zeros(int(1.013 * rate), dtype=np.int16)
        mic[100:104] = 20000
        write_wav(f"{tmp}/click.wav", mic, rate)
        sent: list[tuple[float, bytes]] = []
        peer = await RtpSession.open("127.0.0.1", 36000, 36998,
                                     lambda pt, m, seq, ts, ssrc, p, arrival: sent.append(
                                         (arrival, p)))
        ours = await RtpSession.open("127.0.0.1", 37000, 37998, lambda *a: None)
        ours.set_remote("127.0.0.1", peer.local_port)
        peer.set_remote("127.0.0.1", ours.local_port)
        codec = codec_for(spec("G722").format)
        stream = AudioStream(lambda: Card(rate, rate * period_ms // 1000,
                                          mic_file=f"{tmp}/click.wav"),
                             rate, ours, codec, None, lambda d: None, lambda e: None,
                             device_period_ms=period_ms)
        stream.start()
        # the peer sends 20 ms packets on time, a click at a different place each second
        far = codec_for(spec("G722").format)
        signal = np.zeros(rate * (LATENCY_CLICKS + 2), dtype=np.int16)
        click_at = [rate * (k + 1) + (k * 37) % frame for k in range(LATENCY_CLICKS)]
        for c in click_at:
            signal[c:c + 4] = 20000
        arrivals = []
        start = time.monotonic() + 0.05
        for i in range(len(signal) // frame):
            await asyncio.sleep(max(0.0, start + i * 0.020 - time.monotonic()))
            arrivals.append(time.monotonic())
            peer.send(9, far.encode(signal[i * frame:(i + 1) * frame]), i * frame // 2)
        await asyncio.sleep(0.3)
        stream.stop()
        peer.close()
        ours.close()
    period_s = period_ms / 1000
    # microphone -> wire: when the card's sample clock captured each click, against
    # when the packet carrying it left
    decoder = codec_for(spec("G722").format)
    mic_to_wire = []
    for when, payload in sent:
        if np.abs(decoder.decode(payload)).max() > 8000:
            captured = [opened[0] + (k * len(mic) + 100) / rate for k in range(100)]
            mic_to_wire.append((when - max(c for c in captured if c <= when)) * 1000)
    # wire -> speaker: a packet's arrival against the card playing its first sample
    # (one period after the period holding it was written)
    wire_to_speaker = []
    for c in click_at:
        arrival = arrivals[c // frame]
        for when, pcm in card_frames:
            hit = np.flatnonzero(np.abs(pcm) > 8000)
            if len(hit) and when >= arrival:
                heard = when + period_s + hit[0] / rate - (c % frame) / rate
                wire_to_speaker.append((heard - arrival) * 1000)
                break
    return mic_to_wire, wire_to_speaker


def latency_figures() -> None:
    import numpy as np
    print("\nDevice-added latency at zero network jitter (clicks through the simulated card,"
          "\n G.722 16 kHz, 20 ms packets; target: each <= ptime + one period + 5 ms):")
    for period in (10, 20):
        mic, speaker = asyncio.run(device_latency(period))
        print(f"  {period} ms periods: microphone -> wire {np.mean(mic):5.1f} ms mean, "
              f"{np.max(mic):5.1f} max; wire -> speaker {np.mean(speaker):5.1f} ms mean, "
              f"{np.max(speaker):5.1f} max (target {20 + period + 5} ms; "
              f"{len(mic)}/{len(speaker)} clicks)")


async def _hot_periods(codec_name: str, periods: int) -> float:
    """Microseconds of one card period of a call's media thread, run flat out (the card
    never waits): 48 kHz card, echo canceller and preprocessor on, one packet in from
    a peer on loopback before each period and one out."""
    import numpy as np

    from intercom.media.devices import SimulatedSoundCard
    from intercom.media.rtp import RtpSession
    from intercom.media.stream import AudioStream
    codec, peer_codec = codec_for(spec(codec_name).format), codec_for(spec(codec_name).format)
    frame = codec.sample_rate // 50
    step = codec.timestamp_step(frame)
    ours = await RtpSession.open("127.0.0.1", 38000, 38998, lambda *a: None)
    peer = await RtpSession.open("127.0.0.1", 39000, 39998, lambda *a: None)
    ours.set_remote("127.0.0.1", peer.local_port)
    peer.set_remote("127.0.0.1", ours.local_port)
    peer.take_over()                           # its socket is drained below, unread
    voice = synthesized_speech(codec.sample_rate)
    payloads = [peer_codec.encode(voice[k * frame:(k + 1) * frame]) for k in range(50)]
    turn = [0]
    stream: AudioStream | None = None

    class Flat(SimulatedSoundCard):
        def read(self) -> np.ndarray:
            k = turn[0] = turn[0] + 1
            peer.send(codec.payload_type, payloads[k % 50], k * step)
            if k % 50 == 0:
                peer.drain()
            if k >= periods and stream is not None:
                stream._stop.set()
            # as if the card had the period ready already
            self._start = time.monotonic() - (self._ticks + 1) * self.period / self.rate - 1e-4
            return super().read()

    with tempfile.TemporaryDirectory() as tmp:
        stream = AudioStream(lambda: Flat(48000, 960, speaker_file=f"{tmp}/speaker.wav"),
                             48000, ours, codec, 101, lambda d: None, lambda e: None,
                             echo=EchoControl(codec.sample_rate, frame, 200, 0.0))
        start = time.thread_time()
        stream._device_loop()                  # on this thread, until `periods` are done
        spent = time.thread_time() - start
    for session in (ours, peer):
        session.close()
    return spent / periods * 1e6


def _paced_wake_us(wakes: int = 200) -> float:
    """CPU microseconds a thread spends per wake-up on a 20 ms clock, doing nothing."""
    start, cpu = time.monotonic(), time.thread_time()
    for k in range(1, wakes + 1):
        delay = start + k * 0.020 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return (time.thread_time() - cpu) / wakes * 1e6


def period_figures(periods: int = 6000) -> None:
    """Where a call's CPU goes: the media thread's work per period, flat out, and the
    price of waking up for each one."""
    import opuslib
    import opuslib.api.ctl as ctl
    import opuslib.api.encoder as opus_encoder

    from intercom.cext.opus import OpusFrames
    print("\nThe call's media thread, one 20 ms card period run flat out (thread CPU time;"
          "\n48 kHz card, echo canceller and preprocessor on, a packet in and out):")
    for name in ("PCMU", "G722", "opus"):
        print(f"  {name:<6}{asyncio.run(_hot_periods(name, periods)):8.1f} µs per period")
    print(f"  waking up for a period (a thread doing nothing, 20 ms clock): "
          f"{_paced_wake_us():.1f} µs")
    import numpy as np
    voice = synthesized_speech(16000)
    chunks = [voice[k:k + 320] for k in range(0, len(voice) - 319, 320)]
    print("\nOpus encoder per 20 ms frame of speech, 16 kHz, VoIP mode, 24 kbit/s, FEC for "
          "5 % loss;\na lost frame rebuilt from the next packet's FEC, and concealed, against "
          "decoding it\n(error energy over the frame's, dB, median over the speech):")

    def encoder_at(complexity: int) -> Any:
        encoder = opuslib.Encoder(16000, 1, opuslib.APPLICATION_VOIP)
        encoder.complexity = complexity
        encoder.bitrate = 24000
        opus_encoder.encoder_ctl(encoder.encoder_state, ctl.set_inband_fec, 1)
        opus_encoder.encoder_ctl(encoder.encoder_state, ctl.set_packet_loss_perc, 5)
        return encoder

    def error_db(pcm: np.ndarray, reference: np.ndarray) -> float:
        ref = reference.astype(float)
        return float(10 * np.log10(np.sum((pcm - ref) ** 2) / max(np.sum(ref ** 2), 1.0)))

    for complexity in (5, 8, 10):
        frames = OpusFrames(encoder_at(complexity), opuslib.Decoder(16000, 1), 16000)
        cost = per_call(lambda: [frames.encode(c) for c in chunks], 3) / len(chunks)
        encoder = encoder_at(complexity)
        packets = [OpusFrames(encoder, opuslib.Decoder(16000, 1), 16000).encode(c)
                   for c in chunks]
        fec, plc = [], []
        for lost in range(10, len(packets) - 1, 10):
            sides = [OpusFrames(encoder, opuslib.Decoder(16000, 1), 16000) for _ in range(3)]
            for side in sides:
                for packet in packets[:lost]:
                    side.decode(packet)
            reference = sides[0].decode(packets[lost])
            if np.sum(reference.astype(float) ** 2) < 320 * 300.0 ** 2:
                continue                        # a pause: nothing to rebuild
            fec.append(error_db(sides[1].recover(packets[lost + 1], 320), reference))
            plc.append(error_db(sides[2].conceal(320), reference))
        print(f"  complexity {complexity:>2}: {cost * 1e6:6.1f} µs; lost frame: FEC "
              f"{median(fec):6.1f} dB, concealment {median(plc):6.1f} dB")
    try:
        from intercom.hal.camera import SimulatedCamera
        from intercom.media.video import H264Encoder, VideoError
        camera = SimulatedCamera(640, 480)
        video = H264Encoder(640, 480, fps=15)
        pictures = [camera.frame() for _ in range(45)]
        start = time.thread_time()
        sizes = [sum(map(len, video.encode(p))) for p in pictures]
        per_frame = (time.thread_time() - start) / len(pictures)
        print(f"\nH.264 encoder (libx264 through PyAV, constrained baseline, zerolatency), "
              f"640x480 at 15 fps,\nthe simulated camera: {per_frame * 1e3:.1f} ms a frame "
              f"= {per_frame * 15 * 60:.1f} CPU-s per call minute, "
              f"{sum(sizes) * 8 / 3 / 1000:.0f} kbit/s")
    except VideoError as exc:
        print(f"\nH.264 encoder: {exc}")


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """min / median / max."""
    v = sorted(values)
    return " / ".join(fmt.format(x) for x in (v[0], v[len(v) // 2], v[-1]))


def cpu_figures(rounds: int = SIDE_ROUNDS, seconds: float = SIDE_SECONDS) -> None:
    """The door-station candidates side by side, rounds interleaved."""
    # An installed station has its bytecode compiled (pip does it); a shell with
    # PYTHONDONTWRITEBYTECODE would make every start compile the sources again.
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
        import compileall
        compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "intercom"),
                               quiet=1)
    print(f"\nThe station against a baresip door station, each calling the same answering "
          f"baresip\n({rounds} rounds interleaved, {seconds:.0f} s calls, min / median / max; "
          f"the station:\nsimulated board, 48 kHz file-backed card, echo canceller and "
          f"preprocessor on,\nand once more with both off (station-no-aec); baresip 1.0: "
          f"aufile source, aubridge\nplayer, no echo canceller; no SRTP on any)")
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    timing: dict[tuple[str, str], list[float]] = {}
    candidates = ("station", "baresip")
    for r in range(rounds):
        for codec in ("opus", "PCMU"):
            for candidate in ("station", "station-no-aec", "baresip"):
                with tempfile.TemporaryDirectory() as tmp:
                    results.setdefault((candidate, codec), []).append(
                        one_call(candidate, codec, Path(tmp), seconds))
        for candidate in candidates:
            for what, measure in (("register", start_to_register), ("invite", press_to_invite)):
                with tempfile.TemporaryDirectory() as tmp:
                    timing.setdefault((candidate, what), []).append(measure(candidate, Path(tmp)))
    print(f"\n  {'':<24}{'CPU-s per call min':>20}{'RSS in call MB':>18}"
          f"{'RSS idle MB':>16}")
    for codec in ("opus", "PCMU"):
        for candidate in ("station", "station-no-aec", "baresip"):
            rs = results[(candidate, codec)]
            print(f"  {candidate + ' ' + codec:<24}{spread([x['cpu'] for x in rs]):>20}"
                  f"{spread([x['rss'] for x in rs], '{:.0f}'):>18}"
                  f"{spread([x['idle_rss'] for x in rs], '{:.0f}'):>16}")
        bs = results[("baresip", codec)]
        for candidate in ("station", "station-no-aec"):
            st = results[(candidate, codec)]
            cpu = median([x["cpu"] for x in st]) / median([x["cpu"] for x in bs])
            rss = median([x["rss"] for x in st]) / median([x["rss"] for x in bs])
            print(f"  {'  ' + candidate + '/baresip':<24}{cpu:>19.2f}x{rss:>17.2f}x")
    print("  (targets: the station with its echo canceller at most 1.0x baresip's CPU; "
          "RSS in a\n  call at most 2x)")
    anon = median([x["idle_anon"] for x in results[("station", "opus")]])
    print(f"  station idle: anonymous memory {anon:.0f} MB (target for idle RSS: 25 MB)")
    print(f"\n  {'ms, min / median / max':<24}{'station':>22}{'baresip':>22}{'target':>10}")
    print(f"  {'start to first REGISTER':<24}"
          f"{spread(timing[('station', 'register')], '{:.0f}'):>22}"
          f"{spread(timing[('baresip', 'register')], '{:.0f}'):>22}{'50':>10}")
    print(f"  {'press to INVITE':<24}"
          f"{spread(timing[('station', 'invite')], '{:.0f}'):>22}"
          f"{spread(timing[('baresip', 'invite')], '{:.0f}'):>22}{'30':>10}")
    print("  (press: the station from a new `intercom ctl press` process; baresip from a "
          "dial\n  command on its open control connection)")


VIDEO_CAMERA = '[camera]\nsource = "simulated"\nwidth = 640\nheight = 480\nfps = 15\n'


def video_figures(rounds: int = SIDE_ROUNDS, seconds: float = SIDE_SECONDS) -> None:
    """The station's CPU in a call with H.264 video (640x480, 15 fps, the simulated
    camera, libx264) next to the same call audio-only, rounds interleaved."""
    print(f"\nA video call against the same call audio-only ({rounds} rounds, {seconds:.0f} s "
          f"calls, PCMU,\nmin / median / max): the station calls an answering baresip "
          f"that decodes H.264\n(avcodec); the simulated camera at 640x480 and 15 fps, "
          f"libx264 at 600 kbit/s")
    results: dict[str, list[dict[str, float]]] = {}
    for _ in range(rounds):
        for name, camera in (("audio-only", ""), ("video 640x480 15 fps", VIDEO_CAMERA)):
            with tempfile.TemporaryDirectory() as tmp:
                results.setdefault(name, []).append(
                    one_call("station", "PCMU", Path(tmp), seconds, camera=camera))
    print(f"\n  {'':<24}{'CPU-s per call min':>20}{'RSS in call MB':>18}")
    for name, rs in results.items():
        print(f"  {name:<24}{spread([x['cpu'] for x in rs]):>20}"
              f"{spread([x['rss'] for x in rs], '{:.0f}'):>18}")


def recording_figures(rounds: int = SIDE_ROUNDS, seconds: float = SIDE_SECONDS) -> None:
    """The station's CPU in a recorded call (both sides, Opus in Ogg, encoded off
    the audio thread) next to the same call not recorded, rounds interleaved; and
    the recording's size."""
    print(f"\nA recorded call against the same call not recorded ({rounds} rounds, "
          f"{seconds:.0f} s calls,\nmin / median / max): the station calls an answering "
          f"baresip; [recordings] calls = true")
    results: dict[str, list[dict[str, float]]] = {}
    sizes: list[float] = []
    for _ in range(rounds):
        for codec in ("PCMU", "opus"):
            for name, extra in (("not recorded", ""), ("recorded", "[recordings]\ncalls = true\n")):
                with tempfile.TemporaryDirectory() as tmp:
                    results.setdefault(f"{codec} {name}", []).append(
                        one_call("station", codec, Path(tmp), seconds, extra=extra))
                    if extra:
                        kept = list((Path(tmp) / "station" / "recordings").glob("*.opus"))
                        if kept:
                            sizes.append(kept[0].stat().st_size / 1024 / (seconds / 60))
    print(f"\n  {'':<24}{'CPU-s per call min':>20}{'RSS in call MB':>18}")
    for name, rs in results.items():
        print(f"  {name:<24}{spread([x['cpu'] for x in rs]):>20}"
              f"{spread([x['rss'] for x in rs], '{:.0f}'):>18}")
    if sizes:
        print(f"  recording size: {spread(sizes, '{:.0f}')} KB per call minute (stereo)")


def main() -> None:
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    if only not in ("", "sip", "echo", "jitter", "latency", "period", "cpu", "video",
                    "recording"):
        raise SystemExit("usage: scripts/bench [sip|echo|jitter|latency|period|cpu|video|"
                         "recording]")
    if only in ("", "sip"):
        sip_parsing()
    if only in ("", "echo"):
        echo_figures()
    if only in ("", "jitter"):
        jitter_figures()
    if only in ("", "latency"):
        latency_figures()
    if only in ("", "period"):
        period_figures()
    if only in ("", "cpu"):
        cpu_figures()
    if only in ("", "video"):
        video_figures()
    if only in ("", "recording"):
        recording_figures()
    if only:
        return
    micro()
    with tempfile.TemporaryDirectory() as tmp:
        r = asyncio.run(station_call(Path(tmp)))
    print(f"\nStation process (intercom run, simulated board and 48 kHz sound card, PCMU "
          f"with SRTP, RTCP, echo canceller and preprocessor, {CALL_SECONDS:.0f} s call):")
    print(f"  CPU while idle (no registrar, waiting)      {r['idle'] * 100:6.2f} % of one core")
    print(f"  CPU during a call                           {r['call'] * 100:6.2f} % of one core"
          f"  = {r['call'] * 60:.2f} CPU-s per call minute")
    print(f"  resident memory during the call             {r['rss']:6.1f} MB")
    print(f"\nmachine: {os.cpu_count()} cores; this benchmark process peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
