"""Buttons, LEDs, the door relay and the door contact as gpiozero devices.

Devices only ever see a pin factory: real pins on a Pi, or gpiozero's
MockFactory under the simulated board (which adds the circuits a test
bench would have: the relay pushes the simulated door open).
"""
from __future__ import annotations

import logging
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intercom.hal.errors import HalError
from intercom.hal.serialrelay import SerialRelay

if TYPE_CHECKING:
    from intercom.config import Config

log = logging.getLogger("intercom.hal")
# LED patterns besides on and off: (seconds on, seconds off).
BLINKS = {"slow": (1.0, 1.0), "blink": (0.25, 0.25), "fast": (0.08, 0.08),
          "flash": (0.08, 1.92)}
COLOUR_NAMES = {(1.0, 0.0, 0.0): "red", (0.0, 1.0, 0.0): "green", (0.0, 0.0, 1.0): "blue",
                (1.0, 0.5, 0.0): "orange", (1.0, 1.0, 1.0): "white"}


@dataclass(frozen=True)
class BoardProfile:
    name: str
    buttons: dict[str, int]
    leds: dict[str, int]
    relay_pin: int | None                         # None: a serial relay module
    relay_active_high: bool = True
    relay_serial: dict[str, Any] | None = None    # port, baudrate, channel, on, off
    door_contact_pin: int | None = None
    tamper_pin: int | None = None
    rgb_led: tuple[int, int, int] | None = None      # red, green, blue pins of a colour LED
    audio: dict[str, Any] = field(default_factory=dict)   # capture, playback, mixer
    description: str = ""
    simulation: dict[str, Any] = field(default_factory=dict)
    camera: str = ""             # the camera [camera] source = "auto" takes: picamera, simulated

    def __post_init__(self) -> None:
        if self.camera not in ("", "picamera", "simulated"):
            raise HalError(f"board profile {self.name!r}: [camera] source {self.camera!r} is "
                           "not picamera or simulated")
        used: dict[int, str] = {}
        pins = [(f"buttons.{k}", v) for k, v in self.buttons.items()] + \
            [(f"leds.{k}", v) for k, v in self.leds.items()]
        if self.relay_pin is not None:
            pins.append(("relay.pin", self.relay_pin))
        elif self.relay_serial is None:
            raise HalError(f"board profile {self.name!r}: [relay] needs a pin or a serial port")
        if self.door_contact_pin is not None:
            pins.append(("door_contact.pin", self.door_contact_pin))
        if self.tamper_pin is not None:
            pins.append(("tamper.pin", self.tamper_pin))
        if self.rgb_led is not None:
            pins += [(f"rgb_led.{c}", p) for c, p in zip(("red", "green", "blue"), self.rgb_led)]
        for name, pin in pins:
            if pin in used:
                raise HalError(f"board profile {self.name!r}: {name} uses GPIO{pin}, which "
                               f"{used[pin]} already uses")
            used[pin] = name

    @classmethod
    def load(cls, name_or_path: str) -> BoardProfile:
        data = _profile_data(name_or_path)
        try:
            return cls(name=str(data.get("name", name_or_path)),
                       buttons={str(k): int(v) for k, v in data["buttons"].items()},
                       leds={str(k): int(v) for k, v in data.get("leds", {}).items()},
                       relay_pin=int(data["relay"]["pin"]) if "pin" in data["relay"] else None,
                       relay_active_high=bool(data["relay"].get("active_high", True)),
                       relay_serial=_serial_relay(data["relay"]),
                       door_contact_pin=(int(data["door_contact"]["pin"])
                                         if "door_contact" in data else None),
                       tamper_pin=int(data["tamper"]["pin"]) if "tamper" in data else None,
                       rgb_led=(int(data["rgb_led"]["red"]), int(data["rgb_led"]["green"]),
                                int(data["rgb_led"]["blue"])) if "rgb_led" in data else None,
                       audio=_profile_audio(data.get("audio", {})),
                       description=str(data.get("description", "")),
                       simulation=dict(data.get("simulation", {})),
                       camera=str(data.get("camera", {}).get("source", "")))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise HalError(f"board profile {name_or_path!r}: missing or bad entry {exc}") from exc


