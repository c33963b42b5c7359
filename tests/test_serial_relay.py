"""The serial relay backend through pyserial, on a pseudo-terminal pair.

The test holds the pty's master side, where a USB relay module would be, and
reads the bytes the station sends to the slave side it opened as its port.
"""
from __future__ import annotations

import os
import select
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from intercom.hal.board import BoardProfile, SimulatedBoard
from intercom.hal.errors import HalError
from intercom.hal.serialrelay import SerialRelay, lctech_command

ON, OFF = bytes.fromhex("A00101A2"), bytes.fromhex("A00100A1")


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    name = os.ttyname(slave)
    os.close(slave)                   # the relay opens it by name, as a real port
    yield master, name
    os.close(master)


def received(master: int, expect: int, timeout: float = 2.0) -> bytes:
    """Up to ``expect`` bytes from the module's side. While nobody holds the port
    open the master reads EIO: wait for it to be opened again."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < expect and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            data += os.read(master, 64)
        except OSError:
            time.sleep(0.02)
    return data


def test_lctech_commands_are_four_bytes_with_a_checksum() -> None:
    assert lctech_command(1, True) == ON and lctech_command(1, False) == OFF
    assert lctech_command(4, True) == bytes([0xA0, 4, 1, 0xA5])


def test_the_relay_is_switched_off_at_open_then_on_and_off(pty_pair: tuple[int, str]) -> None:
    master, name = pty_pair
    relay = SerialRelay(name)
    assert received(master, 4) == OFF                 # de-energised at start-up
    relay.on()
    assert relay.value and received(master, 4) == ON
    relay.off()
    assert not relay.value and received(master, 4) == OFF
    relay.close()
    assert received(master, 4) == OFF                 # and when it is closed


def test_a_board_profile_with_a_serial_relay_drives_it_and_the_simulated_door(
        pty_pair: tuple[int, str], tmp_path: Path) -> None:
    master, name = pty_pair
    path = tmp_path / "usb-relay.toml"
    path.write_text(f'[buttons]\nbell = 17\n[relay]\nserial = "{name}"\nchannel = 2\n'
                    f'on = "FF0201"\noff = "FF0200"\n[door_contact]\npin = 24\n')
    board = SimulatedBoard(BoardProfile.load(str(path)))
    try:
        assert received(master, 3) == bytes.fromhex("FF0200")
        board.set_relay(True)
        assert board.relay_energised and received(master, 3) == bytes.fromhex("FF0201")
        assert board.door_closed is False              # the strike let the door open
        board.set_relay(False)
        assert not board.relay_energised and received(master, 3) == bytes.fromhex("FF0200")
    finally:
        board.close()


def test_a_missing_port_is_a_clear_error_and_bad_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(HalError, match="serial relay on /dev/nonexistent-relay"):
        SerialRelay("/dev/nonexistent-relay")
    path = tmp_path / "bad.toml"
    path.write_text('[buttons]\nbell = 17\n[relay]\nserial = "/dev/x"\non = "zz"\n')
    with pytest.raises(HalError, match="bad.toml"):
        BoardProfile.load(str(path))
    path.write_text('[buttons]\nbell = 17\n[relay]\nactive_high = false\n')
    with pytest.raises(HalError, match="needs a pin or a serial port"):
        BoardProfile.load(str(path))


def test_a_port_that_breaks_is_reopened_and_the_release_retried(
        pty_pair: tuple[int, str], monkeypatch: pytest.MonkeyPatch) -> None:
    master, name = pty_pair
    monkeypatch.setattr("intercom.hal.serialrelay.RETRY_SECONDS", 0.1)
    relay = SerialRelay(name)
    received(master, 4)
    relay.on()
    received(master, 4)
    relay._port.close()                             # the module is unplugged mid-pulse
    relay._port = _Broken()
    relay.off()                                     # fails, closes it, retries
    assert received(master, 4) == OFF              # the retry reopened the port
    assert not relay.value
    relay.close()


class _Broken:
    def write(self, data: bytes) -> int:
        raise OSError(5, "Input/output error")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
