"""Where `intercom ctl` and the station meet when [control] socket is empty."""
from __future__ import annotations

from pathlib import Path

import pytest

from intercom import control, ctl


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("RUNTIME_DIRECTORY", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ctl, "SERVICE_SOCKET", str(tmp_path / "run-intercom" / "control.sock"))
    return tmp_path


def test_the_service_uses_its_runtime_directory(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(env / "svc"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(env / "user"))
    assert control.default_socket_path() == env / "svc" / "control.sock"


def test_a_user_on_the_station_finds_the_service_socket_before_their_own(
        env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(env / "user"))
    assert control.default_socket_path() == env / "user" / "intercom" / "control.sock"
    service = Path(ctl.SERVICE_SOCKET)
    service.parent.mkdir()
    service.touch()                                  # the service is up
    assert control.default_socket_path() == service


def test_a_station_run_by_hand_without_a_runtime_directory(env: Path) -> None:
    import os
    expected = Path(ctl.SERVICE_SOCKET) if os.geteuid() == 0 else \
        Path(f"/tmp/intercom-{os.geteuid()}/control.sock")
    assert control.default_socket_path() == expected
