"""The SQLite event log: what it keeps, its bound, and lockouts across a restart."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from intercom.app.door import Lockout
from intercom.app.eventlog import EventLog
from intercom.app.events import (AudioEvent, CallEvent, CallOutcome, CallPhase, CallRecord,
                                 Direction, DoorAction, DoorEvent, DtmfEvent, RegistrationEvent)
from intercom.sip.events import RegState


def test_security_and_call_events_are_kept_digits_and_audio_are_not(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.db")
    log.add(DtmfEvent("sip:a@pbx", 1))                          # keys are not kept
    log.add(AudioEvent("PCMU", -20.0, -30.0, 50, 50))
    log.add(CallEvent(CallPhase.RINGING, "sip:a@pbx"))
    log.add(CallEvent(CallPhase.REFUSED, "sip:evil@198.51.100.7", "not an allowed caller"))
    log.add(DoorEvent(DoorAction.REJECTED, "sip:a@pbx", "wrong code (4 digits)", "192.0.2.10"))
    log.add(CallRecord(Direction.BELL, "bell", CallOutcome.ANSWERED, ("sip:a@pbx",), "sip:a@pbx", 12.5))
    for state in (RegState.REGISTERED, RegState.REGISTERED, RegState.FAILED,
                  RegState.REGISTERED):
        log.add(RegistrationEvent(state, 200, "OK", "sip:pbx"))
    kinds = [(e["event"], e.get("state") or e.get("action") or e.get("outcome"))
             for e in log.latest(50)]
    assert kinds == [("call", "refused"), ("door", "rejected"), ("call_record", "answered"),
                     ("registration", "registered"), ("registration", "failed"),
                     ("registration", "registered")]
    rejected = log.latest(1, kind="door")[0]
    assert rejected["source"] == "192.0.2.10" and "1234" not in str(rejected)
    assert log.latest(1, kind="call_record")[0]["tried"] == ["sip:a@pbx"]
    log.close()


def test_the_log_is_bounded_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    log = EventLog(path, max_events=150)
    for i in range(1000):
        log.add(DoorEvent(DoorAction.REJECTED, f"sip:guess{i}@pbx", "wrong code", "192.0.2.9"))
    assert log.count() <= 150 + 100               # pruned every 100 additions
    log.close()
    again = EventLog(path, max_events=150)
    last = again.latest(3)
    assert [e["caller"] for e in last] == ["sip:guess997@pbx", "sip:guess998@pbx",
                                            "sip:guess999@pbx"]
    again.close()
    with sqlite3.connect(path) as db:              # a plain SQLite file others can read
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] <= 250


def test_a_lockout_outlives_a_restart_on_the_wall_clock(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    first = Lockout(per_call=3, overall=10, base=60, longest=3600)
    for _ in range(3):
        first.wrong("call-1", "sip:guess@pbx", now=1000.0)
    assert first.locked("call-2", "sip:guess@pbx", 1000.0) is not None
    log = EventLog(path)
    log.save_lockouts(first.export(now=1000.0))
    log.close()
    # a new process: its monotonic clock starts elsewhere (5.0 here)
    second = Lockout(per_call=3, overall=10, base=60, longest=3600)
    reopened = EventLog(path)
    second.restore(reopened.load_lockouts(), now=5.0)
    lock = second.locked("call-3", "sip:guess@pbx", 5.0)
    assert lock is not None and lock.scope == "caller" and 55 < lock.seconds <= 60
    assert second.locked("call-3", "sip:other@pbx", 5.0) is None
    assert second.locked("call-3", "sip:guess@pbx", 66.0) is None     # over after 60 s
    # the backoff goes on: the next three wrong codes lock for twice as long
    for _ in range(3):
        second.wrong("call-3", "sip:guess@pbx", now=70.0)
    lock = second.locked("call-4", "sip:guess@pbx", 70.0)
    assert lock is not None and lock.seconds == 120
    reopened.close()


def test_an_event_word_outside_its_vocabulary_is_refused_by_name() -> None:
    """States, outcomes, actions and causes are enums: a typo fails where the event is
    made, naming the words there are, instead of reaching the log as a new word."""
    import pytest

    from intercom.app.events import EventKind
    event = CallEvent("answered", "sip:a@pbx")                  # type: ignore[arg-type]
    assert event.state is CallPhase.ANSWERED and event.kind is EventKind.CALL
    assert event.to_json()["state"] == "answered"
    with pytest.raises(ValueError, match="CallEvent.state 'anwsered' is not one of calling, "
                                         "ringing, answered"):
        CallEvent("anwsered", "sip:a@pbx")                      # type: ignore[arg-type]
    with pytest.raises(ValueError, match="DoorEvent.action 'open' is not one of opened"):
        DoorEvent("open", "sip:a@pbx")                          # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CallRecord.outcome 'no_answer'"):
        CallRecord(Direction.BELL, "bell", "no_answer", ())     # type: ignore[arg-type]
    assert DoorEvent(DoorAction.OPENED, "sip:a@pbx").text() == "door opened by sip:a@pbx"
    assert str(CallOutcome.NO_ANSWER) == "no answer"
