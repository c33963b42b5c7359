"""How long a call may last: its end, the warning before it, and extensions by key.

Sans-IO on the caller's clock: the station asks when to wake (``deadline``)
and what is due then (``due``), and hands over the resident's digits
(``extends``). The warning comes ``warning`` seconds before the end (at
once, if the call is shorter than that); after it, and only then, the
extend key moves the end ``extend_seconds`` further and gives a new warning
before the new end. At other times the key is an ordinary digit, so it can
still be part of a door code.
"""
from __future__ import annotations


class CallLimit:
    def __init__(self, now: float, max_duration: float, warning: float, extend_key: str,
                 extend_seconds: float) -> None:
        self.ends_at = now + max_duration
        self.warning = warning
        self.extend_key = extend_key
        self.extend_seconds = extend_seconds
        self.warned = False

    def deadline(self) -> float:
        if self.warning and not self.warned:
            return self.ends_at - self.warning
        return self.ends_at

    def due(self, now: float) -> str | None:
        """"warn" or "end" when that is due now; None before."""
        if now >= self.ends_at:
            return "end"
        if self.warning and not self.warned and now >= self.ends_at - self.warning:
            self.warned = True
            return "warn"
        return None

    def extends(self, digit: str, entering_code: bool) -> bool:
        """Does ``digit`` extend the call (then it is not a code digit)?"""
        if not (self.warned and self.extend_key and digit == self.extend_key) or entering_code:
            return False
        self.ends_at += self.extend_seconds
        self.warned = False
        return True
