# cython: language_level=3
"""An adaptive jitter buffer: packets in by network time, audio out by the card's.

Packets are kept in timestamp order on one continuous timeline (64-bit, so
neither sequence numbers nor timestamps wrap). ``get`` is called each time
the player needs the next packet's worth of audio and says what to do:

* ``NORMAL``: decode this payload;
* ``ACCELERATE`` / ``STRETCH``: decode it, then play it a period shorter or
  longer (the buffer holds more, or less, than the target);
* ``CONCEAL``: the packet at the play position is lost; conceal one frame
  (with the next packet's payload, when it is right behind, for codecs that
  carry forward error correction) and move on;
* ``WAIT``: nothing has come for a while (the peer paused, the network
  stalled): conceal one frame while building up to the target again;
* ``SILENCE``: nothing to play yet.

A phone may send RFC 4733 telephone-events *instead of* audio while a key is
down (linphone does; baresip sends both). ``event_span`` tells the buffer
which stretch of the timeline an event covers; a gap there is the sender's
choice, not loss: it is concealed without waiting and without losing time,
and counted as ``replaced``, not ``concealed``.

The target delay follows the network: for every packet its delay relative
to the fastest packet of the last two seconds goes into a histogram that
forgets old values (the way WebRTC's NetEq does), and the target is a high
percentile of it: the play-out delay beyond the fastest packet that lets
that share of packets come in time. Between talk spurts the play-out clock
keeps time like a fixed buffer's (a missing packet is concealed, not waited
for, since waiting moves the speech in time and the listener hears it); the
delay moves towards the target by accelerating or stretching, which the
player does in the pauses between words unless the delay is far off. The
delay may never exceed ``max_delay_ms``: then play skips ahead to the target.

Delay spikes (a Wi-Fi link that stalls, holds packets back, then lets them
go at once) are kept out of that histogram, so one spike does not swing the
target up and, seconds later, down again. Packets far behind the usual delay
(twice it, and 40 ms more) are grouped into spikes while they stay rare; once
two spikes fall within 20 s, the target covers their height up to
``spike_max_ms`` and stays there, steady, until 20 s pass without one.
Beyond that the rest of a spike is concealed, as a fixed buffer would.

Robustness: duplicates and packets too late to play are dropped and
counted; a new SSRC continues the timeline after the old stream; a timestamp
that jumps while the
sequence number runs on (a peer's clock restart, a PBX switching streams)
is re-based onto the timeline instead of being waited for; after the buffer
ran dry (a loss burst) play resumes at the first packet that arrives, after
building up the target again, so a burst never adds to the delay.
"""
from libc.stdint cimport int64_t, uint32_t, uint16_t, int32_t, int16_t
from libc.string cimport memmove

cdef enum:
    CAPACITY = 128                # packets held at most
    BUCKETS = 250                 # delay histogram: 2 ms buckets up to 500 ms
    WINDOW = 128                  # arrival history for the relative delay
    PEAKS = 8                     # delay spikes remembered
    EVENTS = 8                    # telephone-event spans remembered

NORMAL = 0
ACCELERATE = 1
STRETCH = 2
CONCEAL = 3
WAIT = 4
SILENCE = 5
OPERATIONS = ("normal", "accelerate", "stretch", "conceal", "wait", "silence")

cdef double BUCKET_MS = 2.0
cdef double WINDOW_MS = 2000.0
cdef double REBUFFER_MS = 200.0   # dry this long: stop and build up again
cdef int WARMUP = 25              # packets seen before the target may go below 2 packets
cdef int MAX_WAITS = 2            # frames waited at most for one missing packet
cdef double TOLERANCE_MS = 10.0   # the delay may be this far above the target
cdef double SPIKE_MARGIN_MS = 40.0   # a spike: this much (and twice) above the usual delay
cdef double SPIKE_GROUP_MS = 1000.0  # spike packets this close together are one spike
cdef double SPIKE_MEMORY_MS = 20000.0  # spikes remembered this long
cdef double SPIKE_SHARE = 0.15    # above this share of packets, it is jitter, not spikes
cdef int SPIKES_NEEDED = 2       # spikes in memory before the target covers them


