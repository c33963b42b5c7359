"""The one config file: TOML, checked against a schema with defaults and ranges.

Every error names the key (``section.key``) and says what is allowed. The
same file runs on a Pi and in simulation; only [board] and [audio] differ.

Each section is a frozen dataclass whose fields carry their :class:`Rule`
(type, range, choices, a validator, help and an example); :func:`validate`
builds a :class:`Config` of them from the parsed TOML, and ``docs/config.md``
is generated from the same rules (:func:`reference`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from intercom.sip.address import SipUri, parse_hostport
from intercom.sip.errors import SipError


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key."""


# A validator: takes the key (for the message) and a value of the right TOML
# type, raises ConfigError if the value cannot be used, returns the value as
# the section's dataclass holds it.
Validator = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Rule:
    """What one key allows."""
    kind: tuple[type, ...]
    default: Any = None
    required: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    check: Validator | None = None
    help: str = ""
    example: Any = None             # for the reference; None: the default is the example

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        noun = self.type_name()
        name = "true or false" if noun == "boolean" else \
            ("an " if noun[0] in "aeiou" else "a ") + noun
        if self.low is not None and self.high is not None:
            return f"{name} from {self.low:g} to {self.high:g}"
        return name

    def type_name(self) -> str:
        return "number" if float in self.kind else {str: "string", int: "integer",
                                                    bool: "boolean", list: "list",
                                                    dict: "table"}[self.kind[0]]


def _setting(rule: Rule) -> Any:
    """A dataclass field that carries ``rule``; its default is the rule's, made
    immutable (a list becomes a tuple)."""
    meta = {"rule": rule}
    if rule.required:
        return dataclasses.field(metadata=meta)
    if isinstance(rule.default, dict):
        return dataclasses.field(default_factory=dict, metadata=meta)
    if isinstance(rule.default, list):
        return dataclasses.field(default=tuple(rule.default), metadata=meta)
    return dataclasses.field(default=rule.default, metadata=meta)


def _s(default: str = "", **kw: Any) -> Any:
    return _setting(Rule((str,), default, **kw))


def _n(default: float, low: float, high: float, **kw: Any) -> Any:
    return _setting(Rule((int, float), float(default), low=low, high=high, **kw))


def _i(default: int, low: int, high: int, **kw: Any) -> Any:
    return _setting(Rule((int,), default, low=low, high=high, **kw))


def _c(default: int, **kw: Any) -> Any:
    """An integer from a set of choices."""
    return _setting(Rule((int,), default, **kw))


def _b(default: bool, **kw: Any) -> Any:
    return _setting(Rule((bool,), default, **kw))


def _l(default: list[str] | None, **kw: Any) -> Any:
    return _setting(Rule((list,), default, **kw))


def _d(default: dict[str, Any], **kw: Any) -> Any:
    return _setting(Rule((dict,), default, **kw))


# ----- validators -----------------------------------------------------------------
def _uri(key: str, value: str) -> None:
    try:
        uri = SipUri.parse(value)
    except SipError as exc:
        raise ConfigError(f"{key}: {value!r} is not a SIP URI ({exc})") from exc
    if not uri.is_sip:
        raise ConfigError(f"{key}: {value!r} must be a sip: or sips: URI")


def _hostport(key: str, value: str) -> None:
    try:
        host, port = parse_hostport(value)
    except SipError as exc:
        raise ConfigError(f"{key}: {value!r} is not host[:port] ({exc})") from exc
    if not host or (port is not None and not 0 < port < 65536):
        raise ConfigError(f"{key}: {value!r} is not host[:port]")


def _strings(key: str, value: list[Any], check: Callable[[str, str], None] | None = None
             ) -> tuple[str, ...]:
    """``value`` as a tuple of strings, each passed through ``check`` (named by index)."""
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ConfigError(f"{key}[{i}]: {item!r} is not a string")
        if check is not None:
            check(f"{key}[{i}]", item)
    return tuple(value)


def language_code(key: str, value: str) -> str:
    """a language code, as in ISO 639-1 (two or three lower-case letters: en, de)"""
    if not re.fullmatch(r"[a-z]{2,3}", value):
        raise ConfigError(f"{key}: {value!r} is not a language code; use two or three "
                          "lower-case letters, as en, de, fr")
    return value


def optional_sip_uri(key: str, value: str) -> str:
    """a sip: or sips: URI, or empty"""
    if value:
        _uri(key, value)
    return value


def _once(key: str, items: tuple[str, ...], show: bool = True) -> tuple[str, ...]:
    """``items``, none of them twice (named by value, or by index if not ``show``)."""
    for i, item in enumerate(items):
        if item in items[:i]:
            raise ConfigError(f"{key}[{i}]: {item!r} is listed twice" if show else
                              f"{key}[{i}]: listed twice (as {key}[{items.index(item)}])")
    return items


