"""The Switchboard process under test: its TOML config, start/ready/stop, its
stderr log, the media child's pid, and SDK clients pointed at it."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from . import ports


@dataclass(frozen=True)
class Account:
    sid: str
    auth_token: str

    @staticmethod
    def generate() -> "Account":
        return Account("AC" + secrets.token_hex(16), secrets.token_hex(16))


@dataclass(frozen=True)
class Number:
    account: Account
    number: str  # E.164, e.g. +15005550006
    voice_url: str
    voice_method: str = "POST"
    voice_fallback_url: str | None = None
    status_callback: str | None = None

    @property
    def digits(self) -> str:
        return self.number.lstrip("+")


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string of ASCII text is a TOML basic string


@dataclass
class SwitchboardConfig:
    accounts: list[Account]
    numbers: list[Number]
    sip_port: int = field(default_factory=ports.free_port)
    http_port: int = field(default_factory=lambda: ports.free_port(udp=False))
    admin_port: int = field(default_factory=lambda: ports.free_port(udp=False))
    admin_password: str = "operator-secret"
    trunks: list[dict] = field(default_factory=list)
    # 100 sessions per instance: more than any test holds at once.
    rtp_ports: tuple[int, int] = field(default_factory=lambda: ports.free_port_range(200))
    cores: list[int] = field(default_factory=lambda: [max(os.sched_getaffinity(0))])
    webhook_timeout_ms: int = 5000
    webhook_ca_file: str | None = None
    # [http] requests_per_second / request_burst; None keeps Switchboard's defaults.
    requests_per_second: int | None = None
    request_burst: int | None = None

    def render(self, data_dir: Path) -> str:
        lines = [
            "[sip]", f"listen = {_toml_str(f'127.0.0.1:{self.sip_port}')}", "",
            "[http]", f"listen = {_toml_str(f'127.0.0.1:{self.http_port}')}",
            *([f"requests_per_second = {self.requests_per_second}"]
              if self.requests_per_second is not None else []),
            *([f"request_burst = {self.request_burst}"]
              if self.request_burst is not None else []), "",
            "[admin]", f"listen = {_toml_str(f'127.0.0.1:{self.admin_port}')}",
            f"password = {_toml_str(self.admin_password)}", "",
            "[media]", f"rtp_ports = {_toml_str(f'{self.rtp_ports[0]}-{self.rtp_ports[1]}')}",
            f"cores = [{', '.join(map(str, self.cores))}]", "",
            "[storage]", f"data_dir = {_toml_str(str(data_dir))}", "",
            "[webhook]", f"timeout_ms = {self.webhook_timeout_ms}",
        ]
        if self.webhook_ca_file:
            lines.append(f"ca_file = {_toml_str(self.webhook_ca_file)}")
        lines.append("")
        for account in self.accounts:
            lines += ["[[accounts]]", f"sid = {_toml_str(account.sid)}",
                      f"auth_token = {_toml_str(account.auth_token)}", ""]
        for n in self.numbers:
            lines += ["[[numbers]]", f"account = {_toml_str(n.account.sid)}",
                      f"number = {_toml_str(n.number)}",
                      f"voice_url = {_toml_str(n.voice_url)}",
                      f"voice_method = {_toml_str(n.voice_method)}"]
            if n.voice_fallback_url:
                lines.append(f"voice_fallback_url = {_toml_str(n.voice_fallback_url)}")
            if n.status_callback:
                lines.append(f"status_callback = {_toml_str(n.status_callback)}")
            lines.append("")
        for trunk in self.trunks:
            lines.append("[[trunks]]")
            for key, value in trunk.items():
                lines.append(f"{key} = {json.dumps(value)}")
            lines.append("")
        text = "\n".join(lines)
        tomllib.loads(text)  # the harness must never hand out a broken config
        return text


class SwitchboardError(RuntimeError):
    pass


class Switchboard:
    """One `switchboard run --config FILE` process in its own process group."""

    READY_TIMEOUT_S = 60.0

    def __init__(self, binary: Path, workdir: Path, config: SwitchboardConfig,
                 name: str = "switchboard", mode: str = "run") -> None:
        self.binary = binary
        self.mode = mode  # "run" (control + media child) or "control" (control plane only)
        self.workdir = workdir
        self.config = config
        self.name = name
        self.data_dir = workdir / "data"
        self.config_path = workdir / "switchboard.toml"
        self.log_path = workdir / "switchboard.log"
        self.proc: subprocess.Popen | None = None
        self.start_failure: str | None = None
        self.starts = 0

    # addresses
    @property
    def sip_target(self) -> str:
        return f"127.0.0.1:{self.config.sip_port}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.http_port}"

    @property
    def accounts(self) -> list[Account]:
        return self.config.accounts

    def client(self, account: Account | None = None, auth_token: str | None = None) -> Client:
        account = account or self.config.accounts[0]
        client = Client(account.sid, auth_token or account.auth_token,
                        http_client=TwilioHttpClient(timeout=15))
        client.api.base_url = self.base_url
        return client

    # lifecycle
    def start(self) -> None:
        if self.start_failure:
            raise SwitchboardError(f"{self.name} failed to start earlier in this session:\n"
                                   f"{self.start_failure}")
        if not self.binary.exists():
            self.start_failure = (f"binary {self.binary} does not exist "
                                  "(build it: cargo build -p switchboard)")
            raise SwitchboardError(self.start_failure)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config.render(self.data_dir))
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")  # plain log text in failure reports
        log = open(self.log_path, "ab")
        log.write(f"\n===== start #{self.starts + 1}: {self.binary} {self.mode} --config "
                  f"{self.config_path} =====\n".encode())
        log.flush()
        self.starts += 1
        self.proc = subprocess.Popen(
            [str(self.binary), self.mode, "--config", str(self.config_path)],
            cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env=env, start_new_session=True)
        log.close()
        try:
            self._wait_ready()
        except SwitchboardError as error:
            self.start_failure = f"{error}\n--- log tail ---\n{self.log_tail(80)}"
            self.stop()
            raise SwitchboardError(self.start_failure) from None

    def _wait_ready(self) -> None:
        account = self.config.accounts[0]
        url = f"{self.base_url}/2010-04-01/Accounts/{account.sid}/Calls.json"
        auth = base64.b64encode(f"{account.sid}:{account.auth_token}".encode()).decode()
        deadline = time.monotonic() + self.READY_TIMEOUT_S
        last = "no answer yet"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SwitchboardError(f"exited with status {self.proc.returncode} before "
                                       f"it was ready")
            request = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"})
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as error:
                last = f"HTTP {error.code}"
            except OSError as error:
                last = str(error)
            time.sleep(0.2)
        raise SwitchboardError(f"not ready after {self.READY_TIMEOUT_S:.0f} s: GET {url} -> {last}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> None:
        if not self.alive():
            self.start()

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after 10 s; then make sure the
        media child (pid in data_dir/media.pid) is gone too."""
        proc, self.proc = self.proc, None
        media_pid = self.media_pid()
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        if proc is not None:
            # the group outlives its leader if a child lingers
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if media_pid and _pid_alive(media_pid) and runs_binary(media_pid, self.binary):
            try:
                os.kill(media_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # observation
    def media_pid(self) -> int | None:
        try:
            return int((self.data_dir / "media.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def wait_media_pid(self, other_than: int | None = None, timeout: float = 30.0) -> int:
        """The media child's pid once the file names a live process (not `other_than`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.media_pid()
            if pid and pid != other_than and _pid_alive(pid):
                return pid
            time.sleep(0.1)
        raise AssertionError(f"{self.data_dir / 'media.pid'} names no live media process "
                             f"(other than {other_than}) after {timeout:.0f} s; "
                             f"it holds {self.media_pid()}")

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int, max_lines: int = 300) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = text.splitlines()
        if len(lines) > max_lines:
            lines = [f"... ({len(lines) - max_lines} earlier lines in {self.log_path})"] + lines[-max_lines:]
        return "\n".join(lines)

    def log_tail(self, max_lines: int = 100) -> str:
        return self.log_since(0, max_lines)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def runs_binary(pid: int, binary: Path) -> bool:
    """Only ever kill a pid that still runs our binary (pids get reused)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    names = {Path(exe.removesuffix(" (deleted)")).name}
    names.update(Path(a.decode(errors="replace")).name for a in argv[:2] if a)
    return binary.name in names
