"""The service under systemd: the unit checked by systemd-analyze, and the
sd_notify protocol (READY, WATCHDOG, STATUS, STOPPING) spoken to a socket the
test holds, as systemd would."""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

from intercom.service import Notifier, watchdog

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "intercom.service"


def analyze() -> str:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        from peers import missing
        missing("systemd-analyze (Debian package systemd; scripts/setup --test installs it)")
    assert binary is not None
    return binary


def local_unit(tmp_path: Path) -> Path:
    """The unit with its programs where this checkout has them."""
    unit = tmp_path / "intercom.service"
    unit.write_text(UNIT.read_text().replace("/opt/intercom/.venv/bin/intercom",
                                             str(ROOT / ".venv" / "bin" / "intercom")))
    return unit


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    out = subprocess.run([analyze(), "verify", str(local_unit(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


def test_the_unit_is_well_sandboxed(tmp_path: Path) -> None:
    out = subprocess.run([analyze(), "security", "--offline=true", str(local_unit(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for intercom.service: ([0-9.]+) (\w+)", out.stdout)
    assert found, out.stdout[-2000:] + out.stderr
    assert float(found.group(1)) <= 2.0 and found.group(2) == "OK", found.group(0)
    text = UNIT.read_text()
    for needed in ("Type=notify", "WatchdogSec=", "Restart=always", "NoNewPrivileges=yes",
                   "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                   "CapabilityBoundingSet=\n", "ExecStopPost=", "User=intercom",
                   "SupplementaryGroups=audio gpio"):
        assert needed in text


class NotifySocket:
    """systemd's end of sd_notify: a datagram socket collecting what is sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def collect(self, until: float) -> None:
        deadline = time.monotonic() + until
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = next((m for m in self.messages if text in m), None)
            if hit is not None:
                return hit
            self.collect(0.2)
        raise AssertionError(f"no {text!r} in {self.messages}")

    def close(self) -> None:
        self.sock.close()


def station_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "intercom.toml"
    cfg.write_text(f'[sip]\nlisten = "127.0.0.1"\nport = {free_port()}\n'
                   f'registrar = "sip:127.0.0.1:{free_port()}"\n'
                   '[call]\ntargets = ["sip:resident@127.0.0.1:9"]\n'
                   f'[control]\nsocket = "{tmp_path / "control.sock"}"\n'
                   f'[log]\ndatabase = "{tmp_path / "events.db"}"\n')
    return cfg


@contextlib.contextmanager
def service(tmp_path: Path, cfg: Path) -> Iterator[tuple[subprocess.Popen[bytes], NotifySocket]]:
    """``intercom run --wait-for-config`` as the unit runs it, with a watchdog of
    1 s, talking to a notify socket the test holds; killed if still up at the end."""
    notify = NotifySocket(tmp_path / "notify.sock")
    env = dict(os.environ, NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="1000000")
    with open(tmp_path / "station.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "intercom.cli", "run",
                                 "--wait-for-config", "--config", str(cfg)], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
    try:
        yield proc, notify
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        notify.close()


def test_ready_after_the_first_registration_attempt_then_watchdog_then_stopping(
        tmp_path: Path) -> None:
    with service(tmp_path, station_config(tmp_path)) as (proc, notify):
        ready = notify.wait_for("READY=1", 15)
        assert "STATUS=registration none; call idle" in ready   # REGISTER sent, no answer yet
        start = len(notify.messages)
        notify.collect(2.0)
        pings = [m for m in notify.messages[start:] if m == "WATCHDOG=1"]
        assert 3 <= len(pings) <= 6                          # every 0.5 s for WatchdogSec=1 s
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        notify.collect(0.3)
        assert "STOPPING=1" in notify.messages


def test_a_broken_config_keeps_the_service_up_with_the_door_locked_until_it_is_fixed(
        tmp_path: Path) -> None:
    cfg = station_config(tmp_path)
    good = cfg.read_text()
    cfg.write_text(good.replace("[call]", "[call]\nring_time = 1"))      # out of range
    with service(tmp_path, cfg) as (proc, notify):
        ready = notify.wait_for("READY=1", 15)
        assert "STATUS=config error: call.ring_time: 1 is outside the allowed range" in ready
        notify.wait_for("WATCHDOG=1", 3)                      # alive, not restarted
        assert proc.poll() is None
        cfg.write_text(good)                                  # fixed
        notify.wait_for("RELOADING=1", 10)
        start = len(notify.messages)
        deadline = time.monotonic() + 15
        while not any("READY=1" in m for m in notify.messages[start:]) and \
                time.monotonic() < deadline:
            notify.collect(0.2)
        assert any("STATUS=registration" in m for m in notify.messages[start:])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    log = (tmp_path / "station.log").read_text()
    assert "the door stays locked until the file is fixed" in log
    assert "is usable now: starting the station" in log


def test_without_wait_for_config_a_broken_config_still_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[call]\ntargets = []\n")
    out = subprocess.run([sys.executable, "-m", "intercom.cli", "run", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "call.targets: needs at least one SIP URI" in out.stderr


def test_the_watchdog_is_fed_only_while_nothing_is_wrong(tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    trouble: list[str | None] = [None]

    async def main() -> None:
        notifier = Notifier({"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"})
        task = asyncio.get_running_loop().create_task(watchdog(notifier, lambda: trouble[0]))
        await asyncio.sleep(0.45)
        trouble[0] = "the audio thread has not moved for 12 s"
        await asyncio.sleep(0.5)
        trouble[0] = None
        await asyncio.sleep(0.3)
        task.cancel()
    asyncio.run(main())
    notify.collect(0.3)
    kinds = [m.split("=")[0] for m in notify.messages]
    faulted = kinds.index("STATUS")
    assert kinds[:faulted] == ["WATCHDOG"] * faulted and faulted >= 2
    assert notify.messages[faulted] == "STATUS=fault: the audio thread has not moved for 12 s"
    # withheld for the 0.5 s at fault (5 pings' worth), fed again for the last 0.3 s
    after = kinds[faulted + 1:]
    assert after == ["WATCHDOG"] * len(after) and 2 <= len(after) <= 4
    notify.close()


def test_outside_systemd_nothing_is_sent_and_a_foreign_watchdog_pid_is_ignored() -> None:
    assert not Notifier({}).enabled and not Notifier({}).notify("READY=1")
    other = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other.address == "\0x" and other.watchdog_seconds is None


def test_relay_off_releases_the_relay_even_with_a_broken_config(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[board]\ntype = "simulated"\n[call]\ntargets = "oops"\n')
    out = subprocess.run([sys.executable, "-m", "intercom.cli", "relay-off", "--config",
                          str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "relay released" in out.stdout


@pytest.mark.parametrize("what", ["sip", "audio"])
def test_the_station_names_what_is_wrong_for_the_watchdog(what: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed SIP endpoint, or an audio thread stuck in the card's read."""
    import threading

    from intercom.media import stream as stream_mod
    from intercom.media.codecs import codec_for, spec
    from intercom.media.devices import SimulatedSoundCard
    from intercom.media.rtp import RtpSession
    from intercom.sip.transport import SipEndpoint
    from intercom.sip.settings import UaSettings
    from intercom.sip.ua import UserAgent
    release = threading.Event()

    class Stuck(SimulatedSoundCard):
        def read(self):  # type: ignore[no-untyped-def]
            release.wait(5)
            return super().read()

    async def main() -> str | None:
        if what == "sip":
            ua = UserAgent(UaSettings("door", "127.0.0.1", "127.0.0.1", free_port()))
            endpoint = await SipEndpoint.open(ua, ("127.0.0.1", ua.settings.local_port),
                                              lambda e: None, listen_tcp=False)
            assert endpoint.trouble() is None
            endpoint.close()
            return endpoint.trouble()
        monkeypatch.setattr(stream_mod, "STALL_SECONDS", 0.3)
        rtp = await RtpSession.open("127.0.0.1", 40000, 49998, lambda *a: None)
        st = stream_mod.AudioStream(lambda: Stuck(8000, 160), 8000, rtp,
                                    codec_for(spec("PCMU").format), None, lambda d: None,
                                    lambda m: None)
        st.start()
        await asyncio.sleep(0.1)
        assert st.trouble() is None
        await asyncio.sleep(0.5)
        why = st.trouble()
        release.set()
        st.stop()
        rtp.close()
        return why
    why = asyncio.run(main())
    expected = "the SIP endpoint is closed" if what == "sip" else "the audio thread has not moved"
    assert why is not None and why.startswith(expected)


def test_a_missing_config_is_waited_for_with_the_error_on_the_simulated_leds(
        tmp_path: Path) -> None:
    """No file at all (a fresh SD card): up, the error shown, then the file appears."""
    from intercom.service import fallback_board
    cfg = tmp_path / "intercom.toml"
    good = station_config(tmp_path).read_text()
    cfg.unlink()
    assert fallback_board(str(cfg)) == ("simulated", "")       # no GPIO on this machine
    with service(tmp_path, cfg) as (proc, notify):
        ready = notify.wait_for("READY=1", 15)
        assert "STATUS=config error:" in ready and "cannot read" in ready
        cfg.write_text(good)
        notify.wait_for("RELOADING=1", 10)
        notify.wait_for("STATUS=registration", 15)            # the station is up
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
