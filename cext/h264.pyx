# cython: language_level=3
"""H.264 over RTP, packetization mode 1 (RFC 6184): access units to payloads and back.

``packetize`` takes one access unit in Annex B form (NAL units after 00 00 01
or 00 00 00 01 start codes) and gives the RTP payloads for it, each at most
``mtu`` bytes: small NAL units that follow each other (SPS, PPS, SEI before
an IDR) share one STAP-A (5.7.1), a NAL unit that fits goes alone (5.6), a
larger one is cut into FU-A fragments (5.8). The caller sets the marker bit
on the last payload of the access unit.

``Depacketizer`` puts them back together: ``feed`` each payload with its
sequence number and marker bit, and it returns the access unit (Annex B,
4-byte start codes) when one is complete. A fragment that goes missing
loses its NAL unit and sets ``damaged`` until the next IDR picture, which
is when the receiver should have asked for a keyframe (PLI, RFC 4585
6.3.1); a payload that is not valid mode 1 is counted in ``invalid`` and
dropped.
"""
from libc.stdint cimport uint8_t

STAP_A = 24
FU_A = 28
IDR = 5
START = b"\x00\x00\x00\x01"


cdef list _nal_units(const unsigned char[::1] au):
    """The NAL units of an Annex B stream, without their start codes."""
    cdef Py_ssize_t n = au.shape[0], i = 0, start = -1, end
    cdef list out = []
    while i + 2 < n:
        if au[i] == 0 and au[i + 1] == 0 and au[i + 2] == 1:
            if start >= 0:
                end = i
                while end > start and au[end - 1] == 0:     # the 4-byte code's zero
                    end -= 1
                if end > start:
                    out.append(bytes(au[start:end]))
            i += 3
            start = i
        else:
            i += 1
    if start >= 0 and start < n:
        out.append(bytes(au[start:n]))
    elif start < 0 and n:
        out.append(bytes(au[0:n]))                # a bare NAL unit, no start code
    return out


def nal_units(const unsigned char[::1] au):
    """The NAL units of an Annex B access unit, without start codes."""
    return _nal_units(au)


def packetize(const unsigned char[::1] au, int mtu=1200):
    """The RTP payloads for one access unit (see the module's docstring)."""
    if mtu < 16:
        raise ValueError(f"an MTU of {mtu} bytes is too small for H.264 over RTP")
    cdef list nals = _nal_units(au)
    cdef list out = []
    cdef list group = []
    cdef Py_ssize_t size = 1, i
    cdef bytes nal
    cdef int nri, kind
    for nal in nals:
        if len(nal) == 0:
            continue
        if group and size + 2 + len(nal) <= mtu:
            group.append(nal)
            size += 2 + len(nal)
            continue
        _flush(group, out)
        group, size = [], 1
        if len(nal) <= mtu:               # alone, or the first of a STAP-A
            group.append(nal)
            size += 2 + len(nal)
            continue
        # FU-A: the NAL header's F and NRI in the indicator, its type in the FU header
        nri = nal[0] & 0x60
        kind = nal[0] & 0x1F
        i = 1
        while i < len(nal):
            piece = nal[i:i + mtu - 2]
            header = kind | (0x80 if i == 1 else 0) | (0x40 if i + len(piece) >= len(nal) else 0)
            out.append(bytes([(nal[0] & 0x80) | nri | FU_A, header]) + piece)
            i += len(piece)
    _flush(group, out)
    return out


cdef void _flush(list group, list out):
    cdef bytearray stap
    cdef int nri = 0
    if not group:
        return
    if len(group) == 1:
        out.append(group[0])
        return
    for nal in group:
        nri = max(nri, nal[0] & 0x60)
    stap = bytearray([nri | STAP_A])
    for nal in group:
        stap += len(nal).to_bytes(2, "big") + nal
    out.append(bytes(stap))


cdef class Depacketizer:
    cdef list _nals                 # the access unit so far
    cdef bytearray _fu              # the FU-A being put together
    cdef bint _in_fu
    cdef int _last_seq
    cdef readonly long invalid      # payloads that are not mode-1 H.264
    cdef readonly long lost         # NAL units lost to missing fragments or packets
    cdef readonly bint damaged      # a loss since the last IDR picture
    cdef readonly long units        # access units put together

    def __cinit__(self):
        self._nals = []
        self._fu = bytearray()
        self._in_fu = False
        self._last_seq = -1

    def feed(self, const unsigned char[::1] payload, int seq, bint marker):
        """One RTP payload; the access unit (Annex B) if ``marker`` ends one, else None."""
        cdef Py_ssize_t n = payload.shape[0], pos, size
        cdef int kind
        if self._last_seq >= 0 and ((seq - self._last_seq) & 0xFFFF) != 1:
            self._lose()                      # a gap: whatever was being built is broken
        self._last_seq = seq & 0xFFFF
        if n < 1 or payload[0] & 0x80:
            self.invalid += 1                 # empty, or the forbidden bit set
            return self._end(marker)
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self._drop_fu()
            self._nals.append(bytes(payload))
        elif kind == STAP_A:
            self._drop_fu()
            pos = 1
            found = []
            while pos + 2 <= n:
                size = (payload[pos] << 8) | payload[pos + 1]
                if size == 0 or pos + 2 + size > n:
                    break
                found.append(bytes(payload[pos + 2:pos + 2 + size]))
                pos += 2 + size
            if pos != n or not found:
                self.invalid += 1
            else:
                self._nals.extend(found)
        elif kind == FU_A:
            if n < 3:
                self.invalid += 1
                return self._end(marker)
            if payload[1] & 0x80:             # start
                self._drop_fu()
                self._fu = bytearray([(payload[0] & 0xE0) | (payload[1] & 0x1F)])
                self._in_fu = True
            elif not self._in_fu:             # the start went missing
                return self._end(marker)
            self._fu += bytes(payload[2:n])
            if payload[1] & 0x40:             # end
                self._nals.append(bytes(self._fu))
                self._fu = bytearray()
                self._in_fu = False
        else:
            self.invalid += 1                 # STAP-B, MTAP, FU-B: not in mode 1
        return self._end(marker)

    cdef void _drop_fu(self):
        if self._in_fu:
            self.lost += 1
            self.damaged = True
            self._in_fu = False
            self._fu = bytearray()

    cdef void _lose(self):
        self.lost += 1                        # a packet is missing: a NAL unit with it
        self.damaged = True
        self._in_fu = False
        self._fu = bytearray()

    cdef object _end(self, bint marker):
        if not marker:
            return None
        self._drop_fu()
        nals, self._nals = self._nals, []
        if not nals:
            return None
        if any((nal[0] & 0x1F) == IDR for nal in nals):
            self.damaged = False              # a fresh picture to decode from
        self.units += 1
        return b"".join(START + nal for nal in nals)
