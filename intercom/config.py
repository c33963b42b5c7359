"""The one config file: TOML, checked against a schema with defaults and ranges.

Every error names the key (``section.key``) and says what is allowed. The
same file runs on a Pi and in simulation; only [board] and [audio] differ.
"""
from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intercom.sip.address import SipUri, parse_hostport
from intercom.sip.errors import SipError


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Field:
    kind: type | tuple[type, ...]
    default: Any = None
    required: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    check: str = ""                 # extra checks: "sip_uri", "sip_uri_list", "dtmf_codes",
                                    # "codec_list", "optional_sip_uri", "session_interval",
                                    # "optional_hostport", "hostport_list", "optional_file",
                                    # "optional_sip_uri_list", "button_targets",
                                    # "caller_codes", "mixer"
    help: str = ""

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        name = "a number" if float in kinds else {str: "a string", int: "an integer",
                                                  bool: "true or false", list: "a list",
                                                  dict: "a table"}[kinds[0]]
        if self.low is not None and self.high is not None:
            return f"{name} from {self.low:g} to {self.high:g}"
        return name


def _s(default: str = "", **kw: Any) -> Field:
    return Field(str, default, **kw)


def _n(default: float, low: float, high: float, **kw: Any) -> Field:
    return Field((int, float), default, low=low, high=high, **kw)


def _i(default: int, low: int, high: int, **kw: Any) -> Field:
    return Field(int, default, low=low, high=high, **kw)


