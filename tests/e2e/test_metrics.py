"""Prometheus metrics on the admin listener: `GET /metrics` needs the operator's
credentials, parses with the official prometheus_client parser, and after a real
SIPp call (Gather + RFC 4733 digits) shows the media worker's packets and digits,
the call started and completed, the webhooks and API requests, and no session or
call left active."""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twilio.base.exceptions import TwilioRestException

from sbtest.flows import place_call, wait_call_status
from sbtest.server import Number, SwitchboardConfig
from sbtest.standard import GATHER_TWO_DIGITS, MAIN, SAY_OK_HANG_UP


def _scrape(sb, password: str | None) -> tuple[int, str, str]:
    """GET /metrics as (status, Content-Type, body); no Authorization without a password."""
    request = urllib.request.Request(f"http://127.0.0.1:{sb.config.admin_port}/metrics")
    if password is not None:
        auth = base64.b64encode(f"admin:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {auth}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get("Content-Type", ""), \
                response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


class Scrape:
    """One scrape parsed by prometheus_client: samples by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.types: dict[str, str] = {}
        self.samples: dict[tuple[str, frozenset], float] = {}
        for family in text_string_to_metric_families(text):
            assert family.name not in self.types, f"family {family.name} twice"
            assert family.documentation, f"{family.name} has no HELP"
            self.types[family.name] = family.type
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in self.samples, f"sample {key} twice"
                self.samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"no sample {name}{labels} in:\n{self.text}"
        return self.samples[key]

    def all(self, name: str) -> dict[frozenset, float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


def _metrics(sb) -> Scrape:
    status, content_type, text = _scrape(sb, sb.config.admin_password)
    assert status == 200, text
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    return Scrape(text)


def _wait_metrics(sb, what: str, ready, timeout: float = 15.0) -> Scrape:
    deadline = time.monotonic() + timeout
    while True:
        scrape = _metrics(sb)
        if ready(scrape):
            return scrape
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen in /metrics after {timeout:.0f} s:\n"
                                 f"{scrape.text}")
        time.sleep(0.2)


def test_metrics_need_operator_credentials(make_switchboard, app, account):
    sb = make_switchboard(SwitchboardConfig(
        accounts=[account], numbers=[Number(account, MAIN, app.url("/voice"))]))
    for password in (None, "wrong", account.auth_token):
        status, _, body = _scrape(sb, password)
        assert status == 401, (password, body)
        assert "switchboard_" not in body
    # Not on the Twilio API's listener either.
    request = urllib.request.Request(f"{sb.base_url}/metrics")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 404


def test_metrics_after_a_real_call(make_switchboard, app, account, tmp_path):
    sb = make_switchboard(SwitchboardConfig(
        accounts=[account],
        numbers=[Number(account, MAIN, app.url("/voice"), status_callback=app.url("/status"))]))
    before = _wait_metrics(sb, "media attached",
                           lambda s: s.value("switchboard_media_attached") == 1)
    assert before.types["switchboard_media_packets_sent"] == "counter"  # parser drops _total
    assert before.types["switchboard_media_sessions"] == "gauge"
    assert before.value("switchboard_media_workers") == 1
    assert before.value("switchboard_media_packets_sent_total", worker="0") == 0
    assert before.value("switchboard_calls_started_total", direction="inbound") == 0
    assert before.value("switchboard_calls_ended_total", status="completed") == 0

    app.twiml("/voice", GATHER_TWO_DIGITS)
    app.twiml("/digits", SAY_OK_HANG_UP)
    outcome = place_call(sb, tmp_path, MAIN, scenario="uac_gather_dtmf.xml")
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    sid = app.wait_for("/voice", timeout=1).param("CallSid")
    assert app.wait_for("/digits", timeout=1).param("Digits") == "12"
    client = sb.client(account)
    wait_call_status(client, sid, {"completed"})
    with pytest.raises(TwilioRestException) as raised:  # one 4xx for the API counter
        client.calls("CA" + "0" * 32).fetch()
    assert raised.value.status == 404
    app.wait_for("/status", timeout=10)  # the completed callback was delivered

    after = _wait_metrics(
        sb, "the session closed and the status callback counted",
        lambda s: s.value("switchboard_media_sessions", worker="0") == 0
        and s.value("switchboard_webhook_requests_total") >= 3)

    worker = {"worker": "0"}
    assert after.value("switchboard_media_packets_sent_total", **worker) > 0
    assert after.value("switchboard_media_sent_bytes_total", **worker) > \
        after.value("switchboard_media_packets_sent_total", **worker) * 12  # RTP header + audio
    assert after.value("switchboard_media_packets_received_total", **worker) > 0
    assert after.value("switchboard_media_dtmf_digits_total", **worker) == 2
    assert after.value("switchboard_media_busy_seconds_total", **worker) > 0
    for ring in ("commands", "events"):
        assert after.value("switchboard_media_ring_depth", ring=ring, **worker) == 0
    drops = after.all("switchboard_media_drops_total")
    assert len(drops) == 7 and all(dict(labels)["worker"] == "0" for labels in drops), drops

    assert after.value("switchboard_calls_started_total", direction="inbound") == 1
    assert after.value("switchboard_calls_ended_total", status="completed") == 1
    assert sum(after.all("switchboard_calls_ended_total").values()) == 1
    active = after.all("switchboard_calls_active")
    assert active and all(v == 0 for v in active.values()), active

    # /voice, /digits and the status callback; none failed.
    assert after.value("switchboard_webhook_requests_total") == 3
    assert after.value("switchboard_webhook_failures_total") == 0
    assert after.value("switchboard_api_requests_total", code="2xx") >= 2
    assert after.value("switchboard_api_requests_total", code="4xx") == 1
