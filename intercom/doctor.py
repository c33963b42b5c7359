"""``intercom doctor``: check what a door station needs, and say what to fix.

In order: the config (with the line at fault), the sound card, the GPIO board,
the network route to the registrar, the registrar in DNS (NAPTR/SRV, else its
address), a trial registration, and the public address by STUN. Each check
prints one line, ``ok`` or ``FAIL`` with what to do; later checks that need
an earlier one are skipped. Exit status 0 only if nothing failed.

The trial registration uses its own port and removes its binding afterwards,
so it can run next to the station; when the station's control socket
answers, its own registration state is shown as well.
"""
from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from intercom import config as config_mod
from intercom.sip.address import SipUri

REGISTER_WAIT = 10.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"
        return text + (f"\n        fix: {self.fix}" if self.fix else "")


def config_line(path: str, message: str) -> int | None:
    """The line of the file a config error is about: TOML's own, or the key's."""
    try:
        text = Path(path).read_text()
    except OSError:
        text = ""
    return config_mod.error_line(text, message)


def check_config(path: str) -> tuple[Check, config_mod.Config | None]:
    try:
        cfg = config_mod.load(path)
    except config_mod.ConfigError as exc:
        line = config_line(path, str(exc))
        where = f"{path}, line {line}" if line else path
        return Check("config", False, f"{where}: {exc}",
                     "correct that line (intercom check-config shows every key's rule)"), None
    return Check("config", True, f"{path} is valid"), cfg


async def check_audio(cfg: config_mod.Config) -> Check:
    from intercom.app.callmedia import CallMedia
    from intercom.hal.board import with_board_audio
    from intercom.hal.errors import HalError
    try:
        cfg = with_board_audio(cfg)
    except HalError as exc:
        return Check("audio", False, f"the board profile: {exc}", "check [board] profile")
    a = cfg.audio
    media = CallMedia(cfg, lambda: "127.0.0.1", lambda leg, d: None, lambda m: None)
    error = await media.probe()
    what = f"{a.device} card" + (f" (capture {a.capture!r}, playback {a.playback!r})"
                                    if a.device == "alsa" else "")
    if error is None and a.device == "alsa" and a.mixer:
        from intercom.media.devices import set_mixer
        problems = set_mixer(a.playback, a.mixer)
        if problems:
            return Check("audio", False, f"{what} opens, but " + "; ".join(problems),
                         "list the card's controls with `amixer -D hw:CARD scontrols` and "
                         "fix [audio] mixer (or the board profile's)")
    if error is None:
        return Check("audio", True, f"{what} opens at {a.rate} Hz")
    fix = ("list the cards with `arecord -l` and `aplay -l`, and set [audio] capture and "
           "playback (e.g. plughw:CARD=Device,DEV=0); the user needs the audio group"
           if a.device == "alsa" else "check [audio] mic_file and speaker_file")
    return Check("audio", False, f"{what}: {error}", fix)


def check_board(cfg: config_mod.Config) -> Check:
    from intercom.hal.board import open_board
    from intercom.hal.errors import HalError
    b = cfg.board
    try:
        board = open_board(b.type, b.profile)
    except HalError as exc:
        fix = ("run on a Raspberry Pi with python3-lgpio, as a user in the gpio group; or "
               "set [board] type = \"simulated\"" if b.type == "gpio"
               else "check [board] profile")
        return Check("board", False, str(exc), fix)
    try:
        p = board.profile
        relay = f"GPIO{p.relay_pin}" if p.relay_pin is not None else \
            f"serial {p.relay_serial['port'] if p.relay_serial else ''}"
        return Check("board", True, f"{b.type} board {p.name!r}: buttons "
                     f"{', '.join(sorted(board.buttons))}, relay {relay} (released)")
    finally:
        board.set_relay(False)
        board.close()


def check_camera(cfg: config_mod.Config) -> Check:
    """The configured camera opened and one picture taken (not while the station runs:
    it holds the camera)."""
    from intercom.hal.board import profile_for
    from intercom.hal.camera import CameraError, open_camera
    from intercom.hal.errors import HalError
    c = cfg.camera
    if c.source == "none":
        return Check("camera", True, "none configured: the station works audio-only")
    try:
        board_camera = profile_for(cfg.board.type, cfg.board.profile).camera
        camera = open_camera(c.source, c.width, c.height, c.fps, c.device, board_camera,
                             cfg.board.type != "simulated")
    except (CameraError, HalError) as exc:
        return Check("camera", False, str(exc), "check [camera] source and device, or set "
                                                "source = \"none\" for audio only")
    if camera is None:
        return Check("camera", True, "auto found none: the station works audio-only")
    try:
        frame = camera.frame()
    except CameraError as exc:
        return Check("camera", False, str(exc), "see what the camera said above")
    finally:
        camera.close()
    return Check("camera", True, f"{type(camera).__name__} gives {frame.shape[1]}x"
                                 f"{frame.shape[0]} pictures")


