"""H.264 over RTP in packetization mode 1 (RFC 6184): cext/h264.pyx.

Access units go to payloads and back unchanged whatever their NAL units'
sizes; payloads respect the MTU; parameter sets share a STAP-A; large NAL
units go as FU-A with their start and end bits; a lost fragment loses its
NAL unit and marks the stream damaged until the next IDR picture; anything
that is not mode 1 is counted and dropped, never raised.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from intercom.cext.h264 import FU_A, STAP_A, Depacketizer, nal_units, packetize

SPS = bytes([0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xBF, 0xE5])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])


def nal(kind: int, size: int, nri: int = 0x60) -> bytes:
    """A NAL unit of ``kind`` and ``size`` bytes whose body has no start code in it."""
    body = bytes((i * 7 + 3) % 251 + 1 for i in range(size - 1))
    return bytes([nri | kind]) + body


def annex_b(*units: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)


def through(au: bytes, mtu: int = 1200,
            first_seq: int = 100) -> tuple[bytes | None, list[bytes]]:
    payloads = packetize(au, mtu)
    d = Depacketizer()
    out = None
    for i, payload in enumerate(payloads):
        got = d.feed(payload, (first_seq + i) & 0xFFFF, i == len(payloads) - 1)
        if got is not None:
            out = got
    assert d.invalid == 0 and d.lost == 0
    return out, payloads


def test_a_keyframe_goes_as_a_stap_a_and_fu_a_fragments_and_comes_back() -> None:
    idr = nal(5, 5000)
    au = annex_b(SPS, PPS, idr)
    out, payloads = through(au, mtu=1200)
    assert out == au
    assert payloads[0][0] & 0x1F == STAP_A                  # SPS and PPS together
    assert payloads[0] == bytes([0x60 | STAP_A]) + len(SPS).to_bytes(2, "big") + SPS + \
        len(PPS).to_bytes(2, "big") + PPS
    fragments = payloads[1:]
    assert all(p[0] == (0x60 | FU_A) and p[1] & 0x1F == 5 for p in fragments)
    assert fragments[0][1] & 0x80 and not fragments[0][1] & 0x40          # start
    assert fragments[-1][1] & 0x40 and not fragments[-1][1] & 0x80        # end
    assert not any(p[1] & 0xC0 for p in fragments[1:-1])
    assert all(len(p) <= 1200 for p in payloads)
    assert sum(len(p) - 2 for p in fragments) == len(idr) - 1


def test_a_nal_unit_that_fits_goes_alone_and_three_byte_start_codes_are_read() -> None:
    slice_ = nal(1, 1200)
    out, payloads = through(b"\x00\x00\x01" + slice_, mtu=1200)
    assert payloads == [slice_] and out == annex_b(slice_)
    assert nal_units(b"\x00\x00\x01" + SPS + b"\x00\x00\x00\x01" + PPS) == [SPS, PPS]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 23), st.integers(1, 4000)), min_size=1, max_size=8),
       st.integers(16, 1500), st.integers(0, 0xFFFF))
def test_any_access_unit_comes_back_as_it_went(units: list[tuple[int, int]], mtu: int,
                                               seq: int) -> None:
    au = annex_b(*(nal(kind, size) for kind, size in units))
    out, payloads = through(au, mtu, seq)               # across the sequence wrap too
    assert out == au and all(len(p) <= mtu for p in payloads)


def test_a_lost_fragment_loses_its_nal_unit_until_the_next_idr() -> None:
    d = Depacketizer()
    first = packetize(annex_b(SPS, PPS, nal(5, 4000)), 1000)
    for i, payload in enumerate(first):
        if i == 2:
            continue                                    # a fragment in the middle is lost
        out = d.feed(payload, i, i == len(first) - 1)
    assert out == annex_b(SPS, PPS)                     # the IDR slice is gone
    assert d.lost >= 1 and d.damaged                     # time to ask for a keyframe (PLI)
    seq = len(first)
    p_frame = packetize(annex_b(nal(1, 3000)), 1000)
    for i, payload in enumerate(p_frame):
        d.feed(payload, seq + i, i == len(p_frame) - 1)
    assert d.damaged                                    # still: a P picture does not mend it
    seq += len(p_frame)
    again = packetize(annex_b(SPS, PPS, nal(5, 2000)), 1000)
    for i, payload in enumerate(again):
        out = d.feed(payload, seq + i, i == len(again) - 1)
    assert out == annex_b(SPS, PPS, nal(5, 2000)) and not d.damaged


def test_what_is_not_mode_1_is_counted_and_dropped() -> None:
    d = Depacketizer()
    bad = [b"", bytes([0x80 | 1, 1, 2]),                 # empty; the forbidden bit
           bytes([0x60 | STAP_A, 0x00, 0x09, 0x67]),     # a STAP-A that runs short
           bytes([0x60 | STAP_A]),                        # with nothing in it
           bytes([0x60 | FU_A, 0x85]),                    # a fragment without data
           bytes([0x60 | 25, 0, 0]), bytes([0x60 | 29, 0x85, 1]),   # STAP-B, FU-B
           bytes([0x60 | 0])]                             # type 0
    for i, payload in enumerate(bad):
        assert d.feed(payload, i, True) is None
    assert d.invalid == len(bad) and d.units == 0
    # a fragment whose start never came is dropped quietly, and the next unit is whole
    assert d.feed(bytes([0x60 | FU_A, 0x41, 9, 9]), len(bad), True) is None
    assert d.feed(SPS, len(bad) + 1, True) == annex_b(SPS)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=12), st.lists(st.booleans(), max_size=12))
def test_any_bytes_at_all_are_survived(payloads: list[bytes], markers: list[bool]) -> None:
    d = Depacketizer()
    for i, payload in enumerate(payloads):
        got = d.feed(payload, i, markers[i] if i < len(markers) else False)
        assert got is None or got.startswith(b"\x00\x00\x00\x01")
