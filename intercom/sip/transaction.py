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
from typing import Protocol

from intercom.sip.errors import LocalError
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


class Input(Enum):
    """What happens to a transaction from outside: a peer's message, a timer, the
    transport failing. One that does not fit the state is absorbed (RFC 3261 17)."""

    R1XX = "1xx"
    R2XX = "2xx"
    FINAL = "final"                  # 300-699
    REQUEST = "request"              # the request again (a retransmission)
    ACK = "ack"
    TRANSPORT_ERROR = "transport_error"
    TIMER_A = "A"
    TIMER_B = "B"
    TIMER_D = "D"
    TIMER_E = "E"
    TIMER_F = "F"
    TIMER_G = "G"
    TIMER_H = "H"
    TIMER_I = "I"
    TIMER_J = "J"
    TIMER_K = "K"

    @classmethod
    def timer(cls, name: str) -> Input:
        return cls(name)

    @classmethod
    def response(cls, status: int) -> Input:
        return cls.R1XX if status < 200 else cls.R2XX if status < 300 else cls.FINAL


class Command(Enum):
    """What the transaction user does: send a response. One that does not fit the
    state (a second final response, say) is a bug of ours: LocalError."""

    SEND_1XX = "send_1xx"
    SEND_2XX = "send_2xx"
    SEND_FINAL = "send_final"

    @classmethod
    def response(cls, status: int) -> Command:
        return cls.SEND_1XX if status < 200 else cls.SEND_2XX if status < 300 \
            else cls.SEND_FINAL


class Verb(Enum):
    """What a step of the table does."""

    ARM = "arm"                      # start a timer
    DISARM = "disarm"
    BACKOFF = "backoff"              # double its interval (capped at T2, except A)
    T2 = "t2"                        # its interval becomes T2
    RETRANSMIT = "retransmit"        # the request again
    SEND = "send"                    # the response just given
    RESEND = "resend"                # the last response again
    SEND_ACK = "send_ack"            # ACK a non-2xx final response
    DELIVER = "deliver"              # hand the response to the transaction user
    TIMEOUT = "timeout"              # tell the transaction user it timed out


Action = tuple[Verb, str]            # the verb, and its timer's letter if it has one
RETRANSMIT, SEND, RESEND = (Verb.RETRANSMIT, ""), (Verb.SEND, ""), (Verb.RESEND, "")
SEND_ACK, DELIVER, TIMEOUT = (Verb.SEND_ACK, ""), (Verb.DELIVER, ""), (Verb.TIMEOUT, "")


def arm(timer: str) -> Action:
    return Verb.ARM, timer


def disarm(timer: str) -> Action:
    return Verb.DISARM, timer


def backoff(timer: str) -> Action:
    return Verb.BACKOFF, timer


def t2(timer: str) -> Action:
    return Verb.T2, timer


K, S, I, C = Kind, State, Input, Command
_FINAL_CLIENT: tuple[Action, ...] = (DELIVER, disarm("E"), disarm("F"), arm("K"))

