"""`<Dial>`: a SIPp caller (PCMU only) is connected to a SIPp callee that speaks A-law only,
dialled as `<Sip>` and as `<Number>` through a trunk; the audio crosses the bridge transcoded
sample for sample both ways, the caller hears ringback meanwhile, and the child call is a
real `outbound-dial` Call record. Then the signalling around it: the action request
(DialCallStatus, DialCallSid, DialCallDuration, DialBridged), digest auth and sendDigits
through a trunk, the leg's status callbacks, no-answer (CANCEL on timeout), busy, several
nouns ringing at once (first answer wins, CANCEL to the others), hangupOnStar, the caller
hanging up while it rings, and a callerId the account may not use (13214)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sbtest import ports
from sbtest.flows import place_call, wait_call_status
from sbtest.rtp import (
    ULAW,
    RtpCapture,
    RtpPacket,
    alaw_to_ulaw,
    tone_power,
    ulaw_to_alaw,
    write_dtmf_pcap,
    write_speech_g711,
)
from sbtest.server import Number, SwitchboardConfig
from sbtest.sipp import SippCall, SippResult, scenario
from sbtest.standard import MAIN

CALLER = "+15551230003"  # the From of the SIPp callers in tests/peers
FAR_NUMBER = "+15551239876"  # routed by the test trunks (prefix 1)
FRAME = 160  # bytes of G.711 per 20 ms packet


def _trunk_switchboard(make_switchboard, app, account, gateway_port: int, **auth):
    return make_switchboard(SwitchboardConfig(
        accounts=[account], numbers=[Number(account, MAIN, app.url("/voice"))],
        trunks=[{"name": "carrier", "gateway": f"127.0.0.1:{gateway_port}",
                 "prefixes": ["1"], **auth}]))


def _frames(data: bytes) -> list[bytes]:
    return [data[i:i + FRAME] for i in range(0, len(data), FRAME)]


def _matched_frames(packets: list[RtpPacket], payload_type: int,
                    expected: dict[bytes, int]) -> list[int]:
    """Source frame index of every packet of `payload_type` whose payload is exactly the
    expected transcoding of a frame of the source file."""
    return [expected[p.payload] for p in sorted(packets, key=lambda p: p.time)
            if p.payload_type == payload_type and p.payload in expected]


def _invites(result: SippResult) -> list[str]:
    """The INVITE requests SIPp received (as logged)."""
    blocks = result.messages.split("-----------------------------------------------")
    return [b for b in blocks if "message received" in b and re.search(r"^\s*INVITE ", b, re.M)]


def _header(message: str, name: str) -> str:
    match = re.search(rf"^\s*{name}:\s*(.*)$", message, re.M | re.I)
    return match.group(1) if match else ""


def _speaking_caller(workdir: Path) -> bytes:
    """The caller's audio: speech as raw mu-law in the directory SIPp runs in."""
    (workdir / "sipp").mkdir(parents=True, exist_ok=True)
    return write_speech_g711(workdir / "sipp" / "caller.ul",
                             "One two three, this is the caller speaking mu law.", "ulaw")


