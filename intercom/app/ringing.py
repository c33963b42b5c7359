"""Which call targets ring when, for one press of a bell (no I/O here).

A plan is a list of steps, each ringing one or more targets together:

* in sequence, one target per step: the list ``cycles`` times over, then the
  fallback targets one by one;
* in parallel, all targets in one step (``cycles`` times), then all the
  fallback targets together.

A step lasts until one of its targets answers (the others get CANCEL), until
every one of them has refused (busy, decline, unavailable or unreachable: the
next step starts at once) or until ``ring_time`` has passed (the rest are
cancelled and the next step starts). ``ring_timeout`` after the press,
whatever still rings is cancelled and the visitor is told nobody answered.

A target that refused is not rung again in a later cycle: cycles give a
resident more time to come to the phone; they do not redial a busy phone,
and a decline is the resident's answer. Times are the caller's clock, so
tests run on a virtual one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from intercom.app.events import CallOutcome

STRATEGIES = ("sequential", "parallel")


@dataclass(frozen=True)
class RingSettings:
    targets: tuple[str, ...]
    strategy: str = "sequential"
    ring_time: float = 30.0
    cycles: int = 1
    fallback: tuple[str, ...] = ()
    ring_timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy {self.strategy!r} is not one of {STRATEGIES}")
        if not self.targets or self.cycles < 1 or self.ring_time <= 0:
            raise ValueError("a plan needs targets, a ring time and at least one cycle")


@dataclass(frozen=True)
class Ring:
    leg: int               # the plan's number for this call, unique within the plan
    target: str


@dataclass(frozen=True)
class Cancel:
    leg: int
    reason: str


@dataclass(frozen=True)
class GiveUp:
    reason: CallOutcome    # no answer, busy, declined or unavailable


Action = Ring | Cancel | GiveUp


@dataclass
class RingPlan:
    settings: RingSettings
    started: float
    steps: list[tuple[str, ...]] = field(init=False)
    step: int = -1
    step_ends: float = 0.0
    ringing: dict[int, str] = field(default_factory=dict)     # leg -> target, this step
    refused: dict[str, int] = field(default_factory=dict)     # target -> final status
    tried: list[str] = field(default_factory=list)            # in the order first rung
    rang_out: bool = False           # some target rang until its time was up
    answered_by: str | None = None
    outcome: CallOutcome | None = None   # answered, stopped or GiveUp's, once done
    _legs: int = 0

    def __post_init__(self) -> None:
        s = self.settings
        if s.strategy == "parallel":
            self.steps = [s.targets] * s.cycles + ([s.fallback] if s.fallback else [])
        else:
            one: list[tuple[str, ...]] = [(t,) for t in s.targets]
            self.steps = one * s.cycles + [(f,) for f in s.fallback]

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def start(self, now: float) -> list[Action]:
        return self._next_step(now)

    def deadline(self) -> float | None:
        """When ``timer`` wants to be called next; None once done."""
        if self.done:
            return None
        return min(self.step_ends, self.started + self.settings.ring_timeout)

    def timer(self, now: float) -> list[Action]:
        if self.done:
            return []
        if now >= self.started + self.settings.ring_timeout:
            actions = self._cancel_all("ring timeout")
            self.rang_out = True
            return actions + self._give_up()
        if now >= self.step_ends:
            actions = self._cancel_all("no answer within the ring time")
            self.rang_out = True
            return actions + self._next_step(now)
        return []

    def failed(self, leg: int, status: int, now: float) -> list[Action]:
        """A target refused or could not be reached (its final SIP status)."""
        target = self.ringing.pop(leg, None)
        if target is None or self.done:
            return []                       # a leg we cancelled, finishing
        self.refused[target] = status
        return [] if self.ringing else self._next_step(now)

    def answered(self, leg: int) -> list[Action]:
        """A target answered: it wins, every other one still ringing is cancelled."""
        target = self.ringing.pop(leg, None)
        if target is None or self.done:
            # Cancelled, or another answered first (the 200 crossed our CANCEL).
            return [Cancel(leg, "answered elsewhere")]
        self.answered_by = target
        self.outcome = CallOutcome.ANSWERED
        return self._cancel_all("answered elsewhere")

    def stop(self, reason: str) -> list[Action]:
        """The press is over before anyone answered (the station stops, a new press)."""
        if self.done:
            return []
        actions = self._cancel_all(reason)
        self.outcome = CallOutcome.STOPPED
        return actions

    def _cancel_all(self, reason: str) -> list[Action]:
        actions: list[Action] = [Cancel(leg, reason) for leg in self.ringing]
        self.ringing.clear()
        return actions

    def _next_step(self, now: float) -> list[Action]:
        while True:
            self.step += 1
            if self.step >= len(self.steps):
                return self._give_up()
            targets = [t for t in dict.fromkeys(self.steps[self.step]) if t not in self.refused]
            if targets:
                break
        self.step_ends = now + self.settings.ring_time
        actions: list[Action] = []
        for target in targets:
            self.ringing[self._legs] = target
            actions.append(Ring(self._legs, target))
            self._legs += 1
            if target not in self.tried:
                self.tried.append(target)
        return actions

    def _give_up(self) -> list[Action]:
        statuses = set(self.refused.values())
        if self.rang_out or not statuses:
            reason = CallOutcome.NO_ANSWER
        elif statuses <= {486, 600}:
            reason = CallOutcome.BUSY
        elif 603 in statuses:
            reason = CallOutcome.DECLINED
        else:
            reason = CallOutcome.UNAVAILABLE
        self.outcome = reason
        return [GiveUp(reason)]
