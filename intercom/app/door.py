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


@dataclass(frozen=True)
class Lock:
    scope: str             # "call", "caller" or "all"
    seconds: float         # how long; for a call: the rest of it (0)


class Lockout:
    """Wrong codes lock code entry, so that guessing a code takes years, not minutes.

    * In one call, ``per_call`` wrong codes end code entry for the rest of it.
    * The same caller's wrong codes count across calls (a redial does not
      start afresh): every ``per_call`` of them locks that caller out, for
      ``base`` seconds the first time and twice as long each time after, up
      to ``longest``.
    * Everyone's wrong codes count together too: every ``overall`` of them
      locks code entry for all callers the same way (a guesser with many
      caller names).
    While locked, no code is even compared, the right one included. A right
    code clears its caller's count and backoff; only time clears the global
    one. Times are the caller's clock (seconds), so tests run on a virtual one.
    """

    def __init__(self, per_call: int = 3, overall: int = 10, base: float = 60.0,
                 longest: float = 3600.0) -> None:
        self.per_call, self.overall = per_call, overall
        self.base, self.longest = base, longest
        self._call_wrong: dict[str, int] = {}
        self._caller: dict[str, _Backoff] = {}
        self._all = _Backoff()

    def locked(self, call: str, caller: str, now: float) -> Lock | None:
        """Why code entry is locked for this call now, if it is."""
        if self._call_wrong.get(call, 0) >= self.per_call:
            return Lock("call", 0.0)
        if (left := self._all.left(now)) > 0:
            return Lock("all", left)
        backoff = self._caller.get(caller)
        if backoff is not None and (left := backoff.left(now)) > 0:
            return Lock("caller", left)
        return None

    def everyone_locked(self, now: float) -> bool:
        return self._all.left(now) > 0

    def wrong(self, call: str, caller: str, now: float) -> list[Lock]:
        """A wrong code: the locks it sets off (none, or some of call, caller, all)."""
        locks = []
        self._call_wrong[call] = self._call_wrong.get(call, 0) + 1
        if self._call_wrong[call] == self.per_call:
            locks.append(Lock("call", 0.0))
        backoff = self._caller.setdefault(caller, _Backoff())
        if backoff.count(now, self.per_call, self.base, self.longest):
            locks.append(Lock("caller", backoff.left(now)))
        if self._all.count(now, self.overall, self.base, self.longest):
            locks.append(Lock("all", self._all.left(now)))
        return locks

    def right(self, caller: str) -> None:
        self._caller.pop(caller, None)

    def export(self, now: float) -> dict[str, tuple[int, int, float]]:
        """What outlives a restart: per caller and for all, (wrong codes, locks so far,
        seconds left of the lock, negative once over). Per-call counts end with the call."""
        state = {f"caller:{c}": b.export(now) for c, b in self._caller.items()
                 if b.wrong or b.locks}
        if self._all.wrong or self._all.locks:
            state["all"] = self._all.export(now)
        return state

    def restore(self, state: dict[str, tuple[int, int, float]], now: float) -> None:
        for scope, (wrong, locks, left) in state.items():
            backoff = _Backoff(wrong, locks, now + left)
            if scope == "all":
                self._all = backoff
            elif scope.startswith("caller:"):
                self._caller[scope[len("caller:"):]] = backoff

    def call_ended(self, call: str) -> None:
        self._call_wrong.pop(call, None)


class _Backoff:
    """Wrong codes since the last lock; each lock twice as long as the one before."""

    def __init__(self, wrong: int = 0, locks: int = 0, until: float = 0.0) -> None:
        self.wrong = wrong
        self.locks = locks
        self.until = until

    def export(self, now: float) -> tuple[int, int, float]:
        return self.wrong, self.locks, self.until - now

    def left(self, now: float) -> float:
        return max(0.0, self.until - now)

    def count(self, now: float, limit: int, base: float, longest: float) -> bool:
        """Count one wrong code; True when it sets off a lock."""
        if self.locks and now > self.until + longest:
            self.locks = 0                      # quiet for long enough: start over
        self.wrong += 1
        if self.wrong < limit:
            return False
        self.wrong = 0
        self.locks += 1
        self.until = now + min(longest, base * 2 ** (self.locks - 1))
        return True