def optional_sip_uri_list(key: str, value: list[Any]) -> tuple[str, ...]:
    """sip: or sips: URIs, each once"""
    return _once(key, _strings(key, value, _uri))


def sip_uri_list(key: str, value: list[Any]) -> tuple[str, ...]:
    """one or more sip: or sips: URIs, each once"""
    if not value:
        raise ConfigError(f"{key}: needs at least one SIP URI")
    return optional_sip_uri_list(key, value)


def optional_file(key: str, value: str) -> str:
    """a readable file, or empty"""
    if value and not Path(value).is_file():
        raise ConfigError(f"{key}: {value!r} is not a readable file")
    return value


def optional_hostport(key: str, value: str) -> str:
    """host[:port], or empty"""
    if value:
        _hostport(key, value)
    return value


def hostport_list(key: str, value: list[Any]) -> tuple[str, ...]:
    """host[:port] strings"""
    return _strings(key, value, _hostport)


def session_interval(key: str, value: int) -> int:
    """0, or 90 and up"""
    if 0 < value < 90:
        raise ConfigError(f"{key}: {value} is too short; use 0 (no session timer) or 90..86400")
    return value


def codec_list(key: str, value: list[Any]) -> tuple[str, ...]:
    """one or more of opus, G722, PCMU, PCMA"""
    from intercom.media.codecs import CODECS
    known = {name.lower() for name in CODECS}
    if not value or any(not isinstance(c, str) or c.lower() not in known for c in value):
        raise ConfigError(f"{key}: {value!r}; allowed codecs: {', '.join(CODECS)}")
    return tuple(value)


def hook_urls(key: str, value: list[Any]) -> tuple[str, ...]:
    """http:// or https:// URLs, each once"""
    from intercom.app.hooks import Target

    def check(name: str, url: str) -> None:
        try:
            Target.parse(url)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    return _once(key, _strings(key, value, check), show=False)   # a URL may hold a secret


def email_list(key: str, value: list[Any]) -> tuple[str, ...]:
    """e-mail addresses"""
    def check(name: str, address: str) -> None:
        if not re.fullmatch(r"[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+", address):
            raise ConfigError(f"{name}: {address!r} is not an e-mail address")
    return _once(key, _strings(key, value, check))


def event_kinds(key: str, value: list[Any]) -> tuple[str, ...]:
    """event kinds, as `intercom ctl events` names them"""
    from intercom.app.events import EventKind
    for i, item in enumerate(value):
        if item not in set(EventKind):
            raise ConfigError(f"{key}[{i}]: {item!r} is not an event kind; allowed: "
                              f"{', '.join(EventKind)}")
    return tuple(value)


def dtmf_codes(key: str, value: list[Any]) -> tuple[str, ...]:
    """codes of 1-16 keys from 0-9 * # A-D"""
    for i, code in enumerate(value):
        if not isinstance(code, str) or not code or len(code) > 16 or any(
                c not in "0123456789*#ABCD" for c in code):
            raise ConfigError(f"{key}[{i}]: {code!r} must be 1-16 DTMF digits (0-9 * # A-D)")
    return tuple(value)


def mixer_levels(key: str, value: dict[str, Any]) -> Mapping[str, int]:
    """mixer control = percentage 0-100"""
    for control, level in value.items():
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 100:
            raise ConfigError(f"{key}.{control}: {level!r} is not a percentage (0-100)")
    return dict(value)


def codes_by_caller(key: str, value: dict[str, Any]) -> Mapping[str, tuple[str, ...]]:
    """SIP URI = list of codes"""
    out = {}
    for uri, codes in value.items():
        _uri(f"{key}.{uri}", uri)
        name = f'{key}."{uri}"'
        if not isinstance(codes, list):
            raise ConfigError(f"{name}: {codes!r} is not a list")
        out[uri] = dtmf_codes(name, codes)
    return out


@dataclass(frozen=True)
class ButtonCall:
    """One bell's own entry in call.button_targets; None: as [call] says."""
    targets: tuple[str, ...]
    strategy: str | None = None
    ring_time: float | None = None
    cycles: int | None = None
    fallback_targets: tuple[str, ...] | None = None


# What a bell's own table in call.button_targets may set; the rest is [call]'s.
BUTTON_KEYS = tuple(f.name for f in dataclasses.fields(ButtonCall))