SCHEMA: dict[str, dict[str, Field]] = {
    "station": {
        "name": _s("Door station", help="shown to the resident as the caller's name"),
        "country": _s("us", choices=("at", "au", "ch", "de", "es", "fr", "gb", "it", "jp",
                                     "nl", "us"),
                      help="whose ringback and busy tones the visitor hears"),
    },
    "sip": {
        "user": _s("door", help="our SIP user name (the user part of our address)"),
        "domain": _s("", help="our SIP domain; defaults to the registrar's host"),
        "registrar": _s("", check="optional_sip_uri", help="e.g. sip:pbx.local; empty: none"),
        "backup_registrar": _s("", check="optional_sip_uri",
                               help="registrar used while the first one fails; empty: none"),
        "proxy": _s("", check="optional_sip_uri", help="outbound proxy; defaults to registrar"),
        "auth_user": _s("", help="digest user name; defaults to user"),
        "password": _s(""),
        "realm": _s("", help="only answer challenges of this realm; empty: the registrar's"),
        "listen": _s("0.0.0.0", help="local address to bind"),
        "port": _i(5060, 1, 65535),
        "public_address": _s("", help="address put in Contact/SDP; empty: found by routing"),
        "register_expires": _i(600, 60, 86400),
        "t1": _n(0.5, 0.1, 5.0, help="RFC 3261 T1 in seconds"),
        "session_expires": _i(1800, 0, 86400, check="session_interval",
                              help="RFC 4028 session timer asked for, 90 s or more; 0: none"),
        "transport": _s("auto", choices=("auto", "udp", "tcp", "tls"),
                        help="auto: as the URI says, else DNS NAPTR/SRV, else UDP"),
        "tls_ca_file": _s("", check="optional_file", help="PEM CA file to verify the server's TLS certificate; "
                                   "empty: the system's CAs"),
        "dns_servers": Field(list, [], check="hostport_list",
                             help='DNS servers for NAPTR/SRV, e.g. ["192.0.2.53"]; '
                                  "empty: the system's"),
        "keepalive_interval": _i(25, 0, 3600,
                                 help="seconds between keepalives to the registrar; 0: none"),
        "keepalive": _s("crlf", choices=("crlf", "options")),
        "contact_rewrite": Field(bool, True, help="register the address the registrar sees "
                                                  "(received/rport) as our Contact"),
        "stun_server": _s("", check="optional_hostport",
                          help="host[:port] of a STUN server for the public RTP address"),
        "address_check": _n(5, 0, 300, help="seconds between checks of our own address, "
                                            "to follow a network change; 0: never"),
    },
    "call": {
        "targets": Field(list, None, required=True, check="sip_uri_list",
                         help='who the bell calls, e.g. ["sip:resident@pbx.local"]'),
        "button_targets": Field(dict, {}, check="button_targets",
                                help='per bell button its own targets, e.g. '
                                     '{ bell2 = ["sip:flat2@pbx.local"] }, or a table '
                                     'with targets and any of strategy, ring_time, cycles '
                                     'and fallback_targets; buttons not named here call '
                                     'targets'),
        "strategy": _s("sequential", choices=("sequential", "parallel"),
                       help="ring the targets one after another, or all at once (the first "
                            "to answer wins, the others get CANCEL)"),
        "ring_time": _n(30, 5, 300, help="seconds each target (in parallel: the group) "
                                         "rings before the next one"),
        "cycles": _i(1, 1, 10, help="times through the targets before the fallback"),
        "fallback_targets": Field(list, [], check="optional_sip_uri_list",
                                  help="rung after the targets, e.g. a mobile"),
        "ring_timeout": _n(120, 5, 900, help="seconds after the press before the station "
                                             "gives up, however far it got"),
        "press_holdoff": _n(3, 0, 60, help="seconds after a press starts a call in which "
                                           "the bells are not heeded again, so a held or "
                                           "bouncing button places one call"),
        "press_during_call": _s("ignore", choices=("ignore", "restart"),
                                help="a bell pressed while a call rings or is up: ignored, "
                                     "or the call is ended and that bell's call starts"),
        "max_duration": _n(300, 10, 7200, help="seconds before a call is hung up"),
        "warning_seconds": _n(20, 0, 300, help="a warning tone this long before the "
                                               "maximum; 0: none"),
        "extend_key": _s("*", choices=("", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
                                       "*", "#", "A", "B", "C", "D"),
                         help="DTMF key that extends the call after the warning (not "
                              "taken as a code digit then); empty: no extension"),
        "extend_seconds": _n(120, 10, 3600, help="how much longer the call may go on "
                                                 "per extension"),
    },
    "incoming": {
        "callers": Field(list, [], check="optional_sip_uri_list",
                         help="who may call the station (answered at once, to listen at "
                              "the door or key a door code); everyone else gets 403"),
        "talk": Field(bool, False, help="the caller is heard on the station's speaker; "
                                        "false: the caller only listens"),
    },
    "audio": {
        "device": _s("simulated", choices=("simulated", "alsa", "auto"),
                     help="auto: alsa on a Raspberry Pi, else simulated"),
        "capture": _s("", help="ALSA capture PCM name; empty: the board profile's, "
                               "else ALSA's default"),
        "playback": _s("", help="ALSA playback PCM name; empty: the board profile's, "
                                "else ALSA's default"),
        "mixer": Field(dict, {}, check="mixer",
                       help='mixer levels set at start, e.g. { Speaker = 90, Capture = 70 }; '
                            "over the board profile's"),
        "rate": Field(int, 48000, choices=(8000, 16000, 32000, 44100, 48000)),
        "period_ms": Field(int, 20, choices=(10, 20), help="the sound card's period"),
        "mic_file": _s("", help="simulated: WAV file the microphone plays; empty: a tone"),
        "mic_tone_hz": _n(440, 50, 3400),
        "speaker_file": _s("", help="simulated: WAV file that records the speaker"),
        "tones": Field(bool, True, help="ringback, busy, door-opened, wrong-code and "
                                        "call-ending tones"),
        "codecs": Field(list, ["opus", "G722", "PCMU", "PCMA"], check="codec_list",
                        help="in order of preference"),
        "opus_complexity": _i(8, 0, 10, help="Opus encoder complexity: more is better "
                                             "sound for more CPU; libopus 1.3 codes "
                                             "in-band FEC only from 8 up"),
        "echo_cancel": Field(bool, True, help="cancel the speaker's echo from the microphone"),
        "echo_tail_ms": _i(200, 50, 500, help="echo canceller filter length"),
        "echo_delay_ms": _n(0, 0, 500, help="playback-to-capture delay to align the "
                                            "canceller; intercom calibrate measures it"),
        "echo_training": _s("", help="noise and its echo recorded by intercom calibrate; "
                                     "the echo canceller learns the room from it at start"),
        "speaker_gain_db": _n(0, -40, 20, help="gain on what the speaker plays"),
        "mic_gain_db": _n(0, -20, 40, help="gain on what the microphone records"),
        "denoise": Field(bool, True, help="suppress steady noise in the microphone"),
        "agc": Field(bool, False, help="automatic gain control of the microphone"),
        "sim_echo_delay_ms": _n(40, 0, 500, help="simulated: speaker-to-microphone delay"),
        "sim_echo_room_ms": _n(120, 1, 500, help="simulated: length of the room's response"),
        "sim_echo_gain_db": _n(-10, -120, 10, help="simulated: echo level; -120: no echo"),
        "sim_noise_dbfs": _n(-70, -120, 0, help="simulated: microphone noise; -120: none"),
    },
    "media": {
        "srtp": _s("optional", choices=("off", "optional", "required"),
                   help="SRTP with SDES keys: optional offers it, required refuses calls "
                        "without it"),
        "rtp_port_min": _i(16384, 1024, 65534),
        "rtp_port_max": _i(32766, 1025, 65535),
        "jitter_min_ms": _n(0, 0, 400, help="the jitter buffer's delay never goes below "
                                            "this; 0: as low as the network allows"),
        "jitter_max_ms": _n(500, 60, 1000, help="nor above this: older audio is dropped"),
        "jitter_spike_max_ms": _n(40, 0, 300, help="delay spikes that recur (a Wi-Fi "
                                                   "link stalling) are covered up to this "
                                                   "delay; 0: always conceal them"),
    },
    "door": {
        "codes": Field(list, [], check="dtmf_codes", help='e.g. ["1234#"]: open the door '
                                                          'in any call; empty: none'),
        "caller_codes": Field(dict, {}, check="caller_codes",
                              help='codes that open only in a call with that target or '
                                   'caller, e.g. { "sip:flat2@pbx.local" = ["4711#"] }'),
        "pulse_seconds": _n(3.0, 0.1, 30, help="how long a right code energises the relay"),
        "hangup_after_open": _n(0, 0, 600, help="hang up this many seconds after the door "
                                                "opened by code; 0: the resident hangs up"),
        "hold_max_seconds": _n(3600, 10, 86400, help="a door held open (intercom ctl door "
                                                     "hold) locks again after this long"),
        "open_alarm_seconds": _n(60, 0, 3600, help="a door (contact) open this long raises "
                                                   "an alarm; 0: never"),
        "digit_timeout": _n(5.0, 1, 60, help="seconds a partly keyed code is kept"),
        "max_wrong_codes": _i(3, 1, 20, help="wrong codes in one call that end code "
                                             "entry for the call; as many from one caller "
                                             "over any calls lock that caller out"),
        "max_wrong_codes_overall": _i(10, 1, 100, help="wrong codes from everyone that "
                                                       "lock code entry for all callers"),
        "lockout_seconds": _n(60, 1, 86400, help="the first lockout; each next one from "
                                                 "the same cause is twice as long"),
        "lockout_max_seconds": _n(3600, 1, 604800, help="the longest lockout"),
        "inband_dtmf": Field(bool, False, help="also take code digits from tones in the "
                                               "audio (for phones without RFC 4733); "
                                               "anyone near the phone can play them"),
    },
    "board": {
        "type": _s("simulated", choices=("simulated", "gpio", "auto"),
                   help="auto: gpio on a Raspberry Pi, else simulated"),
        "profile": _s("", help="a profile name in board/ or a path; empty: by type"),
    },
    "control": {
        "socket": _s("", help="control socket path; empty: the service's /run/intercom, "
                                   "else $XDG_RUNTIME_DIR/intercom"),
    },
    "log": {
        "level": _s("info", choices=("debug", "info", "warning", "error")),
        "database": _s("", help="SQLite file of calls, door openings, rejected codes, "
                                "alarms and lockouts; empty: $STATE_DIRECTORY, "
                                "/var/lib/intercom (root) or ~/.local/state/intercom"),
        "max_events": _i(10000, 100, 1000000, help="events kept; the oldest go first"),
    },
}

