"""``intercom upgrade``: a new version onto a running station, with rollback.

Each release lives in its own virtual environment under ``ROOT/releases``;
``ROOT/.venv`` (what the service runs) is a symlink to the one in use and
``ROOT/previous`` to the one before. An upgrade:

1. makes a new environment and installs the wheel into it, offline from the
   wheel's own directory (a wheelhouse with its dependencies) unless told
   to use an index;
2. has the new version check the station's config (a version that would not
   take it is never switched to);
3. switches the symlinks, each by an atomic rename;
4. restarts the service and checks it (``systemctl restart intercom``, then
   ``systemctl is-active``), and if that fails switches back and restarts
   the old version.

``rollback`` switches back to the previous release by hand. Old releases
beyond the newest few are removed.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

KEEP = 3
RESTART = "systemctl restart intercom"
CHECK = "systemctl is-active --quiet intercom"


class UpgradeError(RuntimeError):
    """An upgrade step failed; the station runs what it ran before."""


def _switch(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` by renaming a new symlink over it (atomic)."""
    tmp = link.with_name(f".{link.name}.new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def current(root: Path) -> Path | None:
    link = root / ".venv"
    return link.resolve() if link.is_symlink() else None


def _run(command: list[str], what: str, timeout: float = 600) -> None:
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise UpgradeError(f"{what} failed ({out.returncode}): "
                           f"{(out.stderr or out.stdout).strip()[-800:]}")


def install(root: Path, wheel: Path, config: Path, restart: str = RESTART, check: str = CHECK,
            index: bool = False, say: Callable[[str], None] = print) -> Path:
    """Install ``wheel`` as the running release; returns its directory."""
    releases = root / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    version = wheel.name.split("-")[1] if wheel.name.count("-") >= 2 else "unknown"
    release = releases / f"{version}-{time.strftime('%Y%m%d%H%M%S')}"
    say(f"installing {wheel.name} into {release}")
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(release)], "venv")
    pip = [str(release / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check"]
    if not index:
        pip += ["--no-index", "--find-links", str(wheel.parent)]
    try:
        _run(pip + [str(wheel)], "installing the wheel")
        _run([str(release / "bin" / "intercom"), "check-config", str(config)],
             "the new version checking the config")
    except UpgradeError:
        shutil.rmtree(release, ignore_errors=True)
        raise
    link = root / ".venv"
    if link.is_dir() and not link.is_symlink():
        # The first upgrade of a station installed by hand (scripts/setup made a
        # plain .venv): that becomes a release like any other, to go back to.
        adopted = releases / f"installed-{time.strftime('%Y%m%d%H%M%S')}"
        os.rename(link, adopted)
        link.symlink_to(adopted)
        say(f"kept the installed version as {adopted.name}")
    before = current(root)
    previous = root / "previous"
    before_previous = previous.resolve() if previous.is_symlink() else None
    _switch(root / ".venv", release)
    if before is not None:
        _switch(root / "previous", before)
    say(f"switched to {release.name}; restarting")
    if _restarted(restart, check):
        say(f"running {release.name}")
        _prune(releases, keep={release, before})
        return release
    if before is None:
        raise UpgradeError(f"{release.name} does not start, and there is nothing to go back to")
    say(f"{release.name} does not start: going back to {before.name}")
    _switch(root / ".venv", before)
    if before_previous is not None:
        _switch(previous, before_previous)
    else:
        previous.unlink()
    _restarted(restart, check)
    shutil.rmtree(release, ignore_errors=True)
    raise UpgradeError(f"{release.name} did not start; rolled back to {before.name}")


def rollback(root: Path, restart: str = RESTART, check: str = CHECK,
             say: Callable[[str], None] = print) -> Path:
    previous = root / "previous"
    if not previous.is_symlink() or not previous.resolve().is_dir():
        raise UpgradeError("there is no previous release to go back to")
    back, now = previous.resolve(), current(root)
    _switch(root / ".venv", back)
    if now is not None:
        _switch(previous, now)
    say(f"switched back to {back.name}; restarting")
    if not _restarted(restart, check):
        raise UpgradeError(f"{back.name} does not start either; see journalctl -u intercom")
    return back


def _restarted(restart: str, check: str, settle: float = 2.0) -> bool:
    """Restart, then check (after ``settle`` seconds, so a crash at start shows)."""
    if subprocess.run(shlex.split(restart), timeout=120).returncode != 0:
        return False
    time.sleep(settle)
    return subprocess.run(shlex.split(check), timeout=60).returncode == 0


def _prune(releases: Path, keep: set[Path | None]) -> None:
    """Remove the oldest releases beyond KEEP, never one in ``keep``."""
    kept = {p.resolve() for p in keep if p is not None}
    newest_first = sorted((p for p in releases.iterdir() if p.is_dir()),
                          key=lambda p: p.stat().st_mtime, reverse=True)
    for path in newest_first[KEEP:]:
        if path.resolve() not in kept:
            shutil.rmtree(path, ignore_errors=True)