def button_calls(key: str, value: dict[str, Any]) -> Mapping[str, ButtonCall]:
    """button = SIP URIs, or a table of targets, strategy, ring_time, cycles and
    fallback_targets"""
    out = {}
    for button, own in value.items():
        if not isinstance(own, dict):
            out[button] = ButtonCall(_check_value(f"{key}.{button}", SCHEMA["call"]["targets"],
                                                  own))
            continue
        for name in own:
            if name not in BUTTON_KEYS:
                raise ConfigError(f"{key}.{button}.{name}: unknown key; allowed: "
                                  f"{', '.join(BUTTON_KEYS)}")
        if "targets" not in own:
            raise ConfigError(f"{key}.{button}.targets: required")
        out[button] = ButtonCall(**{
            name: _check_value(f"{key}.{button}.{name}", SCHEMA["call"][name], item)
            for name, item in own.items()})
    return out


# ----- the sections ---------------------------------------------------------------
COUNTRIES = ("at", "au", "ch", "de", "es", "fr", "gb", "it", "jp", "nl", "us")
DTMF_KEYS = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#", "A", "B", "C", "D")


@dataclass(frozen=True, kw_only=True)
class StationConfig:
    """Who the station is to the people it calls."""
    name: str = _s("Door station", help="shown to the resident as the caller's name")
    country: str = _s("us", choices=COUNTRIES,
                      help="whose ringback and busy tones the visitor hears")
    language: str = _s("en", example="de", check=language_code,
                       help="the announcements' language: sounds.directory/<language>/ "
                            "is looked in first")


@dataclass(frozen=True, kw_only=True)
class SipConfig:
    """The station's SIP account: registrar, credentials, transport and NAT handling."""
    user: str = _s("door", help="our SIP user name (the user part of our address)")
    domain: str = _s("", example="pbx.local",
                     help="our SIP domain; empty: the registrar's host")
    registrar: str = _s("", example="sip:pbx.local", check=optional_sip_uri,
                        help="where the station registers; empty: it does not register")
    backup_registrar: str = _s("", example="sip:pbx2.local", check=optional_sip_uri,
                               help="registrar used while the first one fails; empty: none")
    proxy: str = _s("", example="sip:proxy.local;transport=tcp", check=optional_sip_uri,
                    help="outbound proxy; empty: the registrar")
    auth_user: str = _s("", example="door-auth", help="digest user name; empty: user")
    password: str = _s("", example="s3cret", help="digest password (never logged)")
    realm: str = _s("", example="pbx.local",
                    help="only answer challenges of this realm; empty: the registrar's")
    listen: str = _s("0.0.0.0", help="local address to bind")
    port: int = _i(5060, 1, 65535, help="local SIP port (UDP and TCP; TLS on port + 1)")
    public_address: str = _s("", example="203.0.113.7",
                             help="address put in Contact/SDP; empty: found by routing")
    register_expires: int = _i(600, 60, 86400, help="seconds a registration is asked to last")
    t1: float = _n(0.5, 0.1, 5.0, help="RFC 3261 T1 in seconds")
    session_expires: int = _i(1800, 0, 86400, check=session_interval,
                              help="RFC 4028 session timer asked for, 90 s or more; 0: none")
    transport: str = _s("auto", choices=("auto", "udp", "tcp", "tls"),
                        help="auto: as the URI says, else DNS NAPTR/SRV, else UDP")
    tls_ca_file: str = _s("", example="/etc/ssl/pbx-ca.pem", check=optional_file,
                          help="PEM CA file to verify the server's TLS certificate; "
                               "empty: the system's CAs")
    dns_servers: tuple[str, ...] = _l([], example=["192.0.2.53"], check=hostport_list,
                                      help="DNS servers for NAPTR/SRV; empty: the system's")
    keepalive_interval: int = _i(25, 0, 3600,
                                 help="seconds between keepalives to the registrar; 0: none")
    keepalive: str = _s("crlf", choices=("crlf", "options"),
                        help="a CRLF ping (RFC 5626) or an OPTIONS request")
    contact_rewrite: bool = _b(True, help="register the address the registrar sees "
                                          "(received/rport) as our Contact")
    stun_server: str = _s("", example="stun.example.org:3478", check=optional_hostport,
                          help="host[:port] of a STUN server for the public RTP address")
    address_check: float = _n(5, 0, 300, help="seconds between checks of our own address, "
                                              "to follow a network change; 0: never")


