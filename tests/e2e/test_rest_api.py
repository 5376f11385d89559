"""The Twilio REST API through the official Python SDK pointed at
Switchboard: listing and fetching finished calls, authentication, tenant
isolation, and the signed status callback after hang-up."""

from __future__ import annotations

import datetime

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException

from sbtest.flows import CALL_SID, digits, place_call, wait_call_status
from sbtest.standard import MAIN, OTHER_TENANT, SAY_HELLO_HANG_UP


def _finished_call(switchboard, app, account, tmp_path, number=MAIN, path="/voice"):
    app.twiml(path, SAY_HELLO_HANG_UP)
    outcome = place_call(switchboard, tmp_path, number)
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    sid = app.wait_for(path, timeout=1).param("CallSid")
    assert sid and CALL_SID.match(sid), sid
    return sid, outcome


def test_rest_api_list_fetch(switchboard, app, account, tmp_path):
    sid, outcome = _finished_call(switchboard, app, account, tmp_path)
    client = switchboard.client(account)
    call = wait_call_status(client, sid, {"completed"})

    listed = {c.sid: c for c in client.calls.list()}
    assert sid in listed, f"{sid} not in Calls list {sorted(listed)}"
    for c in (call, listed[sid]):
        assert c.sid == sid
        assert c.account_sid == account.sid
        assert digits(c.to) == digits(MAIN)
        caller = getattr(c, "_from", None) or getattr(c, "from_", None)  # SDK 9.x: _from
        assert "15551230003" in digits(caller), caller
        assert c.direction == "inbound"
        assert c.status == "completed"
        assert isinstance(c.start_time, datetime.datetime), c.start_time
        assert isinstance(c.end_time, datetime.datetime), c.end_time
        assert c.start_time <= c.end_time
        assert isinstance(c.duration, str) and c.duration.isdigit(), repr(c.duration)
        call_length = outcome.ended_at - outcome.started_at
        assert 0 <= int(c.duration) <= call_length + 1, (c.duration, call_length)
        assert abs(int(c.duration) - (c.end_time - c.start_time).total_seconds()) <= 1


def _http_status(error: TwilioException) -> int | None:
    """TwilioRestException (fetch) carries .status; a failed list page raises a
    plain TwilioException("Unable to fetch page", response)."""
    if isinstance(error, TwilioRestException):
        return error.status
    response = error.args[1] if len(error.args) > 1 else None
    return getattr(response, "status_code", None)


@pytest.mark.parametrize("who", ["wrong-token", "unknown-account", "other-accounts-token"])
def test_wrong_token_401(switchboard, accounts, who):
    a, b = accounts
    client = {
        "wrong-token": lambda: switchboard.client(a, auth_token="0" * 32),
        "unknown-account": lambda: switchboard.client(type(a).generate()),
        "other-accounts-token": lambda: switchboard.client(a, auth_token=b.auth_token),
    }[who]()
    with pytest.raises(TwilioRestException) as raised:
        client.calls("CA" + "0" * 32).fetch()
    assert raised.value.status == 401, raised.value
    with pytest.raises(TwilioException) as raised:
        client.calls.list()
    assert _http_status(raised.value) == 401, raised.value
    with pytest.raises(TwilioException) as raised:
        client.notifications.list()
    assert _http_status(raised.value) == 401, raised.value


def test_tenant_isolation_404(switchboard, app, accounts, tmp_path):
    a, b = accounts
    sid, _ = _finished_call(switchboard, app, b, tmp_path, number=OTHER_TENANT, path="/b/voice")
    voice = app.wait_for("/b/voice", timeout=1)
    assert voice.param("AccountSid") == b.sid
    assert voice.signature_valid(b.auth_token), voice.describe()

    owner = switchboard.client(b)
    assert wait_call_status(owner, sid, {"completed"}).account_sid == b.sid

    stranger = switchboard.client(a)
    with pytest.raises(TwilioRestException) as raised:
        stranger.calls(sid).fetch()
    assert raised.value.status == 404
    assert sid not in {c.sid for c in stranger.calls.list()}

    # B's number and B's notification (an app answering garbage leaves a 12100 one).
    app.answer("/b/voice", "this is not TwiML <", content_type="text/xml")
    outcome = place_call(switchboard, tmp_path / "broken", OTHER_TENANT)
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    broken_sid = app.wait_for("/b/voice", timeout=5, count=2).param("CallSid")
    notifications = [n for n in owner.calls(broken_sid).notifications.list()]
    assert notifications, "the broken app left a notification"
    notification = notifications[0]
    number = owner.incoming_phone_numbers.list(phone_number=OTHER_TENANT)[0]
    for fetch in (lambda: stranger.notifications(notification.sid).fetch(),
                  lambda: stranger.calls(broken_sid).notifications(notification.sid).fetch(),
                  lambda: stranger.incoming_phone_numbers(number.sid).fetch(),
                  lambda: stranger.api.v2010.accounts(b.sid).notifications(
                      notification.sid).fetch(),
                  lambda: stranger.api.v2010.accounts(b.sid).incoming_phone_numbers(
                      number.sid).fetch()):
        with pytest.raises(TwilioRestException) as raised:
            fetch()
        assert raised.value.status == 404
    assert notification.sid not in {n.sid for n in stranger.notifications.list()}
    assert number.sid not in {n.sid for n in stranger.incoming_phone_numbers.list()}
    # The owner reaches both.
    assert owner.notifications(notification.sid).fetch().call_sid == broken_sid
    assert owner.calls(broken_sid).notifications(notification.sid).fetch().sid == \
        notification.sid


def test_status_callback_completed(switchboard, app, account, tmp_path):
    sid, outcome = _finished_call(switchboard, app, account, tmp_path)
    status = app.wait_for("/status", timeout=10, where=lambda r: r.param("CallSid") == sid)
    assert status.method == "POST"
    assert status.signature_valid(account.auth_token), status.describe()
    assert status.url == app.url("/status")
    assert status.param("CallStatus") == "completed", status.describe()
    assert status.param("AccountSid") == account.sid, status.describe()
    assert status.param("Direction") == "inbound", status.describe()
    assert digits(status.param("To")) == digits(MAIN), status.describe()
    duration = status.param("CallDuration") or ""
    assert duration.isdigit(), status.describe()
    assert int(duration) <= outcome.ended_at - outcome.started_at + 1, status.describe()


def test_status_callback_is_retried_until_delivered(switchboard, app, account, tmp_path):
    """At-least-once delivery: the app fails the first status callback with 500; the same
    callback (same SequenceNumber) comes again about a second later and is accepted."""
    app.answer("/status", "try later", content_type="text/plain", status=500)
    sid, _ = _finished_call(switchboard, app, account, tmp_path)
    mine = lambda r: r.param("CallSid") == sid  # noqa: E731
    first = app.wait_for("/status", timeout=10, where=mine)
    app.answer("/status", "", content_type="text/plain", status=200)
    second = app.wait_for("/status", timeout=10, count=2, where=mine)
    assert second.received_at - first.received_at >= 0.9
    for request in (first, second):
        assert request.signature_valid(account.auth_token), request.describe()
        assert request.param("CallStatus") == "completed"
    assert first.param("SequenceNumber") == second.param("SequenceNumber")
    assert first.param("Timestamp") == second.param("Timestamp")
