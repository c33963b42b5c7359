"""The flashable image, built and booted: the `image` group, not in the default
suite (about 30 minutes on two cores). Run it with

    scripts/test -m image

It builds the image from this checkout (image-build/build, as root) into a
temporary folder, then boots it under qemu-system-aarch64 and checks the
station (image-build/boot-test: READY from the service, the simulated board,
SSH by key only, the read-only root, /data kept across a reboot)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.image


@pytest.mark.timeout(5400)
def test_the_image_builds_and_boots_to_a_ready_station(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the image build runs as root (mmdebstrap's chroot)")
    out = tmp_path / "out"
    build = subprocess.run([str(ROOT / "image-build" / "build"), str(out)],
                           capture_output=True, text=True, timeout=3600)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    images = list(out.glob("intercom-*-arm64.img"))
    assert len(images) == 1 and list((out / "wheels").glob("intercom-*.whl"))
    boot = subprocess.run([str(ROOT / "image-build" / "boot-test"), str(images[0])],
                          capture_output=True, text=True, timeout=1800)
    print(boot.stdout)
    assert boot.returncode == 0, boot.stdout[-6000:] + boot.stderr[-2000:]
