"""Real SIP peers for the tests: Kamailio and baresip, started and stopped by PID.

Every wait is bounded; every process is stopped with SIGTERM (then SIGKILL)
and reaped, since PID 1 here does not reap orphans.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, free_port_pair_gap

from intercom.media.signal import (longest_run, loudest_tone_window, read_wav, tone,
                                   tone_levels, write_wav)


def missing(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where scripts/setup --test must have
    installed every peer (a skipped end-to-end test would hide a broken install)."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def need(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}")
                                    else None)
    if path is None:
        missing(f"{binary} is not installed (scripts/setup --test installs it)")
    assert path is not None
    return path


def stop_process(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
listen=udp:127.0.0.1:{port}
{listen_more}
tcp_accept_aliases=yes
mpath="{mpath}"
{modules}
modparam("htable", "htable", "users=>size=4;")
modparam("usrloc", "db_mode", 0)
modparam("rr", "append_fromtag", 1)
modparam("auth", "algorithm", "{algorithm}")
modparam("registrar", "max_expires", {max_expires})

event_route[htable:mod-init] {{
{users}
}}

request_route {{
    xlog("L_INFO", "SEEN $rm from $si:$sp over $pr contact $ct\\n");
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("$td", "$sht(users=>$tU)", "0")) {{
            www_challenge("$td", "1");
            exit;
        }}
        consume_credentials();
        save("location");
        exit;
    }}
    if (is_method("INVITE")) {{
        if (!pv_proxy_authenticate("$fd", "$sht(users=>$fU)", "0")) {{
            proxy_challenge("$fd", "1");
            exit;
        }}
        consume_credentials();
        record_route();
    }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    t_relay();
}}
"""
KAMAILIO_MODULES = ["kex", "corex", "tm", "tmx", "sl", "rr", "pv", "maxfwd", "usrloc",
                    "registrar", "textops", "siputils", "xlog", "auth", "htable"]


