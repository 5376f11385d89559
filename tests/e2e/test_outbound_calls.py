"""Outbound calls (Create Call through the official SDK) over a SIP trunk whose far end
is SIPp: digest authentication, answer, the inline TwiML runs, status callbacks in
order; a busy far end; and Twilio's errors for a foreign From, an unrouted To and a
missing Url/Twiml."""

from __future__ import annotations

import time

import pytest
from twilio.base.exceptions import TwilioRestException

from sbtest import ports
from sbtest.flows import wait_call_status
from sbtest.rtp import RtpCapture
from sbtest.server import Number, Switchboard, SwitchboardConfig
from sbtest.sipp import SippCall
from sbtest.standard import MAIN

FAR_END = "+15551230000"


def _switchboard_with_trunk(make_switchboard, app, account, far_end_port: int):
    return make_switchboard(SwitchboardConfig(
        accounts=[account], numbers=[Number(account, MAIN, app.url("/voice"))],
        trunks=[{"name": "carrier", "gateway": f"127.0.0.1:{far_end_port}",
                 "username": "alice", "password": "s3cret", "prefixes": ["1"]}]))


def test_outbound_call_through_a_trunk_with_digest_auth(make_switchboard, app, account, tmp_path):
    far_port = ports.free_port()
    far_end = SippCall("uas_digest_answer.xml", tmp_path / "far", local_port=far_port,
                       timeout_s=30)
    try:
        sb = _switchboard_with_trunk(make_switchboard, app, account, far_port)
        client = sb.client(account)
        call = client.calls.create(
            to=FAR_END, from_=MAIN,
            twiml="<Response><Say>Hello from an outbound call.</Say><Hangup/></Response>",
            status_callback=app.url("/status"),
            status_callback_event=["initiated", "answered", "completed"])
        assert call.sid.startswith("CA") and call.status == "queued"
        assert call.direction == "outbound-api"
        result = far_end.wait()
    finally:
        far_end.kill()
    assert result.returncode == 0, result.explain()
    done = wait_call_status(client, call.sid, {"completed"}, timeout=15)
    assert done.status == "completed"
    assert int(done.duration) >= 1
    callbacks = [app.wait_for("/status", timeout=10, count=n,
                              where=lambda r: r.param("CallSid") == call.sid)
                 for n in (1, 2, 3)]
    assert [c.param("CallStatus") for c in callbacks] == ["initiated", "in-progress", "completed"]
    assert [c.param("SequenceNumber") for c in callbacks] == ["0", "1", "2"]
    for c in callbacks:
        assert c.signature_valid(account.auth_token), c.describe()
        assert c.param("Direction") == "outbound-api"


def test_outbound_call_to_a_busy_far_end(make_switchboard, app, account, tmp_path):
    far_port = ports.free_port()
    far_end = SippCall("uas_reply_486.xml", tmp_path / "far", local_port=far_port, timeout_s=30)
    try:
        sb = _switchboard_with_trunk(make_switchboard, app, account, far_port)
        client = sb.client(account)
        call = client.calls.create(to=FAR_END, from_=MAIN, url=app.url("/voice"),
                                   status_callback=app.url("/status"))
        result = far_end.wait()
    finally:
        far_end.kill()
    assert result.returncode == 0, result.explain()
    assert wait_call_status(client, call.sid, {"busy"}, timeout=15).status == "busy"
    status = app.wait_for("/status", timeout=10, where=lambda r: r.param("CallSid") == call.sid)
    assert status.param("CallStatus") == "busy"
    assert app.requests("/voice") == [], "an unanswered call never requests its Url"


