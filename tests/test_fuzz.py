"""A bounded atheris run over the SIP parsers and UA core (scripts/fuzz runs longer)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).parent / "fuzz" / "fuzz_sip.py"
SECONDS = int(os.environ.get("INTERCOM_FUZZ_SECONDS", "20"))


def test_fuzz_parsers_and_ua_for_a_bounded_time(tmp_path: Path, corpus: Path) -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("atheris is not installed (scripts/setup --test installs it)")
        pytest.skip("atheris is not installed")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for i, path in enumerate(sorted(corpus.glob("*.dat"))):
        for kind in (0, 1):                       # as a message, and into the UA
            (seeds / f"{kind}-{path.stem}").write_bytes(bytes([kind]) + path.read_bytes())
    work = tmp_path / "found"
    work.mkdir()
    run = subprocess.run([sys.executable, str(HARNESS), str(work), str(seeds),
                          f"-max_total_time={SECONDS}", "-rss_limit_mb=1024", "-timeout=5",
                          f"-artifact_prefix={tmp_path}/"],
                         capture_output=True, text=True, timeout=SECONDS + 120)
    crashes = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-",
                                                                         "oom-"))]
    assert run.returncode == 0 and not crashes, run.stderr[-4000:]
    assert "Done" in run.stderr and "cov:" in run.stderr
    shutil.rmtree(work)
