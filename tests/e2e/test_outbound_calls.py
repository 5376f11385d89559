"""Outbound calls (Create Call through the official SDK) over a SIP trunk whose far end
is SIPp: digest authentication, answer, the inline TwiML runs, status callbacks in
order; busy, no-answer (ring timeout) and 503 far ends; a trunk's max_channels holding
calls `queued` in order; and Twilio's errors for a foreign From, an unrouted To and a
missing Url/Twiml."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.request
from datetime import datetime

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


ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


def _callbacks_of(app, call_sid: str, count: int, timeout: float = 10):
    """The first `count` status callbacks of the call, in the order they arrived."""
    return [app.wait_for("/status", timeout=timeout, count=n,
                         where=lambda r: r.param("CallSid") == call_sid)
            for n in range(1, count + 1)]


def test_outbound_call_that_rings_until_its_timeout(make_switchboard, app, account, tmp_path):
    """The far end rings (180) and never answers: after Timeout=3 Switchboard CANCELs, the
    far end answers 487, and the call is `no-answer` without ever requesting its Url."""
    far_port = ports.free_port()
    far_end = SippCall("uas_ring_forever.xml", tmp_path / "far", local_port=far_port,
                       timeout_s=30)
    try:
        sb = _switchboard_with_trunk(make_switchboard, app, account, far_port)
        client = sb.client(account)
        call = client.calls.create(to=FAR_END, from_=MAIN, url=app.url("/voice"), timeout=3,
                                   status_callback=app.url("/status"),
                                   status_callback_event=ALL_EVENTS)
        result = far_end.wait()
    finally:
        far_end.kill()
    assert result.returncode == 0, result.explain()
    assert re.search(r"^CANCEL sip:", result.messages, re.M), result.explain()
    done = wait_call_status(client, call.sid, {"no-answer"}, timeout=15)
    assert done.status == "no-answer"
    callbacks = _callbacks_of(app, call.sid, 3)
    assert [c.param("CallStatus") for c in callbacks] == ["initiated", "ringing", "no-answer"]
    assert [c.param("SequenceNumber") for c in callbacks] == ["0", "1", "2"]
    assert all(c.signature_valid(account.auth_token) for c in callbacks)
    assert app.requests("/voice") == [], "an unanswered call never requests its Url"


def test_outbound_call_to_a_far_end_out_of_service(make_switchboard, app, account, tmp_path):
    """503 Service Unavailable from the far end: the call is `failed`."""
    far_port = ports.free_port()
    far_end = SippCall("uas_reply_503.xml", tmp_path / "far", local_port=far_port, timeout_s=30)
    try:
        sb = _switchboard_with_trunk(make_switchboard, app, account, far_port)
        client = sb.client(account)
        call = client.calls.create(to=FAR_END, from_=MAIN, url=app.url("/voice"),
                                   status_callback=app.url("/status"),
                                   status_callback_event=ALL_EVENTS)
        result = far_end.wait()
    finally:
        far_end.kill()
    assert result.returncode == 0, result.explain()
    assert wait_call_status(client, call.sid, {"failed"}, timeout=15).status == "failed"
    callbacks = _callbacks_of(app, call.sid, 2)
    assert [c.param("CallStatus") for c in callbacks] == ["initiated", "failed"]
    assert app.requests("/voice") == []


def _sipp_timeline(result) -> list[tuple[datetime, str, str, str]]:
    """(time, direction, first line, Call-ID) of each SIP message in SIPp's message log."""
    timeline = []
    for block in result.messages.split("-----------------------------------------------")[1:]:
        lines = block.strip("\n").splitlines()
        if len(lines) < 3:
            continue
        stamp = re.match(r"\s*(\d{4}-\d\d-\d\d\s+\d\d:\d\d:\d\d(?:\.\d+)?)", lines[0])
        direction = "in" if "received" in lines[1] else "out" if "sent" in lines[1] else None
        first = next((l.strip() for l in lines[2:] if l.strip()), "")
        call_id = next((l.split(":", 1)[1].strip() for l in lines
                        if l.lower().startswith("call-id:")), "")
        if stamp and direction:
            timeline.append((datetime.fromisoformat(" ".join(stamp.group(1).split())),
                             direction, first, call_id))
    return timeline


