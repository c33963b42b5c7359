"""SRTP with keys exchanged in SDP (SDES, RFC 4568), through pylibsrtp.

Each side puts its own master key in an ``a=crypto`` line; each sends with
its own key and receives with the other's. A packet that fails
authentication is dropped and counted, never decoded: a forged packet must
not become audio, and certainly not a door-code digit.
"""
from __future__ import annotations

import base64
import secrets
import threading
from dataclasses import dataclass

import pylibsrtp

from intercom.sip.sdp import SdpError

SUITES = {"AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
          "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32}
KEY_AND_SALT = 30                  # 128-bit key and 112-bit salt


class SrtpError(ValueError):
    """A packet that failed SRTP authentication or replay checks."""


@dataclass(frozen=True)
class Crypto:
    """One ``a=crypto`` attribute: tag, suite and the inline master key and salt."""

    tag: int
    suite: str
    key: bytes

    @classmethod
    def new(cls, tag: int = 1, suite: str = "AES_CM_128_HMAC_SHA1_80") -> Crypto:
        return cls(tag, suite, secrets.token_bytes(KEY_AND_SALT))

    @classmethod
    def parse(cls, value: str) -> Crypto:
        """``1 AES_CM_128_HMAC_SHA1_80 inline:KEY[|lifetime]`` (no MKI, RFC 4568 9.2)."""
        parts = value.split()
        if len(parts) < 3 or not parts[0].isdigit() or not parts[2].startswith("inline:"):
            raise SdpError(f"unusable a=crypto {value[:60]!r}")
        params = parts[2][len("inline:"):].split("|")
        if len(params) > 2 or (len(params) == 2 and ":" in params[1]):
            raise SdpError("a=crypto with an MKI is not supported")
        try:
            key = base64.b64decode(params[0], validate=True)
        except ValueError as exc:
            raise SdpError(f"a=crypto key is not base64: {exc}") from exc
        if len(key) != KEY_AND_SALT:
            raise SdpError(f"a=crypto key of {len(key)} bytes, expected {KEY_AND_SALT}")
        return cls(int(parts[0]), parts[1], key)

    def __str__(self) -> str:
        return f"{self.tag} {self.suite} inline:{base64.b64encode(self.key).decode()}"


def crypto_or_none(value: str) -> Crypto | None:
    try:
        return Crypto.parse(value)
    except SdpError:
        return None


def choose(offered: list[str]) -> Crypto | None:
    """The first offered crypto line whose suite we speak (RFC 4568 7.1.2)."""
    for value in offered:
        try:
            crypto = Crypto.parse(value)
        except SdpError:
            continue
        if crypto.suite in SUITES:
            return crypto
    return None


class SrtpContext:
    """Protects what we send with our key; checks what we get with theirs."""

    def __init__(self, ours: Crypto, theirs: Crypto) -> None:
        if ours.suite != theirs.suite or ours.suite not in SUITES:
            raise SdpError(f"SRTP suites do not match: {ours.suite} / {theirs.suite}")
        profile = SUITES[ours.suite]
        self.theirs = theirs              # a re-offer with a new key needs a new context
        self._tx = pylibsrtp.Session(policy=pylibsrtp.Policy(
            key=ours.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
        self._rx = pylibsrtp.Session(policy=pylibsrtp.Policy(
            key=theirs.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
        self.failed = 0
        # RTP goes through the media thread, RTCP through the event loop, and libsrtp's
        # sessions are not safe to use from two threads at once (pylibsrtp lets go of
        # the GIL in them).
        self._tx_lock = threading.Lock()
        self._rx_lock = threading.Lock()

    def protect(self, packet: bytes) -> bytes:
        with self._tx_lock:
            return bytes(self._tx.protect(packet))

    def protect_rtcp(self, packet: bytes) -> bytes:
        with self._tx_lock:
            return bytes(self._tx.protect_rtcp(packet))

    def unprotect(self, packet: bytes) -> bytes:
        try:
            with self._rx_lock:
                return bytes(self._rx.unprotect(packet))
        except pylibsrtp.Error as exc:
            self.failed += 1
            raise SrtpError(str(exc)) from exc

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        try:
            with self._rx_lock:
                return bytes(self._rx.unprotect_rtcp(packet))
        except pylibsrtp.Error as exc:
            self.failed += 1
            raise SrtpError(str(exc)) from exc
