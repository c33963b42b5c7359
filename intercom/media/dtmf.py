"""RFC 4733 telephone-events: receive digits once each, and build packets to send."""
from __future__ import annotations

import struct

EVENT_DIGITS = "0123456789*#ABCD"


def digit_event(digit: str) -> int:
    index = EVENT_DIGITS.find(digit.upper())
    if len(digit) != 1 or index < 0:
        raise ValueError(f"{digit!r} is not a DTMF digit (0-9, *, #, A-D)")
    return index


class DtmfReceiver:
    """Turns a stream of event packets into digits.

    One event is identified by its RTP timestamp (RFC 4733 2.5.1.1): its
    start and update packets share it, and its end packet is sent three
    times. A digit is reported on the first end packet; if every end packet
    of an event was lost, it is reported when the next event begins.
    """

    def __init__(self) -> None:
        self._open: tuple[int, str] | None = None     # (timestamp, digit) begun, not ended
        self._done: int | None = None                  # timestamp of the last reported event

    def feed(self, payload: bytes, timestamp: int) -> list[str]:
        if len(payload) < 4 or payload[0] >= len(EVENT_DIGITS):
            return []
        digit = EVENT_DIGITS[payload[0]]
        ended = bool(payload[1] & 0x80)
        if timestamp == self._done:
            return []                                  # a repeated end packet
        digits: list[str] = []
        if self._open is not None and self._open[0] != timestamp:
            digits.append(self._open[1])               # its end packets were all lost
            self._open = None
        if ended:
            self._done = timestamp
            self._open = None
            digits.append(digit)
        else:
            self._open = (timestamp, digit)
        return digits


def event_payloads(digit: str, duration: int, step: int, volume: int = 10) -> list[bytes]:
    """Payloads for one digit: updates every ``step`` samples up to ``duration``
    samples, then the end packet three times (RFC 4733 2.5.1.4)."""
    event = digit_event(digit)
    payloads = [struct.pack("!BBH", event, volume & 0x3F, d)
                for d in range(step, duration, step)]
    end = struct.pack("!BBH", event, 0x80 | (volume & 0x3F), duration)
    return payloads + [end] * 3
