"""The HTTP API's accounts: names, scrypt password hashes and rights, in one file.

There is no default account: the first one is made on the command line
(``intercom account add NAME --rights admin``) or from a file on the boot
partition (``seed``; taken in once per content, so an account changed
later on the command line is not set back at the next boot). Rights go up in steps:
``view`` (state, events), ``open`` (also the door and calls), ``admin``
(also the config). The file is JSON, written atomically (a temporary file,
fsync, rename) with mode 0600; it holds no password, only each one's salted
scrypt hash.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

RIGHTS = ("view", "open", "admin")
NAME = re.compile(r"[A-Za-z0-9._-]{1,32}")
MIN_PASSWORD = 8
# scrypt's cost: about 50 ms and 16 MB on a Pi 3, so guessing is slow and a login is not
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


class AccountError(ValueError):
    """A name, password or right that cannot be used, or a broken accounts file."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, maxmem=64 * 2 ** 20, dklen=32,
                            **SCRYPT)
    return "scrypt${n}${r}${p}$".format(**SCRYPT) + \
        base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), maxmem=64 * 2 ** 20, dklen=32)
    except ValueError:
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


@dataclass(frozen=True)
class Account:
    name: str
    rights: str

    def may(self, needed: str) -> bool:
        return RIGHTS.index(self.rights) >= RIGHTS.index(needed)


def accounts_path(configured: str, state_dir: Path) -> Path:
    """The accounts file: ``[http] accounts``, or accounts.json in the state directory."""
    return Path(configured) if configured else state_dir / "accounts.json"


class Accounts:
    """The accounts file at ``path`` (read again when it changes on disk)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[float, int] | None = None
        self._entries: dict[str, dict[str, str]] = {}
        self._seeded = ""              # the last account file taken in (its SHA-256)

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._entries, self._stamp = {}, None
            return self._entries
        stamp = (st.st_mtime, st.st_size)
        if stamp != self._stamp:
            try:
                data = json.loads(self.path.read_text())
                entries = data["accounts"]
                if not isinstance(entries, dict) or not all(
                        isinstance(e, dict) and e.get("rights") in RIGHTS and
                        isinstance(e.get("hash"), str) for e in entries.values()):
                    raise ValueError("unexpected entries")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise AccountError(f"{self.path}: not an accounts file ({exc})") from None
            self._entries, self._stamp = entries, stamp
            self._seeded = str(data.get("seeded", ""))
        return self._entries

    def names(self) -> list[tuple[str, str]]:
        """(name, rights) of each account."""
        return sorted((name, e["rights"]) for name, e in self._load().items())

    def login(self, name: str, password: str) -> Account | None:
        entry = self._load().get(name)
        if entry is None:
            check_password(password, _dummy())         # as slow as a real one
            return None
        if not check_password(password, entry["hash"]):
            return None
        return Account(name, entry["rights"])

    def add(self, name: str, password: str, rights: str) -> None:
        """Add ``name`` or set its password and rights."""
        entries = dict(self._load())
        entries[name] = self._entry(name, password, rights)
        self._write(entries)

    @staticmethod
    def _entry(name: str, password: str, rights: str) -> dict[str, str]:
        if not NAME.fullmatch(name):
            raise AccountError(f"account name {name!r}: use 1-32 of A-Z a-z 0-9 . _ -")
        if rights not in RIGHTS:
            raise AccountError(f"rights {rights!r}: use one of {', '.join(RIGHTS)}")
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
        return {"hash": hash_password(password), "rights": rights}

    def remove(self, name: str) -> None:
        entries = dict(self._load())
        if entries.pop(name, None) is None:
            raise AccountError(f"no account {name!r}")
        self._write(entries)

    def seed(self, path: str | Path) -> str | None:
        """Take in the accounts in ``path`` (lines of ``name rights password``; ``#``
        starts a comment), once per content: the boot partition's way to make the
        first account. What was done, for the log; None if there was nothing new.
        AccountError naming the line at fault (and nothing taken in)."""
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AccountError(f"{path}: {exc.strerror or exc}") from None
        digest = hashlib.sha256(data).hexdigest()
        entries = dict(self._load())
        if digest == self._seeded:
            return None
        made = []
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 3:
                raise AccountError(f"{path}, line {number}: write NAME RIGHTS PASSWORD")
            name, rights, password = words
            try:
                entries[name] = self._entry(name, password, rights)
            except AccountError as exc:
                raise AccountError(f"{path}, line {number}: {exc}") from None
            made.append(f"{name} ({rights})")
        self._write(entries, seeded=digest)
        return f"accounts {', '.join(made) or 'none'} taken from {path}"

    def _write(self, entries: dict[str, dict[str, str]], seeded: str | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"accounts": entries, "seeded": self._seeded if seeded is None
                       else seeded}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._stamp = None


@functools.cache
def _dummy() -> str:
    return hash_password(secrets.token_hex(8))
