"""Free local ports for one test session.

Ports are checked by binding them and handed out at most once per session, so
two helpers never get the same number. Switchboard's RTP range is allocated
first and every later allocation stays out of it."""

from __future__ import annotations

import random
import socket
import threading

_lock = threading.Lock()
_handed_out: set[int] = set()
_reserved_ranges: list[tuple[int, int]] = []


def _in_reserved(port: int) -> bool:
    return port in _handed_out or any(lo <= port <= hi for lo, hi in _reserved_ranges)


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tcp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _kernel_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port(udp: bool = True, tcp: bool = True) -> int:
    """A port free for UDP and/or TCP on 127.0.0.1 (SIP listens on both)."""
    with _lock:
        for _ in range(200):
            port = _kernel_port(socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
            if _in_reserved(port):
                continue
            if (not udp or _udp_free(port)) and (not tcp or _tcp_free(port)):
                _handed_out.add(port)
                return port
    raise RuntimeError("no free port found")


def free_media_port() -> int:
    """An even UDP port p with p..p+3 free (SIPp uses p for audio, p+2 for video,
    peers may send RTCP to p+1)."""
    with _lock:
        for _ in range(500):
            port = random.randrange(40000, 60000, 2)
            block = range(port, port + 4)
            if any(_in_reserved(p) for p in block):
                continue
            if all(_udp_free(p) for p in block):
                _handed_out.update(block)
                return port
    raise RuntimeError("no free media port found")


def free_port_range(size: int, low: int = 20000, high: int = 32700) -> tuple[int, int]:
    """A contiguous block of `size` free UDP ports, reserved for the session
    (below the kernel's ephemeral range, 32768+, by default). Blocks sit on a grid
    of `size`-aligned slots, tried in random order, so reservations never fragment
    the range: it holds (high - low) // size of them."""
    with _lock:
        slots = list(range(low, high - size + 1, size))
        random.shuffle(slots)
        for start in slots:
            block = range(start, start + size)
            if any(_in_reserved(p) for p in block):
                continue
            if all(_udp_free(p) for p in block):
                _reserved_ranges.append((start, start + size - 1))
                return start, start + size - 1
    raise RuntimeError(f"no free block of {size} UDP ports found")


class RefusingPort:
    """A TCP port that refuses connections: bound but never listening, and kept
    bound so nothing else can take it. An app "that is down"."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        with _lock:
            _handed_out.add(self.port)

    def close(self) -> None:
        self._sock.close()
