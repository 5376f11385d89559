"""SIPp as a caller (or a stand-in callee) driven by the scenarios in tests/peers/.

Each run gets its own SIP port, media port and trace files in its own
directory; the result carries the exit code and the traces so a failed
assertion can show what SIPp saw."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import ports

PEERS_DIR = Path(__file__).resolve().parents[2] / "peers"


def scenario(name: str) -> Path:
    path = PEERS_DIR / name
    if not path.exists():
        raise FileNotFoundError(path)
    return path


@dataclass
class SippResult:
    returncode: int
    workdir: Path
    command: list[str]

    def _read(self, name: str) -> str:
        try:
            return (self.workdir / name).read_text(errors="replace")
        except OSError:
            return ""

    @property
    def messages(self) -> str:
        return self._read("messages.log")

    @property
    def logs(self) -> str:
        return self._read("logs.log")

    @property
    def errors(self) -> str:
        return self._read("errors.log")

    @property
    def screen(self) -> str:
        return self._read("stdout.log")

    def explain(self, max_chars: int = 12000) -> str:
        text = (f"sipp exit {self.returncode}: {' '.join(self.command)}\n"
                f"--- scenario log ---\n{self.logs}\n--- errors ---\n{self.errors}\n"
                f"--- messages ---\n{self.messages}")
        return text if len(text) <= max_chars else text[:2000] + "\n...\n" + text[-(max_chars - 2000):]

    def final_status_line(self) -> str | None:
        """The last status line received for the INVITE (CSeq ... INVITE)."""
        status = None
        for block in self.messages.split("-----------------------------------------------"):
            if "message received" not in block:
                continue
            lines = [l for l in block.splitlines() if l.strip()]
            start = next((l for l in lines if l.startswith("SIP/2.0 ")), None)
            if start and any(l.lower().startswith("cseq:") and "INVITE" in l for l in lines):
                status = start
        return status


class SippCall:
    """One SIPp process (`-m 1`), started now, waited for later."""

    def __init__(self, scenario_name: str, workdir: Path, *, target: str | None = None,
                 service: str | None = None, media_port: int | None = None,
                 local_port: int | None = None, keys: dict[str, str] | None = None,
                 sets: dict[str, str] | None = None, extra: list[str] | None = None,
                 timeout_s: int = 45) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.media_port = media_port or ports.free_media_port()
        self.local_port = local_port or ports.free_port()
        self.timeout_s = timeout_s
        cmd = ["sipp", "-sf", str(scenario(scenario_name))]
        if target:
            cmd.append(target)
        if service:
            cmd += ["-s", service]
        cmd += ["-i", "127.0.0.1", "-p", str(self.local_port),
                "-mi", "127.0.0.1", "-mp", str(self.media_port),
                "-m", "1", "-nostdin", "-aa",
                "-timeout", f"{timeout_s}s", "-timeout_error",
                "-trace_msg", "-message_file", "messages.log",
                "-trace_err", "-error_file", "errors.log",
                "-trace_logs", "-log_file", "logs.log"]
        for k, v in (keys or {}).items():
            cmd += ["-key", k, str(v)]
        for k, v in (sets or {}).items():
            cmd += ["-set", k, str(v)]
        cmd += extra or []
        self.command = cmd
        self._stdout = open(workdir / "stdout.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL,
                                     stdout=self._stdout, stderr=subprocess.STDOUT)
        self.started_at = time.monotonic()

    @property
    def call_id(self) -> str:
        """SIPp's Call-ID for call 1 (default -cid_str "%u-%p@%s")."""
        return f"1-{self.proc.pid}@127.0.0.1"

    def wait(self) -> SippResult:
        try:
            self.proc.wait(timeout=self.timeout_s + 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            self._stdout.close()
        return SippResult(self.proc.returncode, self.workdir, self.command)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._stdout.close()


def run_sipp(scenario_name: str, workdir: Path, **kwargs) -> SippResult:
    return SippCall(scenario_name, workdir, **kwargs).wait()
