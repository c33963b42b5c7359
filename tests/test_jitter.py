"""The adaptive jitter buffer, concealment and time-scaling, on a virtual clock."""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from intercom.cext import jitter, speexjb
from intercom.cext.g711 import ulaw_encode
from intercom.cext.plc import WaveformPlc, accelerate, stretch
from intercom.media import netsim
from intercom.media.codecs import codec_for, spec
from intercom.media.playout import Playout
from intercom.media.signal import synthesized_speech, tone

from conftest import need_espeak

STEP = 160                       # 20 ms at 8000


class Run:
    """Packets sent every 20 ms; ``delay(i)`` ms later they arrive (None: lost);
    the player asks for one frame every 20 ms."""

    def __init__(self, jb: jitter.JitterBuffer) -> None:
        self.jb = jb
        self.played: list[object] = []        # the payloads given to put (numbers here)
        self.ops: list[int] = []
        self.max_count = 0
        self.concealed_while_playing = 0     # up to the last packet played

    def go(self, packets: Sequence[tuple[int, int, int, object]],
           delay: Callable[[int], float | None], seconds: float, phase: float = 7.0) -> None:
        arrivals = sorted((i * 20 + d, i) for i in range(len(packets))
                          if (d := delay(i)) is not None)
        t = phase
        k = 0
        while t < seconds * 1000:
            while k < len(arrivals) and arrivals[k][0] <= t:
                at, i = arrivals[k]
                self.jb.put(*packets[i], at)
                k += 1
            self.max_count = max(self.max_count, self.jb.count)
            op, payload = self.jb.get(t)
            self.ops.append(op)
            if payload is not None and op not in (jitter.CONCEAL,):
                self.played.append(payload)
                self.concealed_while_playing = self.jb.concealed
            t += 20


def stream(n: int, seq0: int = 0, ts0: int = 0, ssrc: int = 7, first: int = 0
           ) -> list[tuple[int, int, int, object]]:
    return [((seq0 + i) & 0xFFFF, (ts0 + i * STEP) & 0xFFFFFFFF, ssrc, first + i)
            for i in range(n)]


def test_an_even_stream_plays_every_packet_in_order_with_little_delay() -> None:
    run = Run(jitter.JitterBuffer(8000, STEP))
    run.go(stream(200), lambda i: 3.0, 4.5)
    assert run.played == list(range(200))
    assert run.concealed_while_playing == 0 and run.jb.late == 0
    assert run.jb.mean_delay_ms() <= 45
    # once it has seen the network is calm, it asks to play faster (in a pause)
    assert jitter.ACCELERATE in run.ops[50:] and run.jb.target_ms < 10


def test_sequence_and_timestamp_wrap_around() -> None:
    run = Run(jitter.JitterBuffer(8000, STEP))
    run.go(stream(300, seq0=65500, ts0=2**32 - 50 * STEP), lambda i: 3.0, 6.5)
    assert run.played == list(range(300))
    assert run.jb.timestamp_jumps == 0 and run.jb.late == 0


def test_reordered_packets_are_played_in_order() -> None:
    run = Run(jitter.JitterBuffer(8000, STEP))
    # every other pair arrives swapped: packet 2k+1 overtakes 2k by 15 ms
    run.go(stream(200), lambda i: 30.0 if i % 4 == 0 else 5.0, 4.8)
    assert run.played == list(range(200))
    assert run.concealed_while_playing <= 2


