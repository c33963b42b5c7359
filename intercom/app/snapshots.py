"""Snapshots of the visitor: one JPEG per bell press, kept in a bounded store.

Each picture is written atomically (a temporary file, then a rename) as
``<UTC time>-<button>.jpg`` in the store's directory on the data partition;
the oldest go first once more than ``keep`` are kept or they take more than
``max_bytes`` together. Names are checked before a file is served, so a
request can never reach outside the store.
"""
from __future__ import annotations

import calendar
import io
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from intercom.hal.camera import Frame

NAME = re.compile(r"\d{8}-\d{6}\.\d{3}-[A-Za-z0-9_-]{1,32}\.jpg")
QUALITY = 85


@dataclass(frozen=True)
class Snapshot:
    name: str
    at: float
    button: str
    size: int


def jpeg(frame: Frame, quality: int = QUALITY) -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(frame, "RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


class Snapshots:
    def __init__(self, directory: str | Path, keep: int = 200,
                 max_bytes: int = 50 * 2 ** 20) -> None:
        self.directory = Path(directory)
        self.keep = keep
        self.max_bytes = max_bytes

    def save(self, frame: Frame, button: str, at: float | None = None) -> Snapshot:
        """Store ``frame`` as the picture of a press of ``button`` at ``at``."""
        at = time.time() if at is None else at
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", button)[:32] or "button"
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}"
        name = f"{stamp}-{safe}.jpg"
        data = jpeg(frame)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / name)
        self.prune()
        return Snapshot(name, at, button, len(data))

    def list(self) -> list[Snapshot]:
        """The kept pictures, oldest first."""
        out = []
        for path in sorted(self.directory.glob("*.jpg")):
            if not NAME.fullmatch(path.name):
                continue
            stamp, _, rest = path.name.partition("-")
            clock, _, button = rest.partition("-")
            at = calendar.timegm(time.strptime(stamp + clock[:6], "%Y%m%d%H%M%S")) + \
                int(clock[7:10]) / 1000
            try:
                size = path.stat().st_size
            except FileNotFoundError:            # pruned meanwhile
                continue
            out.append(Snapshot(path.name, at, button[:-4], size))
        return out

    def path(self, name: str) -> Path | None:
        """The file of the picture ``name``, if it is one of ours."""
        if not NAME.fullmatch(name):
            return None
        path = self.directory / name
        return path if path.is_file() else None

    def prune(self) -> None:
        kept = self.list()
        total = sum(s.size for s in kept)
        while kept and (len(kept) > self.keep or total > self.max_bytes):
            oldest = kept.pop(0)
            total -= oldest.size
            (self.directory / oldest.name).unlink(missing_ok=True)
