"""Action hooks: the station's events POSTed as JSON to URLs the config names, and
sent by e-mail.

Each event of the configured kinds goes to every URL in ``[notify] urls`` as
``{"station": name, "event": {...}}``, the same JSON ``intercom ctl events``
prints (no door code is ever in it). With ``email_to`` set, each goes as an e-mail too (its one-line text as the
subject) through ``smtp_server``. Delivery is off the call's path: an
event is queued and a worker per URL sends it, with a timeout per attempt
and retries with growing pauses; a URL that stays down loses its oldest
events first once its queue is full, and each loss is counted and logged.
Nothing here ever waits on the event loop's behalf: a hook server that hangs
delays only its own queue.

The HTTP client is deliberately small: HTTP/1.1, one request per connection,
and only the status line of the answer is read (2xx: delivered). The logs
name a URL by its scheme, host and port only: a token in its path, query or
user part stays out of them.
"""
from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from intercom import __version__
from intercom.app.events import Event

log = logging.getLogger("intercom.hooks")
QUEUE = 200                 # events held per URL while it is down
BACKOFF_MAX = 60.0          # seconds between attempts at most


class HookError(Exception):
    """One attempt that did not deliver: why, in words for the log."""


@dataclass(frozen=True)
class Target:
    """A hook URL taken apart once."""
    url: str
    secure: bool
    host: str
    port: int
    path: str               # with the query
    authorization: str      # from user:password@ in the URL, as a Basic header; or ""

    @classmethod
    def parse(cls, url: str) -> Target:
        """ValueError naming what is wrong with ``url`` (shown without its user part,
        path and query, which may hold a secret)."""
        parts = urlsplit(url)
        hidden = "/..." if parts.path.strip("/") or parts.query else ""
        shown = repr(f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{hidden}"
                     if parts.scheme else url.split("?")[0].rpartition("@")[2])
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{shown} is not an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError(f"{shown} names no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ValueError(f"{shown}: {exc}") from None
        auth = ""
        if parts.username is not None:
            import base64
            pair = f"{parts.username}:{parts.password or ''}".encode()
            auth = "Basic " + base64.b64encode(pair).decode()
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(url, parts.scheme == "https", parts.hostname, port, path, auth)

    @property
    def shown(self) -> str:
        """The URL as the log may show it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.secure else 'http'}://{host}:{self.port}"

    @property
    def needs_tls(self) -> bool:
        return self.secure

    async def deliver(self, station: str, event: Event, timeout: float,
                      context: ssl.SSLContext | None) -> int:
        body = json.dumps({"station": station, "event": event.to_json()}).encode()
        return await post(self, body, timeout, context)


ATTACHMENT_TYPES = {".jpg": ("image", "jpeg"), ".opus": ("audio", "ogg")}


@dataclass(frozen=True)
class Mail:
    """E-mail through an SMTP server: one message per event."""
    host: str
    port: int
    security: str           # "starttls", "tls" or "none"
    user: str
    password: str
    sender: str
    to: tuple[str, ...]
    # the file behind an event (a snapshot, a recording), attached to its mail
    attachment: Callable[[str], Path | None] | None = None

    @property
    def shown(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def needs_tls(self) -> bool:
        return self.security != "none"

    async def deliver(self, station: str, event: Event, timeout: float,
                      context: ssl.SSLContext | None) -> int:
        await asyncio.to_thread(self._send, station, event, timeout, context)
        return 250

    def _send(self, station: str, event: Event, timeout: float,
              context: ssl.SSLContext | None) -> None:
        import smtplib
        from email.message import EmailMessage
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message["Subject"] = f"{station}: {event.text()}"
        message.set_content(f"{event.text()}\n\n{json.dumps(event.to_json(), indent=1)}\n")
        name = getattr(event, "file", None)
        path = self.attachment(name) if self.attachment is not None and name else None
        if path is not None:                     # the visitor's face or voice, with the mail
            maintype, subtype = ATTACHMENT_TYPES.get(path.suffix, ("application",
                                                                  "octet-stream"))
            message.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype,
                                   filename=path.name)
        try:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout,
                                                  context=context) \
                if self.security == "tls" else smtplib.SMTP(self.host, self.port,
                                                               timeout=timeout)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=context)
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise HookError(f"the server said {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise HookError(str(exc) or type(exc).__name__) from None


async def post(target: Target, body: bytes, timeout: float,
               context: ssl.SSLContext | None) -> int:
    """POST ``body`` (JSON) to ``target``; the answer's status code. HookError for a
    connection or an answer that fails, or takes longer than ``timeout`` in all."""
    async def exchange() -> int:
        reader, writer = await asyncio.open_connection(
            target.host, target.port, ssl=context if target.secure else None,
            server_hostname=target.host if target.secure else None)
        try:
            host = f"[{target.host}]" if ":" in target.host else target.host
            head = [f"POST {target.path} HTTP/1.1", f"Host: {host}:{target.port}",
                    f"User-Agent: intercom/{__version__}", "Content-Type: application/json",
                    f"Content-Length: {len(body)}", "Connection: close"]
            if target.authorization:
                head.append(f"Authorization: {target.authorization}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        words = line.decode("latin-1").split()
        if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit():
            raise HookError(f"no HTTP answer ({line[:40]!r})")
        return int(words[1])
    try:
        return await asyncio.wait_for(exchange(), timeout)
    except asyncio.TimeoutError:
        raise HookError(f"no answer within {timeout:g} s") from None
    except (OSError, ssl.SSLError, ValueError) as exc:   # ValueError: an endless line
        raise HookError(str(exc) or type(exc).__name__) from None


class Hooks:
    """The workers that deliver events to ``urls`` (and by ``mail``); ``offer`` each
    event."""

    def __init__(self, urls: Iterable[str], kinds: Iterable[str], station: str,
                 timeout: float = 5.0, retries: int = 3, ca_file: str = "",
                 backoff: float = 1.0, mail: Mail | None = None) -> None:
        self.targets: list[Target | Mail] = [Target.parse(u) for u in urls]
        if mail is not None:
            self.targets.append(mail)
        self.kinds = frozenset(kinds)
        self.station = station
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._ca_file = ca_file
        self._context: ssl.SSLContext | None = None
        self._queues: list[asyncio.Queue[Event]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.delivered = 0
        self.failed = 0           # given up after every attempt
        self.dropped = 0          # pushed out of a full queue

    def start(self) -> None:
        """Start a worker per destination (on the loop)."""
        if any(t.needs_tls for t in self.targets):
            self._context = ssl.create_default_context(cafile=self._ca_file or None)
        for target in self.targets:
            queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE)
            self._queues.append(queue)
            self._tasks.append(asyncio.get_running_loop().create_task(
                self._worker(target, queue), name=f"hook {target.shown}"))

    def offer(self, event: Event) -> None:
        """Queue ``event`` for every destination if its kind is wanted; never waits."""
        if event.kind not in self.kinds or not self._queues:
            return
        for target, queue in zip(self.targets, self._queues):
            if queue.full():
                queue.get_nowait()
                queue.task_done()
                self.dropped += 1
                log.warning("hook %s: %d events waiting; the oldest is dropped",
                            target.shown, QUEUE)
            queue.put_nowait(event)

    async def _worker(self, target: Target | Mail, queue: asyncio.Queue[Event]) -> None:
        while True:
            event = await queue.get()
            try:
                await self._deliver(target, event)
            finally:
                queue.task_done()

    async def _deliver(self, target: Target | Mail, event: Event) -> None:
        why = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(min(self.backoff * 2 ** (attempt - 1), BACKOFF_MAX))
            try:
                status = await target.deliver(self.station, event, self.timeout,
                                              self._context)
            except HookError as exc:
                why = str(exc)
                continue
            if 200 <= status < 300:
                self.delivered += 1
                return
            why = f"HTTP {status}"
            if 400 <= status < 500 and status not in (408, 429):
                break                        # the server refuses it: trying again won't help
        self.failed += 1
        log.warning("hook %s: %s event not delivered after %d attempt%s: %s", target.shown,
                    event.kind, attempt + 1, "" if attempt == 0 else "s", why)

    async def idle(self) -> None:
        """Until every queued event is delivered or given up (for tests and stop)."""
        for queue in self._queues:
            await queue.join()

    async def stop(self, grace: float = 2.0) -> None:
        """Give the queues ``grace`` seconds to empty (the last events of a stopping
        station), then stop the workers."""
        if self._queues:
            try:
                await asyncio.wait_for(self.idle(), grace)
            except asyncio.TimeoutError:
                pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._queues.clear()