def _profile_data(name_or_path: str, depth: int = 0) -> dict[str, Any]:
    """A profile's tables; ``base = "other"`` takes another profile's and changes
    what this one sets (a table at a time: [audio] here replaces the base's)."""
    path = Path(name_or_path)
    try:
        if path.suffix == ".toml" or "/" in name_or_path:
            data = tomllib.loads(path.read_text())
        else:
            text = resources.files("intercom.boards").joinpath(f"{name_or_path}.toml")
            data = tomllib.loads(text.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise HalError(f"board profile {name_or_path!r}: {exc}") from exc
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or depth > 4:
        raise HalError(f"board profile {name_or_path!r}: base must name another profile "
                       "(and bases cannot go round)")
    merged = _profile_data(base, depth + 1)
    merged.pop("name", None)
    merged.pop("description", None)
    merged.update(data)
    return merged


def _profile_audio(table: dict[str, Any]) -> dict[str, Any]:
    """A profile's sound card: ALSA capture and playback names, and mixer levels
    (control name -> percent) to set at start."""
    out: dict[str, Any] = {}
    for key in ("capture", "playback"):
        if key in table:
            out[key] = str(table[key])
    mixer = table.get("mixer", {})
    if not isinstance(mixer, dict) or not all(
            isinstance(v, int) and 0 <= v <= 100 for v in mixer.values()):
        raise ValueError("audio.mixer must map control names to percentages (0-100)")
    out["mixer"] = {str(k): int(v) for k, v in mixer.items()}
    unknown = set(table) - {"capture", "playback", "mixer"}
    if unknown:
        raise ValueError(f"audio: unknown keys {sorted(unknown)}; allowed: capture, playback, "
                         "mixer")
    return out


def _serial_relay(table: dict[str, Any]) -> dict[str, Any] | None:
    """The [relay] settings of a serial relay module, checked; None for a GPIO relay."""
    if "serial" not in table:
        return None
    out: dict[str, Any] = {"port": str(table["serial"]),
                           "baudrate": int(table.get("baudrate", 9600)),
                           "channel": int(table.get("channel", 1))}
    if not 1 <= out["channel"] <= 8:
        raise ValueError("relay.channel must be 1 to 8")
    for key in ("on", "off"):
        if key in table:
            out[key] = bytes.fromhex(str(table[key]))     # ValueError names the bad hex
    return out


class Board:
    """The station's I/O. Callbacks may run on gpiozero's threads."""

    def __init__(self, profile: BoardProfile, pin_factory: Any = None) -> None:
        # Inputs are plain digital inputs: gpiozero's Button adds a thread per button
        # that wakes ten times a second to look for a long press, which no input here
        # has a use for.
        from gpiozero import LED, RGBLED, DigitalInputDevice, DigitalOutputDevice
        from gpiozero.exc import GPIOZeroError
        self.profile = profile
        self.factory = pin_factory
        self.on_button: Callable[[str], None] = lambda name: None
        self.on_door: Callable[[bool], None] = lambda closed: None
        self.on_tamper: Callable[[bool], None] = lambda opened: None
        self._led_modes: dict[str, str] = {}
        try:
            self.buttons = {name: DigitalInputDevice(pin, pull_up=True, bounce_time=0.03,
                                                     pin_factory=pin_factory)
                            for name, pin in profile.buttons.items()}
            self.leds = {name: LED(pin, pin_factory=pin_factory)
                         for name, pin in profile.leds.items()}
            self.relay: Any = (
                SerialRelay(**profile.relay_serial) if profile.relay_serial is not None
                else DigitalOutputDevice(profile.relay_pin, active_high=profile.relay_active_high,
                                         initial_value=False, pin_factory=pin_factory))
            self.door_contact = (DigitalInputDevice(profile.door_contact_pin, pull_up=True,
                                                    pin_factory=pin_factory)
                                 if profile.door_contact_pin is not None else None)
            self.rgb = (RGBLED(*profile.rgb_led, pin_factory=pin_factory)
                        if profile.rgb_led is not None else None)
            # The tamper switch is closed while the case is shut.
            self.tamper = (DigitalInputDevice(profile.tamper_pin, pull_up=True,
                                              pin_factory=pin_factory)
                           if profile.tamper_pin is not None else None)
        except GPIOZeroError as exc:
            raise HalError(f"board {profile.name!r}: {exc}") from exc
        for name, button in self.buttons.items():
            button.when_activated = lambda _dev, n=name: self.on_button(n)
        if self.door_contact is not None:
            self.door_contact.when_activated = lambda _dev: self.on_door(True)
            self.door_contact.when_deactivated = lambda _dev: self.on_door(False)
        if self.tamper is not None:
            self.tamper.when_activated = lambda _dev: self.on_tamper(False)
            self.tamper.when_deactivated = lambda _dev: self.on_tamper(True)
        for name in self.leds:
            self._led_modes[name] = "off"

    def set_led(self, name: str, mode: str) -> None:
        """``mode`` is "on", "off" or one of BLINKS; LEDs the board lacks are skipped."""
        led = self.leds.get(name)
        if led is None or self._led_modes.get(name) == mode:
            return
        self._led_modes[name] = mode
        if mode == "on":
            led.on()
        elif mode in BLINKS:
            on, off = BLINKS[mode]
            led.blink(on_time=on, off_time=off)
        else:
            led.off()

    def set_rgb(self, colour: tuple[float, float, float], mode: str) -> None:
        """The colour LED, if the board has one: ``colour`` on, or blinking in it."""
        shown = f"{COLOUR_NAMES.get(colour, str(colour))} {mode}"
        if self.rgb is None or self._led_modes.get("rgb") == shown:
            return
        self._led_modes["rgb"] = shown
        if mode in BLINKS:
            on, off = BLINKS[mode]
            self.rgb.blink(on_time=on, off_time=off, on_color=colour, off_color=(0, 0, 0))
        else:
            self.rgb.color = colour if mode == "on" else (0, 0, 0)

    def set_relay(self, energised: bool) -> None:
        if energised:
            self.relay.on()
        else:
            self.relay.off()

    @property
    def relay_energised(self) -> bool:
        return bool(self.relay.value)

    @property
    def door_closed(self) -> bool | None:
        return None if self.door_contact is None else bool(self.door_contact.is_active)

    @property
    def tamper_open(self) -> bool | None:
        return None if self.tamper is None else not self.tamper.is_active

    def led_modes(self) -> dict[str, str]:
        return dict(self._led_modes)

    def press(self, name: str, hold: float = 0.1) -> None:
        raise HalError("buttons can only be pressed remotely on the simulated board")

    def set_input(self, name: str, active: bool) -> None:
        raise HalError("inputs can only be set remotely on the simulated board")

    def close(self) -> None:
        for dev in [*self.buttons.values(), *self.leds.values(), self.relay, self.door_contact,
                    self.tamper, self.rgb]:
            if dev is not None:
                dev.close()


class SimulatedBoard(Board):
    """The board on gpiozero's MockFactory, with a simulated door on the relay."""

    def __init__(self, profile: BoardProfile) -> None:
        from gpiozero.pins.mock import MockFactory, MockPWMPin
        factory = MockFactory(pin_class=MockPWMPin)     # PWM pins, for the colour LED
        super().__init__(profile, factory)
        if profile.door_contact_pin is not None:
            factory.pin(profile.door_contact_pin).drive_low()   # door shut: contact closed
        if profile.tamper_pin is not None:
            factory.pin(profile.tamper_pin).drive_low()         # case shut: switch closed
        self._closes_after = float(profile.simulation.get("door_closes_after", 1.0))
        self._close_timer: threading.Timer | None = None

    def press(self, name: str, hold: float = 0.1) -> None:
        button = self.buttons.get(name)
        if button is None:
            raise HalError(f"no button {name!r}; this board has {', '.join(self.buttons)}")
        pin = self.factory.pin(self.profile.buttons[name])
        pin.drive_low()
        time.sleep(hold)
        pin.drive_high()

    def set_input(self, name: str, active: bool) -> None:
        """Drive a simulated input: "door" (active: pushed open) or "tamper" (active:
        the case opened), as a person at the door would."""
        pins = {"door": self.profile.door_contact_pin, "tamper": self.profile.tamper_pin}
        if pins.get(name) is None:
            have = [n for n, p in pins.items() if p is not None]
            raise HalError(f"no input {name!r}; this board has {', '.join(have) or 'none'}")
        pin = self.factory.pin(pins[name])
        if active:
            pin.drive_high()                    # the contact or switch opens
        else:
            pin.drive_low()

    def set_relay(self, energised: bool) -> None:
        super().set_relay(energised)
        if self.profile.door_contact_pin is None:
            return
        contact = self.factory.pin(self.profile.door_contact_pin)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if energised:
            contact.drive_high()                              # the strike lets the door open
        else:
            self._close_timer = threading.Timer(self._closes_after, contact.drive_low)
            self._close_timer.daemon = True
            self._close_timer.start()

    def relay_history(self) -> list[tuple[float, bool]]:
        """(seconds since the pin was set up, energised) for each change of the relay
        pin, from MockPin's record (which stores the time since the previous change)."""
        assert self.profile.relay_pin is not None, "a GPIO relay"
        pin = self.factory.pin(self.profile.relay_pin)
        active = self.profile.relay_active_high
        history: list[tuple[float, bool]] = []
        elapsed = 0.0
        for state in pin.states:
            elapsed += state.timestamp
            history.append((elapsed, bool(state.state) == active))
        return history

    def close(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
        super().close()


def profile_for(board_type: str, profile_name: str) -> BoardProfile:
    """The configured profile, or the board type's default one."""
    return BoardProfile.load(profile_name or ("simulator" if board_type == "simulated"
                                              else "generic-pi"))


def open_board(board_type: str, profile_name: str) -> Board:
    profile = profile_for(board_type, profile_name)
    if board_type == "simulated":
        return SimulatedBoard(profile)
    return Board(profile)


def with_board_audio(cfg: Config) -> Config:
    """The config with the board profile's sound card where [audio] leaves it open:
    capture and playback (else ALSA's default), and mixer levels under the config's."""
    profile = profile_for(cfg.board.type, cfg.board.profile)
    a = cfg.audio
    audio = replace(a, capture=a.capture or profile.audio.get("capture", "default"),
                    playback=a.playback or profile.audio.get("playback", "default"),
                    mixer={**profile.audio.get("mixer", {}), **a.mixer})
    return replace(cfg, audio=audio)
