"""Config validation: defaults, and errors that name the key and what is allowed."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from intercom.config import (SCHEMA, SECTIONS, ButtonCall, ConfigError, load, reference,
                             validate)

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = {"call": {"targets": ["sip:resident@192.0.2.1"]}}


def test_minimal_config_gets_every_default() -> None:
    cfg = validate(MINIMAL)
    assert cfg.sip.port == 5060 and cfg.door.codes == ()
    assert cfg.audio.device == "simulated" and cfg.board.type == "simulated"
    # Every key of the schema is a field of its section, with the rule's default.
    for section, rules in SCHEMA.items():
        values = getattr(cfg, section)
        assert isinstance(values, SECTIONS[section])
        for key, rule in rules.items():
            if not rule.required:
                want = tuple(rule.default) if isinstance(rule.default, list) else rule.default
                assert getattr(values, key) == want, f"{section}.{key}"


def test_the_checked_config_is_typed_and_cannot_be_changed_by_accident() -> None:
    cfg = validate({"call": {"targets": ["sip:a@b"], "ring_time": 20,
                             "button_targets": {"bell2": ["sip:c@d"],
                                                "bell3": {"targets": ["sip:e@f"], "cycles": 2}}},
                    "door": {"caller_codes": {"sip:c@d": ["42#"]}},
                    "audio": {"mixer": {"Speaker": 80}}})
    assert isinstance(cfg.call.ring_time, float) and cfg.call.ring_time == 20.0
    assert cfg.call.targets == ("sip:a@b",)
    assert cfg.call.button_targets == {"bell2": ButtonCall(("sip:c@d",)),
                                       "bell3": ButtonCall(("sip:e@f",), cycles=2)}
    assert cfg.door.caller_codes == {"sip:c@d": ("42#",)}
    assert cfg.audio.mixer == {"Speaker": 80}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.door.codes = ("1#",)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        cfg.door.pulse_secs  # type: ignore[attr-defined]  # noqa: B018


def test_the_config_reference_in_docs_is_made_from_the_schema() -> None:
    """docs/config.md is generated; when a key, default or range changes, regenerate
    it with `python -m intercom.config > docs/config.md`."""
    text = (ROOT / "docs" / "config.md").read_text()
    assert text == reference(), "docs/config.md is stale: python -m intercom.config > docs/config.md"
    for section, rules in SCHEMA.items():
        assert f"## [{section}]" in text
        for key in rules:
            assert f"| `{key}` |" in text, f"{section}.{key} missing from docs/config.md"


def test_every_example_in_the_reference_is_a_valid_setting() -> None:
    """The reference's example for each key, put into a config, passes the checks
    (except the file paths, which need the file), with the one other key it needs."""
    needs = {("notify", "email_to"): {"smtp_server": "mail.example.org"}}
    for section, rules in SCHEMA.items():
        for key, rule in rules.items():
            example = rule.example if rule.example is not None else rule.default
            if rule.check is not None and rule.check.__name__ == "optional_file":
                continue
            raw: dict[str, dict[str, Any]] = {"call": {"targets": ["sip:a@b"]}}
            raw.setdefault(section, {}).update(needs.get((section, key), {}))
            raw[section][key] = example
            try:
                validate(raw)
            except ConfigError as exc:
                pytest.fail(f"the example for {section}.{key} is refused: {exc}")


@pytest.mark.parametrize("raw,message", [
    ({**MINIMAL, "sip": {"prot": 5060}}, "sip.prot: unknown key; allowed in [sip]: user, domain"),
    ({**MINIMAL, "sipp": {}}, "[sipp]: unknown section; allowed: station, sip"),
    ({**MINIMAL, "sip": {"port": "5060"}}, "sip.port: '5060' is not an integer from 1 to 65535"),
    ({**MINIMAL, "sip": {"port": 70000}}, "sip.port: 70000 is outside the allowed range 1..65535"),
    ({**MINIMAL, "sip": {"port": True}}, "sip.port: True is not an integer from 1 to 65535"),
    ({}, "call.targets: required"),
    ({"call": {"targets": []}}, "call.targets: needs at least one SIP URI"),
    ({"call": {"targets": ["tel:+4912345"]}}, "call.targets[0]: 'tel:+4912345' must be a sip:"),
    ({"call": {"targets": ["resident"]}}, "call.targets[0]: 'resident' is not a SIP URI"),
    ({**MINIMAL, "door": {"codes": ["12a4"]}}, "door.codes[0]: '12a4' must be 1-16 DTMF digits"),
    ({**MINIMAL, "door": {"pulse_seconds": 0}}, "door.pulse_seconds: 0 is outside"),
    ({**MINIMAL, "audio": {"device": "pulse"}}, "audio.device: 'pulse' is not allowed; use one of"),
    ({**MINIMAL, "sip": {"transport": "sctp"}},
     "sip.transport: 'sctp' is not allowed; use one of 'auto', 'udp', 'tcp', 'tls'"),
    ({**MINIMAL, "sip": {"tls_ca_file": "/nonexistent/ca.pem"}},
     "sip.tls_ca_file: '/nonexistent/ca.pem' is not a readable file"),
    ({**MINIMAL, "sip": {"dns_servers": ["192.0.2.53:99999"]}},
     "sip.dns_servers[0]: '192.0.2.53:99999' is not host[:port]"),
    ({**MINIMAL, "sip": {"stun_server": "stun example.org"}},
     "sip.stun_server: 'stun example.org' is not host[:port]"),
    ({**MINIMAL, "sip": {"keepalive": "ping"}}, "sip.keepalive: 'ping' is not allowed"),
    ({**MINIMAL, "audio": {"rate": 22050}}, "audio.rate: 22050 is not allowed"),
    ({**MINIMAL, "audio": {"codecs": ["speex"]}},
     "audio.codecs: ['speex']; allowed codecs: opus, G722, PCMU, PCMA"),
    ({**MINIMAL, "sip": {"registrar": "pbx.local"}}, "sip.registrar: 'pbx.local' is not a SIP URI"),
    ({**MINIMAL, "media": {"rtp_port_min": 20000, "rtp_port_max": 20001}},
     "media.rtp_port_max: must be at least rtp_port_min + 2"),
    ({**MINIMAL, "call": {"targets": ["sip:a@b"], "button_targets": {"bell2": ["flat2"]}}},
     "call.button_targets.bell2[0]: 'flat2' is not a SIP URI"),
    ({**MINIMAL, "door": {"lockout_seconds": 600, "lockout_max_seconds": 60}},
     "door.lockout_max_seconds: must be at least lockout_seconds"),
    ({**MINIMAL, "media": {"jitter_min_ms": 300, "jitter_max_ms": 320}},
     "media.jitter_max_ms: must be at least jitter_min_ms + 40 (two packets)"),
    ({**MINIMAL, "door": "1234"}, "door: must be a table"),
    ({"call": {"targets": ["sip:a@b", "sip:a@b"]}}, "call.targets[1]: 'sip:a@b' is listed twice"),
    ({"call": {"targets": ["sip:a@b"], "strategy": "random"}},
     "call.strategy: 'random' is not allowed; use one of 'sequential', 'parallel'"),
    ({"call": {"targets": ["sip:a@b"], "fallback_targets": ["mobile"]}},
     "call.fallback_targets[0]: 'mobile' is not a SIP URI"),
    ({"call": {"targets": ["sip:a@b"], "button_targets": {"bell2": {"strategy": "parallel"}}}},
     "call.button_targets.bell2.targets: required"),
    ({"call": {"targets": ["sip:a@b"],
               "button_targets": {"bell2": {"targets": ["sip:c@d"], "ring": 5}}}},
     "call.button_targets.bell2.ring: unknown key; allowed: targets, strategy, ring_time"),
    ({"call": {"targets": ["sip:a@b"],
               "button_targets": {"bell2": {"targets": ["sip:c@d"], "cycles": 0}}}},
     "call.button_targets.bell2.cycles: 0 is outside the allowed range 1..10"),
    ({"call": {"targets": ["sip:a@b"], "extend_key": "**"}}, "call.extend_key: '**' is not allowed"),
    ({**MINIMAL, "incoming": {"callers": ["sip:me@home", "pbx"]}},
     "incoming.callers[1]: 'pbx' is not a SIP URI"),
    ({**MINIMAL, "door": {"caller_codes": {"flat2": ["1#"]}}},
     "door.caller_codes.flat2: 'flat2' is not a SIP URI"),
    ({**MINIMAL, "door": {"caller_codes": {"sip:flat2@pbx": ["12 34"]}}},
     "'12 34' must be 1-16 DTMF digits"),
    ({**MINIMAL, "station": {"country": "xx"}}, "station.country: 'xx' is not allowed; use one of"),
    ({**MINIMAL, "log": {"max_events": 5}}, "log.max_events: 5 is outside the allowed range"),
])
def test_errors_name_the_key_and_what_is_allowed(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(raw)
    assert message in str(info.value)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.toml")))
def test_example_configs_are_valid(path: Path) -> None:
    load(path)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intercom.cli", *args], capture_output=True,
                          text=True, timeout=30)


def test_check_config_exits_0_for_a_good_file() -> None:
    out = run_cli("check-config", str(ROOT / "examples" / "simulator.toml"))
    assert out.returncode == 0 and "ok" in out.stdout


@pytest.mark.parametrize("text,needle", [
    ("[call]\ntargets = ['sip:a@b']\n[sip]\nport = 'x'\n", "sip.port"),
    ("[call\n", "not valid TOML"),
    ("[sip]\nuser = 'door'\n", "call.targets: required"),
])
def test_bad_config_exits_2_naming_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    for command in (["check-config", str(bad)], ["run", "--config", str(bad)]):
        out = run_cli(*command)
        assert out.returncode == 2
        assert needle in out.stderr and "config error" in out.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    out = run_cli("check-config", str(tmp_path / "nope.toml"))
    assert out.returncode == 2 and "cannot read" in out.stderr


def test_a_config_saved_by_a_windows_editor_on_the_boot_partition_reads(tmp_path: Path) -> None:
    from intercom.config import load
    path = tmp_path / "intercom.toml"
    path.write_bytes(b"\xef\xbb\xbf[call]\r\ntargets = [\"sip:resident@pbx\"]\r\n"
                     b"[station]\r\nname = \"Haust\xc3\xbcr\"\r\n")
    cfg = load(path)
    assert cfg.call.targets == ("sip:resident@pbx",) and cfg.station.name == "Haustür"
    path.write_bytes(b"[call]\ntargets = [\"sip:a@b\"]\n[station]\nname = \"Haust\xfcr\"\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(at line 4\): save it as UTF-8"):
        load(path)


@pytest.mark.parametrize("model, board, audio", [
    (b"Raspberry Pi 4 Model B Rev 1.4\x00", "gpio", "alsa"),
    (b"Raspberry Pi Zero 2 W Rev 1.0\x00", "gpio", "alsa"),
    (b"linux,dummy-virt\x00", "simulated", "simulated"),       # qemu's virt machine
    (None, "simulated", "simulated"),                          # a PC: no device tree
])
def test_auto_board_and_audio_follow_the_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 model: bytes | None, board: str,
                                                 audio: str) -> None:
    from intercom.hal import machine
    path = tmp_path / "model"
    if model is not None:
        path.write_bytes(model)
    monkeypatch.setattr(machine, "MODEL_FILES", (str(path),))
    cfg = validate({"call": {"targets": ["sip:a@b"]}, "board": {"type": "auto"},
                    "audio": {"device": "auto"}})
    assert (cfg.board.type, cfg.audio.device) == (board, audio)
    # Set by hand, they stay as they are.
    cfg = validate({"call": {"targets": ["sip:a@b"]}, "board": {"type": "simulated"},
                    "audio": {"device": "alsa"}})
    assert (cfg.board.type, cfg.audio.device) == ("simulated", "alsa")


def test_the_image_default_config_is_valid_and_follows_the_machine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The intercom.toml the image puts on the boot partition: on a machine that is
    not a Pi the simulated board and card, on a Pi its GPIO and sound card."""
    from intercom.hal import machine
    from intercom.service import fallback_board
    image_config = ROOT / "image-build" / "intercom.toml"
    monkeypatch.setattr(machine, "MODEL_FILES", (str(tmp_path / "none"),))
    cfg = load(image_config)
    assert (cfg.board.type, cfg.audio.device) == ("simulated", "simulated")
    assert fallback_board(str(image_config)) == ("simulated", "pi4")
    (tmp_path / "model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\x00")
    monkeypatch.setattr(machine, "MODEL_FILES", (str(tmp_path / "model"),))
    cfg = load(image_config)
    assert (cfg.board.type, cfg.audio.device) == ("gpio", "alsa")
    assert fallback_board(str(image_config)) == ("gpio", "pi4")
    # A file broken beyond reading still shows its error on the Pi's GPIO.
    (tmp_path / "broken.toml").write_text("[board\ntype = ")
    assert fallback_board(str(tmp_path / "broken.toml")) == ("gpio", "")
