"""``intercom ctl``'s short way (intercom.ctl): the same requests as the full way,
nothing heavy imported on it, and failures said as the full way says them."""
from __future__ import annotations

import os
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from intercom import commands, ctl


@pytest.mark.parametrize("args", [
    ["press", "bell"], ["press", "bell-2_b"], ["door", "open"], ["door", "hold"],
    ["door", "lock"], ["hangup"], ["input", "door", "on"], ["input", "tamper", "off"],
])
def test_simple_commands_go_the_short_way_with_the_full_ways_request(args: list[str]) -> None:
    found = ctl.request(["--socket", "/s", *args])
    assert found is not None
    path, line = found
    assert path == "/s" and line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == commands._ctl_request(args[0], args[1:])
    assert ctl.request(["--socket=/s", *args]) == found


@pytest.mark.parametrize("args", [
    ["state"], ["events"], ["log"], ["press"], ["press", "a", "b"], ["press", 'be"ll'],
    ["press", "bell\\"], ["press", "b\u00e9ll"], ["press", ""], ["door", "wide"],
    ["input", "door", "maybe"], ["hangup", "now"], ["--config", "x.toml", "press", "bell"],
    ["press", "bell", "--socket", "/s"], ["press", "--json"], ["input", "-x", "on"],
    ["--socket"], [],
])
def test_anything_else_is_handed_to_the_full_way(args: list[str]) -> None:
    assert ctl.request(args if args[:1] in (["--config"], ["--socket"]) or not args
                       else ["--socket", "/s", *args]) is None


class OneReply:
    """A control socket that records each request line and answers ``reply``."""

    def __init__(self, path: Path, reply: bytes) -> None:
        self.lines: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.thread = threading.Thread(target=self._serve, args=(reply,), daemon=True)
        self.thread.start()

    def _serve(self, reply: bytes) -> None:
        conn, _ = self.sock.accept()
        with conn, conn.makefile("rb") as stream:
            self.lines.append(stream.readline())
            conn.sendall(reply)

    def close(self) -> None:
        self.thread.join(20)
        self.sock.close()


HEAVY = ("asyncio", "argparse", "json", "numpy", "intercom.config", "intercom.commands",
         "intercom.control")          # (pathlib: the editable install's own finder takes it)
PROBE = ("import sys; from intercom.cli import main; rc = main(sys.argv[1:]); "
         "print(sorted(m for m in {heavy!r} if m in sys.modules)); raise SystemExit(rc)")


def ctl_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), "ctl", *args],
                          capture_output=True, text=True, timeout=30)


def test_a_press_reaches_the_socket_without_importing_anything_heavy(tmp_path: Path) -> None:
    server = OneReply(tmp_path / "c.sock", b'{"ok": true}\n')
    out = ctl_run("--socket", str(tmp_path / "c.sock"), "press", "bell")
    server.close()
    assert out.returncode == 0, out.stderr
    assert server.lines == [b'{"cmd": "press", "button": "bell"}\n']
    assert out.stdout.strip() == "[]"            # none of HEAVY was imported


def test_a_refusal_is_said_as_the_full_way_says_it(tmp_path: Path) -> None:
    server = OneReply(tmp_path / "c.sock",
                      b'{"ok": false, "error": "no button \'front\' on this board"}\n')
    out = ctl_run("--socket", str(tmp_path / "c.sock"), "press", "front")
    server.close()
    assert out.returncode == 1
    assert "intercom ctl: no button 'front' on this board" in out.stderr


def test_a_station_that_is_not_there_or_hangs_up_is_an_error(tmp_path: Path) -> None:
    out = ctl_run("--socket", str(tmp_path / "none.sock"), "door", "open")
    assert out.returncode == 1 and "cannot reach the station at" in out.stderr
    server = OneReply(tmp_path / "c.sock", b"")          # closes without a reply
    out = ctl_run("--socket", str(tmp_path / "c.sock"), "hangup")
    server.close()
    assert out.returncode == 1 and "unexpected reply b''" in out.stderr


def test_the_version_comes_from_the_package_without_importlib_metadata() -> None:
    """One version, written in intercom/__init__.py: the installed metadata has it,
    and every command gets it without loading importlib.metadata (2 MB, 10 ms)."""
    import importlib.metadata
    import intercom
    assert importlib.metadata.version("intercom") == intercom.__version__
    probe = ("import sys\nfrom intercom.cli import main\ntry:\n    main(['--version'])\n"
             "except SystemExit:\n    pass\nprint('importlib.metadata' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=30)
    assert out.stdout.split() == ["intercom", intercom.__version__, "False"], out.stderr


def test_the_station_process_starts_no_blas_threads() -> None:
    """numpy's OpenBLAS would start a worker thread per core beyond the first; the
    station's entry point keeps it to the calling thread (a user's setting wins)."""
    probe = ("import os, sys\nfrom intercom.cli import main\ntry:\n    main(['--version'])\n"
             "except SystemExit:\n    pass\nimport numpy\n"
             "print(os.environ['OPENBLAS_NUM_THREADS'], "
             "open('/proc/self/status').read().split('Threads:')[1].split()[0])")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=30, env=env)
    assert out.stdout.split()[-2:] == ["1", "1"], out.stderr
    env["OPENBLAS_NUM_THREADS"] = "2"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=30, env=env)
    assert out.stdout.split()[-2:] == ["2", "2"], out.stderr