@dataclass(frozen=True, kw_only=True)
class CallConfig:
    """Whom a bell press calls, in what order, and for how long."""
    targets: tuple[str, ...] = _l(None, required=True, check=sip_uri_list,
                                  example=["sip:resident@pbx.local"],
                                  help="who the bell calls")
    button_targets: Mapping[str, ButtonCall] = _d(
        {}, check=button_calls, example={"bell2": ["sip:flat2@pbx.local"]},
        help="per bell button its own targets, or a table with targets and any of "
             "strategy, ring_time, cycles and fallback_targets; buttons not named here "
             "call targets")
    strategy: str = _s("sequential", choices=("sequential", "parallel"),
                       help="ring the targets one after another, or all at once (the first "
                            "to answer wins, the others get CANCEL)")
    ring_time: float = _n(30, 5, 300, help="seconds each target (in parallel: the group) "
                                           "rings before the next one")
    cycles: int = _i(1, 1, 10, help="times through the targets before the fallback")
    fallback_targets: tuple[str, ...] = _l([], check=optional_sip_uri_list,
                                           example=["sip:mobile@pbx.local"],
                                           help="rung after the targets, e.g. a mobile")
    ring_timeout: float = _n(120, 5, 900, help="seconds after the press before the station "
                                               "gives up, however far it got")
    press_holdoff: float = _n(3, 0, 60, help="seconds after a press starts a call in which "
                                             "the bells are not heeded again, so a held or "
                                             "bouncing button places one call")
    press_during_call: str = _s("ignore", choices=("ignore", "restart"),
                                help="a bell pressed while a call rings or is up: ignored, "
                                     "or the call is ended and that bell's call starts")
    max_duration: float = _n(300, 10, 7200, help="seconds before a call is hung up")
    warning_seconds: float = _n(20, 0, 300, help="a warning tone this long before the "
                                                 "maximum; 0: none")
    extend_key: str = _s("*", choices=("", *DTMF_KEYS),
                         help="DTMF key that extends the call after the warning (not "
                              "taken as a code digit then); empty: no extension")
    extend_seconds: float = _n(120, 10, 3600, help="how much longer the call may go on "
                                                   "per extension")


@dataclass(frozen=True, kw_only=True)
class IncomingConfig:
    """Calls to the station: who may call it, and whether they are heard at the door."""
    callers: tuple[str, ...] = _l([], check=optional_sip_uri_list,
                                  example=["sip:resident@pbx.local"],
                                  help="who may call the station (answered at once, to "
                                       "listen at the door or key a door code); everyone "
                                       "else gets 403")
    talk: bool = _b(False, help="the caller is heard on the station's speaker; "
                                "false: the caller only listens")


@dataclass(frozen=True, kw_only=True)
class AudioConfig:
    """The sound card, the codecs and the microphone path (gains, echo canceller,
    noise suppression); the `sim_*` keys shape the simulated card."""
    device: str = _s("simulated", choices=("simulated", "alsa", "auto"),
                     help="auto: alsa on a Raspberry Pi, else simulated")
    capture: str = _s("", example="hw:1,0", help="ALSA capture PCM name; empty: the board "
                                                 "profile's, else ALSA's default")
    playback: str = _s("", example="hw:1,0", help="ALSA playback PCM name; empty: the board "
                                                  "profile's, else ALSA's default")
    mixer: Mapping[str, int] = _d({}, check=mixer_levels,
                                  example={"Speaker": 90, "Capture": 70},
                                  help="mixer levels set at start, over the board profile's")
    rate: int = _c(48000, choices=(8000, 16000, 32000, 44100, 48000),
                   help="the sound card's sample rate")
    period_ms: int = _c(20, choices=(10, 20), help="the sound card's period")
    mic_file: str = _s("", example="visitor.wav",
                       help="simulated: WAV file the microphone plays; empty: a tone")
    mic_tone_hz: float = _n(440, 50, 3400, help="simulated: the microphone's tone")
    speaker_file: str = _s("", example="speaker.wav",
                           help="simulated: WAV file that records the speaker")
    tones: bool = _b(True, help="ringback, busy, door-opened, wrong-code and "
                                "call-ending tones")
    codecs: tuple[str, ...] = _l(["opus", "G722", "PCMU", "PCMA"], check=codec_list,
                                 help="in order of preference")
    opus_complexity: int = _i(8, 0, 10, help="Opus encoder complexity: more is better "
                                             "sound for more CPU; libopus 1.3 codes "
                                             "in-band FEC only from 8 up")
    echo_cancel: bool = _b(True, help="cancel the speaker's echo from the microphone")
    echo_tail_ms: int = _i(200, 50, 500, help="echo canceller filter length")
    echo_delay_ms: float = _n(0, 0, 500, help="playback-to-capture delay to align the "
                                              "canceller; intercom calibrate measures it")
    echo_training: str = _s("", example="/var/lib/intercom/echo-training.wav",
                            help="noise and its echo recorded by intercom calibrate; the "
                                 "echo canceller learns the room from it at start")
    speaker_gain_db: float = _n(0, -40, 20, help="gain on what the speaker plays")
    mic_gain_db: float = _n(0, -20, 40, help="gain on what the microphone records")
    denoise: bool = _b(True, help="suppress steady noise in the microphone")
    agc: bool = _b(False, help="automatic gain control of the microphone")
    sim_echo_delay_ms: float = _n(40, 0, 500, help="simulated: speaker-to-microphone delay")
    sim_echo_room_ms: float = _n(120, 1, 500, help="simulated: length of the room's response")
    sim_echo_gain_db: float = _n(-10, -120, 10, help="simulated: echo level; -120: no echo")
    sim_noise_dbfs: float = _n(-70, -120, 0, help="simulated: microphone noise; -120: none")


