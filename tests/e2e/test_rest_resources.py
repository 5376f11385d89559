"""REST resources managed through the official Python SDK: IncomingPhoneNumbers
(create/list/page/update/delete, and a created number answering a real SIPp
call), subaccounts (the parent reaches them, they never reach the parent), API
keys (SK…:secret credentials, revoked by delete), stable paging with
PageToken, Calls date filters and delete, XML/CSV formats, and Twilio error
codes."""

from __future__ import annotations

import datetime
import secrets
import time

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from sbtest.flows import CALL_SID, digits, place_call, wait_call_status
from sbtest.server import Account
from sbtest.standard import MAIN, SAY_OK_HANG_UP


def _fresh_number() -> str:
    """A number no other test (or the standard config) uses: +1 500 7xx xxxx."""
    return "+15007" + "".join(secrets.choice("0123456789") for _ in range(6))


def _client(switchboard, username: str, password: str, account_sid: str | None = None) -> Client:
    client = Client(username, password, account_sid, http_client=TwilioHttpClient(timeout=15))
    client.api.base_url = switchboard.base_url
    return client


def _status(error: TwilioException) -> int | None:
    if isinstance(error, TwilioRestException):
        return error.status
    response = error.args[1] if len(error.args) > 1 else None
    return getattr(response, "status_code", None)


def test_incoming_numbers_crud_and_paging(switchboard, app, account):
    client = switchboard.client(account)
    created = [
        client.incoming_phone_numbers.create(phone_number=_fresh_number(),
                                             voice_url=app.url(f"/n{i}"),
                                             friendly_name=f"rest-resources {i}")
        for i in range(5)
    ]
    try:
        first = created[0]
        assert first.sid.startswith("PN") and len(first.sid) == 34, first.sid
        assert first.account_sid == account.sid
        assert first.voice_url == app.url("/n0")
        assert first.voice_method == "POST"
        assert first.capabilities["voice"] is True
        assert isinstance(first.date_created, datetime.datetime)

        fetched = client.incoming_phone_numbers(first.sid).fetch()
        assert fetched.phone_number == first.phone_number
        assert fetched.friendly_name == "rest-resources 0"

        # Paging: the SDK follows next_page_uri across 3+ pages of 2.
        pages = list(client.incoming_phone_numbers.stream(page_size=2))
        sids = [n.sid for n in pages]
        assert len(sids) == len(set(sids)), sids
        assert {n.sid for n in created} <= set(sids)
        assert len(sids) >= 5 + 1  # ours plus the standard config's numbers
        page = client.incoming_phone_numbers.page(page_size=2)
        hops = 1
        while page.next_page_url:
            assert "PageToken=PA" in page.next_page_url, page.next_page_url
            page = page.next_page()
            hops += 1
        assert hops >= 3, hops

        by_number = client.incoming_phone_numbers.list(phone_number=first.phone_number)
        assert [n.sid for n in by_number] == [first.sid]
        by_name = client.incoming_phone_numbers.list(friendly_name="rest-resources 3")
        assert [n.sid for n in by_name] == [created[3].sid]

        updated = client.incoming_phone_numbers(first.sid).update(
            friendly_name="renamed", voice_url=app.url("/moved"), voice_method="GET",
            sms_url=app.url("/sms"))
        assert updated.friendly_name == "renamed"
        assert updated.voice_url == app.url("/moved")
        assert updated.voice_method == "GET"
        assert updated.sms_url == app.url("/sms")
        assert client.incoming_phone_numbers(first.sid).fetch().voice_method == "GET"
    finally:
        for n in created:
            assert client.incoming_phone_numbers(n.sid).delete() is True
    with pytest.raises(TwilioRestException) as raised:
        client.incoming_phone_numbers(created[0].sid).fetch()
    assert raised.value.status == 404 and raised.value.code == 20404


