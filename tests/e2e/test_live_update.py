"""Live call control through the REST API (the official SDK's calls(sid).update):
a call in a long <Say> is redirected to new TwiML whose audio follows; Status=completed
hangs it up within 500 ms; a finished call cannot be updated (21220)."""

from __future__ import annotations

import subprocess
import time

import pytest
from twilio.base.exceptions import TwilioRestException

from sbtest.flows import assert_voice_webhook, place_call, wait_call_status
from sbtest.rtp import RtpCapture, decode_g711, read_pcap_udp
from sbtest.standard import MAIN

LONG_SAY = '<Response><Say loop="0">Please hold, this message repeats for a long time.</Say></Response>'


def _tone(tmp_path, freq: int) -> bytes:
    out = tmp_path / f"tone-{freq}.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(out), "synth", "1.0",
                    "sine", str(freq), "vol", "0.5"], check=True)
    return out.read_bytes()


def _zero_crossing_hz(packets) -> float:
    samples = [s for p in packets for s in decode_g711(p.payload, p.payload_type)]
    crossings = sum(1 for a, b in zip(samples, samples[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / 8000) if samples else 0.0


def test_redirect_a_live_call_to_new_twiml(switchboard, app, account, tmp_path):
    client = switchboard.client(account)
    app.twiml("/voice", LONG_SAY)
    app.answer("/tone.wav", _tone(tmp_path, 1000), content_type="audio/wav")
    app.twiml("/moved", "<Response><Play>/tone.wav</Play><Hangup/></Response>")
    updated_at: list[float] = []

    def redirect(call) -> None:
        voice = app.wait_for("/voice", timeout=15)
        time.sleep(2.0)  # the long Say is playing
        client.calls(voice.param("CallSid")).update(url=app.url("/moved"), method="POST")
        updated_at.append(time.monotonic())

    outcome = place_call(switchboard, tmp_path, MAIN, capture_audio=True, during=redirect)
    assert updated_at, "the update was never sent"
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    voice = app.wait_for("/voice", timeout=1)
    call_sid = assert_voice_webhook(voice, account, to=MAIN)
    moved = app.wait_for("/moved", timeout=1)
    assert moved.signature_valid(account.auth_token), moved.describe()
    assert moved.param("CallSid") == call_sid
    assert moved.param("CallStatus") == "in-progress"
    # The new document's audio follows: the stream ends with ~1 s of a 1 kHz tone.
    loud = [p for p in outcome.audio if any(b not in (0xFF, 0x7F, 0xD5, 0x55) for b in p.payload)]
    tail = loud[-40:]
    assert len(tail) == 40 and 900 <= _zero_crossing_hz(tail) <= 1100, \
        f"no 1 kHz tone after the redirect ({len(loud)} loud packets)"
    assert wait_call_status(client, call_sid, {"completed"}).status == "completed"


def test_status_completed_hangs_up_within_500_ms(switchboard, app, account, tmp_path):
    client = switchboard.client(account)
    app.twiml("/voice", LONG_SAY)
    marks: dict[str, object] = {}

    def hang_up(call) -> None:
        voice = app.wait_for("/voice", timeout=15)
        capture = RtpCapture(tmp_path, call.local_port).start()  # SIP toward SIPp
        marks["capture"] = capture
        time.sleep(1.5)
        marks["sid"] = voice.param("CallSid")
        marks["at"] = time.time()
        call_json = client.calls(marks["sid"]).update(status="completed")
        assert call_json.sid == marks["sid"]
        assert call_json.status == "completed", "the reply shows the call ended"

    outcome = place_call(switchboard, tmp_path, MAIN, during=hang_up)
    capture = marks["capture"]
    capture.stop()
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    byes = [d for d in read_pcap_udp(capture.path) if d.payload.startswith(b"BYE ")]
    assert byes, "no BYE reached the caller"
    delay = byes[0].time - marks["at"]
    assert delay < 0.5, f"BYE {delay * 1000:.0f} ms after the API request"
    call = wait_call_status(client, marks["sid"], {"completed"})
    assert call.status == "completed"
    # A finished call cannot be redirected any more.
    with pytest.raises(TwilioRestException) as error:
        client.calls(marks["sid"]).update(url=app.url("/voice"))
    assert error.value.code == 21220


def test_update_errors(switchboard, account):
    client = switchboard.client(account)
    with pytest.raises(TwilioRestException) as error:
        client.calls("CA" + "0" * 32).update(status="completed")
    assert error.value.status == 404 and error.value.code == 20404