@dataclass(frozen=True, kw_only=True)
class MediaConfig:
    """RTP: SRTP, the port range and the jitter buffer."""
    srtp: str = _s("optional", choices=("off", "optional", "required"),
                   help="SRTP with SDES keys: optional offers it, required refuses calls "
                        "without it")
    rtp_port_min: int = _i(16384, 1024, 65534, help="lowest local RTP port")
    rtp_port_max: int = _i(32766, 1025, 65535, help="highest local RTP port, at least "
                                                    "rtp_port_min + 2")
    jitter_min_ms: float = _n(0, 0, 400, help="the jitter buffer's delay never goes below "
                                              "this; 0: as low as the network allows")
    jitter_max_ms: float = _n(500, 60, 1000, help="nor above this (at least jitter_min_ms "
                                                  "+ 40): older audio is dropped")
    jitter_spike_max_ms: float = _n(40, 0, 300, help="delay spikes that recur (a Wi-Fi "
                                                     "link stalling) are covered up to this "
                                                     "delay; 0: always conceal them")


@dataclass(frozen=True, kw_only=True)
class DoorConfig:
    """Door codes, the relay, the door contact and lockouts after wrong codes."""
    codes: tuple[str, ...] = _l([], check=dtmf_codes, example=["1234#"],
                                help="codes that open the door in any call; empty: none")
    caller_codes: Mapping[str, tuple[str, ...]] = _d(
        {}, check=codes_by_caller, example={"sip:flat2@pbx.local": ["4711#"]},
        help="codes that open only in a call with that target or caller")
    pulse_seconds: float = _n(3.0, 0.1, 30, help="how long a right code energises the relay")
    hangup_after_open: float = _n(0, 0, 600, help="hang up this many seconds after the door "
                                                  "opened by code; 0: the resident hangs up")
    hold_max_seconds: float = _n(3600, 10, 86400, help="a door held open (intercom ctl door "
                                                       "hold) locks again after this long")
    open_alarm_seconds: float = _n(60, 0, 3600, help="a door (contact) open this long raises "
                                                     "an alarm; 0: never")
    digit_timeout: float = _n(5.0, 1, 60, help="seconds a partly keyed code is kept")
    max_wrong_codes: int = _i(3, 1, 20, help="wrong codes in one call that end code "
                                             "entry for the call; as many from one caller "
                                             "over any calls lock that caller out")
    max_wrong_codes_overall: int = _i(10, 1, 100, help="wrong codes from everyone that "
                                                       "lock code entry for all callers")
    lockout_seconds: float = _n(60, 1, 86400, help="the first lockout; each next one from "
                                                   "the same cause is twice as long")
    lockout_max_seconds: float = _n(3600, 1, 604800, help="the longest lockout (at least "
                                                          "lockout_seconds)")
    inband_dtmf: bool = _b(False, help="also take code digits from tones in the "
                                       "audio (for phones without RFC 4733); "
                                       "anyone near the phone can play them")


@dataclass(frozen=True, kw_only=True)
class BoardConfig:
    """The buttons, LEDs, relay and inputs: GPIO on a Pi or the simulated board."""
    type: str = _s("simulated", choices=("simulated", "gpio", "auto"),
                   help="auto: gpio on a Raspberry Pi, else simulated")
    profile: str = _s("", example="respeaker-2mic",
                      help="a profile name in board/ or the path of a .toml file; "
                           "empty: the type's default")


@dataclass(frozen=True, kw_only=True)
class ControlConfig:
    """The local control socket that `intercom ctl` talks to."""
    socket: str = _s("", example="/run/intercom/control.sock",
                     help="control socket path; empty: the service's /run/intercom, "
                          "else $XDG_RUNTIME_DIR/intercom")


@dataclass(frozen=True, kw_only=True)
class LogConfig:
    """Logging, and the event log kept in SQLite."""
    level: str = _s("info", choices=("debug", "info", "warning", "error"),
                    help="the lowest level logged")
    database: str = _s("", example="/var/lib/intercom/events.sqlite",
                       help="SQLite file of calls, door openings, rejected codes, alarms "
                            "and lockouts; empty: $STATE_DIRECTORY, /var/lib/intercom "
                            "(root) or ~/.local/state/intercom")
    max_events: int = _i(10000, 100, 1000000, help="events kept; the oldest go first")


