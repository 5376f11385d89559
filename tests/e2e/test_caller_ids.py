"""OutgoingCallerIds through the official SDK: a validation request calls the number over
a trunk whose far end (SIPp) keys in the code as RFC 4733 digits; the right code creates
the caller ID (then usable as From), a wrong one creates none; the StatusCallback reports
the outcome, signed. Plus list/fetch/update/delete and tenant isolation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from twilio.base.exceptions import TwilioRestException

from sbtest import ports
from sbtest.rtp import write_dtmf_pcap
from sbtest.server import Number, SwitchboardConfig
from sbtest.sipp import SippCall, scenario
from sbtest.standard import MAIN

VALIDATED = "+15557770001"
CALL_DELAY_S = 3


def _switchboard(make_switchboard, app, accounts, far_port: int):
    account, other = accounts
    return make_switchboard(SwitchboardConfig(
        accounts=[account, other], numbers=[Number(account, MAIN, app.url("/voice"))],
        trunks=[{"name": "carrier", "gateway": f"127.0.0.1:{far_port}", "prefixes": ["1"]}]))


def _far_end_keying(workdir: Path, port: int, digits: str) -> SippCall:
    """SIPp answering the validation call and keying in `digits`."""
    workdir.mkdir(parents=True, exist_ok=True)
    pcap = write_dtmf_pcap(workdir / "code.pcap", digits)
    template = scenario("uas_answer_key_digits.xml").read_text()
    path = workdir / "far_end.xml"
    path.write_text(template.replace("@PCAP@", str(pcap)))
    return SippCall(str(path), workdir, local_port=port, timeout_s=40)


def _validate(sb, app, account, far_port, workdir, *, wrong: bool):
    client = sb.client(account)
    request = client.validation_requests.create(
        phone_number=VALIDATED, friendly_name="Front desk", call_delay=CALL_DELAY_S,
        status_callback=app.url("/caller-id"))
    code = request.validation_code
    assert len(code) == 6 and code.isdigit(), code
    assert request.phone_number == VALIDATED
    assert request.call_sid.startswith("CA")
    assert request.account_sid == account.sid
    digits = "".join(str((int(d) + 1) % 10) for d in code) if wrong else code
    # The validation call is dialled CALL_DELAY_S after the request: time to start the far end.
    far_end = _far_end_keying(workdir, far_port, digits)
    try:
        result = far_end.wait()
    finally:
        far_end.kill()
    assert result.returncode == 0, result.explain()
    callback = app.wait_for("/caller-id", timeout=15)
    assert callback.signature_valid(account.auth_token), callback.describe()
    assert callback.param("AccountSid") == account.sid
    assert callback.param("CallSid") == request.call_sid
    return client, request, callback


def test_the_right_code_creates_the_caller_id(make_switchboard, app, accounts, tmp_path):
    account, other = accounts
    far_port = ports.free_port()
    sb = _switchboard(make_switchboard, app, accounts, far_port)
    client = sb.client(account)
    # Not validated yet: not a usable From.
    with pytest.raises(TwilioRestException) as before:
        client.calls.create(to="+15551239999", from_=VALIDATED, twiml="<Response/>")
    assert before.value.code == 21210

    started = time.monotonic()
    client, request, callback = _validate(sb, app, account, far_port, tmp_path / "right",
                                          wrong=False)
    assert callback.param("VerificationStatus") == "success", callback.describe()
    # CallDelay: the far end was not called before the delay.
    assert time.monotonic() - started >= CALL_DELAY_S

    caller_ids = client.outgoing_caller_ids.list(phone_number=VALIDATED)
    assert len(caller_ids) == 1
    caller_id = caller_ids[0]
    assert caller_id.sid.startswith("PN")
    assert caller_id.sid == callback.param("OutgoingCallerIdSid")
    assert caller_id.phone_number == VALIDATED
    assert caller_id.friendly_name == "Front desk"
    assert caller_id.account_sid == account.sid
    call = client.calls(request.call_sid).fetch()
    assert call.to == VALIDATED and call.direction == "outbound-api"

    # Now a usable From (the call itself goes nowhere: the far end is gone).
    placed = client.calls.create(to="sip:nobody@127.0.0.1:9", from_=VALIDATED,
                                 twiml="<Response><Hangup/></Response>")
    assert placed.status == "queued"

    # Validating it again is Twilio's 21450.
    with pytest.raises(TwilioRestException) as again:
        client.validation_requests.create(phone_number=VALIDATED)
    assert again.value.code == 21450

    # Fetch, rename, tenant isolation, delete.
    fetched = client.outgoing_caller_ids(caller_id.sid).fetch()
    assert fetched.phone_number == VALIDATED
    renamed = client.outgoing_caller_ids(caller_id.sid).update(friendly_name="Reception")
    assert renamed.friendly_name == "Reception"
    assert client.outgoing_caller_ids(caller_id.sid).fetch().friendly_name == "Reception"
    intruder = sb.client(other)
    with pytest.raises(TwilioRestException) as foreign:
        intruder.api.v2010.accounts(account.sid).outgoing_caller_ids(caller_id.sid).fetch()
    assert foreign.value.status in (401, 403, 404)
    with pytest.raises(TwilioRestException) as foreign_own_path:
        intruder.outgoing_caller_ids(caller_id.sid).fetch()
    assert foreign_own_path.value.status == 404
    assert intruder.outgoing_caller_ids.list() == []
    with pytest.raises(TwilioRestException) as foreign_from:
        intruder.calls.create(to="+15551239999", from_=VALIDATED, twiml="<Response/>")
    assert foreign_from.value.code == 21210

    assert client.outgoing_caller_ids(caller_id.sid).delete() is True
    with pytest.raises(TwilioRestException) as gone:
        client.outgoing_caller_ids(caller_id.sid).fetch()
    assert gone.value.status == 404
    with pytest.raises(TwilioRestException) as after_delete:
        client.calls.create(to="+15551239999", from_=VALIDATED, twiml="<Response/>")
    assert after_delete.value.code == 21210


def test_a_wrong_code_leaves_no_caller_id(make_switchboard, app, accounts, tmp_path):
    account, _ = accounts
    far_port = ports.free_port()
    sb = _switchboard(make_switchboard, app, accounts, far_port)
    client, request, callback = _validate(sb, app, account, far_port, tmp_path / "wrong",
                                          wrong=True)
    assert callback.param("VerificationStatus") == "failed", callback.describe()
    assert callback.param("OutgoingCallerIdSid") is None
    assert client.outgoing_caller_ids.list(phone_number=VALIDATED) == []
    with pytest.raises(TwilioRestException) as refused:
        client.calls.create(to="+15551239999", from_=VALIDATED, twiml="<Response/>")
    assert refused.value.code == 21210


def test_validation_request_errors(switchboard, account):
    client = switchboard.client(account)
    with pytest.raises(TwilioRestException) as invalid:
        client.validation_requests.create(phone_number="not a number")
    assert invalid.value.code == 21217
    with pytest.raises(TwilioRestException) as delay:
        client.validation_requests.create(phone_number="+15557770002", call_delay=61)
    assert delay.value.status == 400
    with pytest.raises(TwilioRestException) as missing:
        client.outgoing_caller_ids("PN" + "0" * 32).fetch()
    assert missing.value.status == 404


def test_the_validation_endpoint_does_not_know_made_up_ids(switchboard, account):
    import urllib.error
    import urllib.parse
    import urllib.request
    url = f"{switchboard.base_url}/switchboard/v1/caller-id-validations/VR{'0' * 32}"
    body = urllib.parse.urlencode({"Digits": "123456", "CallSid": "CA" + "0" * 32}).encode()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=5)
    assert refused.value.code == 404
