"""The HTTP API and the web page, on HTTPS, in the station's own event loop (aiohttp).

The page (``/``, intercom/app/web/) shows the station live, its events, a
button to open the door and the config to edit; it is the API seen through
a browser, with the account's credentials kept in the tab.

Every request names an account (HTTP Basic); ``intercom account add`` makes
them, there is no default one. What each route needs:

=============================  ======  ============================================
``GET  /api/me``               view    the account's name and rights
``GET  /api/state``            view    what ``intercom ctl state`` shows
``GET  /api/events``           view    the event log (``?kind=door&count=50&since=T``)
``GET  /api/events/stream``    view    live events, as server-sent events
``GET  /api/snapshots``        view    the kept pictures of visitors, oldest first
``GET  /api/snapshots/NAME``   view    one of them (image/jpeg)
``GET  /api/recordings``       view    visitors' messages and recorded calls, oldest first
``GET  /api/recordings/NAME``  view    one of them (audio/ogg: Opus)
``DELETE /api/recordings/NAME`` admin  deletes it
``POST /api/door``             open    ``{"action": "open" | "hold" | "lock"}``
``POST /api/call/dial``        open    ``{"button": "bell"}``: as if it was pressed
``POST /api/call/hangup``      open    ends the call
``GET  /api/config``           admin   the config file, as text
``POST /api/config/validate``  admin   ``{"toml": "..."}``: checked, not written
``PUT  /api/config``           admin   ``{"toml": "..."}``: checked, then written
                                       atomically; it applies at the next start
``POST /api/doctor``           admin   ``intercom doctor``'s checks, its lines
=============================  ======  ============================================

Wrong credentials get 401, missing rights 403, bad JSON or a bad config 400
naming the key; nothing changes then. Each failed login is a WARNING line
in one fixed form, ``http login failed for 'NAME' from ADDRESS`` (for
fail2ban); after ``lockout_after`` failures an address gets 429 for
``lockout_seconds``, doubling with each lockout up to a day. Requests that
change something must be JSON (``Content-Type: application/json``), and
an ``Origin`` header, if the browser sends one, must be this server's: a
page elsewhere cannot make a browser that knows the password send them. No
password, door code or secret from the config is written to the log.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import socket
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from intercom.app.accounts import Account, AccountError, Accounts, accounts_path
from intercom.app.events import Event
from intercom.config import ConfigError, HttpConfig, check_text, error_line, replace_file

if TYPE_CHECKING:
    from intercom.app.station import DoorStation

log = logging.getLogger("intercom.http")
FAILURE_WINDOW = 600.0          # failed logins counted over this many seconds
LOCKOUT_MAX = 86400.0
VERIFIED_FOR = 300.0            # a checked password is not checked again (scrypt) for this long
STREAM_QUEUE = 100              # events waiting for a slow stream reader; more ends the stream
KEEPALIVE = 15.0                # seconds between comments on a quiet event stream
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RIGHTS_KEY = web.AppKey("rights", dict)
WEB = Path(__file__).parent / "web"
PAGES = {"index.html": "text/html", "app.js": "text/javascript", "app.css": "text/css"}
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; "
                                           "media-src 'self' blob:; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache"}


@dataclass
class Address:
    """Failed logins from one address."""
    failures: list[float] = field(default_factory=list)
    lockouts: int = 0
    until: float = 0.0


def certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for this station, made once (openssl, P-256, ten
    years), kept in ``directory``: (certificate, key)."""
    cert, key = directory / "https.pem", directory / "https.key"
    if cert.exists() and key.exists():
        return cert, key
    directory.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    subject = re.sub(r"[^A-Za-z0-9 ._-]", "", name)[:60] or "intercom"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "3650",
                        "-subj", f"/CN={subject}", "-addext",
                        f"subjectAltName=DNS:{host},DNS:{host}.local,DNS:localhost,"
                        "IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"http: cannot make a certificate with openssl ({exc}); give "
                          "http.cert_file and http.key_file") from exc
    key.chmod(0o600)
    return cert, key


def fingerprint(cert: Path) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def error(status: int, message: str, **more: Any) -> web.Response:
    return web.json_response({"ok": False, "error": message, **more}, status=status)


