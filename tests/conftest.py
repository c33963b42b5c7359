"""Shared test helpers: free loopback ports, the RFC 4475 corpus, a virtual SIP network."""
from __future__ import annotations

import os
import random
import shutil
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from intercom.sip.locate import Dest
from intercom.sip.settings import UaSettings
from intercom.sip.ua import UserAgent

T = TypeVar("T")


def only(kind: type[T], items: Iterable[object]) -> list[T]:
    """``items``, every one of them a ``kind`` (else the test fails, naming them)."""
    out = []
    for item in items:
        assert isinstance(item, kind), f"expected only {kind.__name__}, got {item!r}"
        out.append(item)
    return out


def one(kind: type[T], item: object) -> T:
    """``item``, which must be a ``kind``."""
    assert isinstance(item, kind), f"expected a {kind.__name__}, got {item!r}"
    return item


CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "rfc4475"


_PICK = random.Random()     # its own: a test that seeds the module's must not repeat ports


def _test_ports() -> range:
    """Where the tests take their ports: below the kernel's ephemeral range
    (32768 and up), so that no connection's own port can take one a peer is about
    to listen on, and a slice of its own for each pytest-xdist worker, so that two
    workers never pick the same one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    width = 12000 // workers
    start = 20000 + (int(worker) % workers if worker.isdigit() else 0) * width
    return range(start, start + width)


def _free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_pair_gap(gap: int = 2) -> int:
    """A port p with p..p+gap free for both UDP and TCP (baresip opens TLS on p+1)."""
    ports = _test_ports()
    for _ in range(200):
        p = _PICK.randrange(ports.start, ports.stop - gap)
        if all(_free(q) for q in range(p, p + gap + 1)):
            return p
    raise RuntimeError(f"no free ports in {ports.start}-{ports.stop - 1}")


def free_port() -> int:
    """A port free for both UDP and TCP (Kamailio, coturn and the station take both)."""
    return free_port_pair_gap(0)


def need_espeak() -> None:
    """Tests that measure with synthesized speech: fail in CI (setup installs
    espeak-ng there), skip on a developer's machine that lacks it."""
    if shutil.which("espeak-ng") is None:
        reason = "espeak-ng is not installed (scripts/setup --test installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        reason = f"RFC 4475 corpus not found at {CORPUS} (needs ../shared beside the repo)"
        if os.environ.get("CI"):
            pytest.fail(reason)                 # CI always has ../shared beside the clone
        pytest.skip(reason)
    return CORPUS


class Peer(Protocol):
    """What sits at an address of the virtual network: a UserAgent, or a scripted peer."""

    def receive(self, data: bytes, addr: tuple[str, int], now: float,
                transport: str = "udp") -> None: ...

    def datagrams_to_send(self) -> list[tuple[bytes, Dest]]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


class VirtualNetwork:
    """User agents wired together on a virtual clock; datagrams can be dropped."""

    def __init__(self) -> None:
        self.now = 0.0
        self.agents: dict[tuple[str, int], Peer] = {}
        self.sent: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
        # predicates (src, dst, data) -> bool, each used once
        self.drop: list[Callable[[tuple[str, int], tuple[str, int], bytes], bool]] = []

    def add(self, user: str, port: int, domain: str = "127.0.0.1", **kw: Any) -> UserAgent:
        ua = UserAgent(UaSettings(user, domain, "127.0.0.1", port, **kw))
        self.agents[("127.0.0.1", port)] = ua
        return ua

    def pump(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            moved = False
            for src, ua in list(self.agents.items()):
                for data, dest in ua.datagrams_to_send():
                    moved = True
                    dst = (dest.host, dest.port)
                    self.sent.append((src, dst, data))
                    hit = next((p for p in self.drop if p(src, dst, data)), None)
                    if hit is not None:
                        self.drop.remove(hit)
                        continue
                    peer = self.agents.get(dst)
                    if peer is not None:
                        peer.receive(data, src, self.now, dest.transport)
            if not moved:
                return

    def advance(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            for ua in self.agents.values():
                deadline = ua.get_timer()
                if deadline is not None and deadline <= self.now:
                    ua.handle_timer(self.now)
            self.pump()


@pytest.fixture
def net() -> VirtualNetwork:
    return VirtualNetwork()