def test_duplicates_are_counted_and_played_once() -> None:
    jb = jitter.JitterBuffer(8000, STEP)
    run = Run(jb)
    packets = stream(100)
    doubled = [p for p in packets for _ in range(2)]
    arrivals = []
    for n, p in enumerate(doubled):
        arrivals.append((p, (n // 2) * 20 + 3.0 + (n % 2) * 11))
    t = 7.0
    for p, at in sorted(arrivals, key=lambda a: a[1]):
        while t < at:
            op, payload = jb.get(t)
            if payload is not None:
                run.played.append(payload)
            t += 20
        jb.put(*p, at)
    assert run.played == sorted({int(str(p)) for p in run.played})
    assert jb.duplicates == 100


def test_a_new_ssrc_continues_after_the_old_stream() -> None:
    run = Run(jitter.JitterBuffer(8000, STEP))
    packets = stream(100) + stream(100, seq0=40000, ts0=12345, ssrc=99, first=1000)
    run.go(packets, lambda i: 3.0, 4.5)
    assert run.jb.ssrc_changes == 1
    assert run.played == list(range(100)) + list(range(1000, 1100))
    assert run.concealed_while_playing == 0


@pytest.mark.parametrize("jump", [10**9, -(10**6), 2**31 + 5])
def test_a_timestamp_jump_does_not_hang_playout(jump: int) -> None:
    """baresip #2954: a jump in timestamps must not be waited for."""
    run = Run(jitter.JitterBuffer(8000, STEP))
    packets = stream(100) + [(100 + i, (100 * STEP + jump + i * STEP) & 0xFFFFFFFF, 7, 100 + i)
                             for i in range(100)]
    run.go(packets, lambda i: 3.0, 4.5)
    assert run.jb.timestamp_jumps == 1
    assert run.played == list(range(200))


def test_a_restarted_stream_under_the_same_ssrc_is_picked_up() -> None:
    run = Run(jitter.JitterBuffer(8000, STEP))
    # sequence numbers and timestamps start again from scratch, same SSRC
    packets = stream(100, seq0=30000, ts0=5_000_000) + stream(100, seq0=5, ts0=100, first=100)
    run.go(packets, lambda i: 3.0, 4.5)
    assert run.played[-90:] == list(range(110, 200))
    assert run.jb.discarded <= 3


def test_a_long_loss_burst_neither_grows_the_buffer_nor_the_delay() -> None:
    run = Run(jitter.JitterBuffer(8000, STEP))
    # 3 s of nothing in the middle of a 10 s call, with 0-40 ms of jitter
    rng = random.Random(3)
    run.go(stream(500), lambda i: None if 150 <= i < 300 else rng.uniform(0, 40), 10.5)
    assert run.jb.concealed >= 150
    assert run.jb.underruns >= 1
    assert run.max_count <= 10
    after = run.played[run.played.index(320):]
    assert after == list(range(320, 500))          # back in step after the burst
    assert run.jb.delay_ms(10000) < 80


def test_the_target_follows_the_jitter_up_and_back_down() -> None:
    rng = random.Random(5)
    run = Run(jitter.JitterBuffer(8000, STEP))
    run.go(stream(500), lambda i: rng.uniform(0, 80), 10.0)
    high = run.jb.target_ms
    assert high >= 60
    packets = stream(3500, seq0=500, ts0=500 * STEP, first=500)
    run2 = Run(run.jb)
    run2.go(packets, lambda i: 2.0, 80.0, phase=10007.0 - 10000)
    assert run.jb.target_ms <= 10 < high


def stalls(every_ms: float, stall_ms: float, first_ms: float = 2000.0
           ) -> Callable[[int], float]:
    """Delays of a link that stalls for ``stall_ms`` every ``every_ms``: what is
    sent during a stall arrives when it ends, 1 ms apart; 0-8 ms otherwise."""
    rng = random.Random(11)

    def delay(i: int) -> float:
        t = i * 20.0
        since = (t - first_ms) % every_ms if t >= first_ms else every_ms
        if since < stall_ms:
            return stall_ms - since + since / 20.0
        return rng.uniform(0, 8)
    return delay


def test_recurring_delay_spikes_set_a_steady_target_up_to_the_cap() -> None:
    def after(seconds: float) -> jitter.JitterBuffer:
        jb = jitter.JitterBuffer(8000, STEP, quantile=0.98, spike_max_ms=40)
        Run(jb).go(stream(1000), stalls(3000, 200), seconds)
        return jb
    jb = after(1.9)                                      # before the first stall
    assert jb.spikes == 0 and jb.spike_ms == 0 and jb.target_ms <= 12
    jb = after(2.5)                                      # one stall: not yet a pattern
    assert jb.spikes == 1 and jb.spike_ms == 0 and jb.target_ms <= 12
    assert jb.base_ms <= 12                              # the spike stayed out of it
    jb = after(19.0)
    assert jb.spikes == 6
    assert jb.base_ms <= 12                              # the usual jitter, still
    assert jb.spike_ms == 40 and jb.target_ms == 40      # spikes covered up to the cap
    assert 35 <= jb.delay_ms(19007.0) <= 55


def test_spikes_are_forgotten_when_they_stop() -> None:
    jb = jitter.JitterBuffer(8000, STEP, spike_max_ms=40)
    run = Run(jb)
    delay = stalls(3000, 200)
    run.go(stream(2000), lambda i: delay(i) if i < 500 else 4.0, 40.0)
    assert jb.spikes >= 2
    assert jb.spike_ms == 0 and jb.target_ms <= 12       # 20 s after the last one


def test_jitter_that_grows_for_good_is_not_mistaken_for_spikes() -> None:
    rng = random.Random(2)
    jb = jitter.JitterBuffer(8000, STEP, spike_max_ms=40)
    run = Run(jb)
    run.go(stream(1500), lambda i: rng.uniform(0, 5) if i < 500 else rng.uniform(0, 150),
           30.0)
    assert jb.base_ms >= 120                             # the histogram took it in
    assert jb.target_ms >= 120


def test_delay_never_exceeds_its_bound() -> None:
    # The sender's clock runs 10 % fast, so packets pile up: the buffer sheds them.
    jb = jitter.JitterBuffer(8000, STEP, max_delay_ms=200)
    run = Run(jb)
    run.go(stream(1000), lambda i: -i * 2.0 + 2000.0, 20.0)
    assert run.max_count <= 12
    assert jb.discarded > 0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        jitter.JitterBuffer(0, STEP)
    with pytest.raises(ValueError):
        jitter.JitterBuffer(8000, STEP, quantile=1.5)
    with pytest.raises(ValueError):
        jitter.JitterBuffer(8000, STEP, max_delay_ms=10)


# ----- concealment and time-scaling --------------------------------------------------
def _sine(freq: float, n: int, rate: int) -> np.ndarray:
    t = np.arange(n)
    return (8000 * np.sin(2 * np.pi * freq * t / rate)).astype(np.int16)


def _max_step(x: np.ndarray) -> int:
    return int(np.abs(np.diff(x.astype(np.int32))).max())


def test_accelerate_and_stretch_cut_or_add_a_period_without_a_click() -> None:
    frame = _sine(200, 320, 16000)                       # an 80-sample period
    shorter, longer = accelerate(frame, 16000), stretch(frame, 16000)
    assert len(frame) - len(shorter) in (80, 160)
    assert len(longer) - len(frame) in (80, 160)
    for out in (shorter, longer):
        assert _max_step(out) <= _max_step(frame) * 1.1


def test_time_scaling_leaves_noise_alone_unless_it_is_quiet() -> None:
    noise = np.random.default_rng(1).integers(-8000, 8000, 320).astype(np.int16)
    assert len(accelerate(noise, 16000)) == 320
    assert len(stretch(noise, 16000)) == 320
    quiet = (noise // 100).astype(np.int16)
    assert len(accelerate(quiet, 16000, voiced=False)) < 320
    assert len(accelerate(_sine(200, 320, 16000), 16000, voiced=False)) == 320


def test_waveform_plc_repeats_the_pitch_then_fades_out() -> None:
    plc = WaveformPlc(8000)
    signal = _sine(250, 800, 8000)                       # a 32-sample period
    plc.good(signal[:480])
    first = plc.conceal(80)                               # 10 ms: full level
    # a continuation of the tone: in phase with what would have come
    expected = signal[480:560].astype(float)
    corr = np.dot(first, expected) / np.sqrt(np.dot(first, first.astype(float))
                                              * np.dot(expected, expected))
    assert corr > 0.95
    later = plc.conceal(480)                              # 10..70 ms: fading to nothing
    assert np.abs(later[-80:]).max() == 0
    assert np.abs(later[:80]).max() > np.abs(later[240:320]).max()
    back = plc.good(signal[560:720])                      # cross-faded back in
    assert _max_step(np.concatenate([later[-1:], back])) <= _max_step(signal) * 1.5


def test_opus_fec_rebuilds_lost_frames_better_than_concealment() -> None:
    need_espeak()
    rate, n = 16000, 320
    speech = synthesized_speech(rate)           # the encoder codes FEC for speech only
    enc = codec_for(spec("opus").format)
    payloads = [enc.encode(speech[i:i + n]) for i in range(0, len(speech) - n + 1, n)]
    lost_frames = range(20, len(payloads) - 2, 10)

    def output(use_fec: bool) -> np.ndarray:
        c = codec_for(spec("opus").format)
        out = []
        for i, p in enumerate(payloads):
            if i in lost_frames:
                out.append(c.recover(payloads[i + 1], n) if use_fec and c.recover
                           else c.conceal(n))
            else:
                out.append(c.decode(p))
        return np.concatenate(out)
    clean = np.concatenate([codec_for(spec("opus").format).decode(p) for p in payloads])

    def error(x: np.ndarray) -> float:
        return sum(float(np.sum((x[i * n:(i + 1) * n].astype(float)
                                 - clean[i * n:(i + 1) * n]) ** 2)) for i in lost_frames)
    assert error(output(use_fec=True)) < 0.5 * error(output(use_fec=False))


def test_playout_conceals_lost_and_broken_packets_and_counts_them() -> None:
    codec = codec_for(spec("PCMU").format)
    now = [0.0]
    out_frames = []
    playout = Playout(codec, 160, 16000, 160, clock=lambda: now[0])   # 10 ms card periods
    signal = tone(400, 2.0, 8000, amplitude=0.3)
    for i in range(100):
        now[0] = i * 0.020 + 0.003
        payload = bytes(ulaw_encode(signal[i * 160:(i + 1) * 160]))
        if i == 60:
            payload = b""                             # an empty payload: undecodable
        if i != 40:                                   # lost
            playout.put(i, i * 160, 1, payload)
        for _ in range(2):
            out_frames.append(playout.pull())
            now[0] += 0.010
    assert playout.jb.concealed >= 1 and playout.invalid == 1
    out = np.concatenate(out_frames)
    assert len(out) == 200 * 160 and out.dtype == np.int16
    # the gap is filled: no stretch of silence inside the tone
    body = out[16000:-8000]
    windows = body[:len(body) // 160 * 160].reshape(-1, 160)
    assert (np.abs(windows).max(axis=1) > 1000).all()


def test_speex_reference_buffer_returns_packets_in_order() -> None:
    jb = speexjb.SpeexJitterBuffer(STEP)
    for i in (0, 2, 1, 3):
        jb.put(bytes([i]), i * STEP, i)
    got = []
    for _ in range(6):
        status, payload, ts = jb.get()
        if status == speexjb.OK:
            got.append((payload, ts))
        jb.tick()
    assert [p for p, _ in got] == [bytes([i]) for i in range(4)]


def test_network_simulator_runs_all_receivers() -> None:
    speech = tone(300, 2.0, 16000, amplitude=0.2)
    codec, payloads, n = netsim.encode(speech)
    trace = netsim.make_trace("bursty", len(payloads), 1)
    assert 0.0 < trace.loss < 0.2
    for receiver in netsim.RECEIVERS:
        result = netsim.run(receiver, trace, payloads, "opus", n)
        assert len(result.audio) >= len(speech)
        assert result.concealed > 0 and result.mean_delay_ms > 0
    with pytest.raises(ValueError):
        netsim.make_trace("nope", 10)


def test_telephone_events_between_audio_packets_leave_the_audio_playing() -> None:
    """baresip sends each RFC 4733 packet between two audio packets, in the same
    sequence space (RFC 4733 2.1): for the length of a code, every audio packet is
    two sequence numbers after the last one. The resident went silent after keying
    the code: the buffer took the gap for half-length packets, its play position
    left the packets' grid, and it dropped every packet after as late."""
    packets = []
    seq = 1000
    for i in range(250):                    # 5 s; digits keyed from 1 s to 3 s
        packets.append((seq & 0xFFFF, i * STEP, 7, i))
        seq += 2 if 50 <= i < 150 else 1
    run = Run(jitter.JitterBuffer(8000, STEP))
    run.go(packets, lambda i: 2.0, 5.2)
    assert run.played == list(range(250))
    assert run.jb.step == STEP and run.jb.late == 0
    assert run.concealed_while_playing == 0


def test_a_play_position_off_the_packets_grid_comes_back_onto_it() -> None:
    """Timestamps that move by a fraction of a packet (a peer's clock or packet
    length changed) are played from, not dropped one by one as late for ever."""
    first = stream(100)
    shifted: list[tuple[int, int, int, object]] = [
        (100 + i, 100 * STEP + STEP // 2 + i * STEP, 7, 100 + i) for i in range(150)]
    run = Run(jitter.JitterBuffer(8000, STEP))
    run.go(first + shifted, lambda i: 2.0, 5.2)
    assert run.played[:100] == list(range(100))
    assert run.played[-100:] == list(range(150, 250))      # every later packet plays
    assert run.jb.realigned >= 1 and run.jb.late <= 1


def _keyed_instead_of_audio(mark_events: bool) -> tuple[jitter.JitterBuffer, list[object]]:
    """linphone sends RFC 4733 packets *instead of* audio while a key is down: five
    keys of 100 ms, each a gap of five audio frames filled by event packets (the
    same SSRC and sequence space, the event's start timestamp, a growing duration,
    the end packet three times). The player asks every 20 ms."""
    jb = jitter.JitterBuffer(8000, STEP)
    keys = [50, 80, 110, 140, 170]                   # first frame of each key
    sent: list[tuple[float, str, tuple[int, int, int, object]]] = []
    seq = 0
    for i in range(250):
        at = i * 20 + 2.0
        key = next((k for k in keys if k <= i < k + 5), None)
        if key is None:
            sent.append((at, "audio", (seq, i * STEP, 7, i)))
            seq += 1
            continue
        duration = (i - key + 1) * STEP
        sent.append((at, "event", (seq, key * STEP, 7, duration)))
        seq += 1
        if i == key + 4:                              # the end, twice more
            for extra in (1, 2):
                sent.append((at + extra, "event", (seq, key * STEP, 7, duration)))
                seq += 1
    played: list[object] = []
    t, k = 7.0, 0
    while t < 6000 and 249 not in played:            # up to the last packet, no further
        while k < len(sent) and sent[k][0] <= t:
            _, kind, (s, ts, ssrc, x) = sent[k]
            if kind == "audio":
                jb.put(s, ts, ssrc, x, sent[k][0])
            elif mark_events:
                assert isinstance(x, int)
                jb.event_span(ts, ssrc, x)
            k += 1
        op, payload = jb.get(t)
        if payload is not None and op != jitter.CONCEAL:
            played.append(payload)
        t += 20
    return jb, played


def test_frames_a_phone_replaced_by_telephone_events_are_not_counted_as_loss() -> None:
    """The call that sounded fine had 40 frames "concealed" and a MOS of 3.76: the
    frames linphone replaced by its key events. They are counted apart (replaced),
    the buffer neither waits for them nor loses time, and every audio packet plays."""
    jb, played = _keyed_instead_of_audio(mark_events=True)
    audio = [i for i in range(250) if not any(k <= i < k + 5 for k in (50, 80, 110, 140, 170))]
    assert played == audio
    assert jb.replaced == 25 and jb.concealed == 0
    assert jb.late == 0 and jb.underruns == 0 and jb.step == STEP
    # Without the spans the same gaps are loss: the counter this test relies on moves.
    jb, played = _keyed_instead_of_audio(mark_events=False)
    assert played == audio and jb.concealed >= 25 and jb.replaced == 0


def test_event_spans_of_another_stream_or_before_any_audio_are_ignored() -> None:
    jb = jitter.JitterBuffer(8000, STEP)
    jb.event_span(0, 7, 800)                          # no stream yet
    for i in range(10):
        jb.put(i, i * STEP, 7, i, i * 20.0)
    jb.event_span(10 * STEP, 8, 800)                  # another SSRC
    ops = [jb.get(200.0 + 20 * n)[0] for n in range(20)]
    assert jb.replaced == 0 and jb.concealed > 0 and set(ops) & {jitter.CONCEAL, jitter.WAIT}
