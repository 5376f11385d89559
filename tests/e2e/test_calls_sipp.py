"""Inbound calls from SIPp: the Gather + DTMF flow with signed webhooks and
checked audio, Reject, unknown numbers, codec mismatch, plain-text apps."""

from __future__ import annotations

from sbtest.flows import assert_voice_webhook, place_call
from sbtest.rtp import assert_g711_speech
from sbtest.standard import GATHER_TWO_DIGITS, MAIN, SAY_OK_HANG_UP, UNKNOWN


def test_gather_dtmf_sipp(switchboard, app, account, tmp_path):
    app.twiml("/voice", GATHER_TWO_DIGITS)
    app.twiml("/digits", SAY_OK_HANG_UP)

    outcome = place_call(switchboard, tmp_path, MAIN, scenario="uac_gather_dtmf.xml",
                         capture_audio=True)

    voice = app.wait_for("/voice", timeout=1)
    call_sid = assert_voice_webhook(voice, account, to=MAIN, from_digits="15551230001")
    action = app.wait_for("/digits", timeout=1)
    assert action.signature_valid(account.auth_token), action.describe()
    assert action.url == app.url("/digits"), "relative action must resolve against the voice URL"
    assert action.param("Digits") == "12", action.describe()
    assert action.param("CallSid") == call_sid, action.describe()
    assert action.param("AccountSid") == account.sid, action.describe()
    assert action.param("CallStatus") == "in-progress", action.describe()
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    assert_g711_speech(outcome.audio, what="prompt toward SIPp")


def _expect_final_status(switchboard, tmp_path, number: str, expected: int,
                         offer_pt: int = 0, offer_codec: str = "PCMU"):
    outcome = place_call(switchboard, tmp_path, number, scenario="uac_expect_status.xml",
                         sets={"expected": str(expected)},
                         keys={"offer_pt": str(offer_pt), "offer_codec": offer_codec},
                         timeout_s=30)
    assert outcome.sipp.returncode == 0, (
        f"expected final {expected}, got {outcome.sipp.final_status_line()!r}\n"
        + outcome.sipp.explain())
    return outcome


def test_reject_busy(switchboard, app, account, tmp_path):
    app.twiml("/voice", '<Response><Reject reason="busy"/></Response>')
    _expect_final_status(switchboard, tmp_path, MAIN, 486)
    assert_voice_webhook(app.wait_for("/voice", timeout=1), account, to=MAIN)


def test_reject_rejected(switchboard, app, account, tmp_path):
    app.twiml("/voice", '<Response><Reject reason="rejected"/></Response>')
    _expect_final_status(switchboard, tmp_path, MAIN, 603)
    assert_voice_webhook(app.wait_for("/voice", timeout=1), account, to=MAIN)


def test_unknown_number_404(switchboard, app, tmp_path):
    _expect_final_status(switchboard, tmp_path, UNKNOWN, 404)
    assert app.requests() == [], "no app may be requested for an unknown number"


def test_no_common_codec_488(switchboard, app, tmp_path):
    app.twiml("/voice", SAY_OK_HANG_UP)
    _expect_final_status(switchboard, tmp_path, MAIN, 488, offer_pt=18, offer_codec="G729")


def test_say_plaintext_response(switchboard, app, account, tmp_path):
    app.answer("/voice", "Hello from a plain text application.", content_type="text/plain")
    outcome = place_call(switchboard, tmp_path, MAIN, capture_audio=True)
    assert_voice_webhook(app.wait_for("/voice", timeout=1), account, to=MAIN)
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    assert_g711_speech(outcome.audio, what="spoken plain text toward SIPp")
