"""Inbound calls from SIPp: the Gather + DTMF flow with signed webhooks and
checked audio, Reject, unknown numbers, codec mismatch, plain-text apps."""

from __future__ import annotations

from pathlib import Path

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


def _keypad_tones(path, keys: str) -> Path:
    """Raw μ-law (8 kHz) keypad tones made by sox: 120 ms per key, 100 ms apart."""
    import subprocess
    pairs = {"1": (697, 1209), "2": (697, 1336), "5": (770, 1336), "#": (941, 1477)}
    out = path / "keys.ul"
    chunks = []
    for i, key in enumerate(keys):
        low, high = pairs[key]
        part = path / f"key{i}.ul"
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", "-t", "ul", str(part),
                        "synth", "0.12", "sine", str(low), "sine", str(high), "remix", "1,2",
                        "vol", "0.4", "pad", "0", "0.1"], check=True)
        chunks.append(part.read_bytes())
    out.write_bytes(b"".join(chunks) + b"\xff" * 1600)
    return out


def test_gather_inband_dtmf_when_no_telephone_event(switchboard, app, account, tmp_path):
    """A caller whose phone sends its keys as tones in the audio (no telephone-event in
    the offer): the media plane hears them (Goertzel) and Gather gets the digits."""
    from sbtest.sipp import scenario
    app.twiml("/voice", GATHER_TWO_DIGITS)
    app.twiml("/digits", SAY_OK_HANG_UP)
    tones = _keypad_tones(tmp_path, "12")
    script = tmp_path / "uac_inband_dtmf.xml"
    script.write_text(scenario("uac_inband_dtmf.xml").read_text().replace("@TONES@", str(tones)))

    outcome = place_call(switchboard, tmp_path, MAIN, scenario=str(script))

    app.wait_for("/voice", timeout=1)
    action = app.wait_for("/digits", timeout=1)
    assert action.signature_valid(account.auth_token), action.describe()
    assert action.param("Digits") == "12", action.describe()
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()


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


def _tone(path, fmt: str, freq: int, seconds: float = 1.5) -> bytes:
    """A sine tone file made by sox (44.1 kHz stereo, so Switchboard must resample)."""
    import subprocess
    out = path / f"tone-{freq}.{fmt}"
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "2", str(out), "synth", str(seconds),
                    "sine", str(freq), "vol", "0.5"], check=True)
    return out.read_bytes()


def _dominant_hz(packets) -> float:
    """Frequency of the loudest stretch of the stream, from zero crossings."""
    from sbtest.rtp import decode_g711
    samples = []
    for p in packets:
        samples.extend(decode_g711(p.payload, p.payload_type))
    loud = [s for s in samples if abs(s) > 0]
    crossings = sum(1 for a, b in zip(loud, loud[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (len(loud) / 8000) if loud else 0.0


def test_play_wav_and_mp3_from_the_app_cached_by_url(switchboard, app, account, tmp_path):
    app.answer("/tone.wav", _tone(tmp_path, "wav", 1000), content_type="audio/wav")
    app.answer("/tone.mp3", _tone(tmp_path, "mp3", 1000), content_type="audio/mpeg")
    app.twiml("/voice", "<Response><Play>/tone.wav</Play><Play>tone.mp3</Play><Hangup/></Response>")
    for _ in range(2):
        outcome = place_call(switchboard, tmp_path, MAIN, capture_audio=True)
        assert outcome.sipp.returncode == 0, outcome.sipp.explain()
        report = assert_g711_speech(outcome.audio, min_loud_windows=10,
                                    what="played WAV + MP3 toward SIPp")
        loud = [p for p in outcome.audio if any(b not in (0xFF, 0x7F, 0xD5, 0x55) for b in p.payload)]
        assert 900 <= _dominant_hz(loud) <= 1100, f"tone not ~1 kHz; {report.summary()}"
        # 1.5 s + 1.5 s of tone: about 150 non-silent packets.
        assert 130 <= len(loud) <= 170, f"{len(loud)} tone packets; {report.summary()}"
    # Cached by URL for the process: each file fetched once for the two calls.
    assert len(app.requests("/tone.wav")) == 1
    assert len(app.requests("/tone.mp3")) == 1
    assert len(app.requests("/voice")) == 2


def test_audio_response_is_played_then_hung_up(switchboard, app, account, tmp_path):
    app.answer("/voice", _tone(tmp_path, "wav", 440, seconds=1.2), content_type="audio/wav")
    outcome = place_call(switchboard, tmp_path, MAIN, capture_audio=True)
    assert outcome.sipp.returncode == 0, outcome.sipp.explain()
    loud = [p for p in outcome.audio if any(b not in (0xFF, 0x7F, 0xD5, 0x55) for b in p.payload)]
    assert 390 <= _dominant_hz(loud) <= 490, "the app's audio body must be played"
    assert_voice_webhook(app.wait_for("/voice", timeout=1), account, to=MAIN)
