"""Fixtures for Switchboard's end-to-end tests.

- `app`: the recording test app (one per session, reset before every test).
- `switchboard`: the shared `switchboard run` process with the standard
  numbers of sbtest/standard.py (started once, restarted if a test killed it;
  a test during which it exits fails).
- `make_switchboard`: a private instance for tests that break things.
On a failure the Switchboard log written during the test is attached to the
report."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sbtest import ports
from sbtest.app import TestApp
from sbtest.server import Account, Number, Switchboard, SwitchboardConfig, SwitchboardError
from sbtest.standard import APP_BAD_XML, APP_DOWN, APP_HTTP_500, FALLBACK, MAIN, OTHER_TENANT

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SWITCHBOARD_BIN", REPO / "target" / "debug" / "switchboard"))

REQUIRED_PROGRAMS = ["sipp", "tshark", "baresip", "sox", "espeak-ng", "rtpengine"]


@pytest.fixture(scope="session", autouse=True)
def _programs() -> None:
    missing = [p for p in REQUIRED_PROGRAMS if shutil.which(p) is None]
    if missing:
        pytest.fail(f"missing programs {missing}: run tools/test (it installs them)", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("the e2e tests need root (tshark capture, SIPp pcap play)", pytrace=False)


@pytest.fixture(scope="session")
def app():
    test_app = TestApp().start()
    test_app.default("/status", "", content_type="text/plain")  # status callbacks: 200
    yield test_app
    test_app.stop()


@pytest.fixture(autouse=True)
def _fresh_app(app: TestApp):
    app.reset()
    yield


@pytest.fixture(scope="session")
def refusing_port():
    port = ports.RefusingPort()
    yield port
    port.close()


@pytest.fixture(scope="session")
def accounts() -> tuple[Account, Account]:
    return Account.generate(), Account.generate()


@pytest.fixture(scope="session")
def account(accounts) -> Account:
    return accounts[0]


def standard_config(app: TestApp, accounts: tuple[Account, Account],
                    refusing_port: ports.RefusingPort) -> SwitchboardConfig:
    a, b = accounts
    down = f"http://127.0.0.1:{refusing_port.port}/voice"
    return SwitchboardConfig(
        accounts=[a, b],
        numbers=[
            Number(a, MAIN, app.url("/voice"), status_callback=app.url("/status")),
            Number(a, FALLBACK, down, voice_fallback_url=app.url("/fallback")),
            Number(a, APP_DOWN, down),
            Number(a, APP_HTTP_500, app.url("/http500")),
            Number(a, APP_BAD_XML, app.url("/badxml")),
            Number(b, OTHER_TENANT, app.url("/b/voice")),
        ])


class _Tracker:
    """Remembers which instances a test used, to attach their logs on failure."""

    def __init__(self, item: pytest.Item) -> None:
        self.item = item
        self.used: list[tuple[Switchboard, int]] = []
        item._switchboard_logs = self.used  # type: ignore[attr-defined]

    def use(self, sb: Switchboard) -> Switchboard:
        self.used.append((sb, sb.log_size()))
        return sb


@pytest.fixture
def _tracker(request) -> _Tracker:
    return _Tracker(request.node)


@pytest.fixture(scope="session")
def _shared_switchboard(tmp_path_factory, app, accounts, refusing_port):
    sb = Switchboard(BINARY, tmp_path_factory.mktemp("switchboard"),
                     standard_config(app, accounts, refusing_port), name="switchboard")
    yield sb
    sb.stop()


@pytest.fixture
def switchboard(_shared_switchboard: Switchboard, _tracker: _Tracker):
    sb = _tracker.use(_shared_switchboard)
    failure = None
    try:
        sb.ensure_running()
    except SwitchboardError as error:
        failure = str(error)
    if failure:
        pytest.fail(failure, pytrace=False)
    yield sb
    if not sb.alive():
        code = sb.proc.returncode if sb.proc else None
        sb.proc = None
        pytest.fail(f"switchboard exited during this test (status {code})", pytrace=False)


@pytest.fixture
def make_switchboard(tmp_path, _tracker: _Tracker):
    """Start a private instance: make_switchboard(config) -> Switchboard."""
    started: list[Switchboard] = []

    def make(config: SwitchboardConfig, name: str = "private switchboard",
             mode: str = "run") -> Switchboard:
        sb = Switchboard(BINARY, tmp_path / f"sb{len(started)}", config, name=name, mode=mode)
        started.append(sb)
        _tracker.use(sb)
        failure = None
        try:
            sb.start()
        except SwitchboardError as error:
            failure = str(error)
        if failure:
            pytest.fail(failure, pytrace=False)
        return sb

    yield make
    for sb in started:
        sb.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for sb, offset in getattr(item, "_switchboard_logs", []):
            text = sb.log_since(offset)
            if text:
                report.sections.append((f"{sb.name} log ({sb.log_path})", text))
