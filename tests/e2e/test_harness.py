"""The harness checked on its own, without Switchboard: the SIPp scenarios and
the baresip config against SIPp stand-ins, the RTP/audio judge, and the
signature check against Twilio's published vectors. If these fail, the
Switchboard tests' verdicts cannot be trusted."""

from __future__ import annotations

import subprocess
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

from sbtest import baresip as baresip_peer
from sbtest import ports
from sbtest.app import RecordedRequest, TestApp
from sbtest.rtp import (ALAW, ULAW, RtpCapture, RtpPacket, alaw_to_ulaw, analyze,
                        assert_g711_speech, linear_to_alaw, linear_to_ulaw, tone_power,
                        ulaw_to_alaw)
from sbtest.sipp import run_sipp, scenario


class StandIn:
    """A SIPp UAS from tests/peers/ standing in for Switchboard."""

    def __init__(self, workdir: Path, scenario_path: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = ports.free_port()
        self.media_port = ports.free_media_port()
        self.proc = subprocess.Popen(
            ["sipp", "-sf", str(scenario_path), "-i", "127.0.0.1", "-p", str(self.port),
             "-mi", "127.0.0.1", "-mp", str(self.media_port), "-m", "1", "-nostdin",
             "-timeout", "40s", "-trace_msg", "-message_file", "uas-messages.log"],
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT)
        time.sleep(0.3)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=45)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def _prompt(workdir: Path) -> None:
    """prompt.ul in the stand-in's directory: what uas_answer_then_bye plays."""
    speech = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", "Please enter two digits"],
                            check=True, capture_output=True).stdout
    subprocess.run(["sox", "-t", "wav", "-", "-r", "8000", "-c", "1", "-t", "ul",
                    str(workdir / "prompt.ul")], input=speech, check=True, capture_output=True)


def _events(packets: list[RtpPacket], pt: int = 101) -> list[int]:
    """Distinct RFC 4733 event codes, in order of first end packet."""
    seen: list[int] = []
    for p in packets:
        if p.payload_type == pt and len(p.payload) >= 4 and p.payload[1] & 0x80:
            if p.payload[0] not in seen:
                seen.append(p.payload[0])
    return seen


def test_sipp_gather_scenario_against_stand_in(tmp_path):
    uas_dir = tmp_path / "uas"
    uas_dir.mkdir()
    _prompt(uas_dir)
    uas = StandIn(uas_dir, scenario("uas_answer_then_bye.xml"))
    to_uas = RtpCapture(tmp_path, uas.media_port).start()
    media_port = ports.free_media_port()
    to_uac = RtpCapture(tmp_path, media_port).start()
    try:
        result = run_sipp("uac_gather_dtmf.xml", tmp_path / "uac", target=uas.target,
                          service="15005550006", media_port=media_port, timeout_s=30)
    finally:
        to_uas.stop()
        to_uac.stop()
    assert result.returncode == 0, result.explain()
    assert uas.wait() == 0
    invite = result.messages.split("INVITE sip:", 1)[1]
    assert "m=audio %d RTP/AVP 0 8 101" % media_port in invite
    assert "a=rtpmap:101 telephone-event/8000" in invite
    # the digits go out as RFC 4733 events with the PT the offer declared
    assert _events(to_uas.packets()) == [1, 2]
    assert_g711_speech(to_uac.packets(), what="stand-in prompt")