@dataclass(frozen=True, kw_only=True)
class NotifyConfig:
    """Action hooks: events POSTed as JSON to URLs, with retries, off the call's path."""
    urls: tuple[str, ...] = _l([], check=hook_urls,
                               example=["https://home.example/api/webhook/door-1a2b3c"],
                               help="where each event goes (JSON POST, 2xx: delivered); "
                                    "empty: no hooks")
    events: tuple[str, ...] = _l(["button", "call_record", "door", "alarm", "snapshot", "recording"],
                                 check=event_kinds,
                                 help="which events go: the kinds `intercom ctl events` "
                                      "shows")
    timeout_s: float = _n(5, 1, 60, help="each attempt's time limit")
    retries: int = _i(3, 0, 10, help="attempts after the first, 1 s apart and doubling")
    ca_file: str = _s("", check=optional_file, example="/etc/intercom/home-ca.pem",
                      help="CA certificate for https:// hooks and the mail server; empty: "
                           "the system's")
    email_to: tuple[str, ...] = _l([], check=email_list, example=["resident@example.org"],
                                   help="each event also by e-mail to these; empty: no mail")
    email_from: str = _s("", example="door@example.org",
                         help="the mails' sender; empty: intercom@<this host's name>")
    smtp_server: str = _s("", check=optional_hostport, example="mail.example.org:587",
                          help="the mail server, host[:port] (587, or 465 with tls)")
    smtp_security: str = _s("starttls", choices=("starttls", "tls", "none"),
                            help="how the connection to the mail server is protected")
    smtp_user: str = _s("", help="the account on the mail server; empty: no login")
    smtp_password: str = _s("", help="its password")


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    """The home's MQTT broker: events, states and Home Assistant discovery."""
    broker: str = _s("", check=optional_hostport, example="homeassistant.local",
                     help="host[:port] of the broker (1883, or 8883 with tls); empty: no MQTT")
    username: str = _s("", help="the station's account on the broker")
    password: str = _s("", help="its password")
    tls: bool = _b(False, help="connect with TLS, checking the broker's certificate")
    ca_file: str = _s("", check=optional_file, example="/etc/intercom/broker-ca.pem",
                      help="CA certificate for tls; empty: the system's")
    topic: str = _s("", example="intercom/front_door",
                    help="the station's topics go under this; empty: intercom/<station name>")
    discovery_prefix: str = _s("homeassistant", help="Home Assistant's discovery prefix; "
                                                     "empty: no discovery messages")
    door_commands: bool = _b(False, help="OPEN, UNLOCK and LOCK on <topic>/door/set work the "
                                         "door (whoever may publish there can open it)")
    keepalive: int = _i(60, 10, 600, help="seconds between keepalives to the broker")


@dataclass(frozen=True, kw_only=True)
class HttpConfig:
    """The HTTP API on HTTPS: state, door, calls, events and the config, for accounts
    made with `intercom account add`."""
    listen: str = _s("", check=optional_hostport, example="0.0.0.0:8443",
                     help="host:port to serve HTTPS on; empty: no HTTP API")
    cert_file: str = _s("", check=optional_file, example="/etc/intercom/https.pem",
                        help="the server's certificate (PEM); empty: one made at first "
                             "start, kept in the state directory")
    key_file: str = _s("", check=optional_file, example="/etc/intercom/https.key",
                       help="its private key (PEM)")
    accounts: str = _s("", example="/var/lib/intercom/accounts.json",
                       help="the accounts file; empty: accounts.json in the state directory")
    account_file: str = _s("/boot/firmware/intercom-account.txt",
                           help="lines of NAME RIGHTS PASSWORD taken into the accounts at "
                                "start, once per content (the image's boot partition); "
                                "empty: none")
    lockout_after: int = _i(5, 1, 100, help="failed logins from one address before it is "
                                            "locked out")
    lockout_seconds: int = _i(60, 1, 86400, help="the first lockout; each next one doubles, "
                                                 "up to a day")