# (kind, state, input) -> (next state, actions). Inputs not listed are absorbed.
TABLE: dict[tuple[Kind, State, Input | Command], tuple[State, tuple[Action, ...]]] = {
    # INVITE client, figure 5
    (K.INVITE_CLIENT, S.CALLING, I.TIMER_A): (S.CALLING, (RETRANSMIT, backoff("A"), arm("A"))),
    (K.INVITE_CLIENT, S.CALLING, I.TIMER_B): (S.TERMINATED, (TIMEOUT,)),
    (K.INVITE_CLIENT, S.CALLING, I.R1XX): (S.PROCEEDING, (DELIVER, disarm("A"), disarm("B"))),
    (K.INVITE_CLIENT, S.CALLING, I.R2XX): (S.TERMINATED, (DELIVER,)),
    (K.INVITE_CLIENT, S.CALLING, I.FINAL): (S.COMPLETED, (SEND_ACK, DELIVER, disarm("A"),
                                                          disarm("B"), arm("D"))),
    (K.INVITE_CLIENT, S.PROCEEDING, I.R1XX): (S.PROCEEDING, (DELIVER,)),
    (K.INVITE_CLIENT, S.PROCEEDING, I.R2XX): (S.TERMINATED, (DELIVER,)),
    (K.INVITE_CLIENT, S.PROCEEDING, I.FINAL): (S.COMPLETED, (SEND_ACK, DELIVER, arm("D"))),
    (K.INVITE_CLIENT, S.COMPLETED, I.FINAL): (S.COMPLETED, (SEND_ACK,)),
    (K.INVITE_CLIENT, S.COMPLETED, I.TIMER_D): (S.TERMINATED, ()),
    (K.INVITE_CLIENT, S.CALLING, I.TRANSPORT_ERROR): (S.TERMINATED, (TIMEOUT,)),
    (K.INVITE_CLIENT, S.PROCEEDING, I.TRANSPORT_ERROR): (S.TERMINATED, (TIMEOUT,)),
    # non-INVITE client, figure 6
    (K.NON_INVITE_CLIENT, S.TRYING, I.TIMER_E): (S.TRYING, (RETRANSMIT, backoff("E"), arm("E"))),
    (K.NON_INVITE_CLIENT, S.TRYING, I.TIMER_F): (S.TERMINATED, (TIMEOUT,)),
    (K.NON_INVITE_CLIENT, S.TRYING, I.R1XX): (S.PROCEEDING, (DELIVER,)),
    (K.NON_INVITE_CLIENT, S.TRYING, I.R2XX): (S.COMPLETED, _FINAL_CLIENT),
    (K.NON_INVITE_CLIENT, S.TRYING, I.FINAL): (S.COMPLETED, _FINAL_CLIENT),
    (K.NON_INVITE_CLIENT, S.PROCEEDING, I.TIMER_E): (S.PROCEEDING, (RETRANSMIT, t2("E"), arm("E"))),
    (K.NON_INVITE_CLIENT, S.PROCEEDING, I.TIMER_F): (S.TERMINATED, (TIMEOUT,)),
    (K.NON_INVITE_CLIENT, S.PROCEEDING, I.R1XX): (S.PROCEEDING, (DELIVER,)),
    (K.NON_INVITE_CLIENT, S.PROCEEDING, I.R2XX): (S.COMPLETED, _FINAL_CLIENT),
    (K.NON_INVITE_CLIENT, S.PROCEEDING, I.FINAL): (S.COMPLETED, _FINAL_CLIENT),
    (K.NON_INVITE_CLIENT, S.COMPLETED, I.TIMER_K): (S.TERMINATED, ()),
    (K.NON_INVITE_CLIENT, S.TRYING, I.TRANSPORT_ERROR): (S.TERMINATED, (TIMEOUT,)),
    (K.NON_INVITE_CLIENT, S.PROCEEDING, I.TRANSPORT_ERROR): (S.TERMINATED, (TIMEOUT,)),
    # INVITE server, figure 7 (a 2xx ends it; the dialog layer retransmits 2xx)
    (K.INVITE_SERVER, S.PROCEEDING, I.REQUEST): (S.PROCEEDING, (RESEND,)),
    (K.INVITE_SERVER, S.PROCEEDING, C.SEND_1XX): (S.PROCEEDING, (SEND,)),
    (K.INVITE_SERVER, S.PROCEEDING, C.SEND_2XX): (S.TERMINATED, (SEND,)),
    (K.INVITE_SERVER, S.PROCEEDING, C.SEND_FINAL): (S.COMPLETED, (SEND, arm("G"), arm("H"))),
    (K.INVITE_SERVER, S.COMPLETED, I.REQUEST): (S.COMPLETED, (RESEND,)),
    (K.INVITE_SERVER, S.COMPLETED, I.TIMER_G): (S.COMPLETED, (RESEND, backoff("G"), arm("G"))),
    (K.INVITE_SERVER, S.COMPLETED, I.TIMER_H): (S.TERMINATED, (TIMEOUT,)),
    (K.INVITE_SERVER, S.COMPLETED, I.ACK): (S.CONFIRMED, (disarm("G"), disarm("H"), arm("I"))),
    (K.INVITE_SERVER, S.CONFIRMED, I.TIMER_I): (S.TERMINATED, ()),
    # non-INVITE server, figure 8
    (K.NON_INVITE_SERVER, S.TRYING, C.SEND_1XX): (S.PROCEEDING, (SEND,)),
    (K.NON_INVITE_SERVER, S.TRYING, C.SEND_2XX): (S.COMPLETED, (SEND, arm("J"))),
    (K.NON_INVITE_SERVER, S.TRYING, C.SEND_FINAL): (S.COMPLETED, (SEND, arm("J"))),
    (K.NON_INVITE_SERVER, S.PROCEEDING, I.REQUEST): (S.PROCEEDING, (RESEND,)),
    (K.NON_INVITE_SERVER, S.PROCEEDING, C.SEND_1XX): (S.PROCEEDING, (SEND,)),
    (K.NON_INVITE_SERVER, S.PROCEEDING, C.SEND_2XX): (S.COMPLETED, (SEND, arm("J"))),
    (K.NON_INVITE_SERVER, S.PROCEEDING, C.SEND_FINAL): (S.COMPLETED, (SEND, arm("J"))),
    (K.NON_INVITE_SERVER, S.COMPLETED, I.REQUEST): (S.COMPLETED, (RESEND,)),
    (K.NON_INVITE_SERVER, S.COMPLETED, I.TIMER_J): (S.TERMINATED, ()),
}