def shown_name(name: str) -> str:
    """A name someone typed, safe for one log line."""
    return repr(re.sub(r"[^\x20-\x7e]", "?", name[:32]))


class HttpApi:
    def __init__(self, station: DoorStation, cfg: HttpConfig, state_dir: Path,
                 config_path: str | None) -> None:
        self.station = station
        self.cfg = cfg
        self.state_dir = state_dir
        self.config_path = config_path
        self.accounts = Accounts(accounts_path(cfg.accounts, state_dir))
        self.addresses: dict[str, Address] = {}
        self._verified: dict[bytes, tuple[Account, float]] = {}
        self._key = secrets.token_bytes(32)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ----- serving --------------------------------------------------------------
    async def start(self) -> None:
        host, _, port = self.cfg.listen.rpartition(":")
        if self.cfg.cert_file:
            cert, key = Path(self.cfg.cert_file), Path(self.cfg.key_file or self.cfg.cert_file)
        else:
            cert, key = await asyncio.to_thread(certificate, self.state_dir,
                                                self.station.config.station.name)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        app = web.Application(middlewares=[self._guard], client_max_size=256 * 1024)
        rights: dict[tuple[str, str], str] = {}
        for name in PAGES:
            app.router.add_get("/" if name == "index.html" else f"/{name}", self.page)
        for method, path, handler, needed in [
                ("GET", "/api/me", self.get_me, "view"),
                ("GET", "/api/state", self.get_state, "view"),
                ("GET", "/api/events", self.get_events, "view"),
                ("GET", "/api/events/stream", self.stream_events, "view"),
                ("GET", "/api/snapshots", self.get_snapshots, "view"),
                ("GET", "/api/snapshots/{name}", self.get_snapshot, "view"),
                ("GET", "/api/recordings", self.get_recordings, "view"),
                ("GET", "/api/recordings/{name}", self.get_recording, "view"),
                ("DELETE", "/api/recordings/{name}", self.delete_recording, "admin"),
                ("POST", "/api/door", self.post_door, "open"),
                ("POST", "/api/call/dial", self.post_dial, "open"),
                ("POST", "/api/call/hangup", self.post_hangup, "open"),
                ("GET", "/api/config", self.get_config, "admin"),
                ("POST", "/api/config/validate", self.post_validate, "admin"),
                ("PUT", "/api/config", self.put_config, "admin"),
                ("POST", "/api/doctor", self.post_doctor, "admin")]:
            app.router.add_route(method, path, handler)
            rights[(method, path)] = needed
        app[RIGHTS_KEY] = rights
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host or None, int(port), ssl_context=context)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else int(port)
        log.info("HTTP API on https://%s:%d (certificate SHA-256 %s)", host or "*", self.port,
                 fingerprint(cert))
        if self.cfg.account_file:
            try:
                said = await asyncio.to_thread(self.accounts.seed, self.cfg.account_file)
            except AccountError as exc:
                said = None
                log.error("HTTP API: %s", exc)
            if said:
                log.info("HTTP API: %s", said)
        if not self.accounts.names():
            log.warning("HTTP API: no accounts yet; make one with `intercom account add NAME "
                        "--rights admin`")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ----- who may do what --------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote or "?"
        now = time.monotonic()
        address = self.addresses.get(peer)
        if address is not None and address.until > now:
            return error(429, "too many failed logins; try again later",
                         retry_in=round(address.until - now))
        route = request.match_info.route.resource
        needed = request.app[RIGHTS_KEY].get(
            (request.method, route.canonical if route is not None else ""))
        if needed is None:                       # no such route: 404 or 405, as aiohttp says
            return await handler(request)
        account = await self._account(request, peer)
        if account is None:
            # The challenge makes a browser ask for a password itself; the web page
            # (which says who it is) asks in its own form instead.
            page = request.headers.get("X-Intercom-Page") == "1"
            return web.json_response({"ok": False, "error": "log in"}, status=401,
                                     headers={} if page else
                                     {"WWW-Authenticate": 'Basic realm="intercom"'})
        if not account.may(needed):
            return error(403, f"account {account.name!r} has {account.rights!r} rights; "
                              f"this needs {needed!r}")
        if request.method in ("POST", "PUT", "DELETE"):
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"https://{request.host}":
                return error(403, "a request from another site's page")
        if request.method in ("POST", "PUT"):
            if request.content_type != "application/json":
                return error(415, "send JSON (Content-Type: application/json)")
            try:
                body = await request.json()
            except (ValueError, UnicodeDecodeError):
                return error(400, "the body is not JSON")
            if not isinstance(body, dict):
                return error(400, "the body must be a JSON object")
            request["body"] = body
        request["account"] = account
        return await handler(request)

    async def _account(self, request: web.Request, peer: str) -> Account | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None                          # not a failed login: nobody tried
        try:
            name, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            name, password = "", ""
        token = hmac.new(self._key, header.encode(), "sha256").digest()
        now = time.monotonic()
        cached = self._verified.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            account = await asyncio.to_thread(self.accounts.login, name, password)
        except AccountError as exc:
            log.error("HTTP API: %s", exc)
            account = None
        if account is None:
            self._failed(name, peer, now)
            return None
        self.addresses.pop(peer, None)
        self._verified = {k: v for k, v in self._verified.items() if v[1] > now}
        self._verified[token] = (account, now + VERIFIED_FOR)
        return account

    def _failed(self, name: str, peer: str, now: float) -> None:
        log.warning("http login failed for %s from %s", shown_name(name), peer)
        address = self.addresses.setdefault(peer, Address())
        address.failures = [t for t in address.failures if now - t < FAILURE_WINDOW] + [now]
        if len(address.failures) >= self.cfg.lockout_after:
            seconds = min(self.cfg.lockout_seconds * 2 ** address.lockouts, LOCKOUT_MAX)
            address.until = now + seconds
            address.lockouts += 1
            address.failures = []
            log.warning("http: %s locked out for %.0f s after %d failed logins", peer, seconds,
                        self.cfg.lockout_after)

    # ----- the routes -----------------------------------------------------------
    async def page(self, request: web.Request) -> web.Response:
        """The web page's files: no login needed to fetch them, nothing in them is
        the station's; each API call it makes carries the account."""
        name = request.path.lstrip("/") or "index.html"
        body = (WEB / name).read_bytes()
        return web.Response(body=body, content_type=PAGES[name], headers=PAGE_HEADERS)

    async def get_me(self, request: web.Request) -> web.Response:
        account: Account = request["account"]
        return web.json_response({"name": account.name, "rights": account.rights})

    async def get_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.station.state())

    async def get_events(self, request: web.Request) -> web.Response:
        """The kept events, newest ``count`` (1..1000) of ``kind``, from ``since`` to
        before ``until`` (Unix time), oldest first."""
        numbers: dict[str, float] = {}
        for name in ("count", "since", "until"):
            if name in request.query:
                try:
                    numbers[name] = float(request.query[name])
                except ValueError:
                    return error(400, f"{name}: not a number")
        count = int(numbers.get("count", 50))
        if not 1 <= count <= 1000:
            return error(400, "count: use 1..1000")
        log_ = self.station.eventlog
        if log_ is None:
            return error(503, "the event log is not open")
        return web.json_response(log_.latest(count, request.query.get("kind") or None,
                                             numbers.get("since"), numbers.get("until")))

    async def stream_events(self, request: web.Request) -> web.StreamResponse:
        kind = request.query.get("kind") or None
        queue: asyncio.Queue[Event | None] = asyncio.Queue(STREAM_QUEUE)

        def offer(event: Event) -> None:
            if kind is not None and event.kind != kind:
                return
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:            # a reader that does not keep up: let go
                queue.get_nowait()
                queue.put_nowait(None)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        unsubscribe = self.station.subscribe(offer)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    await response.write(b": still here\n\n")
                    continue
                if event is None:
                    break
                await response.write(f"data: {json.dumps(event.to_json())}\n\n".encode())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            unsubscribe()
        return response

    async def get_snapshots(self, request: web.Request) -> web.Response:
        store = self.station.snapshots
        shots = [] if store is None else await asyncio.to_thread(store.list)
        return web.json_response([{"name": s.name, "time": round(s.at, 3), "button": s.label,
                                   "bytes": s.size} for s in shots])

    async def get_snapshot(self, request: web.Request) -> web.StreamResponse:
        store = self.station.snapshots
        path = None if store is None else store.path(request.match_info["name"])
        if path is None:
            return error(404, "no such snapshot")
        return web.FileResponse(path, headers={"Content-Type": "image/jpeg",
                                               "Cache-Control": "private, max-age=86400"})

    async def get_recordings(self, request: web.Request) -> web.Response:
        kept = await asyncio.to_thread(self.station.recordings.store.list)
        return web.json_response([{"name": r.name, "time": round(r.at, 3),
                                   "what": r.label.partition("-")[0],
                                   "button": r.label.partition("-")[2], "bytes": r.size}
                                  for r in kept])

    async def get_recording(self, request: web.Request) -> web.StreamResponse:
        path = self.station.recordings.store.path(request.match_info["name"])
        if path is None:
            return error(404, "no such recording")
        return web.FileResponse(path, headers={"Content-Type": "audio/ogg",
                                               "Cache-Control": "private, max-age=86400"})

    async def delete_recording(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not await asyncio.to_thread(self.station.recordings.store.delete, name):
            return error(404, "no such recording")
        log.info("recording %s deleted by HTTP %s", name, request["account"].name)
        return web.json_response({"ok": True, "deleted": name})

    async def post_door(self, request: web.Request) -> web.Response:
        action = request["body"].get("action")
        try:
            self.station.door_command(str(action), f"HTTP {request['account'].name}")
        except ValueError as exc:
            return error(400, f"action: {exc}")
        return web.json_response({"ok": True})

    async def post_dial(self, request: web.Request) -> web.Response:
        button = str(request["body"].get("button", ""))
        if button not in self.station.board.buttons:
            return error(400, f"button: no {button!r} on this board; it has "
                              f"{', '.join(sorted(self.station.board.buttons))}")
        self.station.press_event(button)
        return web.json_response({"ok": True})

    async def post_hangup(self, request: web.Request) -> web.Response:
        if not self.station.hangup("hung up by HTTP"):
            return error(409, "no call to hang up")
        return web.json_response({"ok": True})

    async def get_config(self, request: web.Request) -> web.Response:
        if self.config_path is None:
            return error(404, "the station was started without a config file")
        text = await asyncio.to_thread(Path(self.config_path).read_text)
        return web.json_response({"path": self.config_path, "toml": text})

    def _checked(self, body: dict[str, Any]) -> tuple[str, web.Response | None]:
        text = body.get("toml")
        if not isinstance(text, str):
            return "", error(400, "toml: give the config as a string")
        try:
            check_text(text)
        except ConfigError as exc:
            message = str(exc)
            key = message.split(":", 1)[0] if re.match(r"^[\w.\[\]]+:", message) else None
            return "", error(400, message, key=key, line=error_line(text, message))
        return text, None

    async def post_validate(self, request: web.Request) -> web.Response:
        _, refusal = self._checked(request["body"])
        return refusal or web.json_response({"ok": True})

    async def put_config(self, request: web.Request) -> web.Response:
        if self.config_path is None:
            return error(404, "the station was started without a config file")
        text, refusal = self._checked(request["body"])
        if refusal is not None:
            return refusal
        await asyncio.to_thread(replace_file, self.config_path, text)
        log.info("config %s replaced over HTTP by %s", self.config_path,
                 shown_name(request["account"].name))
        return web.json_response({"ok": True, "applies": "at the next start"})

    async def post_doctor(self, request: web.Request) -> web.Response:
        """The doctor's checks on the config file, in a thread of their own (they ask
        this station's control socket, which this loop answers)."""
        if self.config_path is None:
            return error(404, "the station was started without a config file")
        from intercom.doctor import run_checks
        lines: list[str] = []
        state = self.station.state()
        path = self.config_path
        failed = await asyncio.to_thread(
            lambda: asyncio.run(run_checks(path, lines.append, running=state)))
        return web.json_response({"ok": failed == 0, "lines": lines})
