"""Create Call's TimeLimit: an answered outbound call in a long <Pause> is hung up by
Switchboard (BYE to the far end, SIPp) when its TimeLimit runs out, and ends
`completed` with that duration; out-of-range values are refused."""

from __future__ import annotations

import time

import pytest
from twilio.base.exceptions import TwilioRestException

from sbtest import ports
from sbtest.flows import wait_call_status
from sbtest.server import Number, SwitchboardConfig
from sbtest.sipp import SippCall
from sbtest.standard import MAIN

FAR_END = "+15551230000"


def test_time_limit_hangs_up_an_answered_call(make_switchboard, app, account, tmp_path):
    far_port = ports.free_port()
    far_end = SippCall("uas_ring_answer_te.xml", tmp_path / "far", local_port=far_port,
                       timeout_s=30)
    try:
        sb = make_switchboard(SwitchboardConfig(
            accounts=[account], numbers=[Number(account, MAIN, app.url("/voice"))],
            trunks=[{"name": "carrier", "gateway": f"127.0.0.1:{far_port}",
                     "prefixes": ["1"]}]))
        client = sb.client(account)
        started = time.monotonic()
        call = client.calls.create(
            to=FAR_END, from_=MAIN, time_limit=2,
            twiml='<Response><Pause length="60"/><Say>Never heard.</Say></Response>')
        # The far end's scenario ends when it gets our BYE (it never hangs up itself).
        result = far_end.wait()
        elapsed = time.monotonic() - started
    finally:
        far_end.kill()
    assert result.returncode == 0, result.explain()
    assert "BYE" in result.messages
    assert elapsed < 20, f"the call lasted {elapsed:.1f} s"
    done = wait_call_status(client, call.sid, {"completed"}, timeout=10)
    assert done.status == "completed"
    assert 2 <= int(done.duration) <= 4, done.duration


@pytest.mark.parametrize("value", ["0", "86401", "ten"])
def test_time_limit_out_of_range_is_refused(switchboard, account, value):
    client = switchboard.client(account)
    with pytest.raises(TwilioRestException) as refused:
        client.calls.create(to=FAR_END, from_=MAIN, time_limit=value,
                            twiml="<Response><Hangup/></Response>")
    assert refused.value.status == 400
    assert "TimeLimit" in refused.value.msg
