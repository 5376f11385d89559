"""baresip as a real softphone peer: config from tests/peers/baresip/*.template,
control over ctrl_tcp (netstring-framed JSON commands, events back), and the
WAV files its sndfile module records for each call."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from . import ports

TEMPLATES = Path(__file__).resolve().parents[2] / "peers" / "baresip"


def make_source_wav(path: Path, text: str = "This is the caller speaking.",
                    pad_s: int = 30) -> Path:
    """8 kHz mono 16-bit WAV: speech then `pad_s` seconds of silence (aufile
    ends the call at the end of the file, so it must outlast the call)."""
    speech = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", text],
                            check=True, capture_output=True, timeout=30).stdout
    subprocess.run(["sox", "-t", "wav", "-", "-r", "8000", "-c", "1", "-b", "16",
                    "-e", "signed-integer", str(path), "pad", "0", str(pad_s)],
                   input=speech, check=True, capture_output=True, timeout=30)
    return path


def _netstring(obj: dict) -> bytes:
    data = json.dumps(obj).encode()
    return str(len(data)).encode() + b":" + data + b","


class Baresip:
    """One headless baresip process with its own config directory."""

    def __init__(self, workdir: Path, audio_source: Path) -> None:
        self.workdir = workdir
        self.config_dir = workdir / "baresip"
        self.snd_dir = workdir / "snd"
        self.sip_port = ports.free_port()
        self.ctrl_port = ports.free_port(udp=False)
        self.rtp_ports = ports.free_port_range(20, low=20000, high=32700)
        self.audio_source = audio_source
        self.proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._responses: "queue.Queue[dict]" = queue.Queue()
        self.events: list[dict] = []
        self._events_cond = threading.Condition()
        self._token = 0

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.snd_dir.mkdir(parents=True, exist_ok=True)
        values = {
            "@NET_INTERFACE@": "127.0.0.1",
            "@SIP_LISTEN@": f"127.0.0.1:{self.sip_port}",
            "@AUDIO_SOURCE@": str(self.audio_source),
            "@RTP_PORTS@": f"{self.rtp_ports[0]}-{self.rtp_ports[1]}",
            "@CTRL_LISTEN@": f"127.0.0.1:{self.ctrl_port}",
            "@SND_PATH@": str(self.snd_dir),
        }
        for name in ("config", "accounts"):
            text = (TEMPLATES / f"{name}.template").read_text()
            for key, value in values.items():
                text = text.replace(key, value)
            (self.config_dir / name).write_text(text)

    def start(self, timeout: float = 15.0) -> "Baresip":
        self._write_config()
        log = open(self.workdir / "baresip.log", "wb")
        self.proc = subprocess.Popen(["baresip", "-f", str(self.config_dir)],
                                     cwd=self.workdir, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"baresip exited ({self.proc.returncode}):\n{self.log()}")
            try:
                self._sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"baresip ctrl_tcp did not open:\n{self.log()}")
        self._sock.settimeout(None)
        threading.Thread(target=self._reader, daemon=True).start()
        return self

    def _reader(self) -> None:
        buffer = b""
        sock = self._sock
        while sock is not None:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while True:
                colon = buffer.find(b":")
                if colon < 0:
                    break
                try:
                    length = int(buffer[:colon])
                except ValueError:
                    buffer = b""
                    break
                if len(buffer) < colon + 1 + length + 1:
                    break
                payload = buffer[colon + 1:colon + 1 + length]
                buffer = buffer[colon + 1 + length + 1:]
                try:
                    message = json.loads(payload)
                except ValueError:
                    continue
                if message.get("event"):
                    with self._events_cond:
                        self.events.append(message)
                        self._events_cond.notify_all()
                elif message.get("response"):
                    self._responses.put(message)

    def command(self, command: str, params: str = "", timeout: float = 10.0) -> dict:
        """Send a command; returns its response ({"ok": bool, "data": str, ...})."""
        assert self._sock is not None, "baresip not started"
        self._token += 1
        token = f"t{self._token}"
        self._sock.sendall(_netstring({"command": command, "params": params, "token": token}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"baresip: no response to {command} {params}")
            try:
                response = self._responses.get(timeout=left)
            except queue.Empty:
                continue
            if response.get("token") in (token, None):
                return response

    def wait_event(self, event_type: str, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        with self._events_cond:
            while True:
                for event in self.events:
                    if event.get("type") == event_type:
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    types = [e.get("type") for e in self.events]
                    raise AssertionError(f"baresip: no {event_type} event within {timeout:.0f} s; "
                                         f"events: {types}\n--- baresip log ---\n{self.log()[-4000:]}")
                self._events_cond.wait(left)

    def dial(self, uri: str) -> dict:
        return self.command("dial", uri)

    def send_dtmf(self, digit: str) -> dict:
        return self.command("sndcode", digit)

    def hangup(self) -> dict:
        return self.command("hangup")

    def recordings(self) -> list[Path]:
        return sorted(self.snd_dir.glob("*.wav"))

    def log(self) -> str:
        try:
            return (self.workdir / "baresip.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.sendall(_netstring({"command": "quit", "params": "", "token": "quit"}))
            except OSError:
                pass
            sock.close()
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def wav_samples(path: Path) -> tuple[int, list[int]]:
    """(sample rate, mono 16-bit samples) of a WAV file, via the stdlib."""
    import wave
    import array
    with wave.open(str(path), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        frames = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: {width * 8}-bit samples, expected 16")
    samples = array.array("h", frames)
    return rate, list(samples[::channels])
