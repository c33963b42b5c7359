"""The station on the home's MQTT broker, with Home Assistant discovery.

Topics, under ``[mqtt] topic`` (``intercom/<station name>`` by default):

* ``availability``: ``online``, or ``offline`` when the station stops or its
  connection dies (the broker publishes it as the last will); retained.
* ``button/<name>``: ``{"event_type": "press"}`` at each press of that bell
  (a Home Assistant event entity per button); ``last_visit``: when, retained.
* ``relay``, ``door_contact`` (``ON``: open), ``tamper`` (``ON``: open):
  ``ON``/``OFF``, retained; ``door/state``: ``LOCKED``/``UNLOCKED``.
* ``registration``: the SIP registration's state, retained.
* ``event``: every event as ``intercom ctl events`` prints it (no door code
  is ever in one), not retained.
* ``door/set``: ``OPEN`` or ``UNLOCK`` pulses the relay, ``LOCK`` locks a
  held door; only with ``door_commands = true``, since whoever may publish
  there can open the door. Anything else there is refused and logged.

At each connection the discovery messages go to ``<discovery
prefix>/<component>/<node>/<object>/config`` (retained), then the current
states. paho-mqtt runs the connection on its own thread, reconnecting with
backoff while the broker is away; publishing never waits on the network,
so a broker that is down never delays a call or the door.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from intercom import __version__
from intercom.app.events import (AlarmCause, AlarmEvent, ButtonPressed, DoorContactEvent, Event,
                                 RegistrationEvent, RelayEvent)

log = logging.getLogger("intercom.mqtt")
QUEUED = 1000                 # messages held while the broker is away


def slug(text: str) -> str:
    """A name as a topic level and a Home Assistant object id."""
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "station"


def on_off(value: bool | None) -> str | None:
    return None if value is None else ("ON" if value else "OFF")


class MqttBridge:
    """Events and states out, door commands in. ``state`` gives the station's state
    (as ``intercom ctl state``); ``door`` carries out a door command on the loop."""

    def __init__(self, host: str, port: int, station: str, buttons: list[str],
                 state: Callable[[], Mapping[str, Any]], door: Callable[[str, str], None],
                 topic: str = "", discovery_prefix: str = "homeassistant",
                 username: str = "", password: str = "", tls: bool = False,
                 ca_file: str = "", door_commands: bool = False, keepalive: int = 60) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion
        self.node = slug(station)
        self.topic = topic or f"intercom/{self.node}"
        self.discovery_prefix = discovery_prefix
        self.station = station
        self.buttons = buttons
        self.state = state
        self.door = door
        self.door_commands = door_commands
        self.host, self.port, self.keepalive = host, port, keepalive
        self.loop = asyncio.get_running_loop()
        self._said: set[str] = set()  # troubles logged since the last good connection
        self._refused = False         # the broker answered the last attempt with a refusal
        client = self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                           client_id=f"intercom-{self.node}")
        client.will_set(f"{self.topic}/availability", "offline", qos=1, retain=True)
        if username:
            client.username_pw_set(username, password or None)
        if tls:
            client.tls_set(ca_certs=ca_file or None)
        client.reconnect_delay_set(1, 60)
        client.max_queued_messages_set(QUEUED)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message

    # ----- the connection (paho's thread) -----------------------------------------------
    def start(self) -> None:
        self.client.connect_async(self.host, self.port, self.keepalive)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self._refused = True
            self._warn(f"broker {self.host}:{self.port} refused the connection: {reason}")
            return
        log.info("MQTT: connected to %s:%d as %s", self.host, self.port, self.topic)
        self._said.clear()
        self._refused = False
        if self.door_commands:
            client.subscribe(f"{self.topic}/door/set", qos=1)
        self.loop.call_soon_threadsafe(self._announce)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._warn(f"cannot reach the broker {self.host}:{self.port}; trying again")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        if reason.is_failure and not self._refused:     # a refusal was said already
            self._warn(f"lost the broker {self.host}:{self.port} ({reason}); reconnecting")

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        payload = message.payload.decode("utf-8", "replace").strip().upper()
        self.loop.call_soon_threadsafe(self._door_message, payload)

    def _warn(self, text: str) -> None:
        if text not in self._said:                   # once per cause, not per retry
            log.warning("MQTT: %s", text)
            self._said.add(text)

    # ----- on the loop --------------------------------------------------------------
    def _door_message(self, payload: str) -> None:
        action = {"OPEN": "open", "UNLOCK": "open", "LOCK": "lock"}.get(payload)
        if action is None:
            log.warning("MQTT: door command %r refused; allowed: OPEN, UNLOCK, LOCK",
                        payload[:20])
            return
        try:
            self.door(action, "MQTT")
        except ValueError as exc:
            log.warning("MQTT: door command %s refused: %s", payload, exc)

    def _publish(self, sub: str, payload: str, retain: bool = False) -> None:
        self.client.publish(f"{self.topic}/{sub}", payload, qos=1, retain=retain)

    def _announce(self) -> None:
        """Discovery, availability and the states as they are (after each connect)."""
        for component, obj, config in self.discovery():
            self.client.publish(f"{self.discovery_prefix}/{component}/{self.node}/{obj}/config",
                                json.dumps(config), qos=1, retain=True)
        self._publish("availability", "online", retain=True)
        state = self.state()
        relay = bool(state.get("relay", {}).get("energised"))
        self._publish("relay", "ON" if relay else "OFF", retain=True)
        self._publish("door/state", "UNLOCKED" if relay else "LOCKED", retain=True)
        closed = state.get("door_closed")
        if closed is not None:
            self._publish("door_contact", "OFF" if closed else "ON", retain=True)
        tamper = on_off(state.get("tamper_open"))
        if tamper is not None:
            self._publish("tamper", tamper, retain=True)
        self._publish("registration", str(state.get("registration", {}).get("state", "none")),
                      retain=True)

    def discovery(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Home Assistant's discovery messages: (component, object id, config)."""
        device = {"identifiers": [f"intercom_{self.node}"], "name": self.station,
                  "manufacturer": "intercom", "model": "SIP door station",
                  "sw_version": __version__}
        avail = {"availability_topic": f"{self.topic}/availability", "device": device}

        def entity(obj: str, name: str, **config: Any) -> dict[str, Any]:
            return {"name": name, "unique_id": f"intercom_{self.node}_{obj}", **avail, **config}
        out = [("event", slug(button), entity(
            slug(button), f"Bell {button}", state_topic=f"{self.topic}/button/{button}",
            event_types=["press"], device_class="doorbell")) for button in self.buttons]
        if self.door_commands:
            out.append(("lock", "door", entity(
                "door", "Door", command_topic=f"{self.topic}/door/set",
                state_topic=f"{self.topic}/door/state", payload_lock="LOCK",
                payload_unlock="UNLOCK", payload_open="OPEN", state_locked="LOCKED",
                state_unlocked="UNLOCKED")))
        out += [
            ("binary_sensor", "relay", entity("relay", "Door relay",
                                              state_topic=f"{self.topic}/relay")),
            ("binary_sensor", "door_contact", entity(
                "door_contact", "Door", state_topic=f"{self.topic}/door_contact",
                device_class="door")),
            ("binary_sensor", "tamper", entity("tamper", "Tamper",
                                               state_topic=f"{self.topic}/tamper",
                                               device_class="tamper")),
            ("sensor", "registration", entity("registration", "SIP registration",
                                              state_topic=f"{self.topic}/registration")),
            ("sensor", "last_visit", entity("last_visit", "Last visit",
                                            state_topic=f"{self.topic}/last_visit",
                                            device_class="timestamp")),
        ]
        return out

    def offer(self, event: Event) -> None:
        """An event from the station (on the loop): its topics, then ``event``."""
        if isinstance(event, ButtonPressed):
            self._publish(f"button/{event.button}", json.dumps({"event_type": "press"}))
            self._publish("last_visit", time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                      time.gmtime(event.at)), retain=True)
        elif isinstance(event, RelayEvent):
            self._publish("relay", "ON" if event.energised else "OFF", retain=True)
            self._publish("door/state", "UNLOCKED" if event.energised else "LOCKED",
                          retain=True)
        elif isinstance(event, DoorContactEvent):
            self._publish("door_contact", "OFF" if event.closed else "ON", retain=True)
        elif isinstance(event, AlarmEvent) and event.cause is AlarmCause.TAMPER:
            self._publish("tamper", "ON" if event.active else "OFF", retain=True)
        elif isinstance(event, RegistrationEvent):
            self._publish("registration", str(event.state), retain=True)
        self._publish("event", json.dumps(event.to_json()))

    async def stop(self, grace: float = 1.0) -> None:
        """``offline`` to the broker (waiting up to ``grace`` for it), then disconnect."""
        if self.client.is_connected():
            info = self.client.publish(f"{self.topic}/availability", "offline", qos=1,
                                       retain=True)
            deadline = time.monotonic() + grace
            while not info.is_published() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)