INITIAL = {K.INVITE_CLIENT: (S.CALLING, (arm("A"), arm("B"))),
           K.NON_INVITE_CLIENT: (S.TRYING, (arm("E"), arm("F"))),
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


class TransactionUser(Protocol):
    """Who a client transaction reports to: its responses and its timeout."""

    def on_response(self, tx: Transaction, resp: Response, now: float) -> None: ...

    def on_timeout(self, tx: Transaction, now: float) -> None: ...


@dataclass
class Step:
    """What one input produced: datagrams to send and what to tell the TU."""

    send: list[bytes] = field(default_factory=list)
    deliver: Response | None = None
    timed_out: bool = False


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

    def fire(self, event: Input, now: float, response: Response | None = None) -> Step:
        """Feed one input (``response`` for a received response); absorbed if it does
        not fit the state."""
        if event.name.startswith("TIMER_"):
            self.deadlines.pop(event.value, None)   # fired; "arm" sets it again if it repeats
        entry = TABLE.get((self.kind, self.state, event))
        return Step() if entry is None else self._step(entry, now, response)

    def send(self, command: Command, wire: bytes, now: float) -> Step:
        """Send a response (``wire``). Raises LocalError if the state does not allow it."""
        entry = TABLE.get((self.kind, self.state, command))
        if entry is None:
            kind = self.kind.name.lower().replace("_", " ")
            raise LocalError(f"cannot {command.value}: the {kind} transaction is "
                             f"{self.state.value}")
        self.last_response = wire
        return self._step(entry, now, None)

    def _step(self, entry: tuple[State, tuple[Action, ...]], now: float,
              response: Response | None) -> Step:
        step = Step()
        self.state, actions = entry
        self._run(actions, now, response, step)
        if self.state is State.TERMINATED:
            self.deadlines.clear()
        return step

    def due_timers(self, now: float) -> list[Input]:
        due = sorted((n for n, t in self.deadlines.items() if t <= now),
                     key=lambda n: self.deadlines[n])
        return [Input.timer(n) for n in due]

    def _run(self, actions: tuple[Action, ...], now: float, response: Response | None,
             step: Step) -> None:
        for verb, arg in actions:
            match verb:
                case Verb.ARM:
                    if self.reliable and arg in RELIABLE_SKIP:
                        continue                    # TCP/TLS retransmit for us (17.1.1.2)
                    if self.reliable and arg in RELIABLE_ZERO:
                        self.deadlines[arg] = now
                        continue
                    interval = self.intervals.setdefault(arg, self.values.initial(arg))
                    self.deadlines[arg] = now + interval
                case Verb.DISARM:
                    self.deadlines.pop(arg, None)
                case Verb.BACKOFF:
                    cap = float("inf") if arg == "A" else self.values.t2
                    self.intervals[arg] = min(self.intervals[arg] * 2, cap)
                case Verb.T2:
                    self.intervals[arg] = self.values.t2
                case Verb.RETRANSMIT:
                    step.send.append(self._wire)
                case Verb.SEND | Verb.RESEND:
                    if self.last_response is not None:
                        step.send.append(self.last_response)
                case Verb.SEND_ACK:
                    if response is not None and self.ack is None:
                        self.ack = build_non2xx_ack(self.request, response).to_bytes()
                    assert self.ack is not None
                    step.send.append(self.ack)
                case Verb.DELIVER:
                    step.deliver = response
                case Verb.TIMEOUT:
                    step.timed_out = True


def like_invite(method: str, invite: Request, to: str) -> Request:
    """A CANCEL or a non-2xx ACK: the INVITE's Request-URI, top Via (so its branch),
    Route, From, Call-ID and CSeq number, with ``to`` as To (RFC 3261 9.1, 17.1.1.3)."""
    req = Request(method, invite.uri)
    h = req.headers
    h.add("Via", invite.headers.get_all("Via")[0])
    for route in invite.headers.get_all("Route"):
        h.add("Route", route)
    h.add("Max-Forwards", "70")
    h.add("From", invite.headers.get("From") or "")
    h.add("To", to)
    h.add("Call-ID", invite.call_id)
    h.add("CSeq", f"{invite.cseq[0]} {method}")
    return req


def build_non2xx_ack(invite: Request, response: Response) -> Request:
    """ACK for a 3xx-6xx answer: same branch and route as the INVITE (17.1.1.3)."""
    return like_invite("ACK", invite, response.headers.get("To") or "")
