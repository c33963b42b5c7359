"""Action hooks ([notify]): events POSTed as JSON to the configured URLs.

The receiving end is a real HTTP server on loopback (the standard library's,
and with TLS a certificate made by openssl for the test). A whole visit
with baresip shows the hooks from a running station: the bell, the door
and the call record arrive while the call goes on, no code is in them, and
a hook that is down costs the visit nothing.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, free_port_pair_gap

from intercom import config
from intercom.app.events import ButtonPressed, DoorAction, DoorEvent, RegistrationEvent
from intercom.app.hooks import QUEUE, Hooks, Target
from intercom.sip.events import RegState


class Receiver:
    """An HTTP server that records each request and answers with the next of
    ``statuses`` (the last one from then on); ``hang`` holds each request that long
    before answering."""

    def __init__(self, statuses: tuple[int, ...] = (200,), hang: float = 0.0,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses = list(statuses)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "body": body, "at": time.monotonic()})
                if hang:
                    time.sleep(hang)
                status = outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bell(name: str = "bell") -> ButtonPressed:
    return ButtonPressed(name)


async def run_hooks(hooks: Hooks, *events: Any, settle: float = 10.0) -> None:
    hooks.start()
    for event in events:
        hooks.offer(event)
    await asyncio.wait_for(hooks.idle(), settle)
    await hooks.stop()


def test_chosen_events_reach_every_url_as_json_with_the_urls_credentials() -> None:
    first, second = Receiver(), Receiver()
    try:
        hooks = Hooks([first.url("/a?token=1"),
                       f"http://door:s3cret@127.0.0.1:{second.port}/b"],
                      ["button", "door"], "front door")
        registered = RegistrationEvent(RegState.REGISTERED, 200, "OK", "sip:pbx")
        asyncio.run(run_hooks(hooks, bell(), registered, DoorEvent(DoorAction.OPENED, "sip:resident@home", "code")))
    finally:
        first.close()
        second.close()
    for receiver in (first, second):
        bodies = receiver.bodies()
        assert [b["event"]["event"] for b in bodies] == ["button", "door"]
        assert all(b["station"] == "front door" for b in bodies)
        assert bodies[0]["event"]["button"] == "bell"
        headers = receiver.requests[0]["headers"]
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"].startswith("intercom/")
    assert first.requests[0]["path"] == "/a?token=1"
    assert "Authorization" not in first.requests[0]["headers"]
    assert second.requests[0]["headers"]["Authorization"] == "Basic ZG9vcjpzM2NyZXQ="
    assert hooks.delivered == 4 and hooks.failed == 0


def test_a_failing_hook_is_tried_again_after_growing_pauses() -> None:
    server = Receiver(statuses=(500, 503, 200))
    try:
        hooks = Hooks([server.url()], ["button"], "s", retries=3, backoff=0.2)
        asyncio.run(run_hooks(hooks, bell()))
    finally:
        server.close()
    times = [r["at"] for r in server.requests]
    assert len(times) == 3 and hooks.delivered == 1 and hooks.failed == 0
    assert 0.18 < times[1] - times[0] < 0.5 and 0.38 < times[2] - times[1] < 0.8


def test_a_refusal_is_not_tried_again_and_the_log_keeps_the_urls_secret(
        caplog: pytest.LogCaptureFixture) -> None:
    server = Receiver(statuses=(403,))
    try:
        hooks = Hooks([f"http://u:pw@127.0.0.1:{server.port}/hook/TOKEN?k=KEY"], ["button"],
                      "s", retries=3, backoff=0.05)
        with caplog.at_level(logging.WARNING, logger="intercom.hooks"):
            asyncio.run(run_hooks(hooks, bell()))
    finally:
        server.close()
    assert len(server.requests) == 1 and hooks.failed == 1
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"hook http://127.0.0.1:{server.port}: button event not delivered "
                     "after 1 attempt: HTTP 403"]


def test_a_hook_that_hangs_or_is_down_gives_up_and_never_holds_the_caller(
        caplog: pytest.LogCaptureFixture) -> None:
    hanging = Receiver(hang=5.0)
    down = closed_port()

    async def scenario() -> float:
        hooks = Hooks([hanging.url(), f"http://127.0.0.1:{down}/x"], ["button"], "s",
                      timeout=0.3, retries=1, backoff=0.05)
        hooks.start()
        started = time.perf_counter()
        for _ in range(50):
            hooks.offer(bell())
        offered = time.perf_counter() - started
        await asyncio.sleep(1.2)                     # both attempts on the first event
        assert hooks.failed >= 2
        await hooks.stop(grace=0.1)
        return offered

    try:
        with caplog.at_level(logging.WARNING, logger="intercom.hooks"):
            offered = asyncio.run(scenario())
    finally:
        hanging.close()
    assert offered < 0.05                             # 50 events queued, nothing waited
    lines = [r.getMessage() for r in caplog.records]
    assert any("no answer within 0.3 s" in line and "after 2 attempts" in line
               for line in lines), lines
    assert any(f"127.0.0.1:{down}: button event not delivered after 2 attempts" in line
               for line in lines), lines


def test_a_url_that_stays_down_keeps_only_its_newest_events(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> Hooks:
        hooks = Hooks([f"http://127.0.0.1:{closed_port()}/x"], ["button"], "s",
                      retries=10, backoff=30.0)
        hooks.start()
        for i in range(QUEUE + 6):
            hooks.offer(bell(f"b{i}"))
        await hooks.stop(grace=0.1)
        return hooks
    with caplog.at_level(logging.WARNING, logger="intercom.hooks"):
        hooks = asyncio.run(scenario())
    # offered before the worker took any: the queue keeps the newest QUEUE
    assert hooks.dropped == 6
    assert sum("the oldest is dropped" in r.getMessage() for r in caplog.records) == 6


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "hook.pem", tmp_path / "hook.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    return cert, key


def test_an_https_hook_is_checked_against_the_configured_ca(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = Receiver(tls=(cert, key))
    try:
        trusting = Hooks([server.url(scheme="https")], ["button"], "s", ca_file=str(cert))
        asyncio.run(run_hooks(trusting, bell()))
        strangers = Hooks([server.url(scheme="https")], ["button"], "s", retries=0)
        asyncio.run(run_hooks(strangers, bell()))
    finally:
        server.close()
    assert trusting.delivered == 1 and len(server.requests) == 1
    assert strangers.delivered == 0 and strangers.failed == 1   # not the system's CA


@pytest.mark.parametrize("notify, needle", [
    ({"urls": ["ftp://x/y"]}, "notify.urls[0]: 'ftp://x/...' is not an http:// or https:// URL"),
    ({"urls": ["http://u:pw@/TOKEN"]}, "notify.urls[0]: 'http:///...' names no host"),
    ({"urls": ["http://a/?k=TOKEN", "http://a/?k=TOKEN"]},
     "notify.urls[1]: listed twice (as notify.urls[0])"),
    ({"events": ["bell"]}, "notify.events[0]: 'bell' is not an event kind; allowed: button,"),
    ({"timeout_s": 0}, "notify.timeout_s: 0 is outside the allowed range 1..60"),
    ({"url": "http://a/"}, "notify.url: unknown key; allowed in [notify]: urls, events"),
])
def test_bad_hook_settings_are_named_with_what_is_allowed(notify: dict[str, Any],
                                                           needle: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        config.validate({"call": {"targets": ["sip:a@127.0.0.1"]}, "notify": notify})
    assert needle in str(info.value)
    assert "TOKEN" not in str(info.value) and "pw" not in str(info.value)


def test_the_target_of_a_url() -> None:
    t = Target.parse("https://[::1]/h?x=1")
    assert (t.secure, t.host, t.port, t.path, t.shown) == (True, "::1", 443, "/h?x=1",
                                                           "https://[::1]:443")


@pytest.mark.peers
def test_a_visit_reaches_the_hooks_without_its_codes_and_a_dead_hook_costs_nothing(
        tmp_path: Path) -> None:
    from peers import Baresip, Station
    from test_visits import CODE, PHONE_TONE, PULSE, WRONG, talk_and_key, visitor
    live = Receiver()
    dead = closed_port()
    baresip = Baresip(tmp_path, free_port_pair_gap(2), free_port(),
                      "<sip:resident@127.0.0.1>;regint=0;answermode=auto", PHONE_TONE,
                      codec="PCMU")
    station = None
    try:
        station = Station(
            tmp_path, "", [f"sip:resident@127.0.0.1:{baresip.sip_port}"], pulse=PULSE,
            log_level="info", audio=visitor(tmp_path),
            extra=f'[media]\nsrtp = "off"\n[notify]\nurls = ["{live.url("/door?key=K")}", '
                  f'"http://127.0.0.1:{dead}/down?key=K"]\n'
                  'events = ["button", "call", "door", "call_record"]\ntimeout_s = 1\n'
                  'retries = 1\n')
        pressed = time.monotonic()
        station.press()
        station.wait_event(15, event="call", state="answered")
        talk_and_key(station, lambda code: baresip.command("sndcode", code))
        # the door's events came while the call went on
        opened = [r for r in live.requests if json.loads(r["body"])["event"].get("action")
                  == "opened"]
        assert len(opened) == 1
        baresip.command("hangup")
        station.wait_event(10, event="call_record")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                b["event"]["event"] == "call_record" for b in live.bodies()):
            time.sleep(0.05)
    finally:
        if station is not None:
            station.stop()
        baresip.stop()
        live.close()
    kinds = [b["event"]["event"] for b in live.bodies()]
    assert kinds[0] == "button" and live.requests[0]["at"] - pressed < 1.0
    assert kinds.count("door") == 2 and kinds[-1] == "call_record"
    assert {"calling", "answered", "ended"} <= {b["event"].get("state") for b in live.bodies()}
    # no code in any text the hooks were sent (the times are numbers, and may hold
    # any digits)
    texts = [str(v) for b in live.bodies() for v in b["event"].values() if isinstance(v, str)]
    for code in (WRONG, CODE):
        assert not any(code.rstrip("#") in text for text in texts), texts
    log = station.log_text()
    assert f"hook http://127.0.0.1:{dead}: button event not delivered after 2 attempts" in log
    assert "key=K" not in log and "Traceback" not in log


def test_an_answer_that_is_not_http_is_a_failed_attempt() -> None:
    """A server that answers garbage, or a status line without end, fails the
    attempt (and is tried again), it does not break the worker."""
    answers = [b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 " + b"2" * 70000, b"HTTP/1.1 204 No\r\n"]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(10)

    served: list[bytes] = []

    def serve() -> None:
        for answer in answers:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(answer)
                served.append(answer[:8])
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    hooks = Hooks([f"http://127.0.0.1:{listener.getsockname()[1]}/"], ["button"], "s",
                  retries=2, backoff=0.05)
    try:
        asyncio.run(run_hooks(hooks, bell()))
    finally:
        thread.join(10)
        listener.close()
    assert len(served) == 3 and hooks.delivered == 1 and hooks.failed == 0


class MailServer:
    """aiosmtpd's SMTP server on loopback, keeping what it is sent; with ``tls`` it
    offers STARTTLS, and with ``login`` it asks for that account."""

    def __init__(self, tls: tuple[Path, Path] | None = None,
                 login: tuple[str, str] | None = None) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword
        self.messages: list[Any] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any,  # noqa: N802
                                  envelope: Any) -> str:
                from email import message_from_bytes
                outer.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                       message_from_bytes(envelope.content)))
                return "250 OK"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                         data: Any) -> Any:
            ok = isinstance(data, LoginPassword) and login is not None and \
                (data.login.decode(), data.password.decode()) == login
            return AuthResult(success=ok, handled=False)   # it answers 535 itself
        context = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     tls_context=context, require_starttls=tls is not None,
                                     authenticator=authenticate if login else None,
                                     auth_required=login is not None,
                                     auth_require_tls=tls is not None)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


def test_events_go_by_mail_with_their_line_as_the_subject() -> None:
    from intercom.app.hooks import Mail
    server = MailServer()
    try:
        mail = Mail("127.0.0.1", server.port, "none", "", "", "door@example.org",
                    ("anna@example.org", "ben@example.org"))
        hooks = Hooks([], ["door"], "Front door", mail=mail)
        asyncio.run(run_hooks(hooks, bell(), DoorEvent(DoorAction.REJECTED, "sip:x@y")))
    finally:
        server.close()
    assert hooks.delivered == 1 and len(server.messages) == 1
    sender, recipients, message = server.messages[0]
    assert sender == "door@example.org" and recipients == ["anna@example.org", "ben@example.org"]
    assert message["Subject"].startswith("Front door: ")
    assert "rejected" in message["Subject"] and '"action": "rejected"' in message.get_payload()


def test_mail_goes_over_starttls_with_a_login_and_a_wrong_password_stays_out_of_the_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from intercom.app.hooks import Mail
    cert, key = self_signed(tmp_path)
    server = MailServer(tls=(cert, key), login=("door", "mail-secret"))
    try:
        good = Mail("127.0.0.1", server.port, "starttls", "door", "mail-secret",
                    "door@example.org", ("anna@example.org",))
        hooks = Hooks([], ["button"], "s", ca_file=str(cert), mail=good)
        asyncio.run(run_hooks(hooks, bell()))
        bad = Mail("127.0.0.1", server.port, "starttls", "door", "not-the-secret",
                   "door@example.org", ("anna@example.org",))
        refused = Hooks([], ["button"], "s", ca_file=str(cert), retries=1, backoff=0.05,
                        mail=bad)
        with caplog.at_level(logging.WARNING, logger="intercom.hooks"):
            asyncio.run(run_hooks(refused, bell()))
    finally:
        server.close()
    assert hooks.delivered == 1 and len(server.messages) == 1
    assert refused.failed == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "intercom.hooks"]
    assert lines == [f"hook smtp://127.0.0.1:{server.port}: button event not delivered after "
                     "2 attempts: the server said 535"], lines
    assert not any("secret" in r.getMessage() for r in caplog.records)


def test_mail_settings_need_a_server_and_real_addresses() -> None:
    base = {"call": {"targets": ["sip:a@127.0.0.1"]}}
    with pytest.raises(config.ConfigError, match="notify.smtp_server: required"):
        config.validate({**base, "notify": {"email_to": ["a@example.org"]}})
    with pytest.raises(config.ConfigError, match=r"notify.email_to\[0\]: 'anna' is not an"):
        config.validate({**base, "notify": {"email_to": ["anna"], "smtp_server": "m.example"}})
