"""The commands of ``intercom`` (run, check-config, ctl, demo, doctor...): their
parser and their work. The entry point is intercom.cli, which sends a simple
``intercom ctl`` the short way (intercom.ctl) and everything else here."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intercom import config as config_mod
from intercom.hal.board import open_board, with_board_audio
from intercom.hal.errors import HalError

if TYPE_CHECKING:
    from intercom.app.events import Event
    from intercom.media.devices import AudioDevice

EXIT_CONFIG = 2


def _load_config(path: str) -> config_mod.Config:
    try:
        return config_mod.load(path)
    except config_mod.ConfigError as exc:
        print(f"intercom: config error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _stop_on_signals(stop: asyncio.Event | None = None) -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets. Where the loop cannot take signal
    handlers (not the main thread, as in tests), the caller's ``stop`` ends it."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def _version() -> str:
    from intercom import __version__
    return __version__


async def serve(cfg: config_mod.Config, stop: asyncio.Event | None = None,
                config_path: str | None = None) -> int:
    """Run a station until SIGTERM/SIGINT (or ``stop`` is set); ``config_path`` is the
    file ``cfg`` came from (the HTTP API shows and replaces it)."""
    from intercom.app.station import DoorStation
    from intercom.control import ControlError, ControlServer, socket_path
    from intercom.hal import machine
    log = logging.getLogger("intercom")
    log.info("intercom %s on %s; board %s (profile %s), audio %s", _version(), machine.describe(),
             cfg.board.type, cfg.board.profile or "default", cfg.audio.device)
    try:
        cfg = with_board_audio(cfg)
        board = open_board(cfg.board.type, cfg.board.profile)
    except HalError as exc:
        log.error("board: %s", exc)
        return 1
    a = cfg.audio
    if a.device == "alsa" and a.mixer:
        from intercom.media.devices import set_mixer
        for error in set_mixer(a.playback, a.mixer):
            log.error("audio: %s", error)
    stop = _stop_on_signals(stop)
    loop = asyncio.get_running_loop()
    try:
        station = DoorStation(cfg, board)
    except config_mod.ConfigError as exc:
        log.error("config: %s", exc)
        board.close()
        return 1
    control = ControlServer(station, socket_path(cfg.control.socket))
    try:
        control.check_free()                      # before it registers or takes the port
    except ControlError as exc:
        log.error("%s", exc)
        board.close()
        return 1
    try:
        await station.start()
    except OSError as exc:
        log.error("cannot open SIP port %s:%d: %s", cfg.sip.listen, cfg.sip.port, exc)
        board.close()
        return 1
    from intercom.service import Notifier, status_line, watchdog
    notifier = Notifier()
    pinger = loop.create_task(watchdog(notifier, station.trouble))
    api = None
    if cfg.http.listen:
        from intercom.app.eventlog import state_directory
        from intercom.app.httpapi import HttpApi
        api = HttpApi(station, cfg.http, state_directory(cfg.log.database), config_path)
        try:
            await api.start()
        except (OSError, config_mod.ConfigError) as exc:   # the door station goes on
            log.error("HTTP API on %s: %s", cfg.http.listen, exc)
            api = None
    try:
        try:
            await control.start()
        except ControlError as exc:               # another station came up meanwhile
            log.error("%s", exc)
            return 1
        log.info("control socket %s", control.path)
        # Ready: the config is loaded and the first registration attempt is made.
        notifier.notify("READY=1", f"STATUS={status_line(station)}")
        from intercom.app.events import EventKind

        def report(event: Event) -> None:
            if event.kind in (EventKind.REGISTRATION, EventKind.CALL, EventKind.ALARM):
                notifier.notify(f"STATUS={status_line(station)}")
        station.subscribe(report)
        await stop.wait()
    finally:
        notifier.notify("STOPPING=1")
        pinger.cancel()
        if api is not None:
            await api.stop()
        await station.stop()            # its last events still reach `ctl events`
        await control.stop()
        board.close()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if not args.wait_for_config:
        cfg = _load_config(args.config)
        _setup_logging(cfg.log.level)
        return asyncio.run(serve(cfg, config_path=args.config))
    # As a service: a broken config leaves the station up, the door locked and the
    # error on the LEDs, until the file is fixed.
    while True:
        try:
            cfg = config_mod.load(args.config)
        except config_mod.ConfigError as exc:
            _setup_logging("info")
            if not asyncio.run(_wait_for_config(args.config, str(exc))):
                return EXIT_CONFIG
            continue
        _setup_logging(cfg.log.level)
        return asyncio.run(serve(cfg, config_path=args.config))


async def _wait_for_config(path: str, error: str) -> bool:
    from intercom.service import wait_for_config
    return await wait_for_config(path, error, _stop_on_signals())


def cmd_doctor(args: argparse.Namespace) -> int:
    from intercom.doctor import doctor
    logging.basicConfig(level=logging.CRITICAL)        # the checks say it all
    return doctor(args.config)


def cmd_upgrade(args: argparse.Namespace) -> int:
    from intercom import upgrade
    try:
        if args.step == "install":
            if args.wheel is None:
                print("intercom upgrade install: name the wheel", file=sys.stderr)
                return 2
            upgrade.install(args.root, args.wheel, Path(args.config), args.restart, args.check,
                            args.index)
        else:
            upgrade.rollback(args.root, args.restart, args.check)
    except upgrade.UpgradeError as exc:
        print(f"intercom upgrade: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_relay_off(args: argparse.Namespace) -> int:
    """Release the door relay (systemd's ExecStopPost, after any stop or crash)."""
    from intercom.service import fallback_board
    try:
        cfg = config_mod.load(args.config)
        kind, profile = cfg.board.type, cfg.board.profile
    except config_mod.ConfigError:
        kind, profile = fallback_board(args.config)
    try:
        board = open_board(kind, profile)
    except HalError as exc:
        print(f"intercom relay-off: {exc}", file=sys.stderr)
        return 1
    board.set_relay(False)
    board.close()
    print("relay released")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    path = args.config or args.file
    if not path or (args.config and args.file and args.config != args.file):
        print("intercom check-config: give one config file: check-config FILE "
              "(or --config FILE, as the other commands take it)", file=sys.stderr)
        return EXIT_CONFIG
    cfg = _load_config(path)
    print(f"{path}: ok")
    if args.verbose:
        print(json.dumps(cfg, indent=2))
    return 0


def _ctl_socket(args: argparse.Namespace) -> str:
    from intercom.control import socket_path
    if args.socket:
        return str(args.socket)
    configured = _load_config(args.config).control.socket if args.config else ""
    return str(socket_path(configured))


CTL_USAGE = {"press": "press BUTTON", "door": "door open|hold|lock",
             "input": "input door|tamper on|off"}


def _ctl_request(action: str, words: list[str]) -> dict[str, object] | None:
    """The control request for ``intercom ctl ACTION WORDS...``; None if malformed."""
    request: dict[str, object] = {"cmd": action}
    if action == "press" and len(words) == 1:
        request["button"] = words[0]
    elif action == "door" and len(words) == 1:
        request["action"] = words[0]
    elif action == "input" and len(words) == 2 and words[1] in ("on", "off"):
        request["name"], request["active"] = words[0], words[1] == "on"
    elif action in CTL_USAGE or words:
        return None
    return request


def format_logged(event: dict[str, Any]) -> str:
    """One line of ``intercom ctl log``: local time, kind, then what it says."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["time"]))
    rest = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) or ' ' in v or not v else v}"
                    for k, v in event.items() if k not in ("time", "event") and v not in (None, ""))
    return f"{when} {event['event']:<13} {rest}"


def cmd_ctl(args: argparse.Namespace) -> int:
    path = _ctl_socket(args)
    request = _ctl_request(args.action, args.words)
    if request is None:
        usage = CTL_USAGE.get(args.action, args.action)
        print(f"intercom ctl: usage: intercom ctl {usage}", file=sys.stderr)
        return 2
    if args.action == "log":
        request["count"] = args.count or 20
        if args.kind:
            request["kind"] = args.kind
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(10)
        sock.connect(path)
    except OSError as exc:
        sock.close()
        if args.action == "log":
            return _log_from_file(args)           # the record is there with the station down
        print(f"intercom ctl: cannot reach the station at {path}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    with sock, sock.makefile("rwb") as stream:
        stream.write(json.dumps(request).encode() + b"\n")
        stream.flush()
        if args.action != "events":
            reply = json.loads(stream.readline() or b"{}")
            if not reply.get("ok"):
                print(f"intercom ctl: {reply.get('error', 'failed')}", file=sys.stderr)
                return 1
            if args.action == "state":
                print(json.dumps(reply["state"], indent=2))
            for event in reply.get("events", []):
                print(json.dumps(event) if args.json else format_logged(event))
            return 0
        return _print_events(sock, stream, args.count, args.timeout)


def _log_from_file(args: argparse.Namespace) -> int:
    """``ctl log`` while the station is stopped: read its SQLite event log directly."""
    import sqlite3
    from intercom.app.eventlog import default_path, read_latest
    configured = _load_config(args.config).log.database if args.config else ""
    path = Path(configured) if configured else default_path()
    try:
        events = read_latest(path, args.count or 20, args.kind)
    except (sqlite3.Error, OSError) as exc:
        print(f"intercom ctl: the station is not running, and its event log {path} "
              f"cannot be read: {exc}", file=sys.stderr)
        return 1
    for event in events:
        print(json.dumps(event) if args.json else format_logged(event))
    return 0


def _print_events(sock: socket.socket, stream: object, count: int | None,
                  timeout: float | None) -> int:
    deadline = None if timeout is None else time.monotonic() + timeout
    stream.readline()  # type: ignore[attr-defined]   # the {"ok": true} greeting
    seen = 0
    while count is None or seen < count:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return 1
        sock.settimeout(remaining)
        try:
            line = stream.readline()  # type: ignore[attr-defined]
        except TimeoutError:
            return 1
        if not line:
            return 0
        sys.stdout.write(line.decode())
        sys.stdout.flush()
        seen += 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from intercom.demo import run_demo
    return run_demo(keep=args.keep, verbose=args.verbose)


def cmd_sim(args: argparse.Namespace) -> int:
    from intercom.sim import run_sim
    socket = args.socket or (Path(_ctl_socket(args)) if args.config else None)
    if socket is None:
        # Its own station: its log goes to a file, not over the screen.
        log_file = Path(tempfile.gettempdir()) / "intercom-sim.log"
        logging.basicConfig(filename=log_file, level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        print(f"the station's log: {log_file}", file=sys.stderr)
    return run_sim(socket)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Measure the echo path through the configured sound card; write the settings."""
    from intercom.media import calibrate
    from intercom.media.devices import AudioDeviceError
    cfg = _load_config(args.config)
    try:
        device = calibration_device(cfg)
    except HalError as exc:
        print(f"intercom: board profile: {exc}", file=sys.stderr)
        return 1
    print(f"calibrating: playing a {calibrate.SWEEP_SECONDS:.1f} s sweep and "
          f"{calibrate.NOISE_SECONDS:.0f} s of noise through the speaker; keep the street quiet")
    try:
        played, recorded = calibrate.run(device)
    except AudioDeviceError as exc:
        print(f"intercom: audio device: {exc}", file=sys.stderr)
        return 1
    result = calibrate.analyse(played, recorded, device.rate)
    print(f"  echo delay   {result.delay_ms:7.1f} ms (speaker to microphone)\n"
          f"  echo level   {result.echo_db:7.1f} dB (against what was played)\n"
          f"  room         {result.room_ms:7.0f} ms\n"
          f"  noise floor  {result.noise_dbfs:7.1f} dBFS")
    if result.echo_db < -60:
        print("intercom: no echo found: is the speaker connected and the volume up?",
              file=sys.stderr)
        return 1
    settings: dict[str, object] = dict(result.settings())
    training = str(Path(args.config).resolve().with_name("echo-training.wav"))
    settings["echo_training"] = training
    print("  [audio] " + ", ".join(f"{k} = {v}" for k, v in settings.items()))
    if args.dry_run:
        return 0
    try:
        calibrate.save_training(training, played, recorded, device.rate)
    except OSError as exc:
        print(f"intercom: cannot write {training}: {exc}", file=sys.stderr)
        return 1
    try:
        config_mod.update_file(args.config, "audio", settings)
    except (OSError, config_mod.ConfigError) as exc:
        print(f"intercom: cannot write {args.config}: {exc}", file=sys.stderr)
        return 1
    print(f"written to {args.config}")
    return 0


def calibration_device(cfg: config_mod.Config) -> AudioDevice:
    """The configured sound card; the simulated one with a quiet street (no visitor)."""
    from intercom.media.devices import AlsaSoundCard, SimulatedSoundCard
    from intercom.media.echo import EchoPathSpec
    a = with_board_audio(cfg).audio
    period = a.rate * a.period_ms // 1000
    if a.device == "alsa":
        return AlsaSoundCard(a.rate, period, a.capture, a.playback)
    echo = None
    if a.sim_echo_gain_db > -120:
        echo = EchoPathSpec(a.sim_echo_delay_ms, a.sim_echo_room_ms, a.sim_echo_gain_db,
                            a.sim_noise_dbfs)
    return SimulatedSoundCard(a.rate, period, mic_tone_hz=0, echo=echo)


def cmd_account(args: argparse.Namespace) -> int:
    """The HTTP API's accounts, in the file the station's config names."""
    import getpass

    from intercom.app.accounts import AccountError, Accounts, accounts_path
    from intercom.app.eventlog import state_directory
    if args.step != "list" and not args.name:
        print(f"intercom account {args.step}: name the account", file=sys.stderr)
        return 2
    cfg = _load_config(args.config)
    accounts = Accounts(accounts_path(cfg.http.accounts, state_directory(cfg.log.database)))
    try:
        if args.step == "list":
            for name, rights in accounts.names():
                print(f"{name}\t{rights}")
            return 0
        if args.step == "remove":
            accounts.remove(args.name)
            print(f"account {args.name!r} removed")
            return 0
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass(f"password for {args.name}: ")
            if getpass.getpass("again: ") != password:
                print("intercom account: the two passwords differ", file=sys.stderr)
                return 1
        accounts.add(args.name, password, args.rights)
    except AccountError as exc:
        print(f"intercom account: {exc}", file=sys.stderr)
        return 1
    print(f"account {args.name!r} with {args.rights} rights in {accounts.path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="intercom", description="SIP door-intercom firmware")
    p.add_argument("--version", action="version", version=f"intercom {_version()}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the door station")
    run.add_argument("--config", required=True, help="TOML config file")
    run.add_argument("--wait-for-config", action="store_true",
                     help="if the config cannot be used, keep the door locked, show the "
                          "error on the LEDs and wait for the file to be fixed (the service)")
    run.set_defaults(func=cmd_run)
    acc = sub.add_parser("account", help="the HTTP API's accounts: add (or change), "
                                         "remove, list")
    acc.add_argument("step", choices=("add", "remove", "list"))
    acc.add_argument("name", nargs="?", default="", help="the account's name")
    acc.add_argument("--rights", choices=("view", "open", "admin"), default="view",
                     help="view: state and events; open: also the door and calls; "
                          "admin: also the config")
    acc.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    acc.add_argument("--config", required=True, help="TOML config file")
    acc.set_defaults(func=cmd_account)
    doc = sub.add_parser("doctor", help="check config, sound card, GPIO, network, DNS, "
                                        "registration and NAT, and say what to fix")
    doc.add_argument("--config", required=True, help="TOML config file")
    doc.set_defaults(func=cmd_doctor)
    from intercom import upgrade as upgrade_defaults
    up = sub.add_parser("upgrade", help="install a new version (a wheel) onto this station, "
                                        "or go back to the previous one")
    up.add_argument("step", choices=("install", "rollback"))
    up.add_argument("wheel", nargs="?", type=Path, help="with install: the wheel, in a "
                                                        "directory with its dependencies")
    up.add_argument("--config", default="/etc/intercom/intercom.toml",
                    help="the station's config, which the new version must accept")
    up.add_argument("--root", type=Path, default=Path("/opt/intercom"),
                    help="where the releases and the .venv link live")
    up.add_argument("--restart", default=upgrade_defaults.RESTART, help="restarts the service")
    up.add_argument("--check", default=upgrade_defaults.CHECK,
                    help="succeeds when the restarted service runs")
    up.add_argument("--index", action="store_true",
                    help="fetch dependencies from the package index (default: offline)")
    up.set_defaults(func=cmd_upgrade)
    off = sub.add_parser("relay-off", help="release the door relay (after a stop or crash)")
    off.add_argument("--config", required=True, help="TOML config file (for the board)")
    off.set_defaults(func=cmd_relay_off)
    check = sub.add_parser("check-config", help="check a config file and exit (2 if bad)")
    check.add_argument("file", nargs="?", help="TOML config file")
    check.add_argument("--config", help="the same, as the other commands take it")
    check.add_argument("-v", "--verbose", action="store_true", help="print it with defaults")
    check.set_defaults(func=cmd_check_config)
    ctl = sub.add_parser("ctl", help="control a running station")
    ctl.add_argument("--socket", type=Path, help="control socket path")
    ctl.add_argument("--config", help="take the socket path from this config")
    ctl.add_argument("action", choices=("press", "state", "events", "log", "hangup", "door",
                                        "input"))
    ctl.add_argument("words", nargs="*", metavar="ARG",
                     help="press BUTTON; door open|hold|lock; input door|tamper on|off "
                          "(simulated board)")
    ctl.add_argument("--count", type=int, help="with events: stop after this many; with "
                                                "log: show this many (20)")
    ctl.add_argument("--kind", help="with log: only events of this kind (call_record, door, "
                                    "alarm, door_contact, registration, call, snapshot, "
                                    "recording)")
    ctl.add_argument("--json", action="store_true", help="with log: JSON lines")
    ctl.add_argument("--timeout", type=float, help="with events: give up after this many s")
    ctl.set_defaults(func=cmd_ctl)
    cal = sub.add_parser("calibrate", help="measure the echo path, write the settings")
    cal.add_argument("--config", required=True, help="TOML config file to calibrate")
    cal.add_argument("--dry-run", action="store_true", help="print, do not write")
    cal.set_defaults(func=cmd_calibrate)
    demo = sub.add_parser("demo", help="simulated station calls a built-in demo phone")
    demo.add_argument("--keep", action="store_true", help="keep the recordings")
    demo.add_argument("-v", "--verbose", action="store_true", help="show the station's log")
    demo.set_defaults(func=cmd_demo)
    sim = sub.add_parser("sim", help="the simulated station live in the terminal: press "
                                     "the bells with keys, watch LEDs, relay, door, call")
    sim.add_argument("--socket", type=Path, help="a running station's control socket; "
                                                 "without it (or --config): a station of its "
                                                 "own on the embedded default")
    sim.add_argument("--config", help="take the running station's socket from this config")
    sim.set_defaults(func=cmd_sim)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