def test_incoming_number_errors(switchboard, accounts):
    a, b = accounts
    client_a, client_b = switchboard.client(a), switchboard.client(b)
    # Digits are unique across all accounts, the standard ones included.
    with pytest.raises(TwilioRestException) as raised:
        client_b.incoming_phone_numbers.create(phone_number=MAIN)
    assert raised.value.status == 400 and raised.value.code == 21422, raised.value
    with pytest.raises(TwilioRestException) as raised:
        client_a.incoming_phone_numbers.create(phone_number="not a number")
    assert raised.value.status == 400 and raised.value.code == 21421
    with pytest.raises(TwilioRestException) as raised:
        client_a.incoming_phone_numbers.create(phone_number=_fresh_number(), voice_url="nope")
    assert raised.value.code == 21402 and "VoiceUrl" in raised.value.msg
    # Tenant isolation: B cannot see or change A's number.
    number = client_a.incoming_phone_numbers.create(phone_number=_fresh_number())
    try:
        for action in (lambda n: n.fetch(), lambda n: n.update(friendly_name="x"),
                       lambda n: n.delete()):
            with pytest.raises(TwilioRestException) as raised:
                action(client_b.incoming_phone_numbers(number.sid))
            assert raised.value.status == 404 and raised.value.code == 20404
        assert number.sid not in {n.sid for n in client_b.incoming_phone_numbers.list()}
    finally:
        client_a.incoming_phone_numbers(number.sid).delete()


def test_created_number_routes_to_its_voice_url(switchboard, app, account, tmp_path):
    client = switchboard.client(account)
    app.twiml("/created", SAY_OK_HANG_UP)
    app.twiml("/updated", SAY_OK_HANG_UP)
    number = client.incoming_phone_numbers.create(phone_number=_fresh_number(),
                                                  voice_url=app.url("/created"))
    try:
        outcome = place_call(switchboard, tmp_path / "first", number.phone_number)
        assert outcome.sipp.returncode == 0, outcome.sipp.explain()
        request = app.wait_for("/created", timeout=5)
        assert request.signature_valid(account.auth_token), request.describe()
        assert digits(request.param("To")) == digits(number.phone_number)
        sid = request.param("CallSid")
        assert sid and CALL_SID.match(sid), sid
        wait_call_status(client, sid, {"completed"})

        # An update routes the very next call to the new URL.
        client.incoming_phone_numbers(number.sid).update(voice_url=app.url("/updated"))
        outcome = place_call(switchboard, tmp_path / "second", number.phone_number)
        assert outcome.sipp.returncode == 0, outcome.sipp.explain()
        app.wait_for("/updated", timeout=5)
        assert len(app.requests("/created")) == 1
    finally:
        client.incoming_phone_numbers(number.sid).delete()
    # Released: the number no longer routes.
    outcome = place_call(switchboard, tmp_path / "third", number.phone_number,
                         scenario="uac_expect_status.xml", sets={"expected": "404"},
                         keys={"offer_pt": "0", "offer_codec": "PCMU"}, timeout_s=30)
    assert outcome.sipp.returncode == 0, (
        f"expected 404, got {outcome.sipp.final_status_line()!r}\n" + outcome.sipp.explain())


