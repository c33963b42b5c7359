"""MQTT with Home Assistant discovery, against a real Mosquitto broker.

The station runs as `intercom run` (simulated board); the test watches the
broker with its own paho client, as Home Assistant would: the discovery
messages and states (retained), the bell, the door worked from MQTT (and
refused when not allowed or not understood), availability with the last
will when the station dies, a broker that comes up late, a broker that
refuses the station's password, and TLS checked against the broker's CA.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import free_port
from peers import Mosquitto, Station, intercom, wait_for

pytestmark = pytest.mark.peers
TOPIC = "intercom/front_door"            # the station is called "Front door"
NOWHERE = ["sip:resident@127.0.0.1:9"]


class Watcher:
    """A paho client subscribed to everything, keeping (topic, payload, retained)."""

    def __init__(self, port: int, user: str = "door", password: str = "pw",
                 ca_file: str = "", name: str = "watcher") -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion
        self.messages: list[tuple[str, str, bool]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{port}")
        self.client.username_pw_set(user, password)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file)
        self.client.on_connect = lambda c, *a: c.subscribe("#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))

    def payloads(self, topic: str) -> list[str]:
        with self.lock:
            return [p for t, p, _ in self.messages if t == topic]

    def wait(self, topic: str, payload: str | None = None, timeout: float = 10.0,
             after: int = 0) -> str:
        """The newest message on ``topic`` (equal to ``payload``, if given) among those
        after the first ``after`` ones there."""
        def seen() -> str | None:
            return next((p for p in reversed(self.payloads(topic)[after:])
                         if payload is None or p == payload), None)
        found: str = wait_for(seen, timeout, f"MQTT {topic} {payload or ''}")
        return found

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_section(port: int, door_commands: bool = True, password: str = "pw",
                 more: str = "") -> str:
    return (f'[mqtt]\nbroker = "127.0.0.1:{port}"\nusername = "door"\npassword = "{password}"\n'
            f"door_commands = {str(door_commands).lower()}\n{more}")


@contextlib.contextmanager
def on_a_broker(tmp_path: Path, tls: tuple[Path, Path] | None = None, pulse: float = 1.5,
                **section: Any) -> Iterator[tuple[Watcher, Station]]:
    """A broker, a watcher on it, and a station on it that has said it is online."""
    port = free_port()
    broker = Mosquitto(tmp_path, port, tls=tls)
    watcher = Watcher(port, ca_file=str(tls[0]) if tls else "")
    station = None
    try:
        station = Station(tmp_path, "", NOWHERE, pulse=pulse, log_level="info",
                          extra=mqtt_section(port, **section))
        watcher.wait(f"{TOPIC}/availability", "online")
        yield watcher, station
    finally:
        if station is not None:
            station.stop()
        watcher.stop()
        broker.stop()


def test_home_assistant_sees_the_station_its_bell_and_works_its_door(tmp_path: Path) -> None:
    port = free_port()
    broker = Mosquitto(tmp_path, port)
    watcher = Watcher(port)
    station = None
    try:
        station = Station(tmp_path, "", NOWHERE, pulse=0.5, log_level="info",
                          extra=mqtt_section(port))
        watcher.wait(f"{TOPIC}/availability", "online")
        # Home Assistant started later: it finds what is retained
        late = Watcher(port, name="late")
        late.wait(f"{TOPIC}/registration")
        late.stop()
        retained = {t: p for t, p, r in late.messages if r}
        assert retained[f"{TOPIC}/availability"] == "online"
        assert retained[f"{TOPIC}/relay"] == "OFF" and retained[f"{TOPIC}/door_contact"] == "OFF"
        configs = {t: json.loads(p) for t, p in retained.items() if t.startswith("homeassistant/")}
        node = "homeassistant/{}/front_door/{}/config"
        for component, obj in [("event", "bell"), ("event", "bell2"), ("lock", "door"),
                               ("binary_sensor", "relay"), ("binary_sensor", "door_contact"),
                               ("binary_sensor", "tamper"), ("sensor", "registration"),
                               ("sensor", "last_visit")]:
            config = configs[node.format(component, obj)]
            assert config["availability_topic"] == f"{TOPIC}/availability"
            assert config["unique_id"] == f"intercom_front_door_{obj}"
            assert config["device"]["name"] == "Front door"
        assert configs[node.format("lock", "door")]["command_topic"] == f"{TOPIC}/door/set"
        assert watcher.wait(f"{TOPIC}/relay") == "OFF"
        assert watcher.wait(f"{TOPIC}/door/state") == "LOCKED"
        assert watcher.wait(f"{TOPIC}/registration") == "none"      # no registrar here

        station.press()
        assert json.loads(watcher.wait(f"{TOPIC}/button/bell")) == {"event_type": "press"}
        visit = watcher.wait(f"{TOPIC}/last_visit")
        assert time.strptime(visit, "%Y-%m-%dT%H:%M:%S+00:00")
        events = [json.loads(p)["event"] for p in watcher.payloads(f"{TOPIC}/event")]
        assert "button" in events
        station.wait_event(10, event="call_record")          # nobody at port 9

        relay, door = (len(watcher.payloads(f"{TOPIC}/{t}")) for t in ("relay", "door/state"))
        watcher.publish(f"{TOPIC}/door/set", "OPEN")
        station.wait_event(5, event="door", action="opened", caller="MQTT")
        watcher.wait(f"{TOPIC}/relay", "OFF", timeout=5, after=relay)   # the pulse ends
        assert watcher.payloads(f"{TOPIC}/relay")[relay:] == ["ON", "OFF"]
        watcher.wait(f"{TOPIC}/door/state", "LOCKED", after=door)
        assert watcher.payloads(f"{TOPIC}/door/state")[door:] == ["UNLOCKED", "LOCKED"]

        relay_messages = len(watcher.payloads(f"{TOPIC}/relay"))
        watcher.publish(f"{TOPIC}/door/set", "KICK")
        wait_for(lambda: "door command 'KICK' refused" in station.log_text(), 5,
                 "the refusal in the log")
        assert len(watcher.payloads(f"{TOPIC}/relay")) == relay_messages
        assert not station.state()["relay"]["energised"]
    finally:
        if station is not None:
            station.stop()
    try:
        assert watcher.wait(f"{TOPIC}/availability", "offline") == "offline"
        assert watcher.messages[-1][0] != f"{TOPIC}/availability" or \
            watcher.messages[-1][1] == "offline"
        log = station.log_text()
        assert "Traceback" not in log and '"pw"' not in log
    finally:
        watcher.stop()
        broker.stop()


def test_a_station_that_dies_is_offline_by_its_last_will(tmp_path: Path) -> None:
    with on_a_broker(tmp_path) as (watcher, station):
        station.proc.kill()                      # no goodbye: the broker speaks for it
        station.proc.wait(10)
        watcher.wait(f"{TOPIC}/availability", "offline", timeout=10)


def test_door_commands_do_nothing_unless_allowed(tmp_path: Path) -> None:
    with on_a_broker(tmp_path, door_commands=False) as (watcher, station):
        assert not any(t.startswith("homeassistant/lock/") for t, _, _ in watcher.messages)
        watcher.publish(f"{TOPIC}/door/set", "OPEN")
        time.sleep(1.0)
        assert watcher.payloads(f"{TOPIC}/relay") == ["OFF"]
        assert not any(e.get("event") == "door" for e in station.events())


def test_a_broker_that_comes_up_late_is_joined_and_the_bell_works_meanwhile(
        tmp_path: Path) -> None:
    port = free_port()
    station = Station(tmp_path, "", NOWHERE, log_level="info", extra=mqtt_section(port))
    broker = watcher = None
    try:
        station.press()                          # the broker is down: the bell still rings
        station.wait_event(5, event="call", state="calling")
        station.wait_event(10, event="call_record")
        time.sleep(1.0)
        broker = Mosquitto(tmp_path, port)
        watcher = Watcher(port)
        watcher.wait(f"{TOPIC}/availability", "online", timeout=70)   # paho's backoff
        assert watcher.wait(f"{TOPIC}/relay") == "OFF"
        log = station.log_text()
        assert log.count(f"MQTT: cannot reach the broker 127.0.0.1:{port}") == 1, log
        assert "MQTT: connected" in log
    finally:
        station.stop()
        if watcher is not None:
            watcher.stop()
        if broker is not None:
            broker.stop()


def test_a_broker_that_refuses_the_password_is_said_once_and_the_station_goes_on(
        tmp_path: Path) -> None:
    port = free_port()
    broker = Mosquitto(tmp_path, port)
    station = None
    try:
        station = Station(tmp_path, "", NOWHERE, log_level="info",
                          extra=mqtt_section(port, password="wrong-secret"))
        wait_for(lambda: "refused the connection" in station.log_text(), 10,
                 "the refusal in the log")
        time.sleep(3.0)                           # paho tries again meanwhile
        log = station.log_text()
        assert log.count("refused the connection") == 1, log
        assert "wrong-secret" not in log
        station.press()
        station.wait_event(5, event="call", state="calling")
    finally:
        if station is not None:
            station.stop()
        broker.stop()


def test_tls_to_the_broker_is_checked_against_its_ca(tmp_path: Path) -> None:
    cert, key = tmp_path / "broker.pem", tmp_path / "broker.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    with on_a_broker(tmp_path, tls=(cert, key), more=f'tls = true\nca_file = "{cert}"\n') \
            as (watcher, station):
        assert "MQTT: connected" in station.log_text()
