"""Relay boards on a serial port (pyserial), in place of a GPIO pin.

The common USB relay modules (a CH340 and one to eight relays, sold as
LCUS-1 and the like) take four bytes per command: 0xA0, the relay number,
1 for on or 0 for off, and the sum of the three. Other boards are set up
with their own ``on`` and ``off`` bytes in hex in the board profile.

The door must stay locked whatever the port does: the relay is switched off
as the port opens, and a write that fails closes the port; the next command
opens it again (a module that was unplugged and plugged back). A failed
release is retried every ``RETRY_SECONDS`` until it goes through.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from intercom.hal.errors import HalError

log = logging.getLogger("intercom.hal")
RETRY_SECONDS = 1.0


def lctech_command(channel: int, on: bool) -> bytes:
    """The LCUS/LC-Technology module's command for relay ``channel`` (1-8)."""
    body = bytes([0xA0, channel, 1 if on else 0])
    return body + bytes([sum(body) & 0xFF])


class SerialRelay:
    """The strike relay as a serial module. ``value`` is what was last commanded."""

    def __init__(self, port: str, baudrate: int = 9600, channel: int = 1,
                 on: bytes | None = None, off: bytes | None = None) -> None:
        self.port_name = port
        self.baudrate = baudrate
        self.on_bytes = on if on is not None else lctech_command(channel, True)
        self.off_bytes = off if off is not None else lctech_command(channel, False)
        self.value = False
        self._port: Any = None
        self._lock = threading.Lock()
        self._retry: threading.Timer | None = None
        try:
            self._open()
        except OSError as exc:
            raise HalError(f"serial relay on {port}: {exc}") from exc
        if not self._send(self.off_bytes):                 # released at start, whatever it was
            raise HalError(f"serial relay on {port}: cannot switch it off")

    def _open(self) -> None:
        import serial
        self._port = serial.Serial(self.port_name, self.baudrate, timeout=1, write_timeout=1)

    def _send(self, command: bytes) -> bool:
        import serial
        with self._lock:
            try:
                if self._port is None:
                    self._open()
                self._port.write(command)
                self._port.flush()
                return True
            except (OSError, serial.SerialException) as exc:
                log.error("serial relay on %s: %s", self.port_name, exc)
                if self._port is not None:
                    self._port.close()
                    self._port = None
                return False

    def on(self) -> None:
        self._cancel_retry()
        self.value = self._send(self.on_bytes)

    def off(self) -> None:
        self._cancel_retry()
        self.value = False
        if not self._send(self.off_bytes):
            self._retry = threading.Timer(RETRY_SECONDS, self.off)
            self._retry.daemon = True
            self._retry.start()

    def _cancel_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def close(self) -> None:
        self.off()
        self._cancel_retry()
        with self._lock:
            if self._port is not None:
                self._port.close()
                self._port = None