@pytest.mark.parametrize("route", ["sip", "number"])
def test_dial_bridges_a_pcmu_caller_to_a_pcma_callee_sample_exactly(
        route, request, make_switchboard, app, account, tmp_path):
    callee_port, callee_media = ports.free_port(), ports.free_media_port()
    callee_dir = tmp_path / "callee"
    callee_dir.mkdir()
    callee_audio = write_speech_g711(callee_dir / "callee.al",
                                     "Hello, the callee answers in A law.", "alaw")
    caller_audio = _speaking_caller(tmp_path / "caller")
    if route == "sip":
        sb = request.getfixturevalue("switchboard")
        callee_uri = f"sip:callee@127.0.0.1:{callee_port}"
        noun, dialled = f"<Sip>{callee_uri}</Sip>", callee_uri
    else:
        sb = _trunk_switchboard(make_switchboard, app, account, callee_port)
        noun, dialled = f"<Number>{FAR_NUMBER}</Number>", FAR_NUMBER
    app.twiml("/voice", f'<Response><Dial action="/dial-done">{noun}</Dial></Response>')
    app.twiml("/dial-done", "<Response><Hangup/></Response>")

    to_callee = RtpCapture(tmp_path, callee_media).start()
    callee = SippCall("uas_answer_pcma_stream_bye.xml", callee_dir, local_port=callee_port,
                      media_port=callee_media, extra=["-d", "3000"], timeout_s=30)
    try:
        outcome = place_call(sb, tmp_path / "caller", MAIN,
                             scenario="uac_pcmu_stream_wait_bye.xml", capture_audio=True,
                             timeout_s=30)
        callee_result = callee.wait()
    finally:
        callee.kill()
        to_callee.stop()
    assert callee_result.returncode == 0, callee_result.explain()
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()

    # The outcome: the callee hung up a bridged call; the action's <Hangup/> ended the caller.
    done = app.wait_for("/dial-done")
    assert done.signature_valid(account.auth_token), done.describe()
    assert done.param("DialCallStatus") == "completed", done.describe()
    assert done.param("DialBridged") == "true", done.describe()
    assert int(done.param("DialCallDuration")) >= 2, done.describe()
    assert done.param("CallStatus") == "in-progress", done.describe()
    parent_sid, child_sid = done.param("CallSid"), done.param("DialCallSid")
    assert re.match(r"^CA[0-9a-f]{32}$", child_sid or ""), done.describe()

    # The child call: a real Call record, visible through the SDK.
    client = sb.client(account)
    child = wait_call_status(client, child_sid, {"completed"})
    assert child.direction == "outbound-dial"
    assert child.parent_call_sid == parent_sid
    assert child._from == CALLER, "callerId defaults to the caller's number"
    assert child.to == dialled
    assert child.price is None
    assert int(child.duration) >= 2
    assert [c.sid for c in client.calls.list(parent_call_sid=parent_sid)] == [child_sid]
    assert wait_call_status(client, parent_sid, {"completed"}).direction == "inbound"

    # The callee was offered both laws (and chose A-law) and saw the caller's number.
    invites = _invites(callee_result)
    assert len(invites) == 1, callee_result.explain()
    assert "RTP/AVP 0 8 101" in invites[0], invites[0]
    assert CALLER in _header(invites[0], "From"), invites[0]

    # Caller -> callee: every packet A-law, the caller's mu-law transcoded sample for sample.
    expected_alaw = {ulaw_to_alaw(f): i for i, f in enumerate(_frames(caller_audio))}
    received = to_callee.packets()
    audio = [p for p in received if p.payload_type != 101]
    assert audio and {p.payload_type for p in audio} == {8}, \
        f"the callee must get PCMA only: {sorted({p.payload_type for p in audio})}"
    matched = _matched_frames(audio, 8, expected_alaw)
    assert len(set(matched)) >= 40, (
        f"only {len(set(matched))} distinct frames of the caller's audio reached the callee "
        f"exactly transcoded ({len(matched)} of {len(audio)} packets matched)")
    assert len(matched) >= 0.9 * len(audio), \
        f"{len(audio) - len(matched)} of {len(audio)} packets to the callee are not the caller's audio"

    # Callee -> caller: its A-law as mu-law, sample for sample; ringback before that.
    expected_ulaw = {alaw_to_ulaw(f): i for i, f in enumerate(_frames(callee_audio))}
    to_caller = sorted(outcome.audio, key=lambda p: p.time)
    assert {p.payload_type for p in to_caller} <= {0, 101}, "the caller gets PCMU only"
    bridged = [p for p in to_caller if p.payload_type == 0 and p.payload in expected_ulaw]
    assert len({expected_ulaw[p.payload] for p in bridged}) >= 40, \
        f"only {len(bridged)} packets of the callee's audio reached the caller exactly transcoded"
    ringing = [s for p in to_caller if p.time < bridged[0].time and p.payload_type == 0
               for s in (ULAW[b] for b in p.payload)]
    assert len(ringing) >= 8000, f"only {len(ringing) / 8000:.2f} s of audio before the answer"
    tone = ringing[:8000]  # the first second: the 440 + 480 Hz burst
    p440, p480, p1000 = (tone_power(tone, f) for f in (440, 480, 1000))
    assert p440 > 50 * p1000 and p480 > 50 * p1000, \
        f"no US ringback before the answer: 440 Hz {p440:.0f}, 480 Hz {p480:.0f}, 1 kHz {p1000:.0f}"


