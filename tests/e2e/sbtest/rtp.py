"""RTP seen on the wire: capture with tshark on the loopback interface, parse
the pcap and the RTP headers in Python, decode G.711 and judge the stream
(payload type, packet rate, sequence numbers, timestamps, loudness)."""

from __future__ import annotations

import math
import signal
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# --- G.711 ------------------------------------------------------------------


def _ulaw_to_linear(byte: int) -> int:
    byte = ~byte & 0xFF
    sign, exponent, mantissa = byte & 0x80, (byte >> 4) & 0x07, byte & 0x0F
    sample = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -sample if sign else sample


def _alaw_to_linear(byte: int) -> int:
    byte ^= 0x55
    value = (byte & 0x0F) << 4
    segment = (byte & 0x70) >> 4
    if segment == 0:
        value += 8
    else:
        value = (value + 0x108) << (segment - 1)
    return value if byte & 0x80 else -value


ULAW = [_ulaw_to_linear(b) for b in range(256)]
ALAW = [_alaw_to_linear(b) for b in range(256)]


def linear_to_ulaw(sample: int) -> int:
    """ITU-T G.711 mu-law encoding of a 16-bit sample (on its 14 most significant bits)."""
    value = sample >> 2
    if value < 0:
        mask, value = 0x7F, -value
    else:
        mask = 0xFF
    value = min(value, 8159) + 0x21
    segment = max(value.bit_length() - 6, 0)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def linear_to_alaw(sample: int) -> int:
    """ITU-T G.711 A-law encoding of a 16-bit sample (on its 13 most significant bits)."""
    value = sample >> 3
    if value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        value = -value - 1
    value = min(value, 0xFFF)
    if value < 32:
        code = value >> 1
    else:
        exponent = value.bit_length() - 5
        code = (exponent << 4) | ((value >> exponent) & 0x0F)
    return code ^ mask


def ulaw_to_alaw(data: bytes) -> bytes:
    """mu-law -> A-law through 16-bit linear, as a transcoding gateway does."""
    return bytes(linear_to_alaw(ULAW[b]) for b in data)


def alaw_to_ulaw(data: bytes) -> bytes:
    """A-law -> mu-law through 16-bit linear."""
    return bytes(linear_to_ulaw(ALAW[b]) for b in data)


def tone_power(samples: list[int], freq: float, rate: int = 8000) -> float:
    """Power of `samples` at `freq` (Goertzel), normalised by length."""
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / max(len(samples), 1) ** 2


def write_speech_g711(path: Path, text: str, law: str, frame: int = 160) -> bytes:
    """Speech (espeak-ng, then sox to 8 kHz raw G.711: law "ulaw" or "alaw") padded with
    silence to whole 20 ms frames, written to `path`; returns the bytes."""
    speech = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", text],
                            check=True, capture_output=True, timeout=30).stdout
    kind = {"ulaw": "ul", "alaw": "al"}[law]
    raw = subprocess.run(["sox", "-t", "wav", "-", "-r", "8000", "-c", "1", "-t", kind, "-"],
                         input=speech, check=True, capture_output=True, timeout=30).stdout
    silence = b"\xff" if law == "ulaw" else b"\xd5"
    raw += silence * (-len(raw) % frame)
    path.write_bytes(raw)
    return raw


def decode_g711(payload: bytes, payload_type: int) -> list[int]:
    table = ULAW if payload_type == 0 else ALAW
    return [table[b] for b in payload]