def test_sipp_scenario_fails_without_bye(tmp_path):
    """No BYE from the far end (SIPp's built-in UAS never hangs up): the
    scenario hangs up itself after 20 s and exits non-zero."""
    port, media = ports.free_port(), ports.free_media_port()
    builtin = subprocess.Popen(["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port),
                                "-mi", "127.0.0.1", "-mp", str(media), "-m", "1", "-nostdin",
                                "-timeout", "40s"],
                               cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        time.sleep(0.3)
        result = run_sipp("uac_gather_dtmf.xml", tmp_path / "uac", target=f"127.0.0.1:{port}",
                          service="15005550006", timeout_s=40)
    finally:
        builtin.kill()
        builtin.wait()
    assert result.returncode != 0
    assert "FAIL: no BYE" in result.logs
    assert "BYE sip:" in result.messages  # it hung up before failing


@pytest.mark.parametrize("reply,expected,ok", [(486, 486, True), (488, 488, True),
                                              (486, 404, False)])
def test_sipp_expect_status_scenario(tmp_path, reply, expected, ok):
    uas_file = tmp_path / f"uas_reply_{reply}.xml"
    text = scenario("uas_reply_486.xml").read_text()
    reason = {486: "Busy Here", 488: "Not Acceptable Here"}[reply]
    uas_file.write_text(text.replace("486 Busy Here", f"{reply} {reason}"))
    uas = StandIn(tmp_path / "uas", uas_file)
    result = run_sipp("uac_expect_status.xml", tmp_path / "uac", target=uas.target,
                      service="15005550006", sets={"expected": str(expected)},
                      keys={"offer_pt": "18", "offer_codec": "G729"}, timeout_s=20)
    uas.wait()
    assert (result.returncode == 0) is ok, result.explain()
    assert result.final_status_line().startswith(f"SIP/2.0 {reply} ")
    assert "m=audio" in result.messages and "RTP/AVP 18\n" in result.messages.replace("\r", "")
    assert "a=rtpmap:18 G729/8000" in result.messages


def test_sipp_wait_bye_scenario_against_stand_in(tmp_path):
    uas_dir = tmp_path / "uas"
    uas_dir.mkdir()
    _prompt(uas_dir)
    uas = StandIn(uas_dir, scenario("uas_answer_then_bye.xml"))
    result = run_sipp("uac_wait_bye.xml", tmp_path / "uac", target=uas.target,
                      service="15005550008", timeout_s=30)
    assert result.returncode == 0, result.explain()
    assert uas.wait() == 0


def test_baresip_peer_against_stand_in(tmp_path):
    uas_dir = tmp_path / "uas"
    uas_dir.mkdir()
    _prompt(uas_dir)
    uas = StandIn(uas_dir, scenario("uas_answer_then_bye.xml"))
    to_uas = RtpCapture(tmp_path, uas.media_port).start()
    phone = baresip_peer.Baresip(tmp_path, baresip_peer.make_source_wav(tmp_path / "src.wav"))
    try:
        phone.start()
        assert phone.dial(f"sip:15005550006@{uas.target}").get("ok")
        phone.wait_event("CALL_ESTABLISHED", timeout=10)
        time.sleep(1.0)
        for digit in "12":
            assert phone.send_dtmf(digit).get("ok")
            time.sleep(0.5)
        phone.wait_event("CALL_CLOSED", timeout=10)  # the stand-in's BYE
    finally:
        phone.stop()
        to_uas.stop()
    assert uas.wait() == 0
    packets = to_uas.packets()
    assert _events(packets) == [1, 2], "baresip sndcode must send RFC 4733 events"
    heard = [p for p in phone.recordings() if p.name.endswith("-dec.wav")]
    assert heard, phone.log()
    rate, samples = baresip_peer.wav_samples(heard[0])
    assert rate == 8000 and len(samples) > 8000


def _packets(n: int, *, seq0=100, ts0=1000, payload=b"\x00" * 160, step_ts=160,
             t0=0.0, dt=0.02) -> list[RtpPacket]:
    return [RtpPacket(t0 + i * dt, 5000, 6000, 0, i == 0, seq0 + i, ts0 + i * step_ts, 0x1234,
                      payload) for i in range(n)]


def test_rtp_judge_accepts_speech_and_rejects_defects():
    loud = bytes([0x10, 0x90] * 80)  # alternating +/- large mu-law samples
    good = _packets(100, payload=loud)
    report = assert_g711_speech(good)
    assert 49 < report.packet_rate < 51
    with pytest.raises(AssertionError, match="silent"):
        assert_g711_speech(_packets(100, payload=b"\xff" * 160))
    gap = good[:50] + [RtpPacket(p.time, p.sport, p.dport, p.payload_type, p.marker,
                                 p.seq + 1, p.timestamp, p.ssrc, p.payload) for p in good[50:]]
    with pytest.raises(AssertionError, match="sequence"):
        assert_g711_speech(gap)
    with pytest.raises(AssertionError, match="timestamps"):
        assert_g711_speech(_packets(100, payload=loud, step_ts=80))
    with pytest.raises(AssertionError, match="rate"):
        assert_g711_speech(_packets(100, payload=loud, dt=0.03))
    with pytest.raises(AssertionError, match="G.711"):
        assert_g711_speech([RtpPacket(p.time, p.sport, p.dport, 18, p.marker, p.seq,
                                      p.timestamp, p.ssrc, p.payload) for p in good])
    # a pause with a marker bit and a timestamp jump is fine
    resumed = good + [RtpPacket(p.time + 3, p.sport, p.dport, 0, i == 0, p.seq + 100,
                                p.timestamp + 30000, p.ssrc, p.payload)
                      for i, p in enumerate(good)]
    assert len(analyze(resumed).talkspurts) == 2
    assert_g711_speech(resumed)


def test_g711_reference_encoders():
    """The judge's own G.711 encoders (independent of Switchboard's): each inverts its
    decoder, they follow the ITU segment boundaries, and transcoding goes through linear."""
    assert all(linear_to_alaw(ALAW[b]) == b for b in range(256))
    # mu-law has two zeros (0x7F and 0xFF); zero encodes as 0xFF
    assert all(linear_to_ulaw(ULAW[b]) == b for b in range(256) if b != 0x7F)
    assert linear_to_ulaw(0) == 0xFF and linear_to_alaw(0) == 0xD5
    assert (linear_to_ulaw(32767), linear_to_ulaw(-32768)) == (0x80, 0x00)
    assert (linear_to_alaw(32767), linear_to_alaw(-32768)) == (0xAA, 0x2A)
    assert linear_to_alaw(255) == 0xDA and linear_to_alaw(256) == 0xC5
    assert ulaw_to_alaw(bytes([0xFF, 0x00])) == bytes([linear_to_alaw(0), linear_to_alaw(-32124)])
    assert alaw_to_ulaw(bytes([0xD5])) == bytes([linear_to_ulaw(8)])
    try:
        with warnings.catch_warnings():  # deprecated since 3.11, gone in 3.13
            warnings.simplefilter("ignore", DeprecationWarning)
            import audioop  # Sun's reference code, a second opinion
    except ImportError:
        return
    import struct
    samples = b"".join(struct.pack("<h", x) for x in range(-32768, 32768, 7))
    assert audioop.lin2alaw(samples, 2) == bytes(
        linear_to_alaw(x) for x in range(-32768, 32768, 7))
    assert audioop.lin2ulaw(samples, 2) == bytes(
        linear_to_ulaw(x) for x in range(-32768, 32768, 7))


def test_tone_power_finds_a_tone():
    import math
    tone = [int(3000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(8000)]
    assert tone_power(tone, 440) > 1000 * tone_power(tone, 1000)


# Vectors from Twilio's SDK (shared/reference/twilio-compat.md)
VECTORS = [
    ("12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
     {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
      "From": "+12349013030", "To": "+18005551212"}, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
    ("0123456789abcdef0123456789abcdef", "https://example.com/voice?x=1",
     {"AccountSid": "AC" + "1" * 32, "ApiVersion": "2010-04-01", "CallSid": "CA" + "2" * 32,
      "CallStatus": "ringing", "Direction": "inbound", "From": "+15017122661",
      "To": "+15558675310"}, "XJJ46BUHtPugH7Q1hxyH3uE8qsA="),
]


@pytest.mark.parametrize("token,url,params,signature", VECTORS, ids=["vector1", "vector2"])
def test_signature_check_matches_twilio_vectors(token, url, params, signature):
    def request(sig, form):
        return RecordedRequest("POST", "/", url, {"x-twilio-signature": sig}, {},
                               {k: [v] for k, v in form.items()}, b"", 0.0)
    assert request(signature, params).signature_valid(token)
    assert not request(signature, {**params, "Digits": "9"}).signature_valid(token)
    assert not request(signature, params).signature_valid(token + "0")


def test_test_app_records_the_requested_url_and_form():
    app = TestApp().start()
    try:
        app.twiml("/voice", "<Response/>")
        body = b"CallSid=CA1&From=%2B1555&To=%2B1500&Digits=12"
        req = urllib.request.Request(app.url("/voice?x=1&y=a+b"), data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "sig"})
        with urllib.request.urlopen(req, timeout=5) as response:
            assert response.status == 200 and response.read() == b"<Response/>"
        recorded = app.wait_for("/voice", timeout=1)
        assert recorded.url == app.url("/voice?x=1&y=a+b")
        assert recorded.param("From") == "+1555" and recorded.param("x") == "1"
        assert recorded.signature == "sig"
        with pytest.raises(AssertionError, match="no request #2"):
            app.wait_for("/voice", timeout=0.2, count=2)
    finally:
        app.stop()
