"""Door codes keyed by DTMF: which digit sequences open the door (no I/O here).

Digits collect per call into an attempt. As soon as the attempt equals a
configured code the door opens. It is rejected when '#' ends it, when it is
as long as the longest code, or ``digit_timeout`` seconds after its last
digit. A wrong digit is not pointed out early (that would tell a guesser
which digit was wrong), and only a whole attempt can match: a code buried at
the end of a longer string of digits does not open the door.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    action: str            # "open" or "reject"
    reason: str = ""


class DoorCodes:
    def __init__(self, codes: list[str], digit_timeout: float) -> None:
        self.codes = list(codes)
        self.longest = max((len(c) for c in codes), default=1)
        self.digit_timeout = digit_timeout
        self._digits = ""
        self._last: float | None = None

    def digit(self, d: str, now: float) -> list[Decision]:
        """Decisions this digit leads to (a timed-out partial code first, if any)."""
        decisions = [e] if (e := self.expire(now)) else []
        self._digits += d
        self._last = now
        entered = self._digits
        # Compare every code in constant time, so timing says nothing about near misses.
        if any(hmac.compare_digest(entered, code) for code in self.codes):
            self.reset()
            decisions.append(Decision("open"))
        elif d == "#" or len(entered) >= self.longest:
            self.reset()
            decisions.append(Decision("reject", f"wrong code ({len(entered)} digits)"))
        return decisions

    def expire(self, now: float) -> Decision | None:
        """Reject a partial code once ``digit_timeout`` has passed since its last digit."""
        if self._digits and self._last is not None and now - self._last >= self.digit_timeout:
            n = len(self._digits)
            self.reset()
            return Decision("reject", f"incomplete code ({n} digits), timed out")
        return None

    def deadline(self) -> float | None:
        return None if not self._digits or self._last is None else self._last + self.digit_timeout

    def reset(self) -> None:
        self._digits = ""
        self._last = None
