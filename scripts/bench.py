"""Benchmarks: print figures for the README (run with scripts/bench).

1. Per-frame cost of the Cython hot paths (G.711, RTP, the resampler).
2. CPU time and memory of a running station (`intercom run`, simulated board
   and sound card at 48 kHz) through a call with the demo phone.
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import timeit
import warnings
from pathlib import Path


from intercom.cext import g711, rtp
from intercom.cext.resample import Resampler
from intercom.demo import free_udp_port, wait_until
from intercom.demo_peer import DemoPhone
from intercom.media.signal import tone

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

CALL_SECONDS = 30.0


def per_call(stmt: object, number: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number  # type: ignore[arg-type]


def micro() -> None:
    frame = tone(440, 0.02, 8000)
    frame48 = tone(440, 0.02, 48000)
    raw = frame.tobytes()
    enc = g711.ulaw_encode(frame)
    down = Resampler(48000, 8000)
    pkt = rtp.build(0, False, 1, 160, 7, enc)
    rows = [
        ("G.711 mu-law encode, 160 samples", per_call(lambda: g711.ulaw_encode(frame), 20000)),
        ("  (stdlib audioop, for scale)", per_call(lambda: audioop.lin2ulaw(raw, 2), 20000)),
        ("G.711 mu-law decode, 160 bytes", per_call(lambda: g711.ulaw_decode(enc), 20000)),
        ("RTP build, 160-byte payload", per_call(lambda: rtp.build(0, False, 1, 160, 7, enc), 20000)),
        ("RTP parse", per_call(lambda: rtp.parse(pkt), 20000)),
        ("resample 48 kHz -> 8 kHz, one 20 ms frame", per_call(lambda: down.process(frame48), 5000)),
    ]
    print("Per-frame costs (best of 5):")
    for name, seconds in rows:
        print(f"  {name:45s} {seconds * 1e6:8.2f} us")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def station_call(work: Path) -> dict[str, float]:
    phone_port = free_udp_port()
    phone = DemoPhone(phone_port, str(work / "phone.wav"), answer_after=0.2)
    await phone.start()
    sock = work / "control.sock"
    cfg = work / "station.toml"
    cfg.write_text(f"""
[sip]
listen = "127.0.0.1"
port = {free_udp_port()}
[call]
targets = ["sip:resident@127.0.0.1:{phone_port}"]
[audio]
rate = 48000
speaker_file = "{work / 'speaker.wav'}"
[control]
socket = "{sock}"
[log]
level = "warning"
""")
    proc = subprocess.Popen([sys.executable, "-m", "intercom.cli", "run", "--config", str(cfg)])
    try:
        await wait_until(sock.exists, 15)
        await asyncio.sleep(1.0)
        idle_cpu0, t0 = proc_cpu(proc.pid), time.monotonic()
        await asyncio.sleep(5.0)
        idle = (proc_cpu(proc.pid) - idle_cpu0) / (time.monotonic() - t0)
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(json.dumps({"cmd": "press", "button": "bell"}).encode() + b"\n")
        await reader.readline()
        writer.close()
        await wait_until(lambda: phone.call is not None and phone.call.stream is not None, 10)
        await asyncio.sleep(1.0)
        cpu0, t0 = proc_cpu(proc.pid), time.monotonic()
        await asyncio.sleep(CALL_SECONDS)
        busy = (proc_cpu(proc.pid) - cpu0) / (time.monotonic() - t0)
        rss = proc_rss_mb(proc.pid)
        phone.hangup()
        await asyncio.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(10)
        phone.close()
    return {"idle": idle, "call": busy, "rss": rss}


def main() -> None:
    micro()
    with tempfile.TemporaryDirectory() as tmp:
        r = asyncio.run(station_call(Path(tmp)))
    print(f"\nStation process (intercom run, simulated board and 48 kHz sound card, "
          f"PCMU, {CALL_SECONDS:.0f} s call):")
    print(f"  CPU while idle (no registrar, waiting)      {r['idle'] * 100:6.2f} % of one core")
    print(f"  CPU during a call                           {r['call'] * 100:6.2f} % of one core"
          f"  = {r['call'] * 60:.2f} CPU-s per call minute")
    print(f"  resident memory during the call             {r['rss']:6.1f} MB")
    print(f"\nmachine: {os.cpu_count()} cores; this benchmark process peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
