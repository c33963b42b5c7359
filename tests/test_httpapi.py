"""The HTTP API on HTTPS, on a running station (`intercom run`, simulated board).

Requests go over real TLS to the certificate the station made at its first
start; accounts are made with `intercom account add`. Each right gets what
it may and is refused the rest, and a refusal changes nothing; requests
that would change something must be JSON from this server's own pages;
failed logins are logged in one fixed form and lock the address out;
neither a password nor a door code reaches the log.
"""
from __future__ import annotations

import base64
import http.client
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from peers import Station, intercom, wait_for

NOWHERE = ["sip:resident@127.0.0.1:9"]
PASSWORDS = {"viewer": "look-only-1", "opener": "let-them-in-2", "boss": "change-all-3"}


def add_account(config: Path, name: str, rights: str,
                password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intercom.cli", "account", "add", name,
                           "--rights", rights, "--password-stdin", "--config", str(config)],
                          input=password + "\n", capture_output=True, text=True, timeout=60)


class Api:
    def __init__(self, station: Station, port: int) -> None:
        self.port = port
        cert = station.work / "https.pem"
        wait_for(cert.exists, 10, "the station's certificate")
        self.context = ssl.create_default_context(cafile=str(cert))

    def request(self, method: str, path: str, who: str | None = None, body: Any = None,
                headers: dict[str, str] | None = None, password: str | None = None,
                raw: bytes | None = None) -> tuple[int, Any]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context,
                                           timeout=10)
        sent = dict(headers or {})
        if who is not None:
            secret = password if password is not None else PASSWORDS[who]
            sent["Authorization"] = "Basic " + base64.b64encode(
                f"{who}:{secret}".encode()).decode()
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        text = response.read()
        conn.close()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Station, Api]]:
    port = free_port()
    station = Station(tmp_path, "", NOWHERE, pulse=0.5, log_level="info",
                      extra=f'[http]\nlisten = "127.0.0.1:{port}"\nlockout_after = 3\n'
                            "lockout_seconds = 2\n")
    try:
        for name, rights in (("viewer", "view"), ("opener", "open"), ("boss", "admin")):
            made = add_account(station.config, name, rights, PASSWORDS[name])
            assert made.returncode == 0, made.stderr
        yield station, Api(station, port)
    finally:
        station.stop()


def test_each_right_gets_what_it_may_and_a_refusal_changes_nothing(
        served: tuple[Station, Api]) -> None:
    station, api = served
    status, body = api.request("GET", "/api/state")
    assert status == 401
    status, state = api.request("GET", "/api/state", "viewer")
    assert status == 200 and state["station"] == "Front door"
    assert api.request("POST", "/api/door", "viewer", {"action": "open"})[0] == 403
    assert api.request("GET", "/api/config", "opener")[0] == 403
    assert not any(e.get("event") == "door" for e in station.events())

    assert api.request("POST", "/api/door", "opener", {"action": "open"}) == (200, {"ok": True})
    opened = station.wait_event(5, event="door", action="opened")
    assert opened["caller"] == "HTTP opener"
    station.wait_event(5, event="relay", energised=False)
    status, body = api.request("POST", "/api/door", "opener", {"action": "kick"})
    assert status == 400 and body["error"].startswith("action:")

    status, body = api.request("POST", "/api/call/dial", "opener", {"button": "front"})
    assert status == 400 and "bell" in body["error"]
    assert api.request("POST", "/api/call/dial", "opener", {"button": "bell"})[0] == 200
    station.wait_event(5, event="call", state="calling")
    station.wait_event(10, event="call_record")                   # nobody at port 9
    assert api.request("POST", "/api/call/hangup", "opener", {})[0] == 409

    status, events = api.request("GET", "/api/events?kind=door&count=5", "viewer")
    assert status == 200 and [e["action"] for e in events] == ["opened"]
    at = events[0]["time"]
    assert api.request("GET", f"/api/events?kind=door&since={at + 1}", "viewer") == (200, [])
    status, events = api.request("GET", f"/api/events?since={at - 1}&until={at + 0.0005}",
                                 "viewer")
    assert status == 200 and "door" in [e["event"] for e in events]
    assert all(at - 1 <= e["time"] < at + 0.0005 for e in events)
    assert api.request("GET", "/api/events?count=0", "viewer")[0] == 400
    assert api.request("GET", "/api/events?since=yesterday", "viewer")[0] == 400
    log = station.log_text()
    assert all(p not in log for p in PASSWORDS.values()) and "Traceback" not in log