def rms(samples: list[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


# --- pcap -------------------------------------------------------------------


@dataclass
class UdpDatagram:
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


def read_pcap_udp(path: Path) -> list[UdpDatagram]:
    """UDP/IPv4 datagrams from a libpcap file (tshark -F pcap)."""
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a libpcap file (magic {magic.hex()})")
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    out: list[UdpDatagram] = []
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", data[offset:offset + 16])
        offset += 16
        frame = data[offset:offset + incl]
        offset += incl
        ip = _ip_payload(frame, linktype)
        if ip is None or len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        udp = ip[ihl:total]
        if len(udp) < 8:
            continue
        sport, dport, ulen = struct.unpack("!HHH", udp[:6])
        out.append(UdpDatagram(
            time=sec + frac / (1e9 if nanos else 1e6),
            src=".".join(map(str, ip[12:16])), sport=sport,
            dst=".".join(map(str, ip[16:20])), dport=dport,
            payload=udp[8:ulen]))
    return out


def _ip_payload(frame: bytes, linktype: int) -> bytes | None:
    if linktype == 1:  # Ethernet (Linux lo)
        ethertype = struct.unpack("!H", frame[12:14])[0] if len(frame) >= 14 else 0
        return frame[14:] if ethertype == 0x0800 else None
    if linktype == 113:  # Linux cooked v1
        return frame[16:] if len(frame) >= 16 and frame[14:16] == b"\x08\x00" else None
    if linktype == 276:  # Linux cooked v2
        return frame[20:] if len(frame) >= 20 and frame[0:2] == b"\x08\x00" else None
    if linktype in (0, 108):  # BSD loopback
        return frame[4:]
    if linktype in (12, 101, 228):  # raw IP
        return frame
    return None


# --- RTP --------------------------------------------------------------------


@dataclass
class RtpPacket:
    time: float
    sport: int
    dport: int
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(d: UdpDatagram) -> RtpPacket | None:
    b = d.payload
    if len(b) < 12 or b[0] >> 6 != 2:
        return None
    pt = b[1] & 0x7F
    if 72 <= pt <= 76:  # RTCP sharing the port
        return None
    csrc = b[0] & 0x0F
    start = 12 + 4 * csrc
    if b[0] & 0x10:  # header extension
        if len(b) < start + 4:
            return None
        start += 4 + 4 * struct.unpack("!H", b[start + 2:start + 4])[0]
    end = len(b)
    if b[0] & 0x20 and end > start:  # padding
        end -= b[-1]
    if start > end:
        return None
    seq, ts, ssrc = struct.unpack("!HII", b[2:12])
    return RtpPacket(d.time, d.sport, d.dport, pt, bool(b[1] & 0x80), seq, ts, ssrc,
                     b[start:end])


# --- capture ----------------------------------------------------------------


class RtpCapture:
    """tshark on lo for UDP datagrams sent TO one port (the peer's media port)."""

    def __init__(self, workdir: Path, dst_port: int) -> None:
        self.dst_port = dst_port
        self.path = workdir / f"rtp-to-{dst_port}.pcap"
        self._stderr_path = workdir / f"tshark-{dst_port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> "RtpCapture":
        stderr = open(self._stderr_path, "wb")
        self.proc = subprocess.Popen(
            ["tshark", "-i", "lo", "-n", "-q", "-F", "pcap", "-w", str(self.path),
             "-f", f"udp dst port {self.dst_port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        stderr.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Capturing on" in self._stderr_path.read_text(errors="replace"):
                time.sleep(0.3)  # the filter is attached just after the message
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tshark did not start: {self._stderr_path.read_text(errors='replace')}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        time.sleep(0.3)  # let the last packets reach the file
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> "RtpCapture":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def packets(self) -> list[RtpPacket]:
        if not self.path.exists():
            return []
        out = []
        for d in read_pcap_udp(self.path):
            if d.dport == self.dst_port:
                p = parse_rtp(d)
                if p is not None:
                    out.append(p)
        return out


# --- judging a stream ------------------------------------------------------


@dataclass
class StreamReport:
    packets: list[RtpPacket]
    payload_types: set[int] = field(default_factory=set)
    ssrcs: set[int] = field(default_factory=set)
    seq_breaks: list[tuple[int, int]] = field(default_factory=list)
    timestamp_breaks: list[tuple[int, int, int]] = field(default_factory=list)
    talkspurts: list[list[RtpPacket]] = field(default_factory=list)
    window_rms: list[float] = field(default_factory=list)

    @property
    def longest_talkspurt(self) -> list[RtpPacket]:
        return max(self.talkspurts, key=len, default=[])

    @property
    def packet_rate(self) -> float:
        """Packets per second over the longest run without a gap."""
        spurt = self.longest_talkspurt
        if len(spurt) < 2:
            return 0.0
        return (len(spurt) - 1) / (spurt[-1].time - spurt[0].time)

    @property
    def span_s(self) -> float:
        spurt = self.longest_talkspurt
        return spurt[-1].time - spurt[0].time if len(spurt) > 1 else 0.0

    def loud_windows(self, threshold: float) -> int:
        return sum(1 for r in self.window_rms if r > threshold)

    def summary(self) -> str:
        spurts = ", ".join(f"{len(s)} pkts/{(s[-1].time - s[0].time):.2f}s" for s in self.talkspurts)
        loud = [round(r) for r in self.window_rms]
        return (f"{len(self.packets)} packets; PTs {sorted(self.payload_types)}; "
                f"SSRCs {[hex(s) for s in self.ssrcs]}; seq breaks {self.seq_breaks[:5]}; "
                f"timestamp breaks {self.timestamp_breaks[:5]}; talkspurts [{spurts}]; "
                f"rate {self.packet_rate:.1f}/s; 200 ms window RMS {loud[:60]}")


GAP_S = 0.1  # a pause longer than this starts a new talkspurt


def analyze(packets: list[RtpPacket]) -> StreamReport:
    packets = sorted(packets, key=lambda p: p.time)
    report = StreamReport(packets)
    audio: list[int] = []
    for i, p in enumerate(packets):
        report.payload_types.add(p.payload_type)
        report.ssrcs.add(p.ssrc)
        if i == 0 or p.time - packets[i - 1].time > GAP_S:
            report.talkspurts.append([])
        report.talkspurts[-1].append(p)
        if p.payload_type in (0, 8):
            audio += decode_g711(p.payload, p.payload_type)
        if i == 0:
            continue
        prev = packets[i - 1]
        if (p.seq - prev.seq) % 65536 != 1:
            report.seq_breaks.append((prev.seq, p.seq))
        ts_delta = (p.timestamp - prev.timestamp) % (1 << 32)
        # +160 per 20 ms packet; after a pause (marker bit or a gap in time) the
        # timestamp may jump forward, never backward
        paused = p.marker or p.time - prev.time > GAP_S
        if (not paused and ts_delta != 160) or (paused and not 0 < ts_delta < (1 << 31)):
            report.timestamp_breaks.append((p.seq, prev.timestamp, p.timestamp))
    window = 1600  # 200 ms at 8 kHz
    report.window_rms = [rms(audio[i:i + window]) for i in range(0, len(audio) - window + 1, window)]
    return report


def assert_g711_speech(packets: list[RtpPacket], *, min_loud_windows: int = 3,
                       loud_rms: float = 500.0, what: str = "audio toward the caller") -> StreamReport:
    """The stream is one G.711 stream at 50 packets/s with consecutive sequence
    numbers, +160 timestamps, and audible (non-silent) content."""
    report = analyze(packets)
    detail = f"{what}: {report.summary()}"
    assert packets, f"{what}: no RTP packets captured"
    assert report.payload_types <= {0, 8}, f"payload types are not G.711 only; {detail}"
    assert len(report.ssrcs) == 1, f"expected one SSRC; {detail}"
    assert not report.seq_breaks, f"sequence numbers not consecutive; {detail}"
    assert not report.timestamp_breaks, f"timestamps do not advance by 160; {detail}"
    assert report.span_s >= 1.0, f"no continuous run of at least 1 s; {detail}"
    assert 40 <= report.packet_rate <= 60, f"packet rate not ~50/s; {detail}"
    assert all(len(p.payload) == 160 for p in packets), f"payloads not 160 bytes (20 ms); {detail}"
    assert report.loud_windows(loud_rms) >= min_loud_windows, \
        f"audio is (nearly) silent: fewer than {min_loud_windows} 200 ms windows above RMS {loud_rms}; {detail}"
    return report


# --- DTMF pcap for SIPp's play_pcap_audio ------------------------------------

_DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11,
                "A": 12, "B": 13, "C": 14, "D": 15}


def write_dtmf_pcap(path: Path, digits: str, payload_type: int = 101,
                    gap_ms: int = 200) -> Path:
    """A libpcap file of RFC 4733 events for `digits`, as a phone sends them: per digit
    one event (its own RTP timestamp) of 5 packets 20 ms apart growing in duration, the
    last with the E bit sent 3 times, then `gap_ms` of nothing. SIPp's play_pcap_audio
    replays the RTP payloads at the recorded pace toward the call's media address."""
    frames: list[tuple[float, bytes]] = []
    t = 0.0
    seq = 1000
    ssrc = 0x5EED1234
    for index, digit in enumerate(digits):
        event = _DTMF_EVENTS[digit.upper()]
        timestamp = 8000 + index * 16000
        for n in range(1, 6):
            end = n == 5
            duration = n * 160
            copies = 3 if end else 1
            for _ in range(copies):
                header = struct.pack("!BBHII", 0x80, (0x80 if n == 1 else 0) | payload_type,
                                     seq & 0xFFFF, timestamp, ssrc)
                body = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
                frames.append((t, header + body))
                seq += 1
            t += 0.020
        t += gap_ms / 1000
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for when, rtp in frames:
        udp = struct.pack("!HHHH", 4000, 4000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        checksum = sum(struct.unpack("!10H", ip))
        checksum = (checksum & 0xFFFF) + (checksum >> 16)
        checksum = (checksum & 0xFFFF) + (checksum >> 16)
        ip = ip[:10] + struct.pack("!H", ~checksum & 0xFFFF) + ip[12:]
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        sec = int(when)
        usec = int(round((when - sec) * 1e6))
        out += struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))
    return path
