"""RFC 3261 section 17 transactions, in one table.

A transaction is fed inputs ("1xx", "timer_A", "send_final", ...) and the
current time; the table gives its next state and a list of actions, which
``Transaction.fire`` carries out. It never does I/O: datagrams to send and
what to tell the transaction user come back in a ``Step``.

Timer values (section 17.1.1.1 and table 4): A/E/G start at T1 and double
(E and G capped at T2), B/F/H/J are 64*T1, D is 32 s, I and K are T4. Over
a reliable transport A, E and G never fire and D, I, J and K are zero.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from intercom.sip.locate import Dest
from intercom.sip.message import Request, Response


class Kind(Enum):
    INVITE_CLIENT = "ict"
    NON_INVITE_CLIENT = "nict"
    INVITE_SERVER = "ist"
    NON_INVITE_SERVER = "nist"


class State(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


K, S = Kind, State
_FINAL_CLIENT = ("deliver", "disarm:E", "disarm:F", "arm:K")

# (kind, state, input) -> (next state, actions). Inputs not listed are absorbed.
TABLE: dict[tuple[Kind, State, str], tuple[State, tuple[str, ...]]] = {
    # INVITE client, figure 5
    (K.INVITE_CLIENT, S.CALLING, "timer_A"): (S.CALLING, ("retransmit", "backoff:A", "arm:A")),
    (K.INVITE_CLIENT, S.CALLING, "timer_B"): (S.TERMINATED, ("timeout",)),
    (K.INVITE_CLIENT, S.CALLING, "1xx"): (S.PROCEEDING, ("deliver", "disarm:A", "disarm:B")),
    (K.INVITE_CLIENT, S.CALLING, "2xx"): (S.TERMINATED, ("deliver",)),
    (K.INVITE_CLIENT, S.CALLING, "final"): (S.COMPLETED, ("send_ack", "deliver", "disarm:A",
                                                          "disarm:B", "arm:D")),
    (K.INVITE_CLIENT, S.PROCEEDING, "1xx"): (S.PROCEEDING, ("deliver",)),
    (K.INVITE_CLIENT, S.PROCEEDING, "2xx"): (S.TERMINATED, ("deliver",)),
    (K.INVITE_CLIENT, S.PROCEEDING, "final"): (S.COMPLETED, ("send_ack", "deliver", "arm:D")),
    (K.INVITE_CLIENT, S.COMPLETED, "final"): (S.COMPLETED, ("send_ack",)),
    (K.INVITE_CLIENT, S.COMPLETED, "timer_D"): (S.TERMINATED, ()),
    (K.INVITE_CLIENT, S.CALLING, "transport_error"): (S.TERMINATED, ("timeout",)),
    (K.INVITE_CLIENT, S.PROCEEDING, "transport_error"): (S.TERMINATED, ("timeout",)),
    # non-INVITE client, figure 6
    (K.NON_INVITE_CLIENT, S.TRYING, "timer_E"): (S.TRYING, ("retransmit", "backoff:E", "arm:E")),
    (K.NON_INVITE_CLIENT, S.TRYING, "timer_F"): (S.TERMINATED, ("timeout",)),
    (K.NON_INVITE_CLIENT, S.TRYING, "1xx"): (S.PROCEEDING, ("deliver",)),
    (K.NON_INVITE_CLIENT, S.TRYING, "2xx"): (S.COMPLETED, _FINAL_CLIENT),
    (K.NON_INVITE_CLIENT, S.TRYING, "final"): (S.COMPLETED, _FINAL_CLIENT),
    (K.NON_INVITE_CLIENT, S.PROCEEDING, "timer_E"): (S.PROCEEDING, ("retransmit", "t2:E", "arm:E")),
    (K.NON_INVITE_CLIENT, S.PROCEEDING, "timer_F"): (S.TERMINATED, ("timeout",)),
    (K.NON_INVITE_CLIENT, S.PROCEEDING, "1xx"): (S.PROCEEDING, ("deliver",)),
    (K.NON_INVITE_CLIENT, S.PROCEEDING, "2xx"): (S.COMPLETED, _FINAL_CLIENT),
    (K.NON_INVITE_CLIENT, S.PROCEEDING, "final"): (S.COMPLETED, _FINAL_CLIENT),
    (K.NON_INVITE_CLIENT, S.COMPLETED, "timer_K"): (S.TERMINATED, ()),
    (K.NON_INVITE_CLIENT, S.TRYING, "transport_error"): (S.TERMINATED, ("timeout",)),
    (K.NON_INVITE_CLIENT, S.PROCEEDING, "transport_error"): (S.TERMINATED, ("timeout",)),
    # INVITE server, figure 7 (a 2xx ends it; the dialog layer retransmits 2xx)
    (K.INVITE_SERVER, S.PROCEEDING, "request"): (S.PROCEEDING, ("resend",)),
    (K.INVITE_SERVER, S.PROCEEDING, "send_1xx"): (S.PROCEEDING, ("send",)),
    (K.INVITE_SERVER, S.PROCEEDING, "send_2xx"): (S.TERMINATED, ("send",)),
    (K.INVITE_SERVER, S.PROCEEDING, "send_final"): (S.COMPLETED, ("send", "arm:G", "arm:H")),
    (K.INVITE_SERVER, S.COMPLETED, "request"): (S.COMPLETED, ("resend",)),
    (K.INVITE_SERVER, S.COMPLETED, "timer_G"): (S.COMPLETED, ("resend", "backoff:G", "arm:G")),
    (K.INVITE_SERVER, S.COMPLETED, "timer_H"): (S.TERMINATED, ("timeout",)),
    (K.INVITE_SERVER, S.COMPLETED, "ack"): (S.CONFIRMED, ("disarm:G", "disarm:H", "arm:I")),
    (K.INVITE_SERVER, S.CONFIRMED, "timer_I"): (S.TERMINATED, ()),
    # non-INVITE server, figure 8
    (K.NON_INVITE_SERVER, S.TRYING, "send_1xx"): (S.PROCEEDING, ("send",)),
    (K.NON_INVITE_SERVER, S.TRYING, "send_2xx"): (S.COMPLETED, ("send", "arm:J")),
    (K.NON_INVITE_SERVER, S.TRYING, "send_final"): (S.COMPLETED, ("send", "arm:J")),
    (K.NON_INVITE_SERVER, S.PROCEEDING, "request"): (S.PROCEEDING, ("resend",)),
    (K.NON_INVITE_SERVER, S.PROCEEDING, "send_1xx"): (S.PROCEEDING, ("send",)),
    (K.NON_INVITE_SERVER, S.PROCEEDING, "send_2xx"): (S.COMPLETED, ("send", "arm:J")),
    (K.NON_INVITE_SERVER, S.PROCEEDING, "send_final"): (S.COMPLETED, ("send", "arm:J")),
    (K.NON_INVITE_SERVER, S.COMPLETED, "request"): (S.COMPLETED, ("resend",)),
    (K.NON_INVITE_SERVER, S.COMPLETED, "timer_J"): (S.TERMINATED, ()),
}

INITIAL = {K.INVITE_CLIENT: (S.CALLING, ("arm:A", "arm:B")),
           K.NON_INVITE_CLIENT: (S.TRYING, ("arm:E", "arm:F")),
           K.INVITE_SERVER: (S.PROCEEDING, ()),
           K.NON_INVITE_SERVER: (S.TRYING, ())}


# Over TCP and TLS there are no retransmissions, and the wait states end at once.
RELIABLE_SKIP = frozenset("AEG")
RELIABLE_ZERO = frozenset("DIJK")


@dataclass(frozen=True)
class TimerValues:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def initial(self, name: str) -> float:
        if name in "AEG":
            return self.t1
        if name in "BFHJ":
            return 64 * self.t1
        if name == "D":
            return 32.0
        return self.t4                      # I, K


@dataclass
class Step:
    """What one input produced: datagrams to send and what to tell the TU."""

    send: list[bytes] = field(default_factory=list)
    deliver: Response | None = None
    timed_out: bool = False


def response_input(status: int) -> str:
    return "1xx" if status < 200 else "2xx" if status < 300 else "final"


class Transaction:
    def __init__(self, kind: Kind, request: Request, dest: Dest, now: float,
                 timers: TimerValues, reliable: bool = False) -> None:
        self.kind = kind
        self.request = request
        self.dest = dest
        self.values = timers
        self.reliable = reliable
        self.deadlines: dict[str, float] = {}
        self.intervals: dict[str, float] = {}
        self.last_response: bytes | None = None
        self.ack: bytes | None = None
        self.unreachable = False      # ended by a transport error, not a timer (8.1.3.1)
        self.state, actions = INITIAL[kind]
        self._wire = request.to_bytes()
        self._run(actions, now, None, Step())

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def initial_send(self) -> bytes:
        return self._wire

    def next_deadline(self) -> float | None:
        return min(self.deadlines.values(), default=None)

    def fire(self, event: str, now: float, response: Response | None = None,
             wire: bytes | None = None) -> Step:
        """Feed one input; ``response`` for received responses, ``wire`` for sent ones."""
        step = Step()
        if event.startswith("timer_"):
            self.deadlines.pop(event[6:], None)    # fired; "arm" sets it again if it repeats
        entry = TABLE.get((self.kind, self.state, event))
        if entry is None:
            return step
        self.state, actions = entry
        if wire is not None:
            self.last_response = wire
        self._run(actions, now, response, step)
        if self.state is State.TERMINATED:
            self.deadlines.clear()
        return step

    def due_timers(self, now: float) -> list[str]:
        return sorted((n for n, t in self.deadlines.items() if t <= now),
                      key=lambda n: self.deadlines[n])

    def _run(self, actions: tuple[str, ...], now: float, response: Response | None,
             step: Step) -> None:
        for action in actions:
            verb, _, arg = action.partition(":")
            if verb == "arm":
                if self.reliable and arg in RELIABLE_SKIP:
                    continue                        # TCP/TLS retransmit for us (17.1.1.2)
                if self.reliable and arg in RELIABLE_ZERO:
                    self.deadlines[arg] = now
                    continue
                interval = self.intervals.setdefault(arg, self.values.initial(arg))
                self.deadlines[arg] = now + interval
            elif verb == "disarm":
                self.deadlines.pop(arg, None)
            elif verb == "backoff":
                cap = float("inf") if arg == "A" else self.values.t2
                self.intervals[arg] = min(self.intervals[arg] * 2, cap)
            elif verb == "t2":
                self.intervals[arg] = self.values.t2
            elif verb == "retransmit":
                step.send.append(self._wire)
            elif verb in ("send", "resend"):
                if self.last_response is not None:
                    step.send.append(self.last_response)
            elif verb == "send_ack":
                assert response is not None or self.ack is not None
                if response is not None and self.ack is None:
                    self.ack = build_non2xx_ack(self.request, response).to_bytes()
                assert self.ack is not None
                step.send.append(self.ack)
            elif verb == "deliver":
                step.deliver = response
            elif verb == "timeout":
                step.timed_out = True
            else:                                   # pragma: no cover - table typo
                raise AssertionError(f"unknown transaction action {action!r}")


def build_non2xx_ack(invite: Request, response: Response) -> Request:
    """ACK for a 3xx-6xx answer: same branch and route as the INVITE (17.1.1.3)."""
    ack = Request("ACK", invite.uri)
    h = ack.headers
    h.add("Via", invite.headers.get_all("Via")[0])
    for route in invite.headers.get_all("Route"):
        h.add("Route", route)
    h.add("Max-Forwards", "70")
    h.add("From", invite.headers.get("From") or "")
    h.add("To", response.headers.get("To") or "")
    h.add("Call-ID", invite.call_id)
    h.add("CSeq", f"{invite.cseq[0]} ACK")
    return ack
