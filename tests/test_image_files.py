"""The Pi image's own files (image-build/files), checked without building it:
the labels the boot chain names match the ones assemble.py writes, the units
are valid, and the SSH key step takes a key from the boot partition as a user
would leave it there. The image itself is built and booted by the `image`
group (tests/test_image_boot.py)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from peers import need

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "image-build"
FILES = IMAGE / "files"


def test_the_labels_the_boot_chain_names_are_the_ones_assemble_writes(tmp_path: Path) -> None:
    """cmdline.txt's root= (from /etc/default/raspi-firmware) and fstab name the
    partitions by label; a mismatch would boot to an initramfs shell."""
    out = tmp_path / "disk.img"
    for d in ("boot", "root", "data"):
        (tmp_path / d).mkdir()
    subprocess.run([sys.executable, str(IMAGE / "assemble.py"), str(out),
                    "--boot", str(tmp_path / "boot"), "--root", str(tmp_path / "root"),
                    "--data", str(tmp_path / "data"),
                    "--boot-mb", "40", "--root-mb", "8", "--data-mb", "8"], check=True, timeout=120)
    start = int(subprocess.run(["sfdisk", "--dump", str(out)], capture_output=True, text=True,
                               check=True).stdout.split("start=")[1].split(",")[0])
    fat_label = subprocess.run(["mlabel", "-s", "-i", f"{out}@@{start * 512}", "::"],
                               capture_output=True, text=True, check=True).stdout
    labels = {"vfat": fat_label.split("is")[-1].strip()}
    raspi = (FILES / "etc/default/raspi-firmware").read_text()
    assert 'ROOTPART="LABEL=intercom-root"' in raspi
    fstab = [line.split() for line in (FILES / "etc/fstab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    mounts = {fields[1]: fields for fields in fstab}
    assert mounts["/boot/firmware"][0] == f"LABEL={labels['vfat']}" == "LABEL=INTERCOM"
    assert mounts["/data"][0] == "LABEL=intercom-data"
    assert "/" not in mounts                  # the initramfs mounts it, under the overlay
    assert "ro" in mounts["/boot/firmware"][3].split(",")
    for path in ("/opt/intercom", "/var/lib/intercom"):
        assert mounts[path][0].startswith("/data/") and "bind" in mounts[path][3]
    dumped = subprocess.run(["sfdisk", "--dump", str(out)], capture_output=True, text=True,
                            check=True).stdout
    assert dumped.count("type=83") == 2 and "type=c, bootable" in dumped


def test_the_image_units_verify(tmp_path: Path) -> None:
    """systemd-analyze verify on the image's units and drop-ins, with the paths
    they run pointed at this checkout's copies."""
    analyze = need("systemd-analyze")
    units = tmp_path / "units"
    units.mkdir()
    script = FILES / "usr/local/sbin/intercom-ssh-keys"
    text = (FILES / "etc/systemd/system/intercom-ssh-keys.service").read_text()
    (units / "intercom-ssh-keys.service").write_text(
        text.replace("/usr/local/sbin/intercom-ssh-keys", str(script)))
    intercom = (ROOT / "systemd/intercom.service").read_text().replace(
        "/opt/intercom/.venv/bin/intercom", shutil.which("true") or "/bin/true")
    (units / "intercom.service").write_text(
        intercom + "\n" + (FILES / "etc/systemd/system/intercom.service.d/image.conf").read_text())
    out = subprocess.run([analyze, "verify", "--man=no",
                          str(units / "intercom-ssh-keys.service"), str(units / "intercom.service")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def run_keys(tmp_path: Path, content: bytes | None) -> subprocess.CompletedProcess[str]:
    src = tmp_path / "authorized_keys"
    if content is not None:
        src.write_bytes(content)
    env = {**os.environ, "INTERCOM_SSH_KEYS": str(src), "INTERCOM_SSH_RUN": str(tmp_path / "run"),
           "INTERCOM_SSH_HOSTKEYS": str(tmp_path / "data-ssh")}
    return subprocess.run(["sh", str(FILES / "usr/local/sbin/intercom-ssh-keys")], env=env,
                          capture_output=True, text=True, timeout=120)


def test_ssh_takes_the_keys_from_the_boot_partition_as_a_windows_editor_saved_them(
        tmp_path: Path) -> None:
    need("ssh-keygen")
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEexampleEXAMPLEexampleEXAMPLEexam me@pc"
    out = run_keys(tmp_path, f"# my laptop\r\n\r\n{key}\r\n".encode())
    assert out.returncode == 0, out.stderr
    taken = tmp_path / "run" / "authorized_keys"
    assert taken.read_text() == key + "\n"
    assert taken.stat().st_mode & 0o777 == 0o600
    hostkeys = sorted(p.name for p in (tmp_path / "data-ssh").iterdir())
    assert hostkeys == sorted(f"ssh_host_{t}_key{s}" for t in ("ecdsa", "ed25519", "rsa")
                              for s in ("", ".pub"))
    # The host key is made once: the station keeps its identity across boots.
    first = (tmp_path / "data-ssh" / "ssh_host_ed25519_key.pub").read_text()
    assert run_keys(tmp_path, key.encode()).returncode == 0
    assert (tmp_path / "data-ssh" / "ssh_host_ed25519_key.pub").read_text() == first


def test_a_key_file_with_no_keys_leaves_ssh_off(tmp_path: Path) -> None:
    out = run_keys(tmp_path, b"# put your key here\r\n\r\n")
    assert out.returncode == 0
    assert "holds no keys; SSH stays off" in out.stderr
    assert not (tmp_path / "run" / "authorized_keys").exists()     # sshd's condition


def test_sshd_config_allows_keys_only() -> None:
    conf = dict(line.split(None, 1) for line in
                (FILES / "etc/ssh/sshd_config.d/intercom.conf").read_text().splitlines()
                if line.strip() and not line.startswith("#") and not line.startswith("HostKey"))
    assert conf["PasswordAuthentication"] == "no"
    assert conf["KbdInteractiveAuthentication"] == "no"
    assert conf["PermitRootLogin"] == "prohibit-password"
    assert conf["AuthorizedKeysFile"] == "/run/intercom-ssh/authorized_keys"
    dropin = (FILES / "etc/systemd/system/ssh.service.d/intercom.conf").read_text()
    assert "ConditionPathExists=/run/intercom-ssh/authorized_keys" in dropin
