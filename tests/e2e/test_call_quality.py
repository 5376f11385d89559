"""Media quality from RTCP, end to end: baresip (a real softphone that sends RTCP
SR/RR) calls in and listens to a 14-second prompt and pause; afterwards Voice
Insights' Call Summary, fetched with the official twilio SDK (its Insights domain
pointed at Switchboard), shows the RTP Switchboard received from baresip with no
loss, what it sent, baresip's view of that stream (no loss) and the round-trip
time from baresip's report blocks echoing Switchboard's SRs. Another account's
credentials get 404 for the same call."""

from __future__ import annotations

import time

import pytest
from twilio.base.exceptions import TwilioRestException

from sbtest import baresip as baresip_peer
from sbtest.flows import assert_voice_webhook
from sbtest.standard import MAIN

SAY_PAUSE_HANG_UP = ('<Response><Say>Measuring the call quality.</Say>'
                     '<Pause length="12"/><Hangup/></Response>')


def _insights_client(switchboard, account):
    client = switchboard.client(account)
    client.insights.base_url = switchboard.base_url
    return client


def _complete_summary(client, call_sid: str, timeout: float = 15.0):
    """The call's summary once processing_state is complete (the session's final RTCP
    figures are in); fails with the last partial one otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        summary = client.insights.v1.calls(call_sid).summary().fetch()
        if summary.processing_state == "complete" or time.monotonic() > deadline:
            assert summary.processing_state == "complete", vars(summary)
            return summary
        time.sleep(0.5)


def test_call_summary_of_a_baresip_call(switchboard, app, accounts, tmp_path):
    a, b = accounts
    app.twiml("/voice", SAY_PAUSE_HANG_UP)
    source = baresip_peer.make_source_wav(tmp_path / "caller.wav")
    phone = baresip_peer.Baresip(tmp_path, source).start()
    try:
        dial = phone.dial(f"sip:{MAIN.lstrip('+')}@{switchboard.sip_target}")
        assert dial.get("ok"), dial
        phone.wait_event("CALL_ESTABLISHED", timeout=20)
        call_sid = assert_voice_webhook(app.wait_for("/voice", timeout=1), a, to=MAIN)
        # The app's <Hangup/> after the pause ends the call.
        phone.wait_event("CALL_CLOSED", timeout=40)
    finally:
        phone.stop()

    client = _insights_client(switchboard, a)
    summary = _complete_summary(client, call_sid)
    assert summary.call_sid == call_sid
    assert summary.account_sid == a.sid
    assert summary.call_state == "completed"
    assert summary.call_type == "carrier"
    assert summary.start_time <= summary.end_time
    assert 12 <= summary.duration <= 40, summary.duration
    assert summary.connect_duration <= summary.duration
    assert summary.to["callee"].endswith(MAIN.lstrip("+")), summary.to
    assert summary.properties["direction"] == "inbound"

    metrics = summary.carrier_edge["metrics"]
    inbound, outbound = metrics["inbound"], metrics["outbound"]
    # What Switchboard received from baresip: ~14 s of 20 ms packets, none lost on loopback.
    assert inbound["codec_name"] in ("pcmu", "pcma"), inbound
    assert inbound["packets_received"] > 200, inbound
    assert inbound["packets_lost"] == 0, inbound
    assert inbound["packets_loss_percentage"] == 0, inbound
    assert 0 <= inbound["jitter"]["avg"] <= inbound["jitter"]["max"], inbound
    # What it sent, and what baresip's RTCP said about it.
    assert outbound["packets_sent"] > 200, outbound
    assert outbound.get("packets_lost") == 0, f"no report from baresip about our stream: {outbound}"
    assert outbound["packets_loss_percentage"] == 0, outbound
    rtt = outbound.get("rtt")
    assert rtt, f"no round trip: baresip's blocks never echoed an SR of ours: {outbound}"
    assert 0 < rtt["avg"] <= rtt["max"] < 500, rtt

    # The same summary, asked for as complete; another account does not see it.
    assert client.insights.v1.calls(call_sid).summary().fetch(
        processing_state="complete").call_sid == call_sid
    stranger = _insights_client(switchboard, b)
    with pytest.raises(TwilioRestException) as raised:
        stranger.insights.v1.calls(call_sid).summary().fetch()
    assert raised.value.status == 404, raised.value