cdef class JitterBuffer:
    # packets, oldest first
    cdef int64_t _ts[CAPACITY]
    cdef int64_t _seq[CAPACITY]
    cdef double _arrival[CAPACITY]
    cdef list _payload
    cdef readonly int count
    # the stream
    cdef readonly int clock_rate
    cdef readonly int step            # timestamp units per packet (measured)
    cdef bint _have_stream
    cdef uint32_t _ssrc
    cdef uint16_t _last_seq
    cdef uint32_t _last_ts
    cdef int64_t _last_ext_seq
    cdef int64_t _last_ext_ts
    cdef double _last_arrival
    # playout
    cdef readonly bint playing
    cdef readonly int64_t play_ts
    cdef bint _started
    cdef double _dry_ms
    cdef int _waits
    cdef int _strays
    cdef readonly double filtered_ms
    cdef double _fastest
    cdef bint _filter_ready
    # delay estimate
    cdef double _hist[BUCKETS]
    cdef double _forget
    cdef double _quantile
    cdef long _estimates
    cdef double _win_arrival[WINDOW]
    cdef double _win_transit[WINDOW]
    cdef int _win_next
    cdef readonly double min_delay_ms
    cdef readonly double max_delay_ms
    cdef readonly double target_ms
    cdef readonly double base_ms      # the target the usual delays alone ask for
    cdef readonly double spike_ms     # the target recurring spikes ask for (0: none)
    cdef readonly double spike_max_ms
    cdef double _spike_share
    cdef double _spike_time[PEAKS]
    cdef double _spike_height[PEAKS]
    cdef int _spike_next
    cdef int64_t _ev_start[EVENTS]
    cdef int64_t _ev_end[EVENTS]
    cdef int _ev_next
    # counters
    cdef readonly long received
    cdef readonly long played
    cdef readonly long late
    cdef readonly long duplicates
    cdef readonly long discarded      # dropped to keep within max_delay_ms or capacity
    cdef readonly long concealed      # frames concealed (lost, waited for, ran dry)
    cdef readonly long replaced       # frames the peer sent a telephone-event in place of
    cdef readonly long fec_recovered  # of those, rebuilt from the next packet's FEC
    cdef readonly long accelerated
    cdef readonly long stretched
    cdef readonly long underruns
    cdef readonly long ssrc_changes
    cdef readonly long timestamp_jumps
    cdef readonly long realigned      # play position moved onto an off-grid packet
    cdef readonly long spikes         # delay spikes seen (a stall, then a burst)
    cdef readonly double delay_sum_ms   # packets' time in the buffer, summed over played ones

    def __cinit__(self, int clock_rate, int step, double min_delay_ms=0.0,
                  double max_delay_ms=500.0, double quantile=0.95, double forget=0.996,
                  double spike_max_ms=40.0):
        if clock_rate <= 0 or step <= 0:
            raise ValueError("clock rate and packet step must be positive")
        if not 0.5 <= quantile < 1.0:
            raise ValueError(f"quantile {quantile} outside 0.5..1")
        if not 0.9 <= forget < 1.0:
            raise ValueError(f"forgetting factor {forget} outside 0.9..1")
        if max_delay_ms < 2.0 * step * 1000.0 / clock_rate or min_delay_ms < 0:
            raise ValueError("max_delay_ms must hold two packets; min_delay_ms >= 0")
        self.clock_rate = clock_rate
        self.step = step
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max_delay_ms
        self._quantile = quantile
        self.spike_max_ms = spike_max_ms
        self._forget = forget
        self._payload = []
        self.count = 0
        self._forget_events()
        self._reset_estimate()
        self._have_stream = False
        self.playing = False
        self._started = False

    cdef void _reset_estimate(self):
        cdef int i
        for i in range(BUCKETS):
            self._hist[i] = 0.0
        for i in range(WINDOW):
            self._win_arrival[i] = -1e300
            self._win_transit[i] = 0.0
        self._win_next = 0
        self._estimates = 0
        for i in range(PEAKS):
            self._spike_time[i] = -1e300
            self._spike_height[i] = 0.0
        self._spike_next = 0
        self._spike_share = 0.0
        self.spike_ms = 0.0
        self.target_ms = max(self.min_delay_ms, 2.0 * self._packet_ms())
        self.base_ms = self.target_ms

    cdef void _forget_events(self):
        cdef int i
        for i in range(EVENTS):
            self._ev_start[i] = 0
            self._ev_end[i] = 0
        self._ev_next = 0

    def event_span(self, uint32_t ts, uint32_t ssrc, int duration):
        """The peer's telephone-event packet (RFC 4733) for an event that began at
        ``ts`` and has lasted ``duration`` units so far, on this stream's clock."""
        cdef int64_t start
        cdef int i
        if not self._have_stream or ssrc != self._ssrc or duration <= 0:
            return
        start = self._last_ext_ts + <int32_t>(ts - self._last_ts)
        for i in range(EVENTS):
            if self._ev_start[i] == start and self._ev_end[i] > start:
                if start + duration > self._ev_end[i]:
                    self._ev_end[i] = start + duration     # the event goes on
                return
        self._ev_start[self._ev_next] = start
        self._ev_end[self._ev_next] = start + duration
        self._ev_next = (self._ev_next + 1) % EVENTS

    cdef bint _in_event(self, int64_t ts):
        cdef int i
        for i in range(EVENTS):
            if self._ev_start[i] <= ts < self._ev_end[i]:
                return True
        return False

    cdef double _packet_ms(self):
        return self.step * 1000.0 / self.clock_rate

    cdef double _ms(self, int64_t ts_units):
        return ts_units * 1000.0 / self.clock_rate

    # ----- arrival ---------------------------------------------------------------------
    def put(self, int seq, uint32_t ts, uint32_t ssrc, object payload, double now_ms):
        """Store one packet that arrived at ``now_ms``. False if it was dropped."""
        cdef int64_t ext_seq, ext_ts, d_seq
        cdef double ts_gap_ms, arrival_gap_ms
        cdef int pos
        seq &= 0xFFFF
        if not self._have_stream or ssrc != self._ssrc:
            if self._have_stream:
                self.ssrc_changes += 1
            self._new_stream(<uint16_t>seq, ts, ssrc, now_ms)
            ext_seq = self._last_ext_seq
            ext_ts = self._last_ext_ts
            d_seq = 1
        else:
            d_seq = <int16_t>(<uint16_t>seq - self._last_seq)
            ext_seq = self._last_ext_seq + d_seq
            ext_ts = self._last_ext_ts + <int32_t>(ts - self._last_ts)
            if d_seq > 0:
                ts_gap_ms = self._ms(ext_ts - self._last_ext_ts)
                arrival_gap_ms = now_ms - self._last_arrival
                if ext_ts <= self._last_ext_ts or ts_gap_ms > arrival_gap_ms + 1000.0:
                    # The timestamp jumped while the sequence ran on: keep the audio
                    # contiguous by its sequence number instead of waiting for it.
                    self.timestamp_jumps += 1
                    ext_ts = self._last_ext_ts + d_seq * self.step
                elif d_seq == 1 and ext_ts - self._last_ext_ts <= self.clock_rate // 8:
                    # Consecutive packets show the packet length (10, 20, 30... ms). Only
                    # consecutive ones: telephone-events share the sequence space (RFC
                    # 4733 2.1), and a phone that sends them between its audio packets
                    # makes every audio gap two numbers for one packet (baresip does).
                    self.step = <int>(ext_ts - self._last_ext_ts)
                self._last_seq = <uint16_t>seq
                self._last_ts = ts
                self._last_ext_seq = ext_seq
                self._last_ext_ts = ext_ts
                self._last_arrival = now_ms
            elif d_seq == 0 and ts == self._last_ts:
                self.duplicates += 1
                return False
            elif self._stray(ext_ts):
                # An old sequence number that lands nowhere near the timeline: after
                # a few in a row, the peer has restarted its stream under the same SSRC.
                self._strays += 1
                if self._strays < 3:
                    self.discarded += 1
                    return False
                self.timestamp_jumps += 1
                self._new_stream(<uint16_t>seq, ts, ssrc, now_ms)
                ext_seq = self._last_ext_seq
                ext_ts = self._last_ext_ts
        self._strays = 0
        self.received += 1
        self._estimate(ext_ts, now_ms)
        if self._started and ext_ts < self.play_ts:
            self.late += 1
            return False
        # insert in timestamp order (nearly always at the end)
        pos = self.count
        while pos > 0 and self._ts[pos - 1] >= ext_ts:
            if self._ts[pos - 1] == ext_ts or self._seq[pos - 1] == ext_seq:
                self.duplicates += 1
                return False
            pos -= 1
        if self.count == CAPACITY:
            if pos == 0:
                self.discarded += 1           # older than all of a full buffer
                return False
            self._drop_oldest()
            self.discarded += 1
            pos -= 1
        if pos < self.count:
            memmove(&self._ts[pos + 1], &self._ts[pos], (self.count - pos) * sizeof(int64_t))
            memmove(&self._seq[pos + 1], &self._seq[pos], (self.count - pos) * sizeof(int64_t))
            memmove(&self._arrival[pos + 1], &self._arrival[pos],
                    (self.count - pos) * sizeof(double))
        self._ts[pos] = ext_ts
        self._seq[pos] = ext_seq
        self._arrival[pos] = now_ms
        self._payload.insert(pos, payload)
        self.count += 1
        return True

    cdef bint _stray(self, int64_t ext_ts):
        cdef int64_t ref
        if self.playing:
            ref = self.play_ts
        elif self.count:
            ref = self._ts[0]
        else:
            ref = self._last_ext_ts
        return ext_ts < ref - self.clock_rate or \
            ext_ts > ref + <int64_t>(self.max_delay_ms * self.clock_rate / 1000) + self.clock_rate

    cdef void _new_stream(self, uint16_t seq, uint32_t ts, uint32_t ssrc, double now_ms):
        # A new source (or a restarted one) continues the timeline where the old
        # one ends, as far on as the time since its last packet says: what is
        # buffered still plays, and nothing waits for timestamps that never come.
        cdef int64_t base = <int64_t>1 << 40
        cdef int64_t gap
        if self._have_stream:
            gap = <int64_t>((now_ms - self._last_arrival) * self.clock_rate / 1000.0)
            gap = (gap + self.step // 2) // self.step * self.step
            base = self._last_ext_ts + (gap if gap > self.step else self.step)
        self._have_stream = True
        self._ssrc = ssrc
        self._last_seq = seq
        self._last_ts = ts
        self._last_ext_seq += 1 << 17                   # apart from any old number
        self._last_ext_ts = base
        self._last_arrival = now_ms

    cdef void _clear(self):
        self.count = 0
        self._payload = []

    cdef void _drop_oldest(self):
        memmove(&self._ts[0], &self._ts[1], (self.count - 1) * sizeof(int64_t))
        memmove(&self._seq[0], &self._seq[1], (self.count - 1) * sizeof(int64_t))
        memmove(&self._arrival[0], &self._arrival[1], (self.count - 1) * sizeof(double))
        del self._payload[0]
        self.count -= 1

    cdef void _estimate(self, int64_t ext_ts, double now_ms):
        """Add this packet's delay relative to the fastest recent one; update the target."""
        cdef double transit = now_ms - self._ms(ext_ts)
        cdef double fastest = transit, rel
        cdef int i
        for i in range(WINDOW):
            if self._win_arrival[i] >= now_ms - WINDOW_MS and self._win_transit[i] < fastest:
                fastest = self._win_transit[i]
        self._win_arrival[self._win_next] = now_ms
        self._win_transit[self._win_next] = transit
        self._win_next = (self._win_next + 1) % WINDOW
        self._fastest = fastest
        rel = transit - fastest
        self._estimates += 1
        if self._is_spike(rel, now_ms):
            self._spike_share = 0.998 * self._spike_share + 0.002
        else:
            self._spike_share *= 0.998
            self._histogram(rel)
        self._spike_target(now_ms)
        self.target_ms = self.base_ms if self.base_ms > self.spike_ms else self.spike_ms
        if self._estimates < WARMUP and self.target_ms < 2.0 * self._packet_ms():
            self.target_ms = 2.0 * self._packet_ms()    # too few packets to go lower yet
        if self.target_ms < self.min_delay_ms:
            self.target_ms = self.min_delay_ms
        if self.target_ms > self.max_delay_ms:
            self.target_ms = self.max_delay_ms

    cdef void _histogram(self, double rel):
        cdef double forget, total, acc
        cdef int i, bucket = <int>(rel / BUCKET_MS)
        if bucket >= BUCKETS:
            bucket = BUCKETS - 1
        # While few packets are in, weigh them equally; then forget at the set rate.
        forget = self._forget
        if 1.0 - 1.0 / self._estimates < forget:
            forget = 1.0 - 1.0 / self._estimates
        for i in range(BUCKETS):
            self._hist[i] *= forget
        self._hist[bucket] += 1.0 - forget
        total = 0.0
        for i in range(BUCKETS):
            total += self._hist[i]
        acc = 0.0
        for i in range(BUCKETS):
            acc += self._hist[i]
            if acc >= self._quantile * total:
                break
        self.base_ms = (i + 1) * BUCKET_MS

    cdef bint _is_spike(self, double rel, double now_ms):
        """A packet far behind the usual delays, while such packets are rare: part
        of a delay spike (the network held packets back, then let them go at
        once). Spikes stay out of the histogram, so the usual target does not
        swing with each one; when they recur, the spike target covers them."""
        cdef double limit = self.base_ms + SPIKE_MARGIN_MS
        cdef int last
        if self._estimates < WARMUP or self._spike_share > SPIKE_SHARE:
            return False
        if limit < 2.0 * self.base_ms:
            limit = 2.0 * self.base_ms
        if rel <= limit:
            return False
        last = (self._spike_next + PEAKS - 1) % PEAKS
        if now_ms - self._spike_time[last] <= SPIKE_GROUP_MS:
            self._spike_time[last] = now_ms
            if rel > self._spike_height[last]:
                self._spike_height[last] = rel
        else:
            self.spikes += 1
            self._spike_time[self._spike_next] = now_ms
            self._spike_height[self._spike_next] = rel
            self._spike_next = (self._spike_next + 1) % PEAKS
        return True

    cdef void _spike_target(self, double now_ms):
        # Recurring spikes (two or more in memory) set a steady target that covers
        # them, up to spike_max_ms: a steady delay rather than one that jumps
        # with each spike.
        cdef int i, recent = 0
        cdef double height = 0.0
        for i in range(PEAKS):
            if now_ms - self._spike_time[i] <= SPIKE_MEMORY_MS:
                recent += 1
                if self._spike_height[i] > height:
                    height = self._spike_height[i]
        if recent < SPIKES_NEEDED:
            self.spike_ms = 0.0
        else:
            self.spike_ms = height if height < self.spike_max_ms else self.spike_max_ms

    # ----- playout ---------------------------------------------------------------------
    def level_ms(self):
        """Audio buffered ahead of the play position."""
        if not self.playing or self.count == 0:
            return 0.0
        return self._ms(self._ts[self.count - 1] + self.step - self.play_ts)

    cdef double _delay_ms(self, int64_t ts, double now_ms):
        # how much later than the fastest recent packet the audio at ts is played
        return now_ms - self._ms(ts) - self._fastest

    def delay_ms(self, double now_ms):
        """The current play-out delay beyond the fastest packet of the last 2 s."""
        return self._delay_ms(self.play_ts, now_ms) if self.playing else 0.0

    def get(self, double now_ms):
        """What to play next: ``(operation, payload)``. Whether a packet is here in
        time is judged at ``now_ms``, when it is asked for."""
        cdef double delay
        cdef object payload
        if not self.playing:
            if self.count == 0 or self._delay_ms(self._ts[0], now_ms) < self.target_ms:
                if self._started:
                    self.concealed += 1
                    return WAIT, None
                return SILENCE, None
            # Resume after a stall at the target: what piled up beyond it while
            # nothing played was concealed already.
            while self._started and self.count > 1 and \
                    self._delay_ms(self._ts[0], now_ms) > self.target_ms + TOLERANCE_MS:
                self._drop_oldest()
                self.discarded += 1
            self.playing = True
            self._started = True
            self.play_ts = self._ts[0]
            self._filter_ready = False
            self._dry_ms = 0
            self._waits = 0
        # A packet less than a step from the play position is off its grid (the
        # packet length changed, or the peer's timestamps moved by a fraction of a
        # packet): play from it rather than skip it and every one after it.
        if self.count and self._ts[0] != self.play_ts and \
                self.play_ts - self.step < self._ts[0] < self.play_ts + self.step:
            self.play_ts = self._ts[0]
            self.realigned += 1
        # packets that fell behind the play position (after a jump forward) go
        while self.count and self._ts[0] < self.play_ts:
            self._drop_oldest()
            self.late += 1
        delay = self._delay_ms(self.play_ts, now_ms)
        # never more than max_delay_ms: skip ahead to the target
        if delay > self.max_delay_ms:
            while self.count and self._delay_ms(self.play_ts, now_ms) > self.target_ms:
                self.play_ts += self.step
                self.discarded += 1
                while self.count and self._ts[0] < self.play_ts:
                    self._drop_oldest()
            delay = self._delay_ms(self.play_ts, now_ms)
        if not self._filter_ready:
            self.filtered_ms = delay
            self._filter_ready = True
        else:
            self.filtered_ms = 0.7 * self.filtered_ms + 0.3 * delay
        if (self.count == 0 or self._ts[0] > self.play_ts) and self._in_event(self.play_ts):
            # The peer sent a telephone-event instead of this frame: nothing will
            # come; keep time, as if it had been played.
            self.replaced += 1
            self._waits = 0
            self._dry_ms = 0
            self.play_ts += self.step
            return CONCEAL, None
        if self.count == 0:
            # Ran dry: late packets or a loss burst. Below the target, wait
            # (conceal without moving on: the delay grows by a frame); otherwise
            # conceal and keep time, as a fixed buffer would. After REBUFFER_MS of
            # nothing the peer paused or the network stalled: stop, and start
            # again at the target when packets return.
            self.concealed += 1
            if self._dry_ms == 0:
                self.underruns += 1
            self._dry_ms += self._packet_ms()
            if self._dry_ms >= REBUFFER_MS:
                self.playing = False
                return WAIT, None
            if delay < self.target_ms:
                return WAIT, None
            self.play_ts += self.step
            return CONCEAL, None
        self._dry_ms = 0
        if self._ts[0] > self.play_ts:
            # A gap at the play position: lost, or late. Wait for it (a frame or
            # two) only while below the target; else it is lost.
            self.concealed += 1
            if delay < self.target_ms and self._waits < MAX_WAITS:
                self._waits += 1
                return WAIT, None
            self._waits = 0
            self.play_ts += self.step
            if self._ts[0] == self.play_ts:
                self.fec_recovered += 1
                return CONCEAL, self._payload[0]
            return CONCEAL, None
        # the packet is here
        self._waits = 0
        payload = self._payload[0]
        self.delay_sum_ms += now_ms - self._arrival[0]
        self.played += 1
        self._drop_oldest()
        self.play_ts += self.step
        if self.filtered_ms > self.target_ms + TOLERANCE_MS:
            return ACCELERATE, payload
        if self.filtered_ms < self.target_ms:
            return STRETCH, payload
        return NORMAL, payload

    def adjusted(self, double ms):
        """The player changed the level by ``ms`` (negative: it played faster)."""
        if ms > 0:
            self.stretched += 1
        elif ms < 0:
            self.accelerated += 1
        self.filtered_ms += ms

    def fec_unused(self):
        """The codec could not use the FEC payload it was given."""
        self.fec_recovered -= 1

    def mean_delay_ms(self):
        """Mean time a played packet spent in the buffer."""
        return self.delay_sum_ms / self.played if self.played else 0.0
