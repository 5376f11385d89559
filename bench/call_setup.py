#!/usr/bin/env python3
"""Call-setup benchmark: SIPp at increasing rates against Switchboard.

The number's app (the bundled /demo/hello) answers `<Say>` + `<Hangup/>`; the Say is
cached after the first call, so every call is: INVITE → webhook → TwiML → 200 OK →
prompt from the cache → BYE from Switchboard.

Reports, per rate, SIPp's successful/failed calls, then the highest rate with zero
failures, and (at a moderate rate, from a packet capture) the time from the 200 OK to
the first RTP packet and to the first non-silent RTP packet, p50/p99.

Usage (from the repository root, after `cargo build --release -p switchboard`):
    python3 bench/call_setup.py [--rates 100,200,400,600,800,1000] [--seconds 10]
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "switchboard")
SCENARIO = os.path.join(ROOT, "bench", "uac_until_bye.xml")
SID = "AC" + "b" * 32
TOKEN = "c" * 32
NUMBER = "+15005550006"


def free_port(kind=socket.SOCK_DGRAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_switchboard(workdir, sip_port, http_port):
    config = os.path.join(workdir, "switchboard.toml")
    with open(config, "w") as f:
        f.write(f"""
[sip]
listen = "127.0.0.1:{sip_port}"
[http]
listen = "127.0.0.1:{http_port}"
[media]
rtp_ports = "30000-39999"
cores = [1]
[storage]
data_dir = "{workdir}/var"
[[accounts]]
sid = "{SID}"
auth_token = "{TOKEN}"
[[numbers]]
account = "{SID}"
number = "{NUMBER}"
voice_url = "http://127.0.0.1:{http_port}/demo/hello"
""")
    log = open(os.path.join(workdir, "switchboard.log"), "w")
    env = dict(os.environ, RUST_LOG="warn")
    proc = subprocess.Popen([BINARY, "run", "--config", config], stdout=log, stderr=log, env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/demo/hello", timeout=1).read()
            time.sleep(0.5)  # let the media child attach
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("switchboard did not start; see " + log.name)


def run_sipp(sip_port, rate, calls, workdir, extra=()):
    """Runs SIPp; returns (successful, failed)."""
    stat = os.path.join(workdir, f"stat-{rate}.csv")
    if os.path.exists(stat):
        os.remove(stat)
    local = free_port()
    media = free_port()
    cmd = [
        "sipp", "-sf", SCENARIO, f"127.0.0.1:{sip_port}", "-s", NUMBER[1:],
        "-i", "127.0.0.1", "-p", str(local), "-mi", "127.0.0.1", "-mp", str(media),
        "-r", str(rate), "-m", str(calls), "-l", str(max(rate * 4, 100)),
        "-buff_size", "4194304", "-nostdin", "-timeout", str(calls // rate + 30) + "s",
        "-trace_stat", "-stf", stat, "-fd", "60", *extra,
    ]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir,
                   timeout=calls // rate + 60)
    with open(stat) as f:
        lines = [l.strip().split(";") for l in f if l.strip()]
    header, last = lines[0], lines[-1]
    ok = int(last[header.index("SuccessfulCall(C)")])
    failed = int(last[header.index("FailedCall(C)")])
    return ok, failed, media


def latency(sip_port, workdir, rate=50, seconds=6):
    """200 OK → first RTP and → first non-silent RTP, from a capture on lo."""
    pcap = os.path.join(workdir, "latency.pcap")
    cap = subprocess.Popen(
        ["tshark", "-q", "-i", "lo", "-f", "udp", "-w", pcap],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    _, _, media = run_sipp(sip_port, rate, rate * seconds, workdir)
    time.sleep(1)
    cap.send_signal(signal.SIGINT)
    cap.wait(timeout=20)
    out = subprocess.run(
        ["tshark", "-r", pcap, "-d", f"udp.port=={media},rtp", "-T", "fields",
         "-E", "separator=|", "-e", "frame.time_epoch", "-e", "sip.Status-Code",
         "-e", "sdp.media.port", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "rtp.payload"],
        capture_output=True, text=True, check=True).stdout
    answered = {}   # our RTP port → time of 200 OK
    first_rtp, first_voice = {}, {}
    for line in out.splitlines():
        t, status, mport, sport, dport, payload = (line.split("|") + [""] * 6)[:6]
        if status == "200" and mport:
            answered.setdefault(int(mport.split(",")[0]), float(t))
        elif payload and dport == str(media):
            port = int(sport)
            first_rtp.setdefault(port, float(t))
            data = bytes.fromhex(payload.replace(":", ""))
            if port not in first_voice and any(b not in (0xFF, 0x7F, 0xD5, 0x55) for b in data):
                first_voice[port] = float(t)
    to_rtp = sorted((first_rtp[p] - t0) * 1000 for p, t0 in answered.items() if p in first_rtp)
    to_voice = sorted((first_voice[p] - t0) * 1000 for p, t0 in answered.items() if p in first_voice)
    return len(answered), to_rtp, to_voice


def pct(values, q):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="100,200,400,600,800,1000,1200")
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    for tool in ("sipp", "tshark"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is required (apt-get install sip-tester tshark)")
    if not os.path.exists(BINARY):
        raise SystemExit("build first: cargo build --release -p switchboard")
    workdir = tempfile.mkdtemp(prefix="sb-bench-")
    sip_port, http_port = free_port(), free_port(socket.SOCK_STREAM)
    proc = start_switchboard(workdir, sip_port, http_port)
    try:
        run_sipp(sip_port, 1, 1, workdir)  # warm the TTS cache
        print(f"{'rate (calls/s)':>15} {'calls':>7} {'ok':>7} {'failed':>7}")
        best = 0
        for rate in [int(r) for r in args.rates.split(",")]:
            calls = rate * args.seconds
            ok, failed, _ = run_sipp(sip_port, rate, calls, workdir)
            print(f"{rate:>15} {calls:>7} {ok:>7} {failed:>7}", flush=True)
            if failed or ok < calls:
                break
            best = rate
            time.sleep(3)  # let the previous calls' legs drain
        print(f"highest sustained rate with 0 failures: {best} calls/s")
        n, to_rtp, to_voice = latency(sip_port, workdir)
        print(f"latency over {n} answered calls at 50 calls/s:")
        print(f"  200 OK → first RTP packet:        p50 {pct(to_rtp, 50):.2f} ms  p99 {pct(to_rtp, 99):.2f} ms")
        print(f"  200 OK → first prompt audio:      p50 {pct(to_voice, 50):.2f} ms  p99 {pct(to_voice, 99):.2f} ms")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