def test_subaccounts(switchboard, app, account, tmp_path):
    parent = switchboard.client(account)
    sub = parent.api.accounts.create(friendly_name="rest-resources child")
    assert sub.sid.startswith("AC") and sub.sid != account.sid
    assert sub.owner_account_sid == account.sid
    assert sub.friendly_name == "rest-resources child"
    assert sub.status == "active"
    assert sub.auth_token

    listed = {a.sid for a in parent.api.accounts.list()}
    assert {account.sid, sub.sid} <= listed
    assert [a.sid for a in parent.api.accounts.list(friendly_name="rest-resources child")] \
        == [sub.sid]

    # The parent provisions a number in the subaccount; a call to it is the subaccount's,
    # signed with the subaccount's token, and the parent reads it.
    app.twiml("/sub/voice", SAY_OK_HANG_UP)
    number = parent.api.accounts(sub.sid).incoming_phone_numbers.create(
        phone_number=_fresh_number(), voice_url=app.url("/sub/voice"))
    try:
        assert number.account_sid == sub.sid
        outcome = place_call(switchboard, tmp_path, number.phone_number)
        assert outcome.sipp.returncode == 0, outcome.sipp.explain()
        request = app.wait_for("/sub/voice", timeout=5)
        assert request.param("AccountSid") == sub.sid
        assert request.signature_valid(sub.auth_token), request.describe()
        call_sid = request.param("CallSid")

        parent_view = parent.api.accounts(sub.sid)
        assert call_sid in {c.sid for c in parent_view.calls.list()}
        assert parent_view.calls(call_sid).fetch().account_sid == sub.sid

        # The subaccount sees its own call, never its parent.
        child = switchboard.client(Account(sub.sid, sub.auth_token))
        assert call_sid in {c.sid for c in child.calls.list()}
        with pytest.raises(TwilioRestException) as raised:
            child.api.accounts(account.sid).fetch()
        assert raised.value.status == 404 and raised.value.code == 20404
        with pytest.raises(TwilioException) as raised:
            child.api.accounts(account.sid).calls.list()
        assert _status(raised.value) == 404
        assert [a.sid for a in child.api.accounts.list()] == [sub.sid]
        # Only the parent changes the subaccount's status.
        with pytest.raises(TwilioRestException) as raised:
            child.api.accounts(sub.sid).update(status="closed")
        assert raised.value.status == 403
    finally:
        parent.api.accounts(sub.sid).incoming_phone_numbers(number.sid).delete()

    suspended = parent.api.accounts(sub.sid).update(status="suspended")
    assert suspended.status == "suspended"
    with pytest.raises(TwilioException) as raised:
        child.calls.list()
    assert _status(raised.value) == 401
    assert parent.api.accounts(sub.sid).fetch().status == "suspended"
    assert parent.api.accounts(sub.sid).update(status="active").status == "active"
    assert child.calls.list() is not None


def test_parent_transfers_numbers(switchboard, app, account, tmp_path):
    parent = switchboard.client(account)
    sub = parent.api.accounts.create(friendly_name="rest-resources transfer")
    number = parent.incoming_phone_numbers.create(phone_number=_fresh_number(),
                                                  voice_url=app.url("/moved/voice"))
    moved = parent.incoming_phone_numbers(number.sid).update(account_sid=sub.sid)
    try:
        assert moved.account_sid == sub.sid
        assert number.sid not in {n.sid for n in parent.incoming_phone_numbers.list()}
        in_sub = parent.api.accounts(sub.sid).incoming_phone_numbers.list()
        assert number.sid in {n.sid for n in in_sub}
        # Calls to it now belong to (and are signed for) the subaccount.
        app.twiml("/moved/voice", SAY_OK_HANG_UP)
        outcome = place_call(switchboard, tmp_path, number.phone_number)
        assert outcome.sipp.returncode == 0, outcome.sipp.explain()
        request = app.wait_for("/moved/voice", timeout=5)
        assert request.param("AccountSid") == sub.sid
        assert request.signature_valid(sub.auth_token), request.describe()
        # The subaccount cannot hand it back itself.
        child = switchboard.client(Account(sub.sid, sub.auth_token))
        with pytest.raises(TwilioRestException) as raised:
            child.incoming_phone_numbers(number.sid).update(account_sid=account.sid)
        assert raised.value.status == 403
    finally:
        parent.api.accounts(sub.sid).incoming_phone_numbers(number.sid).delete()


