"""RTCP for one call: reception statistics, reports, round-trip time, a quality summary.

``ReceptionStats`` follows RFC 3550 appendix A (extended sequence numbers
with wrap-around, loss since the last report, interarrival jitter).
``RtcpSession`` builds our compound reports (SR while we send, else RR, with
SDES CNAME) and reads the peer's: an SR's time for LSR/DLSR, and the report
block about us for the round-trip time (RFC 3550 6.4.1). At hang-up
``summary`` gives loss, jitter, RTT and an E-model MOS (ITU-T G.107,
simplified: no echo or noise terms). A PLI or FIR about our stream calls
``on_keyframe_request`` (a video sender's encoder then makes an IDR picture).
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from intercom.cext import rtcp

NTP_OFFSET = 2208988800            # 1900 to 1970, seconds
REPORT_INTERVAL = 5.0              # RFC 3550 6.2 minimum; randomized x0.5..1.5
# Equipment impairment and packet-loss robustness per codec (ITU-T G.113 where it has
# them; Opus and G.722 are not in its narrowband tables: values for codecs with good
# concealment, an estimate).
IMPAIRMENT = {"PCMU": (0.0, 4.3), "PCMA": (0.0, 4.3), "G722": (0.0, 4.3), "opus": (0.0, 20.0)}


def ntp_time(wallclock: float) -> tuple[int, int]:
    seconds = int(wallclock) + NTP_OFFSET
    return seconds & 0xFFFFFFFF, int((wallclock % 1.0) * 2**32) & 0xFFFFFFFF


def ntp_middle(wallclock: float) -> int:
    """The middle 32 bits of the NTP time, as LSR and DLSR count (1/65536 s)."""
    seconds, fraction = ntp_time(wallclock)
    return ((seconds & 0xFFFF) << 16) | (fraction >> 16)


# How far below zero A - LSR - DLSR may come out from the peer's rounding (10 ms,
# in 1/65536 s) and still be a round trip of about nothing; further is a bad clock.
ROUNDING_SLACK = 655


class ReceptionStats:
    """What we received from one SSRC (RFC 3550 A.1, A.3, A.8)."""

    MAX_DROPOUT = 3000
    MAX_MISORDER = 100

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self._reset(0)

    def _reset(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.cycles = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0
        self._transit: float | None = None

    def update(self, ssrc: int, seq: int, timestamp: int, arrival: float) -> None:
        if ssrc != self.ssrc:                       # a new source: start again (A.1)
            self.ssrc = ssrc
            self._reset(seq)
        else:
            delta = (seq - self.max_seq) & 0xFFFF
            if 0 < delta < self.MAX_DROPOUT:
                if seq < self.max_seq:
                    self.cycles += 1 << 16          # wrapped
                self.max_seq = seq
            elif delta >= (1 << 16) - self.MAX_MISORDER or delta == 0:
                pass                                # late, reordered or duplicate
            else:
                self._reset(seq)                    # a huge jump: the sender restarted
        self.received += 1
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < 2**31:                           # not across a timestamp jump
                self.jitter += (d - self.jitter) / 16
        self._transit = transit

    @property
    def expected(self) -> int:
        return self.cycles + self.max_seq - self.base_seq + 1 if self.ssrc is not None else 0

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)

    def report_block(self, lsr: int, dlsr: int) -> rtcp.Block:
        expected_interval = self.expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior, self.received_prior = self.expected, self.received
        lost_interval = expected_interval - received_interval
        fraction = 0 if expected_interval <= 0 or lost_interval <= 0 else \
            (lost_interval << 8) // expected_interval
        return (self.ssrc or 0, min(fraction, 255), self.expected - self.received,
                (self.cycles + self.max_seq) & 0xFFFFFFFF, int(self.jitter), lsr, dlsr)


@dataclass(frozen=True)
class Quality:
    packets_received: int
    packets_lost: int
    loss_percent: float
    jitter_ms: float
    rtt_ms: float | None
    concealed_frames: int
    mos: float


def e_model_mos(codec: str, loss_percent: float, one_way_delay_ms: float) -> float:
    """MOS from the E-model's R factor: delay impairment Id and effective Ie (G.107)."""
    ie, bpl = IMPAIRMENT.get(codec, (0.0, 4.3))
    d = one_way_delay_ms
    id_ = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ie_eff = ie + (95 - ie) * loss_percent / (loss_percent + bpl)
    r = 93.2 - id_ - ie_eff
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