def test_a_trunk_carries_at_most_max_channels_calls(make_switchboard, app, account, tmp_path):
    """A trunk with max_channels=1 whose far end answers and hangs up after 3 s: of three
    calls created at once, the second stays `queued` while the first is up and is dialled
    only after it ends (with the Url it was given while it waited); the third, canceled
    while it waits, ends `canceled` undialled. The far end sees two INVITEs, one after
    the other."""
    far_port = ports.free_port()
    far_end = SippCall("uas_answer_hold_bye.xml", tmp_path / "far", local_port=far_port,
                       timeout_s=40, extra=["-m", "2"])
    try:
        sb = make_switchboard(SwitchboardConfig(
            accounts=[account], numbers=[Number(account, MAIN, app.url("/voice"))],
            trunks=[{"name": "carrier", "gateway": f"127.0.0.1:{far_port}",
                     "prefixes": ["1"], "max_channels": 1}]))
        client = sb.client(account)
        calls = [client.calls.create(
            to=FAR_END, from_=MAIN, twiml='<Response><Pause length="30"/></Response>',
            status_callback=app.url("/status"), status_callback_event=ALL_EVENTS)
            for _ in range(3)]
        first, second, third = calls
        assert [c.status for c in calls] == ["queued"] * 3
        wait_call_status(client, first.sid, {"in-progress"}, timeout=15)
        for _ in range(6):  # while the first call is up (the far end holds it 3 s)
            assert client.calls(second.sid).fetch().status == "queued"
            assert client.calls(third.sid).fetch().status == "queued"
            time.sleep(0.2)
        assert client.calls(first.sid).fetch().status == "in-progress"
        app.twiml("/after-wait", '<Response><Pause length="30"/></Response>')
        client.calls(second.sid).update(url=app.url("/after-wait"))
        # The reply already shows the final status, as Twilio's does.
        assert client.calls(third.sid).update(status="canceled").status == "canceled"
        assert wait_call_status(client, third.sid, {"canceled"}).status == "canceled"
        assert wait_call_status(client, first.sid, {"completed"}, timeout=15).status == \
            "completed"
        wait_call_status(client, second.sid, {"in-progress", "completed"}, timeout=15)
        result = far_end.wait()
    finally:
        far_end.kill()
    assert result.returncode == 0, result.explain()
    assert wait_call_status(client, second.sid, {"completed"}, timeout=15).status == \
        "completed"

    for call in (first, second):
        callbacks = _callbacks_of(app, call.sid, 3)
        assert [c.param("CallStatus") for c in callbacks] == \
            ["initiated", "in-progress", "completed"]
    instructions = app.wait_for("/after-wait", where=lambda r: r.param("CallSid") == second.sid)
    assert instructions.param("CallStatus") == "in-progress"
    canceled = _callbacks_of(app, third.sid, 1)
    assert [c.param("CallStatus") for c in canceled] == ["canceled"]
    time.sleep(0.5)
    assert len([r for r in app.requests("/status") if r.param("CallSid") == third.sid]) == 1, \
        "a call canceled while queued was never initiated"
    # The second call was initiated only after the first had completed: status callbacks
    # are delivered concurrently (each retried on its own), so their arrival order proves
    # nothing; the far end's SIP timeline below does.

    # The far end's view: two INVITEs, the second after the first call's BYE.
    timeline = _sipp_timeline(result)
    invites, byes = {}, {}  # Call-ID -> first INVITE received / first BYE sent
    for at, direction, line, call_id in timeline:
        if direction == "in" and line.startswith("INVITE "):
            invites.setdefault(call_id, at)
        if direction == "out" and line.startswith("BYE "):
            byes.setdefault(call_id, at)
    assert len(invites) == 2 and set(byes) == set(invites), result.explain()
    earlier, later = sorted(invites, key=invites.get)
    assert byes[earlier] < invites[later], \
        f"the second INVITE overlapped the first call: {timeline}"


def _put_trunk(sb, name: str, spec: dict) -> dict:
    """PUT /admin/v1/trunks/{name} with the operator's credentials."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{sb.config.admin_port}/admin/v1/trunks/{name}",
        data=json.dumps(spec).encode(), method="PUT")
    auth = base64.b64encode(f"admin:{sb.config.admin_password}".encode()).decode()
    request.add_header("Authorization", f"Basic {auth}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_raising_max_channels_through_the_admin_api_dials_a_waiting_call(
        make_switchboard, app, account, tmp_path):
    """max_channels=1 holds the second call `queued`; raising it to 2 through the admin API
    dials that call at once, while the first is still up (the far end sees them overlap)."""
    far_port = ports.free_port()
    far_end = SippCall("uas_answer_hold_bye.xml", tmp_path / "far", local_port=far_port,
                       timeout_s=40, extra=["-m", "2"])
    trunk = {"gateway": f"127.0.0.1:{far_port}", "prefixes": ["1"], "max_channels": 1}
    try:
        sb = make_switchboard(SwitchboardConfig(
            accounts=[account], numbers=[Number(account, MAIN, app.url("/voice"))],
            trunks=[{"name": "carrier", **trunk}]))
        client = sb.client(account)
        first, second = [client.calls.create(
            to=FAR_END, from_=MAIN, twiml='<Response><Pause length="30"/></Response>')
            for _ in range(2)]
        wait_call_status(client, first.sid, {"in-progress"}, timeout=15)
        time.sleep(0.3)
        assert client.calls(second.sid).fetch().status == "queued"
        assert _put_trunk(sb, "carrier", {**trunk, "max_channels": 2})["max_channels"] == 2
        wait_call_status(client, second.sid, {"in-progress", "completed"}, timeout=15)
        result = far_end.wait()
    finally:
        far_end.kill()
    assert result.returncode == 0, result.explain()
    invites, byes = {}, {}
    for at, direction, line, call_id in _sipp_timeline(result):
        if direction == "in" and line.startswith("INVITE "):
            invites.setdefault(call_id, at)
        if direction == "out" and line.startswith("BYE "):
            byes.setdefault(call_id, at)
    assert len(invites) == 2 and set(byes) == set(invites), result.explain()
    earlier, later = sorted(invites, key=invites.get)
    assert invites[later] < byes[earlier], "the second call waited although a channel was added"
    for call in (first, second):
        assert wait_call_status(client, call.sid, {"completed"}, timeout=15).status == "completed"