def test_changes_must_be_json_from_the_stations_own_pages(served: tuple[Station, Api]) -> None:
    station, api = served
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert api.request("POST", "/api/door", "opener", raw=b"action=open", headers=form)[0] == 415
    evil = {"Origin": "https://evil.example"}
    assert api.request("POST", "/api/door", "opener", {"action": "open"}, headers=evil)[0] == 403
    status, body = api.request("POST", "/api/door", "opener", raw=b"{not json",
                               headers={"Content-Type": "application/json"})
    assert status == 400 and "not JSON" in body["error"]
    assert api.request("POST", "/api/door", "opener", ["open"])[0] == 400
    time.sleep(0.3)
    assert not any(e.get("event") in ("door", "relay") for e in station.events())
    own = {"Origin": f"https://127.0.0.1:{api.port}"}
    assert api.request("POST", "/api/door", "opener", {"action": "open"}, headers=own)[0] == 200


def test_the_config_is_checked_before_it_is_written(served: tuple[Station, Api]) -> None:
    station, api = served
    status, got = api.request("GET", "/api/config", "boss")
    original = station.config.read_text()
    assert status == 200 and got["toml"] == original
    broken = original.replace(f"port = {station.port}", "port = 70000")
    status, body = api.request("POST", "/api/config/validate", "boss", {"toml": broken})
    assert status == 400 and body["key"] == "sip.port" and "1..65535" in body["error"]
    assert broken.splitlines()[body["line"] - 1] == "port = 70000"
    assert api.request("PUT", "/api/config", "boss", {"toml": broken})[0] == 400
    assert api.request("PUT", "/api/config", "boss", {"toml": "[sip\n"})[0] == 400
    assert station.config.read_text() == original
    better = original.replace("pulse_seconds = 0.5", "pulse_seconds = 2.0")
    assert api.request("POST", "/api/config/validate", "boss", {"toml": better})[0] == 200
    status, body = api.request("PUT", "/api/config", "boss", {"toml": better})
    assert status == 200 and body["applies"] == "at the next start"
    assert station.config.read_text() == better