Config = dict[str, dict[str, Any]]
# What a bell's own table in call.button_targets may set; the rest is [call]'s.
BUTTON_KEYS = ("targets", "strategy", "ring_time", "cycles", "fallback_targets")


def _is_kind(value: Any, field: Field) -> bool:
    kinds = field.kind if isinstance(field.kind, tuple) else (field.kind,)
    # bool is an int to Python, but `port = true` is a mistake.
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def _check_value(key: str, field: Field, value: Any) -> Any:
    if not _is_kind(value, field):
        raise ConfigError(f"{key}: {value!r} is not {field.describe()}")
    if field.choices and value not in field.choices:
        raise ConfigError(f"{key}: {value!r} is not allowed; use {field.describe()}")
    if field.low is not None and field.high is not None and not field.low <= value <= field.high:
        raise ConfigError(f"{key}: {value!r} is outside the allowed range {field.low:g}..{field.high:g}")
    if field.check in ("sip_uri", "optional_sip_uri") and (value or field.check == "sip_uri"):
        _check_uri(key, value)
    elif field.check in ("sip_uri_list", "optional_sip_uri_list"):
        if not value and field.check == "sip_uri_list":
            raise ConfigError(f"{key}: needs at least one SIP URI")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(f"{key}[{i}]: {item!r} is not a string")
            _check_uri(f"{key}[{i}]", item)
            if item in value[:i]:
                raise ConfigError(f"{key}[{i}]: {item!r} is listed twice")
    elif field.check == "button_targets":
        for button, targets in value.items():
            if isinstance(targets, dict):
                for name in targets:
                    if name not in BUTTON_KEYS:
                        raise ConfigError(f"{key}.{button}.{name}: unknown key; allowed: "
                                          f"{', '.join(BUTTON_KEYS)}")
                if "targets" not in targets:
                    raise ConfigError(f"{key}.{button}.targets: required")
                for name, item in targets.items():
                    _check_value(f"{key}.{button}.{name}", SCHEMA["call"][name], item)
            else:
                _check_value(f"{key}.{button}", Field(list, check="sip_uri_list"), targets)
    elif field.check == "mixer":
        for control, level in value.items():
            if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 100:
                raise ConfigError(f"{key}.{control}: {level!r} is not a percentage (0-100)")
    elif field.check == "caller_codes":
        for uri, codes in value.items():
            _check_uri(f"{key}.{uri}", uri)
            _check_value(f'{key}."{uri}"', Field(list, check="dtmf_codes"), codes)
    elif field.check == "optional_file" and value and not Path(value).is_file():
        raise ConfigError(f"{key}: {value!r} is not a readable file")
    elif field.check == "optional_hostport" and value:
        _check_hostport(key, value)
    elif field.check == "hostport_list":
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(f"{key}[{i}]: {item!r} is not a string")
            _check_hostport(f"{key}[{i}]", item)
    elif field.check == "session_interval" and 0 < value < 90:
        raise ConfigError(f"{key}: {value} is too short; use 0 (no session timer) or 90..86400")
    elif field.check == "codec_list":
        from intercom.media.codecs import CODECS
        known = {name.lower() for name in CODECS}
        if not value or any(not isinstance(c, str) or c.lower() not in known for c in value):
            raise ConfigError(f"{key}: {value!r}; allowed codecs: {', '.join(CODECS)}")
    elif field.check == "dtmf_codes":
        for i, code in enumerate(value):
            if not isinstance(code, str) or not code or len(code) > 16 or any(
                    c not in "0123456789*#ABCD" for c in code):
                raise ConfigError(f"{key}[{i}]: {code!r} must be 1-16 DTMF digits (0-9 * # A-D)")
    return value