def _rfc4733_digits(packets, payload_type: int) -> str:
    """Digits of the RFC 4733 events in `packets`, one per event (by RTP timestamp)."""
    codes = "0123456789*#ABCD"
    seen: list[int] = []
    digits = ""
    for p in sorted(packets, key=lambda p: p.time):
        if p.payload_type != payload_type or len(p.payload) < 4:
            continue
        if p.timestamp not in seen:
            seen.append(p.timestamp)
            digits += codes[p.payload[0]] if p.payload[0] < 16 else "?"
    return digits


def test_dial_number_through_a_trunk_with_digest_auth_send_digits_and_leg_callbacks(
        make_switchboard, app, account, tmp_path):
    """<Number sendDigits statusCallback…> through a trunk that challenges (Digest) and rings;
    callerId is one of the account's numbers; the caller hangs up while bridged: BYE to the
    leg, DialCallStatus completed in the action request all the same."""
    far_port, far_media = ports.free_port(), ports.free_media_port()
    to_far = RtpCapture(tmp_path, far_media).start()
    far = SippCall("uas_digest_ring_answer_te.xml", tmp_path / "far", local_port=far_port,
                   media_port=far_media, timeout_s=30)
    try:
        sb = _trunk_switchboard(make_switchboard, app, account, far_port,
                                username="alice", password="s3cret")
        app.twiml("/voice", (
            f'<Response><Dial callerId="{MAIN}" action="/dial-done">'
            f'<Number sendDigits="1w2" statusCallback="/leg-status" '
            f'statusCallbackEvent="initiated ringing answered completed">{FAR_NUMBER}</Number>'
            f'</Dial></Response>'))
        app.twiml("/dial-done", "<Response><Hangup/></Response>")
        app.answer("/leg-status", "", "text/plain")
        _speaking_caller(tmp_path / "caller")
        outcome = place_call(sb, tmp_path / "caller", MAIN, scenario="uac_pcmu_stream_hangup.xml",
                             extra=["-d", "4000"], timeout_s=30)
        far_result = far.wait()
    finally:
        far.kill()
        to_far.stop()
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    assert far_result.returncode == 0, far_result.explain()
    invites = _invites(far_result)
    assert len(invites) == 2, "challenged, then authorized"
    assert MAIN in _header(invites[-1], "From"), invites[-1]
    assert _rfc4733_digits(to_far.packets(), 101) == "12", "sendDigits after the answer"

    done = app.wait_for("/dial-done")
    assert done.param("DialCallStatus") == "completed", done.describe()
    assert done.param("DialBridged") == "true", done.describe()
    assert done.param("CallStatus") == "completed", "the caller hung up"
    child_sid = done.param("DialCallSid")
    callbacks = [app.wait_for("/leg-status", count=n) for n in (1, 2, 3, 4)]
    assert [c.param("CallStatus") for c in callbacks] == \
        ["initiated", "ringing", "in-progress", "completed"]
    for c in callbacks:
        assert c.signature_valid(account.auth_token), c.describe()
        assert c.param("CallSid") == child_sid
        assert c.param("Direction") == "outbound-dial"
        assert c.param("ParentCallSid") == done.param("CallSid")
        assert c.param("From") == MAIN
    child = wait_call_status(sb.client(account), child_sid, {"completed"})
    assert child._from == MAIN and child.to == FAR_NUMBER


