"""image-build/assemble.py: a disk image from directories, with no loop device and
no mount: the partition table read back by sfdisk, the files read back by mtools
and debugfs from the image itself."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("mkfs.vfat", "mcopy", "mtype", "mkfs.ext4", "sfdisk", "debugfs")


@pytest.fixture(autouse=True)
def tools() -> None:
    from peers import missing
    for tool in TOOLS:
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            missing(f"{tool} is not installed (scripts/setup --test installs it)")


def run(*args: str) -> str:
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_image_has_boot_root_and_data_partitions_holding_their_directories(
        tmp_path: Path) -> None:
    boot, root, state = tmp_path / "boot", tmp_path / "root", tmp_path / "state"
    (boot / "overlays").mkdir(parents=True)
    (root / "etc").mkdir(parents=True)
    (root / "opt" / "intercom").mkdir(parents=True)
    state.mkdir()
    (boot / "intercom.toml").write_text('[call]\ntargets = ["sip:resident@pbx"]\n')
    (boot / "config.txt").write_text("arm_64bit=1\n")
    (boot / "overlays" / "example.dtbo").write_bytes(b"\xd0\x0d\xfe\xed")
    (root / "etc" / "hostname").write_text("doorstation\n")
    (root / "opt" / "intercom" / "big.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (state / "events.db").write_bytes(b"SQLite format 3\x00")
    image = tmp_path / "disk.img"
    out = run(sys.executable, str(ROOT / "image-build" / "assemble.py"), str(image),
              "--boot", str(boot), "--root", str(root), "--data", str(state),
              "--boot-mb", "64", "--data-mb", "16")
    assert "partition 1 at sector 8192 (64 MiB)" in out

    table = json.loads(run("sfdisk", "--json", str(image)))["partitiontable"]
    parts = table["partitions"]
    assert table["label"] == "dos" and [p["type"] for p in parts] == ["c", "83", "83"]
    assert parts[0]["start"] == 8192 and parts[0].get("bootable") is True
    assert all(p["start"] % 8192 == 0 for p in parts)          # aligned to 4 MiB
    assert parts[2]["start"] == parts[1]["start"] + parts[1]["size"]

    fat = f"{image}@@{parts[0]['start'] * 512}"               # mtools reads at an offset
    assert run("mtype", "-i", fat, "::/intercom.toml") == \
        '[call]\ntargets = ["sip:resident@pbx"]\n'
    assert subprocess.run(["mtype", "-i", fat, "::/overlays/example.dtbo"],
                          capture_output=True, timeout=30).stdout == b"\xd0\x0d\xfe\xed"
    assert "INTERCOM" in run("mdir", "-i", fat, "::/")             # the volume label

    def ext4(index: int) -> Path:
        """The partition's bytes in a file of its own, for debugfs."""
        p = parts[index]
        fs = tmp_path / f"part{index + 1}.img"
        with open(image, "rb") as src, open(fs, "wb") as dst:
            src.seek(p["start"] * 512)
            dst.write(src.read(p["size"] * 512))
        return fs
    rootfs = ext4(1)
    assert run("debugfs", "-R", "cat /etc/hostname", str(rootfs)) == "doorstation\n"
    assert "intercom-root" in run("dumpe2fs", "-h", str(rootfs))
    big = subprocess.run(["debugfs", "-R", "cat /opt/intercom/big.bin", str(rootfs)],
                         capture_output=True, timeout=60).stdout
    assert big == bytes(range(256)) * 4096
    assert run("debugfs", "-R", "cat /events.db", str(ext4(2))) == "SQLite format 3\x00"
    assert "intercom-data" in run("dumpe2fs", "-h", str(ext4(2)))


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "image-build" / "assemble.py"),
                          str(tmp_path / "d.img"), "--boot", str(tmp_path / "nope"),
                          "--root", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.strip() == \
        f"assemble: --boot: {tmp_path / 'nope'} is not a directory"
