"""The station's kept files: the visitors' snapshots, their messages, call recordings.

A store is a directory on the data partition holding files named
``<UTC time>-<label><suffix>`` (``20261207-101500.250-front.jpg``). Each file is
written under a temporary name and renamed once complete, so a reader never
sees half a file and a power cut leaves no broken one. The oldest go first once
more than ``keep`` are kept or they take more than ``max_bytes`` together.
Names are checked before a file is served, so a request can never reach
outside the store.
"""
from __future__ import annotations

import calendar
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

LABEL = r"[A-Za-z0-9_-]{1,40}"


@dataclass(frozen=True)
class Stored:
    name: str
    at: float
    label: str
    size: int


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)[:40] or "file"


class Writing:
    """A file being written into a store: ``commit`` keeps it, ``discard`` drops it."""

    def __init__(self, store: FileStore, name: str, at: float, label: str) -> None:
        self.store, self.name, self.at, self.label = store, name, at, label
        self.tmp = store.directory / f".{name}.tmp"
        self.file: BinaryIO = open(self.tmp, "wb")

    def commit(self) -> Stored:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        size = self.tmp.stat().st_size
        os.replace(self.tmp, self.store.directory / self.name)
        self.store.prune()
        return Stored(self.name, self.at, self.label, size)

    def discard(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class FileStore:
    def __init__(self, directory: str | Path, suffix: str, keep: int,
                 max_bytes: int) -> None:
        self.directory = Path(directory)
        self.suffix = suffix
        self.keep = keep
        self.max_bytes = max_bytes
        self._name = re.compile(r"\d{8}-\d{6}\.\d{3}-" + LABEL + re.escape(suffix))

    def writing(self, label: str, at: float | None = None) -> Writing:
        """A new file for ``label`` (a button, "message-front"), made at ``at``."""
        at = time.time() if at is None else at
        label = _label(label)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}"
        self.directory.mkdir(parents=True, exist_ok=True)
        for tmp in self.directory.glob(".*.tmp"):       # left by a power cut
            if time.time() - tmp.stat().st_mtime > 3600:
                tmp.unlink(missing_ok=True)
        return Writing(self, f"{stamp}-{label}{self.suffix}", at, label)

    def save(self, data: bytes, label: str, at: float | None = None) -> Stored:
        """Keep ``data`` as a file of ``label`` made at ``at``."""
        writing = self.writing(label, at)
        try:
            writing.file.write(data)
        except BaseException:
            writing.discard()
            raise
        return writing.commit()

    def list(self) -> list[Stored]:
        """The kept files, oldest first."""
        out = []
        for path in sorted(self.directory.glob("*" + self.suffix)):
            if not self._name.fullmatch(path.name):
                continue
            stamp, _, rest = path.name.partition("-")
            clock, _, label = rest.partition("-")
            at = calendar.timegm(time.strptime(stamp + clock[:6], "%Y%m%d%H%M%S")) + \
                int(clock[7:10]) / 1000
            try:
                size = path.stat().st_size
            except FileNotFoundError:            # pruned meanwhile
                continue
            out.append(Stored(path.name, at, label[:-len(self.suffix)], size))
        return out

    def path(self, name: str) -> Path | None:
        """The file called ``name``, if it is one of ours."""
        if not self._name.fullmatch(name):
            return None
        path = self.directory / name
        return path if path.is_file() else None

    def delete(self, name: str) -> bool:
        """Removes the file called ``name``; False if it is not one of ours."""
        path = self.path(name)
        if path is None:
            return False
        path.unlink(missing_ok=True)
        return True

    def prune(self) -> None:
        kept = self.list()
        total = sum(s.size for s in kept)
        while kept and (len(kept) > self.keep or total > self.max_bytes):
            oldest = kept.pop(0)
            total -= oldest.size
            (self.directory / oldest.name).unlink(missing_ok=True)
