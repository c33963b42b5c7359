"""The station's lasting record: security and call events, and the lockouts, in SQLite.

What is kept: each call's record (targets tried, who answered, how long, the
quality summary), each door opening and how, each rejected code with the
address it came from, lockouts, refused callers, alarms, the door contact,
and changes of registration. Not kept: DTMF digits (they would record the
codes), audio levels, and the calling/ringing steps the call record sums up.
The table is bounded: past ``max_events`` the oldest rows go.

Lockouts are kept here too, so a restart (or a power cut) does not give a
guesser a fresh start. They are stored in wall-clock time and handed to the
Lockout on its own clock.

SQLite in WAL mode with ``synchronous=NORMAL``: a power cut may lose the last
event or two, never the database.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from intercom.app.events import CallPhase, Event, EventKind

log = logging.getLogger("intercom.eventlog")
KEPT_KINDS = frozenset({EventKind.CALL_RECORD, EventKind.DOOR, EventKind.ALARM,
                        EventKind.DOOR_CONTACT, EventKind.REGISTRATION, EventKind.CALL,
                        EventKind.SNAPSHOT, EventKind.RECORDING})
KEPT_CALL_STATES = frozenset({CallPhase.REFUSED})
PRUNE_EVERY = 100


def default_path() -> Path:
    """systemd's StateDirectory when run as a service, else the usual place."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0]) / "events.db"
    if os.geteuid() == 0:
        return Path("/var/lib/intercom/events.db")
    return Path.home() / ".local" / "state" / "intercom" / "events.db"


def state_directory(database: str) -> Path:
    """Where the station keeps its files: beside the event log."""
    return Path(database).parent if database else default_path().parent


class EventLog:
    def __init__(self, path: str | Path, max_events: int = 10000) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, "
                        "time REAL NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS lockouts (scope TEXT PRIMARY KEY, "
                        "wrong INTEGER NOT NULL, locks INTEGER NOT NULL, until REAL NOT NULL)")
        self._added = 0
        self._registration: str | None = None

    def keeps(self, event: Event) -> bool:
        data = event.to_json()
        if event.kind not in KEPT_KINDS:
            return False
        if event.kind is EventKind.CALL:
            return data["state"] in KEPT_CALL_STATES
        if event.kind is EventKind.REGISTRATION:
            if data["state"] == self._registration:
                return False                     # a refresh, not a change
            self._registration = data["state"]
        return True

    def add(self, event: Event) -> None:
        if not self.keeps(event):
            return
        data = event.to_json()
        try:
            self.db.execute("INSERT INTO events (time, kind, data) VALUES (?, ?, ?)",
                            (data.pop("time"), data.pop("event"), json.dumps(data)))
            self._added += 1
            if self._added % PRUNE_EVERY == 0:
                self.prune()
        except sqlite3.Error as exc:
            log.error("event log %s: %s", self.path, exc)

    def prune(self) -> None:
        self.db.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?",
                        (self.max_events,))

    def latest(self, count: int = 20, kind: str | None = None, since: float | None = None,
               until: float | None = None) -> list[dict[str, Any]]:
        """The newest ``count`` events (of ``kind``, from ``since`` to before ``until``,
        in Unix time), oldest first."""
        return _latest(self.db, count, kind, since, until)

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # ----- lockouts ---------------------------------------------------------------
    def save_lockouts(self, state: dict[str, tuple[int, int, float]]) -> None:
        """``state``: scope -> (wrong codes, locks so far, seconds left of the lock)."""
        now = time.time()
        try:
            with self.db:
                self.db.execute("BEGIN")
                self.db.execute("DELETE FROM lockouts")
                self.db.executemany("INSERT INTO lockouts VALUES (?, ?, ?, ?)",
                                    [(scope, wrong, locks, now + left)
                                     for scope, (wrong, locks, left) in state.items()])
        except sqlite3.Error as exc:
            log.error("event log %s: cannot keep the lockouts: %s", self.path, exc)

    def load_lockouts(self) -> dict[str, tuple[int, int, float]]:
        now = time.time()
        rows = self.db.execute("SELECT scope, wrong, locks, until FROM lockouts").fetchall()
        return {scope: (wrong, locks, until - now) for scope, wrong, locks, until in rows}

    def close(self) -> None:
        self.db.close()


def _latest(db: sqlite3.Connection, count: int, kind: str | None,
            since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
    query = "SELECT time, kind, data FROM events"
    where: list[str] = []
    args: tuple[Any, ...] = ()
    for clause, value in (("kind = ?", kind or None), ("time >= ?", since),
                          ("time < ?", until)):
        if value is not None:
            where.append(clause)
            args += (value,)
    if where:
        query += " WHERE " + " AND ".join(where)
    rows = db.execute(query + " ORDER BY id DESC LIMIT ?", args + (count,)).fetchall()
    return [{"event": k, "time": t, **json.loads(d)} for t, k, d in reversed(rows)]


def read_latest(path: Path, count: int = 20, kind: str | None = None) -> list[dict[str, Any]]:
    """``latest`` from the file of a station that is not running: opened read-only,
    so reading never creates or changes it."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _latest(db, count, kind)
    finally:
        db.close()