def check_sounds(cfg: config_mod.Config) -> Check:
    """The announcements load (each file as the station reads it), and a visitor
    asked for a message is asked in words."""
    from intercom.media.sounds import EVENTS, find_announcements
    s, r = cfg.sounds, cfg.recordings
    found, problems = find_announcements(s.directory, cfg.station.language)
    if problems:
        return Check("sounds", False, "; ".join(problems),
                     f"name the files {', '.join(EVENTS)} (.opus, .ogg or 16-bit .wav) "
                     "or remove the others")
    detail = (f"announcements for {', '.join(sorted(found))} ({cfg.station.language}); "
              "the rest play their tones") if found else "the generated tones"
    if r.messages and "leave_message" not in found:
        detail += "; messages are on with no leave_message announcement, so a visitor " \
                  "hears only the beep"
    return Check("sounds", True, detail)


def check_recordings(cfg: config_mod.Config) -> Check:
    """Where messages and recorded calls are kept, if either is on: writable."""
    from intercom.app.recordings import recordings_store
    r = cfg.recordings
    taken = [what for what, on in (("messages", r.messages), ("calls", r.calls)) if on]
    if not taken:
        return Check("recordings", True, "none taken (recordings.messages and calls are off)")
    store = recordings_store(cfg)
    try:
        store.writing("doctor").discard()
    except OSError as exc:
        return Check("recordings", False, f"{store.directory}: {exc.strerror or exc}",
                     "make the station's state directory writable ([log] database)")
    kept = store.list()
    return Check("recordings", True,
                 f"{' and '.join(taken)} kept in {store.directory}: {len(kept)} of at most "
                 f"{r.keep}, {sum(k.size for k in kept) / 2 ** 20:.1f} of {r.max_mb} MB")


def check_route(cfg: config_mod.Config) -> Check:
    from intercom.app.network import registrar_of, route_address
    target = registrar_of(cfg) or SipUri.parse(cfg.call.targets[0])
    try:
        local = route_address(cfg)
    except OSError as exc:
        return Check("network", False, f"no route to {target.host}: {exc}",
                     "check the network cable or Wi-Fi, and the default route (ip route)")
    return Check("network", True, f"{target.host} is reached from {local}")


async def check_dns(cfg: config_mod.Config) -> Check:
    from intercom.app.network import registrar_of
    from intercom.sip.locate import needs_srv
    from intercom.sip.resolver import locate, make_resolver
    registrar = registrar_of(cfg)
    if registrar is None:
        return Check("dns", True, "no registrar: calls go to the targets directly")
    if not needs_srv(registrar):
        return Check("dns", True, f"{registrar.host} needs no look-up")
    try:
        s = cfg.sip
        places = await locate(registrar, make_resolver(s.dns_servers),
                              transport=None if s.transport == "auto" else s.transport)
    except Exception as exc:                     # dnspython's many errors, all alike here
        return Check("dns", False, f"{registrar.host}: {exc}",
                     "check /etc/resolv.conf or [sip] dns_servers, and the domain's records")
    if not places:
        return Check("dns", False, f"{registrar.host}: no NAPTR, SRV or address records",
                     "check the registrar's name in [sip] registrar")
    shown = ", ".join(f"{d.host}:{d.port}/{d.transport}" for d in places[:4])
    return Check("dns", True, f"{registrar.host} is at {shown}")


async def check_registration(cfg: config_mod.Config) -> Check:
    from intercom.app.network import (UNANSWERED_FIX, registrar_of, registration_fix,
                                      user_agent)
    from intercom.sip import events as ev
    from intercom.sip.transport import SipEndpoint
    registrar = registrar_of(cfg)
    if registrar is None:
        return Check("registration", True, "no registrar configured")
    trial = replace(cfg, sip=replace(cfg.sip, port=_free_udp_port(cfg.sip.listen)))
    ua = user_agent(trial)
    seen: asyncio.Queue[ev.RegistrationChanged] = asyncio.Queue()

    def on_event(event: ev.UaEvent) -> None:
        if isinstance(event, ev.RegistrationChanged):
            seen.put_nowait(event)
    endpoint = await SipEndpoint.open(ua, (trial.sip.listen, trial.sip.port),
                                      on_event, listen_tcp=False)
    try:
        endpoint.run(ua.register)
        try:
            result = await asyncio.wait_for(seen.get(), REGISTER_WAIT)
        except TimeoutError:
            return Check("registration", False, f"no answer from {registrar} in "
                         f"{REGISTER_WAIT:.0f} s", UNANSWERED_FIX)
        if result.state != "registered":
            return Check("registration", False,
                         f"{registrar} answered {result.status} {result.reason}",
                         registration_fix(result.status))
        endpoint.run(ua.unregister)
        await asyncio.sleep(0.2)
        return Check("registration", True, f"{ua.settings.aor} registered at {registrar} "
                     f"({result.status} {result.reason}; trial binding removed)")
    finally:
        endpoint.close()