def test_events_stream_live(served: tuple[Station, Api]) -> None:
    station, api = served
    conn = http.client.HTTPSConnection("127.0.0.1", api.port, context=api.context, timeout=10)
    token = base64.b64encode(f"viewer:{PASSWORDS['viewer']}".encode()).decode()
    conn.request("GET", "/api/events/stream?kind=button",
                 headers={"Authorization": f"Basic {token}"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    station.press()
    line = response.readline()
    assert line.startswith(b"data: ")
    event = json.loads(line[6:])
    assert event["event"] == "button" and event["button"] == "bell"
    conn.close()


def test_failed_logins_are_logged_and_lock_the_address_out(served: tuple[Station, Api]) -> None:
    station, api = served
    for _ in range(3):
        assert api.request("GET", "/api/state", "viewer", password="guess-123")[0] == 401
    status, body = api.request("GET", "/api/state", "viewer")     # even the right password
    assert status == 429 and body["retry_in"] >= 1
    log = station.log_text()
    assert log.count("http login failed for 'viewer' from 127.0.0.1") == 3, log
    assert "127.0.0.1 locked out for 2 s after 3 failed logins" in log
    assert "guess-123" not in log
    time.sleep(2.2)
    assert api.request("GET", "/api/state", "viewer")[0] == 200


def test_the_certificate_is_made_once_and_its_fingerprint_logged(
        served: tuple[Station, Api]) -> None:
    station, api = served
    key = station.work / "https.key"
    assert key.stat().st_mode & 0o077 == 0
    from intercom.app.httpapi import fingerprint
    assert f"certificate SHA-256 {fingerprint(station.work / 'https.pem')}" in station.log_text()


def test_accounts_are_made_on_the_command_line_and_named_with_what_is_allowed(
        tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[call]\ntargets = ["sip:a@127.0.0.1"]\n[log]\ndatabase = '
                      f'"{tmp_path / "events.db"}"\n')
    assert add_account(config, "door keeper", "view", "long-enough").stderr.strip() == \
        "intercom account: account name 'door keeper': use 1-32 of A-Z a-z 0-9 . _ -"
    assert "at least 8 characters" in add_account(config, "anna", "view", "short").stderr
    assert add_account(config, "anna", "open", "long-enough").returncode == 0
    listed = intercom("account", "list", "--config", str(config))
    assert listed.stdout.split() == ["anna", "open"]
    stored = (tmp_path / "accounts.json").read_text()
    assert "long-enough" not in stored and "scrypt$" in stored
    assert (tmp_path / "accounts.json").stat().st_mode & 0o077 == 0
    assert intercom("account", "remove", "bob", "--config", str(config)).returncode == 1
    assert intercom("account", "remove", "anna", "--config", str(config)).returncode == 0
    assert intercom("account", "list", "--config", str(config)).stdout == ""


def test_the_page_is_served_with_a_strict_policy_and_asks_for_logins_itself(
        served: tuple[Station, Api]) -> None:
    _, api = served

    def get(path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        conn = http.client.HTTPSConnection("127.0.0.1", api.port, context=api.context,
                                           timeout=10)
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response
    page = get("/", {})
    assert page.status == 200 and page.getheader("Content-Type", "").startswith("text/html")
    assert page.getheader("Content-Security-Policy") == \
        "default-src 'self'; img-src 'self' blob:; media-src 'self' blob:; frame-ancestors 'none'"
    assert get("/app.js", {}).getheader("Content-Type", "").startswith("text/javascript")
    assert get("/api/state", {}).getheader("WWW-Authenticate") == 'Basic realm="intercom"'
    from_page = get("/api/state", {"X-Intercom-Page": "1"})
    assert from_page.status == 401 and from_page.getheader("WWW-Authenticate") is None
    assert get("/../accounts.json", {}).status == 404


def test_the_doctor_checks_a_running_station_without_taking_its_card_or_board(
        served: tuple[Station, Api]) -> None:
    station, api = served
    assert api.request("POST", "/api/doctor", "opener", {})[0] == 403
    status, report = api.request("POST", "/api/doctor", "boss", {})
    assert status == 200 and report["ok"] is True, report
    lines = report["lines"]
    assert lines[0].startswith("ok    config:")
    assert "ok    audio: simulated card in use by the station" in lines
    assert any(line.startswith("ok    board: simulated board") for line in lines)
    assert any("in use by the running station" in line for line in lines)
    assert lines[-1] == "all checks passed"
    assert station.state()["call"]["state"] == "idle"


def test_the_first_account_can_come_from_a_file_taken_in_once(tmp_path: Path) -> None:
    seed = tmp_path / "intercom-account.txt"
    seed.write_text("# made on the PC before the first boot\nanna admin first-pass-1\n")

    def station() -> tuple[Station, Api]:
        port = free_port()
        st = Station(tmp_path, "", NOWHERE, log_level="info",
                     extra=f'[http]\nlisten = "127.0.0.1:{port}"\naccount_file = "{seed}"\n')
        return st, Api(st, port)
    first, api = station()
    try:
        assert api.request("GET", "/api/me", "anna", password="first-pass-1") == \
            (200, {"name": "anna", "rights": "admin"})
        assert f"accounts anna (admin) taken from {seed}" in first.log_text()
        assert "first-pass-1" not in first.log_text()
        changed = add_account(first.config, "anna", "admin", "second-pass-2")
        assert changed.returncode == 0, changed.stderr
    finally:
        first.stop()
    again, api = station()                     # the next boot: the file is still there
    try:
        assert api.request("GET", "/api/me", "anna", password="second-pass-2")[0] == 200
        assert api.request("GET", "/api/me", "anna", password="first-pass-1")[0] == 401
    finally:
        again.stop()
    seed.write_text("anna admin\n")             # a broken file: said, and nothing changes
    broken, api = station()
    try:
        assert f"{seed}, line 1: write NAME RIGHTS PASSWORD" in broken.log_text()
        assert api.request("GET", "/api/me", "anna", password="second-pass-2")[0] == 200
    finally:
        broken.stop()