def _call_dialling_a_sipp_far_end(switchboard, app, tmp_path, far_scenario: str,
                                  voice_twiml, other_twiml: dict[str, str]):
    """A SIPp caller calls MAIN, whose app dials a SIPp far end running `far_scenario`
    (`voice_twiml(far_port)` is the /voice document); both SIPp runs must succeed.
    Returns (caller outcome, far end result)."""
    far_port = ports.free_port()
    far = SippCall(far_scenario, tmp_path / "far", local_port=far_port, timeout_s=20)
    try:
        app.twiml("/voice", voice_twiml(far_port))
        for path, twiml in other_twiml.items():
            app.twiml(path, twiml)
        outcome = place_call(switchboard, tmp_path / "caller", MAIN, timeout_s=20)
        far_result = far.wait()
    finally:
        far.kill()
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    assert far_result.returncode == 0, far_result.explain()
    return outcome, far_result


def test_dial_timeout_cancels_the_leg_and_reports_no_answer(switchboard, app, account, tmp_path):
    _, far_result = _call_dialling_a_sipp_far_end(
        switchboard, app, tmp_path, "uas_ring_forever.xml",
        lambda far_port: (f'<Response><Dial timeout="2" action="/dial-done">'
                          f'<Sip>sip:nobody@127.0.0.1:{far_port}</Sip></Dial></Response>'),
        {"/dial-done": "<Response><Hangup/></Response>"})
    assert re.search(r"^\s*CANCEL sip:", far_result.messages, re.M), far_result.explain()
    done = app.wait_for("/dial-done")
    assert done.param("DialCallStatus") == "no-answer", done.describe()
    assert done.param("DialBridged") == "false"
    assert done.param("DialCallDuration") is None
    child = wait_call_status(switchboard.client(account), done.param("DialCallSid"), {"no-answer"})
    assert child.direction == "outbound-dial"


def test_a_busy_dial_without_action_goes_on_with_the_next_verb(switchboard, app, account,
                                                               tmp_path):
    _call_dialling_a_sipp_far_end(
        switchboard, app, tmp_path, "uas_reply_486.xml",
        lambda far_port: (f'<Response><Dial><Sip>sip:busy@127.0.0.1:{far_port}</Sip></Dial>'
                          f'<Redirect>/after-dial</Redirect></Response>'),
        {"/after-dial": "<Response><Hangup/></Response>"})
    after = app.wait_for("/after-dial")
    parent_sid = after.param("CallSid")
    assert after.param("DialCallStatus") is None, "no action: the document simply goes on"
    client = switchboard.client(account)
    children = client.calls.list(parent_call_sid=parent_sid)
    assert len(children) == 1
    assert wait_call_status(client, children[0].sid, {"busy"}).status == "busy"


