"""Create Call with Record=true: the far end (SIPp) answers, speaks a prompt and hangs up
after 4 s while Switchboard says its own TwiML; the recording's status callbacks arrive
(in-progress, then completed, signed), the Recordings resource lists it for the call and
account, and its WAV holds both directions (dual: channel 1 the far end, channel 2 us).
A mono recording mixes both. Another account cannot see it."""

from __future__ import annotations

import io
import math
import struct
import subprocess
import wave
from pathlib import Path

import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from sbtest import ports
from sbtest.flows import wait_call_status
from sbtest.server import Number, SwitchboardConfig
from sbtest.sipp import SippCall
from sbtest.standard import MAIN

FAR_END = "+15551230000"


def _far_end(workdir: Path, port: int) -> SippCall:
    """SIPp answering, playing a spoken prompt (prompt.ul) and hanging up after 4 s."""
    workdir.mkdir(parents=True, exist_ok=True)
    speech = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout",
                             "This is the far end speaking on a recorded line"],
                            check=True, capture_output=True).stdout
    subprocess.run(["sox", "-t", "wav", "-", "-r", "8000", "-c", "1", "-t", "ul",
                    str(workdir / "prompt.ul")], input=speech, check=True, capture_output=True)
    return SippCall("uas_answer_then_bye.xml", workdir, local_port=port, timeout_s=30)


def _rms(samples: list[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def _record_a_call(make_switchboard, app, accounts, tmp_path, channels: str):
    account, other = accounts
    far_port = ports.free_port()
    far_end = _far_end(tmp_path / "far", far_port)
    try:
        sb = make_switchboard(SwitchboardConfig(
            accounts=[account, other], numbers=[Number(account, MAIN, app.url("/voice"))],
            trunks=[{"name": "carrier", "gateway": f"127.0.0.1:{far_port}",
                     "prefixes": ["1"]}]))
        client = sb.client(account)
        call = client.calls.create(
            to=FAR_END, from_=MAIN, record=True, recording_channels=channels,
            recording_status_callback=app.url("/recording"),
            recording_status_callback_event=["in-progress", "completed"],
            twiml="<Response><Say>Switchboard is speaking while the call is recorded."
                  "</Say><Pause length=\"10\"/></Response>")
        result = far_end.wait()
    finally:
        far_end.kill()
    assert result.returncode == 0, result.explain()
    assert wait_call_status(client, call.sid, {"completed"}, timeout=10).status == "completed"
    started = app.wait_for("/recording", timeout=10,
                           where=lambda r: r.param("RecordingStatus") == "in-progress")
    done = app.wait_for("/recording", timeout=15,
                        where=lambda r: r.param("RecordingStatus") == "completed")
    for callback in (started, done):
        assert callback.signature_valid(account.auth_token), callback.describe()
        assert callback.param("CallSid") == call.sid
        assert callback.param("AccountSid") == account.sid
        assert callback.param("RecordingSource") == "OutboundAPI"
    assert started.param("RecordingSid") == done.param("RecordingSid")
    assert done.param("RecordingChannels") == ("2" if channels == "dual" else "1")
    assert 3 <= int(done.param("RecordingDuration")) <= 8, done.describe()
    sid = done.param("RecordingSid")
    assert sid.startswith("RE")
    assert done.param("RecordingUrl") == \
        f"{sb.base_url}/2010-04-01/Accounts/{account.sid}/Recordings/{sid}"
    return sb, client, call, sid, done


def _wav(sb, account, sid: str) -> wave.Wave_read:
    response = requests.get(
        f"{sb.base_url}/2010-04-01/Accounts/{account.sid}/Recordings/{sid}.wav",
        auth=(account.sid, account.auth_token), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "audio/x-wav"
    return wave.open(io.BytesIO(response.content))


def test_a_dual_channel_recording_holds_both_directions(make_switchboard, app, accounts,
                                                        tmp_path):
    account, other = accounts
    sb, client, call, sid, done = _record_a_call(make_switchboard, app, accounts, tmp_path,
                                                 "dual")
    recording = client.recordings(sid).fetch()
    assert recording.call_sid == call.sid
    assert recording.status == "completed"
    assert recording.channels == 2
    assert recording.source == "OutboundAPI"
    assert recording.duration == done.param("RecordingDuration")
    assert [r.sid for r in client.calls(call.sid).recordings.list()] == [sid]
    assert sid in [r.sid for r in client.recordings.list(call_sid=call.sid)]

    wav = _wav(sb, account, sid)
    assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
    frames = wav.readframes(wav.getnframes())
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    far, ours = list(samples[0::2]), list(samples[1::2])
    seconds = len(far) / 8000
    assert 3 <= seconds <= 8, seconds
    # Both sides spoke: each channel carries speech, not silence.
    assert _rms(far) > 300, _rms(far)
    assert _rms(ours) > 300, _rms(ours)
    assert far != ours

    # Tenant isolation: the other account sees nothing of it.
    intruder = sb.client(other)
    with pytest.raises(TwilioRestException) as foreign:
        intruder.recordings(sid).fetch()
    assert foreign.value.status == 404
    assert intruder.recordings.list() == []
    stolen = requests.get(
        f"{sb.base_url}/2010-04-01/Accounts/{account.sid}/Recordings/{sid}.wav",
        auth=(other.sid, other.auth_token), timeout=10)
    assert stolen.status_code == 404

    assert client.recordings(sid).delete() is True
    with pytest.raises(TwilioRestException) as gone:
        client.recordings(sid).fetch()
    assert gone.value.status == 404


def test_a_mono_recording_mixes_both_directions(make_switchboard, app, accounts, tmp_path):
    account, _ = accounts
    sb, client, call, sid, _ = _record_a_call(make_switchboard, app, accounts, tmp_path,
                                              "mono")
    wav = _wav(sb, account, sid)
    assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (1, 8000, 2)
    frames = wav.readframes(wav.getnframes())
    samples = list(struct.unpack(f"<{len(frames) // 2}h", frames))
    assert _rms(samples) > 300
    assert client.recordings(sid).fetch().channels == 1


def test_record_parameters_are_checked(switchboard, account):
    client = switchboard.client(account)
    for kwargs in ({"record": True, "recording_channels": "stereo"},
                   {"record": True, "recording_status_callback_event": ["paused-ish"]}):
        with pytest.raises(TwilioRestException) as refused:
            client.calls.create(to=FAR_END, from_=MAIN, twiml="<Response/>", **kwargs)
        assert refused.value.status == 400
