"""The short way for ``intercom ctl``: a simple command straight to the control socket.

``intercom ctl press bell`` is what a script, a second button daemon or a home
automation hook runs, and the visitor waits for the INVITE it starts. So this
module imports nothing but ``os`` and ``socket`` (no argparse, json, asyncio or
config), writes the one-line request itself and reads the reply, and says what
went wrong as the full way does. Whatever it does not take in exactly (other
commands, other options, odd words) it hands back to intercom.commands.
"""
from __future__ import annotations

import os
import socket
import sys

SERVICE_SOCKET = "/run/intercom/control.sock"
# Each command the short way takes, with the words it takes (None: any plain name).
WORDS: dict[str, tuple[frozenset[str] | None, ...]] = {
    "press": (None,),
    "door": (frozenset({"open", "hold", "lock"}),),
    "hangup": (),
    "input": (None, frozenset({"on", "off"})),
}
OK = b'{"ok": true}\n'


def default_socket() -> str:
    """Where the socket is when [control] socket is empty. The service (systemd's
    RuntimeDirectory=intercom) and everyone on its machine (root, or an admin in
    the intercom group, whatever their own runtime directory) meet at
    /run/intercom; a station run by hand uses the user's runtime directory."""
    service = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if service:
        return os.path.join(service, "control.sock")
    if os.path.exists(SERVICE_SOCKET):
        return SERVICE_SOCKET
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "intercom", "control.sock")
    if os.geteuid() == 0:
        return SERVICE_SOCKET
    return f"/tmp/intercom-{os.geteuid()}/control.sock"


def _plain(word: str) -> bool:
    """A button or input name: letters, digits, ``_`` and ``-``, not an option."""
    return (0 < len(word) <= 64 and not word.startswith("-")
            and all(c.isascii() and (c.isalnum() or c in "_-") for c in word))


def request(args: list[str]) -> tuple[str, bytes] | None:
    """The socket and the request line for ``intercom ctl ARGS``, or None when
    they are not a simple command the short way takes."""
    path = ""
    if args[:1] == ["--socket"] and len(args) >= 2:
        path, args = args[1], args[2:]
    elif args[:1] and args[0].startswith("--socket="):
        path, args = args[0].partition("=")[2], args[1:]
    if not args or args[0] not in WORDS or not path and "--config" in args:
        return None
    action, words = args[0], args[1:]
    allowed = WORDS[action]
    if len(words) != len(allowed) or not all(
            _plain(w) if choices is None else w in choices for w, choices in zip(words, allowed)):
        return None
    fields = [f'"cmd": "{action}"']
    if action == "press":
        fields.append(f'"button": "{words[0]}"')
    elif action == "door":
        fields.append(f'"action": "{words[0]}"')
    elif action == "input":
        fields.append(f'"name": "{words[0]}", "active": {"true" if words[1] == "on" else "false"}')
    return path or default_socket(), ("{" + ", ".join(fields) + "}\n").encode()


def quick(args: list[str]) -> int | None:
    """Run ``intercom ctl ARGS`` the short way: the exit status, or None to have
    it done the full way (which also explains any failure in full)."""
    found = request(args)
    if found is None:
        return None
    path, line = found
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        try:
            sock.connect(path)
        except OSError as exc:
            print(f"intercom ctl: cannot reach the station at {path}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
        sock.sendall(line)
        reply = b""
        while not reply.endswith(b"\n") and len(reply) < 65536:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    if reply == OK:
        return 0
    import json
    try:
        error = json.loads(reply).get("error", "failed")
    except (ValueError, AttributeError):
        error = f"unexpected reply {reply[:200]!r}"
    print(f"intercom ctl: {error}", file=sys.stderr)
    return 1