class Mosquitto:
    """A Mosquitto MQTT broker on 127.0.0.1:``port``, with one account; with ``tls``
    (certificate and key files) the listener speaks TLS."""

    def __init__(self, work: Path, port: int, user: str = "door", password: str = "pw",
                 tls: tuple[Path, Path] | None = None) -> None:
        binary = "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            missing("mosquitto is not installed (scripts/setup --test installs it)")
        self.port, self.user, self.password = port, user, password
        passwords = work / "mosquitto.passwd"
        passwords.write_text("")
        subprocess.run([need("mosquitto_passwd"), "-b", str(passwords), user, password],
                       check=True, capture_output=True, timeout=30)
        conf = work / "mosquitto.conf"
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous false",
                 f"password_file {passwords}", "persistence false", "log_dest stdout",
                 "log_type error", "log_type warning", "log_type notice"]
        if os.geteuid() == 0:                    # stay root: the test's files are root's
            lines.append("user root")
        if tls is not None:
            lines += [f"certfile {tls[0]}", f"keyfile {tls[1]}"]
        conf.write_text("\n".join(lines) + "\n")
        self.log = open(work / "mosquitto.log", "wb")
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc.poll() is not None or _tcp_open(port), 10,
                 "mosquitto listening")
        assert self.proc.poll() is None, (work / "mosquitto.log").read_text()

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def _tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Kamailio:
    """Registrar and proxy on UDP ``port``; with ``tcp`` also TCP there, and with
    ``tls`` (certificate, key) TLS on ``port + 1``. It logs one "SEEN" line per request."""

    def __init__(self, workdir: Path, port: int, users: dict[str, str],
                 algorithm: str = "MD5", max_expires: int = 3600, tcp: bool = False,
                 tls: tuple[Path, Path] | None = None) -> None:
        binary = need("kamailio")
        mpaths = glob.glob("/usr/lib/*/kamailio/modules") + glob.glob("/usr/lib/kamailio/modules")
        if not mpaths:
            missing("Kamailio modules not found")
        self.port = port
        self.workdir = workdir
        listen_more = [f"listen=tcp:127.0.0.1:{port}"] if tcp else []
        if not tcp and tls is None:
            listen_more.append("disable_tcp=yes")
        modules = list(KAMAILIO_MODULES)
        if tls is not None:
            if not os.path.exists(mpaths[0] + "/tls.so"):
                missing("Kamailio's TLS module (kamailio-tls-modules) is not installed")
            tls_cfg = workdir / "kamailio-tls.cfg"
            tls_cfg.write_text(f"[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\n"
                               f"require_certificate = no\ncertificate = {tls[0]}\n"
                               f"private_key = {tls[1]}\n")
            listen_more += ["enable_tls=yes", f"listen=tls:127.0.0.1:{port + 1}"]
            modules.insert(0, "tls")
        cfg = workdir / "kamailio.cfg"
        text = KAMAILIO_CFG.format(
            port=port, mpath=mpaths[0] + "/", algorithm=algorithm, max_expires=max_expires,
            listen_more="\n".join(listen_more),
            modules="\n".join(f'loadmodule "{m}.so"' for m in modules),
            users="\n".join(f'    $sht(users=>{u}) = "{p}";' for u, p in users.items()))
        if tls is not None:
            text = text.replace('loadmodule "tls.so"',
                                f'loadmodule "tls.so"\nmodparam("tls", "config", "{tls_cfg}")')
        cfg.write_text(text)
        self.log = open(workdir / "kamailio.log", "ab")
        self.proc = subprocess.Popen(
            [binary, "-f", str(cfg), "-DD", "-E", "-m", "64", "-M", "8",
             "-P", str((workdir / "kamailio.pid").resolve()), "-w", str(workdir)],
            stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for(self._answers_options, 15, "Kamailio to answer on UDP")
        except BaseException:
            self.stop()
            raise

    def _answers_options(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"Kamailio exited with {self.proc.returncode}; see kamailio.log")
        msg = (f"OPTIONS sip:ping@127.0.0.1:{self.port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKping{time.monotonic_ns()}\r\n"
               "From: <sip:ping@127.0.0.1>;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\n"
               "Call-ID: ping\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 5\r\nContent-Length: 0\r\n\r\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            s.bind(("127.0.0.1", 0))
            s.sendto(msg.encode(), ("127.0.0.1", self.port))
            try:
                return s.recv(4096).startswith(b"SIP/2.0")
            except OSError:
                return False

    def seen(self, method: str) -> list[str]:
        """The "SEEN" lines Kamailio logged for requests of ``method``."""
        text = (self.workdir / "kamailio.log").read_text(errors="replace")
        return [line.split("SEEN ", 1)[1] for line in text.splitlines()
                if f"SEEN {method} " in line]

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def assert_heard(recording: Path, freq: float, who: str) -> None:
    """The recording carried the other side's tone: loud, and most of what was there."""
    pcm, rate = read_wav(str(recording))
    level, rms = loudest_tone_window(pcm, freq, rate)
    assert level > -30 and level > rms - 3, f"{who} heard {freq} Hz at {level:.1f} dBFS"


def assert_heard_throughout(recording: Path, freq: float, seconds: float, who: str,
                            threshold: float = -30.0) -> list[float]:
    """The other side's tone is in every second of a call that lasted ``seconds``:
    the recording's longest run of one-second windows that carry it is the whole
    call but its first and last second (the jitter buffer filling, the hang-up).
    A recording whose audio stopped after the door code fails here, where a check
    of its loudest second would pass. Returns the levels, for a failure's message."""
    pcm, rate = read_wav(str(recording))
    levels = tone_levels(pcm, freq, rate)
    start, length = longest_run(levels, threshold)
    assert length >= seconds - 2, (
        f"{who} heard {freq:.0f} Hz for {length} s in a row of a {seconds:.1f} s call; "
        f"per second: {[round(x) for x in levels]}")
    return levels


def make_certificates(work: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A test CA, and a server certificate it signed for ``names`` (DNS names or IPs).

    Returns (CA certificate, server certificate, server key), made with openssl.
    """
    binary = need("openssl")
    ca_key, ca, key, csr, cert = (work / n for n in ("ca.key", "ca.pem", "server.key",
                                                     "server.csr", "server.pem"))
    alt = ",".join(("IP:" if n.replace(".", "").isdigit() else "DNS:") + n for n in names)
    ext = work / "server.ext"
    ext.write_text(f"subjectAltName={alt}\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
         "-days", "2", "-subj", "/CN=intercom test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", f"/CN={names[0]}"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ]
    for step in steps:
        subprocess.run([binary, *map(str, step)], check=True, capture_output=True, timeout=60)
    return ca, cert, key


class LossyRelay:
    """A UDP relay on 127.0.0.1 that loses chosen datagrams, for retransmission tests.

    What arrives from anyone but ``target`` goes to ``target``; what ``target``
    sends goes back to the last other sender. ``drop`` says how many datagrams
    starting with each method to lose, e.g. {"INVITE": 1, "ACK": 1}.
    """

    def __init__(self, target: int, drop: dict[str, int]) -> None:
        self.target = ("127.0.0.1", target)
        self.drop = dict(drop)
        self.dropped: list[str] = []
        self.forwarded: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.running = True
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

    def _relay(self) -> None:
        other: tuple[str, int] | None = None
        while self.running:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                continue
            first = data.split(b" ", 1)[0].decode(errors="replace")
            if addr == self.target:
                if other is not None:
                    self.sock.sendto(self.from_target(data), other)
                continue
            other = addr
            if self.drop.get(first, 0) > 0:
                self.drop[first] -= 1
                self.dropped.append(first)
                continue
            self.forwarded.append(first)
            self.sock.sendto(data, self.target)

    def from_target(self, data: bytes) -> bytes:
        """What ``target`` sends, as it goes back."""
        return data

    def stop(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


class VideoLossRelay(LossyRelay):
    """A SIP relay (as LossyRelay, losing nothing) that also puts itself in the video's
    way: the m=video port in what ``target`` answers becomes the relay's own, and the
    video that arrives there goes on to the real port, but for the datagrams
    ``lose(n)`` picks (n counts from 0)."""

    def __init__(self, target: int, lose: Any) -> None:
        self.lose = lose
        self.video = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.video.bind(("127.0.0.1", 0))
        self.video.settimeout(0.2)
        self.video_target: tuple[str, int] | None = None
        self.video_lost = 0
        self.video_passed = 0
        super().__init__(target, {})
        self.video_thread = threading.Thread(target=self._relay_video, daemon=True)
        self.video_thread.start()

    def from_target(self, data: bytes) -> bytes:
        head, sep, body = data.partition(b"\r\n\r\n")
        found = re.search(rb"^m=video (\d+) ", body, re.M)
        if not sep or not found or found.group(1) == b"0":
            return data
        self.video_target = ("127.0.0.1", int(found.group(1)))
        port = str(self.video.getsockname()[1]).encode()
        body = body[:found.start(1)] + port + body[found.end(1):]
        head = re.sub(rb"(?im)^(content-length|l)[ \t]*:[ \t]*\d+",
                      lambda m: m.group(1) + b": " + str(len(body)).encode(), head)
        return head + sep + body

    def _relay_video(self) -> None:
        n = 0
        while self.running:
            try:
                data, _ = self.video.recvfrom(65535)
            except OSError:
                continue
            if self.video_target is None:
                continue
            if self.lose(n):
                self.video_lost += 1
            else:
                self.video.sendto(data, self.video_target)
                self.video_passed += 1
            n += 1

    def stop(self) -> None:
        super().stop()
        self.video_thread.join(timeout=2)
        self.video.close()


class DnsServer:
    """An authoritative DNS server on 127.0.0.1 (UDP) for test zones, with dnspython.

    ``records`` maps (name, type) to record texts, e.g.
    ``{("_sip._tcp.example.test", "SRV"): ["10 0 5060 pbx.example.test."]}``.
    """

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        import dns.message
        import dns.rcode
        import dns.rrset
        self.records = {(n.rstrip(".").lower() + ".", t.upper()): v for (n, t), v in records.items()}
        self.queries: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.running = True

        def serve() -> None:
            while self.running:
                try:
                    data, addr = self.sock.recvfrom(4096)
                except OSError:
                    continue
                query = dns.message.from_wire(data)
                reply = dns.message.make_response(query)
                reply.flags |= dns.flags.AA
                question = query.question[0]
                name = question.name.to_text().lower()
                kind = dns.rdatatype.to_text(question.rdtype)
                self.queries.append((name.rstrip("."), kind))
                texts = self.records.get((name, kind))
                if texts:
                    reply.answer.append(dns.rrset.from_text(name, 60, "IN", kind, *texts))
                elif not any(n == name for n, _ in self.records):
                    reply.set_rcode(dns.rcode.NXDOMAIN)
                self.sock.sendto(reply.to_wire(), addr)

        import dns.flags
        import dns.rdatatype
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


LINPHONERC = """[sip]
contact="Resident" <sip:resident@127.0.0.1:{port}>
guess_hostname=0
sip_port={port}
sip_tcp_port=0
sip_tls_port=0
bind_address=127.0.0.1
register_only_when_network_is_up=0
[rtp]
audio_rtp_port={rtp}
bind_address=127.0.0.1
[sound]
echocancellation=0
[misc]
enable_video=0
"""


class Linphone:
    """linphonec, headless: file audio (``play``/``record``), auto-answer, typed commands.

    It rewrites its config as it runs, so each one starts from a fresh copy in its
    own HOME; its output (call states, DTMF) is kept in a log the test reads.
    """

    def __init__(self, work: Path, port: int, play: Path, auto_answer: bool = True) -> None:
        binary = need("linphonec")
        self.home = work / f"linphone-{port}"
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True)  # else no sockets
        self.port = port
        rc = self.home / "linphonerc"
        rc.write_text(LINPHONERC.format(port=port, rtp=free_port_pair_gap(1)))
        self.record = self.home / "heard.wav"
        self.logfile = self.home / "linphonec.out"
        self.out = open(self.logfile, "wb")
        self.proc = subprocess.Popen(
            [binary, "-c", str(rc), *(["-a"] if auto_answer else [])], stdin=subprocess.PIPE,
            stdout=self.out, stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
            | {"HOME": str(self.home)})
        self.command("soundcard use files")
        self.command(f"play {play}")
        self.command(f"record {self.record}")
        wait_for(lambda: "Using wav files" in self.output(), 15, "linphonec to start")

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def output(self) -> str:
        return self.logfile.read_text(errors="replace")

    def wait_output(self, text: str, timeout: float) -> None:
        wait_for(lambda: text in self.output(), timeout, f"linphonec to say {text!r}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.command("quit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        stop_process(self.proc)
        self.out.close()


BARESIP_CODEC_NAMES = {"opus": "opus/48000/2", "G722": "G722/16000/1", "PCMU": "PCMU/8000/1",
                       "PCMA": "PCMA/8000/1"}


class Baresip:
    """A headless baresip: file audio, auto-answer, sndfile recording, TCP control."""

    def __init__(self, workdir: Path, sip_port: int, ctrl_port: int, account: str,
                 tone_hz: float, seconds: float = 120.0, codec: str = "",
                 record: bool = True, video: bool = False) -> None:
        """``codec`` ("opus", "G722", "PCMU"...) limits baresip to that one; empty: G.711.
        ``record``: keep both directions of each call as WAV files (sndfile).
        ``video``: H.264 through libavcodec (baresip-ffmpeg), pictures shown on nothing
        (fakevideo) and saved on request (``snapshot``)."""
        binary = need("baresip")
        self.sip_port = sip_port
        self.dir = workdir / "baresip"
        self.dir.mkdir()
        self.records = workdir / "baresip-records"
        self.records.mkdir()
        audio = self.dir / "tone.wav"
        write_wav(str(audio), tone(tone_hz, seconds, 48000, amplitude=0.25), 48000)
        if codec:                    # baresip 1.0 takes the codec list per account
            account += f";audio_codecs={BARESIP_CODEC_NAMES.get(codec, codec)}"
        (self.dir / "accounts").write_text(account + "\n")
        (self.dir / "config").write_text("\n".join([
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{sip_port}",
            "net_interface 127.0.0.1",
            f"audio_source aufile,{audio}",
            "audio_player aubridge,nil",
            "audio_alert aubridge,nil",
            "ausrc_srate 48000", "auplay_srate 48000",
            "ausrc_channels 1", "auplay_channels 1",
            "module_path /usr/lib/baresip/modules",
            "module aufile.so", "module aubridge.so", "module g711.so",
            *(["module sndfile.so"] if record else []),
            "module ctrl_tcp.so",
            *(["module opus.so", "opus_stereo no", "opus_sprop_stereo no"]
              if codec == "opus" else []),
            *(["module g722.so"] if codec == "G722" else []),
            *(["module srtp.so"] if "mediaenc=srtp" in account else []),
            *(["module avcodec.so", "module fakevideo.so", "module snapshot.so",
               "video_display fakevideo,nil", "video_source fakevideo,nil"] if video else []),
            "module_app account.so", "module_app menu.so",
            f"ctrl_tcp_listen 127.0.0.1:{ctrl_port}",
            f"snd_path {self.records}",
            "sip_verify_server no",
            "",
        ]))
        self.log = open(workdir / "baresip.log", "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([binary, "-f", str(self.dir)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.events: list[dict[str, Any]] = []
        self.responses: dict[str, dict[str, Any]] = {}
        try:
            self.sock = wait_for(lambda: self._connect(ctrl_port), 15, "baresip's control port")
        except BaseException:
            stop_process(self.proc)
            self.log.close()
            raise
        self.sock.settimeout(0.2)
        self._buf = b""
        self._token = 0

    def _connect(self, port: int) -> socket.socket | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"baresip exited with {self.proc.returncode}; see baresip.log")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            return None

    def command(self, command: str, params: str = "") -> str:
        self._token += 1
        body = json.dumps({"command": command, "params": params, "token": str(self._token)})
        self.sock.sendall(f"{len(body)}:{body},".encode())
        return str(self._token)

    def request(self, command: str, params: str = "", timeout: float = 5) -> str:
        """Send a command and return its response's data text."""
        token = self.command(command, params)

        def answered() -> str | None:
            self.poll()
            reply = self.responses.pop(token, None)
            return None if reply is None else str(reply.get("data", "")) or " "
        result: str = wait_for(answered, timeout, f"baresip's answer to {command}", 0.05)
        return result

    def snapshot(self, path: Path, timeout: float = 10) -> Path:
        """The next picture baresip decodes from the call, as a PNG at ``path``."""
        assert len(str(path)) < 100, "baresip keeps at most 99 characters of the path"
        self.command("snapshot_recv", str(path))
        wait_for(lambda: path.exists() and path.stat().st_size > 0, timeout,
                 "baresip's snapshot of the video it receives")
        time.sleep(0.2)                            # written in one go, but let it finish
        return path

    def wait_registered(self, timeout: float) -> None:
        wait_for(lambda: "OK" in self.request("reginfo"), timeout, "baresip to register", 0.3)

    def poll(self) -> list[dict[str, Any]]:
        """Read whatever arrived on the control connection; keep the events."""
        try:
            chunk = self.sock.recv(65536)
            self._buf += chunk
        except TimeoutError:
            pass
        while b":" in self._buf:
            head, _, rest = self._buf.partition(b":")
            if not head.isdigit() or len(rest) < int(head) + 1:
                break
            n = int(head)
            message = json.loads(rest[:n])
            self._buf = rest[n + 1:]
            if message.get("event"):
                self.events.append(message)
            elif message.get("response"):
                self.responses[str(message.get("token"))] = message
        return self.events

    def wait_event(self, kind: str, timeout: float, after: int = 0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            self.poll()
            return next((e for e in self.events[after:] if e.get("type") == kind), None)
        result: dict[str, Any] = wait_for(found, timeout, f"baresip event {kind}", interval=0.05)
        return result

    def stop(self) -> None:
        try:
            self.command("quit")
        except OSError:
            pass
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            pass
        stop_process(self.proc)
        self.sock.close()
        self.log.close()


def intercom(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intercom.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


class Station:
    """``intercom run`` on the simulated board and sound card, driven by ``intercom ctl``.

    ``sip`` is extra lines for the [sip] section (registrar, proxy, password...).
    """

    def __init__(self, work: Path, sip: str, targets: list[str], ring_timeout: int = 20,
                 tone_hz: float = 440.0, pulse: float = 1.5, port: int | None = None,
                 extra: str = "", log_level: str = "debug", audio: str = "",
                 call: str = "") -> None:
        """``extra`` is more TOML appended to the config (other sections); ``audio``
        and ``call`` more lines for its [audio] and [call] sections."""
        self.work = work
        self.port = port or free_port()
        self.socket = work / "control.sock"
        self.speaker = work / "station-speaker.wav"
        self.config = work / "station.toml"
        self.config.write_text(f"""
[station]
name = "Front door"
[sip]
user = "door"
listen = "127.0.0.1"
port = {self.port}
register_expires = 120
{sip}
[call]
targets = {json.dumps(targets)}
ring_time = {ring_timeout}
{call}
[audio]
device = "simulated"
mic_tone_hz = {tone_hz}
speaker_file = "{self.speaker}"
{audio}
[door]
codes = ["1234#"]
pulse_seconds = {pulse}
[board]
type = "simulated"
[control]
socket = "{self.socket}"
[log]
level = "{log_level}"
database = "{work / 'events.db'}"
{extra}
""")
        self.log = open(work / "station.log", "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "intercom.cli", "run", "--config",
                                      str(self.config)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.socket.exists() or self.proc.poll() is not None, 15,
                 "the station's control socket")
        assert self.proc.poll() is None, (work / "station.log").read_text()
        self.events_file = work / "events.jsonl"
        self.events_out = open(self.events_file, "wb")
        self.events_proc = subprocess.Popen(
            [sys.executable, "-m", "intercom.cli", "ctl", "--socket", str(self.socket), "events"],
            stdout=self.events_out, stderr=subprocess.STDOUT)

    def state(self) -> dict[str, Any]:
        out = intercom("ctl", "--socket", str(self.socket), "state")
        assert out.returncode == 0, out.stderr
        state: dict[str, Any] = json.loads(out.stdout)
        return state

    def press(self) -> None:
        out = intercom("ctl", "--socket", str(self.socket), "press", "bell")
        assert out.returncode == 0, out.stderr

    def log_text(self) -> str:
        return (self.work / "station.log").read_text()

    def events(self) -> list[dict[str, Any]]:
        lines = self.events_file.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def keys(self) -> list[int]:
        """The running key count of each DTMF event (never the digits)."""
        return [e["count"] for e in self.events() if e["event"] == "dtmf"]

    def assert_codes_secret(self, *codes: str) -> None:
        """No door code keyed in the test reached the log or the event stream."""
        for code in codes:
            digits = code.rstrip("#")
            assert digits not in self.log_text(), f"{code} in the station's log"
            assert digits not in self.events_file.read_text(), f"{code} in ctl events"

    def wait_event(self, timeout: float, **fields: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((e for e in self.events()
                         if all(e.get(k) == v for k, v in fields.items())), None)
        result: dict[str, Any] = wait_for(found, timeout, f"station event {fields}")
        return result

    def stop(self) -> int:
        stop_process(self.proc, timeout=10)
        stop_process(self.events_proc)
        self.events_out.close()
        self.log.close()
        return int(self.proc.returncode)


SCENARIOS = Path(__file__).parent / "sipp"


class Sipp:
    """One SIPp run of a scenario from tests/sipp/, as UAS (no remote) or UAC.

    Exit code 0 means every message of the scenario came as scripted; the
    message trace is kept in the work directory for a failing test to show.
    """

    def __init__(self, work: Path, scenario: str | Path, port: int, remote: str | None = None,
                 *extra: str, timeout: int = 40) -> None:
        """``scenario`` is a name in tests/sipp/, or the path of a scenario file."""
        path = scenario if isinstance(scenario, Path) else SCENARIOS / f"{scenario}.xml"
        scenario = path.stem
        self.name = scenario
        self.trace = work / f"sipp-{scenario}-{port}.msg"
        self.errors = work / f"sipp-{scenario}-{port}.err"
        self.screen = open(work / f"sipp-{scenario}-{port}.out", "wb")
        cmd = [need("sipp"), *([remote] if remote else []), "-sf", str(path),
               "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_port()), "-m", "1",
               "-timeout", f"{timeout}s", "-timeout_error", "-nostdin",
               "-trace_msg", "-message_file", str(self.trace),
               "-trace_err", "-error_file", str(self.errors), *extra]
        self.proc = subprocess.Popen(cmd, stdout=self.screen, stderr=subprocess.STDOUT)
        self.port = port

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)
            raise AssertionError(f"SIPp {self.name} still running after {timeout:.0f} s\n"
                                 + self.report()) from None
        return code

    def report(self) -> str:
        parts = []
        for path in (self.errors, self.trace):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-6000:]}")
        return "\n".join(parts)

    def messages(self) -> str:
        return self.trace.read_text(errors="replace") if self.trace.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)
        self.screen.close()
