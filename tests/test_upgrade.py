"""``intercom upgrade``: real wheels into real virtual environments, offline; the
switch, the config check by the new version, and the rollback when it does not start.

The releases here are small stand-in packages with an ``intercom`` command, so
the test exercises the mechanism (venv, pip, symlinks, restart and check)
without building the firmware's C extensions four times.
"""
from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from intercom import upgrade

STANDIN = '''
import sys
VERSION = "{version}"
def main():
    cmd = sys.argv[1]
    if cmd == "check-config":
        sys.exit(0 if "{takes_config}" == "yes" else 2)
    if cmd == "run":                        # what the "service" runs at restart
        open(sys.argv[2], "w").write(VERSION)
        sys.exit(0 if "{starts}" == "yes" else 1)
'''


def wheel(house: Path, version: str, takes_config: bool = True, starts: bool = True) -> Path:
    """A stand-in release as a wheel, written directly (a wheel is a zip with its
    metadata), so no build backend is needed."""
    info = f"intercom-{version}.dist-info"
    files = {
        "standin/__init__.py": STANDIN.format(version=version,
                                              takes_config="yes" if takes_config else "no",
                                              starts="yes" if starts else "no"),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: intercom\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\nintercom = standin:main\n",
    }
    record = []
    path = house / f"intercom-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for name, text in files.items():
            data = text.encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
            whl.writestr(name, data)
        whl.writestr(f"{info}/RECORD", "\n".join(record + [f"{info}/RECORD,,"]) + "\n")
    return path


def test_upgrade_switches_refuses_a_version_that_rejects_the_config_and_rolls_back(
        tmp_path: Path) -> None:
    root, house = tmp_path / "opt-intercom", tmp_path / "wheels"
    house.mkdir()
    config = tmp_path / "intercom.toml"
    config.write_text("# the station's config\n")
    ran = tmp_path / "running"
    # the "service": run the linked release; the check: it wrote its version and exited 0
    restart = f"sh -c '{root}/.venv/bin/intercom run {ran} > {tmp_path}/rc; echo $? >> {tmp_path}/rc'"
    check = f"sh -c 'tail -n1 {tmp_path}/rc | grep -qx 0'"
    say: list[str] = []

    (root / ".venv" / "bin").mkdir(parents=True)            # installed by hand before
    first = upgrade.install(root, wheel(house, "1.0"), config, restart, check, say=say.append)
    assert upgrade.current(root) == first and ran.read_text() == "1.0"
    assert (root / "previous").resolve().name.startswith("installed-")
    second = upgrade.install(root, wheel(house, "2.0"), config, restart, check, say=say.append)
    assert upgrade.current(root) == second and ran.read_text() == "2.0"
    assert (root / "previous").resolve() == first

    # a version that would not take the config is never switched to
    with pytest.raises(upgrade.UpgradeError, match="checking the config failed"):
        upgrade.install(root, wheel(house, "3.0", takes_config=False), config, restart, check,
                        say=say.append)
    assert upgrade.current(root) == second
    assert not any(p.name.startswith("3.0-") for p in (root / "releases").iterdir())

    # a version that does not start is switched away from again, and the old one restarted
    with pytest.raises(upgrade.UpgradeError, match="did not start; rolled back to 2.0-"):
        upgrade.install(root, wheel(house, "4.0", starts=False), config, restart, check,
                        say=say.append)
    assert upgrade.current(root) == second and ran.read_text() == "2.0"

    # and by hand: back to 1.0, then forward again
    assert upgrade.rollback(root, restart, check, say=say.append) == first
    assert ran.read_text() == "1.0" and (root / "previous").resolve() == second
    assert upgrade.rollback(root, restart, check, say=say.append) == second
    assert (root / ".venv").is_symlink()


def test_an_offline_install_without_its_dependencies_fails_cleanly(tmp_path: Path) -> None:
    root, house = tmp_path / "root", tmp_path / "wheels"
    house.mkdir()
    w = wheel(house, "1.0")
    broken = house / w.name.replace("1.0", "1.1")
    broken.write_bytes(b"not a zip")
    with pytest.raises(upgrade.UpgradeError, match="installing the wheel failed"):
        upgrade.install(root, broken, tmp_path / "c.toml", "true", "true", say=lambda s: None)
    assert upgrade.current(root) is None and not list((root / "releases").iterdir())