async def check_stun(cfg: config_mod.Config) -> Check:
    from intercom.app.network import route_address
    from intercom.media.rtp import RtpSession
    from intercom.sip.address import parse_hostport
    server = cfg.sip.stun_server
    if not server:
        return Check("nat", True, "no STUN server configured: SDP carries the local address")
    host, port = parse_hostport(server, 3478)
    rtp = await RtpSession.open(cfg.sip.listen, 40000, 49998, lambda *a: None)
    try:
        found = await rtp.public_address((host.strip("[]"), port or 3478))
    finally:
        rtp.close()
    if found is None:
        return Check("nat", False, f"STUN server {server} did not answer",
                     "check [sip] stun_server, and that UDP to it is allowed")
    local = route_address(cfg)
    behind = "behind NAT" if found[0] != local else "not behind NAT"
    return Check("nat", True, f"STUN sees us at {found[0]}:{found[1]}, local {local}: {behind}")


def station_state(cfg: config_mod.Config) -> dict[str, Any] | None:
    from intercom.control import socket_path
    path = socket_path(cfg.control.socket)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect(str(path))
            sock.sendall(b'{"cmd": "state"}\n')
            reply: dict[str, Any] = json.loads(sock.makefile().readline())
            state: dict[str, Any] | None = reply.get("state")
            return state
    except (OSError, ValueError):
        return None


def check_sip_port(cfg: config_mod.Config) -> Check:
    """The SIP port is free for the station, or held by the station itself."""
    s = cfg.sip
    host = s.listen if s.listen not in ("", "::") else "0.0.0.0"
    taken = []
    for kind, name in ((socket.SOCK_DGRAM, "UDP"), (socket.SOCK_STREAM, "TCP")):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as probe:
            try:
                probe.bind((host, s.port))
            except OSError as exc:
                taken.append(f"{name} ({exc.strerror or exc})")
    where = f"{host}:{s.port}"
    if not taken:
        return Check("sip port", True, f"{where} is free for the station")
    if station_state(cfg) is not None:
        return Check("sip port", True, f"{where} is in use by the running station")
    return Check("sip port", False, f"{where} cannot be used: {', '.join(taken)}",
                 f"stop the program that holds it (`ss -lunp 'sport = :{s.port}'` names "
                 "it), or set [sip] port to a free one")


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host if host not in ("", "::") else "0.0.0.0", 0))
        return int(s.getsockname()[1])


def in_use(state: dict[str, Any]) -> list[Check]:
    """The card and the board as the running station reports them (asked from inside
    it, the doctor must not open what the station holds)."""
    board = state["board"]
    audio = state["audio"]
    return [Check("audio", audio["error"] is None,
                  f"{audio['device']} card in use by the station" +
                  (f": {audio['error']}" if audio["error"] else ""),
                  "see the audio device's errors in the log" if audio["error"] else ""),
            Check("board", True, f"{board['type']} board {board['profile']!r} in use by the "
                                 f"station: buttons {', '.join(state['buttons'])}"),
            Check("camera", state["camera"]["error"] is None,
                  f"{state['camera']['source']} camera in use by the station" +
                  (f": {state['camera']['error']}" if state["camera"]["error"] else ""),
                  "check [camera] source and device" if state["camera"]["error"] else "")]


async def run_checks(path: str, say: Callable[[str], None],
                     running: dict[str, Any] | None = None) -> int:
    """Each check, said as it is done; 1 if any failed. ``running``: the state of the
    station that asks (the HTTP API's doctor), whose card and board stay its own."""
    config_check, cfg = check_config(path)
    say(config_check.line())
    if cfg is None:
        return 1
    own = in_use(running) if running is not None else \
        [await check_audio(cfg), check_board(cfg), await asyncio.to_thread(check_camera, cfg)]
    checks = [*own, check_sounds(cfg), check_recordings(cfg), check_sip_port(cfg),
              check_route(cfg)]
    for check in checks:
        say(check.line())
    if checks[-1].ok:
        for step in (check_dns, check_registration, check_stun):
            check = await step(cfg)
            checks.append(check)
            say(check.line())
            if not check.ok and step is check_dns:
                break
    state = station_state(cfg)
    if state is not None:
        say(f"note  the running station: registration {state['registration']['state']}, "
            f"call {state['call']['state']}, alarms {', '.join(state.get('alarms', [])) or 'none'}")
    failed = [c for c in checks if not c.ok]
    say("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    return 1 if failed else 0


def doctor(path: str) -> int:
    return asyncio.run(run_checks(path, print))