def test_api_keys(switchboard, account, accounts):
    owner = switchboard.client(account)
    key = owner.new_keys.create(friendly_name="rest-resources key")
    assert key.sid.startswith("SK") and len(key.sid) == 34
    assert key.secret and len(key.secret) >= 32
    listed = {k.sid: k for k in owner.keys.list()}
    assert key.sid in listed
    assert listed[key.sid].friendly_name == "rest-resources key"
    assert not hasattr(listed[key.sid], "secret")
    assert owner.keys(key.sid).update(friendly_name="renamed").friendly_name == "renamed"

    with_key = _client(switchboard, key.sid, key.secret, account.sid)
    calls = with_key.calls.list(limit=5)
    assert isinstance(calls, list)
    assert with_key.incoming_phone_numbers.list(phone_number=MAIN)[0].phone_number == MAIN

    # A key acts only for its account.
    other = accounts[1]
    elsewhere = _client(switchboard, key.sid, key.secret, other.sid)
    with pytest.raises(TwilioException) as raised:
        elsewhere.calls.list()
    assert _status(raised.value) == 404
    wrong = _client(switchboard, key.sid, "0" * 32, account.sid)
    with pytest.raises(TwilioException) as raised:
        wrong.calls.list()
    assert _status(raised.value) == 401

    assert owner.keys(key.sid).delete() is True
    with pytest.raises(TwilioException) as raised:
        with_key.calls.list()
    assert _status(raised.value) == 401
    with pytest.raises(TwilioRestException) as raised:
        owner.keys(key.sid).fetch()
    assert raised.value.code == 20404


def test_page_tokens_keep_paging_stable(switchboard, account):
    """The SDK follows next_page_uri, which names the last item seen (PageToken): every
    item comes exactly once, in order, across 4 pages, even when an item already seen is
    deleted between pages (an offset would then skip one)."""
    parent = switchboard.client(account)
    sub = parent.api.accounts.create(friendly_name="rest-resources paging")
    client = _client(switchboard, sub.sid, sub.auth_token)
    created = []
    for i in range(7):
        created.append(client.new_keys.create(friendly_name=f"page {i}").sid)
        time.sleep(0.005)  # distinct creation times, so that the list order is creation order

    streamed = [k.sid for k in client.keys.stream(page_size=2)]
    assert streamed == created
    assert [k.friendly_name for k in client.keys.list(page_size=3)] == \
        [f"page {i}" for i in range(7)]

    page = client.keys.page(page_size=2)
    assert "PageToken=PA" in page.next_page_url, page.next_page_url
    assert page.previous_page_url is None
    seen = [k.sid for k in page]
    assert client.keys(seen[0]).delete() is True
    pages = 1
    while page.next_page_url:
        page = page.next_page()
        pages += 1
        assert page.previous_page_url and "PageToken=PB" in page.previous_page_url
        seen += [k.sid for k in page]
    assert seen == created
    assert pages == 4

    # A previous page (PageToken=PB…) holds the items just before the current one's.
    back = page.previous_page()
    assert [k.sid for k in back] == created[4:6]

    # (A page request that fails raises a bare TwilioException holding the response.)
    with pytest.raises(TwilioException) as raised:
        client.keys.page(page_size=2, page_token="PAnot-a-token")
    assert _status(raised.value) == 400
    assert '"code":20001' in raised.value.args[1].text, raised.value


def test_calls_date_filters_and_delete(switchboard, app, account, tmp_path):
    client = switchboard.client(account)
    app.twiml("/voice", SAY_OK_HANG_UP)
    outcome = place_call(switchboard, tmp_path, MAIN)
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    sid = app.wait_for("/voice", timeout=5).param("CallSid")
    call = wait_call_status(client, sid, {"completed"})
    day = call.start_time.date()
    one = datetime.timedelta(days=1)

    def listed(**filters) -> set[str]:
        return {c.sid for c in client.calls.list(**filters)}

    assert sid in listed(start_time=day)
    assert sid in listed(start_time_after=day, start_time_before=day)
    assert sid not in listed(start_time=day - one)
    assert sid not in listed(start_time_after=day + one)
    assert sid not in listed(start_time_before=day - one)
    assert sid in listed(end_time=call.end_time.date())
    assert sid not in listed(end_time_after=call.end_time.date() + one)

    assert client.calls(sid).delete() is True
    with pytest.raises(TwilioRestException) as raised:
        client.calls(sid).fetch()
    assert raised.value.status == 404 and raised.value.code == 20404
    assert sid not in listed()
    with pytest.raises(TwilioRestException) as raised:
        client.calls(sid).delete()
    assert raised.value.status == 404