def test_first_answer_wins_and_hangup_on_star_returns_the_caller_to_its_document(
        switchboard, app, account, tmp_path):
    """Two nouns ring at once: one answers (600 ms), the other gets CANCEL. The caller
    presses * while bridged: the connected leg gets BYE, the action's TwiML runs on."""
    answering_port, forever_port = ports.free_port(), ports.free_port()
    answering = SippCall("uas_ring_answer_te.xml", tmp_path / "answering",
                         local_port=answering_port, timeout_s=25)
    forever = SippCall("uas_ring_forever.xml", tmp_path / "forever", local_port=forever_port,
                       timeout_s=25)
    caller_dir = tmp_path / "caller"
    caller_dir.mkdir()
    pcap = write_dtmf_pcap(caller_dir / "star.pcap", "*")
    star = caller_dir / "uac_star_wait_bye.xml"
    star.write_text(scenario("uac_star_wait_bye.xml").read_text().replace("@PCAP@", str(pcap)))
    try:
        app.twiml("/voice", (
            '<Response><Dial hangupOnStar="true" action="/dial-done">'
            f'<Sip>sip:forever@127.0.0.1:{forever_port}</Sip>'
            f'<Sip>sip:answers@127.0.0.1:{answering_port}</Sip></Dial></Response>'))
        app.twiml("/dial-done", "<Response><Hangup/></Response>")
        outcome = place_call(switchboard, caller_dir, MAIN, scenario=str(star), timeout_s=25)
        answering_result, forever_result = answering.wait(), forever.wait()
    finally:
        answering.kill()
        forever.kill()
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    assert answering_result.returncode == 0, answering_result.explain()
    assert forever_result.returncode == 0, forever_result.explain()
    assert re.search(r"^\s*CANCEL sip:", forever_result.messages, re.M), forever_result.explain()
    assert re.search(r"^\s*BYE sip:", answering_result.messages, re.M), answering_result.explain()

    done = app.wait_for("/dial-done")
    assert done.param("DialCallStatus") == "completed", done.describe()
    assert done.param("DialBridged") == "true", done.describe()
    assert done.param("CallStatus") == "in-progress", "the caller's call goes on after *"
    client = switchboard.client(account)
    children = {c.to: c for c in client.calls.list(parent_call_sid=done.param("CallSid"))}
    answered = children[f"sip:answers@127.0.0.1:{answering_port}"]
    canceled = children[f"sip:forever@127.0.0.1:{forever_port}"]
    assert done.param("DialCallSid") == answered.sid
    assert wait_call_status(client, answered.sid, {"completed"}).status == "completed"
    assert wait_call_status(client, canceled.sid, {"canceled"}).status == "canceled"


def test_the_caller_hanging_up_while_the_leg_rings_cancels_it(switchboard, app, account,
                                                              tmp_path):
    far_port = ports.free_port()
    far = SippCall("uas_ring_forever.xml", tmp_path / "far", local_port=far_port, timeout_s=20)
    try:
        app.twiml("/voice", f'<Response><Dial action="/dial-done">'
                            f'<Sip>sip:nobody@127.0.0.1:{far_port}</Sip></Dial></Response>')
        _speaking_caller(tmp_path / "caller")
        outcome = place_call(switchboard, tmp_path / "caller", MAIN,
                             scenario="uac_pcmu_stream_hangup.xml", extra=["-d", "1500"],
                             timeout_s=20)
        far_result = far.wait()
    finally:
        far.kill()
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    assert far_result.returncode == 0, far_result.explain()
    done = app.wait_for("/dial-done")
    assert done.param("DialCallStatus") == "canceled", done.describe()
    assert done.param("CallStatus") == "completed", done.describe()
    child = wait_call_status(switchboard.client(account), done.param("DialCallSid"), {"canceled"})
    assert child.parent_call_sid == done.param("CallSid")


def test_a_caller_id_the_account_may_not_use_is_refused_with_13214(switchboard, app, account,
                                                                   tmp_path):
    app.twiml("/voice", '<Response><Dial callerId="+15550009999" action="/dial-done">'
                        f'<Number>{FAR_NUMBER}</Number></Dial></Response>')
    app.twiml("/dial-done", "<Response><Hangup/></Response>")
    outcome = place_call(switchboard, tmp_path / "caller", MAIN, timeout_s=20)
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    done = app.wait_for("/dial-done")
    assert done.param("DialCallStatus") == "failed", done.describe()
    parent_sid = done.param("CallSid")
    client = switchboard.client(account)
    assert client.calls.list(parent_call_sid=parent_sid) == [], "no leg was placed"
    codes = [n.error_code for n in client.calls(parent_sid).notifications.list()]
    assert "13214" in codes, codes