def _check_hostport(key: str, value: str) -> None:
    try:
        host, port = parse_hostport(value)
    except SipError as exc:
        raise ConfigError(f"{key}: {value!r} is not host[:port] ({exc})") from exc
    if not host or (port is not None and not 0 < port < 65536):
        raise ConfigError(f"{key}: {value!r} is not host[:port]")


def _check_uri(key: str, value: str) -> None:
    try:
        uri = SipUri.parse(value)
    except SipError as exc:
        raise ConfigError(f"{key}: {value!r} is not a SIP URI ({exc})") from exc
    if not uri.is_sip:
        raise ConfigError(f"{key}: {value!r} must be a sip: or sips: URI")


def validate(raw: dict[str, Any]) -> Config:
    """Checked config with every default filled in. Raises ConfigError."""
    out: Config = {}
    for section in raw:
        if section not in SCHEMA:
            raise ConfigError(f"[{section}]: unknown section; allowed: {', '.join(SCHEMA)}")
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{section}: must be a table ([{section}])")
    for section, fields in SCHEMA.items():
        given = raw.get(section, {})
        for key in given:
            if key not in fields:
                raise ConfigError(f"{section}.{key}: unknown key; allowed in [{section}]: "
                                  f"{', '.join(fields)}")
        out[section] = {}
        for key, field in fields.items():
            name = f"{section}.{key}"
            if key in given:
                out[section][key] = _check_value(name, field, given[key])
            elif field.required:
                raise ConfigError(f"{name}: required ({field.help or field.describe()})")
            else:
                out[section][key] = type(field.default)(field.default) \
                    if isinstance(field.default, (list, dict)) else field.default
    media = out["media"]
    if media["rtp_port_min"] + 2 > media["rtp_port_max"]:
        raise ConfigError("media.rtp_port_max: must be at least rtp_port_min + 2")
    door = out["door"]
    if door["lockout_max_seconds"] < door["lockout_seconds"]:
        raise ConfigError("door.lockout_max_seconds: must be at least lockout_seconds")
    if media["jitter_min_ms"] + 40 > media["jitter_max_ms"]:
        raise ConfigError("media.jitter_max_ms: must be at least jitter_min_ms + 40 "
                          "(two packets)")
    _check_profile(out["board"]["profile"])
    return settle_auto(out)


