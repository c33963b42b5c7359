"""The HAL: gpiozero devices on the simulated board (MockFactory underneath)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from intercom.hal.board import BoardProfile, SimulatedBoard, open_board
from intercom.hal.errors import HalError


@pytest.fixture
def board() -> Iterator[SimulatedBoard]:
    b = open_board("simulated", "")
    assert isinstance(b, SimulatedBoard)
    yield b
    b.close()


def test_profiles_ship_with_the_package() -> None:
    pi = BoardProfile.load("generic-pi")
    sim = BoardProfile.load("simulator")
    assert pi.buttons["bell"] == sim.buttons["bell"] == 17
    assert pi.relay_pin == 23 and pi.door_contact_pin == 24


def test_press_fires_the_callback_with_the_button_name(board: SimulatedBoard) -> None:
    pressed: list[str] = []
    board.on_button = pressed.append
    board.press("bell")
    board.press("bell2")
    assert pressed == ["bell", "bell2"]


def test_a_board_at_rest_runs_no_threads_of_its_own() -> None:
    """Inputs are edge-driven: nothing wakes up while nobody presses anything (a
    gpiozero Button would poll ten times a second per input for long presses)."""
    import threading
    before = {t.ident for t in threading.enumerate()}
    b = open_board("simulated", "")
    try:
        assert len(b.buttons) >= 2 and b.door_contact is not None and b.tamper is not None
        extra = [t.name for t in threading.enumerate() if t.ident not in before]
        assert extra == []
        pressed: list[str] = []
        b.on_button = pressed.append
        b.press("bell")
        assert pressed == ["bell"]
    finally:
        b.close()


def test_pressing_an_unknown_button_names_the_ones_there_are(board: SimulatedBoard) -> None:
    with pytest.raises(HalError, match="no button 'gate'; this board has bell, bell2"):
        board.press("gate")


def test_relay_opens_the_simulated_door_which_closes_after_release(board: SimulatedBoard) -> None:
    changes: list[bool] = []
    board.on_door = changes.append
    assert board.door_closed is True and not board.relay_energised
    board.set_relay(True)
    assert board.relay_energised and board.door_closed is False
    board.set_relay(False)
    deadline = time.monotonic() + 3
    while board.door_closed is False and time.monotonic() < deadline:
        time.sleep(0.02)
    assert changes == [False, True]
    history = board.relay_history()
    assert [state for _, state in history] == [False, True, False]


def test_leds_follow_their_mode(board: SimulatedBoard) -> None:
    board.set_led("call", "on")
    assert board.leds["call"].is_lit
    board.set_led("call", "blink")
    assert board.led_modes()["call"] == "blink"
    board.set_led("call", "off")
    assert not board.leds["call"].is_lit
    board.set_led("absent", "on")                   # a board without that LED: no error


def test_relay_active_low_profile(tmp_path: Path) -> None:
    profile = tmp_path / "low.toml"
    profile.write_text("[buttons]\nbell = 17\n[relay]\npin = 23\nactive_high = false\n")
    board = open_board("simulated", str(profile))
    pin = board.factory.pin(23)
    assert pin.state == 1                           # idle: the line is high
    board.set_relay(True)
    assert pin.state == 0 and board.relay_energised
    board.close()


@pytest.mark.parametrize("text", ["[buttons]\nbell = 17\n", "buttons = 3\n[relay]\npin = 1\n",
                                  "[buttons\n"])
def test_bad_profiles_are_reported(tmp_path: Path, text: str) -> None:
    profile = tmp_path / "bad.toml"
    profile.write_text(text)
    with pytest.raises(HalError, match="board profile"):
        BoardProfile.load(str(profile))


def test_unknown_profile_name() -> None:
    with pytest.raises(HalError, match="nonesuch"):
        BoardProfile.load("nonesuch")


def test_real_gpio_without_hardware_is_a_clear_error() -> None:
    # This machine has no GPIO: gpiozero finds no pin factory, and we say so.
    with pytest.raises(HalError):
        open_board("gpio", "generic-pi")


def test_a_pin_used_twice_is_refused_naming_both_uses(tmp_path: Path) -> None:
    path = tmp_path / "twice.toml"
    path.write_text("[buttons]\nbell = 17\n[leds]\nstatus = 22\n[relay]\npin = 23\n"
                    "[tamper]\npin = 17\n")
    with pytest.raises(HalError, match="tamper.pin uses GPIO17, which buttons.bell already "
                                       "uses"):
        BoardProfile.load(str(path))


def test_the_tamper_switch_and_the_door_contact_can_be_driven(board: SimulatedBoard) -> None:
    seen: list[tuple[str, bool]] = []
    board.on_tamper = lambda opened: seen.append(("tamper", opened))
    board.on_door = lambda closed: seen.append(("door closed", closed))
    assert board.tamper_open is False and board.door_closed is True
    board.set_input("tamper", True)
    board.set_input("door", True)
    assert board.tamper_open is True and board.door_closed is False
    board.set_input("tamper", False)
    deadline = time.monotonic() + 2
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [("tamper", True), ("door closed", False), ("tamper", False)]
    with pytest.raises(HalError, match="no input 'window'; this board has door, tamper"):
        board.set_input("window", True)


def test_blink_patterns_and_the_colour_led_drive_their_pins(board: SimulatedBoard) -> None:
    pin = board.factory.pin(board.profile.leds["status"])
    board.set_led("status", "fast")                      # 80 ms on, 80 ms off
    time.sleep(0.6)
    changes = len(pin.states)
    assert changes >= 6
    board.set_led("status", "off")
    assert board.led_modes()["status"] == "off"
    assert board.rgb is not None
    board.set_rgb((1.0, 0.0, 0.0), "on")
    assert board.rgb.value == (1.0, 0.0, 0.0)
    board.set_rgb((0.0, 0.0, 1.0), "blink")
    time.sleep(0.6)
    blue = board.factory.pin(board.profile.rgb_led[2])   # type: ignore[index]
    assert len(blue.states) >= 3                          # it blinks, in blue only
    assert board.factory.pin(board.profile.rgb_led[1]).state == 0  # type: ignore[index]


PROFILES = ["generic-pi", "simulator", "usb-soundcard", "pi3", "pi4", "pi5", "zero2w",
            "respeaker-2mic"]


@pytest.mark.parametrize("name", PROFILES)
def test_every_shipped_profile_loads_and_uses_each_pin_once(name: str) -> None:
    profile = BoardProfile.load(name)          # __post_init__ refuses a pin used twice
    assert profile.name == name and "bell" in profile.buttons
    assert profile.relay_pin is not None
    assert set(profile.audio) <= {"capture", "playback", "mixer"}


def test_pi_profiles_take_the_generic_wiring_and_a_usb_card() -> None:
    generic = BoardProfile.load("generic-pi")
    for name in ("pi3", "pi4", "pi5", "zero2w"):
        p = BoardProfile.load(name)
        assert (p.buttons, p.leds, p.relay_pin, p.door_contact_pin) == \
            (generic.buttons, generic.leds, generic.relay_pin, generic.door_contact_pin)
        assert p.audio["capture"] == "plughw:CARD=Device,DEV=0" and p.description


def test_the_respeaker_profile_keeps_off_the_hats_own_pins() -> None:
    p = BoardProfile.load("respeaker-2mic")
    hat = {2, 3, 10, 11, 18, 19, 20, 21}            # I2C, SPI (its LEDs), I2S
    used = {*p.buttons.values(), *p.leds.values(), p.relay_pin, p.door_contact_pin}
    assert not used & hat and p.buttons["bell"] == 17
    assert "seeed2micvoicec" in p.audio["playback"]


def test_the_config_fills_in_the_profiles_sound_card_and_can_overrule_it() -> None:
    from intercom.config import validate
    from intercom.hal.board import with_board_audio
    cfg = validate({"call": {"targets": ["sip:a@b"]}, "board": {"profile": "pi4"},
                    "audio": {"mixer": {"Mic": 40}}})
    a = with_board_audio(cfg).audio
    assert a.capture == a.playback == "plughw:CARD=Device,DEV=0"
    assert a.mixer == {"Speaker": 85, "Mic": 40}             # the config's level wins
    own = validate({"call": {"targets": ["sip:a@b"]}, "audio": {"capture": "hw:2,0"}})
    a = with_board_audio(own).audio
    assert (a.capture, a.playback) == ("hw:2,0", "default")   # simulator: no card named


def test_a_profile_with_a_base_that_goes_round_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(f'base = "{b}"\n')
    b.write_text(f'base = "{a}"\n')
    with pytest.raises(HalError, match="bases cannot go round"):
        BoardProfile.load(str(a))


def test_mixer_levels_on_a_card_without_those_controls_are_reported() -> None:
    from intercom.media.devices import set_mixer
    errors = set_mixer("plughw:CARD=NoSuchCard,DEV=0", {"Speaker": 50})
    assert len(errors) == 1 and "mixer control 'Speaker' on hw:CARD=NoSuchCard" in errors[0]