class RtcpSession:
    def __init__(self, ssrc: int, cname: str, clock_rate: int,
                 rng: random.Random | None = None, interval: float = REPORT_INTERVAL) -> None:
        self.ssrc = ssrc
        self.interval = interval
        self.cname = cname
        self.clock_rate = clock_rate
        self.rng = rng or random.Random()
        self.reception = ReceptionStats(clock_rate)
        self.packets_sent = 0
        self.octets_sent = 0
        self._last_rtp: tuple[int, float] | None = None   # (timestamp, wallclock)
        self._sent_since_report = False
        self._peer_sr: tuple[int, float] | None = None    # (their NTP middle, when we got it)
        self.rtt_ms: float | None = None
        self.reports_received = 0
        self.invalid = 0
        self.on_keyframe_request: Callable[[], None] | None = None
        self.keyframe_requests = 0
        self._fir_seq: int | None = None      # the last FIR's number (RFC 5104 4.3.1.2)

    def next_interval(self) -> float:
        return self.interval * self.rng.uniform(0.5, 1.5)

    def on_rtp_sent(self, timestamp: int, payload_bytes: int, wallclock: float) -> None:
        self.packets_sent += 1
        self.octets_sent += payload_bytes
        self._last_rtp = (timestamp, wallclock)
        self._sent_since_report = True

    def on_rtp_received(self, ssrc: int, seq: int, timestamp: int, arrival: float) -> None:
        self.reception.update(ssrc, seq, timestamp, arrival)

    def on_rtcp(self, data: bytes, wallclock: float) -> None:
        try:
            packets = rtcp.parse(data)
        except rtcp.RtcpError:
            self.invalid += 1
            return
        self.reports_received += 1
        for packet in packets:
            if packet[0] == "SR":
                _, _, ntp_seconds, ntp_fraction = packet[:4]
                middle = ((ntp_seconds & 0xFFFF) << 16) | (ntp_fraction >> 16)
                self._peer_sr = (middle, wallclock)
            if packet[0] in ("SR", "RR"):
                for block in packet[-1]:
                    if block[0] == self.ssrc and block[5]:
                        self._round_trip(block[5], block[6], wallclock)
            elif packet[0] == "PLI" and packet[2] == self.ssrc:
                self._keyframe()
            elif packet[0] == "FIR":
                self._fir(packet[2])

    def _fir(self, entries: list[tuple[int, int]] | None) -> None:
        """A FIR asks again with the same number until it has its keyframe: one
        keyframe per number (RFC 5104 4.3.1.2). RFC 2032's FIR names no stream."""
        if entries is None:
            self._keyframe()
            return
        for ssrc, seq in entries:
            if ssrc == self.ssrc and seq != self._fir_seq:
                self._fir_seq = seq
                self._keyframe()

    def _keyframe(self) -> None:
        self.keyframe_requests += 1
        if self.on_keyframe_request is not None:
            self.on_keyframe_request()

    def _round_trip(self, lsr: int, dlsr: int, wallclock: float) -> None:
        rtt = (ntp_middle(wallclock) - lsr - dlsr) & 0xFFFFFFFF
        if rtt < 0x80000000:                            # not negative: a sane clock
            self.rtt_ms = rtt * 1000 / 65536
        elif rtt >= 0x100000000 - ROUNDING_SLACK:
            # A few units below zero: a peer next to us rounded its DLSR up (the
            # round trip is shorter than their resolution), not a broken clock.
            self.rtt_ms = 0.0

    def report(self, wallclock: float) -> bytes:
        """Our compound report: SR if we sent since the last one, else RR; then SDES."""
        blocks = []
        if self.reception.ssrc is not None:
            lsr, dlsr = 0, 0
            if self._peer_sr is not None:
                lsr = self._peer_sr[0]
                dlsr = int((wallclock - self._peer_sr[1]) * 65536)
            blocks.append(self.reception.report_block(lsr, dlsr))
        if self._sent_since_report and self._last_rtp is not None:
            last_ts, last_at = self._last_rtp
            ts = (last_ts + int((wallclock - last_at) * self.clock_rate)) & 0xFFFFFFFF
            seconds, fraction = ntp_time(wallclock)
            head = rtcp.build_sr(self.ssrc, seconds, fraction, ts, self.packets_sent,
                                 self.octets_sent, blocks)
        else:
            head = rtcp.build_rr(self.ssrc, blocks)
        self._sent_since_report = False
        return head + rtcp.build_sdes_cname(self.ssrc, self.cname)

    def bye(self) -> bytes:
        return rtcp.build_rr(self.ssrc, []) + rtcp.build_bye(self.ssrc)

    def summary(self, codec: str, concealed_frames: int, playout_ms: float,
                played_frames: int = 0) -> Quality:
        """How the call sounded. The MOS is judged by what the listener heard: the
        share of frames concealed, when that is worse than the network's loss (a
        packet that came but could not be played is as lost as one that never came)."""
        r = self.reception
        loss = 100.0 * r.lost / r.expected if r.expected > 0 else 0.0
        heard = played_frames + concealed_frames
        concealed = 100.0 * concealed_frames / heard if heard else 0.0
        jitter_ms = r.jitter * 1000 / self.clock_rate
        one_way = (self.rtt_ms / 2 if self.rtt_ms is not None else 0.0) + playout_ms
        return Quality(r.received, r.lost, round(loss, 2), round(jitter_ms, 2),
                       None if self.rtt_ms is None else round(self.rtt_ms, 1), concealed_frames,
                       round(e_model_mos(codec, max(loss, concealed), one_way), 2))


def is_rtcp(data: bytes) -> bool:
    """RTCP on a multiplexed port: packet types 192-223 sit where RTP's marker and
    payload type are, clear of the payload types in use (RFC 5761 4)."""
    return len(data) >= 2 and 192 <= data[1] <= 223
