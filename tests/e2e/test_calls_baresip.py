"""The Gather + DTMF flow with baresip, a real softphone, as the caller:
DTMF sent with ctrl_tcp `sndcode`, the prompt checked in the WAV baresip
recorded, the hang-up coming from Switchboard."""

from __future__ import annotations

import time

from sbtest import baresip as baresip_peer
from sbtest.flows import assert_voice_webhook
from sbtest.rtp import rms
from sbtest.standard import GATHER_TWO_DIGITS, MAIN, SAY_OK_HANG_UP


def test_gather_dtmf_baresip(switchboard, app, account, tmp_path):
    app.twiml("/voice", GATHER_TWO_DIGITS)
    app.twiml("/digits", SAY_OK_HANG_UP)
    source = baresip_peer.make_source_wav(tmp_path / "caller.wav")
    phone = baresip_peer.Baresip(tmp_path, source).start()
    try:
        dial = phone.dial(f"sip:{MAIN.lstrip('+')}@{switchboard.sip_target}")
        assert dial.get("ok"), dial
        phone.wait_event("CALL_ESTABLISHED", timeout=20)
        voice = app.wait_for("/voice", timeout=1)
        call_sid = assert_voice_webhook(voice, account, to=MAIN)

        time.sleep(2.0)  # let the prompt play
        for digit in "12":
            response = phone.send_dtmf(digit)
            assert response.get("ok"), response
            time.sleep(0.5)

        action = app.wait_for("/digits", timeout=15)
        assert action.signature_valid(account.auth_token), action.describe()
        assert action.param("Digits") == "12", action.describe()
        assert action.param("CallSid") == call_sid, action.describe()
        # the app's <Hangup/>: Switchboard ends the call (we never hang up)
        closed = phone.wait_event("CALL_CLOSED", timeout=15)
        assert closed.get("direction") == "outgoing", closed
    finally:
        phone.stop()

    received = [p for p in phone.recordings() if p.name.endswith("-dec.wav")]
    assert received, f"baresip recorded nothing in {phone.snd_dir}"
    rate, samples = baresip_peer.wav_samples(received[0])
    assert rate == 8000
    windows = [rms(samples[i:i + 1600]) for i in range(0, len(samples) - 1600, 1600)]
    assert sum(1 for w in windows if w > 500) >= 3, \
        f"baresip heard (nearly) silence: 200 ms RMS {[round(w) for w in windows]}"