def test_live_call_cannot_be_deleted(switchboard, app, account, tmp_path):
    client = switchboard.client(account)
    long_prompt = " ".join(["This call stays up while the test tries to delete it."] * 3)
    app.twiml("/voice", f"<Response><Say>{long_prompt}</Say><Hangup/></Response>")
    refused: list[TwilioRestException] = []

    def while_live(_call) -> None:
        sid = app.wait_for("/voice", timeout=10).param("CallSid")
        wait_call_status(client, sid, {"ringing", "in-progress"})
        with pytest.raises(TwilioRestException) as raised:
            client.calls(sid).delete()
        refused.append(raised.value)

    outcome = place_call(switchboard, tmp_path, MAIN, during=while_live)
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    assert len(refused) == 1
    assert refused[0].status == 409 and refused[0].code == 20009, refused[0]
    sid = app.requests("/voice")[0].param("CallSid")
    wait_call_status(client, sid, {"completed"})
    assert client.calls(sid).delete() is True


def test_xml_csv_and_405(switchboard, account):
    auth = (account.sid, account.auth_token)
    base = f"{switchboard.base_url}/2010-04-01/Accounts/{account.sid}"
    xml = requests.get(f"{base}/IncomingPhoneNumbers.xml", auth=auth, timeout=10)
    assert xml.status_code == 200
    assert xml.headers["content-type"].startswith("application/xml")
    assert "<TwilioResponse><IncomingPhoneNumbers page=\"0\"" in xml.text, xml.text
    assert f"<PhoneNumber>{MAIN}</PhoneNumber>" in xml.text
    one = requests.get(f"{switchboard.base_url}/2010-04-01/Accounts/{account.sid}.xml",
                       auth=auth, timeout=10)
    assert f"<TwilioResponse><Account><AuthToken>{account.auth_token}</AuthToken>" in one.text
    csv = requests.get(f"{base}/IncomingPhoneNumbers.csv", auth=auth, timeout=10)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    header, *rows = csv.text.strip().splitlines()
    assert "PhoneNumber" in header.split(",")
    assert any(MAIN in row for row in rows)

    wrong = requests.put(f"{base}/Calls.json", auth=auth, timeout=10)
    assert wrong.status_code == 405
    assert wrong.json()["code"] == 20004


def test_too_many_requests_is_20429(make_switchboard, app, account):
    """An account beyond its request rate gets Twilio's 20429 (HTTP 429, Retry-After);
    another account is not affected."""
    from sbtest.server import SwitchboardConfig
    other = Account.generate()
    sb = make_switchboard(SwitchboardConfig(accounts=[account, other], numbers=[],
                                            requests_per_second=1, request_burst=5))
    client = sb.client(account)
    codes = []
    for _ in range(12):
        try:
            client.api.v2010.accounts(account.sid).fetch()
            codes.append(200)
        except TwilioRestException as e:
            codes.append(e.code)
    # The burst of 5 (less what the harness's readiness check used), then 1/s.
    assert codes[:3] == [200] * 3, codes
    assert set(codes) == {200, 20429}, codes
    assert 3 <= codes.count(200) <= 7, codes
    # The raw response: HTTP 429, Twilio's JSON error body, Retry-After.
    url = f"{sb.base_url}/2010-04-01/Accounts/{account.sid}.json"
    responses = [requests.get(url, auth=(account.sid, account.auth_token), timeout=5)
                 for _ in range(3)]
    refused = next((r for r in responses if r.status_code == 429), None)
    assert refused is not None, [r.status_code for r in responses]
    assert refused.json()["code"] == 20429
    assert refused.json()["status"] == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert sb.client(other).calls.list(limit=1) == []