@dataclass(frozen=True, kw_only=True)
class CameraConfig:
    """The camera: a snapshot of the visitor at every bell press, and video in calls."""
    source: str = _s("auto", choices=("none", "auto", "picamera", "v4l2", "simulated"),
                     help="none: audio only; auto: the board profile's camera, else (on "
                          "GPIO) the first USB webcam, else none; picamera: the Pi camera "
                          "(rpicam-vid); v4l2: a USB webcam at `device` (ffmpeg); "
                          "simulated: a moving test pattern")
    device: str = _s("/dev/video0", help="the webcam's video device, for source = v4l2")
    width: int = _i(640, 88, 1920, help="picture width")
    height: int = _i(480, 64, 1080, help="picture height")
    snapshots_keep: int = _i(200, 1, 100000, help="snapshots kept; the oldest go first")
    snapshots_max_mb: int = _i(50, 1, 10000, help="and at most this much of them")
    video_calls: bool = _b(True, help="offer H.264 video in calls when there is a camera "
                                      "(phones without video answer audio-only)")
    fps: int = _i(15, 1, 30, help="video frames per second")
    bitrate_kbps: int = _i(600, 100, 8000, help="video bit rate")
    keyframe_seconds: int = _i(4, 1, 300, help="a keyframe at least this often; phones "
                                               "also ask for one (PLI, FIR) after a loss")
    encoder: str = _s("auto", choices=("auto", "hardware", "software"),
                      help="H.264 encoder: hardware is the Pi's (V4L2 M2M, Pi 4 and "
                           "older); software is x264; auto: hardware where it opens")


@dataclass(frozen=True, kw_only=True)
class SoundsConfig:
    """Announcements from sound files, played in place of the generated tones."""
    directory: str = _s("", example="/etc/intercom/sounds",
                        help="where the announcements are: ringing, nobody_answered, "
                             "leave_message, door_opened, locked_out and call_recorded, "
                             "each .opus, .ogg or .wav (16-bit), in <language>/ first; "
                             "an event without one keeps its tone; empty: tones only")


@dataclass(frozen=True, kw_only=True)
class RecordingsConfig:
    """A visitor's message when nobody answers, and recorded calls (Opus in Ogg)."""
    messages: bool = _b(False, help="when nobody answers, the visitor may leave a message "
                                    "(after the leave_message announcement; a tone marks "
                                    "its start and end)")
    message_seconds: int = _i(30, 5, 300, help="the longest message")
    message_silence_seconds: float = _n(5, 0, 60,
                                        help="a message ends after this long without a "
                                             "voice (and is not kept if nobody spoke); 0: "
                                             "only at message_seconds or a bell press")
    calls: bool = _b(False, help="record answered calls; both sides hear the call_recorded "
                                 "announcement (or two beeps) first")
    keep: int = _i(100, 1, 100000, help="recordings kept (messages and calls); the oldest "
                                        "go first")
    max_mb: int = _i(200, 1, 100000, help="and at most this much of them")


@dataclass(frozen=True)
class Config:
    """The whole checked config: one frozen dataclass per section."""
    station: StationConfig
    sip: SipConfig
    call: CallConfig
    incoming: IncomingConfig
    audio: AudioConfig
    media: MediaConfig
    door: DoorConfig
    board: BoardConfig
    control: ControlConfig
    log: LogConfig
    notify: NotifyConfig
    mqtt: MqttConfig
    http: HttpConfig
    camera: CameraConfig
    sounds: SoundsConfig
    recordings: RecordingsConfig


SECTIONS: dict[str, type] = {
    "station": StationConfig, "sip": SipConfig, "call": CallConfig,
    "incoming": IncomingConfig, "audio": AudioConfig, "media": MediaConfig,
    "door": DoorConfig, "board": BoardConfig, "control": ControlConfig, "log": LogConfig,
    "notify": NotifyConfig, "mqtt": MqttConfig, "http": HttpConfig,
    "camera": CameraConfig, "sounds": SoundsConfig, "recordings": RecordingsConfig,
}

# Every key's rule, by section and key: what the reference and the errors describe.
SCHEMA: dict[str, dict[str, Rule]] = {
    section: {f.name: f.metadata["rule"] for f in dataclasses.fields(cls)}
    for section, cls in SECTIONS.items()
}


def _is_kind(value: Any, rule: Rule) -> bool:
    # bool is an int to Python, but `port = true` is a mistake.
    return isinstance(value, rule.kind) and not (isinstance(value, bool) and bool not in rule.kind)


def _check_value(key: str, rule: Rule, value: Any) -> Any:
    """``value`` checked against ``rule``, as the section holds it."""
    if not _is_kind(value, rule):
        raise ConfigError(f"{key}: {value!r} is not {rule.describe()}")
    if rule.choices and value not in rule.choices:
        raise ConfigError(f"{key}: {value!r} is not allowed; use {rule.describe()}")
    if rule.low is not None and rule.high is not None and not rule.low <= value <= rule.high:
        raise ConfigError(f"{key}: {value!r} is outside the allowed range "
                          f"{rule.low:g}..{rule.high:g}")
    if rule.check is not None:
        value = rule.check(key, value)
    if isinstance(value, list):
        value = _strings(key, value)
    elif float in rule.kind:
        value = float(value)
    return value


