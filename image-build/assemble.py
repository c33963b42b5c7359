#!/usr/bin/env python3
"""Assemble a disk image from populated directories, without loop devices.

    image-build/assemble.py OUT.img --boot DIR --root DIR [--data DIR]
                            [--boot-mb 256] [--root-mb N] [--data-mb 64]

Each filesystem is made in a file of its own straight from its directory
(the FAT boot partition by mkfs.vfat and mtools, the ext4 root and state
partitions by mkfs.ext4 -d), the partition table is written with sfdisk,
and the filesystems are copied into the disk file at their offsets. Nothing
is mounted, so it runs as any user, in a container, and in CI.

Layout (MBR, as the Pi's boot ROM reads it), with the labels the image's
fstab and cmdline.txt name: 1 FAT32 "INTERCOM" (firmware, kernel, config.txt,
intercom.toml), 2 ext4 "intercom-root" (read-only at run time), 3 ext4
"intercom-data" (the firmware's releases, the event log and calibration, the
SSH host key; writable).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
FIRST = 8192                      # 4 MiB: the Pi's and most SD cards' erase-block alignment
MIB = 1024 * 1024


@dataclass(frozen=True)
class Partition:
    label: str
    kind: str                     # "vfat" or "ext4"
    source: Path | None           # the directory it is made from
    mib: int

    @property
    def sfdisk_type(self) -> str:
        return "c" if self.kind == "vfat" else "83"


def _run(*command: str) -> None:
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"assemble: {' '.join(command)} failed: {out.stderr.strip()}")


def _du_mib(directory: Path) -> int:
    total = 0
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total // MIB + 1


def make_filesystem(part: Partition, work: Path) -> Path:
    """The partition's filesystem in a file of its own, holding its directory."""
    image = work / f"{part.label}.fs"
    image.unlink(missing_ok=True)
    if part.kind == "vfat":
        _run("mkfs.vfat", "-F", "32", "-n", part.label.upper()[:11], "-C", str(image),
             str(part.mib * 1024))
        if part.source is not None and any(part.source.iterdir()):
            _run("mcopy", "-s", "-p", "-m", "-i", str(image),
                 *[str(p) for p in sorted(part.source.iterdir())], "::/")
    else:
        with open(image, "wb") as f:
            f.truncate(part.mib * MIB)
        args = ["mkfs.ext4", "-q", "-F", "-L", part.label, "-E", "root_owner=0:0"]
        if part.source is not None:
            args += ["-d", str(part.source)]
        _run(*args, str(image))
    return image


def assemble(out: Path, parts: list[Partition]) -> list[tuple[int, int]]:
    """Write the disk image; returns each partition's (start sector, sectors)."""
    layout = []
    start = FIRST
    for part in parts:
        sectors = part.mib * MIB // SECTOR
        layout.append((start, sectors))
        start += sectors
    with open(out, "wb") as f:
        f.truncate(start * SECTOR)
    script = "label: dos\nunit: sectors\n\n" + "".join(
        f"start={s}, size={n}, type={p.sfdisk_type}{', bootable' if i == 0 else ''}\n"
        for i, (p, (s, n)) in enumerate(zip(parts, layout)))
    table = subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", str(out)],
                           input=script, capture_output=True, text=True)
    if table.returncode != 0:
        raise SystemExit(f"assemble: sfdisk failed: {table.stderr.strip()}")
    with tempfile.TemporaryDirectory(prefix="assemble-") as tmp:
        for part, (first, _) in zip(parts, layout):
            fs = make_filesystem(part, Path(tmp))
            with open(fs, "rb") as src, open(out, "r+b") as disk:
                disk.seek(first * SECTOR)
                shutil.copyfileobj(src, disk, 4 * MIB)
            fs.unlink()
    return layout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--boot", type=Path, required=True)
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--data", type=Path)
    p.add_argument("--boot-mb", type=int, default=256)
    p.add_argument("--root-mb", type=int, help="default: the root's size and a quarter more")
    p.add_argument("--data-mb", type=int, default=64)
    args = p.parse_args(argv)
    for flag, directory in (("--boot", args.boot), ("--root", args.root),
                            ("--data", args.data)):
        if directory is not None and not directory.is_dir():
            print(f"assemble: {flag}: {directory} is not a directory", file=sys.stderr)
            return 2
    for tool in ("mkfs.vfat", "mcopy", "mkfs.ext4", "sfdisk"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"assemble: {tool} is missing (dosfstools, mtools, e2fsprogs, "
                             "fdisk)")
    root_mb = args.root_mb or max(64, _du_mib(args.root) * 5 // 4 + 32)
    layout = assemble(args.out, [Partition("intercom", "vfat", args.boot, args.boot_mb),
                                 Partition("intercom-root", "ext4", args.root, root_mb),
                                 Partition("intercom-data", "ext4", args.data, args.data_mb)])
    print(f"{args.out}: " + ", ".join(f"partition {i + 1} at sector {s} ({n * SECTOR // MIB} MiB)"
                                       for i, (s, n) in enumerate(layout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
