"""SIPp scenarios for what softphones will not do on demand.

SIPp plays the resident's phone, a PBX or a registrar, scripted message by
message; the station runs as ``intercom run`` and is driven by ``intercom ctl``.
A scenario passes (exit code 0) only if every message came as scripted,
including the checks on the station's headers and SDP inside it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from peers import SCENARIOS, LossyRelay, Sipp, Station, wait_for

pytestmark = pytest.mark.peers


@contextlib.contextmanager
def call_against(tmp_path: Path, scenario: str, sip: str = "", *extra: str,
                 session_expires: int = 0) -> Iterator[tuple[Sipp, Station]]:
    """SIPp as the phone on its own port; the station calls it directly by IP.

    ``{sipp}`` in ``sip`` becomes SIPp's address (for a proxy or registrar setting).
    """
    port = free_port()
    sipp = Sipp(tmp_path, scenario, port, None, *extra)
    station = None
    try:
        sip = sip.replace("{sipp}", f"127.0.0.1:{port}")
        station = Station(tmp_path, f"session_expires = {session_expires}\n{sip}",
                          [f"sip:resident@127.0.0.1:{port}"])
        yield sipp, station
    finally:
        if station is not None:
            station.stop()
        sipp.stop()


def test_hold_resume_update_and_info_digits_open_the_door(tmp_path: Path) -> None:
    with call_against(tmp_path, "phone_hold_update_info") as (sipp, station):
        station.press()
        assert sipp.wait(30) == 0, sipp.report()
        station.wait_event(5, event="door", action="opened")
        station.wait_event(5, event="call", state="ended")   # the last: the rest are in
        updates = [e for e in station.events() if e["event"] == "call" and e["state"] == "updated"]
        assert [u["reason"] for u in updates] == ["on hold", "talking", "talking"]
        assert station.keys() == [1, 2, 3, 4, 5]          # each key once
        station.assert_codes_secret("1234#")
    assert "Traceback" not in station.log_text()


def test_reliable_183_early_media_then_a_changed_answer(tmp_path: Path) -> None:
    with call_against(tmp_path, "pbx_100rel_early_media") as (sipp, station):
        station.press()
        assert sipp.wait(30) == 0, sipp.report()
        answered = station.wait_event(5, event="call", state="answered")
        assert answered["reason"] == "PCMA"          # the 200's answer, not the 183's PCMU
        station.wait_event(5, event="call", state="ended")
    log = station.log_text()
    assert "Traceback" not in log


def registration_events(station: Station) -> list[dict[str, Any]]:
    return [e for e in station.events() if e["event"] == "registration"]


def test_registrar_503_retry_after_then_423_min_expires(tmp_path: Path) -> None:
    port = free_port()
    sipp = Sipp(tmp_path, "registrar_423_503", port)
    try:
        station = Station(tmp_path, f'registrar = "sip:127.0.0.1:{port}"',
                          ["sip:resident@127.0.0.1"])
        try:
            assert sipp.wait(20) == 0, sipp.report()
            wait_for(lambda: station.state()["registration"]["state"] == "registered", 5,
                     "registered after 503 and 423")
            events = registration_events(station)
            assert [(e["state"], e["status"]) for e in events] == [("failed", 503),
                                                                   ("registered", 200)]
            assert events[0]["retry_in"] == 2.0
            assert events[1]["time"] - events[0]["time"] == pytest.approx(2.0, abs=0.5)
        finally:
            station.stop()
    finally:
        sipp.stop()


def test_failover_to_the_backup_registrar(tmp_path: Path) -> None:
    primary, backup = free_port(), free_port()
    first = Sipp(tmp_path, "registrar_unavailable", primary)
    second = Sipp(tmp_path, "registrar_ok", backup)
    try:
        station = Station(tmp_path, f'registrar = "sip:127.0.0.1:{primary}"\n'
                                    f'backup_registrar = "sip:127.0.0.1:{backup}"',
                          ["sip:resident@127.0.0.1"])
        try:
            assert first.wait(10) == 0, first.report()
            assert second.wait(10) == 0, second.report()
            wait_for(lambda: station.state()["registration"]["state"] == "registered", 5,
                     "registered with the backup")
            expected = [("failed", 503), ("registered", 200)]
            wait_for(lambda: [(e["state"], e["status"]) for e in registration_events(station)]
                     == expected, 5, f"registration events {expected}")
        finally:
            station.stop()
    finally:
        first.stop()
        second.stop()


def test_station_refreshes_the_session_timer_with_update(tmp_path: Path) -> None:
    with call_against(tmp_path, "phone_session_timer", session_expires=1800) as (sipp, station):
        station.press()
        assert sipp.wait(25) == 0, sipp.report()
        station.wait_event(5, event="call", state="ended")
        answered = station.wait_event(1, event="call", state="answered")
        ended = station.wait_event(1, event="call", state="ended")
        assert ended["time"] - answered["time"] == pytest.approx(10, abs=1.5)  # two 5 s refreshes


def test_407_from_the_outbound_proxy_is_answered_with_credentials(tmp_path: Path) -> None:
    with call_against(tmp_path, "proxy_407", 'proxy = "sip:{sipp}"\npassword = "doorpass"'
                      ) as (sipp, station):
        station.press()
        assert sipp.wait(20) == 0, sipp.report()
        station.wait_event(5, event="call", state="answered")
        station.wait_event(5, event="call", state="ended")


@pytest.mark.parametrize("strategy", ["sequential", "parallel"])
def test_busy_declined_and_unavailable_targets_move_on_and_are_not_rung_again(
        tmp_path: Path, strategy: str) -> None:
    """Three phones refuse (486, 603, 480). In sequence each refusal rings the next
    at once; in parallel all ring together. Two cycles are configured, yet no
    phone that refused is rung again, and the record says why nobody talked."""
    refusals = [("486", "Busy Here"), ("603", "Decline"), ("480", "Temporarily Unavailable")]
    phones, station = [], None
    try:
        for status, reason in refusals:
            port = free_port()
            # SIPp reads the status line when it loads the scenario: one copy each.
            scenario = tmp_path / f"phone_refuses_{status}.xml"
            scenario.write_text((SCENARIOS / "phone_refuses.xml").read_text()
                                .replace("STATUS REASON", f"{status} {reason}"))
            phones.append(Sipp(tmp_path, scenario, port))
        targets = [f"sip:resident@127.0.0.1:{p.port}" for p in phones]
        station = Station(tmp_path, "session_expires = 0", targets, ring_timeout=10,
                          call=f'strategy = "{strategy}"\ncycles = 2')
        station.press()
        for phone in phones:
            assert phone.wait(15) == 0, phone.report()
        record = station.wait_event(10, event="call_record")
        assert record["outcome"] == "declined" and record["tried"] == targets
        calls = [e for e in station.events() if e["event"] == "call"]
        failed = [(e["peer"], e["reason"]) for e in calls if e["state"] == "failed"]
        expected = [(t, f"{s} {r}") for t, (s, r) in zip(targets, refusals)]
        assert sorted(failed) == sorted(expected) and len(failed) == 3
        states = [e["state"] for e in calls]
        if strategy == "sequential":   # each rings only once the one before refused
            assert states == ["calling", "ringing", "failed"] * 3
        else:                          # all three placed before any refused
            assert states[:3] == ["calling"] * 3
    finally:
        if station is not None:
            station.stop()
        for phone in phones:
            phone.stop()


def test_nobody_answers_in_parallel_and_both_phones_get_cancel_at_the_ring_time(
        tmp_path: Path) -> None:
    """Two phones ring together and are never answered: at the ring time both get a
    CANCEL (each scenario checks it, answers 200 and 487, and gets the ACK), and
    the station gives up with "no answer"."""
    phones, station = [], None
    try:
        phones = [Sipp(tmp_path, "phone_rings_out", free_port()) for _ in range(2)]
        targets = [f"sip:resident@127.0.0.1:{p.port}" for p in phones]
        station = Station(tmp_path, "session_expires = 0", targets, ring_timeout=5,
                          call='strategy = "parallel"')
        station.press()
        for phone in phones:
            assert phone.wait(20) == 0, phone.report()
        record = station.wait_event(10, event="call_record")
        assert record["outcome"] == "no answer" and record["tried"] == targets

        def cancelled() -> list[dict[str, Any]]:
            # each leg's end follows its 487, which may come after the visit's record
            return [e for e in station.events() if e["event"] == "call"
                    and e["state"] == "cancelled"]
        wait_for(lambda: len(cancelled()) >= len(targets), 5, "both legs cancelled")
        assert sorted(e["peer"] for e in cancelled()) == sorted(targets)
        assert all(e["reason"] == "no answer within the ring time" for e in cancelled())
    finally:
        if station is not None:
            station.stop()
        for phone in phones:
            phone.stop()


def test_wrong_password_is_refused_by_the_proxy_and_the_call_fails(tmp_path: Path) -> None:
    with call_against(tmp_path, "proxy_407", 'proxy = "sip:{sipp}"\npassword = "wrong"'
                      ) as (sipp, station):
        station.press()
        assert sipp.wait(20) != 0                    # the scenario took its 403 branch
        failed = station.wait_event(5, event="call", state="failed")
        assert failed["reason"] == "403 Forbidden"


def test_a_200_ok_that_crosses_our_cancel_is_acked_and_ended_with_bye(tmp_path: Path) -> None:
    port = free_port()
    sipp = Sipp(tmp_path, "phone_cancel_race", port)
    station = None
    try:
        station = Station(tmp_path, "session_expires = 0", [f"sip:resident@127.0.0.1:{port}"],
                          ring_timeout=5)
        station.press()
        assert sipp.wait(20) == 0, sipp.report()
        station.wait_event(5, event="call", state="ended")
        assert station.state()["call"]["state"] == "idle"
    finally:
        if station is not None:
            station.stop()
        sipp.stop()


def test_lost_invite_and_lost_ack_are_sent_again(tmp_path: Path) -> None:
    port = free_port()
    relay = LossyRelay(port, {"INVITE": 1, "ACK": 1})
    sipp = Sipp(tmp_path, "phone_lost_invite", port, None, "-key", "relay_port", str(relay.port))
    station = None
    try:
        station = Station(tmp_path, "session_expires = 0\nt1 = 0.5",
                          [f"sip:resident@127.0.0.1:{relay.port}"])
        station.press()
        assert sipp.wait(20) == 0, sipp.report()
        station.wait_event(5, event="call", state="ended")
    finally:
        if station is not None:
            station.stop()
        sipp.stop()
        relay.stop()
    assert relay.dropped == ["INVITE", "ACK"]
    assert relay.forwarded.count("INVITE") == 1 and relay.forwarded.count("ACK") >= 1