def test_create_call_errors(make_switchboard, app, account):
    sb = _switchboard_with_trunk(make_switchboard, app, account, ports.free_port())
    client = sb.client(account)
    cases = [
        (dict(to=FAR_END, from_="+15559999999", url=app.url("/voice")), 21210),
        (dict(to="+442071234567", from_=MAIN, url=app.url("/voice")), 21211),
        (dict(to=FAR_END, from_=MAIN), 21205),
        (dict(to=FAR_END, from_=MAIN, twiml="<Response><Nope/></Response>"), 21232),
        (dict(to=FAR_END, from_=MAIN, url=app.url("/voice"), send_digits="12x"), 21218),
    ]
    for kwargs, code in cases:
        with pytest.raises(TwilioRestException) as error:
            client.calls.create(**kwargs)
        assert error.value.code == code, (kwargs, error.value.msg)
        assert error.value.status == 400


def test_accepted_call_survives_a_restart_before_it_is_dialled(make_switchboard, app, account,
                                                                tmp_path):
    """The control plane alone (no media plane yet) accepts a call: 201, queued, not dialled.
    It stops; the same data directory started with `run` dials it and it completes."""
    far_port = ports.free_port()
    config = SwitchboardConfig(
        accounts=[account], numbers=[Number(account, MAIN, app.url("/voice"))],
        trunks=[{"name": "carrier", "gateway": f"127.0.0.1:{far_port}",
                 "username": "alice", "password": "s3cret", "prefixes": ["1"]}])
    first = make_switchboard(config, name="control only", mode="control")
    call = first.client(account).calls.create(
        to=FAR_END, from_=MAIN, twiml="<Response><Say>Still here.</Say><Hangup/></Response>")
    assert call.status == "queued"
    time.sleep(1.0)
    assert first.client(account).calls(call.sid).fetch().status == "queued", \
        "no media plane: the call must wait, not fail"
    first.stop()

    far_end = SippCall("uas_digest_answer.xml", tmp_path / "far", local_port=far_port,
                       timeout_s=30)
    try:
        second = Switchboard(first.binary, first.workdir, config, name="restarted")
        second.start()
        try:
            result = far_end.wait()
            assert result.returncode == 0, result.explain()
            done = wait_call_status(second.client(account), call.sid, {"completed"}, timeout=15)
            assert done.direction == "outbound-api"
        finally:
            second.stop()
    finally:
        far_end.kill()


def _rfc4733_digits(packets, payload_type: int) -> str:
    """Digits of the RFC 4733 events in `packets`, one per event (by RTP timestamp)."""
    codes = "0123456789*#ABCD"
    seen: list[int] = []
    digits = ""
    for p in packets:
        if p.payload_type != payload_type or len(p.payload) < 4:
            continue
        if p.timestamp not in seen:
            seen.append(p.timestamp)
            digits += codes[p.payload[0]] if p.payload[0] < 16 else "?"
    return digits


def test_outbound_ringing_callback_and_send_digits(make_switchboard, app, account, tmp_path):
    """The far end rings (180) then answers offering telephone-event; SendDigits "1w2#"
    reaches it as RFC 4733 events 1, 2, # after the answer; callbacks include ringing."""
    far_port, far_media = ports.free_port(), ports.free_media_port()
    capture = RtpCapture(tmp_path, far_media).start()
    far_end = SippCall("uas_ring_answer_te.xml", tmp_path / "far", local_port=far_port,
                       media_port=far_media, timeout_s=30)
    try:
        sb = _switchboard_with_trunk(make_switchboard, app, account, far_port)
        client = sb.client(account)
        call = client.calls.create(
            to=FAR_END, from_=MAIN, send_digits="1w2#",
            twiml='<Response><Pause length="1"/><Hangup/></Response>',
            status_callback=app.url("/status"),
            status_callback_event=["initiated", "ringing", "answered", "completed"])
        result = far_end.wait()
    finally:
        far_end.kill()
        capture.stop()
    assert result.returncode == 0, result.explain()
    assert _rfc4733_digits(capture.packets(), 101) == "12#"
    callbacks = [app.wait_for("/status", timeout=10, count=n,
                              where=lambda r: r.param("CallSid") == call.sid)
                 for n in (1, 2, 3, 4)]
    assert [c.param("CallStatus") for c in callbacks] == \
        ["initiated", "ringing", "in-progress", "completed"]
    assert wait_call_status(client, call.sid, {"completed"}).status == "completed"