def board_profiles() -> list[str]:
    """The names of the board profiles that come with intercom (board/*.toml)."""
    from importlib import resources
    return sorted(entry.name.removesuffix(".toml")
                  for entry in resources.files("intercom.boards").iterdir()
                  if entry.name.endswith(".toml"))


def _check_profile(profile: str) -> None:
    if not profile:
        return
    if profile.endswith(".toml") or "/" in profile:
        if not Path(profile).is_file():
            raise ConfigError(f"board.profile: no file {profile!r}; give a profile's name "
                              f"({', '.join(board_profiles())}) or the path of a .toml file")
        return
    if profile not in board_profiles():
        raise ConfigError(f"board.profile: {profile!r} is not a board profile; the profiles "
                          f"are {', '.join(board_profiles())} (or the path of a .toml file)")


def settle_auto(cfg: Config) -> Config:
    """``auto`` board and audio made concrete for the machine this runs on: GPIO
    and ALSA on a Raspberry Pi, the simulated board and card elsewhere (so the
    image's default config runs on a Pi and in a virtual machine alike)."""
    from intercom.hal import machine
    if cfg["board"]["type"] == "auto":
        cfg["board"]["type"] = machine.auto_board()
    if cfg["audio"]["device"] == "auto":
        cfg["audio"]["device"] = machine.auto_audio()
    return cfg


def load(path: str | Path) -> Config:
    """The checked config in ``path``. A file written by a Windows editor on the
    boot partition (a UTF-8 byte order mark, CRLF line ends) reads as well."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        raw = tomllib.loads(data.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (at line {line}): save it as UTF-8") \
            from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return validate(raw)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"cannot write {value!r} into the config")


def update_file(path: str | Path, section: str, values: dict[str, Any]) -> None:
    """Set ``values`` in ``[section]`` of the config file, keeping everything else.

    The result is checked before it is written, and written atomically (a
    temporary file, fsync, rename), so a power cut or a bad value never leaves
    a broken config behind.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    header = re.compile(rf"^\s*\[\s*{re.escape(section)}\s*\]\s*(#.*)?$")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if start is None:
        lines += ["", f"[{section}]"]
        start = len(lines) - 1
    end = next((i for i in range(start + 1, len(lines))
                if re.match(r"^\s*\[", lines[i])), len(lines))
    todo = dict(values)
    for i in range(start + 1, end):
        m = re.match(r"^\s*([A-Za-z0-9_-]+)\s*=", lines[i])
        if m and m.group(1) in todo:
            lines[i] = f"{m.group(1)} = {_toml_value(todo.pop(m.group(1)))}"
    last = max((i for i in range(start, end) if lines[i].strip()), default=start)
    lines[last + 1:last + 1] = [f"{k} = {_toml_value(v)}" for k, v in todo.items()]
    text = "\n".join(lines) + "\n"
    try:
        validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: the update would not be valid TOML: {exc}") from exc
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
