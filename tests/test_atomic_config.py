"""Config writes (calibration, provisioning) are atomic: a writer killed at any
point leaves the old file or the new one, never a broken one."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from intercom.config import load

WRITER = """
import sys
from intercom.config import update_file
path = sys.argv[1]
i = 0
print("writing", flush=True)
while True:
    i += 1
    update_file(path, "audio", {"echo_delay_ms": i % 400, "mic_gain_db": (i % 50) - 10})
"""


def test_a_writer_killed_at_random_points_never_leaves_a_broken_config(tmp_path: Path) -> None:
    path = tmp_path / "intercom.toml"
    # comments and other sections must survive too
    path.write_text('# the front door\n[call]\ntargets = ["sip:resident@pbx.local"]  # flat 1\n'
                    '[audio]\necho_delay_ms = 0\n')
    rng = random.Random(7)
    values = set()
    for _ in range(25):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
        time.sleep(rng.uniform(0.0, 0.08))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        cfg = load(path)                                  # parses and validates
        assert 0 <= cfg.audio.echo_delay_ms < 400
        values.add(cfg.audio.echo_delay_ms)
        text = path.read_text()
        assert text.startswith("# the front door\n") and "# flat 1" in text
    assert len(values) > 5                                # the kills landed mid-stream