def _section(section: str, cls: type, given: dict[str, Any]) -> Any:
    fields = SCHEMA[section]
    for key in given:
        if key not in fields:
            raise ConfigError(f"{section}.{key}: unknown key; allowed in [{section}]: "
                              f"{', '.join(fields)}")
    values = {}
    for key, rule in fields.items():
        name = f"{section}.{key}"
        if key in given:
            values[key] = _check_value(name, rule, given[key])
        elif rule.required:
            raise ConfigError(f"{name}: required ({rule.help or rule.describe()})")
    return cls(**values)


def validate(raw: Mapping[str, Any]) -> Config:
    """The checked config with every default filled in. Raises ConfigError."""
    for section in raw:
        if section not in SCHEMA:
            raise ConfigError(f"[{section}]: unknown section; allowed: {', '.join(SCHEMA)}")
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{section}: must be a table ([{section}])")
    cfg = Config(**{section: _section(section, cls, raw.get(section, {}))
                    for section, cls in SECTIONS.items()})
    media, door = cfg.media, cfg.door
    if media.rtp_port_min + 2 > media.rtp_port_max:
        raise ConfigError("media.rtp_port_max: must be at least rtp_port_min + 2")
    if door.lockout_max_seconds < door.lockout_seconds:
        raise ConfigError("door.lockout_max_seconds: must be at least lockout_seconds")
    if media.jitter_min_ms + 40 > media.jitter_max_ms:
        raise ConfigError("media.jitter_max_ms: must be at least jitter_min_ms + 40 "
                          "(two packets)")
    if cfg.notify.email_to and not cfg.notify.smtp_server:
        raise ConfigError("notify.smtp_server: required when notify.email_to names someone")
    _check_profile(cfg.board.profile)
    return settle_auto(cfg)


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
    if cfg.board.type == "auto":
        cfg = replace(cfg, board=replace(cfg.board, type=machine.auto_board()))
    if cfg.audio.device == "auto":
        cfg = replace(cfg, audio=replace(cfg.audio, device=machine.auto_audio()))
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
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                                for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"cannot write {value!r} into the config")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


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
    replace_file(path, "\n".join(lines) + "\n")


def error_line(text: str, message: str) -> int | None:
    """The line of config ``text`` that the error ``message`` is about: TOML's own
    ("at line N"), else the line that sets its key (or opens its section)."""
    found = re.search(r"at line (\d+)", message)
    if found:
        return int(found.group(1))
    key = re.match(r"\[?([A-Za-z_]+)(?:\.([A-Za-z_]+))?", message)
    if key is None:
        return None
    section, name = key.group(1), key.group(2)
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[] ").split("]")[0].strip()
            if name is None and current == section:
                return number
        elif name is not None and current == section and \
                re.match(rf"{re.escape(name)}\s*=", stripped):
            return number
    return None


def check_text(text: str) -> Config:
    """The checked config in ``text`` (TOML). ConfigError for bad TOML or a bad key."""
    try:
        return validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from exc


def replace_file(path: str | Path, text: str) -> None:
    """The config file at ``path`` becomes ``text``, once it is checked: written to
    a temporary file, synced and renamed over the old one, so a power cut or a bad
    value never leaves a broken config behind."""
    path = Path(path)
    try:
        check_text(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: the update would not be valid: {exc}") from exc
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


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference() -> str:
    """The config reference (docs/config.md), made from the rules above."""
    out = ["# Configuration reference", "",
           "<!-- Generated from intercom/config.py by `python -m intercom.config "
           "> docs/config.md`; tests/test_config.py fails when it is stale. -->", "",
           "The station reads one TOML file (`/boot/firmware/intercom.toml` on the image, "
           "`--config FILE` elsewhere). Every key is optional except `call.targets`; "
           "`intercom check-config FILE` checks a file and names the key at fault, with "
           "what it allows.", ""]
    for section, rules in SCHEMA.items():
        doc = (SECTIONS[section].__doc__ or "").strip()
        out += [f"## [{section}]", "", doc, "",
                "| key | type | default | allowed | example | what it does |",
                "|---|---|---|---|---|---|"]
        for key, rule in rules.items():
            default = "required" if rule.required else f"`{_toml_value(rule.default)}`"
            allowed = rule.describe()
            if rule.check is not None and rule.check.__doc__:
                allowed = " ".join(rule.check.__doc__.split())
            example = rule.example if rule.example is not None else rule.default
            out.append(f"| `{key}` | {rule.type_name()} | {_cell(default)} | "
                       f"{_cell(allowed)} | `{_cell(f'{key} = {_toml_value(example)}')}` | "
                       f"{_cell(rule.help)} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(reference(), end="")
