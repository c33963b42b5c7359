"""What a call and a registration may ask of the user agent that holds them.

``Call`` and ``Registration`` see the user agent only through these
Protocols, not the whole ``UserAgent``: the transactions they start, what
they send, the events they emit and where requests go. They import this
module, not ``intercom.sip.ua``, so nothing in the SIP core imports back the
module that imports it.
"""
from __future__ import annotations

from typing import Protocol

from intercom.sip.address import NameAddr, SipUri, Via
from intercom.sip.events import UaEvent
from intercom.sip.locate import Dest
from intercom.sip.message import Request, Response
from intercom.sip.settings import UaSettings
from intercom.sip.transaction import Transaction, TransactionUser


class SipHost(Protocol):
    """What both a call and a registration use."""

    @property
    def settings(self) -> UaSettings: ...

    def emit(self, event: UaEvent) -> None: ...

    def start_client(self, req: Request, dest: Dest, now: float,
                     handler: TransactionUser) -> Transaction: ...

    def send_raw(self, data: bytes, dest: Dest) -> None: ...

    def locate(self, uri: SipUri) -> Dest: ...

    def target_failed(self, dest: Dest) -> bool: ...

    def contact(self, transport: str = "udp") -> str: ...

    def authorized_retry(self, req: Request, resp: Response, dest: Dest,
                         tries: int) -> Request | None: ...

    def new_request(self, method: str, ruri: SipUri, from_: NameAddr, to: NameAddr,
                    call_id: str, cseq: int, transport: str = "udp") -> Request: ...


class CallHost(SipHost, Protocol):
    """What a call uses besides: replies in its server transactions, the outbound
    proxy, Via headers, OPTIONS in a dialog, whether it is still live, and
    ending it."""

    @property
    def outbound(self) -> SipUri | None: ...

    def new_via(self, transport: str = "udp") -> Via: ...

    def reply(self, tx: Transaction, req: Request, status: int, reason: str, now: float,
              to_tag: str | None = None, extra: tuple[tuple[str, str], ...] = (),
              body: bytes = b"") -> Response: ...

    def on_options(self, req: Request, tx: Transaction, now: float) -> None: ...

    def has_call(self, call_id: str) -> bool: ...

    def end(self, call_id: str, event: UaEvent) -> None: ...


class RegistrationHost(SipHost, Protocol):
    """What a registration uses besides: the credentials for its refreshes."""

    def add_credentials(self, req: Request, header: str) -> None: ...
